//! ctl's workload commands (`scale`, `set image`, `rollout ...`, `delete
//! --cascade`, `get`/`describe` of deployments and replicasets) against a
//! real master.
//!
//! The tests lean only on what the API store does by itself: objects are
//! created, updated and deleted, and statuses written with UpdateStatus.
//! The ReplicaSets a Deployment controller would keep are created here,
//! with its annotations; Deployments that carry them are created paused
//! until they are complete, so a running controller leaves them alone
//! (there are no nodes, so no rollout ever finishes by itself).

use std::time::Duration;

use anyhow::{ensure, Result};
use bosun_integration_tests::{ctl, wait_until, MasterCluster};
use bosun_proto::api::objects_client::ObjectsClient;
use bosun_proto::api::{
    CreateRequest, Deployment, DeploymentCondition, DeploymentStatus, GetRequest, Object, ObjectMeta, OwnerReference,
    ReplicaSet, ReplicaSetSpec, UpdateRequest,
};
use tonic::transport::Channel;

const REVISION: &str = "deployment.kubernetes.io/revision";
const CHANGE_CAUSE: &str = "kubernetes.io/change-cause";

/// A Deployment manifest: `app: NAME` pods with a `web` and a `sidecar`
/// container.
fn deployment_yaml(name: &str, replicas: i32, paused: bool, image: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: {replicas}\n  paused: {paused}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n        - {{name: web, image: \"{image}\"}}\n        - {{name: sidecar, image: \"busybox:1.36\"}}\n"
    )
}

async fn create(servers: &[String], yaml: &str) -> Result<()> {
    let out = ctl(servers, &["create", "-f", "-"], yaml).await;
    ensure!(out.ok(), "create failed: {out:?}");
    Ok(())
}

async fn get<T: TryFrom<Object>>(api: &mut ObjectsClient<Channel>, kind: &str, name: &str) -> Result<T> {
    let object = api
        .get(GetRequest {
            kind: kind.into(),
            namespace: "default".into(),
            name: name.into(),
            allow_stale: false,
        })
        .await?
        .into_inner();
    T::try_from(object).map_err(|_| anyhow::anyhow!("{kind} {name} has another kind"))
}

/// Whether some line of `text` has exactly these words (columns aligned
/// with any number of spaces).
fn has_line(text: &str, words: &str) -> bool {
    let wanted: Vec<&str> = words.split_whitespace().collect();
    text.lines()
        .any(|line| line.split_whitespace().collect::<Vec<_>>() == wanted)
}

fn images(deployment: &Deployment) -> Vec<String> {
    let spec = deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.spec.as_ref());
    spec.map(|s| s.containers.iter().map(|c| c.image.clone()).collect())
        .unwrap_or_default()
}

fn spec_of(deployment: &Deployment) -> bosun_proto::api::DeploymentSpec {
    deployment.spec.clone().unwrap_or_default()
}

