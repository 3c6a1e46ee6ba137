//! A container's environment, as Kubernetes builds it: `envFrom` sources
//! first, then `env` (later entries win); values from ConfigMaps, Secrets,
//! the pod's own fields and the container's resources; `$(VAR)` in a
//! value refers to a variable defined before it, and in `command` and
//! `args` to any ([`expand`]).
//!
//! [`referenced`] lists the ConfigMaps and Secrets to fetch; [`build`] is
//! pure, given them.

use std::collections::{BTreeSet, HashMap};

use bosun_proto::api::{ConfigMap, Container, Pod, Secret};
use bosun_proto::quantity::Quantity;

/// ConfigMaps and Secrets of the pod's namespace, by name; missing ones
/// are absent.
#[derive(Default, Debug)]
pub struct Sources {
    pub config_maps: HashMap<String, ConfigMap>,
    pub secrets: HashMap<String, Secret>,
}

/// The names of the ConfigMaps and Secrets `container` refers to.
pub fn referenced(container: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut config_maps, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    for from in &container.env_from {
        if let Some(r) = &from.config_map_ref {
            config_maps.insert(r.name.clone());
        }
        if let Some(r) = &from.secret_ref {
            secrets.insert(r.name.clone());
        }
    }
    for var in &container.env {
        if let Some(from) = &var.value_from {
            if let Some(r) = &from.config_map_key_ref {
                config_maps.insert(r.name.clone());
            }
            if let Some(r) = &from.secret_key_ref {
                secrets.insert(r.name.clone());
            }
        }
    }
    (config_maps, secrets)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.contains('=') && !name.contains('\0')
}

