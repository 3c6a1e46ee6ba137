//! `ctl describe`: the metadata, then everything else the object holds;
//! Deployments and ReplicaSets ([`super::describe_workload`]) and pods
//! ([`super::describe_pod`]) in kubectl's layout, each with its events.

use std::collections::HashMap;

use bosun_proto::api::object::Resource;
use bosun_proto::api::{Event, Node, Object, Pod};
use bosun_proto::quantity::{format_bytes, format_cpu_millis};
use bosun_proto::resources::{self, Usage};
use bosun_proto::{codec, Kind};
use serde_json::Value;

use super::{describe_pod, describe_workload, get_object, list_objects, namespace_or_default, per_object, resolve};
use crate::cli::DescribeArgs;
use crate::{tabwriter, Client, CtlError, Io};

/// # Errors
/// As `ctl get`.
pub async fn run(
    client: &mut Client,
    args: &DescribeArgs,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let mut failed = 0;
    let mut objects = Vec::new();
    for (kind, names) in resolve(&args.kind, &args.names)? {
        if names.is_empty() {
            let ns = if args.all_namespaces {
                String::new()
            } else {
                namespace_or_default(namespace)
            };
            objects.extend(list_objects(client, kind, &ns, args.selector.as_deref().unwrap_or(""), "").await?);
        }
        for name in names {
            match get_object(client, kind, &namespace_or_default(namespace), &name).await {
                Ok(object) => objects.push(object),
                Err(e) => per_object(io, e, &mut failed)?,
            }
        }
    }
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            writeln!(io.stdout)?;
        }
        match &object.resource {
            Some(Resource::Deployment(d)) => write!(io.stdout, "{}", describe_workload::deployment(client, d).await?)?,
            Some(Resource::ReplicaSet(rs)) => {
                write!(io.stdout, "{}", describe_workload::replica_set(client, rs).await?)?
            }
            Some(Resource::Pod(pod)) => {
                // The events align with the pod's last lines, as in kubectl.
                let events = events(client, object).await?;
                write!(io.stdout, "{}", describe_pod::describe(pod, &events))?;
                continue;
            }
            _ => write!(io.stdout, "{}", describe(object))?,
        }
        match object.kind() {
            Some(Kind::Node) => write!(io.stdout, "{}", node_sections(client, object).await?)?,
            Some(Kind::Deployment | Kind::ReplicaSet) => {}
            _ => continue,
        }
        let events = events(client, object).await?;
        write!(io.stdout, "{}", tabwriter::align(&events_text(&events)))?;
    }
    if failed > 0 {
        return Err(CtlError::SomeFailed {
            failed,
            total: failed + objects.len(),
        });
    }
    Ok(())
}

fn pairs(map: &HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".to_string()
    } else {
        pairs.join("\n              ")
    }
}

/// kubectl-style description of any object.
pub fn describe(object: &Object) -> String {
    let meta = object.metadata().cloned().unwrap_or_default();
    let mut out = String::new();
    let mut line = |label: &str, value: String| out.push_str(&format!("{label:<14}{value}\n"));
    line("Name:", meta.name.clone());
    if object.kind().is_some_and(|k| k.namespaced()) {
        line("Namespace:", meta.namespace.clone());
    }
    line("Kind:", object.kind().map_or(String::new(), |k| k.name().to_string()));
    line("Labels:", pairs(&meta.labels));
    let annotations: HashMap<String, String> = meta
        .annotations
        .iter()
        .filter(|(k, _)| k.as_str() != super::apply::LAST_APPLIED)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    line("Annotations:", pairs(&annotations));
    line("UID:", meta.uid.clone());
    line(
        "Created:",
        meta.creation_timestamp.map(|t| t.to_string()).unwrap_or_default(),
    );
    line("Generation:", meta.generation.to_string());
    line("Revision:", meta.resource_version.to_string());
    if let Some(deleting) = meta.deletion_timestamp {
        line(
            "Deleting:",
            format!("since {deleting} (finalizers: {})", meta.finalizers.join(", ")),
        );
    }
    for owner in &meta.owner_references {
        line("Owned by:", format!("{}/{}", owner.kind, owner.name));
    }
    let mut value = codec::object_to_value(object);
    if let Value::Object(map) = &mut value {
        map.remove("apiVersion");
        map.remove("kind");
        map.remove("metadata");
        for (key, section) in map.iter() {
            out.push_str(&format!("{}:\n", title(key)));
            let text = serde_yaml::to_string(section).unwrap_or_default();
            for text_line in text.lines() {
                out.push_str(&format!("  {text_line}\n"));
            }
        }
    }
    out
}

/// `binaryData` → `Binary Data`, `spec` → `Spec`.
fn title(key: &str) -> String {
    let mut out = String::new();
    for (i, c) in key.chars().enumerate() {
        if i == 0 {
            out.extend(c.to_uppercase());
        } else if c.is_uppercase() {
            out.push(' ');
            out.push(c);
        } else {
            out.push(c);
        }
    }
    out
}

/// A table with left-aligned columns, indented under a section title.
fn table(title: &str, header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut all = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    all.extend(rows);
    let widths: Vec<usize> = (0..header.len())
        .map(|i| all.iter().map(|r| r.get(i).map_or(0, String::len)).max().unwrap_or(0))
        .collect();
    let mut out = format!("{title}\n");
    for row in &all {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(&format!("  {}\n", cells.join("   ").trim_end()));
    }
    out
}

fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "0%".into();
    }
    format!("{}%", part * 100 / whole)
}

/// kubectl's "Non-terminated Pods" and "Allocated resources" of a node.
async fn node_sections(client: &mut Client, object: &Object) -> Result<String, CtlError> {
    let node = Node::try_from(object.clone()).map_err(|e| CtlError::Invalid(e.to_string()))?;
    let allocatable = resources::node_allocatable(&node);
    let selector = format!("spec.nodeName={}", object.name());
    let pods: Vec<Pod> = list_objects(client, Kind::Pod, "", "", &selector)
        .await?
        .into_iter()
        .filter_map(|o| Pod::try_from(o).ok())
        .filter(|p| !resources::is_terminal(p))
        .collect();
    let (mut requests, mut limits) = (Usage::default(), Usage::default());
    let rows = pods
        .iter()
        .map(|pod| {
            let spec = pod.spec.clone().unwrap_or_default();
            let (req, lim) = (resources::pod_requests(&spec), resources::pod_limits(&spec));
            requests += req;
            limits += lim;
            let meta = pod.metadata.clone().unwrap_or_default();
            vec![
                meta.namespace,
                meta.name,
                format!(
                    "{} ({})",
                    format_cpu_millis(req.cpu_millis),
                    percent(req.cpu_millis, allocatable.cpu_millis)
                ),
                format!(
                    "{} ({})",
                    format_cpu_millis(lim.cpu_millis),
                    percent(lim.cpu_millis, allocatable.cpu_millis)
                ),
                format!(
                    "{} ({})",
                    format_bytes(req.memory_bytes),
                    percent(req.memory_bytes, allocatable.memory_bytes)
                ),
                format!(
                    "{} ({})",
                    format_bytes(lim.memory_bytes),
                    percent(lim.memory_bytes, allocatable.memory_bytes)
                ),
            ]
        })
        .collect();
    let mut out = table(
        &format!("Non-terminated Pods:   ({} in total)", pods.len()),
        &[
            "Namespace",
            "Name",
            "CPU Requests",
            "CPU Limits",
            "Memory Requests",
            "Memory Limits",
        ],
        rows,
    );
    out.push_str(&table(
        "Allocated resources:",
        &["Resource", "Requests", "Limits", "Allocatable"],
        vec![
            vec![
                "cpu".into(),
                format!(
                    "{} ({})",
                    format_cpu_millis(requests.cpu_millis),
                    percent(requests.cpu_millis, allocatable.cpu_millis)
                ),
                format!(
                    "{} ({})",
                    format_cpu_millis(limits.cpu_millis),
                    percent(limits.cpu_millis, allocatable.cpu_millis)
                ),
                format_cpu_millis(allocatable.cpu_millis),
            ],
            vec![
                "memory".into(),
                format!(
                    "{} ({})",
                    format_bytes(requests.memory_bytes),
                    percent(requests.memory_bytes, allocatable.memory_bytes)
                ),
                format!(
                    "{} ({})",
                    format_bytes(limits.memory_bytes),
                    percent(limits.memory_bytes, allocatable.memory_bytes)
                ),
                format_bytes(allocatable.memory_bytes),
            ],
            vec![
                "pods".into(),
                format!("{} ({})", requests.pods, percent(requests.pods, allocatable.pods)),
                String::new(),
                allocatable.pods.to_string(),
            ],
        ],
    ));
    Ok(out)
}

/// The object's events, oldest first.
async fn events(client: &mut Client, object: &Object) -> Result<Vec<Event>, CtlError> {
    let meta = object.metadata().cloned().unwrap_or_default();
    let selector = format!("involvedObject.uid={}", meta.uid);
    let mut events: Vec<Event> = list_objects(client, Kind::Event, &meta.namespace, "", &selector)
        .await?
        .into_iter()
        .filter_map(|o| Event::try_from(o).ok())
        .collect();
    events.sort_by_key(super::get::event_time);
    Ok(events)
}

/// kubectl's `DescribeEvents`, cells separated by tabs for
/// [`tabwriter::align`]: `Events:\t<none>` joins the alignment of the
/// lines above it, a table starts its own.
pub(super) fn events_text(events: &[Event]) -> String {
    if events.is_empty() {
        return "Events:\t<none>\n".into();
    }
    let mut w = String::from("Events:\n  Type\tReason\tAge\tFrom\tMessage\n  ----\t------\t----\t----\t-------\n");
    for e in events {
        let last = e.last_timestamp.or(e.first_timestamp);
        // kubectl's "10s (x5 over 2m)" for an event seen several times.
        let mut age = crate::output::age(last.as_ref());
        if e.count > 1 {
            let first = e.first_timestamp.or(e.last_timestamp);
            age = format!("{age} (x{} over {})", e.count, crate::output::age(first.as_ref()));
        }
        let from = e.source.as_ref().map(|s| s.component.clone()).unwrap_or_default();
        w.push_str(&format!(
            "  {}\t{}\t{age}\t{from}\t{}\n",
            e.r#type,
            e.reason,
            e.message.trim()
        ));
    }
    w
}