/// The ReplicaSet the controller keeps for revision `revision` of
/// `owner`: its template with `pod-template-hash`, owned by `owner`.
fn revision_set(owner: &Deployment, revision: i64, image: &str, cause: Option<&str>, replicas: i32) -> ReplicaSet {
    let meta = owner.metadata.clone().unwrap_or_default();
    let hash = format!("h{revision}");
    let mut template = spec_of(owner).template.unwrap_or_default();
    let template_meta = template.metadata.get_or_insert_with(Default::default);
    template_meta.labels.insert("pod-template-hash".into(), hash.clone());
    if let Some(spec) = template.spec.as_mut() {
        spec.containers[0].image = image.into();
    }
    let mut selector = spec_of(owner).selector.unwrap_or_default();
    selector.match_labels.insert("pod-template-hash".into(), hash.clone());
    let mut annotations = std::collections::HashMap::from([(REVISION.to_string(), revision.to_string())]);
    if let Some(cause) = cause {
        annotations.insert(CHANGE_CAUSE.into(), cause.into());
    }
    ReplicaSet {
        metadata: Some(ObjectMeta {
            name: format!("{}-{hash}", meta.name),
            namespace: "default".into(),
            labels: template_meta.labels.clone(),
            annotations,
            owner_references: vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: meta.name.clone(),
                uid: meta.uid.clone(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }],
            ..Default::default()
        }),
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            selector: Some(selector),
            template: Some(template),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn scale_set_image_pause_resume_and_restart_change_the_stored_deployment() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    let mut api = cluster.objects(0).await?;
    create(&servers, &deployment_yaml("web", 2, false, "nginx:1.25")).await?;

    let out = ctl(&servers, &["scale", "deploy/web", "--replicas", "5"], "").await;
    assert_eq!(out.stdout, "deployment.apps/web scaled\n", "{out:?}");
    let out = ctl(
        &servers,
        &["scale", "deployment", "web", "--replicas=3", "--current-replicas=4"],
        "",
    )
    .await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: Expected replicas to be 4, was 5"),
        "{out:?}"
    );
    let web: Deployment = get(&mut api, "Deployment", "web").await?;
    assert_eq!(spec_of(&web).replicas, Some(5));
    let out = ctl(&servers, &["scale", "deploy/web", "--replicas", "-1"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: The --replicas=COUNT flag is required, and COUNT must be greater than or equal to 0")
    );
    let out = ctl(&servers, &["scale", "deploy/web", "--replicas", "many"], "").await;
    assert!(
        out.error.as_deref().unwrap_or("").contains("invalid value 'many'"),
        "{out:?}"
    );
    let out = ctl(&servers, &["scale", "deploy/web"], "").await;
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .contains("--replicas=COUNT flag is required"),
        "{out:?}"
    );
    let out = ctl(&servers, &["scale", "deploy/nothing", "--replicas", "1"], "").await;
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .starts_with("Error from server (NotFound): "),
        "{out:?}"
    );
    let out = ctl(&servers, &["scale", "pod/web", "--replicas", "1"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: pods \"web\" cannot be scaled: only deployments and replicasets have replicas")
    );

    let out = ctl(&servers, &["set", "image", "deploy/web", "web=nginx:1.26"], "").await;
    assert_eq!(out.stdout, "deployment.apps/web image updated\n", "{out:?}");
    let web: Deployment = get(&mut api, "Deployment", "web").await?;
    assert_eq!(images(&web), ["nginx:1.26", "busybox:1.36"]);
    let out = ctl(&servers, &["set", "image", "deployment", "web", "*=alpine:3.20"], "").await;
    assert_eq!(out.stdout, "deployment.apps/web image updated\n", "{out:?}");
    let out = ctl(&servers, &["set", "image", "deploy/web", "db=postgres:16"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: unable to find container named \"db\"")
    );
    let web: Deployment = get(&mut api, "Deployment", "web").await?;
    assert_eq!(images(&web), ["alpine:3.20", "alpine:3.20"]);

    let out = ctl(&servers, &["rollout", "pause", "deploy/web"], "").await;
    assert_eq!(out.stdout, "deployment.apps/web paused\n", "{out:?}");
    assert!(spec_of(&get(&mut api, "Deployment", "web").await?).paused);
    let out = ctl(&servers, &["rollout", "pause", "deploy/web"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: deployments.apps \"web\" is already paused")
    );
    let out = ctl(&servers, &["rollout", "restart", "deploy/web"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: deployments.apps \"web\" can't restart paused deployment (run rollout resume first)")
    );
    let out = ctl(&servers, &["rollout", "resume", "deploy/web"], "").await;
    assert_eq!(out.stdout, "deployment.apps/web resumed\n", "{out:?}");
    assert!(!spec_of(&get(&mut api, "Deployment", "web").await?).paused);
    let out = ctl(&servers, &["rollout", "resume", "deploy/web"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: deployments.apps \"web\" is not paused")
    );

    let out = ctl(&servers, &["rollout", "restart", "deployment", "web"], "").await;
    assert_eq!(out.stdout, "deployment.apps/web restarted\n", "{out:?}");
    let web: Deployment = get(&mut api, "Deployment", "web").await?;
    let template_meta = spec_of(&web).template.unwrap_or_default().metadata.unwrap_or_default();
    let stamp = &template_meta.annotations["kubectl.kubernetes.io/restartedAt"];
    assert!(
        stamp.len() == 20 && stamp.ends_with('Z') && stamp.contains('T'),
        "{stamp}"
    );

    let out = ctl(&servers, &["rollout", "pause", "pod/web"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: pods \"web\" pausing is not supported")
    );
    let out = ctl(&servers, &["rollout", "status", "pod/web"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: no status viewer has been implemented for Pod")
    );

    let out = ctl(&servers, &["get", "deploy"], "").await;
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "NAME   READY   UP-TO-DATE   AVAILABLE   AGE", "{out:?}");
    assert!(lines[1].starts_with("web    ") && lines[1].contains("/5 "), "{out:?}");
    let out = ctl(&servers, &["get", "deploy", "web", "-o", "wide"], "").await;
    assert!(
        has_line(
            &out.stdout,
            "NAME READY UP-TO-DATE AVAILABLE AGE CONTAINERS IMAGES SELECTOR"
        ),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("web,sidecar   alpine:3.20,alpine:3.20   app=web\n"),
        "{out:?}"
    );
    Ok(())
}

