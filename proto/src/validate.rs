//! Stateless checks the master runs on every object it is asked to store,
//! whatever client sent it: names and labels as in Kubernetes (DNS-1123),
//! required fields, allowed values, quantities. Every problem is reported
//! with its field path; all problems are reported at once.
//!
//! Checks that need the store (does the namespace exist, is the name free)
//! are made when the write is applied, not here.
//!
//! This file holds the walk over each kind and the object-wide limits;
//! `validate/names.rs` checks names, keys and label values, and
//! `validate/pod.rs` a pod spec.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::api::object::Resource;
use crate::api::{self, Object, ObjectMeta};
use crate::quantity::Quantity;
use crate::selector::Selector;
use crate::Kind;

mod names;
mod pod;

use names::{config_key, dns1035_label};
pub use names::{dns1123_label, dns1123_subdomain, label_value, qualified_name};
use pod::pod_spec;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

/// Every problem found in an object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.path, e.message)?;
        }
        Ok(())
    }
}

/// Collects errors while walking an object.
#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
    /// A size limit was already reported: the object's own is not too.
    too_big: bool,
}

impl Checker {
    fn fail(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn check(&mut self, path: &str, result: Result<(), String>) {
        if let Err(message) = result {
            self.fail(path, message);
        }
    }

    fn one_of(&mut self, path: &str, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            let shown: Vec<_> = allowed.iter().filter(|a| !a.is_empty()).collect();
            self.fail(path, format!("{value:?} is not one of {shown:?}"));
        }
    }

    fn quantity(&mut self, path: &str, quantity: &api::Quantity) -> Option<Quantity> {
        match Quantity::parse(&quantity.value) {
            Ok(q) if q.is_negative() => {
                self.fail(path, "must not be negative");
                None
            }
            Ok(q) => Some(q),
            Err(e) => {
                self.fail(path, e.to_string());
                None
            }
        }
    }

    fn non_negative(&mut self, path: &str, value: i64) {
        if value < 0 {
            self.fail(path, format!("must be 0 or more, got {value}"));
        }
    }

    fn port(&mut self, path: &str, port: i32, allow_zero: bool) {
        let valid = (1..=65535).contains(&port) || (allow_zero && port == 0);
        if !valid {
            self.fail(path, format!("{port} is not a valid port (1-65535)"));
        }
    }
}

/// The most a ConfigMap's `data` and `binaryData`, or a Secret's `data`
/// and `stringData`, may hold together: 1 MiB, as in Kubernetes. Every
/// master and agent keeps such objects in memory and every write of one
/// passes through the Raft log.
pub const MAX_DATA_BYTES: usize = 1 << 20;
/// The most one object may take, encoded: 1.5 MiB, etcd's request limit,
/// so no client can bloat the log or stall replication with one write.
pub const MAX_OBJECT_BYTES: usize = 3 << 19;

/// Bytes held by keys and values, as Kubernetes counts a ConfigMap.
fn data_size<'a>(entries: impl Iterator<Item = (&'a String, &'a [u8])>) -> usize {
    entries.map(|(k, v)| k.len() + v.len()).sum()
}

fn data_limit(c: &mut Checker, path: &str, size: usize, what: &str) {
    if size > MAX_DATA_BYTES {
        c.too_big = true;
        c.fail(
            path,
            format!("is {size} bytes, over the {MAX_DATA_BYTES}-byte (1 MiB) limit for {what} together"),
        );
    }
}

