//! `ctl drain`: cordon a node, then delete its pods and wait until they
//! are gone. As kubectl, it first checks every pod and deletes none when
//! one cannot go: a pod no controller owns would not come back (unless
//! `--force`), nor would an emptyDir's data (unless
//! `--delete-emptydir-data`). The node stays cordoned either way.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bosun_proto::api::{Object, Pod};
use bosun_proto::client::{Api, DeleteParams};
use bosun_proto::Kind;

use super::list_objects;
use super::node::set_cordon;
use crate::cli::DrainArgs;
use crate::{Client, CtlError, Io};

/// How often drain checks whether the pods are gone.
const POLL: Duration = Duration::from_millis(250);

/// kubectl's reasons for refusing a pod, in the order it checks them,
/// and its warnings when told to go ahead.
const LOCAL_STORAGE: &str = "Pods with local storage (use --delete-emptydir-data to override)";
const LOCAL_STORAGE_WARNING: &str = "deleting Pods with local storage";
const UNMANAGED: &str = "Pods declare no controller (use --force to override)";
const UNMANAGED_WARNING: &str = "deleting Pods that declare no controller";

/// What the overrides allow.
#[derive(Clone, Copy, Debug, Default)]
pub struct Overrides {
    /// `--force`: delete pods no controller owns.
    pub force: bool,
    /// `--delete-emptydir-data`: delete pods with emptyDir volumes.
    pub delete_emptydir_data: bool,
}

/// What drain will do with a node's pods: each problem and warning is
/// kubectl's message with the pods it is about (`default/bare, ...`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The pods to delete, as `(namespace, name, uid)`.
    pub delete: Vec<(String, String, String)>,
    /// Why pods cannot be deleted; when any, none is.
    pub refusals: Vec<String>,
    /// What the overrides let through.
    pub warnings: Vec<String>,
}

/// Sorts the node's pods into deletable and refused, as kubectl's drain
/// filters do: a finished pod (Succeeded, Failed) always goes; otherwise
/// one with an emptyDir volume needs `delete_emptydir_data` and one
/// without a controlling owner needs `force`. The first check that
/// refuses a pod is the one reported.
pub fn plan(pods: &[Pod], overrides: Overrides) -> Plan {
    // (reason, pods) in kubectl's order of checks.
    let mut refused: [(&str, Vec<String>); 2] = [(LOCAL_STORAGE, Vec::new()), (UNMANAGED, Vec::new())];
    let mut warned: [(&str, Vec<String>); 2] = [(LOCAL_STORAGE_WARNING, Vec::new()), (UNMANAGED_WARNING, Vec::new())];
    let mut delete = Vec::new();
    for pod in pods {
        let meta = pod.metadata.clone().unwrap_or_default();
        let key = format!("{}/{}", meta.namespace, meta.name);
        let phase = pod.status.as_ref().map(|s| s.phase.as_str()).unwrap_or_default();
        let finished = phase == "Succeeded" || phase == "Failed";
        let local_storage = pod.spec.as_ref().is_some_and(|spec| {
            spec.volumes
                .iter()
                .any(|v| matches!(v.source, Some(bosun_proto::api::volume::Source::EmptyDir(_))))
        });
        let controlled = bosun_proto::workload::controller_of(&meta).is_some();
        let checks = [
            (local_storage, overrides.delete_emptydir_data),
            (!controlled, overrides.force),
        ];
        let mut refusal = None;
        for (index, (applies, overridden)) in checks.into_iter().enumerate() {
            if finished || !applies {
                continue;
            }
            if overridden {
                warned[index].1.push(key.clone());
            } else {
                refusal = Some(index);
                break;
            }
        }
        match refusal {
            Some(index) => refused[index].1.push(key),
            None => delete.push((meta.namespace, meta.name, meta.uid)),
        }
    }
    let describe = |groups: [(&str, Vec<String>); 2]| -> Vec<String> {
        groups
            .into_iter()
            .filter(|(_, pods)| !pods.is_empty())
            .map(|(reason, pods)| format!("{reason}: {}", pods.join(", ")))
            .collect()
    };
    Plan {
        delete,
        refusals: describe(refused),
        warnings: describe(warned),
    }
}

