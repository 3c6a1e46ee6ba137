//! `ctl wait`, for scripts, as kubectl's: blocks until each object meets
//! a condition, printing `KIND/NAME condition met` for each.
//!
//! - `--for=condition=NAME[=VALUE]`: a `status.conditions` entry of that
//!   type has that status (`True` when no value is given); names and
//!   values compare case-insensitively, as kubectl does.
//! - `--for=jsonpath={PATH}=VALUE`: the path (see [`crate::jsonpath`])
//!   renders that value from the object as `-o json` shows it.
//! - `--for=delete`: the object is gone.
//!
//! The objects are named, or every one of the kind matching `-l` (or
//! `--all`) when the command starts. Each is followed (see
//! [`super::follow`]) until its condition holds; `--timeout` (30 s) bounds
//! the whole wait, and 0 checks once without waiting.

use bosun_proto::api::{EventType, Object};
use bosun_proto::{codec, Kind};

use super::follow::{follow, Change};
use super::{get_object, namespace_or_default, selected_targets};
use crate::cli::WaitArgs;
use crate::jsonpath::Template;
use crate::output::kind_label;
use crate::{Client, CtlError, Io};

/// What to wait for.
#[derive(Clone, Debug, PartialEq)]
pub enum Wanted {
    Condition { name: String, status: String },
    Field { path: Template, value: String },
    Delete,
}

impl Wanted {
    /// Parses `--for`.
    ///
    /// # Errors
    /// kubectl's words for a form it does not know.
    pub fn parse(text: &str) -> Result<Wanted, CtlError> {
        let unrecognized = || CtlError::Invalid(format!("unrecognized condition: {text:?}"));
        if text.eq_ignore_ascii_case("delete") {
            return Ok(Wanted::Delete);
        }
        if let Some(condition) = text.strip_prefix("condition=") {
            let (name, status) = condition.split_once('=').unwrap_or((condition, "True"));
            if name.is_empty() || status.is_empty() {
                return Err(unrecognized());
            }
            return Ok(Wanted::Condition {
                name: name.to_string(),
                status: status.to_string(),
            });
        }
        if let Some(expression) = text.strip_prefix("jsonpath=") {
            let expression = expression.trim_matches('\'');
            let (path, value) = expression.split_once("}=").ok_or_else(unrecognized)?;
            if !path.starts_with("{.") || value.is_empty() {
                return Err(unrecognized());
            }
            let path = Template::parse(&format!("{path}}}")).map_err(|_| unrecognized())?;
            return Ok(Wanted::Field {
                path,
                value: value.to_string(),
            });
        }
        Err(unrecognized())
    }

    /// Whether the object, or its absence (`None`), meets the condition.
    pub fn met(&self, object: Option<&Object>) -> bool {
        let Some(object) = object else {
            return *self == Wanted::Delete;
        };
        let value = codec::object_to_value(object);
        match self {
            Wanted::Delete => false,
            Wanted::Condition { name, status } => {
                value["status"]["conditions"].as_array().into_iter().flatten().any(|c| {
                    let text = |key: &str| c[key].as_str().unwrap_or_default().to_string();
                    text("type").eq_ignore_ascii_case(name) && text("status").eq_ignore_ascii_case(status)
                })
            }
            // Strings as they are, numbers and booleans as JSON writes
            // them; a missing field renders nothing and so never matches.
            Wanted::Field { path, value: wanted } => path.render(&value) == *wanted,
        }
    }
}

/// # Errors
/// A bad `--for`, no matching objects, a missing object (unless waiting
/// for its deletion), the timeout, or an unreachable cluster.
pub async fn run(
    client: &mut Client,
    args: &WaitArgs,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let wanted = Wanted::parse(&args.condition)?;
    let namespace = namespace_or_default(namespace);
    let targets = selected_targets(client, &args.resources, args.selector.as_deref(), args.all, &namespace).await?;
    let deadline = tokio::time::Instant::now() + args.timeout;
    let once = args.timeout.is_zero();
    for (kind, name) in targets {
        let waited = wait_one(client, kind, &namespace, &name, &wanted, once, io);
        let met = if once {
            waited.await?
        } else {
            tokio::time::timeout_at(deadline, waited).await.unwrap_or(Ok(false))?
        };
        if !met {
            return Err(CtlError::Invalid(format!(
                "timed out waiting for the condition on {}/{name}",
                kind.plural()
            )));
        }
    }
    Ok(())
}

