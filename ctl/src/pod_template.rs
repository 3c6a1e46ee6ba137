//! kubectl's text for a pod template: the `Pod Template:` block of
//! `describe deployment`, `describe replicaset` and `rollout history
//! --revision`, and the container pieces `describe pod` shares. Cells
//! are separated by tabs, as kubectl writes them;
//! [`crate::tabwriter::align`] lines them up where kubectl does.

use std::collections::HashMap;
use std::fmt::Write as _;

use bosun_proto::api::{self, int_or_string, Container, PodTemplateSpec};

/// Annotations kubectl never shows.
const HIDDEN_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    crate::commands::LAST_APPLIED,
];
/// Longer annotations are shown on their own lines, cut at this length.
const MAX_ANNOTATION_LEN: usize = 140;

/// kubectl's `DescribePodTemplate`.
pub fn describe(template: Option<&PodTemplateSpec>) -> String {
    let mut w = String::from("Pod Template:\n");
    let Some(template) = template else {
        w.push_str("  <unset>");
        return w;
    };
    let meta = template.metadata.clone().unwrap_or_default();
    let spec = template.spec.clone().unwrap_or_default();
    labels(&mut w, "  Labels", &meta.labels);
    if !meta.annotations.is_empty() {
        annotations(&mut w, "  Annotations", &meta.annotations);
    }
    let none = if spec.containers.is_empty() { " <none>" } else { "" };
    let _ = writeln!(w, "  Containers:{none}");
    for container in &spec.containers {
        describe_container(&mut w, container);
    }
    volumes(&mut w, "  ", &spec.volumes);
    labels(&mut w, "  Node-Selectors", &spec.node_selector);
    tolerations(&mut w, "  Tolerations", &spec.tolerations);
    w
}

/// `Labels:\ta=1` with further labels on their own lines, sorted.
pub fn labels(w: &mut String, title: &str, labels: &HashMap<String, String>) {
    let _ = write!(w, "{title}:\t");
    if labels.is_empty() {
        w.push_str("<none>\n");
        return;
    }
    for (i, key) in sorted_keys(labels).into_iter().enumerate() {
        if i > 0 {
            w.push('\t');
        }
        let _ = writeln!(w, "{key}={}", labels[key]);
    }
}

/// `Annotations:\tkey: value`, long or multi-line values on lines of their own.
pub fn annotations(w: &mut String, title: &str, annotations: &HashMap<String, String>) {
    let _ = write!(w, "{title}:\t");
    let keys: Vec<&String> = sorted_keys(annotations)
        .into_iter()
        .filter(|k| !HIDDEN_ANNOTATIONS.contains(&k.as_str()))
        .collect();
    if keys.is_empty() {
        w.push_str("<none>\n");
        return;
    }
    for (i, key) in keys.into_iter().enumerate() {
        if i > 0 {
            w.push('\t');
        }
        let value = annotations[key].trim_end_matches('\n');
        if value.len() + key.len() + 2 > MAX_ANNOTATION_LEN || value.contains('\n') {
            let _ = writeln!(w, "{key}:");
            for line in value.split('\n') {
                let _ = writeln!(w, "\t  {}", shorten(line, MAX_ANNOTATION_LEN - 2));
            }
        } else {
            let _ = writeln!(w, "{key}: {value}");
        }
    }
}

fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

fn sorted_keys<V>(map: &HashMap<String, V>) -> Vec<&String> {
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort();
    keys
}

fn describe_container(w: &mut String, c: &Container) {
    let _ = writeln!(w, "   {}:", c.name);
    let _ = writeln!(w, "    Image:\t{}", c.image);
    ports(w, c);
    command(w, c);
    resources(w, c);
    probes(w, c);
    env_from(w, c);
    environment(w, c, &|_| String::new());
    mounts(w, c);
}

/// `Port:` and `Host Port:` (`Ports:`, `Host Ports:` for several).
pub fn ports(w: &mut String, c: &Container) {
    let port = |p: &api::ContainerPort, number: i32| {
        let mut text = format!("{number}/{}", p.protocol);
        if !p.name.is_empty() {
            let _ = write!(text, " ({})", p.name);
        }
        text
    };
    let ports: Vec<String> = c.ports.iter().map(|p| port(p, p.container_port)).collect();
    let host_ports: Vec<String> = c.ports.iter().map(|p| port(p, p.host_port)).collect();
    for (singular, plural, list) in [("Port", "Ports", ports), ("Host Port", "Host Ports", host_ports)] {
        let joined = list.join(", ");
        if joined.contains(',') {
            let _ = writeln!(w, "    {plural}:\t{joined}");
        } else {
            let _ = writeln!(w, "    {singular}:\t{}", or_none(&joined));
        }
    }
}

