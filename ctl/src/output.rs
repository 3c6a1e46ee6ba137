//! Tables as kubectl prints them: one row per object, kubectl's columns per
//! kind, `-o wide` adding a few, a NAMESPACE column with `-A`.

use std::time::{Duration, SystemTime};

use bosun_proto::api::object::Resource;
use bosun_proto::api::{self, Object};
use bosun_proto::selector::Selector;
use bosun_proto::Kind;

/// A table ready to print.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table of given headers and rows.
    pub fn new(headers: Vec<String>, rows: Vec<Vec<String>>) -> Table {
        Table { headers, rows }
    }

    /// A table of `objects` of one kind.
    pub fn of(kind: Kind, objects: &[Object], wide: bool, with_namespace: bool) -> Table {
        let mut headers: Vec<String> = headers(kind, wide).into_iter().map(String::from).collect();
        let mut rows: Vec<Vec<String>> = objects.iter().map(|o| row(o, wide)).collect();
        if with_namespace && kind.namespaced() {
            headers.insert(0, "NAMESPACE".to_string());
            for (row, object) in rows.iter_mut().zip(objects) {
                row.insert(0, object.namespace().to_string());
            }
        }
        Table { headers, rows }
    }

    /// Adds a column per label key in `columns` (`-L`: headed by the key's
    /// name part, upper-cased, as kubectl) and, with `all`, a LABELS column
    /// (`--show-labels`). `objects` are the rows' objects, in order.
    pub fn with_labels(mut self, objects: &[Object], columns: &[String], all: bool) -> Table {
        for key in columns {
            let name = key.rsplit('/').next().unwrap_or(key);
            self.headers.push(name.to_ascii_uppercase());
        }
        if all {
            self.headers.push("LABELS".to_string());
        }
        for (row, object) in self.rows.iter_mut().zip(objects) {
            let labels = object.metadata().map(|m| m.labels.clone()).unwrap_or_default();
            for key in columns {
                row.push(labels.get(key).cloned().unwrap_or_default());
            }
            if all {
                let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                pairs.sort();
                row.push(if pairs.is_empty() {
                    "<none>".to_string()
                } else {
                    pairs.join(",")
                });
            }
        }
        self
    }

    /// The table as text: columns left-aligned, three spaces apart.
    pub fn render(&self) -> String {
        self.render_aligned(&mut Vec::new(), true)
    }

    /// The rows as text, after the header when `header`, with columns at
    /// least `widths` wide; `widths` grows to fit, so rows rendered later
    /// with it line up with these (`ctl get --watch`). A header not shown
    /// does not widen its columns (`--no-headers`, as kubectl).
    pub fn render_aligned(&self, widths: &mut Vec<usize>, header: bool) -> String {
        widths.resize(self.headers.len().max(widths.len()), 0);
        if header {
            for (width, cell) in widths.iter_mut().zip(&self.headers) {
                *width = (*width).max(cell.len());
            }
        }
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let shown_headers = header.then_some(&self.headers);
        for row in shown_headers.into_iter().chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, width)) in row.iter().zip(widths.iter()).enumerate() {
                if i + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(&format!("{cell:<width$}   ", width = *width));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn headers(kind: Kind, wide: bool) -> Vec<&'static str> {
    let (base, extra): (&[&str], &[&str]) = match kind {
        Kind::Namespace => (&["NAME", "STATUS", "AGE"], &[]),
        Kind::Node => (
            &["NAME", "STATUS", "AGE", "VERSION", "CPU", "MEMORY", "PODS"],
            &[
                "INTERNAL-IP",
                "ALLOCATABLE",
                "OS-IMAGE",
                "KERNEL-VERSION",
                "CONTAINER-RUNTIME",
            ],
        ),
        Kind::Pod => (&["NAME", "READY", "STATUS", "RESTARTS", "AGE"], &["IP", "NODE"]),
        Kind::ReplicaSet => (
            &["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        Kind::Deployment => (
            &["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
            &["CONTAINERS", "IMAGES", "SELECTOR"],
        ),
        Kind::Service => (
            &["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
            &["SELECTOR"],
        ),
        Kind::Endpoints => (&["NAME", "ENDPOINTS", "AGE"], &[]),
        Kind::ConfigMap => (&["NAME", "DATA", "AGE"], &[]),
        Kind::Secret => (&["NAME", "TYPE", "DATA", "AGE"], &[]),
        Kind::PersistentVolume => (
            &[
                "NAME",
                "CAPACITY",
                "ACCESS MODES",
                "RECLAIM POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "AGE",
            ],
            &[],
        ),
        Kind::PersistentVolumeClaim => (
            &[
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "AGE",
            ],
            &[],
        ),
        Kind::StorageClass => (
            &["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "AGE"],
            &[],
        ),
        Kind::Event => (&["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], &[]),
    };
    let mut headers = base.to_vec();
    if wide {
        headers.extend_from_slice(extra);
    }
    headers
}

fn row(object: &Object, wide: bool) -> Vec<String> {
    let meta = object.metadata().cloned().unwrap_or_default();
    let age = age(meta.creation_timestamp.as_ref());
    let name = meta.name.clone();
    let (mut base, extra): (Vec<String>, Vec<String>) = match &object.resource {
        Some(Resource::Namespace(ns)) => {
            let phase = ns.status.as_ref().map(|s| s.phase.clone()).filter(|p| !p.is_empty());
            let phase = phase.unwrap_or_else(|| {
                if meta.deletion_timestamp.is_some() {
                    "Terminating"
                } else {
                    "Active"
                }
                .into()
            });
            (vec![name, phase, age], vec![])
        }
        Some(Resource::Node(node)) => node_row(node, name, age),
        Some(Resource::Pod(pod)) => pod_row(pod, name, age, meta.deletion_timestamp.is_some()),
        Some(Resource::ReplicaSet(rs)) => {
            let spec = rs.spec.clone().unwrap_or_default();
            let status = rs.status.clone().unwrap_or_default();
            let (containers, images) = containers_images(spec.template.as_ref());
            (
                vec![
                    name,
                    spec.replicas.unwrap_or(1).to_string(),
                    status.replicas.to_string(),
                    status.ready_replicas.to_string(),
                    age,
                ],
                vec![containers, images, selector_text(spec.selector.as_ref())],
            )
        }
        Some(Resource::Deployment(deploy)) => {
            let spec = deploy.spec.clone().unwrap_or_default();
            let status = deploy.status.clone().unwrap_or_default();
            let (containers, images) = containers_images(spec.template.as_ref());
            (
                vec![
                    name,
                    format!("{}/{}", status.ready_replicas, spec.replicas.unwrap_or(1)),
                    status.updated_replicas.to_string(),
                    status.available_replicas.to_string(),
                    age,
                ],
                vec![containers, images, selector_text(spec.selector.as_ref())],
            )
        }
        Some(Resource::Service(svc)) => service_row(svc, name, age),
        Some(Resource::Endpoints(ep)) => {
            let mut addresses = Vec::new();
            for subset in &ep.subsets {
                for address in &subset.addresses {
                    for port in &subset.ports {
                        addresses.push(format!("{}:{}", address.ip, port.port));
                    }
                }
            }
            let shown = match addresses.len() {
                0 => "<none>".to_string(),
                n if n > 3 => format!("{} + {} more...", addresses[..3].join(","), n - 3),
                _ => addresses.join(","),
            };
            (vec![name, shown, age], vec![])
        }
        Some(Resource::ConfigMap(cm)) => (
            vec![name, (cm.data.len() + cm.binary_data.len()).to_string(), age],
            vec![],
        ),
        Some(Resource::Secret(secret)) => (
            vec![name, secret.r#type.clone(), secret.data.len().to_string(), age],
            vec![],
        ),
        Some(Resource::PersistentVolume(pv)) => {
            let spec = pv.spec.clone().unwrap_or_default();
            let claim = spec
                .claim_ref
                .map(|c| format!("{}/{}", c.namespace, c.name))
                .unwrap_or_default();
            (
                vec![
                    name,
                    spec.capacity
                        .get("storage")
                        .map(|q| q.value.clone())
                        .unwrap_or_default(),
                    access_modes(&spec.access_modes),
                    spec.persistent_volume_reclaim_policy,
                    pv.status.as_ref().map(|s| s.phase.clone()).unwrap_or_default(),
                    claim,
                    spec.storage_class_name,
                    age,
                ],
                vec![],
            )
        }
        Some(Resource::PersistentVolumeClaim(pvc)) => {
            let spec = pvc.spec.clone().unwrap_or_default();
            let status = pvc.status.clone().unwrap_or_default();
            (
                vec![
                    name,
                    or_default(&status.phase, "Pending"),
                    spec.volume_name,
                    status
                        .capacity
                        .get("storage")
                        .map(|q| q.value.clone())
                        .unwrap_or_default(),
                    access_modes(&status.access_modes),
                    spec.storage_class_name.unwrap_or_default(),
                    age,
                ],
                vec![],
            )
        }
        Some(Resource::StorageClass(sc)) => (
            vec![
                name,
                sc.provisioner.clone(),
                sc.reclaim_policy.clone().unwrap_or_else(|| "Delete".into()),
                sc.volume_binding_mode.clone().unwrap_or_else(|| "Immediate".into()),
                age,
            ],
            vec![],
        ),
        Some(Resource::Event(event)) => {
            let last = event
                .last_timestamp
                .as_ref()
                .or(event.first_timestamp.as_ref())
                .or(meta.creation_timestamp.as_ref());
            let involved = event.involved_object.clone().unwrap_or_default();
            (
                vec![
                    self::age(last),
                    event.r#type.clone(),
                    event.reason.clone(),
                    format!("{}/{}", involved.kind.to_ascii_lowercase(), involved.name),
                    event.message.clone(),
                ],
                vec![],
            )
        }
        None => (vec![name], vec![]),
    };
    if wide {
        base.extend(extra);
    }
    base
}

fn or_default(value: &str, default: &str) -> String {
    if value.is_empty() { default } else { value }.to_string()
}

fn node_row(node: &api::Node, name: String, age: String) -> (Vec<String>, Vec<String>) {
    let status = node.status.clone().unwrap_or_default();
    let ready = status.conditions.iter().find(|c| c.r#type == "Ready");
    let mut state = match ready.map(|c| c.status.as_str()) {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node.spec.as_ref().is_some_and(|s| s.unschedulable) {
        state.push_str(",SchedulingDisabled");
    }
    let info = status.node_info.clone().unwrap_or_default();
    let ip = status
        .addresses
        .iter()
        .find(|a| a.r#type == "InternalIP")
        .map(|a| a.address.clone())
        .unwrap_or_else(|| "<none>".into());
    let quantity = |map: &std::collections::HashMap<String, api::Quantity>, key: &str| {
        map.get(key).map_or_else(|| "<none>".to_string(), |q| q.value.clone())
    };
    let allocatable = format!(
        "cpu={},memory={},pods={}",
        quantity(&status.allocatable, "cpu"),
        quantity(&status.allocatable, "memory"),
        quantity(&status.allocatable, "pods")
    );
    (
        vec![
            name,
            state,
            age,
            info.agent_version.clone(),
            quantity(&status.capacity, "cpu"),
            quantity(&status.capacity, "memory"),
            quantity(&status.capacity, "pods"),
        ],
        vec![
            ip,
            allocatable,
            info.os_image,
            info.kernel_version,
            info.container_runtime_version,
        ],
    )
}

fn pod_row(pod: &api::Pod, name: String, age: String, deleting: bool) -> (Vec<String>, Vec<String>) {
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let ready = status.container_statuses.iter().filter(|c| c.ready).count();
    let restarts: i32 = status.container_statuses.iter().map(|c| c.restart_count).sum();
    let waiting = status
        .container_statuses
        .iter()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref())
        .map(|w| w.reason.clone())
        .find(|r| !r.is_empty());
    let terminated = status
        .container_statuses
        .iter()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
        .map(|t| t.reason.clone())
        .find(|r| !r.is_empty());
    let shown = if deleting {
        "Terminating".to_string()
    } else {
        waiting
            .or(terminated)
            .or_else(|| (!status.reason.is_empty()).then(|| status.reason.clone()))
            .unwrap_or_else(|| or_default(&status.phase, "Pending"))
    };
    (
        vec![
            name,
            format!("{ready}/{}", spec.containers.len()),
            shown,
            restarts.to_string(),
            age,
        ],
        vec![
            if status.pod_ip.is_empty() {
                "<none>".into()
            } else {
                status.pod_ip
            },
            if spec.node_name.is_empty() {
                "<none>".into()
            } else {
                spec.node_name
            },
        ],
    )
}

fn service_row(svc: &api::Service, name: String, age: String) -> (Vec<String>, Vec<String>) {
    let spec = svc.spec.clone().unwrap_or_default();
    let ports: Vec<String> = spec
        .ports
        .iter()
        .map(|p| {
            let node_port = if p.node_port > 0 {
                format!(":{}", p.node_port)
            } else {
                String::new()
            };
            format!("{}{node_port}/{}", p.port, or_default(&p.protocol, "TCP"))
        })
        .collect();
    let selector: Vec<String> = {
        let mut pairs: Vec<_> = spec.selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
        pairs.sort();
        pairs
    };
    (
        vec![
            name,
            or_default(&spec.r#type, "ClusterIP"),
            or_default(&spec.cluster_ip, "<none>"),
            "<none>".into(),
            if ports.is_empty() {
                "<none>".into()
            } else {
                ports.join(",")
            },
            age,
        ],
        vec![if selector.is_empty() {
            "<none>".into()
        } else {
            selector.join(",")
        }],
    )
}

fn containers_images(template: Option<&api::PodTemplateSpec>) -> (String, String) {
    let containers = template
        .and_then(|t| t.spec.as_ref())
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    (
        containers.iter().map(|c| c.name.clone()).collect::<Vec<_>>().join(","),
        containers.iter().map(|c| c.image.clone()).collect::<Vec<_>>().join(","),
    )
}

fn selector_text(selector: Option<&api::LabelSelector>) -> String {
    selector
        .and_then(|s| Selector::from_message(s).ok())
        .map(|s| s.to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "<none>".into())
}

fn access_modes(modes: &[String]) -> String {
    modes
        .iter()
        .map(|m| match m.as_str() {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// How long ago `time` was, as kubectl prints it (`45s`, `3m12s`, `5h`, `12d`).
pub fn age(time: Option<&prost_types::Timestamp>) -> String {
    let Some(time) = time else {
        return "<unknown>".into();
    };
    let Ok(then) = SystemTime::try_from(*time) else {
        return "<invalid>".into();
    };
    let elapsed = SystemTime::now().duration_since(then).unwrap_or(Duration::ZERO);
    human_duration(elapsed)
}

/// kubectl's rounding of durations.
pub fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    let (m, h, days) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        if s.is_multiple_of(60) {
            format!("{m}m")
        } else {
            format!("{m}m{}s", s % 60)
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        if m.is_multiple_of(60) {
            format!("{h}h")
        } else {
            format!("{h}h{}m", m % 60)
        }
    } else if h < 48 {
        format!("{h}h")
    } else if days < 8 {
        if h.is_multiple_of(24) {
            format!("{days}d")
        } else {
            format!("{days}d{}h", h % 24)
        }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else {
        format!("{}y", days / 365)
    }
}

/// `deployment.apps/web`, `configmap/settings`: kubectl's `-o name`.
pub fn object_name(object: &Object) -> String {
    let kind = object.kind().map_or_else(|| "object".to_string(), kind_label);
    format!("{kind}/{}", object.name())
}

/// How kubectl names a kind before `/NAME`: `pod`, `deployment.apps`.
pub fn kind_label(kind: Kind) -> String {
    let group = kind
        .api_version()
        .split_once('/')
        .map(|(group, _)| format!(".{group}"))
        .unwrap_or_default();
    format!("{}{group}", kind.name().to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_like_kubectl() {
        for (secs, text) in [
            (5, "5s"),
            (119, "119s"),
            (125, "2m5s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (9 * 3600, "9h"),
            (3 * 86400, "3d"),
            (800 * 86400, "2y"),
        ] {
            assert_eq!(human_duration(Duration::from_secs(secs)), text, "{secs}");
        }
    }

    #[test]
    fn rows_rendered_later_line_up_with_the_first() {
        let config_map = |name: &str| -> Object {
            api::ConfigMap {
                metadata: Some(api::ObjectMeta {
                    name: name.into(),
                    namespace: "default".into(),
                    ..Default::default()
                }),
                ..Default::default()
            }
            .into()
        };
        let mut widths = Vec::new();
        let first =
            Table::of(Kind::ConfigMap, &[config_map("a-long-name")], false, false).render_aligned(&mut widths, true);
        let later = Table::of(Kind::ConfigMap, &[config_map("b")], false, false).render_aligned(&mut widths, false);
        assert_eq!(first.lines().count(), 2, "header and row: {first}");
        assert_eq!(later.lines().count(), 1, "no second header: {later}");
        let column = |line: &str| line.find("0 ").unwrap_or_default();
        assert_eq!(
            column(first.lines().nth(1).unwrap()),
            column(later.lines().next().unwrap()),
            "{first}{later}"
        );
        // A wider row widens the columns from then on.
        let wider = Table::of(Kind::ConfigMap, &[config_map("a-much-much-longer-name")], false, false)
            .render_aligned(&mut widths, false);
        assert!(wider.starts_with("a-much-much-longer-name   0"), "{wider}");
    }

    #[test]
    fn a_table_without_headers_is_as_wide_as_its_rows() {
        let object: Object = api::ConfigMap {
            metadata: Some(api::ObjectMeta {
                name: "a".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .into();
        let text = Table::of(Kind::ConfigMap, &[object], false, false).render_aligned(&mut Vec::new(), false);
        // NAME and DATA would make the columns 4 wide.
        assert!(text.starts_with("a   0   "), "{text:?}");
        assert_eq!(text.lines().count(), 1, "{text:?}");
    }

    #[test]
    fn label_columns_and_show_labels_come_after_the_others() {
        let object: Object = api::ConfigMap {
            metadata: Some(api::ObjectMeta {
                name: "a".into(),
                namespace: "default".into(),
                labels: [
                    ("tier".to_string(), "db".to_string()),
                    ("app.kubernetes.io/name".to_string(), "shop".to_string()),
                ]
                .into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .into();
        let bare: Object = api::ConfigMap {
            metadata: Some(api::ObjectMeta {
                name: "b".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .into();
        let objects = [object, bare];
        let columns = ["app.kubernetes.io/name".to_string(), "tier".to_string()];
        let text = Table::of(Kind::ConfigMap, &objects, false, false)
            .with_labels(&objects, &columns, true)
            .render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("NAME   TIER   LABELS"), "{text}");
        assert!(
            lines[1].ends_with("shop   db     app.kubernetes.io/name=shop,tier=db"),
            "{text}"
        );
        assert!(lines[2].ends_with("<none>"), "{text}");
    }

    #[test]
    fn renders_aligned_columns() {
        let objects: Vec<Object> = ["a", "longer-name"]
            .into_iter()
            .map(|name| {
                api::ConfigMap {
                    metadata: Some(api::ObjectMeta {
                        name: name.into(),
                        namespace: "default".into(),
                        ..Default::default()
                    }),
                    data: [("k".to_string(), "v".to_string())].into(),
                    ..Default::default()
                }
                .into()
            })
            .collect();
        let text = Table::of(Kind::ConfigMap, &objects, false, true).render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "NAMESPACE   NAME          DATA   AGE");
        assert!(lines[2].starts_with("default     longer-name   1      "), "{text}");
    }

    #[test]
    fn names_carry_the_api_group() {
        let deploy: Object = api::Deployment {
            metadata: Some(api::ObjectMeta {
                name: "web".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .into();
        assert_eq!(object_name(&deploy), "deployment.apps/web");
    }
}
