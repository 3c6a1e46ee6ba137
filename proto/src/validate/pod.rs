//! A pod spec, also inside workload templates: containers, ports, env,
//! resources, probes, volumes and their mounts, scheduling constraints.

use std::collections::HashSet;

use super::names::{dns1123_label, qualified_name};
use super::{labels, resource_map, Checker};
use crate::api;

pub(super) fn pod_spec(c: &mut Checker, path: &str, spec: &api::PodSpec) {
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
