//! `ctl describe pod` in kubectl's layout (its `describePod`): the pod's
//! placement and phase, each container with its state, last state, ready
//! flag and restart count, the conditions, volumes, QoS class, and the
//! pod's events. Bosun has no priorities, service accounts or init
//! containers: every pod shows `Priority: 0`, the other two are left out
//! as kubectl leaves them out when unset.

use std::fmt::Write as _;

use bosun_proto::api::{Container, ContainerState, ContainerStatus, Event, Pod};
use bosun_proto::quantity::Quantity;

use super::describe::events_text;
use super::describe_workload::rfc1123z;
use crate::{output, pod_template, tabwriter};

/// How Go prints a zero `time.Time` in RFC 1123Z, kubectl's text for a
/// timestamp that was never set.
const ZERO_TIME: &str = "Mon, 01 Jan 0001 00:00:00 +0000";

/// The pod and its `events`, aligned as kubectl aligns them.
pub fn describe(pod: &Pod, events: &[Event]) -> String {
    let mut w = header(pod);
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let none = if spec.containers.is_empty() { " <none>" } else { "" };
    let _ = writeln!(w, "Containers:{none}");
    for c in &spec.containers {
        let state = status.container_statuses.iter().find(|s| s.name == c.name);
        container(&mut w, pod, c, state);
    }
    if !status.conditions.is_empty() {
        w.push_str("Conditions:\n  Type\tStatus\n");
        for c in &status.conditions {
            // kubectl's trailing spaces, kept so the columns match its own.
            let _ = writeln!(w, "  {} \t{} ", c.r#type, c.status);
        }
    }
    pod_template::volumes(&mut w, "", &spec.volumes);
    let _ = writeln!(w, "QoS Class:\t{}", qos_class(&spec.containers));
    pod_template::labels(&mut w, "Node-Selectors", &spec.node_selector);
    pod_template::tolerations(&mut w, "Tolerations", &spec.tolerations);
    w.push_str(&events_text(events));
    tabwriter::align(&w)
}

/// Everything above `Containers:`.
fn header(pod: &Pod) -> String {
    let meta = pod.metadata.clone().unwrap_or_default();
    let spec = pod.spec.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let mut w = format!("Name:\t{}\nNamespace:\t{}\nPriority:\t0\n", meta.name, meta.namespace);
    if spec.node_name.is_empty() {
        w.push_str("Node:\t<none>\n");
    } else {
        let _ = writeln!(w, "Node:\t{}/{}", spec.node_name, status.host_ip);
    }
    if let Some(start) = status.start_time {
        let _ = writeln!(w, "Start Time:\t{}", rfc1123z(start));
    }
    pod_template::labels(&mut w, "Labels", &meta.labels);
    pod_template::annotations(&mut w, "Annotations", &meta.annotations);
    let finished = status.phase == "Succeeded" || status.phase == "Failed";
    match meta.deletion_timestamp {
        Some(deleting) if !finished => {
            let _ = writeln!(w, "Status:\tTerminating (lasts {})", output::age(Some(&deleting)));
            if let Some(grace) = meta.deletion_grace_period_seconds {
                let _ = writeln!(w, "Termination Grace Period:\t{grace}s");
            }
        }
        _ => {
            let _ = writeln!(w, "Status:\t{}", status.phase);
        }
    }
    if !status.reason.is_empty() {
        let _ = writeln!(w, "Reason:\t{}", status.reason);
    }
    if !status.message.is_empty() {
        let _ = writeln!(w, "Message:\t{}", status.message);
    }
    // Bosun keeps one address; Kubernetes' `podIPs` starts with it.
    let _ = writeln!(w, "IP:\t{}", status.pod_ip);
    if status.pod_ip.is_empty() {
        w.push_str("IPs:\t<none>\n");
    } else {
        let _ = writeln!(w, "IPs:\n  IP:\t{}", status.pod_ip);
    }
    if let Some(owner) = bosun_proto::workload::controller_of(&meta) {
        let _ = writeln!(w, "Controlled By:\t{}/{}", owner.kind, owner.name);
    }
    w
}

/// kubectl's `describeContainers` for one container and its status.
fn container(w: &mut String, pod: &Pod, c: &Container, status: Option<&ContainerStatus>) {
    let _ = writeln!(w, "  {}:", c.name);
    if let Some(status) = status {
        let _ = writeln!(w, "    Container ID:\t{}", status.container_id);
    }
    let _ = writeln!(w, "    Image:\t{}", c.image);
    if let Some(status) = status {
        let _ = writeln!(w, "    Image ID:\t{}", status.image_id);
    }
    pod_template::ports(w, c);
    pod_template::command(w, c);
    if let Some(status) = status {
        state(w, "State", status.state.as_ref());
        if status.last_state.as_ref().is_some_and(|s| s.terminated.is_some()) {
            state(w, "Last State", status.last_state.as_deref());
        }
        let _ = writeln!(w, "    Ready:\t{}", if status.ready { "True" } else { "False" });
        let _ = writeln!(w, "    Restart Count:\t{}", status.restart_count);
    }
    pod_template::resources(w, c);
    pod_template::probes(w, c);
    pod_template::env_from(w, c);
    pod_template::environment(w, c, &|path| field_value(pod, path));
    pod_template::mounts(w, c);
}

/// kubectl's `describeStatus`: `State:  Running` and its details.
fn state(w: &mut String, title: &str, state: Option<&ContainerState>) {
    let time = |t: Option<prost_types::Timestamp>| t.map_or_else(|| ZERO_TIME.to_string(), rfc1123z);
    let state = state.cloned().unwrap_or_default();
    if let Some(running) = state.running {
        let _ = writeln!(w, "    {title}:\tRunning\n      Started:\t{}", time(running.started_at));
    } else if let Some(waiting) = state.waiting {
        let _ = writeln!(w, "    {title}:\tWaiting");
        if !waiting.reason.is_empty() {
            let _ = writeln!(w, "      Reason:\t{}", waiting.reason);
        }
    } else if let Some(done) = state.terminated {
        let _ = writeln!(w, "    {title}:\tTerminated");
        if !done.reason.is_empty() {
            let _ = writeln!(w, "      Reason:\t{}", done.reason);
        }
        if !done.message.is_empty() {
            let _ = writeln!(w, "      Message:\t{}", done.message);
        }
        let _ = writeln!(w, "      Exit Code:\t{}", done.exit_code);
        if done.signal > 0 {
            let _ = writeln!(w, "      Signal:\t{}", done.signal);
        }
        let _ = writeln!(w, "      Started:\t{}", time(done.started_at));
        let _ = writeln!(w, "      Finished:\t{}", time(done.finished_at));
    } else {
        let _ = writeln!(w, "    {title}:\tWaiting");
    }
}

/// The value of a `fieldRef` in this pod, as kubectl shows it beside the
/// path; empty for a path it does not know.
fn field_value(pod: &Pod, path: &str) -> String {
    let status = pod.status.clone().unwrap_or_default();
    bosun_proto::downward::pod_field(pod, path, &status.pod_ip, &status.host_ip).unwrap_or_default()
}

/// Kubernetes' QoS class: `Guaranteed` when every container limits CPU and
/// memory and requests exactly that, `BestEffort` when none requests or
/// limits either, `Burstable` otherwise. As in Kubernetes, a limit without
/// a request counts as the request.
pub fn qos_class(containers: &[Container]) -> &'static str {
    const COMPUTE: [&str; 2] = ["cpu", "memory"];
    let positive = |map: &std::collections::HashMap<String, bosun_proto::api::Quantity>, name: &str| {
        map.get(name)
            .and_then(|q| Quantity::parse(&q.value).ok())
            .filter(|q| *q > Quantity::default())
    };
    let (mut any, mut guaranteed) = (false, true);
    for c in containers {
        let resources = c.resources.clone().unwrap_or_default();
        for name in COMPUTE {
            let limit = positive(&resources.limits, name);
            let request = positive(&resources.requests, name).or(limit);
            any |= limit.is_some() || request.is_some();
            guaranteed &= limit.is_some() && request == limit;
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::api::{
        self, int_or_string, ConfigMapKeySelector, ContainerPort, ContainerStateRunning, ContainerStateTerminated,
        ContainerStateWaiting, EnvVar, EnvVarSource, IntOrString, ObjectFieldSelector, ObjectMeta, OwnerReference,
        PodCondition, PodSpec, PodStatus, ResourceRequirements,
    };

    fn at(seconds: i64) -> Option<prost_types::Timestamp> {
        Some(prost_types::Timestamp { seconds, nanos: 0 })
    }

    fn quantities(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, api::Quantity> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), api::Quantity { value: v.to_string() }))
            .collect()
    }

    fn probe(exec: Option<&[&str]>, http_port: i32, period: i32) -> Option<Box<api::Probe>> {
        Some(Box::new(api::Probe {
            exec: exec.map(|command| api::ExecAction {
                command: command.iter().map(|c| c.to_string()).collect(),
            }),
            http_get: exec.is_none().then(|| api::HttpGetAction {
                path: "/".into(),
                port: Some(IntOrString {
                    value: Some(int_or_string::Value::IntValue(http_port)),
                }),
                ..Default::default()
            }),
            timeout_seconds: 1,
            period_seconds: period,
            success_threshold: 1,
            failure_threshold: 3,
            ..Default::default()
        }))
    }

    fn web() -> Container {
        Container {
            name: "web".into(),
            image: "local/busybox:1".into(),
            command: vec!["sh".into(), "-c".into(), "httpd -f -p 8080".into()],
            ports: vec![ContainerPort {
                container_port: 8080,
                host_port: 18080,
                protocol: "TCP".into(),
                ..Default::default()
            }],
            resources: Some(ResourceRequirements {
                limits: quantities(&[("cpu", "500m"), ("memory", "64Mi")]),
                requests: quantities(&[("cpu", "250m"), ("memory", "32Mi")]),
            }),
            liveness_probe: probe(None, 8080, 10),
            readiness_probe: probe(Some(&["cat", "/tmp/v"]), 0, 2),
            env: vec![
                EnvVar {
                    name: "PORT".into(),
                    value: "8080".into(),
                    ..Default::default()
                },
                EnvVar {
                    name: "FROM".into(),
                    value_from: Some(Box::new(EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "c".into(),
                            key: "k".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    })),
                    ..Default::default()
                },
                EnvVar {
                    name: "POD".into(),
                    value_from: Some(Box::new(EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            api_version: "v1".into(),
                            field_path: "metadata.name".into(),
                        }),
                        ..Default::default()
                    })),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    fn pod() -> Pod {
        let statuses = vec![
            ContainerStatus {
                name: "web".into(),
                container_id: "docker://abc".into(),
                image_id: "docker-pullable://local/busybox@sha256:1".into(),
                ready: true,
                restart_count: 1,
                state: Some(ContainerState {
                    running: Some(Box::new(ContainerStateRunning {
                        started_at: at(1_796_155_263),
                    })),
                    ..Default::default()
                }),
                last_state: Some(Box::new(ContainerState {
                    terminated: Some(Box::new(ContainerStateTerminated {
                        exit_code: 1,
                        reason: "Error".into(),
                        started_at: at(1_796_155_200),
                        finished_at: at(1_796_155_260),
                        ..Default::default()
                    })),
                    ..Default::default()
                })),
                ..Default::default()
            },
            ContainerStatus {
                name: "sidecar".into(),
                container_id: "docker://def".into(),
                image_id: "docker-pullable://local/busybox@sha256:1".into(),
                state: Some(ContainerState {
                    waiting: Some(Box::new(ContainerStateWaiting {
                        reason: "CrashLoopBackOff".into(),
                        ..Default::default()
                    })),
                    ..Default::default()
                }),
                restart_count: 4,
                ..Default::default()
            },
        ];
        Pod {
            metadata: Some(ObjectMeta {
                name: "web".into(),
                namespace: "default".into(),
                labels: [("app".to_string(), "web".to_string())].into(),
                owner_references: vec![OwnerReference {
                    kind: "ReplicaSet".into(),
                    name: "web-5d9c".into(),
                    controller: Some(true),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            spec: Some(PodSpec {
                node_name: "node-a".into(),
                containers: vec![
                    web(),
                    Container {
                        name: "sidecar".into(),
                        image: "local/busybox:1".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: "Running".into(),
                host_ip: "10.0.0.5".into(),
                pod_ip: "10.42.0.7".into(),
                start_time: at(1_796_155_262),
                container_statuses: statuses,
                conditions: ["Initialized", "Ready", "ContainersReady", "PodScheduled"]
                    .into_iter()
                    .map(|t| PodCondition {
                        r#type: t.into(),
                        status: if t == "Ready" || t == "ContainersReady" {
                            "False"
                        } else {
                            "True"
                        }
                        .into(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn describes_a_pod_with_its_containers_states_and_conditions_as_kubectl_does() {
        let text = describe(&pod(), &[]);
        // Cells aligned block by block as Go's tabwriter does, so the
        // widths change where a line without a tab (`Command:`) ends a
        // block; the conditions keep kubectl's trailing spaces.
        let expected = [
            "Name:         web",
            "Namespace:    default",
            "Priority:     0",
            "Node:         node-a/10.0.0.5",
            "Start Time:   Tue, 01 Dec 2026 20:01:02 +0000",
            "Labels:       app=web",
            "Annotations:  <none>",
            "Status:       Running",
            "IP:           10.42.0.7",
            "IPs:",
            "  IP:           10.42.0.7",
            "Controlled By:  ReplicaSet/web-5d9c",
            "Containers:",
            "  web:",
            "    Container ID:  docker://abc",
            "    Image:         local/busybox:1",
            "    Image ID:      docker-pullable://local/busybox@sha256:1",
            "    Port:          8080/TCP",
            "    Host Port:     18080/TCP",
            "    Command:",
            "      sh",
            "      -c",
            "      httpd -f -p 8080",
            "    State:          Running",
            "      Started:      Tue, 01 Dec 2026 20:01:03 +0000",
            "    Last State:     Terminated",
            "      Reason:       Error",
            "      Exit Code:    1",
            "      Started:      Tue, 01 Dec 2026 20:00:00 +0000",
            "      Finished:     Tue, 01 Dec 2026 20:01:00 +0000",
            "    Ready:          True",
            "    Restart Count:  1",
            "    Limits:",
            "      cpu:     500m",
            "      memory:  64Mi",
            "    Requests:",
            "      cpu:      250m",
            "      memory:   32Mi",
            "    Liveness:   http-get http://:8080/ delay=0s timeout=1s period=10s #success=1 #failure=3",
            "    Readiness:  exec [cat /tmp/v] delay=0s timeout=1s period=2s #success=1 #failure=3",
            "    Environment:",
            "      PORT:  8080",
            "      FROM:  <set to the key 'k' of config map 'c'>  Optional: false",
            "      POD:   web (v1:metadata.name)",
            "    Mounts:  <none>",
            "  sidecar:",
            "    Container ID:   docker://def",
            "    Image:          local/busybox:1",
            "    Image ID:       docker-pullable://local/busybox@sha256:1",
            "    Port:           <none>",
            "    Host Port:      <none>",
            "    State:          Waiting",
            "      Reason:       CrashLoopBackOff",
            "    Ready:          False",
            "    Restart Count:  4",
            "    Environment:    <none>",
            "    Mounts:         <none>",
            "Conditions:",
            "  Type              Status",
            "  Initialized       True ",
            "  Ready             False ",
            "  ContainersReady   False ",
            "  PodScheduled      True ",
            "Volumes:            <none>",
            "QoS Class:          Burstable",
            "Node-Selectors:     <none>",
            "Tolerations:        <none>",
            "Events:             <none>",
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), expected, "{text}");
    }

    #[test]
    fn events_follow_in_kubectls_table() {
        let event = Event {
            r#type: "Normal".into(),
            reason: "Scheduled".into(),
            message: "Successfully assigned default/web to node-a\n".into(),
            source: Some(api::EventSource {
                component: "default-scheduler".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let text = describe(&pod(), &[event]);
        let tail: Vec<&str> = text.lines().skip_while(|l| !l.starts_with("Tolerations:")).collect();
        assert_eq!(
            tail,
            [
                "Tolerations:        <none>",
                "Events:",
                "  Type    Reason     Age        From               Message",
                "  ----    ------     ----       ----               -------",
                "  Normal  Scheduled  <unknown>  default-scheduler  Successfully assigned default/web to node-a",
            ]
        );
    }

    #[test]
    fn the_qos_class_follows_requests_and_limits() {
        let with = |limits: &[(&str, &str)], requests: &[(&str, &str)]| Container {
            resources: Some(ResourceRequirements {
                limits: quantities(limits),
                requests: quantities(requests),
            }),
            ..Default::default()
        };
        assert_eq!(qos_class(&[Container::default()]), "BestEffort");
        assert_eq!(qos_class(&[with(&[("cpu", "0")], &[])]), "BestEffort");
        let full = [("cpu", "1"), ("memory", "1Gi")];
        assert_eq!(qos_class(&[with(&full, &[])]), "Guaranteed");
        assert_eq!(qos_class(&[with(&full, &[("cpu", "1000m")])]), "Guaranteed");
        assert_eq!(qos_class(&[with(&full, &[("cpu", "500m")])]), "Burstable");
        assert_eq!(qos_class(&[with(&full, &[]), Container::default()]), "Burstable");
        assert_eq!(qos_class(&[with(&[], &[("memory", "1Mi")])]), "Burstable");
    }
}
