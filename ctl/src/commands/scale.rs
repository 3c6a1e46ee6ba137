//! `ctl scale`: sets `spec.replicas` of Deployments and ReplicaSets, with
//! kubectl's optional preconditions (`--current-replicas`,
//! `--resource-version`).

use bosun_proto::api::object::Resource;
use bosun_proto::api::Object;
use bosun_proto::Kind;

use super::workload::{edit, expect_version, resource, Edit};
use super::{named_targets, namespace_or_default};
use crate::cli::ScaleArgs;
use crate::output::object_name;
use crate::{Client, CtlError, Io};

/// # Errors
/// Bad flags, a kind without replicas, a failed precondition, or a failed
/// read or write.
pub async fn run(
    client: &mut Client,
    args: &ScaleArgs,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let replicas = match args.replicas.map(i32::try_from) {
        Some(Ok(n)) if n >= 0 => n,
        _ => {
            return Err(CtlError::Invalid(
                "The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0".into(),
            ))
        }
    };
    if args.current_replicas < -1 {
        return Err(CtlError::Invalid(
            "The --current-replicas must specify an integer of -1 or greater".into(),
        ));
    }
    let targets = named_targets(&args.resources)?;
    if args.resource_version.is_some() && targets.len() > 1 {
        return Err(CtlError::Invalid(
            "cannot use --resource-version with multiple resources".into(),
        ));
    }
    let namespace = namespace_or_default(namespace);
    let precondition = Precondition {
        replicas: (args.current_replicas >= 0).then_some(args.current_replicas),
        resource_version: args.resource_version,
    };
    for (kind, name) in targets {
        if !matches!(kind, Kind::Deployment | Kind::ReplicaSet) {
            return Err(CtlError::Invalid(format!(
                "{} {name:?} cannot be scaled: only deployments and replicasets have replicas",
                resource(kind)
            )));
        }
        let (scaled, _) = edit(client, kind, &namespace, &name, |object| {
            precondition.check(object)?;
            set_replicas(object, replicas);
            Ok(Edit::Write(()))
        })
        .await?;
        writeln!(io.stdout, "{} scaled", object_name(&scaled))?;
    }
    Ok(())
}

/// What must hold before scaling.
struct Precondition {
    replicas: Option<i64>,
    resource_version: Option<u64>,
}

impl Precondition {
    /// kubectl's `Expected replicas to be 2, was 3`.
    fn check(&self, object: &Object) -> Result<(), CtlError> {
        if let Some(expected) = self.replicas {
            let actual = replicas(object).unwrap_or(1);
            if i64::from(actual) != expected {
                return Err(CtlError::Invalid(format!(
                    "Expected replicas to be {expected}, was {actual}"
                )));
            }
        }
        expect_version(object, self.resource_version)
    }
}

/// `spec.replicas` of a Deployment or ReplicaSet (`None`: unset).
fn replicas(object: &Object) -> Option<i32> {
    match &object.resource {
        Some(Resource::Deployment(d)) => d.spec.as_ref()?.replicas,
        Some(Resource::ReplicaSet(rs)) => rs.spec.as_ref()?.replicas,
        _ => None,
    }
}

fn set_replicas(object: &mut Object, replicas: i32) {
    match &mut object.resource {
        Some(Resource::Deployment(d)) => d.spec.get_or_insert_with(Default::default).replicas = Some(replicas),
        Some(Resource::ReplicaSet(rs)) => rs.spec.get_or_insert_with(Default::default).replicas = Some(replicas),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::api::{Deployment, DeploymentSpec, ObjectMeta};

    fn deployment(replicas: i32, resource_version: u64) -> Object {
        Deployment {
            metadata: Some(ObjectMeta {
                name: "web".into(),
                resource_version,
                ..Default::default()
            }),
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..Default::default()
            }),
            ..Default::default()
        }
        .into()
    }

    #[test]
    fn preconditions_fail_with_kubectls_words() {
        let object = deployment(3, 7);
        let wrong_count = Precondition {
            replicas: Some(2),
            resource_version: None,
        };
        assert_eq!(
            wrong_count.check(&object).unwrap_err().to_string(),
            "error: Expected replicas to be 2, was 3"
        );
        let wrong_version = Precondition {
            replicas: Some(3),
            resource_version: Some(6),
        };
        assert_eq!(
            wrong_version.check(&object).unwrap_err().to_string(),
            "error: Expected resource version to be 6, was 7"
        );
        let right = Precondition {
            replicas: Some(3),
            resource_version: Some(7),
        };
        assert!(right.check(&object).is_ok());
    }

    #[test]
    fn sets_the_replicas_of_the_spec() {
        let mut object = deployment(3, 1);
        set_replicas(&mut object, 5);
        assert_eq!(replicas(&object), Some(5));
    }
}