/// `Command:` and `Args:`, one word a line.
pub fn command(w: &mut String, c: &Container) {
    for (title, lines) in [("Command", &c.command), ("Args", &c.args)] {
        if !lines.is_empty() {
            let _ = writeln!(w, "    {title}:");
            for line in lines.iter().flat_map(|l| l.split('\n')) {
                let _ = writeln!(w, "      {line}");
            }
        }
    }
}

/// `Limits:` and `Requests:`, one resource a line.
pub fn resources(w: &mut String, c: &Container) {
    let resources = c.resources.clone().unwrap_or_default();
    for (title, list) in [("Limits", &resources.limits), ("Requests", &resources.requests)] {
        if !list.is_empty() {
            let _ = writeln!(w, "    {title}:");
            for name in sorted_keys(list) {
                let _ = writeln!(w, "      {name}:\t{}", list[name].value);
            }
        }
    }
}

/// `Liveness:`, `Readiness:` and `Startup:`, each on one line.
pub fn probes(w: &mut String, c: &Container) {
    for (title, probe) in [
        ("Liveness", &c.liveness_probe),
        ("Readiness", &c.readiness_probe),
        ("Startup", &c.startup_probe),
    ] {
        if let Some(probe) = probe {
            let _ = writeln!(w, "    {title}:\t{}", describe_probe(probe));
        }
    }
}

/// `Environment Variables from:`, if the container has `envFrom`.
pub fn env_from(w: &mut String, c: &Container) {
    if c.env_from.is_empty() {
        return;
    }
    w.push_str("    Environment Variables from:\n");
    for source in &c.env_from {
        let (name, from, optional) = match (&source.config_map_ref, &source.secret_ref) {
            (Some(cm), _) => (cm.name.as_str(), "ConfigMap", cm.optional.unwrap_or(false)),
            (None, Some(secret)) => (secret.name.as_str(), "Secret", secret.optional.unwrap_or(false)),
            (None, None) => ("", "", false),
        };
        if source.prefix.is_empty() {
            let _ = writeln!(w, "      {name}\t{from}\tOptional: {optional}");
        } else {
            let _ = writeln!(
                w,
                "      {name}\t{from} with prefix '{}'\tOptional: {optional}",
                source.prefix
            );
        }
    }
}

/// `Mounts:`, sorted by path.
pub fn mounts(w: &mut String, c: &Container) {
    let none = if c.volume_mounts.is_empty() { "\t<none>" } else { "" };
    let _ = writeln!(w, "    Mounts:{none}");
    let mut mounts: Vec<&api::VolumeMount> = c.volume_mounts.iter().collect();
    mounts.sort_by(|a, b| a.mount_path.cmp(&b.mount_path));
    for mount in mounts {
        let mut flags = vec![if mount.read_only { "ro" } else { "rw" }.to_string()];
        if !mount.sub_path.is_empty() {
            flags.push(format!("path={:?}", mount.sub_path));
        }
        let _ = writeln!(
            w,
            "      {} from {} ({})",
            mount.mount_path,
            mount.name,
            flags.join(",")
        );
    }
}

/// `Environment:`; `field_value` gives a `fieldRef`'s value (kubectl
/// resolves them for a pod, leaves them empty for a template).
pub fn environment(w: &mut String, c: &Container, field_value: &dyn Fn(&str) -> String) {
    let none = if c.env.is_empty() { "\t<none>" } else { "" };
    let _ = writeln!(w, "    Environment:{none}");
    for env in &c.env {
        let Some(from) = &env.value_from else {
            for (i, line) in env.value.split('\n').enumerate() {
                if i == 0 {
                    let _ = writeln!(w, "      {}:\t{line}", env.name);
                } else {
                    let _ = writeln!(w, "      \t{line}");
                }
            }
            continue;
        };
        let name = &env.name;
        if let Some(field) = &from.field_ref {
            let _ = writeln!(
                w,
                "      {name}:\t{} ({}:{})",
                field_value(&field.field_path),
                field.api_version,
                field.field_path
            );
        } else if let Some(resource) = &from.resource_field_ref {
            let _ = writeln!(
                w,
                "      {name}:\t{} ({})",
                resource_value(c, &resource.resource),
                resource.resource
            );
        } else if let Some(secret) = &from.secret_key_ref {
            let optional = secret.optional.unwrap_or(false);
            let _ = writeln!(
                w,
                "      {name}:\t<set to the key '{}' in secret '{}'>\tOptional: {optional}",
                secret.key, secret.name
            );
        } else if let Some(cm) = &from.config_map_key_ref {
            let optional = cm.optional.unwrap_or(false);
            let _ = writeln!(
                w,
                "      {name}:\t<set to the key '{}' of config map '{}'>\tOptional: {optional}",
                cm.key, cm.name
            );
        }
    }
}

