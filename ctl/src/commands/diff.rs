//! `ctl diff -f`: what `ctl apply -f` would change, as a unified diff of
//! each stored object's YAML against the object apply would make. Also
//! what `ctl apply --dry-run=client` decides with.
//!
//! The object apply would make is predicted as kubectl's three-way merge
//! does it: the live object, with every field the manifest sets set to the
//! manifest's value, and every field the last apply set but the manifest
//! no longer has removed. Fields neither mentions (defaults the masters
//! filled in, fields others set) stay as they are, so applying an
//! unchanged manifest shows no diff. Both sides are compared without what
//! the masters own (status, resourceVersion, uid, creationTimestamp,
//! generation) and without the last-applied annotation.

use bosun_proto::api::Object;
use bosun_proto::codec;
use serde_json::{Map, Value};

use super::apply::{self, LAST_APPLIED};
use super::{get_object, set_namespace};
use crate::cli::FileArgs;
use crate::manifest;
use crate::{Client, CtlError, Io};

/// Metadata the masters set, left out of comparisons.
const SERVER_METADATA: [&str; 7] = [
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// Lines of context around each change, as `diff -u`.
const CONTEXT: usize = 3;

/// `ctl diff -f`: prints a diff per object that apply would change.
///
/// # Errors
/// [`CtlError::Exit`] with 1 when there are differences; any other error
/// wrapped in [`CtlError::DiffFailed`], so it exits with 2 as kubectl's.
pub async fn run(
    client: &mut Client,
    args: &FileArgs,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    match differences(client, args, namespace, io).await {
        Ok(0) => Ok(()),
        Ok(_) => Err(CtlError::Exit(1)),
        Err(e) => Err(CtlError::DiffFailed(Box::new(e))),
    }
}

/// Prints the diffs; the number of objects that differ.
async fn differences(
    client: &mut Client,
    args: &FileArgs,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<usize, CtlError> {
    let mut manifests = manifest::read_all(&args.files, io.stdin)?;
    for m in &mut manifests {
        set_namespace(&mut m.object, namespace)?;
        // As the masters would place it, for the file name of a new object.
        if m.object.kind().is_some_and(|k| k.namespaced()) && m.object.namespace().is_empty() {
            m.object.metadata_mut().expect("manifests hold an object").namespace = "default".into();
        }
    }
    let mut differing = 0;
    for m in manifests {
        let (live, predicted) = preview(client, m.object).await?;
        let before = live
            .as_ref()
            .map(|live| yaml(&comparable(&codec::object_to_value(live))));
        let after = yaml(&predicted);
        let before = before.unwrap_or_default();
        if before == after {
            continue;
        }
        differing += 1;
        let file = file_name(&predicted);
        write!(
            io.stdout,
            "{}",
            unified(&before, &after, &format!("LIVE/{file}"), &format!("MERGED/{file}"))
        )?;
    }
    Ok(differing)
}

/// The stored object (`None` when there is none) and the object an apply
/// of `desired` would make, ready to compare (see [`comparable`]).
///
/// # Errors
/// A manifest too big for apply, an unreachable cluster, a refused read.
pub(super) async fn preview(client: &mut Client, desired: Object) -> Result<(Option<Object>, Value), CtlError> {
    let desired = apply::with_record(desired)?;
    let kind = desired.kind().expect("manifests hold an object");
    let live = match get_object(client, kind, desired.namespace(), desired.name()).await {
        Ok(live) => live,
        Err(e) if e.code() == Some(tonic::Code::NotFound) => {
            return Ok((None, comparable(&codec::object_to_value(&desired))));
        }
        Err(e) => return Err(e),
    };
    let sent = apply::merge(&live, desired);
    let last_applied = live
        .metadata()
        .and_then(|m| m.annotations.get(LAST_APPLIED))
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    let predicted = three_way(
        &codec::object_to_value(&live),
        &codec::object_to_value(&sent),
        last_applied.as_ref(),
    );
    Ok((Some(live), comparable(&predicted)))
}

/// Whether applying `predicted` (from [`preview`]) would change `live`.
pub(super) fn changes(live: &Object, predicted: &Value) -> bool {
    comparable(&codec::object_to_value(live)) != *predicted
}

/// kubectl's three-way merge of JSON values: `live` with what `desired`
/// sets, less what `applied` (the last apply) set and `desired` drops.
/// Lists of the same length merge element by element (so defaults inside
/// containers stay); other lists are replaced.
fn three_way(live: &Value, desired: &Value, applied: Option<&Value>) -> Value {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => {
            let mut merged = live.clone();
            for (key, value) in desired {
                let before = live.get(key).unwrap_or(&Value::Null);
                let applied = applied.and_then(|a| a.get(key));
                merged.insert(key.clone(), three_way(before, value, applied));
            }
            if let Some(Value::Object(applied)) = applied {
                for key in applied.keys() {
                    if !desired.contains_key(key) {
                        merged.remove(key);
                    }
                }
            }
            Value::Object(merged)
        }
        (Value::Array(live), Value::Array(desired)) if live.len() == desired.len() => Value::Array(
            live.iter()
                .zip(desired)
                .enumerate()
                .map(|(i, (live, desired))| three_way(live, desired, applied.and_then(|a| a.get(i))))
                .collect(),
        ),
        _ => desired.clone(),
    }
}

/// `value` without status, server-set metadata and the last-applied
/// annotation, so two sides compare on what a user writes.
fn comparable(value: &Value) -> Value {
    let mut value = value.clone();
    let Value::Object(object) = &mut value else {
        return value;
    };
    object.remove("status");
    if let Some(Value::Object(meta)) = object.get_mut("metadata") {
        for key in SERVER_METADATA {
            meta.remove(key);
        }
        let empty = match meta.get_mut("annotations") {
            Some(Value::Object(annotations)) => {
                annotations.remove(LAST_APPLIED);
                annotations.is_empty()
            }
            _ => false,
        };
        if empty {
            meta.remove("annotations");
        }
    }
    value
}

fn yaml(value: &Value) -> String {
    serde_yaml::to_string(value).unwrap_or_default()
}

/// kubectl's file name for an object in a diff: `apps.v1.Deployment.default.web`.
fn file_name(value: &Value) -> String {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_string();
    let meta = value.get("metadata").cloned().unwrap_or(Value::Object(Map::new()));
    let parts = [
        text(value.get("apiVersion")).replace('/', "."),
        text(value.get("kind")),
        text(meta.get("namespace")),
        text(meta.get("name")),
    ];
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(".")
}

/// `diff -u -N` of two texts, with its header lines.
fn unified(before: &str, after: &str, left: &str, right: &str) -> String {
    let diff = similar::TextDiff::from_lines(before, after);
    let body = diff
        .unified_diff()
        .context_radius(CONTEXT)
        .header(left, right)
        .to_string();
    format!("diff -u -N {left} {right}\n{body}")
}

#[cfg(test)]
mod tests {
    use super::*;

    use serde_json::json;

    #[test]
    fn an_unchanged_manifest_predicts_the_live_object() {
        let live = json!({
            "kind": "Service",
            "metadata": {"name": "web", "resourceVersion": "7", "uid": "u"},
            "spec": {"clusterIP": "10.43.0.9", "ports": [{"port": 80, "protocol": "TCP"}]},
            "status": {"loadBalancer": {}},
        });
        let manifest = json!({"kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}});
        let predicted = three_way(&live, &manifest, Some(&manifest));
        assert_eq!(comparable(&predicted), comparable(&live), "defaults stay");
    }

    #[test]
    fn fields_dropped_from_the_manifest_are_removed_and_changed_ones_set() {
        let live = json!({"data": {"a": "1", "b": "2"}, "metadata": {"labels": {"x": "y"}}});
        let applied = json!({"data": {"a": "1", "b": "2"}});
        let manifest = json!({"data": {"a": "changed"}});
        let predicted = three_way(&live, &manifest, Some(&applied));
        assert_eq!(
            predicted,
            json!({"data": {"a": "changed"}, "metadata": {"labels": {"x": "y"}}})
        );
    }

    #[test]
    fn lists_of_another_length_are_replaced() {
        let live = json!({"ports": [{"port": 80, "protocol": "TCP"}]});
        let manifest = json!({"ports": [{"port": 80}, {"port": 443}]});
        assert_eq!(three_way(&live, &manifest, None), manifest);
    }

    #[test]
    fn comparisons_leave_out_what_the_masters_own() {
        let value = json!({
            "metadata": {
                "name": "x",
                "resourceVersion": "3",
                "uid": "u",
                "creationTimestamp": "2026-01-01T00:00:00Z",
                "generation": 2,
                "annotations": {LAST_APPLIED: "{}"},
            },
            "status": {"phase": "Running"},
        });
        assert_eq!(comparable(&value), json!({"metadata": {"name": "x"}}));
    }

    #[test]
    fn diffs_are_unified_with_kubectls_file_names() {
        let value =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"}});
        assert_eq!(file_name(&value), "apps.v1.Deployment.shop.web");
        let text = unified("a: 1\nb: 2\n", "a: 1\nb: 3\n", "LIVE/x", "MERGED/x");
        assert_eq!(
            text,
            "diff -u -N LIVE/x MERGED/x\n--- LIVE/x\n+++ MERGED/x\n@@ -1,2 +1,2 @@\n a: 1\n-b: 2\n+b: 3\n"
        );
    }
}
