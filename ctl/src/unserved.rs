//! Warnings for what the masters store but this version does not act on
//! yet, printed on stderr by `create`, `apply` and `replace`, so nobody
//! takes a stored Service for a served one. Each warning goes with the
//! issue that makes its capability work.

use bosun_proto::api::object::Resource;
use bosun_proto::api::{Object, PodSpec};
use bosun_proto::Kind;

/// The warning for `object`, if it asks for something not acted on yet.
pub fn warning(object: &Object) -> Option<String> {
    let kind = object.kind()?;
    let stored_only = match kind {
        Kind::Service => Some("Services are stored but not yet served (no virtual IPs, node ports or DNS)"),
        Kind::Endpoints => Some("Endpoints are stored but not yet used for load balancing"),
        Kind::PersistentVolume | Kind::PersistentVolumeClaim | Kind::StorageClass => {
            Some("persistent volumes, claims and storage classes are stored but not yet bound or mounted")
        }
        _ => None,
    };
    if let Some(text) = stored_only {
        return Some(format!("warning: {text} by this version"));
    }
    let spec = pod_spec(object)?;
    if spec.volumes.is_empty() {
        return None;
    }
    let names: Vec<&str> = spec.volumes.iter().map(|v| v.name.as_str()).collect();
    Some(format!(
        "warning: {} {:?} uses volumes ({}), which this version does not mount yet: its containers wait with CreateContainerConfigError",
        kind.name(),
        object.name(),
        names.join(", ")
    ))
}

fn pod_spec(object: &Object) -> Option<&PodSpec> {
    match object.resource.as_ref()? {
        Resource::Pod(pod) => pod.spec.as_ref(),
        Resource::ReplicaSet(rs) => rs.spec.as_ref()?.template.as_ref()?.spec.as_ref(),
        Resource::Deployment(d) => d.spec.as_ref()?.template.as_ref()?.spec.as_ref(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::codec::decode_objects;

    fn warned(yaml: &str) -> Option<String> {
        warning(&decode_objects(yaml, "t.yaml").unwrap().remove(0))
    }

    #[test]
    fn stored_only_kinds_and_pod_volumes_are_warned_about() {
        let service = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n";
        assert_eq!(
            warned(service).as_deref(),
            Some("warning: Services are stored but not yet served (no virtual IPs, node ports or DNS) by this version")
        );
        let with_volume = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: i}]\n  volumes: [{name: data, emptyDir: {}}]\n";
        let text = warned(with_volume).unwrap();
        assert!(text.contains("Pod \"p\" uses volumes (data)"), "{text}");
        let plain = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\n";
        assert_eq!(warned(plain), None);
    }
}
