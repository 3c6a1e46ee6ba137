//! Stateless checks the master runs on every object it is asked to store,
//! whatever client sent it: names and labels as in Kubernetes (DNS-1123),
//! required fields, allowed values, quantities. Every problem is reported
//! with its field path; all problems are reported at once.
//!
//! Checks that need the store (does the namespace exist, is the name free)
//! are made when the write is applied, not here.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::api::object::Resource;
use crate::api::{self, Object, ObjectMeta};
use crate::quantity::Quantity;
use crate::selector::Selector;
use crate::Kind;

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

const MAX_NAME: usize = 253;
const MAX_LABEL: usize = 63;

/// A DNS-1123 label: at most 63 lowercase letters, digits and '-', starting
/// and ending with a letter or digit.
///
/// # Errors
/// A sentence saying which rule is broken.
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_LABEL {
        return Err(format!("{s:?} is longer than {MAX_LABEL} characters"));
    }
    let ok_chars = s
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let ok_ends = s.as_bytes()[0].is_ascii_alphanumeric() && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric();
    if !ok_chars || !ok_ends {
        return Err(format!(
            "{s:?} is not a valid DNS-1123 label: use lowercase letters, digits and '-', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain: dot-separated labels, at most 253 characters.
///
/// # Errors
/// A sentence saying which rule is broken.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_NAME {
        return Err(format!("{s:?} is longer than {MAX_NAME} characters"));
    }
    if s.split('.').any(|part| dns1123_label(part).is_err()) {
        return Err(format!(
            "{s:?} is not a valid DNS-1123 subdomain: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A DNS-1035 label (Service names): a DNS-1123 label starting with a letter.
fn dns1035_label(s: &str) -> Result<(), String> {
    dns1123_label(s)?;
    if !s.as_bytes()[0].is_ascii_lowercase() {
        return Err(format!("{s:?} must start with a lowercase letter"));
    }
    Ok(())
}

/// A label or annotation key: an optional DNS subdomain prefix and '/', then
/// a name of at most 63 letters, digits, '-', '_' and '.'.
///
/// # Errors
/// A sentence saying which rule is broken.
pub fn qualified_name(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        dns1123_subdomain(prefix).map_err(|e| format!("prefix of {key:?}: {e}"))?;
    }
    label_value(name).map_err(|e| format!("key {key:?}: {e}"))?;
    if name.is_empty() {
        return Err(format!("key {key:?} has an empty name"));
    }
    Ok(())
}

/// A label value: empty, or at most 63 letters, digits, '-', '_' and '.',
/// starting and ending with a letter or digit.
///
/// # Errors
/// A sentence saying which rule is broken.
pub fn label_value(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > MAX_LABEL {
        return Err(format!("{value:?} is longer than {MAX_LABEL} characters"));
    }
    let bytes = value.as_bytes();
    let ok_chars = bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b));
    if !ok_chars || !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Err(format!(
            "{value:?} must be letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ));
    }
    Ok(())
}

/// A ConfigMap or Secret key: letters, digits, '-', '_' and '.'.
fn config_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.len() > MAX_NAME || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "{key:?} is not a valid key: use letters, digits, '-', '_' and '.'"
        ));
    }
    if key == "." || key == ".." {
        return Err(format!("{key:?} is not a valid key"));
    }
    Ok(())
}

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

