//! `ctl replace -f`: each stored object becomes the manifest's, whole
//! (kubectl's PUT), written against the version stored, so a change made
//! meanwhile is a conflict rather than lost. A missing object is an error:
//! replace creates nothing. With `--force` the object is deleted (and
//! waited for) and created again from the manifest, for changes an update
//! may not make.

use bosun_proto::api::Object;
use bosun_proto::client::{Api, DeleteParams};

use super::apply::{create_one, finish, read, update_one};
use super::{get_object, per_object};
use crate::cli::ReplaceArgs;
use crate::output::object_name;
use crate::{Client, CtlError, Io};

/// How often `--force` checks whether the deleted object is gone.
const GONE_POLL: std::time::Duration = std::time::Duration::from_millis(250);
/// How long `--force` waits for the old object to go, beyond its grace
/// period: a finalizer or a pod on an unreachable node can hold it.
const GONE_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// # Errors
/// A bad manifest (nothing is sent), an unreachable cluster, or
/// [`CtlError::SomeFailed`] after reporting each failed object.
pub async fn run(
    client: &mut Client,
    args: &ReplaceArgs,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let manifests = read(&args.files, namespace, io)?;
    let total = manifests.len();
    let mut failed = 0;
    for m in manifests {
        let result = if args.force {
            recreate(client, m.object, args.grace_period, io).await
        } else {
            replace(client, m.object).await
        };
        match result {
            Ok(object) => writeln!(io.stdout, "{} replaced", object_name(&object))?,
            Err(e) => per_object(io, e, &mut failed)?,
        }
    }
    finish(failed, total)
}

/// Updates the stored object to be `desired`, conditional on the version
/// `desired` names, else on the one stored now.
async fn replace(client: &mut Client, mut desired: Object) -> Result<Object, CtlError> {
    let kind = desired.kind().expect("manifests hold an object");
    let current = get_object(client, kind, desired.namespace(), desired.name()).await?;
    let meta = desired.metadata_mut().expect("manifests hold an object");
    if meta.resource_version == 0 {
        meta.resource_version = current.resource_version();
    }
    update_one(client, desired).await
}

/// Deletes the stored object, waits until it is gone, and creates
/// `desired`.
async fn recreate(
    client: &mut Client,
    desired: Object,
    grace_period: i64,
    io: &mut Io<'_>,
) -> Result<Object, CtlError> {
    let kind = desired.kind().expect("manifests hold an object");
    let (namespace, name) = (desired.namespace().to_string(), desired.name().to_string());
    let params = DeleteParams {
        grace_period_seconds: (grace_period >= 0).then_some(grace_period),
        ..Default::default()
    };
    let deleted = Api::dynamic(client, kind, &namespace).delete(&name, &params).await;
    match deleted.map_err(CtlError::from) {
        Ok(_) => writeln!(io.stdout, "{} {name:?} deleted", crate::output::kind_label(kind))?,
        // kubectl creates a missing object with --force.
        Err(e) if e.code() == Some(tonic::Code::NotFound) => {}
        Err(e) => return Err(e),
    }
    let waited = GONE_WAIT + std::time::Duration::from_secs(u64::try_from(grace_period).unwrap_or(30));
    let deadline = tokio::time::Instant::now() + waited;
    loop {
        match get_object(client, kind, &namespace, &name).await {
            Err(e) if e.code() == Some(tonic::Code::NotFound) => break,
            Err(e) => return Err(e),
            Ok(_) if tokio::time::Instant::now() >= deadline => {
                return Err(CtlError::Invalid(format!(
                    "{} {name:?} was not gone {}s after its deletion (a finalizer, or a pod on an unreachable node, may hold it); nothing was created",
                    crate::output::kind_label(kind),
                    waited.as_secs()
                )))
            }
            Ok(_) => tokio::time::sleep(GONE_POLL).await,
        }
    }
    let mut desired = desired;
    let meta = desired.metadata_mut().expect("manifests hold an object");
    meta.resource_version = 0;
    meta.uid.clear();
    create_one(client, desired).await
}
