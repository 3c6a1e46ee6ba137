//! One module per subcommand, plus what they share: resolving kinds and
//! namespaces, fetching objects, editing one object safely.

use bosun_proto::api::{Deployment, Object, Pod, ReplicaSet};
use bosun_proto::client::{Api, ListParams};
use bosun_proto::Kind;

use crate::cli::{Cli, ClusterCommand, Command, ConfigCommand, RolloutCommand, SetCommand};
use crate::{Client, CtlError, Io};

mod apply;
mod cluster;
mod container;
mod cp;
mod delete;
mod describe;
mod describe_pod;
mod describe_workload;
mod diff;
mod drain;
mod edit;
mod exec;
mod explain;
mod follow;
mod generate;
mod get;
mod label;
mod logs;
mod node;
mod patch;
mod replace;
mod rollout;
mod rollout_status;
mod scale;
mod set_image;
mod wait;
mod workload;

pub(crate) use apply::{LAST_APPLIED, LAST_APPLIED_LIMIT};

/// Runs a parsed command line.
///
/// # Errors
/// The command's [`CtlError`].
pub async fn run(cli: Cli, io: &mut Io<'_>) -> Result<(), CtlError> {
    let mut client = Client::new(cli.server.clone());
    let namespace = cli.namespace.clone();
    match cli.command {
        Command::Create(args) => match &args.what {
            Some(what) => generate::create(&mut client, what, namespace.as_deref(), io).await,
            None => apply::create(&mut client, &args.files, namespace.as_deref(), io).await,
        },
        Command::Run(args) => generate::run(&mut client, &args, namespace.as_deref(), io).await,
        Command::Apply(args) => apply::apply(&mut client, &args, namespace.as_deref(), io).await,
        Command::Replace(args) => replace::run(&mut client, &args, namespace.as_deref(), io).await,
        Command::Diff(args) => diff::run(&mut client, &args, namespace.as_deref(), io).await,
        Command::Get(args) => get::run(&mut client, &args, namespace.as_deref(), io).await,
        Command::Describe(args) => describe::run(&mut client, &args, namespace.as_deref(), io).await,
        Command::Delete(args) => delete::run(&mut client, &args, namespace.as_deref(), io).await,
        Command::Cordon { node } => node::set_cordon(&client, &node, true, io).await,
        Command::Uncordon { node } => node::set_cordon(&client, &node, false, io).await,
        Command::Drain(args) => drain::drain(&client, &args, io).await,
        Command::Logs(args) => logs::run(&client, &args, namespace.as_deref(), io).await,
        Command::Cp(args) => cp::run(&client, &args, namespace.as_deref(), io).await,
        Command::Exec(args) => exec::run(&client, &args, namespace.as_deref(), io).await,
        Command::Cluster {
            command: ClusterCommand::Status { output },
        } => cluster::status(&mut client, output, io).await,
        Command::Cluster {
            command: ClusterCommand::Remove { id, force },
        } => cluster::remove(&mut client, id, force, io).await,
        Command::Scale(args) => scale::run(&mut client, &args, namespace.as_deref(), io).await,
        Command::Set {
            command: SetCommand::Image { args },
        } => set_image::run(&mut client, &args, namespace.as_deref(), io).await,
        Command::Edit { objects } => edit::run(&mut client, &objects, namespace.as_deref(), io).await,
        Command::Patch(args) => patch::run(&mut client, &args, namespace.as_deref(), io).await,
        Command::Label(args) => label::run(&mut client, &args, label::Field::Labels, namespace.as_deref(), io).await,
        Command::Annotate(args) => {
            label::run(&mut client, &args, label::Field::Annotations, namespace.as_deref(), io).await
        }
        Command::Version => cluster::version(&mut client, io).await,
        Command::ApiResources => get::api_resources(io),
        Command::Wait(args) => wait::run(&mut client, &args, namespace.as_deref(), io).await,
        Command::Rollout { command } => rollout(&mut client, command, namespace.as_deref(), io).await,
        Command::Explain { path } => explain::run(&path, io),
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "ctl", io.stdout);
            Ok(())
        }
        Command::Config {
            command: ConfigCommand::View,
        } => cluster::config_view(&cli.server, cli.server_source, namespace.as_deref(), io),
    }
}

