//! Defaults the master fills in before an object is validated and stored,
//! as Kubernetes' API server does, so stored objects show the values in
//! effect (`restartPolicy: Always`, `replicas: 1`, `maxSurge: 25%`...).

use bosun_proto::api::object::Resource;
use bosun_proto::api::{self, int_or_string, IntOrString, Object};

/// Fills in defaults in place. Idempotent.
pub fn apply(object: &mut Object) {
    object.set_type_meta();
    let Some(kind) = object.kind() else {
        return;
    };
    if kind.namespaced() {
        if let Some(meta) = object.metadata_mut() {
            if meta.namespace.is_empty() {
                meta.namespace = "default".to_string();
            }
        }
    }
    match object.resource.as_mut() {
        Some(Resource::Pod(pod)) => {
            if let Some(spec) = pod.spec.as_mut() {
                pod_spec(spec);
            }
        }
        Some(Resource::ReplicaSet(rs)) => {
            let spec = rs.spec.get_or_insert_with(Default::default);
            spec.replicas.get_or_insert(1);
            template(spec.template.as_mut());
        }
        Some(Resource::Deployment(deploy)) => deployment(deploy.spec.get_or_insert_with(Default::default)),
        Some(Resource::Service(svc)) => {
            let spec = svc.spec.get_or_insert_with(Default::default);
            if spec.r#type.is_empty() {
                spec.r#type = "ClusterIP".to_string();
            }
            for port in &mut spec.ports {
                default_str(&mut port.protocol, "TCP");
                if port.target_port.is_none() {
                    port.target_port = Some(int(port.port));
                }
            }
        }
        Some(Resource::Secret(secret)) => {
            default_str(&mut secret.r#type, "Opaque");
            for (key, value) in std::mem::take(&mut secret.string_data) {
                secret.data.insert(key, value.into_bytes());
            }
        }
        Some(Resource::PersistentVolume(pv)) => {
            let spec = pv.spec.get_or_insert_with(Default::default);
            default_str(&mut spec.persistent_volume_reclaim_policy, "Retain");
        }
        Some(Resource::Event(event)) => default_str(&mut event.r#type, "Normal"),
        _ => {}
    }
}

fn default_str(field: &mut String, value: &str) {
    if field.is_empty() {
        *field = value.to_string();
    }
}

fn int(n: i32) -> IntOrString {
    IntOrString {
        value: Some(int_or_string::Value::IntValue(n)),
    }
}

fn percent(text: &str) -> IntOrString {
    IntOrString {
        value: Some(int_or_string::Value::StrValue(text.to_string())),
    }
}

fn template(template: Option<&mut api::PodTemplateSpec>) {
    if let Some(spec) = template.and_then(|t| t.spec.as_mut()) {
        pod_spec(spec);
    }
}

fn deployment(spec: &mut api::DeploymentSpec) {
    spec.replicas.get_or_insert(1);
    spec.revision_history_limit.get_or_insert(10);
    spec.progress_deadline_seconds.get_or_insert(600);
    let strategy = spec.strategy.get_or_insert_with(Default::default);
    default_str(&mut strategy.r#type, "RollingUpdate");
    if strategy.r#type == "RollingUpdate" {
        let rolling = strategy.rolling_update.get_or_insert_with(Default::default);
        rolling.max_surge.get_or_insert_with(|| percent("25%"));
        rolling.max_unavailable.get_or_insert_with(|| percent("25%"));
    }
    template(spec.template.as_mut());
}

/// Kubernetes' pull policy default: Always for `:latest` or untagged
/// images, IfNotPresent otherwise.
fn pull_policy(image: &str) -> &'static str {
    let name = image.rsplit('/').next().unwrap_or(image);
    let tag = if image.contains('@') {
        Some("digest")
    } else {
        name.split_once(':').map(|(_, t)| t)
    };
    match tag {
        None | Some("latest") => "Always",
        Some(_) => "IfNotPresent",
    }
}

fn pod_spec(spec: &mut api::PodSpec) {
    default_str(&mut spec.restart_policy, "Always");
    spec.termination_grace_period_seconds.get_or_insert(30);
    for container in &mut spec.containers {
        if container.image_pull_policy.is_empty() {
            container.image_pull_policy = pull_policy(&container.image).to_string();
        }
        for port in &mut container.ports {
            default_str(&mut port.protocol, "TCP");
        }
        for probe in [
            &mut container.liveness_probe,
            &mut container.readiness_probe,
            &mut container.startup_probe,
        ]
        .into_iter()
        .flatten()
        {
            for (field, value) in [
                (&mut probe.period_seconds, 10),
                (&mut probe.timeout_seconds, 1),
                (&mut probe.success_threshold, 1),
                (&mut probe.failure_threshold, 3),
            ] {
                if *field == 0 {
                    *field = value;
                }
            }
            if let Some(http) = probe.http_get.as_mut() {
                default_str(&mut http.path, "/");
                default_str(&mut http.scheme, "HTTP");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::codec::decode_objects;

    #[test]
    fn deployment_gets_kubernetes_defaults() {
        let mut object = decode_objects(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  template:\n    spec:\n      containers: [{name: c, image: busybox, ports: [{containerPort: 80}]}]\n",
            "t",
        )
        .unwrap()
        .remove(0);
        apply(&mut object);
        let deploy = api::Deployment::try_from(object).unwrap();
        assert_eq!(deploy.metadata.unwrap().namespace, "default");
        let spec = deploy.spec.unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.revision_history_limit, Some(10));
        let rolling = spec.strategy.unwrap().rolling_update.unwrap();
        assert_eq!(rolling.max_surge, Some(percent("25%")));
        let pod = spec.template.unwrap().spec.unwrap();
        assert_eq!(pod.restart_policy, "Always");
        assert_eq!(pod.termination_grace_period_seconds, Some(30));
        assert_eq!(pod.containers[0].image_pull_policy, "Always");
        assert_eq!(pod.containers[0].ports[0].protocol, "TCP");
    }

    #[test]
    fn pull_policy_follows_the_tag() {
        assert_eq!(pull_policy("busybox"), "Always");
        assert_eq!(pull_policy("busybox:latest"), "Always");
        assert_eq!(pull_policy("busybox:1.36"), "IfNotPresent");
        assert_eq!(pull_policy("registry:5000/app"), "Always");
        assert_eq!(pull_policy("registry:5000/app:v2"), "IfNotPresent");
    }

    #[test]
    fn secret_string_data_moves_into_data() {
        let mut object: Object = api::Secret {
            string_data: [("password".to_string(), "hunter2".to_string())].into(),
            ..Default::default()
        }
        .into();
        apply(&mut object);
        let secret = api::Secret::try_from(object).unwrap();
        assert_eq!(secret.data["password"], b"hunter2");
        assert!(secret.string_data.is_empty());
        assert_eq!(secret.r#type, "Opaque");
    }
}