/// The value a `resourceFieldRef` reads from the container itself
/// (`limits.cpu`...), or kubectl's "node allocatable" for an unset limit.
fn resource_value(c: &Container, reference: &str) -> String {
    let resources = c.resources.clone().unwrap_or_default();
    let (list, name) = match reference.split_once('.') {
        Some(("limits", name)) => (&resources.limits, name),
        Some(("requests", name)) => (&resources.requests, name),
        _ => return String::new(),
    };
    match list.get(name) {
        Some(quantity) => quantity.value.clone(),
        None if reference.starts_with("limits.") => "node allocatable".into(),
        None => "0".into(),
    }
}

/// kubectl's one-line probe: `http-get http://:8080/healthz delay=0s ...`.
pub fn describe_probe(probe: &api::Probe) -> String {
    let attrs = format!(
        "delay={}s timeout={}s period={}s #success={} #failure={}",
        probe.initial_delay_seconds,
        probe.timeout_seconds,
        probe.period_seconds,
        probe.success_threshold,
        probe.failure_threshold
    );
    if let Some(exec) = &probe.exec {
        return format!("exec [{}] {attrs}", exec.command.join(" "));
    }
    if let Some(http) = &probe.http_get {
        let port = int_or_string(http.port.as_ref());
        let host = if http.host.contains(':') {
            format!("[{}]", http.host)
        } else {
            http.host.clone()
        };
        let host = if port.is_empty() {
            host
        } else {
            format!("{host}:{port}")
        };
        // Kubernetes defaults the scheme to HTTP, and so does the agent.
        let scheme = if http.scheme.is_empty() { "HTTP" } else { &http.scheme };
        let scheme = format!("{}:", scheme.to_ascii_lowercase());
        return format!("http-get {scheme}//{host}{} {attrs}", http.path);
    }
    if let Some(tcp) = &probe.tcp_socket {
        return format!("tcp-socket {}:{} {attrs}", tcp.host, int_or_string(tcp.port.as_ref()));
    }
    format!("unknown {attrs}")
}

/// `25%` or `1`, as written.
pub fn int_or_string(value: Option<&api::IntOrString>) -> String {
    match value.and_then(|v| v.value.as_ref()) {
        Some(int_or_string::Value::IntValue(n)) => n.to_string(),
        Some(int_or_string::Value::StrValue(s)) => s.clone(),
        None => String::new(),
    }
}