fn pod_spec(c: &mut Checker, path: &str, spec: &api::PodSpec) {
    if spec.containers.is_empty() {
        c.fail(format!("{path}.containers"), "needs at least one container");
    }
    c.one_of(
        &format!("{path}.restartPolicy"),
        &spec.restart_policy,
        &["", "Always", "OnFailure", "Never"],
    );
    if let Some(grace) = spec.termination_grace_period_seconds {
        c.non_negative(&format!("{path}.terminationGracePeriodSeconds"), grace);
    }
    labels(c, &format!("{path}.nodeSelector"), &spec.node_selector);
    let volume_names = volumes(c, path, &spec.volumes);
    let mut names = HashSet::new();
    for (i, container) in spec.containers.iter().enumerate() {
        let cpath = format!("{path}.containers[{i}]");
        c.check(&format!("{cpath}.name"), dns1123_label(&container.name));
        if !names.insert(container.name.as_str()) {
            c.fail(
                format!("{cpath}.name"),
                format!("{:?} is used by another container", container.name),
            );
        }
        self::container(c, &cpath, container, &volume_names);
    }
    for (i, toleration) in spec.tolerations.iter().enumerate() {
        let tpath = format!("{path}.tolerations[{i}]");
        c.one_of(
            &format!("{tpath}.operator"),
            &toleration.operator,
            &["", "Equal", "Exists"],
        );
        c.one_of(
            &format!("{tpath}.effect"),
            &toleration.effect,
            &["", "NoSchedule", "PreferNoSchedule", "NoExecute"],
        );
        if toleration.operator == "Exists" && !toleration.value.is_empty() {
            c.fail(format!("{tpath}.value"), "must be empty when the operator is Exists");
        }
        if toleration.key.is_empty() && toleration.operator != "Exists" {
            c.fail(format!("{tpath}.operator"), "must be Exists when the key is empty");
        }
    }
    if let Some(node_affinity) = spec.affinity.as_ref().and_then(|a| a.node_affinity.as_ref()) {
        let apath = format!("{path}.affinity.nodeAffinity");
        if let Some(required) = &node_affinity.required_during_scheduling_ignored_during_execution {
            let rpath = format!("{apath}.requiredDuringSchedulingIgnoredDuringExecution");
            if required.node_selector_terms.is_empty() {
                c.fail(format!("{rpath}.nodeSelectorTerms"), "needs at least one term");
            }
            for (i, term) in required.node_selector_terms.iter().enumerate() {
                node_selector_term(c, &format!("{rpath}.nodeSelectorTerms[{i}]"), term);
            }
        }
        for (i, preferred) in node_affinity
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .enumerate()
        {
            let ppath = format!("{apath}.preferredDuringSchedulingIgnoredDuringExecution[{i}]");
            if !(1..=100).contains(&preferred.weight) {
                c.fail(format!("{ppath}.weight"), "must be between 1 and 100");
            }
            match &preferred.preference {
                Some(term) => node_selector_term(c, &format!("{ppath}.preference"), term),
                None => c.fail(format!("{ppath}.preference"), "is required"),
            }
        }
    }
}

fn node_selector_term(c: &mut Checker, path: &str, term: &api::NodeSelectorTerm) {
    for (i, req) in term.match_expressions.iter().enumerate() {
        let rpath = format!("{path}.matchExpressions[{i}]");
        c.check(&format!("{rpath}.key"), qualified_name(&req.key));
        c.one_of(
            &format!("{rpath}.operator"),
            &req.operator,
            &["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"],
        );
        match req.operator.as_str() {
            "In" | "NotIn" if req.values.is_empty() => c.fail(format!("{rpath}.values"), "needs at least one value"),
            "Exists" | "DoesNotExist" if !req.values.is_empty() => {
                c.fail(format!("{rpath}.values"), "must be empty for this operator")
            }
            "Gt" | "Lt" if req.values.len() != 1 || req.values[0].parse::<i64>().is_err() => {
                c.fail(format!("{rpath}.values"), "needs exactly one integer value")
            }
            _ => {}
        }
    }
}

