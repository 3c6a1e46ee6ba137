//! `ctl patch KIND NAME -p PATCH`, as kubectl's, for scripts:
//!
//! - `--type strategic` (the default): a JSON merge patch, except that
//!   lists of named things merge element by element on their key
//!   (containers, env and volumes by `name`, volumeMounts by `mountPath`,
//!   container ports by `containerPort`, service ports by `port`,
//!   conditions by `type`), and an element with `"$patch": "delete"`
//!   removes its match. So `{"spec":{"template":{"spec":{"containers":
//!   [{"name":"app","image":"x:2"}]}}}}` changes one image and keeps the
//!   rest of the container.
//! - `--type merge`: RFC 7386; lists are replaced whole, `null` removes.
//! - `--type json`: RFC 6902 operations `add`, `remove`, `replace`,
//!   `test`, `move` and `copy` on JSON pointers.
//!
//! The patch applies to the object as `-o json` shows it; the result is
//! decoded by the same codec as manifests and written back against the
//! version it was made from (a concurrent change makes ctl patch again).

use bosun_proto::api::Object;
use bosun_proto::codec;
use serde_json::{Map, Value};

use super::workload::{edit, Edit};
use super::{named_targets, namespace_or_default, replacement};
use crate::cli::PatchArgs;
use crate::output::object_name;
use crate::{Client, CtlError, Io};

/// # Errors
/// A patch that is not JSON (or YAML), does not apply, or makes an
/// invalid object; a missing object; a refused update.
pub async fn run(
    client: &mut Client,
    args: &PatchArgs,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let patch: Value = serde_yaml::from_str(&args.patch)
        .map_err(|e| CtlError::Invalid(format!("unable to parse {:?}: {e}", args.patch)))?;
    let namespace = namespace_or_default(namespace);
    for (kind, name) in named_targets(&args.objects)? {
        let (object, outcome) = edit(client, kind, &namespace, &name, |object| {
            let before = codec::object_to_value(object);
            let after = apply(&args.patch_type, before.clone(), &patch).map_err(CtlError::Invalid)?;
            if after == before {
                return Ok(Edit::Keep("patched (no change)"));
            }
            let patched = replacement(&after.to_string(), "the patched object", object).map_err(CtlError::Invalid)?;
            *object = keep_version(patched, object);
            Ok(Edit::Write("patched"))
        })
        .await?;
        let (Edit::Write(verb) | Edit::Keep(verb)) = outcome;
        writeln!(io.stdout, "{} {verb}", object_name(&object))?;
    }
    Ok(())
}

/// `patched` written against the version `original` was read at.
fn keep_version(mut patched: Object, original: &Object) -> Object {
    if let Some(meta) = patched.metadata_mut() {
        meta.resource_version = original.resource_version();
    }
    patched
}

/// `target` with `patch` applied as `kind` says.
///
/// # Errors
/// An unknown type, or a patch that does not apply.
pub fn apply(kind: &str, target: Value, patch: &Value) -> Result<Value, String> {
    match kind {
        "strategic" => Ok(merge(target, patch, true, "")),
        "merge" => Ok(merge(target, patch, false, "")),
        "json" => json_patch(target, patch),
        other => Err(format!("--type must be strategic, merge or json, not {other:?}")),
    }
}

/// RFC 7386, and with `strategic` the merging of keyed lists. `field` is
/// the name `target` has in its parent.
fn merge(target: Value, patch: &Value, strategic: bool, field: &str) -> Value {
    match (target, patch) {
        (Value::Object(mut target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                    continue;
                }
                let current = target.remove(key).unwrap_or(Value::Null);
                target.insert(key.clone(), merge(current, value, strategic, key));
            }
            Value::Object(target)
        }
        (Value::Array(target), Value::Array(patch)) if strategic => match merge_key(field, &target, patch) {
            Some(key) => merge_list(target, patch, key),
            None => Value::Array(patch.clone()),
        },
        (_, Value::Object(patch)) => merge(
            Value::Object(Map::new()),
            &Value::Object(patch.clone()),
            strategic,
            field,
        ),
        (_, patch) => patch.clone(),
    }
}

/// The key a list named `field` merges on, when all its elements have it.
fn merge_key(field: &str, target: &[Value], patch: &[Value]) -> Option<&'static str> {
    let key = match field {
        "containers" | "initContainers" | "env" | "volumes" | "imagePullSecrets" => "name",
        "volumeMounts" => "mountPath",
        "conditions" => "type",
        "ports" if target.iter().chain(patch).any(|p| p.get("containerPort").is_some()) => "containerPort",
        "ports" => "port",
        _ => return None,
    };
    target
        .iter()
        .chain(patch)
        .all(|item| item.get(key).is_some())
        .then_some(key)
}

fn merge_list(mut target: Vec<Value>, patch: &[Value], key: &str) -> Value {
    for item in patch {
        let position = target.iter().position(|t| t.get(key) == item.get(key));
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (position, delete) {
            (Some(at), true) => {
                target.remove(at);
            }
            (None, true) => {}
            (Some(at), false) => {
                let current = std::mem::take(&mut target[at]);
                target[at] = merge(current, item, true, "");
            }
            (None, false) => target.push(item.clone()),
        }
    }
    Value::Array(target)
}

