//! What every [`ContainerRuntime`] must do, as the pod worker relies on
//! it: one suite that the Docker runtime (in the integration tests, on a
//! real engine) and the fake (in unit tests) both pass, so the fake that
//! drives the worker's tests cannot drift from Docker's behaviour.
//!
//! The suite creates containers labelled `labels::POD_UID=<pod_uid>` and
//! removes them before it returns, also when a check fails.

use std::collections::HashMap;
use std::time::Duration;

use futures::StreamExt;

use super::{labels, ContainerInfo, ContainerRuntime, ContainerSpec, ContainerState, RuntimeError};

/// What a check found wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failure(String);

fn fail<T>(message: impl Into<String>) -> Result<T, Failure> {
    Err(Failure(message.into()))
}

fn runtime_error(during: &str) -> impl Fn(RuntimeError) -> Failure + '_ {
    move |e| Failure(format!("{during}: {e}"))
}

/// Runs the suite with `image` (present on the runtime, with `sleep` and
/// `true`) under labels of `pod_uid` (unique per run), with `extra` labels
/// on every container (a test run's, for cleaning up).
///
/// # Errors
/// The first check that failed.
pub async fn check<R: ContainerRuntime>(
    runtime: &R,
    image: &str,
    pod_uid: &str,
    extra: &HashMap<String, String>,
) -> Result<(), Failure> {
    let outcome = checks(runtime, &Names { image, pod_uid, extra }).await;
    // Leave nothing behind, whatever happened.
    if let Ok(left) = runtime.list_containers(labels::POD_UID, pod_uid).await {
        for container in left {
            let _ = runtime.remove_container(&container.id).await;
        }
    }
    outcome
}

/// What one run of the suite names its containers with.
struct Names<'a> {
    image: &'a str,
    pod_uid: &'a str,
    extra: &'a HashMap<String, String>,
}

fn spec(names: &Names<'_>, name: &str, network_of: Option<String>) -> ContainerSpec {
    let mut labels = names.extra.clone();
    labels.insert(labels::POD_UID.to_string(), names.pod_uid.to_string());
    labels.insert(labels::CONTAINER.to_string(), name.to_string());
    ContainerSpec {
        name: format!("bosun-conformance-{}-{name}", names.pod_uid),
        image: names.image.to_string(),
        cmd: Some(vec!["sleep".into(), "3600".into()]),
        labels,
        network_of,
        ..Default::default()
    }
}

async fn listed<R: ContainerRuntime>(runtime: &R, pod_uid: &str) -> Result<Vec<ContainerInfo>, Failure> {
    runtime
        .list_containers(labels::POD_UID, pod_uid)
        .await
        .map_err(runtime_error("listing the pod's containers"))
}

async fn state_of<R: ContainerRuntime>(runtime: &R, pod_uid: &str, id: &str) -> Result<ContainerState, Failure> {
    match listed(runtime, pod_uid).await?.into_iter().find(|c| c.id == id) {
        Some(container) => Ok(container.state),
        None => fail(format!("container {id} is not listed")),
    }
}

async fn checks<R: ContainerRuntime>(runtime: &R, names: &Names<'_>) -> Result<(), Failure> {
    let (image, pod_uid) = (names.image, names.pod_uid);
    if !runtime
        .image_present(image)
        .await
        .map_err(runtime_error("image_present"))?
    {
        return fail(format!("image {image} is not present"));
    }
    let absent = "bosun-conformance/absent:never";
    if runtime
        .image_present(absent)
        .await
        .map_err(runtime_error("image_present"))?
    {
        return fail(format!("image {absent} is present"));
    }
    if !listed(runtime, pod_uid).await?.is_empty() {
        return fail("a new pod uid already has containers");
    }

    // A sandbox on the runtime's network, created then started.
    let sandbox = runtime
        .create_container(&spec(names, labels::SANDBOX, None))
        .await
        .map_err(runtime_error("creating the sandbox"))?;
    if state_of(runtime, pod_uid, &sandbox).await? != ContainerState::Created {
        return fail("a created container is not in state Created");
    }
    runtime
        .start_container(&sandbox)
        .await
        .map_err(runtime_error("starting the sandbox"))?;
    let containers = listed(runtime, pod_uid).await?;
    let Some(info) = containers.iter().find(|c| c.id == sandbox) else {
        return fail("the sandbox is not listed");
    };
    if !info.is_running() {
        return fail(format!("a started container is {:?}", info.state));
    }
    if info.ip.as_deref().is_none_or(str::is_empty) {
        return fail("a running sandbox has no IP address");
    }
    if info.label(labels::CONTAINER) != labels::SANDBOX || info.image != image {
        return fail(format!("labels or image not kept: {info:?}"));
    }

    // An app container in the sandbox's network.
    let app = runtime
        .create_container(&spec(names, "app", Some(sandbox.clone())))
        .await
        .map_err(runtime_error("creating the app container"))?;
    runtime
        .start_container(&app)
        .await
        .map_err(runtime_error("starting the app container"))?;
    if listed(runtime, pod_uid).await?.len() != 2 {
        return fail("the pod's two containers are not both listed by its label");
    }

    // Exec in a running container, its exit code once its output ended.
    let session = runtime
        .exec(&app, vec!["true".into()], false, false)
        .await
        .map_err(runtime_error("exec"))?;
    let mut output = session.output;
    while output.next().await.is_some() {}
    let mut code = None;
    for _ in 0..100 {
        code = runtime
            .exec_exit_code(&session.id)
            .await
            .map_err(runtime_error("exec exit code"))?;
        if code.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if code != Some(0) {
        return fail(format!("`true` exec'd exited with {code:?}"));
    }

    // Stopping: `sleep` as the first process ignores SIGTERM, so it is
    // killed at the end of the grace period.
    runtime
        .stop_container(&app, Duration::from_secs(1))
        .await
        .map_err(runtime_error("stopping the app container"))?;
    match state_of(runtime, pod_uid, &app).await? {
        ContainerState::Exited {
            exit_code: 137 | 143,
            started_at: Some(_),
            ..
        } => {}
        other => return fail(format!("a stopped container is {other:?}")),
    }
    // Stopping again is harmless; a missing container is NotFound.
    runtime
        .stop_container(&app, Duration::ZERO)
        .await
        .map_err(runtime_error("stopping a stopped container"))?;
    let missing = "bosun-conformance-missing";
    match runtime.stop_container(missing, Duration::ZERO).await {
        Err(RuntimeError::NotFound(_)) => {}
        other => return fail(format!("stopping a missing container gave {other:?}")),
    }
    match runtime.start_container(missing).await {
        Err(RuntimeError::NotFound(_)) => {}
        other => return fail(format!("starting a missing container gave {other:?}")),
    }

    // Removing: a running container too; twice is harmless.
    for id in [&app, &sandbox, &app] {
        runtime
            .remove_container(id)
            .await
            .map_err(runtime_error("removing a container"))?;
    }
    if !listed(runtime, pod_uid).await?.is_empty() {
        return fail("removed containers are still listed");
    }
    Ok(())
}
