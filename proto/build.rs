//! Compiles `proto/` with protox (no protoc needed), writes the encoded
//! descriptor set (used by the YAML/JSON codec and gRPC reflection) and the
//! prost/tonic code.

use std::path::PathBuf;

use prost::Message;

const FILES: &[&str] = &[
    "bosun/v1/meta.proto",
    "bosun/v1/pod.proto",
    "bosun/v1/core.proto",
    "bosun/v1/apps.proto",
    "bosun/v1/storage.proto",
    "bosun/v1/api.proto",
    "bosun/internal/v1/raft.proto",
    "bosun/internal/v1/agent.proto",
];

const BOXED_RESOURCES: &[&str] = &[
    "namespace",
    "node",
    "pod",
    "replica_set",
    "deployment",
    "service",
    "endpoints",
    "config_map",
    "secret",
    "persistent_volume",
    "persistent_volume_claim",
    "storage_class",
    "event",
];

/// Large optional parts of a pod, boxed so a pod without them (most pods)
/// does not carry their inline size: this keeps tens of thousands of pods
/// in a master's memory small.
const BOXED_FIELDS: &[&str] = &[
    ".bosun.v1.Container.liveness_probe",
    ".bosun.v1.Container.readiness_probe",
    ".bosun.v1.Container.startup_probe",
    ".bosun.v1.ContainerState.waiting",
    ".bosun.v1.ContainerState.running",
    ".bosun.v1.ContainerState.terminated",
    ".bosun.v1.ContainerStatus.last_state",
    ".bosun.v1.PodSpec.affinity",
    ".bosun.v1.EnvVar.value_from",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = protox::compile(FILES, ["proto"])?;
    std::fs::write(out_dir.join("bosun_descriptor.bin"), descriptors.encode_to_vec())?;
    // Boxed variants keep `Object` (and every command, event and message
    // that holds one) pointer-sized instead of the size of its largest kind.
    let mut builder = tonic_prost_build::configure();
    for variant in BOXED_RESOURCES {
        builder = builder.boxed(format!(".bosun.v1.Object.resource.{variant}"));
    }
    for field in BOXED_FIELDS {
        builder = builder.boxed(field);
    }
    builder.build_client(true).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