/// Follows one object until `wanted` holds, and prints it; with `once`,
/// only looks. Whether it holds.
async fn wait_one(
    client: &mut Client,
    kind: Kind,
    namespace: &str,
    name: &str,
    wanted: &Wanted,
    once: bool,
    io: &mut Io<'_>,
) -> Result<bool, CtlError> {
    let label = format!("{}/{name}", kind_label(kind));
    let selector = format!("metadata.name={name}");
    let scope = if kind.namespaced() { namespace } else { "" };
    let mut follower = follow(client, kind, scope, "", &selector);
    let mut current = if *wanted == Wanted::Delete {
        // Gone already is fine: list.
        follower.list().await?
    } else {
        // A read, so a missing object gets the server's words; changes
        // are followed from its version.
        let object = get_object(client, kind, namespace, name).await?;
        follower = follower.since(object.resource_version());
        vec![object]
    };
    loop {
        if wanted.met(current.first()) {
            writeln!(io.stdout, "{label} condition met")?;
            io.stdout.flush()?;
            return Ok(true);
        }
        if current.is_empty() {
            return Err(CtlError::Invalid(format!(
                "{label} was deleted while waiting for the condition"
            )));
        }
        if once {
            return Ok(false);
        }
        current = match follower.next().await? {
            Change::Event(EventType::Deleted, _) => vec![],
            Change::Event(_, object) => vec![*object],
            Change::Relisted(objects) => objects,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bosun_proto::api::{Pod, PodCondition, PodStatus};

    fn pod(phase: &str, conditions: &[(&str, &str)]) -> Object {
        Pod {
            status: Some(PodStatus {
                phase: phase.into(),
                conditions: conditions
                    .iter()
                    .map(|(kind, status)| PodCondition {
                        r#type: (*kind).into(),
                        status: (*status).into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .into()
    }

    #[test]
    fn the_forms_of_for_parse_as_in_kubectl() {
        let condition = |name: &str, status: &str| Wanted::Condition {
            name: name.into(),
            status: status.into(),
        };
        assert_eq!(Wanted::parse("condition=Ready").unwrap(), condition("Ready", "True"));
        assert_eq!(
            Wanted::parse("condition=Ready=false").unwrap(),
            condition("Ready", "false")
        );
        assert_eq!(Wanted::parse("delete").unwrap(), Wanted::Delete);
        assert!(matches!(
            Wanted::parse("jsonpath={.status.phase}=Running").unwrap(),
            Wanted::Field { value, .. } if value == "Running"
        ));
        for bad in [
            "ready",
            "condition=",
            "condition=Ready=",
            "jsonpath=.status.phase=Running",
            "jsonpath={.status.phase}",
        ] {
            let error = Wanted::parse(bad).unwrap_err().to_string();
            assert!(error.contains("unrecognized condition"), "{bad}: {error}");
        }
    }

    #[test]
    fn conditions_and_fields_are_met_as_in_kubectl() {
        let ready = pod("Running", &[("PodScheduled", "True"), ("Ready", "True")]);
        let unready = pod("Running", &[("Ready", "False")]);
        let wanted = Wanted::parse("condition=ready").unwrap();
        assert!(wanted.met(Some(&ready)), "names compare case-insensitively");
        assert!(!wanted.met(Some(&unready)));
        assert!(!wanted.met(None), "a missing object meets no condition");
        assert!(Wanted::parse("condition=Ready=FALSE").unwrap().met(Some(&unready)));
        assert!(!Wanted::parse("condition=Available").unwrap().met(Some(&ready)));

        let phase = Wanted::parse("jsonpath={.status.phase}=Running").unwrap();
        assert!(phase.met(Some(&ready)));
        assert!(!phase.met(Some(&pod("Pending", &[]))));
        assert!(!Wanted::parse("jsonpath={.status.nothing}=x").unwrap().met(Some(&ready)));
        // The path is a full JSONPath: filters work too.
        let filtered = Wanted::parse("jsonpath={.status.conditions[?(@.type==\"Ready\")].status}=True").unwrap();
        assert!(filtered.met(Some(&ready)));
        assert!(!filtered.met(Some(&unready)));

        assert!(Wanted::Delete.met(None));
        assert!(!Wanted::Delete.met(Some(&ready)));
    }

    #[test]
    fn kinds_are_named_as_kubectl_names_them() {
        assert_eq!(kind_label(Kind::Pod), "pod");
        assert_eq!(kind_label(Kind::Deployment), "deployment.apps");
    }
}
