//! `ctl create -f` and `ctl apply -f`.
//!
//! `apply` creates missing objects and updates existing ones to match the
//! manifest. Like kubectl it records the applied manifest in the
//! `bosun.io/last-applied-configuration` annotation, so labels and
//! annotations added by others survive an apply while ones removed from the
//! manifest are removed; ownerReferences and finalizers set by controllers
//! are kept. The record is limited to [`LAST_APPLIED_LIMIT`] bytes, as
//! Kubernetes limits an object's annotations; bigger objects are for
//! `create` and `replace`.
//!
//! `apply --dry-run=client` writes nothing but says what apply would do,
//! deciding "unchanged" as `ctl diff` does ([`super::diff`]);
//! `--dry-run=server` sends the same writes as apply with `dryRun`, so the
//! masters check them as they would the real ones and store nothing.

use std::collections::{HashMap, HashSet};

use bosun_proto::api::Object;
use bosun_proto::client::PostParams;
use bosun_proto::codec;

use super::{api_of, get_object, per_object, set_namespace};
use crate::cli::{ApplyArgs, FileArgs};
use crate::manifest::{self, Manifest};
use crate::output::object_name;
use crate::{Client, CtlError, Io};

pub const LAST_APPLIED: &str = "bosun.io/last-applied-configuration";
/// The most bytes the last-applied record may have: Kubernetes' limit on
/// all of an object's annotations (256 KiB), which kubectl's apply meets.
pub const LAST_APPLIED_LIMIT: usize = 262_144;
/// Attempts when another writer changes the object between get and update.
const APPLY_ATTEMPTS: usize = 5;

pub(super) fn read(args: &FileArgs, namespace: Option<&str>, io: &mut Io<'_>) -> Result<Vec<Manifest>, CtlError> {
    let mut manifests = manifest::read_all(&args.files, io.stdin)?;
    for m in &mut manifests {
        set_namespace(&mut m.object, namespace)?;
        if let Some(warning) = crate::unserved::warning(&m.object) {
            writeln!(io.stderr, "{warning}")?;
        }
    }
    Ok(manifests)
}

pub(super) async fn create_one(client: &mut Client, object: Object) -> Result<Object, CtlError> {
    send_create(client, object, false).await
}

/// A create; with `dry_run` the masters check it and store nothing.
async fn send_create(client: &mut Client, object: Object, dry_run: bool) -> Result<Object, CtlError> {
    let api = api_of(client, &object)?;
    Ok(api.create(&PostParams { dry_run }, object).await?)
}

pub(super) async fn update_one(client: &mut Client, object: Object) -> Result<Object, CtlError> {
    send_update(client, object, false).await
}

/// An update; with `dry_run` the masters check it and store nothing.
async fn send_update(client: &mut Client, object: Object, dry_run: bool) -> Result<Object, CtlError> {
    let api = api_of(client, &object)?;
    Ok(api.update(&PostParams { dry_run }, object).await?)
}

/// # Errors
/// A bad manifest (nothing is sent), an unreachable cluster, or
/// [`CtlError::SomeFailed`] after reporting each failed object.
pub async fn create(
    client: &mut Client,
    args: &FileArgs,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let manifests = read(args, namespace, io)?;
    let total = manifests.len();
    let mut failed = 0;
    for m in manifests {
        match create_one(client, m.object).await {
            Ok(created) => writeln!(io.stdout, "{} created", object_name(&created))?,
            Err(e) => per_object(io, e, &mut failed)?,
        }
    }
    finish(failed, total)
}

/// # Errors
/// As [`create`].
pub async fn apply(
    client: &mut Client,
    args: &ApplyArgs,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let dry_run = match args.dry_run.as_str() {
        "none" => DryRun::None,
        "client" => DryRun::Client,
        "server" => DryRun::Server,
        other => {
            return Err(CtlError::Invalid(format!(
                "Invalid dry-run value ({other}). Must be \"none\", \"server\", or \"client\"."
            )))
        }
    };
    let manifests = read(&args.files, namespace, io)?;
    let total = manifests.len();
    let mut failed = 0;
    for m in manifests {
        let result = match dry_run {
            DryRun::Client => preview_one(client, m.object).await,
            DryRun::None => apply_one(client, m.object, false).await,
            DryRun::Server => apply_one(client, m.object, true).await,
        };
        let suffix = match dry_run {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        };
        match result {
            Ok((object, verb)) => writeln!(io.stdout, "{} {verb}{suffix}", object_name(&object))?,
            Err(e) => per_object(io, e, &mut failed)?,
        }
    }
    finish(failed, total)
}

/// kubectl's `--dry-run`: `client` decides in ctl and sends nothing;
/// `server` sends the writes as dry runs, so the masters default, validate
/// and check them against the stored objects, and store nothing.
#[derive(Clone, Copy)]
enum DryRun {
    None,
    Client,
    Server,
}