/// RFC 6902.
fn json_patch(mut target: Value, patch: &Value) -> Result<Value, String> {
    let operations = patch.as_array().ok_or("a json patch is a list of operations")?;
    for operation in operations {
        let field = |name: &str| {
            operation
                .get(name)
                .ok_or_else(|| format!("operation {operation} has no {name:?}"))
        };
        let op = field("op")?.as_str().unwrap_or_default();
        let path = field("path")?.as_str().ok_or("\"path\" is a string")?;
        match op {
            "add" => add(&mut target, path, field("value")?.clone())?,
            "remove" => {
                remove(&mut target, path)?;
            }
            "replace" => {
                remove(&mut target, path)?;
                add(&mut target, path, field("value")?.clone())?;
            }
            "test" => {
                if target.pointer(path) != Some(field("value")?) {
                    return Err(format!("test of {path} failed"));
                }
            }
            "move" | "copy" => {
                let from = field("from")?.as_str().ok_or("\"from\" is a string")?;
                let value = if op == "move" {
                    remove(&mut target, from)?
                } else {
                    target
                        .pointer(from)
                        .cloned()
                        .ok_or_else(|| format!("{from} is not found"))?
                };
                add(&mut target, path, value)?;
            }
            other => return Err(format!("unknown operation {other:?}")),
        }
    }
    Ok(target)
}

/// The parent of `path` and its last token, unescaped.
fn parent<'a>(target: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| format!("{path:?} is not a JSON pointer"))?;
    let last = last.replace("~1", "/").replace("~0", "~");
    let parent = target
        .pointer_mut(parent)
        .ok_or_else(|| format!("{path} is not found"))?;
    Ok((parent, last))
}

fn add(target: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let (parent, last) = parent(target, path)?;
    match parent {
        Value::Object(map) => {
            map.insert(last, value);
            Ok(())
        }
        Value::Array(items) if last == "-" => {
            items.push(value);
            Ok(())
        }
        Value::Array(items) => {
            let at: usize = last.parse().map_err(|_| format!("{path}: {last:?} is not an index"))?;
            if at > items.len() {
                return Err(format!("{path}: index {at} is out of range"));
            }
            items.insert(at, value);
            Ok(())
        }
        _ => Err(format!("{path}: its parent is not an object or a list")),
    }
}

fn remove(target: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = parent(target, path)?;
    let removed = match parent {
        Value::Object(map) => map.remove(&last),
        Value::Array(items) => last
            .parse::<usize>()
            .ok()
            .filter(|at| *at < items.len())
            .map(|at| items.remove(at)),
        _ => None,
    };
    removed.ok_or_else(|| format!("{path} is not found"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment() -> Value {
        json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "app", "image": "x:1", "command": ["run"], "ports": [{"containerPort": 80}],
             "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
            {"name": "side", "image": "y:1"}
        ]}}}})
    }

    #[test]
    fn strategic_patches_merge_named_lists_element_by_element() {
        let patch = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "app", "image": "x:2", "env": [{"name": "B", "value": "two"}, {"name": "C", "value": "3"}]},
            {"name": "side", "$patch": "delete"}
        ]}}}});
        let patched = apply("strategic", deployment(), &patch).unwrap();
        assert_eq!(patched["spec"]["replicas"], 3);
        let containers = patched["spec"]["template"]["spec"]["containers"].as_array().unwrap();
        assert_eq!(containers.len(), 1, "side was deleted");
        let app = &containers[0];
        assert_eq!(
            (&app["image"], &app["command"][0]),
            (&json!("x:2"), &json!("run")),
            "the rest kept"
        );
        assert_eq!(app["ports"], json!([{"containerPort": 80}]));
        assert_eq!(
            app["env"],
            json!([{"name": "A", "value": "1"}, {"name": "B", "value": "two"}, {"name": "C", "value": "3"}])
        );
        // Lists without a merge key are replaced.
        let args = apply("strategic", json!({"args": ["a", "b"]}), &json!({"args": ["c"]})).unwrap();
        assert_eq!(args, json!({"args": ["c"]}));
    }

    #[test]
    fn merge_patches_replace_lists_and_null_removes() {
        let patch = json!({"spec": {"replicas": null, "template": {"spec": {"containers": [{"name": "only"}]}}}});
        let patched = apply("merge", deployment(), &patch).unwrap();
        assert!(patched["spec"].get("replicas").is_none());
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"],
            json!([{"name": "only"}])
        );
    }

    #[test]
    fn json_patches_follow_rfc_6902() {
        let ops = json!([
            {"op": "test", "path": "/spec/replicas", "value": 1},
            {"op": "replace", "path": "/spec/replicas", "value": 5},
            {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "Z", "value": "z"}},
            {"op": "remove", "path": "/spec/template/spec/containers/1"},
            {"op": "copy", "from": "/spec/replicas", "path": "/spec/copied"},
            {"op": "move", "from": "/spec/copied", "path": "/spec/moved"}
        ]);
        let patched = apply("json", deployment(), &ops).unwrap();
        assert_eq!(patched["spec"]["replicas"], 5);
        assert_eq!(patched["spec"]["moved"], 5);
        assert!(patched["spec"].get("copied").is_none());
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            patched["spec"]["template"]["spec"]["containers"][0]["env"][2]["name"],
            "Z"
        );
        for (bad, words) in [
            (
                json!([{"op": "test", "path": "/spec/replicas", "value": 2}]),
                "test of /spec/replicas failed",
            ),
            (
                json!([{"op": "remove", "path": "/spec/nothing"}]),
                "/spec/nothing is not found",
            ),
            (
                json!([{"op": "add", "path": "/spec/template/spec/containers/9", "value": 1}]),
                "out of range",
            ),
            (json!([{"op": "jump", "path": "/spec"}]), "unknown operation"),
            (json!({"op": "add"}), "a list of operations"),
        ] {
            let error = apply("json", deployment(), &bad).unwrap_err();
            assert!(error.contains(words), "{bad}: {error}");
        }
        assert!(apply("xml", deployment(), &json!({})).is_err());
    }
}