fn volumes<'a>(c: &mut Checker, path: &str, volumes: &'a [api::Volume]) -> HashSet<&'a str> {
    use api::volume::Source;
    let mut names = HashSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let vpath = format!("{path}.volumes[{i}]");
        c.check(&format!("{vpath}.name"), dns1123_label(&volume.name));
        if !names.insert(volume.name.as_str()) {
            c.fail(
                format!("{vpath}.name"),
                format!("{:?} is used by another volume", volume.name),
            );
        }
        match &volume.source {
            None => c.fail(
                &vpath,
                "needs a source: emptyDir, hostPath, gitRepo, configMap, secret or persistentVolumeClaim",
            ),
            Some(Source::EmptyDir(dir)) => {
                c.one_of(&format!("{vpath}.emptyDir.medium"), &dir.medium, &["", "Memory"]);
                if let Some(limit) = &dir.size_limit {
                    c.quantity(&format!("{vpath}.emptyDir.sizeLimit"), limit);
                }
            }
            Some(Source::HostPath(host)) => {
                if !host.path.starts_with('/') {
                    c.fail(format!("{vpath}.hostPath.path"), "must be an absolute path");
                }
                c.one_of(
                    &format!("{vpath}.hostPath.type"),
                    &host.r#type,
                    &["", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket"],
                );
            }
            Some(Source::GitRepo(git)) => {
                if git.repository.is_empty() {
                    c.fail(format!("{vpath}.gitRepo.repository"), "is required");
                }
                if git.directory.split('/').any(|part| part == "..") {
                    c.fail(format!("{vpath}.gitRepo.directory"), "must not contain '..'");
                }
            }
            Some(Source::ConfigMap(cm)) => {
                if cm.name.is_empty() {
                    c.fail(format!("{vpath}.configMap.name"), "is required");
                }
                key_paths(c, &format!("{vpath}.configMap.items"), &cm.items);
            }
            Some(Source::Secret(secret)) => {
                if secret.secret_name.is_empty() {
                    c.fail(format!("{vpath}.secret.secretName"), "is required");
                }
                key_paths(c, &format!("{vpath}.secret.items"), &secret.items);
            }
            Some(Source::PersistentVolumeClaim(claim)) => {
                if claim.claim_name.is_empty() {
                    c.fail(format!("{vpath}.persistentVolumeClaim.claimName"), "is required");
                }
            }
        }
    }
    names
}

fn key_paths(c: &mut Checker, path: &str, items: &[api::KeyToPath]) {
    for (i, item) in items.iter().enumerate() {
        if item.key.is_empty() {
            c.fail(format!("{path}[{i}].key"), "is required");
        }
        if item.path.is_empty() || item.path.starts_with('/') || item.path.split('/').any(|p| p == "..") {
            c.fail(format!("{path}[{i}].path"), "must be a relative path without '..'");
        }
    }
}