#[tokio::test]
async fn history_and_undo_work_from_the_deployments_replica_sets() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    let mut api = cluster.objects(0).await?;
    // Paused: a controller adds no ReplicaSet of its own while ours go in.
    create(&servers, &deployment_yaml("web", 1, true, "nginx:1.3")).await?;
    let web: Deployment = get(&mut api, "Deployment", "web").await?;
    let sets = [
        revision_set(&web, 1, "nginx:1.1", None, 0),
        revision_set(&web, 2, "nginx:1.2", Some("ctl set image deploy/web web=nginx:1.2"), 0),
        revision_set(&web, 3, "nginx:1.3", None, 1),
    ];
    for rs in &sets {
        api.create(CreateRequest {
            object: Some(rs.clone().into()),
            ..Default::default()
        })
        .await?;
    }

    let out = ctl(&servers, &["rollout", "history", "deploy/web"], "").await;
    assert_eq!(
        out.stdout,
        "deployment.apps/web \nREVISION  CHANGE-CAUSE\n1         <none>\n2         ctl set image deploy/web web=nginx:1.2\n3         <none>\n\n",
        "{out:?}"
    );
    let out = ctl(
        &servers,
        &["rollout", "history", "deployment", "web", "--revision", "2"],
        "",
    )
    .await;
    assert!(
        out.stdout.starts_with(
            "deployment.apps/web with revision #2\nPod Template:\n  Labels:\tapp=web\n\tpod-template-hash=h2\n  Containers:\n   web:\n    Image:\tnginx:1.2\n"
        ),
        "{out:?}"
    );
    let out = ctl(&servers, &["rollout", "history", "deploy/web", "--revision", "9"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: unable to find the specified revision")
    );
    let out = ctl(&servers, &["rollout", "history", "pod/web"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: no history viewer has been implemented for \"Pod\"")
    );

    let out = ctl(&servers, &["rollout", "undo", "deploy/web"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: you cannot rollback a paused deployment; resume it first with 'ctl rollout resume' and try again")
    );
    let out = ctl(&servers, &["rollout", "resume", "deploy/web"], "").await;
    assert!(out.ok(), "{out:?}");
    let out = ctl(&servers, &["rollout", "undo", "deploy/web", "--to-revision", "3"], "").await;
    assert_eq!(
        out.stdout, "deployment.apps/web skipped rollback (current template already matches revision 3)\n",
        "{out:?}"
    );
    let out = ctl(&servers, &["rollout", "undo", "deploy/web", "--to-revision", "9"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: unable to find specified revision 9 in history")
    );
    let out = ctl(&servers, &["rollout", "undo", "rs/web-h1"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: no rollbacker has been implemented for \"ReplicaSet.apps\"")
    );

    // Back to the revision before the latest: revision 2's template,
    // without the hash label, and its change cause.
    let out = ctl(&servers, &["rollout", "undo", "deploy/web"], "").await;
    assert_eq!(out.stdout, "deployment.apps/web rolled back\n", "{out:?}");
    let web: Deployment = get(&mut api, "Deployment", "web").await?;
    let mut expected = sets[1].spec.clone().unwrap_or_default().template.unwrap_or_default();
    expected.metadata.as_mut().unwrap().labels.remove("pod-template-hash");
    assert_eq!(spec_of(&web).template, Some(expected));
    let annotations = web.metadata.clone().unwrap_or_default().annotations;
    assert_eq!(
        annotations.get(CHANGE_CAUSE).map(String::as_str),
        Some("ctl set image deploy/web web=nginx:1.2")
    );
    let out = ctl(&servers, &["rollout", "undo", "deploy/web", "--to-revision=1"], "").await;
    assert_eq!(out.stdout, "deployment.apps/web rolled back\n", "{out:?}");
    let web: Deployment = get(&mut api, "Deployment", "web").await?;
    assert_eq!(images(&web), ["nginx:1.1", "busybox:1.36"]);
    assert!(!web.metadata.unwrap_or_default().annotations.contains_key(CHANGE_CAUSE));

    let out = ctl(&servers, &["get", "rs"], "").await;
    assert!(
        out.stdout
            .starts_with("NAME     DESIRED   CURRENT   READY   AGE\nweb-h1   "),
        "{out:?}"
    );
    let out = ctl(&servers, &["get", "rs", "web-h2", "-o", "wide"], "").await;
    assert!(
        out.stdout.contains("SELECTOR")
            && out
                .stdout
                .contains("web,sidecar   nginx:1.2,busybox:1.36   app=web,pod-template-hash=h2"),
        "{out:?}"
    );
    let out = ctl(&servers, &["describe", "deploy", "web"], "").await;
    assert!(out.stdout.starts_with("Name:                   web\n"), "{out:?}");
    for expected in [
        "StrategyType: RollingUpdate",
        "RollingUpdateStrategy: 25% max unavailable, 25% max surge",
        "Image: nginx:1.1",
    ] {
        assert!(has_line(&out.stdout, expected), "missing {expected:?} in {out:?}");
    }
    assert!(out.stdout.contains("\nReplicas:               1 desired | "), "{out:?}");
    // Replica counts are the controller's, if one runs.
    let line = |prefix: &str| {
        out.stdout
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or("")
            .to_string()
    };
    assert!(line("NewReplicaSet:").contains(" web-h1 ("), "{out:?}");
    let old = line("OldReplicaSets:");
    assert!(old.contains(" web-h2 (") && old.contains(" web-h3 ("), "{out:?}");
    let out = ctl(&servers, &["describe", "rs/web-h2"], "").await;
    for expected in [
        "Controlled By: Deployment/web",
        "Selector: app=web,pod-template-hash=h2",
        "Image: nginx:1.2",
    ] {
        assert!(has_line(&out.stdout, expected), "missing {expected:?} in {out:?}");
    }
    // Counted from the pods a controller (if one runs) made.
    assert!(out.stdout.contains("\nPods Status:    0 Running / "), "{out:?}");
    Ok(())
}

/// Writes `status` onto the Deployment, as its controller would.
async fn write_status(api: &mut ObjectsClient<Channel>, name: &str, status: &DeploymentStatus) -> Result<()> {
    let mut deployment: Deployment = get(api, "Deployment", name).await?;
    let mut status = status.clone();
    status.observed_generation = deployment.metadata.as_ref().map_or(0, |m| m.generation);
    deployment.status = Some(status);
    // No resourceVersion: this write wins over a controller's.
    deployment
        .metadata
        .get_or_insert_with(Default::default)
        .resource_version = 0;
    api.update_status(UpdateRequest {
        object: Some(deployment.into()),
        ..Default::default()
    })
    .await?;
    Ok(())
}

/// Runs `ctl rollout status` on `name` while writing `status` onto it
/// again and again (a controller, if one runs, may overwrite each write;
/// ctl must see at least one).
async fn status_while_writing(
    cluster: &MasterCluster,
    name: &str,
    status: DeploymentStatus,
) -> Result<bosun_integration_tests::CtlOutput> {
    let servers = cluster.addrs();
    let target = format!("deploy/{name}");
    let api = cluster.objects(0).await?;
    let writer = wait_until(Duration::from_secs(60), "rollout status to end", || {
        let (mut api, name, status) = (api.clone(), name.to_string(), status.clone());
        async move {
            write_status(&mut api, &name, &status).await?;
            Ok(None::<()>)
        }
    });
    let args = ["rollout", "status", &target, "--timeout", "60s"];
    tokio::select! {
        out = ctl(&servers, &args, "") => Ok(out),
        ended = writer => Err(ended.err().unwrap_or_else(|| anyhow::anyhow!("the writer stopped"))),
    }
}

#[tokio::test]
async fn rollout_status_waits_for_the_rollout_and_fails_on_a_missed_deadline() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    create(&servers, &deployment_yaml("web", 3, false, "nginx:1.25")).await?;

    let out = ctl(&servers, &["rollout", "status", "deploy/web", "--watch=false"], "").await;
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stdout.starts_with("Waiting for deployment") && out.stdout.lines().count() == 1,
        "{out:?}"
    );
    let out = ctl(&servers, &["rollout", "status", "deploy/web", "--timeout", "1s"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: timed out waiting for the condition"),
        "{out:?}"
    );
    assert!(out.stdout.starts_with("Waiting for deployment"), "{out:?}");
    let out = ctl(&servers, &["rollout", "status", "deploy/web", "--timeout", "soon"], "").await;
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .contains("time: invalid duration \"soon\""),
        "{out:?}"
    );
    let out = ctl(&servers, &["rollout", "status", "deploy/nothing"], "").await;
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .starts_with("Error from server (NotFound): "),
        "{out:?}"
    );

    let complete = DeploymentStatus {
        replicas: 3,
        updated_replicas: 3,
        ready_replicas: 3,
        available_replicas: 3,
        conditions: vec![DeploymentCondition {
            r#type: "Progressing".into(),
            status: "True".into(),
            reason: "NewReplicaSetAvailable".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let out = status_while_writing(&cluster, "web", complete).await?;
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stdout.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out:?}"
    );

    create(&servers, &deployment_yaml("api", 3, false, "nginx:1.25")).await?;
    let stalled = DeploymentStatus {
        replicas: 3,
        updated_replicas: 1,
        unavailable_replicas: 3,
        conditions: vec![DeploymentCondition {
            r#type: "Progressing".into(),
            status: "False".into(),
            reason: "ProgressDeadlineExceeded".into(),
            message: "ReplicaSet \"api-x\" has timed out progressing.".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let out = status_while_writing(&cluster, "api", stalled).await?;
    assert_eq!(
        out.error.as_deref(),
        Some("error: deployment \"api\" exceeded its progress deadline"),
        "{out:?}"
    );
    Ok(())
}

#[tokio::test]
async fn delete_takes_kubectls_cascade_values() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    let mut api = cluster.objects(0).await?;
    for name in ["a", "b", "c", "d"] {
        create(&servers, &deployment_yaml(name, 1, true, "nginx:1.25")).await?;
    }
    let out = ctl(&servers, &["delete", "deploy", "a", "--cascade=orphan"], "").await;
    assert_eq!(out.stdout, "deployment.apps \"a\" deleted\n", "{out:?}");
    let out = ctl(&servers, &["delete", "deploy/b", "--cascade=false"], "").await;
    assert_eq!(out.stdout, "deployment.apps \"b\" deleted\n", "{out:?}");
    assert_eq!(
        out.stderr,
        "warning: --cascade=false is deprecated (boolean value) and can be replaced with --cascade=orphan.\n"
    );
    let out = ctl(&servers, &["delete", "deploy", "c", "--cascade"], "").await;
    assert_eq!(out.stdout, "deployment.apps \"c\" deleted\n", "{out:?}");
    let out = ctl(&servers, &["delete", "deploy", "d", "--cascade=foreground"], "").await;
    assert_eq!(out.stdout, "deployment.apps \"d\" deleted\n", "{out:?}");
    let out = ctl(&servers, &["delete", "deploy", "x", "--cascade=sideways"], "").await;
    assert_eq!(
        out.error.as_deref(),
        Some("error: invalid cascade value (sideways). Must be \"background\", \"foreground\", or \"orphan\"")
    );
    for name in ["a", "b", "c", "d"] {
        let gone = get::<Deployment>(&mut api, "Deployment", name).await;
        assert!(gone.is_err(), "{name} still there");
    }
    Ok(())
}

/// A node no agent runs (its pods are never evicted: the masters wait an
/// hour for it), a ReplicaSet's pod on it, and two pods of no controller,
/// one with an emptyDir.
const DRAIN_OBJECTS: &str = "apiVersion: v1
kind: Node
metadata: {name: n1}
---
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      nodeName: n1
      containers: [{name: web, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: bare}
spec:
  nodeName: n1
  containers: [{name: c, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: cache}
spec:
  nodeName: n1
  containers: [{name: c, image: busybox}]
  volumes: [{name: scratch, emptyDir: {}}]
";

#[tokio::test]
async fn drain_refuses_pods_no_controller_would_bring_back_unless_forced() -> Result<()> {
    let cluster = MasterCluster::start(1, &["--node-grace-seconds", "3600", "--pod-eviction-seconds", "3600"]).await?;
    let servers = cluster.addrs();
    create(&servers, DRAIN_OBJECTS).await?;
    let on_node = || {
        let servers = servers.clone();
        async move {
            let out = ctl(
                &servers,
                &[
                    "get",
                    "pods",
                    "--field-selector",
                    "spec.nodeName=n1",
                    "-o",
                    "jsonpath={range .items[*]}{.metadata.name} {.metadata.uid}{\"\\n\"}{end}",
                ],
                "",
            )
            .await;
            ensure!(out.ok(), "{out:?}");
            Ok(out.stdout)
        }
    };
    let before = wait_until(Duration::from_secs(20), "the ReplicaSet's pod", || async {
        let pods = on_node().await?;
        Ok((pods.lines().count() == 3).then_some(pods))
    })
    .await?;
    let replicated = before
        .lines()
        .find(|line| line.starts_with("web-"))
        .map(String::from)
        .unwrap_or_default();
    ensure!(!replicated.is_empty(), "{before}");

    // Refused: the node is cordoned, nothing is deleted.
    let out = ctl(&servers, &["drain", "n1"], "").await;
    ensure!(out.stdout == "node/n1 cordoned\n", "{out:?}");
    ensure!(
        out.error.as_deref()
            == Some(
                "error: cannot delete Pods with local storage (use --delete-emptydir-data to override): default/cache\n\
                 error: cannot delete Pods declare no controller (use --force to override): default/bare"
            ),
        "{out:?}"
    );
    let out = ctl(
        &servers,
        &["get", "node", "n1", "-o", "jsonpath={.spec.unschedulable}"],
        "",
    )
    .await;
    ensure!(out.stdout == "true", "{out:?}");
    let out = ctl(&servers, &["drain", "n1", "--force", "--ignore-daemonsets"], "").await;
    ensure!(
        out.error.as_deref()
            == Some(
                "error: cannot delete Pods with local storage (use --delete-emptydir-data to override): default/cache"
            ),
        "{out:?}"
    );
    ensure!(on_node().await? == before, "nothing is deleted when drain refuses");

    // Forced: every pod goes; the ReplicaSet's replacement is not waited for.
    let out = ctl(
        &servers,
        &[
            "drain",
            "n1",
            "--force",
            "--delete-emptydir-data",
            "--ignore-daemonsets",
            "--grace-period",
            "0",
            "--timeout",
            "30s",
        ],
        "",
    )
    .await;
    ensure!(out.ok(), "{out:?}");
    ensure!(
        out.stderr
            == "Warning: deleting Pods with local storage: default/cache; deleting Pods that declare no controller: default/bare, default/cache\n",
        "{out:?}"
    );
    ensure!(
        out.stdout.starts_with("node/n1 already cordoned\n") && out.stdout.ends_with("node/n1 drained\n"),
        "{out:?}"
    );
    for pod in ["default/bare", "default/cache", "default/web-"] {
        ensure!(out.stdout.contains(&format!("evicting pod {pod}")), "{pod}: {out:?}");
    }
    let after = on_node().await?;
    ensure!(
        !after.contains("bare ") && !after.contains("cache ") && !after.contains(&replicated),
        "{after}"
    );
    Ok(())
}