/// Checks an object before it is stored.
///
/// # Errors
/// [`ValidationError`] listing every problem with its field path.
pub fn validate(object: &Object) -> Result<(), ValidationError> {
    let mut c = Checker::default();
    let Some(resource) = object.resource.as_ref() else {
        c.fail("object", "is empty: set exactly one kind of object");
        return Err(ValidationError { errors: c.errors });
    };
    let kind = object.kind().expect("resource is set");
    match object.metadata() {
        Some(meta) => metadata(&mut c, kind, meta),
        None => c.fail("metadata", "is required"),
    }
    match resource {
        Resource::Pod(pod) => match &pod.spec {
            Some(spec) => pod_spec(&mut c, "spec", spec),
            None => c.fail("spec", "is required"),
        },
        Resource::ReplicaSet(rs) => {
            let spec = rs.spec.clone().unwrap_or_default();
            workload(&mut c, spec.replicas, spec.selector.as_ref(), spec.template.as_ref());
            c.non_negative("spec.minReadySeconds", spec.min_ready_seconds.into());
        }
        Resource::Deployment(deploy) => deployment(&mut c, deploy),
        Resource::Service(svc) => service(&mut c, svc),
        Resource::ConfigMap(cm) => {
            for key in cm.data.keys().chain(cm.binary_data.keys()) {
                c.check(&format!("data.{key}"), config_key(key));
            }
            let size = data_size(cm.data.iter().map(|(k, v)| (k, v.as_bytes())))
                + data_size(cm.binary_data.iter().map(|(k, v)| (k, v.as_slice())));
            data_limit(&mut c, "data", size, "a ConfigMap's data and binaryData");
            if let Some(key) = cm.data.keys().find(|k| cm.binary_data.contains_key(*k)) {
                c.fail(format!("binaryData.{key}"), "is also in data");
            }
        }
        Resource::Secret(secret) => {
            for key in secret.data.keys().chain(secret.string_data.keys()) {
                c.check(&format!("data.{key}"), config_key(key));
            }
            let size = data_size(secret.data.iter().map(|(k, v)| (k, v.as_slice())))
                + data_size(secret.string_data.iter().map(|(k, v)| (k, v.as_bytes())));
            data_limit(&mut c, "data", size, "a Secret's data and stringData");
        }
        Resource::Node(node) => {
            if let Some(spec) = &node.spec {
                if !spec.pod_cidr.is_empty() {
                    c.check("spec.podCIDR", pod_cidr(&spec.pod_cidr));
                }
                match spec.pod_cidrs.as_slice() {
                    [] => {}
                    [one] if spec.pod_cidr.is_empty() || *one == spec.pod_cidr => {
                        c.check("spec.podCIDRs[0]", pod_cidr(one));
                    }
                    [_] => c.fail("spec.podCIDRs[0]", "must equal spec.podCIDR"),
                    _ => c.fail("spec.podCIDRs", "holds one range (IPv4 only)"),
                }
                for (i, taint) in spec.taints.iter().enumerate() {
                    let path = format!("spec.taints[{i}]");
                    c.check(&format!("{path}.key"), qualified_name(&taint.key));
                    c.one_of(
                        &format!("{path}.effect"),
                        &taint.effect,
                        &["NoSchedule", "PreferNoSchedule", "NoExecute"],
                    );
                }
            }
            if let Some(status) = &node.status {
                resource_map(&mut c, "status.capacity", &status.capacity, &["cpu", "memory", "pods"]);
                resource_map(
                    &mut c,
                    "status.allocatable",
                    &status.allocatable,
                    &["cpu", "memory", "pods"],
                );
            }
        }
        Resource::PersistentVolume(pv) => {
            let spec = pv.spec.clone().unwrap_or_default();
            resource_map(&mut c, "spec.capacity", &spec.capacity, &["storage"]);
            if !spec.capacity.contains_key("storage") {
                c.fail("spec.capacity.storage", "is required");
            }
            access_modes(&mut c, "spec.accessModes", &spec.access_modes);
            c.one_of(
                "spec.persistentVolumeReclaimPolicy",
                &spec.persistent_volume_reclaim_policy,
                &["", "Retain", "Delete", "Recycle"],
            );
            match &spec.host_path {
                Some(host_path) if host_path.path.starts_with('/') => {}
                Some(_) => c.fail("spec.hostPath.path", "must be an absolute path"),
                None => c.fail(
                    "spec.hostPath",
                    "is required: hostPath is the volume source Bosun supports",
                ),
            }
        }
        Resource::PersistentVolumeClaim(pvc) => {
            let spec = pvc.spec.clone().unwrap_or_default();
            access_modes(&mut c, "spec.accessModes", &spec.access_modes);
            let requests = spec.resources.map(|r| r.requests).unwrap_or_default();
            resource_map(&mut c, "spec.resources.requests", &requests, &["storage"]);
            if !requests.contains_key("storage") {
                c.fail("spec.resources.requests.storage", "is required");
            }
        }
        Resource::StorageClass(sc) => {
            if sc.provisioner.is_empty() {
                c.fail("provisioner", "is required");
            }
        }
        Resource::Event(event) => {
            if event.involved_object.is_none() {
                c.fail("involvedObject", "is required");
            }
            c.one_of("type", &event.r#type, &["", "Normal", "Warning"]);
        }
        Resource::Namespace(_) | Resource::Endpoints(_) => {}
    }
    let encoded = prost::Message::encoded_len(object);
    if encoded > MAX_OBJECT_BYTES && !c.too_big {
        c.fail(
            "object",
            format!("is {encoded} bytes encoded, over the {MAX_OBJECT_BYTES}-byte (1.5 MiB) limit for one object"),
        );
    }
    if c.errors.is_empty() {
        Ok(())
    } else {
        Err(ValidationError { errors: c.errors })
    }
}

fn metadata(c: &mut Checker, kind: Kind, meta: &ObjectMeta) {
    if meta.name.is_empty() {
        if meta.generate_name.is_empty() {
            c.fail("metadata.name", "is required");
        }
    } else {
        let rule = match kind {
            Kind::Namespace => dns1123_label,
            Kind::Service => dns1035_label,
            _ => dns1123_subdomain,
        };
        c.check("metadata.name", rule(&meta.name));
    }
    if !meta.namespace.is_empty() {
        if kind.namespaced() {
            c.check("metadata.namespace", dns1123_label(&meta.namespace));
        } else {
            c.fail(
                "metadata.namespace",
                format!("a {kind} is not namespaced; remove the namespace"),
            );
        }
    }
    labels(c, "metadata.labels", &meta.labels);
    for key in meta.annotations.keys() {
        c.check(&format!("metadata.annotations.{key}"), qualified_name(key));
    }
    let annotation_bytes: usize = meta.annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if annotation_bytes > 256 * 1024 {
        c.fail("metadata.annotations", "may hold at most 256KiB in total");
    }
    for (i, owner) in meta.owner_references.iter().enumerate() {
        if owner.kind.is_empty() || owner.name.is_empty() || owner.uid.is_empty() {
            c.fail(format!("metadata.ownerReferences[{i}]"), "needs kind, name and uid");
        }
    }
}

fn labels(c: &mut Checker, path: &str, labels: &HashMap<String, String>) {
    for (key, value) in labels {
        c.check(
            &format!("{path}.{key}"),
            qualified_name(key).and_then(|()| label_value(value)),
        );
    }
}

fn access_modes(c: &mut Checker, path: &str, modes: &[String]) {
    if modes.is_empty() {
        c.fail(path, "needs at least one access mode");
    }
    for (i, mode) in modes.iter().enumerate() {
        c.one_of(
            &format!("{path}[{i}]"),
            mode,
            &["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"],
        );
    }
}

fn resource_map(
    c: &mut Checker,
    path: &str,
    map: &HashMap<String, api::Quantity>,
    allowed: &[&str],
) -> HashMap<String, Quantity> {
    let mut parsed = HashMap::new();
    for (name, quantity) in map {
        let field = format!("{path}.{name}");
        if !allowed.contains(&name.as_str()) {
            c.fail(
                &field,
                format!("unsupported resource; supported: {}", allowed.join(", ")),
            );
            continue;
        }
        if let Some(q) = c.quantity(&field, quantity) {
            parsed.insert(name.clone(), q);
        }
    }
    parsed
}

fn workload(
    c: &mut Checker,
    replicas: Option<i32>,
    selector: Option<&api::LabelSelector>,
    template: Option<&api::PodTemplateSpec>,
) {
    if let Some(replicas) = replicas {
        c.non_negative("spec.replicas", replicas.into());
    }
    let parsed = match selector {
        None => {
            c.fail("spec.selector", "is required");
            None
        }
        Some(s) if s.match_labels.is_empty() && s.match_expressions.is_empty() => {
            c.fail("spec.selector", "must not be empty: it would select every pod");
            None
        }
        Some(s) => {
            labels(c, "spec.selector.matchLabels", &s.match_labels);
            match Selector::from_message(s) {
                Ok(parsed) => Some(parsed),
                Err(e) => {
                    c.fail(format!("spec.selector.{}", e.given), e.reason);
                    None
                }
            }
        }
    };
    let Some(template) = template else {
        c.fail("spec.template", "is required");
        return;
    };
    let template_labels = template.metadata.as_ref().map(|m| m.labels.clone()).unwrap_or_default();
    labels(c, "spec.template.metadata.labels", &template_labels);
    if let Some(selector) = parsed {
        if !selector.matches(&template_labels) {
            c.fail(
                "spec.template.metadata.labels",
                format!(
                    "do not match the selector {selector:?}",
                    selector = selector.to_string()
                ),
            );
        }
    }
    match &template.spec {
        Some(spec) => pod_spec(c, "spec.template.spec", spec),
        None => c.fail("spec.template.spec", "is required"),
    }
}

fn deployment(c: &mut Checker, deploy: &api::Deployment) {
    let spec = deploy.spec.clone().unwrap_or_default();
    workload(c, spec.replicas, spec.selector.as_ref(), spec.template.as_ref());
    c.non_negative("spec.minReadySeconds", spec.min_ready_seconds.into());
    if let Some(limit) = spec.revision_history_limit {
        c.non_negative("spec.revisionHistoryLimit", limit.into());
    }
    if let Some(deadline) = spec.progress_deadline_seconds {
        if deadline <= spec.min_ready_seconds {
            c.fail("spec.progressDeadlineSeconds", "must be greater than minReadySeconds");
        }
    }
    let Some(strategy) = spec.strategy else {
        return;
    };
    c.one_of(
        "spec.strategy.type",
        &strategy.r#type,
        &["", "RollingUpdate", "Recreate"],
    );
    let Some(rolling) = strategy.rolling_update else {
        return;
    };
    if strategy.r#type == "Recreate" {
        c.fail(
            "spec.strategy.rollingUpdate",
            "may not be set when the strategy is Recreate",
        );
    }
    let surge = rolling
        .max_surge
        .as_ref()
        .map(|v| int_or_percent(c, "spec.strategy.rollingUpdate.maxSurge", v));
    let unavailable = rolling
        .max_unavailable
        .as_ref()
        .map(|v| int_or_percent(c, "spec.strategy.rollingUpdate.maxUnavailable", v));
    if surge == Some(Some(0)) && unavailable == Some(Some(0)) {
        c.fail(
            "spec.strategy.rollingUpdate",
            "maxSurge and maxUnavailable may not both be 0",
        );
    }
}