/// The environment as (name, value) pairs, in order; [`entries`] makes
/// them the runtime's `NAME=value` strings.
///
/// # Errors
/// A message for the pod's status (CreateContainerConfigError) when a
/// required ConfigMap, Secret or key is missing.
pub fn build(
    pod: &Pod,
    container: &Container,
    sources: &Sources,
    pod_ip: &str,
    host_ip: &str,
) -> Result<Vec<(String, String)>, String> {
    fn set(vars: &mut Vec<(String, String)>, name: String, value: String) {
        vars.retain(|(n, _)| *n != name);
        vars.push((name, value));
    }
    let mut vars: Vec<(String, String)> = Vec::new();
    for from in &container.env_from {
        if let Some(r) = &from.config_map_ref {
            match sources.config_maps.get(&r.name) {
                Some(cm) => {
                    for (key, value) in &cm.data {
                        let name = format!("{}{key}", from.prefix);
                        if valid_name(&name) {
                            set(&mut vars, name, value.clone());
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("configmap {:?} not found", r.name)),
            }
        }
        if let Some(r) = &from.secret_ref {
            match sources.secrets.get(&r.name) {
                Some(secret) => {
                    for (key, value) in &secret.data {
                        let name = format!("{}{key}", from.prefix);
                        if valid_name(&name) {
                            set(&mut vars, name, String::from_utf8_lossy(value).into_owned());
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("secret {:?} not found", r.name)),
            }
        }
    }
    for var in &container.env {
        let Some(from) = &var.value_from else {
            let value = expand(&var.value, |name| lookup(&vars, name));
            set(&mut vars, var.name.clone(), value);
            continue;
        };
        let value = if let Some(r) = &from.config_map_key_ref {
            let found = sources.config_maps.get(&r.name).map(|cm| cm.data.get(&r.key));
            match found {
                Some(Some(value)) => Some(value.clone()),
                _ if r.optional == Some(true) => None,
                Some(None) => return Err(format!("couldn't find key {} in configmap {:?}", r.key, r.name)),
                None => return Err(format!("configmap {:?} not found", r.name)),
            }
        } else if let Some(r) = &from.secret_key_ref {
            let found = sources.secrets.get(&r.name).map(|s| s.data.get(&r.key));
            match found {
                Some(Some(value)) => Some(String::from_utf8_lossy(value).into_owned()),
                _ if r.optional == Some(true) => None,
                Some(None) => return Err(format!("couldn't find key {} in secret {:?}", r.key, r.name)),
                None => return Err(format!("secret {:?} not found", r.name)),
            }
        } else if let Some(r) = &from.field_ref {
            Some(field(pod, &r.field_path, pod_ip, host_ip)?)
        } else if let Some(r) = &from.resource_field_ref {
            Some(resource(pod, container, r)?)
        } else {
            None
        };
        if let Some(value) = value {
            set(&mut vars, var.name.clone(), value);
        }
    }
    Ok(vars)
}

/// `NAME=value` strings, as the runtime takes an environment.
pub fn entries(vars: &[(String, String)]) -> Vec<String> {
    vars.iter().map(|(name, value)| format!("{name}={value}")).collect()
}

fn lookup<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
    vars.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// `input` with Kubernetes' variable references expanded: `$(NAME)` is
/// the value `lookup` gives for NAME, or stays as written when there is
/// none; `$$` is a literal `$` (so `$$(NAME)` is `$(NAME)`); any other `$`
/// is itself.
pub fn expand<'a>(input: &str, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match lookup(name) {
                        Some(value) => out.push_str(value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                // Unclosed: as written.
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// `command` or `args` with `$(NAME)` expanded from the container's
/// environment, as [`build`] returns it.
pub fn expand_all(items: &[String], vars: &[(String, String)]) -> Vec<String> {
    items
        .iter()
        .map(|item| expand(item, |name| lookup(vars, name)))
        .collect()
}

/// A `fieldRef` value.
fn field(pod: &Pod, path: &str, pod_ip: &str, host_ip: &str) -> Result<String, String> {
    bosun_proto::downward::pod_field(pod, path, pod_ip, host_ip)
        .ok_or_else(|| format!("fieldRef {path:?} is not supported"))
}

/// A `resourceFieldRef` value: limits or requests, divided by the divisor
/// and rounded up, as Kubernetes does.
fn resource(pod: &Pod, container: &Container, r: &bosun_proto::api::ResourceFieldSelector) -> Result<String, String> {
    let target = if r.container_name.is_empty() {
        container.clone()
    } else {
        pod.spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == r.container_name).cloned())
            .ok_or_else(|| format!("resourceFieldRef: no container {:?}", r.container_name))?
    };
    let resources = target.resources.unwrap_or_default();
    let (map, name) = match r.resource.split_once('.') {
        Some(("limits", name)) => (&resources.limits, name),
        Some(("requests", name)) => (&resources.requests, name),
        _ => return Err(format!("resourceFieldRef {:?} is not supported", r.resource)),
    };
    let divisor = r
        .divisor
        .as_ref()
        .and_then(|d| Quantity::parse(&d.value).ok())
        .unwrap_or(Quantity::from_units(1));
    let Some(value) = map.get(name).and_then(|q| Quantity::parse(&q.value).ok()) else {
        // Kubernetes exposes the node's allocatable for a missing limit;
        // without one, 0 says "unbounded".
        return Ok("0".to_string());
    };
    let (value, divisor) = (value.millis(), divisor.millis().max(1));
    Ok(((value + divisor - 1) / divisor).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::codec::decode_objects;

    fn pod(yaml: &str) -> Pod {
        Pod::try_from(decode_objects(yaml, "t").unwrap().remove(0)).unwrap()
    }

    const POD: &str = "apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, uid: u-1, labels: {app: web}}
spec:
  nodeName: n1
  containers:
    - name: c
      image: busybox
      resources: {limits: {cpu: 500m, memory: 64Mi}}
      envFrom:
        - configMapRef: {name: settings}
        - prefix: DB_
          secretRef: {name: db}
      env:
        - {name: MODE, value: fast}
        - name: COLOR
          valueFrom: {configMapKeyRef: {name: settings, key: color}}
        - name: POD
          valueFrom: {fieldRef: {fieldPath: metadata.name}}
        - name: APP
          valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}
        - name: IP
          valueFrom: {fieldRef: {fieldPath: status.podIP}}
        - name: MEM
          valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
        - name: CPU
          valueFrom: {resourceFieldRef: {resource: limits.cpu}}
";

    fn sources() -> Sources {
        Sources {
            config_maps: HashMap::from([(
                "settings".to_string(),
                ConfigMap {
                    data: HashMap::from([
                        ("color".to_string(), "blue".to_string()),
                        ("MODE".to_string(), "slow".to_string()),
                    ]),
                    ..Default::default()
                },
            )]),
            secrets: HashMap::from([(
                "db".to_string(),
                Secret {
                    data: HashMap::from([("PASSWORD".to_string(), b"hunter2".to_vec())]),
                    ..Default::default()
                },
            )]),
        }
    }

    #[test]
    fn builds_the_environment_like_kubernetes() {
        let pod = pod(POD);
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let mut env = entries(&build(&pod, container, &sources(), "10.0.0.7", "192.0.2.1").unwrap());
        env.sort();
        assert_eq!(
            env,
            vec![
                "APP=web",
                "COLOR=blue",
                "CPU=1",
                "DB_PASSWORD=hunter2",
                "IP=10.0.0.7",
                "MEM=64",
                "MODE=fast",
                "POD=web",
                "color=blue"
            ]
        );
        let (cms, secrets) = referenced(container);
        assert_eq!(cms.into_iter().collect::<Vec<_>>(), vec!["settings"]);
        assert_eq!(secrets.into_iter().collect::<Vec<_>>(), vec!["db"]);
    }

    #[test]
    fn variable_references_expand_as_in_kubernetes() {
        let vars = [("A", "a"), ("B", "b"), ("EMPTY", "")];
        let lookup = |name: &str| vars.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        for (input, expected) in [
            ("$(A)", "a"),
            ("___$(B)___", "___b___"),
            ("$(A)-$(A)$(B)", "a-ab"),
            ("$(EMPTY)x", "x"),
            ("$(NOPE)", "$(NOPE)"),
            ("$$(A)", "$(A)"),
            ("$$$$$$(A)", "$$$(A)"),
            ("$$$(A)", "$a"),
            ("$A", "$A"),
            ("f000-$$A", "f000-$A"),
            ("$(A", "$(A"),
            ("$(", "$("),
            ("$", "$"),
            ("$()", "$()"),
            ("ünï$(A)cödé$", "ünïacödé$"),
            ("no refs", "no refs"),
        ] {
            assert_eq!(expand(input, lookup), expected, "{input:?}");
        }
    }

    #[test]
    fn values_refer_to_earlier_variables_and_commands_to_all() {
        let pod = pod("apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop}
spec:
  containers:
    - name: c
      image: busybox
      envFrom:
        - configMapRef: {name: settings}
      env:
        - {name: HOST, value: db}
        - {name: URL, value: \"http://$(HOST):$(PORT)/$(color)\"}
        - {name: PORT, value: \"5432\"}
        - {name: LITERAL, value: \"$$(HOST)\"}
");
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let env = build(&pod, container, &sources(), "", "").unwrap();
        let value = |name: &str| lookup(&env, name).unwrap();
        assert_eq!(
            value("URL"),
            "http://db:$(PORT)/blue",
            "PORT comes later: left as written"
        );
        assert_eq!(value("LITERAL"), "$(HOST)");
        let args = [
            "--url=$(URL)".to_string(),
            "--port=$(PORT)".to_string(),
            "$(MISSING)".to_string(),
        ];
        assert_eq!(
            expand_all(&args, &env),
            ["--url=http://db:$(PORT)/blue", "--port=5432", "$(MISSING)"]
        );
    }

    #[test]
    fn a_missing_source_is_a_config_error_unless_optional() {
        let pod = pod(POD);
        let container = &pod.spec.as_ref().unwrap().containers[0];
        let err = build(&pod, container, &Sources::default(), "", "").unwrap_err();
        assert_eq!(err, "configmap \"settings\" not found");
    }
}