async fn rollout(
    client: &mut Client,
    command: RolloutCommand,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    match command {
        RolloutCommand::Status {
            target,
            watch,
            timeout,
            revision,
        } => rollout_status::run(client, &target.resources, watch, timeout, revision, namespace, io).await,
        RolloutCommand::History { target, revision } => {
            rollout::history(client, &target.resources, revision, namespace, io).await
        }
        RolloutCommand::Undo { target, to_revision } => {
            rollout::undo(client, &target.resources, to_revision, namespace, io).await
        }
        RolloutCommand::Pause(target) => rollout::pause(client, &target.resources, true, namespace, io).await,
        RolloutCommand::Resume(target) => rollout::pause(client, &target.resources, false, namespace, io).await,
        RolloutCommand::Restart(target) => rollout::restart(client, &target.resources, namespace, io).await,
    }
}

/// kubectl's `all`: the kinds an application is made of.
const ALL: [Kind; 4] = [Kind::Pod, Kind::Service, Kind::Deployment, Kind::ReplicaSet];

/// Parses `pods`, `deploy,rs`, `all` or `deploy/web` into kinds and names.
fn resolve(kind_arg: &str, names: &[String]) -> Result<Vec<(Kind, Vec<String>)>, CtlError> {
    if let Some((kind, name)) = kind_arg.split_once('/') {
        let kind = parse_kind(kind)?;
        let mut all = vec![name.to_string()];
        all.extend(names.iter().cloned());
        return Ok(vec![(kind, all)]);
    }
    let mut kinds: Vec<Kind> = Vec::new();
    for part in kind_arg.split(',') {
        let parsed = if part == "all" {
            ALL.to_vec()
        } else {
            vec![parse_kind(part)?]
        };
        for kind in parsed {
            if !kinds.contains(&kind) {
                kinds.push(kind);
            }
        }
    }
    if kinds.len() > 1 && !names.is_empty() {
        return Err(CtlError::Invalid(
            "names cannot be given with several kinds; use KIND/NAME".into(),
        ));
    }
    Ok(kinds.into_iter().map(|k| (k, names.to_vec())).collect())
}

/// kubectl's `TYPE NAME...` or `TYPE/NAME...` for commands that act on
/// named objects: the kind and name of each.
fn named_targets(args: &[String]) -> Result<Vec<(Kind, String)>, CtlError> {
    let Some(first) = args.first() else {
        return Err(CtlError::Invalid("required resource not specified".into()));
    };
    if first.contains('/') {
        return args
            .iter()
            .map(|arg| match arg.split_once('/') {
                Some((kind, name)) if !kind.is_empty() && !name.is_empty() && !name.contains('/') => {
                    Ok((parse_kind(kind)?, name.to_string()))
                }
                _ => Err(CtlError::Invalid(
                    "arguments in resource/name form must have a single resource and name".into(),
                )),
            })
            .collect();
    }
    if args[1..].iter().any(|arg| arg.contains('/')) {
        return Err(CtlError::Invalid(
            "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'ctl get resource/<resource_name>' instead of 'ctl get resource resource/<resource_name>')".into(),
        ));
    }
    if args.len() == 1 {
        return Err(CtlError::Invalid(
            "resource(s) were provided, but no name was specified".into(),
        ));
    }
    let kinds: Vec<Kind> = first.split(',').map(parse_kind).collect::<Result<_, _>>()?;
    Ok(kinds
        .into_iter()
        .flat_map(|kind| args[1..].iter().map(move |name| (kind, name.clone())))
        .collect())
}

