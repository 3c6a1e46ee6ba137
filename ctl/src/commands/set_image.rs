//! `ctl set image KIND NAME CONTAINER=IMAGE...`: changes container images
//! of Deployments, ReplicaSets and Pods (`*=IMAGE` for every container).
//! As kubectl, nothing is written or printed for an object whose images
//! are already the requested ones.

use std::collections::BTreeMap;

use bosun_proto::api::object::Resource;
use bosun_proto::api::{Object, PodSpec};

use super::workload::{edit, resource, Edit};
use super::{named_targets, namespace_or_default, split_changes};
use crate::output::object_name;
use crate::{Client, CtlError, Io};

/// # Errors
/// Malformed arguments, a kind without containers, an unknown container
/// name, or a failed read or write.
pub async fn run(
    client: &mut Client,
    args: &[String],
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let (resources, images) = parse_args(args)?;
    let targets = named_targets(&resources)?;
    let namespace = namespace_or_default(namespace);
    for (kind, name) in targets {
        let (updated, decision) = edit(client, kind, &namespace, &name, |object| {
            let Some(spec) = pod_spec_mut(object) else {
                return Err(CtlError::Invalid(format!(
                    "{} {name:?}: the object is not a pod or does not have a pod template",
                    resource(kind)
                )));
            };
            Ok(if set_images(spec, &images)? {
                Edit::Write(())
            } else {
                Edit::Keep(())
            })
        })
        .await?;
        if let Edit::Write(()) = decision {
            writeln!(io.stdout, "{} image updated", object_name(&updated))?;
        }
    }
    Ok(())
}

/// Splits kubectl's arguments: resources first, then `CONTAINER=IMAGE`
/// pairs (later pairs for the same container win).
///
/// # Errors
/// kubectl's messages for a resource after a pair, a malformed pair, no
/// pairs, or `*` with other pairs.
pub fn parse_args(args: &[String]) -> Result<(Vec<String>, BTreeMap<String, String>), CtlError> {
    let (resources, pairs) = split_changes(args, "image")?;
    if resources.is_empty() {
        return Err(CtlError::Invalid(
            "one or more resources must be specified as <resource> <name> or <resource>/<name>".into(),
        ));
    }
    let mut images = BTreeMap::new();
    let mut invalid = Vec::new();
    for pair in pairs {
        match pair.split_once('=') {
            Some((container, image)) if !container.is_empty() && !image.is_empty() => {
                images.insert(container.to_string(), image.to_string());
            }
            _ => invalid.push(pair),
        }
    }
    if !invalid.is_empty() {
        return Err(CtlError::Invalid(format!(
            "invalid image format: {}",
            invalid.join(", ")
        )));
    }
    if images.is_empty() {
        return Err(CtlError::Invalid("at least one image update is required".into()));
    }
    if images.len() > 1 && images.contains_key("*") {
        return Err(CtlError::Invalid(
            "all containers are already specified by *, but saw more than one container_name=container_image pairs"
                .into(),
        ));
    }
    Ok((resources, images))
}

/// Sets the images in `spec`; whether anything changed.
///
/// # Errors
/// kubectl's `unable to find container named "x"` (nothing is changed).
pub fn set_images(spec: &mut PodSpec, images: &BTreeMap<String, String>) -> Result<bool, CtlError> {
    if let Some(missing) = images
        .keys()
        .find(|name| *name != "*" && !spec.containers.iter().any(|c| &c.name == *name))
    {
        return Err(CtlError::Invalid(format!("unable to find container named {missing:?}")));
    }
    let mut changed = false;
    for container in &mut spec.containers {
        let image = images.get(&container.name).or_else(|| images.get("*"));
        if let Some(image) = image.filter(|image| **image != container.image) {
            container.image = image.clone();
            changed = true;
        }
    }
    Ok(changed)
}

/// The pod spec of a Pod, or the template's of a Deployment or ReplicaSet.
fn pod_spec_mut(object: &mut Object) -> Option<&mut PodSpec> {
    let template = match object.resource.as_mut()? {
        Resource::Pod(pod) => return pod.spec.as_mut(),
        Resource::Deployment(d) => d.spec.as_mut()?.template.as_mut(),
        Resource::ReplicaSet(rs) => rs.spec.as_mut()?.template.as_mut(),
        _ => None,
    };
    template?.spec.as_mut()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bosun_proto::api::Container;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn spec(containers: &[(&str, &str)]) -> PodSpec {
        PodSpec {
            containers: containers
                .iter()
                .map(|(name, image)| Container {
                    name: name.to_string(),
                    image: image.to_string(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn splits_resources_from_container_image_pairs() {
        let (resources, images) = parse_args(&strings(&["deploy/web", "web=nginx:1.25", "sidecar=envoy:2"])).unwrap();
        assert_eq!(resources, ["deploy/web"]);
        assert_eq!(images.get("web").map(String::as_str), Some("nginx:1.25"));
        assert_eq!(images.get("sidecar").map(String::as_str), Some("envoy:2"));
        let (resources, _) = parse_args(&strings(&["deployment", "web", "*=nginx"])).unwrap();
        assert_eq!(resources, ["deployment", "web"]);
    }

    #[test]
    fn refuses_malformed_arguments_as_kubectl_does() {
        let error = |args: &[&str]| parse_args(&strings(args)).unwrap_err().to_string();
        assert_eq!(
            error(&["deploy/web", "web=nginx", "deploy/api"]),
            "error: all resources must be specified before image changes: deploy/api"
        );
        assert_eq!(error(&["deploy/web", "web="]), "error: invalid image format: web=");
        assert_eq!(error(&["deploy/web"]), "error: at least one image update is required");
        assert!(error(&["deploy/web", "*=nginx", "web=nginx"]).contains("all containers are already specified by *"));
        assert!(error(&["web=nginx"]).contains("one or more resources must be specified"));
    }

    #[test]
    fn sets_named_containers_or_all_with_a_star() {
        let mut pod = spec(&[("web", "nginx:1"), ("sidecar", "envoy:1")]);
        let images = BTreeMap::from([("web".to_string(), "nginx:2".to_string())]);
        assert!(set_images(&mut pod, &images).unwrap());
        assert_eq!(pod.containers[0].image, "nginx:2");
        assert_eq!(pod.containers[1].image, "envoy:1");
        assert!(!set_images(&mut pod, &images).unwrap(), "already that image");
        let all = BTreeMap::from([("*".to_string(), "busybox".to_string())]);
        assert!(set_images(&mut pod, &all).unwrap());
        assert!(pod.containers.iter().all(|c| c.image == "busybox"));
    }

    #[test]
    fn an_unknown_container_changes_nothing() {
        let mut pod = spec(&[("web", "nginx:1")]);
        let images = BTreeMap::from([
            ("web".to_string(), "nginx:2".to_string()),
            ("db".to_string(), "postgres".to_string()),
        ]);
        assert_eq!(
            set_images(&mut pod, &images).unwrap_err().to_string(),
            "error: unable to find container named \"db\""
        );
        assert_eq!(pod.containers[0].image, "nginx:1");
    }
}