/// `Volumes:` with each volume's source; `space` indents the title
/// (`"  "` in a template, nothing in a pod), as kubectl's `describeVolumes`.
pub fn volumes(w: &mut String, space: &str, volumes: &[api::Volume]) {
    use api::volume::Source;
    if volumes.is_empty() {
        let _ = writeln!(w, "{space}Volumes:\t<none>");
        return;
    }
    let _ = writeln!(w, "{space}Volumes:");
    let name_indent = if space.is_empty() { "" } else { " " };
    for volume in volumes {
        let _ = writeln!(w, "  {name_indent}{}:", volume.name);
        let lines: Vec<(&str, String)> = match &volume.source {
            Some(Source::EmptyDir(dir)) => vec![
                (
                    "Type",
                    "EmptyDir (a temporary directory that shares a pod's lifetime)".into(),
                ),
                ("Medium", dir.medium.clone()),
                (
                    "SizeLimit",
                    dir.size_limit
                        .as_ref()
                        .map(|q| q.value.clone())
                        .filter(|v| !v.is_empty() && v != "0")
                        .unwrap_or_else(|| "<unset>".into()),
                ),
            ],
            Some(Source::HostPath(host)) => vec![
                ("Type", "HostPath (bare host directory volume)".into()),
                ("Path", host.path.clone()),
                ("HostPathType", or_none(&host.r#type)),
            ],
            Some(Source::GitRepo(git)) => vec![
                (
                    "Type",
                    "GitRepo (a volume that is pulled from git when the pod is created)".into(),
                ),
                ("Repository", git.repository.clone()),
                ("Revision", git.revision.clone()),
            ],
            Some(Source::ConfigMap(cm)) => vec![
                ("Type", "ConfigMap (a volume populated by a ConfigMap)".into()),
                ("Name", cm.name.clone()),
                ("Optional", cm.optional.unwrap_or(false).to_string()),
            ],
            Some(Source::Secret(secret)) => vec![
                ("Type", "Secret (a volume populated by a Secret)".into()),
                ("SecretName", secret.secret_name.clone()),
                ("Optional", secret.optional.unwrap_or(false).to_string()),
            ],
            Some(Source::PersistentVolumeClaim(claim)) => vec![
                (
                    "Type",
                    "PersistentVolumeClaim (a reference to a PersistentVolumeClaim in the same namespace)".into(),
                ),
                ("ClaimName", claim.claim_name.clone()),
                ("ReadOnly", claim.read_only.to_string()),
            ],
            None => vec![("Type", "<unknown>".into())],
        };
        for (label, value) in lines {
            let _ = writeln!(w, "    {label}:\t{value}");
        }
    }
}

/// `Tolerations:`, one a line, as kubectl's `printTolerationsMultiline`.
pub fn tolerations(w: &mut String, title: &str, tolerations: &[api::Toleration]) {
    let _ = write!(w, "{title}:\t");
    if tolerations.is_empty() {
        w.push_str("<none>\n");
        return;
    }
    let mut sorted: Vec<&api::Toleration> = tolerations.iter().collect();
    sorted.sort_by(|a, b| a.key.cmp(&b.key));
    for (i, t) in sorted.into_iter().enumerate() {
        if i > 0 {
            w.push('\t');
        }
        w.push_str(&t.key);
        if !t.value.is_empty() {
            let _ = write!(w, "={}", t.value);
        }
        if !t.effect.is_empty() {
            let _ = write!(w, ":{}", t.effect);
        }
        if t.operator == "Exists" && t.value.is_empty() {
            let space = if t.key.is_empty() && t.effect.is_empty() {
                ""
            } else {
                " "
            };
            let _ = write!(w, "{space}op=Exists");
        }
        if let Some(seconds) = t.toleration_seconds {
            let _ = write!(w, " for {seconds}s");
        }
        w.push('\n');
    }
}

pub(crate) fn or_none(text: &str) -> String {
    if text.is_empty() { "<none>" } else { text }.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::api::{ContainerPort, EnvVar, ObjectMeta, PodSpec};

    #[test]
    fn describes_a_template_as_kubectl_does() {
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: [("app", "web"), ("pod-template-hash", "5d8f")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: "nginx:1.25".into(),
                    ports: vec![ContainerPort {
                        container_port: 80,
                        protocol: "TCP".into(),
                        ..Default::default()
                    }],
                    env: vec![EnvVar {
                        name: "MODE".into(),
                        value: "prod".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }),
        };
        assert_eq!(
            describe(Some(&template)),
            "Pod Template:\n  Labels:\tapp=web\n\tpod-template-hash=5d8f\n  Containers:\n   web:\n    Image:\tnginx:1.25\n    Port:\t80/TCP\n    Host Port:\t0/TCP\n    Environment:\n      MODE:\tprod\n    Mounts:\t<none>\n  Volumes:\t<none>\n  Node-Selectors:\t<none>\n  Tolerations:\t<none>\n"
        );
    }

    #[test]
    fn probes_read_like_kubectl() {
        let probe = api::Probe {
            http_get: Some(api::HttpGetAction {
                path: "/healthz".into(),
                port: Some(api::IntOrString {
                    value: Some(int_or_string::Value::IntValue(8080)),
                }),
                scheme: "HTTP".into(),
                ..Default::default()
            }),
            timeout_seconds: 1,
            period_seconds: 10,
            success_threshold: 1,
            failure_threshold: 3,
            ..Default::default()
        };
        assert_eq!(
            describe_probe(&probe),
            "http-get http://:8080/healthz delay=0s timeout=1s period=10s #success=1 #failure=3"
        );
    }
}