fn parse_kind(text: &str) -> Result<Kind, CtlError> {
    if text == "all" {
        return Err(CtlError::Invalid(
            "\"all\" stands for several kinds; name one kind here, e.g. deploy".into(),
        ));
    }
    Kind::parse(text).map_err(|e| CtlError::Invalid(e.to_string()))
}

/// kubectl's `RESOURCE... CHANGE...` arguments (`set image`, `label`,
/// `annotate`): the resources, then the changes (`KEY=VALUE`, `KEY-`).
///
/// # Errors
/// A resource after a change: `all resources must be specified before
/// image changes: deploy/api`.
fn split_changes<'a>(args: &'a [String], noun: &str) -> Result<(Vec<String>, Vec<&'a str>), CtlError> {
    let mut resources = Vec::new();
    let mut changes = Vec::new();
    for arg in args {
        if arg.contains('=') || arg.ends_with('-') {
            changes.push(arg.as_str());
        } else if changes.is_empty() {
            resources.push(arg.clone());
        } else {
            return Err(CtlError::Invalid(format!(
                "all resources must be specified before {noun} changes: {arg}"
            )));
        }
    }
    Ok((resources, changes))
}

/// The objects a command acts on: named (`KIND NAME...`, `KIND/NAME...`),
/// or, with a label `selector` or `all`, every object of one kind that
/// matches now.
async fn selected_targets(
    client: &mut Client,
    args: &[String],
    selector: Option<&str>,
    all: bool,
    namespace: &str,
) -> Result<Vec<(Kind, String)>, CtlError> {
    if selector.is_none() && !all {
        return named_targets(args);
    }
    let [kind] = args else {
        return Err(CtlError::Invalid(
            "name cannot be provided when a selector or --all is specified".into(),
        ));
    };
    let kind = parse_kind(kind)?;
    let found = list_objects(client, kind, namespace, selector.unwrap_or_default(), "").await?;
    if found.is_empty() {
        return Err(CtlError::Invalid("no matching resources found".into()));
    }
    Ok(found.iter().map(|o| (kind, o.name().to_string())).collect())
}

/// The pod a `logs` or `exec` argument names: `web` or `pod/web`, or one
/// of the pods of a Deployment or ReplicaSet (`deploy/web`), chosen as
/// kubectl does ([`pick_pod`]) and named on stderr when there were
/// several.
async fn target_pod(client: &Client, namespace: &str, arg: &str, io: &mut Io<'_>) -> Result<String, CtlError> {
    let Some((kind_arg, name)) = arg.split_once('/') else {
        return Ok(arg.to_string());
    };
    let kind = parse_kind(kind_arg)?;
    let mut client = client.clone();
    let selector = match kind {
        Kind::Pod => return Ok(name.to_string()),
        Kind::Deployment => {
            let object = get_object(&mut client, kind, namespace, name).await?;
            Deployment::try_from(object).ok().and_then(|d| d.spec?.selector)
        }
        Kind::ReplicaSet => {
            let object = get_object(&mut client, kind, namespace, name).await?;
            ReplicaSet::try_from(object).ok().and_then(|rs| rs.spec?.selector)
        }
        _ => {
            return Err(CtlError::Invalid(format!(
                "{kind_arg} is not a pod; logs and exec work on pods, deployments and replicasets"
            )))
        }
    };
    let selector = workload::selector_string(selector.as_ref());
    let pods: Vec<Pod> = list_objects(&mut client, Kind::Pod, namespace, &selector, "")
        .await?
        .into_iter()
        .filter_map(|o| Pod::try_from(o).ok())
        .collect();
    let chosen = pick_pod(&pods)
        .and_then(|p| p.metadata.as_ref())
        .map(|m| m.name.clone())
        .ok_or_else(|| CtlError::Invalid(format!("no pods found for {}/{name}", crate::output::kind_label(kind))))?;
    if pods.len() > 1 {
        writeln!(io.stderr, "Found {} pods, using pod/{chosen}", pods.len())?;
    }
    Ok(chosen)
}