fn container(c: &mut Checker, path: &str, container: &api::Container, volume_names: &HashSet<&str>) {
    if container.image.trim().is_empty() {
        c.fail(format!("{path}.image"), "is required");
    }
    c.one_of(
        &format!("{path}.imagePullPolicy"),
        &container.image_pull_policy,
        &["", "Always", "IfNotPresent", "Never"],
    );
    for (i, env) in container.env.iter().enumerate() {
        let epath = format!("{path}.env[{i}]");
        if env.name.is_empty() || env.name.contains('=') {
            c.fail(format!("{epath}.name"), "must be a non-empty name without '='");
        }
        if let Some(from) = &env.value_from {
            let sources = [
                from.config_map_key_ref.is_some(),
                from.secret_key_ref.is_some(),
                from.field_ref.is_some(),
                from.resource_field_ref.is_some(),
            ];
            if sources.iter().filter(|s| **s).count() != 1 {
                c.fail(
                    format!("{epath}.valueFrom"),
                    "needs exactly one of configMapKeyRef, secretKeyRef, fieldRef or resourceFieldRef",
                );
            }
            if !env.value.is_empty() {
                c.fail(format!("{epath}.value"), "may not be set together with valueFrom");
            }
            if let Some(field) = &from.field_ref {
                let supported = [
                    "metadata.name",
                    "metadata.namespace",
                    "metadata.uid",
                    "spec.nodeName",
                    "status.podIP",
                    "status.hostIP",
                ];
                let indexed = field.field_path.starts_with("metadata.labels['")
                    || field.field_path.starts_with("metadata.annotations['");
                if !supported.contains(&field.field_path.as_str()) && !indexed {
                    c.fail(
                        format!("{epath}.valueFrom.fieldRef.fieldPath"),
                        format!(
                            "{:?} is not supported; supported: {}",
                            field.field_path,
                            supported.join(", ")
                        ),
                    );
                }
            }
            if let Some(resource) = &from.resource_field_ref {
                c.one_of(
                    &format!("{epath}.valueFrom.resourceFieldRef.resource"),
                    &resource.resource,
                    &["limits.cpu", "limits.memory", "requests.cpu", "requests.memory"],
                );
            }
        }
    }
    for (i, from) in container.env_from.iter().enumerate() {
        if from.config_map_ref.is_some() == from.secret_ref.is_some() {
            c.fail(
                format!("{path}.envFrom[{i}]"),
                "needs exactly one of configMapRef or secretRef",
            );
        }
    }
    let mut port_names = HashSet::new();
    for (i, port) in container.ports.iter().enumerate() {
        let ppath = format!("{path}.ports[{i}]");
        c.port(&format!("{ppath}.containerPort"), port.container_port, false);
        c.port(&format!("{ppath}.hostPort"), port.host_port, true);
        c.one_of(&format!("{ppath}.protocol"), &port.protocol, &["", "TCP", "UDP"]);
        if !port.name.is_empty() && !port_names.insert(port.name.as_str()) {
            c.fail(
                format!("{ppath}.name"),
                format!("{:?} is used by another port", port.name),
            );
        }
    }
    if let Some(resources) = &container.resources {
        let requests = resource_map(
            c,
            &format!("{path}.resources.requests"),
            &resources.requests,
            &["cpu", "memory"],
        );
        let limits = resource_map(
            c,
            &format!("{path}.resources.limits"),
            &resources.limits,
            &["cpu", "memory"],
        );
        for (name, request) in &requests {
            if limits.get(name).is_some_and(|limit| request > limit) {
                c.fail(
                    format!("{path}.resources.requests.{name}"),
                    format!("must not exceed the limit {}", resources.limits[name].value),
                );
            }
        }
    }
    for (i, mount) in container.volume_mounts.iter().enumerate() {
        let mpath = format!("{path}.volumeMounts[{i}]");
        if !volume_names.contains(mount.name.as_str()) {
            c.fail(
                format!("{mpath}.name"),
                format!("no volume named {:?} in the pod", mount.name),
            );
        }
        if !mount.mount_path.starts_with('/') {
            c.fail(format!("{mpath}.mountPath"), "must be an absolute path");
        }
        if mount.sub_path.starts_with('/') || mount.sub_path.split('/').any(|p| p == "..") {
            c.fail(format!("{mpath}.subPath"), "must be a relative path without '..'");
        }
    }
    for (name, probe) in [
        ("livenessProbe", &container.liveness_probe),
        ("readinessProbe", &container.readiness_probe),
        ("startupProbe", &container.startup_probe),
    ] {
        if let Some(probe) = probe {
            self::probe(c, &format!("{path}.{name}"), probe, &port_names);
        }
    }
}

fn probe(c: &mut Checker, path: &str, probe: &api::Probe, port_names: &HashSet<&str>) {
    let handlers = [
        probe.exec.is_some(),
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
    ];
    if handlers.iter().filter(|h| **h).count() != 1 {
        c.fail(path, "needs exactly one of exec, httpGet or tcpSocket");
    }
    if probe.exec.as_ref().is_some_and(|e| e.command.is_empty()) {
        c.fail(format!("{path}.exec.command"), "is required");
    }
    let port = probe
        .http_get
        .as_ref()
        .map(|h| (format!("{path}.httpGet.port"), h.port.as_ref()))
        .or_else(|| {
            probe
                .tcp_socket
                .as_ref()
                .map(|t| (format!("{path}.tcpSocket.port"), t.port.as_ref()))
        });
    if let Some((ppath, port)) = port {
        match port.and_then(|p| p.value.as_ref()) {
            Some(api::int_or_string::Value::IntValue(n)) => c.port(&ppath, *n, false),
            Some(api::int_or_string::Value::StrValue(name)) if port_names.contains(name.as_str()) => {}
            Some(api::int_or_string::Value::StrValue(name)) => {
                c.fail(ppath, format!("no container port named {name:?}"))
            }
            None => c.fail(ppath, "is required"),
        }
    }
    if let Some(http) = &probe.http_get {
        c.one_of(&format!("{path}.httpGet.scheme"), &http.scheme, &["", "HTTP", "HTTPS"]);
    }
    for (field, value) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("periodSeconds", probe.period_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        c.non_negative(&format!("{path}.{field}"), value.into());
    }
}

#[cfg(test)]
mod tests;
