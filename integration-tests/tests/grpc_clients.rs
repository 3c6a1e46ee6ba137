//! Standard gRPC tooling works against a master: a Python grpcio client
//! discovers the API through server reflection, checks grpc.health.v1 and
//! drives the object service with no generated code.

use std::process::Command;

use anyhow::{ensure, Result};
use bosun_integration_tests::MasterCluster;

#[tokio::test]
async fn a_python_grpcio_client_uses_reflection_and_health() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/grpc_client.py");
    let addr = cluster.masters[0].addr.clone();
    let output = tokio::task::spawn_blocking(move || Command::new("python3").arg(script).arg(addr).output()).await??;
    ensure!(
        output.status.success() && String::from_utf8_lossy(&output.stdout).trim() == "ok",
        "python client failed (install with: python3 -m pip install grpcio grpcio-reflection grpcio-health-checking protobuf):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
