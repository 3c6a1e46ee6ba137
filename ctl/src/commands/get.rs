//! `ctl get`.

use bosun_proto::api::Object;
use bosun_proto::codec;
use bosun_proto::Kind;
use serde_json::{json, Value};

use super::{get_object, list_objects, namespace_or_default, per_object, resolve};
use crate::cli::{GetArgs, Output};
use crate::output::{object_name, Table};
use crate::{Client, CtlError, Io};

/// # Errors
/// An unknown kind, an unreachable cluster, or a failed get for a named
/// object (reported, then counted).
pub async fn run(
    client: &mut Client,
    args: &GetArgs,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let targets = resolve(&args.kind, &args.names)?;
    let several_kinds = targets.len() > 1;
    let list_namespace = if args.all_namespaces {
        String::new()
    } else {
        namespace_or_default(namespace)
    };
    let mut groups: Vec<(Kind, Vec<Object>)> = Vec::new();
    let mut failed = 0;
    let mut requested = 0;
    for (kind, names) in targets {
        let mut objects = Vec::new();
        if names.is_empty() {
            let selector = args.selector.clone().unwrap_or_default();
            let fields = args.field_selector.clone().unwrap_or_default();
            objects = list_objects(client, kind, &list_namespace, &selector, &fields).await?;
        } else {
            let get_namespace = namespace_or_default(namespace);
            for name in names {
                requested += 1;
                match get_object(client, kind, &get_namespace, &name).await {
                    Ok(object) => objects.push(object),
                    Err(e) => per_object(io, e, &mut failed)?,
                }
            }
        }
        if kind == Kind::Event {
            // kubectl lists events by time.
            objects.sort_by_key(|o| {
                bosun_proto::api::Event::try_from(o.clone())
                    .map(|e| event_time(&e))
                    .unwrap_or_default()
            });
        }
        groups.push((kind, objects));
    }
    let all: Vec<Object> = groups.iter().flat_map(|(_, objects)| objects.iter().cloned()).collect();
    match args.output {
        Output::Yaml | Output::Json => {
            let single = all.len() == 1 && requested == 1;
            let value = if single {
                codec::object_to_value(&all[0])
            } else {
                json!({"apiVersion": "v1", "kind": "List", "items": all.iter().map(codec::object_to_value).collect::<Vec<Value>>()})
            };
            let text = if args.output == Output::Yaml {
                serde_yaml::to_string(&value).unwrap_or_default()
            } else {
                format!("{}\n", serde_json::to_string_pretty(&value).unwrap_or_default())
            };
            write!(io.stdout, "{text}")?;
        }
        Output::Name => {
            for object in &all {
                writeln!(io.stdout, "{}", object_name(object))?;
            }
        }
        Output::Table | Output::Wide => {
            if all.is_empty() && failed == 0 {
                let scope = if args.all_namespaces || groups.iter().all(|(k, _)| !k.namespaced()) {
                    String::new()
                } else {
                    format!(" in {list_namespace} namespace")
                };
                writeln!(io.stderr, "No resources found{scope}.")?;
            }
            let mut first = true;
            for (kind, objects) in groups.iter().filter(|(_, objects)| !objects.is_empty()) {
                if !first {
                    writeln!(io.stdout)?;
                }
                first = false;
                let mut shown = objects.clone();
                if several_kinds {
                    // kubectl prefixes names with the kind when mixing kinds.
                    for object in &mut shown {
                        let name = object_name(object);
                        if let Some(meta) = object.metadata_mut() {
                            meta.name = name;
                        }
                    }
                }
                let table = Table::of(*kind, &shown, args.output == Output::Wide, args.all_namespaces);
                write!(io.stdout, "{}", table.render())?;
            }
        }
    }
    if failed > 0 {
        return Err(CtlError::SomeFailed {
            failed,
            total: requested,
        });
    }
    Ok(())
}

/// When an event last happened, for sorting: seconds and nanoseconds.
pub fn event_time(event: &bosun_proto::api::Event) -> (i64, i32) {
    let time = event
        .last_timestamp
        .or(event.first_timestamp)
        .or(event.metadata.as_ref().and_then(|m| m.creation_timestamp));
    time.map_or((0, 0), |t| (t.seconds, t.nanos))
}
