//! `ctl delete`: by name, by label selector, or from manifests.

use bosun_proto::client::{Api, DeleteParams};
use bosun_proto::Kind;

use super::{get_object, list_objects, namespace_or_default, per_object, resolve, set_namespace};
use crate::cli::DeleteArgs;
use crate::manifest;
use crate::{Client, CtlError, Io};

/// # Errors
/// A bad manifest or kind, an unreachable cluster, or
/// [`CtlError::SomeFailed`] after reporting each failure.
pub async fn run(
    client: &mut Client,
    args: &DeleteArgs,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let mut targets: Vec<(Kind, String, String)> = Vec::new();
    if !args.files.is_empty() {
        if args.kind.is_some() {
            return Err(CtlError::Invalid("give either -f or KIND NAME, not both".into()));
        }
        for mut m in manifest::read_all(&args.files, io.stdin)? {
            set_namespace(&mut m.object, namespace)?;
            let kind = m.object.kind().expect("manifests hold an object");
            let ns = if m.object.namespace().is_empty() {
                namespace_or_default(namespace)
            } else {
                m.object.namespace().to_string()
            };
            targets.push((kind, ns, m.object.name().to_string()));
        }
    } else {
        let Some(kind_arg) = &args.kind else {
            return Err(CtlError::Invalid(
                "say what to delete: KIND NAME, KIND/NAME, KIND -l SELECTOR, KIND --all or -f FILE".into(),
            ));
        };
        let ns = namespace_or_default(namespace);
        for (kind, names) in resolve(kind_arg, &args.names)? {
            let selected = args.selector.clone().or_else(|| args.all.then(String::new));
            match (selected, names.is_empty()) {
                (Some(selector), true) => {
                    for object in list_objects(client, kind, &ns, &selector, "").await? {
                        targets.push((kind, object.namespace().to_string(), object.name().to_string()));
                    }
                }
                (None, true) => {
                    return Err(CtlError::Invalid(format!(
                        "name the {} to delete, or select them with -l or --all",
                        kind.plural()
                    )))
                }
                (Some(_), false) => return Err(CtlError::Invalid("names cannot be given with -l or --all".into())),
                (None, false) => targets.extend(names.into_iter().map(|name| (kind, ns.clone(), name))),
            }
        }
    }
    let propagation_policy = propagation_policy(&args.cascade, io)?;
    let grace_period_seconds = if args.force { Some(0) } else { args.grace_period };
    if grace_period_seconds.is_some_and(|g| g < 0) {
        return Err(CtlError::Invalid("--grace-period must be 0 or more".into()));
    }
    let total = targets.len();
    let mut failed = 0;
    let mut pending = Vec::new();
    for (kind, namespace, name) in targets {
        let params = DeleteParams {
            resource_version: None,
            grace_period_seconds,
            propagation_policy: propagation_policy.to_string(),
        };
        let api = Api::dynamic(client, kind, &namespace);
        let result = api.delete(&name, &params).await.map_err(CtlError::from);
        let shown = format!("{}{} {name:?}", kind.name().to_ascii_lowercase(), group(kind));
        match result {
            Ok(reply) if reply.deleted => writeln!(io.stdout, "{shown} deleted")?,
            Ok(_) if args.wait => {
                pending.push((kind, api.namespace().to_string(), name.clone()));
                writeln!(io.stdout, "{shown} deleted")?;
            }
            Ok(_) if kind == Kind::Pod => writeln!(io.stdout, "{shown} deleted (its containers are stopping)")?,
            Ok(_) => writeln!(io.stdout, "{shown} marked for deletion (waiting for its finalizers)")?,
            Err(e) if args.ignore_not_found && e.code() == Some(tonic::Code::NotFound) => {}
            Err(e) => per_object(io, e, &mut failed)?,
        }
    }
    // As kubectl: return once the objects are really gone.
    for (kind, namespace, name) in pending {
        while get_object(client, kind, &namespace, &name).await.is_ok() {
            tokio::time::sleep(WAIT_POLL).await;
        }
    }
    if failed > 0 {
        return Err(CtlError::SomeFailed { failed, total });
    }
    Ok(())
}

/// The API's propagation policy for kubectl's `--cascade` value: its
/// words, plus the deprecated booleans (`true` is background, `false`
/// orphan) with kubectl's warning.
///
/// # Errors
/// kubectl's message for any other value.
fn propagation_policy(cascade: &str, io: &mut Io<'_>) -> Result<&'static str, CtlError> {
    let (policy, replacement) = match cascade {
        "background" => return Ok("Background"),
        "foreground" => return Ok("Foreground"),
        "orphan" => return Ok("Orphan"),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => ("Background", "background"),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => ("Orphan", "orphan"),
        other => {
            return Err(CtlError::Invalid(format!(
                "invalid cascade value ({other}). Must be \"background\", \"foreground\", or \"orphan\""
            )))
        }
    };
    writeln!(
        io.stderr,
        "warning: --cascade={cascade} is deprecated (boolean value) and can be replaced with --cascade={replacement}."
    )?;
    Ok(policy)
}

/// How often `delete --wait` checks whether an object is gone.
const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(250);

fn group(kind: Kind) -> String {
    kind.api_version()
        .split_once('/')
        .map(|(group, _)| format!(".{group}"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(cascade: &str) -> (Result<&'static str, String>, String) {
        let (mut stdin, mut stdout, mut stderr) = (&b""[..], Vec::new(), Vec::new());
        let mut io = Io {
            stdin: &mut stdin,
            stdout: &mut stdout,
            stderr: &mut stderr,
        };
        let result = propagation_policy(cascade, &mut io).map_err(|e| e.to_string());
        (result, String::from_utf8_lossy(&stderr).into_owned())
    }

    #[test]
    fn cascade_values_map_to_propagation_policies_as_in_kubectl() {
        assert_eq!(policy("background"), (Ok("Background"), String::new()));
        assert_eq!(policy("foreground"), (Ok("Foreground"), String::new()));
        assert_eq!(policy("orphan"), (Ok("Orphan"), String::new()));
        let (result, warning) = policy("false");
        assert_eq!(result, Ok("Orphan"));
        assert_eq!(
            warning,
            "warning: --cascade=false is deprecated (boolean value) and can be replaced with --cascade=orphan.\n"
        );
        assert_eq!(policy("true").0, Ok("Background"));
        assert_eq!(
            policy("sideways").0,
            Err(
                "error: invalid cascade value (sideways). Must be \"background\", \"foreground\", or \"orphan\"".into()
            )
        );
    }
}
