//! `ctl label` and `ctl annotate`: add, change or remove an object's
//! labels or annotations, as kubectl does: `KEY=VALUE` sets, `KEY-`
//! removes, a value already set is only replaced with `--overwrite`, and
//! each object is edited against the version it was read at (a concurrent
//! writer makes ctl read and edit again).

use std::collections::HashMap;

use bosun_proto::api::Object;

use super::workload::{edit, expect_version, Edit};
use super::{namespace_or_default, per_object, selected_targets, split_changes};
use crate::cli::MetadataArgs;
use crate::output::object_name;
use crate::{Client, CtlError, Io};

/// Which map of the metadata a command edits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Labels,
    Annotations,
}

impl Field {
    fn noun(self) -> &'static str {
        match self {
            Field::Labels => "label",
            Field::Annotations => "annotation",
        }
    }
}

/// The changes asked for: keys to set and keys to remove.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    pub set: Vec<(String, String)>,
    pub remove: Vec<String>,
}

/// Splits the arguments into the objects (first) and the changes
/// (`KEY=VALUE`, `KEY-`, last), as kubectl does.
///
/// # Errors
/// No change, an object after a change, or a malformed change.
pub fn split(args: &[String], field: Field) -> Result<(Vec<String>, Changes), CtlError> {
    let (objects, changes) = split_changes(args, field.noun())?;
    if changes.is_empty() {
        return Err(CtlError::Invalid(format!(
            "at least one {} update is required",
            field.noun()
        )));
    }
    let mut parsed = Changes::default();
    for change in changes {
        if let Some((key, value)) = change.split_once('=') {
            if key.is_empty() {
                return Err(CtlError::Invalid(format!("invalid {} spec: {change}", field.noun())));
            }
            parsed.set.push((key.to_string(), value.to_string()));
        } else if let Some(key) = change.strip_suffix('-').filter(|k| !k.is_empty()) {
            parsed.remove.push(key.to_string());
        } else {
            return Err(CtlError::Invalid(format!("invalid {} spec: {change}", field.noun())));
        }
    }
    if let Some((key, _)) = parsed.set.iter().find(|(key, _)| parsed.remove.contains(key)) {
        return Err(CtlError::Invalid(format!(
            "can not both modify and remove the {} {key:?} in the same command",
            field.noun()
        )));
    }
    Ok((objects, parsed))
}

/// Applies `changes` to `map`: whether it changed.
///
/// # Errors
/// A key set to another value without `overwrite`.
pub fn apply(map: &mut HashMap<String, String>, changes: &Changes, overwrite: bool) -> Result<bool, CtlError> {
    if !overwrite {
        for (key, value) in &changes.set {
            if let Some(current) = map.get(key).filter(|current| *current != value) {
                return Err(CtlError::Invalid(format!(
                    "'{key}' already has a value ({current}), and --overwrite is false"
                )));
            }
        }
    }
    let before = map.clone();
    for key in &changes.remove {
        map.remove(key);
    }
    for (key, value) in &changes.set {
        map.insert(key.clone(), value.clone());
    }
    Ok(*map != before)
}

/// # Errors
/// Bad arguments, or objects that could not be edited (each reported,
/// then counted).
pub async fn run(
    client: &mut Client,
    args: &MetadataArgs,
    field: Field,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let (objects, changes) = split(&args.args, field)?;
    let namespace = namespace_or_default(namespace);
    let targets = selected_targets(client, &objects, args.selector.as_deref(), args.all, &namespace).await?;
    let mut failed = 0;
    for (kind, name) in &targets {
        let result = edit(client, *kind, &namespace, name, |object| {
            edit_object(object, field, &changes, args)
        })
        .await;
        match result {
            Ok((object, Edit::Write(verb) | Edit::Keep(verb))) => {
                writeln!(io.stdout, "{} {verb}", object_name(&object))?
            }
            Err(e) => per_object(io, e, &mut failed)?,
        }
    }
    if failed > 0 {
        return Err(CtlError::SomeFailed {
            failed,
            total: targets.len(),
        });
    }
    Ok(())
}

/// Edits one object's labels or annotations; the word to print.
fn edit_object(
    object: &mut Object,
    field: Field,
    changes: &Changes,
    args: &MetadataArgs,
) -> Result<Edit<&'static str>, CtlError> {
    expect_version(object, args.resource_version)?;
    let Some(meta) = object.metadata_mut() else {
        return Err(CtlError::Invalid("the object has no metadata".into()));
    };
    let map = match field {
        Field::Labels => &mut meta.labels,
        Field::Annotations => &mut meta.annotations,
    };
    let before = map.len();
    if !apply(map, changes, args.overwrite)? {
        return Ok(Edit::Keep(match field {
            Field::Labels => "not labeled",
            Field::Annotations => "annotated",
        }));
    }
    Ok(Edit::Write(match field {
        Field::Labels if map.len() < before && !args.overwrite => "unlabeled",
        Field::Labels => "labeled",
        Field::Annotations => "annotated",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_split_into_objects_then_changes() {
        let (objects, changes) = split(
            &strings(&["pods", "a", "b", "tier=db", "old-", "empty="]),
            Field::Labels,
        )
        .unwrap();
        assert_eq!(objects, ["pods", "a", "b"]);
        assert_eq!(
            changes.set,
            [
                ("tier".to_string(), "db".to_string()),
                ("empty".to_string(), String::new())
            ]
        );
        assert_eq!(changes.remove, ["old"]);
        for (bad, words) in [
            (vec!["pods", "a"], "at least one label update is required"),
            (vec!["pods", "a", "=x"], "invalid label spec: =x"),
            (vec!["pods", "a", "-"], "invalid label spec: -"),
            (vec!["pods", "a", "k=v", "k-"], "can not both modify and remove"),
        ] {
            let error = split(&strings(&bad), Field::Labels).unwrap_err().to_string();
            assert!(error.contains(words), "{bad:?}: {error}");
        }
    }

    #[test]
    fn values_change_only_with_overwrite_and_removals_always() {
        let changes = |args: &[&str]| split(&strings(&[&["pod/a"], args].concat()), Field::Labels).unwrap().1;
        let mut labels = HashMap::from([("app".to_string(), "web".to_string())]);
        assert!(
            !apply(&mut labels, &changes(&["app=web"]), false).unwrap(),
            "the same value is no change"
        );
        let error = apply(&mut labels, &changes(&["app=db"]), false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "error: 'app' already has a value (web), and --overwrite is false"
        );
        assert!(apply(&mut labels, &changes(&["app=db", "tier=x"]), true).unwrap());
        assert_eq!(labels.get("app").map(String::as_str), Some("db"));
        assert!(apply(&mut labels, &changes(&["tier-"]), false).unwrap());
        assert!(!apply(&mut labels, &changes(&["missing-"]), false).unwrap());
        assert_eq!(labels, HashMap::from([("app".to_string(), "db".to_string())]));
    }
}