/// Checks an int-or-percent value; returns its number (count or percent).
fn int_or_percent(c: &mut Checker, path: &str, value: &api::IntOrString) -> Option<i64> {
    use api::int_or_string::Value;
    match &value.value {
        Some(Value::IntValue(n)) if *n >= 0 => Some((*n).into()),
        Some(Value::StrValue(s)) => match s.strip_suffix('%').and_then(|n| n.parse::<i64>().ok()) {
            Some(n) if (0..=100).contains(&n) => Some(n),
            _ => {
                c.fail(path, format!("{s:?} is not a count or a percentage like 25%"));
                None
            }
        },
        _ => {
            c.fail(path, "must be a count of 0 or more, or a percentage like 25%");
            None
        }
    }
}

fn service(c: &mut Checker, svc: &api::Service) {
    let spec = svc.spec.clone().unwrap_or_default();
    c.one_of("spec.type", &spec.r#type, &["", "ClusterIP", "NodePort"]);
    labels(c, "spec.selector", &spec.selector);
    if spec.ports.is_empty() && spec.cluster_ip != "None" {
        c.fail("spec.ports", "needs at least one port");
    }
    let mut names = HashSet::new();
    for (i, port) in spec.ports.iter().enumerate() {
        let path = format!("spec.ports[{i}]");
        c.port(&format!("{path}.port"), port.port, false);
        c.one_of(&format!("{path}.protocol"), &port.protocol, &["", "TCP", "UDP"]);
        if spec.ports.len() > 1 && port.name.is_empty() {
            c.fail(format!("{path}.name"), "is required when a service has several ports");
        }
        if !port.name.is_empty() && !names.insert(port.name.clone()) {
            c.fail(format!("{path}.name"), format!("{:?} is used twice", port.name));
        }
        if let Some(api::IntOrString {
            value: Some(api::int_or_string::Value::IntValue(target)),
        }) = &port.target_port
        {
            c.port(&format!("{path}.targetPort"), *target, false);
        }
        if port.node_port != 0 {
            if spec.r#type != "NodePort" {
                c.fail(format!("{path}.nodePort"), "may only be set on a NodePort service");
            }
            c.port(&format!("{path}.nodePort"), port.node_port, false);
        }
    }
}

/// A node's pod range: an IPv4 CIDR block.
fn pod_cidr(text: &str) -> Result<(), String> {
    text.parse::<crate::net::Cidr>().map(|_| ()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