/// What [`apply_one`] would do, without writing.
async fn preview_one(client: &mut Client, desired: Object) -> Result<(Object, &'static str), CtlError> {
    let (live, predicted) = super::diff::preview(client, desired.clone()).await?;
    Ok(match live {
        None => (desired, "created"),
        Some(live) if super::diff::changes(&live, &predicted) => (live, "configured"),
        Some(live) => (live, "unchanged"),
    })
}

pub(super) fn finish(failed: usize, total: usize) -> Result<(), CtlError> {
    if failed > 0 {
        Err(CtlError::SomeFailed { failed, total })
    } else {
        Ok(())
    }
}

/// `desired` with its last-applied record.
///
/// # Errors
/// [`CtlError::TooBigForApply`] when the record would pass
/// [`LAST_APPLIED_LIMIT`].
pub(super) fn with_record(mut desired: Object) -> Result<Object, CtlError> {
    let record = codec::to_json_compact(&desired);
    if record.len() > LAST_APPLIED_LIMIT {
        return Err(CtlError::TooBigForApply {
            kind: desired.kind().map_or("object", |k| k.name()).to_string(),
            name: desired.name().to_string(),
            bytes: record.len(),
        });
    }
    desired
        .metadata_mut()
        .expect("manifests hold an object")
        .annotations
        .insert(LAST_APPLIED.to_string(), record);
    Ok(desired)
}

async fn apply_one(client: &mut Client, desired: Object, dry_run: bool) -> Result<(Object, &'static str), CtlError> {
    let desired = with_record(desired)?;
    let kind = desired.kind().expect("manifests hold an object");
    let namespace = desired.namespace().to_string();
    let name = desired.name().to_string();
    for _ in 0..APPLY_ATTEMPTS {
        let current = match get_object(client, kind, &namespace, &name).await {
            Ok(current) => current,
            Err(e) if e.code() == Some(tonic::Code::NotFound) => {
                match send_create(client, desired.clone(), dry_run).await {
                    Ok(created) => return Ok((created, "created")),
                    Err(e) if e.code() == Some(tonic::Code::AlreadyExists) => continue,
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        let merged = merge(&current, desired.clone());
        match send_update(client, merged, dry_run).await {
            Ok(updated) if updated.resource_version() == current.resource_version() => {
                return Ok((updated, "unchanged"))
            }
            Ok(updated) => return Ok((updated, "configured")),
            Err(e) if e.code() == Some(tonic::Code::Aborted) => continue,
            Err(e) => return Err(e),
        }
    }
    Err(CtlError::Invalid(format!(
        "{kind} {name:?} kept changing while being applied; try again"
    )))
}

/// The object to send: the manifest, plus what others own on the current
/// object (see the module docs), guarded by the current resourceVersion.
pub(super) fn merge(current: &Object, mut desired: Object) -> Object {
    let current_meta = current.metadata().cloned().unwrap_or_default();
    let previously_applied = current_meta
        .annotations
        .get(LAST_APPLIED)
        .and_then(|text| codec::decode_objects(text, "").ok())
        .and_then(|mut objects| objects.pop())
        .and_then(|object| object.metadata().cloned())
        .unwrap_or_default();
    let meta = desired.metadata_mut().expect("manifests hold an object");
    keep_foreign(&mut meta.labels, &current_meta.labels, &previously_applied.labels);
    keep_foreign(
        &mut meta.annotations,
        &current_meta.annotations,
        &previously_applied.annotations,
    );
    if meta.owner_references.is_empty() {
        meta.owner_references = current_meta.owner_references.clone();
    }
    if meta.finalizers.is_empty() {
        meta.finalizers = current_meta.finalizers.clone();
    }
    meta.resource_version = current_meta.resource_version;
    meta.uid = current_meta.uid;
    desired
}

/// Adds entries of `current` that the last apply did not set (so someone
/// else did) and that the manifest does not mention.
fn keep_foreign(
    desired: &mut HashMap<String, String>,
    current: &HashMap<String, String>,
    applied: &HashMap<String, String>,
) {
    let applied: HashSet<&String> = applied.keys().collect();
    for (key, value) in current {
        if !applied.contains(key) && !desired.contains_key(key) {
            desired.insert(key.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_foreign_labels_and_drops_removed_applied_ones() {
        let current = HashMap::from([
            ("mine".to_string(), "1".to_string()),
            ("removed".to_string(), "x".to_string()),
            ("controller".to_string(), "y".to_string()),
        ]);
        let applied = HashMap::from([
            ("mine".to_string(), "1".to_string()),
            ("removed".to_string(), "x".to_string()),
        ]);
        let mut desired = HashMap::from([("mine".to_string(), "2".to_string())]);
        keep_foreign(&mut desired, &current, &applied);
        assert_eq!(
            desired,
            HashMap::from([
                ("mine".to_string(), "2".to_string()),
                ("controller".to_string(), "y".to_string())
            ])
        );
    }
}
