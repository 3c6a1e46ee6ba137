use super::*;
use crate::codec::decode_objects;

fn object(yaml: &str) -> Object {
    decode_objects(yaml, "t.yaml")
        .unwrap_or_else(|e| panic!("{e}"))
        .remove(0)
}

fn errors(yaml: &str) -> Vec<String> {
    match validate(&object(yaml)) {
        Ok(()) => vec![],
        Err(e) => e
            .errors
            .into_iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect(),
    }
}

const POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
    - name: web
      image: busybox
      ports: [{containerPort: 80, name: http}]
      readinessProbe: {httpGet: {port: http}}
      resources: {requests: {cpu: 100m}, limits: {cpu: 200m}}
";

#[test]
fn a_good_pod_passes() {
    assert_eq!(errors(POD), Vec::<String>::new());
}

#[test]
fn names_follow_dns1123() {
    for bad in ["Web", "-web", "web_1", "", "a..b"] {
        let yaml = POD.replace("name: web, labels", &format!("name: {bad:?}, labels"));
        let errs = errors(&yaml);
        assert!(errs.iter().any(|e| e.starts_with("metadata.name:")), "{bad}: {errs:?}");
    }
    assert!(dns1123_subdomain("web.example-1").is_ok());
    assert!(dns1123_label(&"a".repeat(64)).is_err());
}

#[test]
fn label_keys_and_values_are_checked() {
    let errs = errors(&POD.replace("{app: web}", "{\"bad key\": web, app: \"-x\"}"));
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(qualified_name("bosun.io/auto-rollback").is_ok());
    assert!(qualified_name("Bosun.IO/x").is_err());
}

#[test]
fn pod_spec_errors_carry_paths() {
    let yaml = POD
        .replace("image: busybox", "image: \"\"\n      imagePullPolicy: Sometimes")
        .replace("port: http", "port: https")
        .replace("cpu: 100m}", "cpu: 300m}");
    let errs = errors(&yaml);
    assert!(
        errs.contains(&"spec.containers[0].image: is required".to_string()),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("spec.containers[0].imagePullPolicy:")),
        "{errs:?}"
    );
    assert!(
        errs.contains(&"spec.containers[0].readinessProbe.httpGet.port: no container port named \"https\"".to_string()),
        "{errs:?}"
    );
    assert!(
        errs.contains(&"spec.containers[0].resources.requests.cpu: must not exceed the limit 200m".to_string()),
        "{errs:?}"
    );
}

#[test]
fn unsupported_resources_are_refused() {
    let errs = errors(&POD.replace("requests: {cpu: 100m}", "requests: {cpu: 100m, nvidia.com/gpu: 1}"));
    assert_eq!(
        errs,
        vec!["spec.containers[0].resources.requests.nvidia.com/gpu: unsupported resource; supported: cpu, memory"]
    );
}

#[test]
fn deployment_template_must_match_selector() {
    let yaml = "apiVersion: apps/v1
kind: Deployment
metadata: {name: d}
spec:
  selector: {matchLabels: {app: a}}
  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0%}}
  template:
    metadata: {labels: {app: b}}
    spec: {containers: [{name: c, image: i}]}
";
    let errs = errors(yaml);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("spec.template.metadata.labels: do not match")),
        "{errs:?}"
    );
    assert!(errs.iter().any(|e| e.contains("may not both be 0")), "{errs:?}");
}

#[test]
fn cluster_scoped_kinds_refuse_a_namespace() {
    let errs = errors("apiVersion: v1\nkind: Node\nmetadata: {name: n1, namespace: default}\n");
    assert_eq!(
        errs,
        vec!["metadata.namespace: a Node is not namespaced; remove the namespace"]
    );
}

#[test]
fn missing_name_is_refused_unless_generated() {
    assert_eq!(
        errors("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n"),
        vec!["metadata.name: is required"]
    );
    assert_eq!(
        errors("apiVersion: v1\nkind: ConfigMap\nmetadata: {generateName: cm-}\n"),
        Vec::<String>::new()
    );
}

#[test]
fn config_data_and_objects_are_held_to_kubernetes_size_limits() {
    let config_map = |bytes: usize| -> Object {
        api::ConfigMap {
            metadata: Some(ObjectMeta {
                name: "big".into(),
                namespace: "default".into(),
                ..Default::default()
            }),
            data: [("a".to_string(), "x".repeat(bytes))].into(),
            ..Default::default()
        }
        .into()
    };
    assert!(
        validate(&config_map(MAX_DATA_BYTES - 1)).is_ok(),
        "1 MiB with its key fits"
    );
    let refused = validate(&config_map(MAX_DATA_BYTES)).unwrap_err().to_string();
    assert_eq!(
        refused,
        "data: is 1048577 bytes, over the 1048576-byte (1 MiB) limit for a ConfigMap's data and binaryData together"
    );
    let secret: Object = api::Secret {
        metadata: Some(ObjectMeta {
            name: "big".into(),
            namespace: "default".into(),
            ..Default::default()
        }),
        data: [("a".to_string(), vec![0u8; 600 << 10])].into(),
        string_data: [("b".to_string(), "y".repeat(600 << 10))].into(),
        ..Default::default()
    }
    .into();
    let refused = validate(&secret).unwrap_err().to_string();
    assert!(
        refused.contains("limit for a Secret's data and stringData"),
        "{refused}"
    );

    // Any kind: a Pod whose annotations alone are 2 MiB.
    let mut pod = object(POD);
    pod.metadata_mut()
        .unwrap()
        .annotations
        .insert("note".into(), "z".repeat(2 << 20));
    let refused = validate(&pod).unwrap_err().to_string();
    assert!(
        refused.contains("object: is ") && refused.contains("over the 1572864-byte (1.5 MiB) limit for one object"),
        "{refused}"
    );
}