/// The pod kubectl would pick among a workload's: not being deleted, then
/// bound to a node, running, ready, and the one running longest.
fn pick_pod(pods: &[Pod]) -> Option<&Pod> {
    let key = |pod: &Pod| {
        let meta = pod.metadata.clone().unwrap_or_default();
        let status = pod.status.clone().unwrap_or_default();
        let ready = status
            .conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "True");
        let created = meta.creation_timestamp.map_or((i64::MAX, 0), |t| (t.seconds, t.nanos));
        (
            meta.deletion_timestamp.is_none(),
            pod.spec.as_ref().is_some_and(|s| !s.node_name.is_empty()),
            status.phase == "Running",
            ready,
            std::cmp::Reverse(created),
            std::cmp::Reverse(meta.name),
        )
    };
    pods.iter().max_by_key(|pod| key(pod))
}

/// The namespace a command addresses: `-n`, else "default".
fn namespace_or_default(namespace: Option<&str>) -> String {
    namespace.unwrap_or("default").to_string()
}

/// Puts `-n` into a manifest's object, refusing a conflicting namespace as
/// kubectl does.
fn set_namespace(object: &mut Object, namespace: Option<&str>) -> Result<(), CtlError> {
    let Some(kind) = object.kind() else {
        return Ok(());
    };
    if !kind.namespaced() {
        return Ok(());
    }
    let meta = object.metadata_mut().expect("object has a resource");
    match namespace {
        Some(ns) if meta.namespace.is_empty() => meta.namespace = ns.to_string(),
        Some(ns) if meta.namespace != ns => {
            return Err(CtlError::Invalid(format!(
                "the namespace of {} {:?} is {:?}, which does not match -n {ns:?}",
                kind.name(),
                meta.name,
                meta.namespace
            )))
        }
        _ => {}
    }
    Ok(())
}

/// The one object `text` holds, decoded as manifests are, to replace
/// `original` (`ctl edit`, `ctl patch`): of the same kind and name, in
/// its namespace.
///
/// # Errors
/// Text that does not decode, more or fewer objects than one, or another
/// kind, name or namespace.
fn replacement(text: &str, source: &str, original: &Object) -> Result<Object, String> {
    let mut objects = bosun_proto::codec::decode_objects(text, source).map_err(|e| e.to_string())?;
    let count = objects.len();
    let mut object = objects
        .pop()
        .filter(|_| count == 1)
        .ok_or_else(|| format!("exactly one object is expected, found {count}"))?;
    if object.kind() != original.kind() || object.name() != original.name() {
        return Err(format!(
            "cannot change the kind or name of {}",
            crate::output::object_name(original)
        ));
    }
    match set_namespace(&mut object, Some(original.namespace()).filter(|ns| !ns.is_empty())) {
        Err(CtlError::Invalid(message)) => Err(message),
        Err(other) => Err(other.to_string()),
        Ok(()) => Ok(object),
    }
}

async fn get_object(client: &mut Client, kind: Kind, namespace: &str, name: &str) -> Result<Object, CtlError> {
    Ok(Api::dynamic(client, kind, namespace).get(name).await?)
}

/// The API of `object`'s kind in its namespace.
fn api_of(client: &Client, object: &Object) -> Result<Api<Object>, CtlError> {
    let kind = object
        .kind()
        .ok_or_else(|| CtlError::Invalid("the object is empty: it has no kind".into()))?;
    Ok(Api::dynamic(client, kind, object.namespace()))
}

async fn list_objects(
    client: &mut Client,
    kind: Kind,
    namespace: &str,
    selector: &str,
    field_selector: &str,
) -> Result<Vec<Object>, CtlError> {
    let params = ListParams::default().labels(selector).fields(field_selector);
    Ok(Api::dynamic(client, kind, namespace).list(&params).await?.items)
}

