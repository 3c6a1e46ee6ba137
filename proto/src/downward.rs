//! Kubernetes' downward API: the fields of a pod that its containers can
//! read through `env[].valueFrom.fieldRef`. The agent fills them in, and
//! ctl shows them in `describe pod`.

use std::collections::HashMap;

use crate::api::Pod;

/// The value of `fieldRef` `path` for `pod`, or `None` for a path the
/// downward API has not got. The pod and host IPs are given, since the
/// agent knows them before the pod's status does.
pub fn pod_field(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Option<String> {
    let meta = pod.metadata.clone().unwrap_or_default();
    let indexed = |prefix: &str, map: &HashMap<String, String>| {
        path.strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix("']"))
            .map(|key| map.get(key).cloned().unwrap_or_default())
    };
    Some(match path {
        "metadata.name" => meta.name,
        "metadata.namespace" => meta.namespace,
        "metadata.uid" => meta.uid,
        "spec.nodeName" => pod.spec.as_ref().map(|s| s.node_name.clone()).unwrap_or_default(),
        "status.podIP" => pod_ip.to_string(),
        "status.hostIP" => host_ip.to_string(),
        _ => {
            return indexed("metadata.labels['", &meta.labels)
                .or_else(|| indexed("metadata.annotations['", &meta.annotations))
        }
    })
}