/// Cordons the node, deletes its pods (gracefully), and waits until they
/// are gone.
///
/// # Errors
/// [`CtlError::DrainRefused`] when pods cannot go (nothing is deleted), a
/// failed deletion (unless `--ignore-errors`) or the timeout.
pub async fn drain(client: &Client, args: &DrainArgs, io: &mut Io<'_>) -> Result<(), CtlError> {
    set_cordon(client, &args.node, true, io).await?;
    let started = Instant::now();
    let selector = format!("spec.nodeName={}", args.node);
    let mut client_mut = client.clone();
    let pods: Vec<Pod> = list_objects(&mut client_mut, Kind::Pod, "", "", &selector)
        .await?
        .into_iter()
        .filter_map(|o| Pod::try_from(o).ok())
        .collect();
    let overrides = Overrides {
        force: args.force,
        delete_emptydir_data: args.delete_emptydir_data,
    };
    let plan = plan(&pods, overrides);
    if !plan.refusals.is_empty() {
        return Err(CtlError::DrainRefused {
            problems: plan.refusals,
        });
    }
    if !plan.warnings.is_empty() {
        writeln!(io.stderr, "Warning: {}", plan.warnings.join("; "))?;
    }
    // -1, kubectl's default, leaves each pod its own grace period.
    let grace_period = args.grace_period.filter(|seconds| *seconds >= 0);
    let mut deleted = HashSet::new();
    for (namespace, name, uid) in plan.delete {
        writeln!(io.stdout, "evicting pod {namespace}/{name}")?;
        let params = DeleteParams {
            grace_period_seconds: grace_period,
            ..Default::default()
        };
        let result = Api::<Pod>::namespaced(client, &namespace).delete(&name, &params).await;
        match result {
            Ok(_) => {
                deleted.insert(uid);
            }
            Err(e) if e.code() == Some(tonic::Code::NotFound) => {}
            Err(e) if args.ignore_errors => {
                writeln!(io.stderr, "error: cannot evict pod {name:?}: {e}; continuing")?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    wait_until_gone(&mut client_mut, args, &selector, &deleted, started).await?;
    writeln!(io.stdout, "node/{} drained", args.node)?;
    Ok(())
}

/// Waits until none of the `deleted` pods (by uid) is left on the node;
/// pods their controllers make anew, on this node or another, are not
/// waited for, as kubectl's drain does not.
async fn wait_until_gone(
    client: &mut Client,
    args: &DrainArgs,
    selector: &str,
    deleted: &HashSet<String>,
    started: Instant,
) -> Result<(), CtlError> {
    loop {
        let on_node: Vec<Object> = list_objects(client, Kind::Pod, "", "", selector).await?;
        let left: Vec<&Object> = on_node
            .iter()
            .filter(|o| o.metadata().is_some_and(|m| deleted.contains(&m.uid)))
            .collect();
        if left.is_empty() {
            return Ok(());
        }
        if !args.timeout.is_zero() && started.elapsed() > args.timeout {
            return Err(CtlError::Invalid(format!(
                "drain timed out after {:?} with {} pod(s) still on node {:?}",
                args.timeout,
                left.len(),
                args.node
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use bosun_proto::api::volume::Source;
    use bosun_proto::api::{EmptyDirVolumeSource, ObjectMeta, OwnerReference, PodSpec, PodStatus, Volume};

    fn pod(name: &str, controlled: bool, empty_dir: bool, phase: &str) -> Pod {
        Pod {
            metadata: Some(ObjectMeta {
                name: name.into(),
                namespace: "default".into(),
                owner_references: controlled
                    .then(|| OwnerReference {
                        kind: "ReplicaSet".into(),
                        name: "web".into(),
                        controller: Some(true),
                        ..Default::default()
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                volumes: empty_dir
                    .then(|| Volume {
                        name: "scratch".into(),
                        source: Some(Source::EmptyDir(EmptyDirVolumeSource::default())),
                    })
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: phase.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn keys(plan: &Plan) -> Vec<String> {
        plan.delete.iter().map(|(ns, name, _)| format!("{ns}/{name}")).collect()
    }

    #[test]
    fn pods_without_a_controller_or_with_emptydir_data_are_refused() {
        let pods = [
            pod("replicated", true, false, "Running"),
            pod("bare", false, false, "Running"),
            pod("other-bare", false, false, "Pending"),
            pod("scratch", true, true, "Running"),
            pod("bare-scratch", false, true, "Running"),
        ];
        let plan = plan(&pods, Overrides::default());
        assert_eq!(
            plan.refusals,
            [
                "Pods with local storage (use --delete-emptydir-data to override): default/scratch, default/bare-scratch",
                "Pods declare no controller (use --force to override): default/bare, default/other-bare",
            ]
        );
        assert!(plan.warnings.is_empty());
    }

    #[test]
    fn the_overrides_let_pods_through_with_a_warning() {
        let pods = [
            pod("replicated", true, false, "Running"),
            pod("bare", false, false, "Running"),
            pod("bare-scratch", false, true, "Running"),
        ];
        let forced = plan(
            &pods,
            Overrides {
                force: true,
                ..Default::default()
            },
        );
        assert_eq!(
            forced.refusals,
            ["Pods with local storage (use --delete-emptydir-data to override): default/bare-scratch"]
        );
        let both = plan(
            &pods,
            Overrides {
                force: true,
                delete_emptydir_data: true,
            },
        );
        assert!(both.refusals.is_empty(), "{both:?}");
        assert_eq!(
            keys(&both),
            ["default/replicated", "default/bare", "default/bare-scratch"]
        );
        assert_eq!(
            both.warnings,
            [
                "deleting Pods with local storage: default/bare-scratch",
                "deleting Pods that declare no controller: default/bare, default/bare-scratch",
            ]
        );
    }

    #[test]
    fn finished_pods_always_go() {
        let pods = [
            pod("done", false, true, "Succeeded"),
            pod("failed", false, false, "Failed"),
        ];
        let plan = plan(&pods, Overrides::default());
        assert!(plan.refusals.is_empty() && plan.warnings.is_empty(), "{plan:?}");
        assert_eq!(keys(&plan), ["default/done", "default/failed"]);
    }
}