/// Reports a per-object failure and counts it; returns other errors.
fn per_object(io: &mut Io<'_>, error: CtlError, failed: &mut usize) -> Result<(), CtlError> {
    if error.is_per_object() {
        writeln!(io.stderr, "{error}")?;
        *failed += 1;
        Ok(())
    } else {
        Err(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bosun_proto::api::{ObjectMeta, PodCondition, PodSpec, PodStatus};

    fn pod(name: &str, node: &str, phase: &str, ready: bool, created: i64, deleting: bool) -> Pod {
        Pod {
            metadata: Some(ObjectMeta {
                name: name.into(),
                creation_timestamp: Some(prost_types::Timestamp {
                    seconds: created,
                    nanos: 0,
                }),
                deletion_timestamp: deleting.then_some(prost_types::Timestamp::default()),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                node_name: node.into(),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: phase.into(),
                conditions: vec![PodCondition {
                    r#type: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn all_stands_for_the_kinds_of_an_application() {
        let kinds = |arg: &str| -> Vec<Kind> { resolve(arg, &[]).unwrap().into_iter().map(|(k, _)| k).collect() };
        assert_eq!(kinds("all"), ALL);
        assert_eq!(
            kinds("cm,all,pods"),
            [
                Kind::ConfigMap,
                Kind::Pod,
                Kind::Service,
                Kind::Deployment,
                Kind::ReplicaSet
            ]
        );
        assert!(resolve("all", &["web".to_string()]).is_err(), "names need one kind");
    }

    #[test]
    fn the_pod_picked_for_logs_and_exec_is_the_most_alive_and_oldest() {
        let name = |pods: &[Pod]| pick_pod(pods).map(|p| p.metadata.clone().unwrap().name);
        let unbound = pod("unbound", "", "Pending", false, 1, false);
        let pending = pod("pending", "n1", "Pending", false, 1, false);
        let running = pod("running", "n1", "Running", false, 1, false);
        let ready_new = pod("ready-new", "n1", "Running", true, 20, false);
        let ready_old = pod("ready-old", "n1", "Running", true, 10, false);
        let leaving = pod("leaving", "n1", "Running", true, 5, true);
        assert_eq!(name(&[]), None);
        assert_eq!(name(&[unbound.clone(), pending.clone()]).as_deref(), Some("pending"));
        assert_eq!(name(&[pending.clone(), running.clone()]).as_deref(), Some("running"));
        assert_eq!(
            name(&[running.clone(), ready_new.clone()]).as_deref(),
            Some("ready-new")
        );
        assert_eq!(
            name(&[ready_new.clone(), ready_old.clone()]).as_deref(),
            Some("ready-old")
        );
        assert_eq!(
            name(&[leaving, running]).as_deref(),
            Some("running"),
            "not one being deleted"
        );
    }

    fn targets(args: &[&str]) -> Result<Vec<(Kind, String)>, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        named_targets(&args).map_err(|e| e.to_string())
    }

    #[test]
    fn names_objects_as_kubectl_does() {
        let web = (Kind::Deployment, "web".to_string());
        assert_eq!(targets(&["deploy/web"]), Ok(vec![web.clone()]));
        assert_eq!(targets(&["deployment", "web"]), Ok(vec![web.clone()]));
        assert_eq!(
            targets(&["deploy/web", "rs/web-1"]),
            Ok(vec![web, (Kind::ReplicaSet, "web-1".to_string())])
        );
        assert_eq!(
            targets(&["deploy"]),
            Err("error: resource(s) were provided, but no name was specified".into())
        );
        assert!(targets(&["deploy", "rs/web-1"])
            .unwrap_err()
            .contains("no need to specify a resource type"));
        assert!(targets(&["deploy/web", "api"])
            .unwrap_err()
            .contains("must have a single resource and name"));
        assert!(targets(&["widgets/x"]).unwrap_err().contains("unknown kind"));
    }
}
