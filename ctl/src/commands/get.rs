//! `ctl get`, and `ctl get --watch`: the objects, then a line (or a
//! document) for each change as it happens.

use bosun_proto::api::Object;
use bosun_proto::codec;
use bosun_proto::Kind;
use serde_json::{json, Value};

use super::follow::{follow, Change};
use super::{get_object, list_objects, namespace_or_default, per_object, resolve};
use crate::cli::{GetArgs, Output};
use crate::jsonpath::Template;
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
    let format = Format::of(&args.output)?;
    let sort_key = args.sort_by.as_deref().map(sort_template).transpose()?;
    if args.watch || args.watch_only {
        return watch(client, args, format, sort_key.as_ref(), namespace, io).await;
    }
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
        sort(kind, sort_key.as_ref(), &mut objects);
        groups.push((kind, objects));
    }
    let all: Vec<Object> = groups.iter().flat_map(|(_, objects)| objects.iter().cloned()).collect();
    let single = all.len() == 1 && requested == 1;
    let value = || {
        if single {
            codec::object_to_value(&all[0])
        } else {
            json!({"apiVersion": "v1", "kind": "List", "items": all.iter().map(codec::object_to_value).collect::<Vec<Value>>()})
        }
    };
    if all.is_empty() && failed > 0 {
        // Every named object failed: the errors are the output, not an
        // empty List as well (kubectl prints nothing else).
        return Err(CtlError::SomeFailed {
            failed,
            total: requested,
        });
    }
    match &format {
        Format::JsonPath(template) => write!(io.stdout, "{}", template.render(&value()))?,
        Format::Columns(columns) => write!(
            io.stdout,
            "{}",
            columns_table(columns, &all).render_aligned(&mut Vec::new(), !args.no_headers)
        )?,
        Format::Yaml => write!(io.stdout, "{}", serde_yaml::to_string(&value()).unwrap_or_default())?,
        Format::Json => writeln!(
            io.stdout,
            "{}",
            serde_json::to_string_pretty(&value()).unwrap_or_default()
        )?,
        Format::Name => {
            for object in &all {
                writeln!(io.stdout, "{}", object_name(object))?;
            }
        }
        Format::Table { wide } => {
            if all.is_empty() && failed == 0 {
                let namespaced = groups.iter().any(|(k, _)| k.namespaced());
                no_resources(io, namespaced && !args.all_namespaces, &list_namespace)?;
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
                let table = Table::of(*kind, &shown, *wide, args.all_namespaces).with_labels(
                    &shown,
                    &args.label_columns,
                    args.show_labels,
                );
                write!(io.stdout, "{}", table.render_aligned(&mut Vec::new(), !args.no_headers))?;
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

/// `ctl api-resources`: the kinds served, in kubectl's columns.
///
/// # Errors
/// A failed write.
pub fn api_resources(io: &mut Io<'_>) -> Result<(), CtlError> {
    let mut kinds = Kind::ALL.to_vec();
    kinds.sort_by_key(|k| k.plural());
    let rows = kinds
        .iter()
        .map(|k| {
            vec![
                k.plural().to_string(),
                k.short_names().join(","),
                k.api_version().to_string(),
                k.namespaced().to_string(),
                k.name().to_string(),
            ]
        })
        .collect();
    let headers = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"].map(String::from);
    write!(io.stdout, "{}", Table::new(headers.to_vec(), rows).render())?;
    Ok(())
}

/// "No resources found", with the namespace looked in when there is one.
fn no_resources(io: &mut Io<'_>, in_namespace: bool, namespace: &str) -> Result<(), CtlError> {
    let scope = if in_namespace {
        format!(" in {namespace} namespace")
    } else {
        String::new()
    };
    writeln!(io.stderr, "No resources found{scope}.")?;
    Ok(())
}

/// `-o`, parsed once: how objects print.
enum Format {
    Table { wide: bool },
    Yaml,
    Json,
    Name,
    JsonPath(Template),
    Columns(Vec<(String, Template)>),
}

impl Format {
    fn of(output: &Output) -> Result<Format, CtlError> {
        Ok(match output {
            Output::Table => Format::Table { wide: false },
            Output::Wide => Format::Table { wide: true },
            Output::Yaml => Format::Yaml,
            Output::Json => Format::Json,
            Output::Name => Format::Name,
            Output::JsonPath(text) => Format::JsonPath(jsonpath(text)?),
            Output::CustomColumns(spec) => Format::Columns(custom_columns(spec)?),
        })
    }
}

/// By `--sort-by` when given; else kubectl lists events by time, and other
/// kinds come as the masters list them.
fn sort(kind: Kind, key: Option<&Template>, objects: &mut [Object]) {
    if let Some(key) = key {
        sort_by(key, objects);
    } else if kind == Kind::Event {
        objects.sort_by_key(|o| {
            bosun_proto::api::Event::try_from(o.clone())
                .map(|e| event_time(&e))
                .unwrap_or_default()
        });
    }
}

/// `-o custom-columns=HEADER:.json.path,...`, parsed.
fn custom_columns(spec: &str) -> Result<Vec<(String, Template)>, CtlError> {
    spec.split(',')
        .map(|column| {
            let (header, path) = column.split_once(':').ok_or_else(|| {
                CtlError::Invalid(format!(
                    "unexpected custom-columns spec: {column}, expected <header>:<json-path-expr>"
                ))
            })?;
            Ok((header.to_string(), sort_template(path)?))
        })
        .collect()
}

/// A table with a row per object and a column per custom column; a
/// missing value shows as `<none>`, as kubectl's.
fn columns_table(columns: &[(String, Template)], objects: &[Object]) -> Table {
    let headers = columns.iter().map(|(header, _)| header.clone()).collect();
    let rows = objects
        .iter()
        .map(|object| {
            let value = codec::object_to_value(object);
            columns
                .iter()
                .map(|(_, path)| {
                    let text = path.render(&value);
                    if text.is_empty() {
                        "<none>".to_string()
                    } else {
                        text
                    }
                })
                .collect()
        })
        .collect();
    Table::new(headers, rows)
}

/// `--sort-by`'s path, with or without kubectl's braces.
fn sort_template(path: &str) -> Result<Template, CtlError> {
    let path = path.trim();
    if path.starts_with('{') {
        jsonpath(path)
    } else {
        jsonpath(&format!("{{{path}}}"))
    }
}

/// Sorts `objects` by the value `key` renders for each: as numbers when
/// both are numbers, else as text (RFC 3339 times sort as text); objects
/// without the field come first, as in kubectl.
fn sort_by(key: &Template, objects: &mut [Object]) {
    objects.sort_by_cached_key(|o| {
        let text = key.render(&codec::object_to_value(o));
        let number = text.parse::<f64>().ok().filter(|n| n.is_finite());
        (!text.is_empty(), number.map(ordered), text)
    });
}

/// An `f64` as an integer that sorts the same way (for finite values).
fn ordered(n: f64) -> i64 {
    let bits = n.to_bits() as i64;
    if bits < 0 {
        bits ^ i64::MAX
    } else {
        bits
    }
}

/// `ctl get --watch`: one kind, all of it or one named object; the objects
/// as they are (not with `--watch-only`), then each change, until
/// interrupted. A deleted object is shown in its last state.
async fn watch(
    client: &mut Client,
    args: &GetArgs,
    format: Format,
    sort_key: Option<&Template>,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let targets = resolve(&args.kind, &args.names)?;
    let [(kind, names)] = targets.as_slice() else {
        return Err(CtlError::Invalid("you may only specify a single resource type".into()));
    };
    let kind = *kind;
    let mut fields: Vec<String> = args.field_selector.iter().filter(|f| !f.is_empty()).cloned().collect();
    let name = match names.as_slice() {
        [] => None,
        [name] => Some(name),
        _ => {
            return Err(CtlError::Invalid(format!(
                "watch is only supported on individual resources and resource collections, but {} resources were found",
                names.len()
            )))
        }
    };
    let watch_namespace = if args.all_namespaces && name.is_none() {
        String::new()
    } else {
        namespace_or_default(namespace)
    };
    if let Some(name) = name {
        fields.push(format!("metadata.name={name}"));
    }
    let selector = args.selector.clone().unwrap_or_default();
    let mut follower = follow(client, kind, &watch_namespace, &selector, &fields.join(","));
    let mut objects = match name {
        // A read, so a missing object gets the server's words; changes are
        // followed from its version.
        Some(name) => {
            let object = get_object(client, kind, &watch_namespace, name).await?;
            follower = follower.since(object.resource_version());
            vec![object]
        }
        None => follower.list().await?,
    };
    sort(kind, sort_key, &mut objects);
    let mut printer = WatchPrinter {
        kind,
        format,
        with_namespace: args.all_namespaces,
        label_columns: args.label_columns.clone(),
        show_labels: args.show_labels,
        widths: Vec::new(),
        header_due: !args.no_headers,
    };
    if !args.watch_only {
        if objects.is_empty() && matches!(printer.format, Format::Table { .. }) {
            no_resources(io, kind.namespaced() && !args.all_namespaces, &watch_namespace)?;
        }
        printer.print(&objects, io)?;
    }
    loop {
        match follower.next().await? {
            Change::Event(_, object) => printer.print(&[*object], io)?,
            Change::Relisted(objects) => printer.print(&objects, io)?,
        }
    }
}

/// Prints objects as `ctl get --watch` shows them: table rows under one
/// header and lined up with the rows before them, or one YAML or JSON
/// document per object, or names.
struct WatchPrinter {
    kind: Kind,
    format: Format,
    with_namespace: bool,
    label_columns: Vec<String>,
    show_labels: bool,
    widths: Vec<usize>,
    /// Whether the next table rows come after the header: the first
    /// rows, unless `--no-headers`.
    header_due: bool,
}

impl WatchPrinter {
    fn print(&mut self, objects: &[Object], io: &mut Io<'_>) -> Result<(), CtlError> {
        if objects.is_empty() {
            return Ok(());
        }
        let table = match &self.format {
            Format::Table { wide } => Some(Table::of(self.kind, objects, *wide, self.with_namespace).with_labels(
                objects,
                &self.label_columns,
                self.show_labels,
            )),
            Format::Columns(columns) => Some(columns_table(columns, objects)),
            _ => None,
        };
        if let Some(table) = table {
            let text = table.render_aligned(&mut self.widths, self.header_due);
            write!(io.stdout, "{text}")?;
            self.header_due = false;
        }
        for object in objects {
            match &self.format {
                Format::Table { .. } | Format::Columns(_) => {}
                Format::Yaml => {
                    let text = serde_yaml::to_string(&codec::object_to_value(object)).unwrap_or_default();
                    write!(io.stdout, "---\n{text}")?;
                }
                Format::Json => {
                    let text = serde_json::to_string_pretty(&codec::object_to_value(object)).unwrap_or_default();
                    writeln!(io.stdout, "{text}")?;
                }
                Format::Name => writeln!(io.stdout, "{}", object_name(object))?,
                Format::JsonPath(template) => {
                    write!(io.stdout, "{}", template.render(&codec::object_to_value(object)))?
                }
            }
        }
        io.stdout.flush()?;
        Ok(())
    }
}

/// A `-o jsonpath=` template, parsed.
fn jsonpath(text: &str) -> Result<Template, CtlError> {
    Template::parse(text).map_err(|e| CtlError::Invalid(format!("error parsing jsonpath {text}, {e}")))
}

/// When an event last happened, for sorting: seconds and nanoseconds.
pub fn event_time(event: &bosun_proto::api::Event) -> (i64, i32) {
    let time = event
        .last_timestamp
        .or(event.first_timestamp)
        .or(event.metadata.as_ref().and_then(|m| m.creation_timestamp));
    time.map_or((0, 0), |t| (t.seconds, t.nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, restarts: Option<i32>) -> Object {
        use bosun_proto::api::{ContainerStatus, ObjectMeta, Pod, PodStatus};
        Pod {
            metadata: Some(ObjectMeta {
                name: name.into(),
                ..Default::default()
            }),
            status: restarts.map(|restart_count| PodStatus {
                container_statuses: vec![ContainerStatus {
                    restart_count,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
        .into()
    }

    #[test]
    fn sort_by_orders_numbers_as_numbers_and_missing_values_first() {
        let mut pods = vec![
            pod("ten", Some(10)),
            pod("none", None),
            pod("two", Some(2)),
            pod("zero", Some(0)),
        ];
        let key = sort_template(".status.containerStatuses[0].restartCount").unwrap();
        sort_by(&key, &mut pods);
        let names: Vec<&str> = pods.iter().map(Object::name).collect();
        // restartCount 0 is omitted from JSON like any default, so it sorts
        // with the missing ones, by name.
        assert_eq!(names, ["none", "zero", "two", "ten"]);
        let key = sort_template("{.metadata.name}").unwrap();
        sort_by(&key, &mut pods);
        let names: Vec<&str> = pods.iter().map(Object::name).collect();
        assert_eq!(names, ["none", "ten", "two", "zero"]);
        let mut numbers = [3.5, -2.0, -10.0, 0.0, 7.0];
        numbers.sort_by_key(|n| ordered(*n));
        assert_eq!(numbers, [-10.0, -2.0, 0.0, 3.5, 7.0]);
    }
}
