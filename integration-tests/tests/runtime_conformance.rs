//! The node agent's Docker runtime against the conformance suite the fake
//! runtime also passes (`node-agent/src/runtime/conformance.rs`), on the
//! real engine: the fake that drives the worker's unit tests behaves as
//! Docker does.

use std::collections::HashMap;

use anyhow::Result;
use bosun_integration_tests::agents::{ensure_test_image, PodRanges, TEST_LABEL};
use bosun_node_agent::runtime::conformance;
use bosun_node_agent::runtime::docker::Docker;
use bosun_node_agent::runtime::ContainerRuntime;

#[tokio::test]
async fn the_docker_runtime_passes_the_runtime_conformance_suite() -> Result<()> {
    let image = ensure_test_image()?;
    let run = format!("conformance-{}", std::process::id());
    let labels = HashMap::from([(TEST_LABEL.to_string(), run.clone())]);
    // A network of the test's own, on a range of its own, removed at the end.
    let ranges = PodRanges::claim()?;
    let docker = Docker::connect(
        &std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".into()),
        &format!("bosun-{run}"),
        labels.clone(),
    )
    .await?;
    docker.prepare(ranges.block(0).parse()?).await?;
    let outcome = conformance::check(&docker, image, &run, &labels).await;
    let removed = docker.remove_network_if_unused().await;
    outcome?;
    removed?;
    Ok(())
}
