//! Which container of a pod `logs` and `exec` address when `-c` is not
//! given, as kubectl chooses: the one the pod's
//! `kubectl.kubernetes.io/default-container` annotation names, else the
//! first, saying so on stderr when the pod has others.

use bosun_proto::api::Pod;
use bosun_proto::Kind;

use super::get_object;
use crate::{Client, CtlError, Io};

/// The annotation by which a pod names its default container (kubectl's).
pub const DEFAULT_CONTAINER: &str = "kubectl.kubernetes.io/default-container";

/// The container chosen when none is named.
#[derive(Debug, PartialEq, Eq)]
pub struct Choice {
    pub name: String,
    /// kubectl's note when it fell back to the first of several
    /// containers: `Defaulted container "web" out of: web, probe`.
    pub notice: Option<String>,
}

/// The container `logs` and `exec` use in `pod` without `-c`: the one
/// [`DEFAULT_CONTAINER`] names when the pod has it, else the first. As in
/// kubectl, only the fallback to the first of several is noted (an
/// annotation is the pod's own explicit choice).
///
/// # Errors
/// A pod without containers.
pub fn default_container(pod: &Pod) -> Result<Choice, CtlError> {
    let meta = pod.metadata.clone().unwrap_or_default();
    let names: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|spec| spec.containers.iter().map(|c| c.name.as_str()))
        .collect();
    if let Some(named) = meta.annotations.get(DEFAULT_CONTAINER) {
        if names.contains(&named.as_str()) {
            return Ok(Choice {
                name: named.clone(),
                notice: None,
            });
        }
    }
    let Some(first) = names.first() else {
        return Err(CtlError::Invalid(format!(
            "pod {}/{} does not have any containers",
            meta.namespace, meta.name
        )));
    };
    Ok(Choice {
        name: first.to_string(),
        notice: (names.len() > 1).then(|| format!("Defaulted container {first:?} out of: {}", names.join(", "))),
    })
}

/// The container to address in the pod `name`: `flag` (`-c`) when given,
/// else [`default_container`], whose notice goes to stderr.
///
/// # Errors
/// A missing pod, a pod without containers, an unreachable cluster.
pub async fn target_container(
    client: &Client,
    namespace: &str,
    name: &str,
    flag: Option<&str>,
    io: &mut Io<'_>,
) -> Result<String, CtlError> {
    if let Some(flag) = flag {
        return Ok(flag.to_string());
    }
    let object = get_object(&mut client.clone(), Kind::Pod, namespace, name).await?;
    let pod = Pod::try_from(object).map_err(|e| CtlError::Invalid(e.to_string()))?;
    let choice = default_container(&pod)?;
    if let Some(notice) = choice.notice {
        writeln!(io.stderr, "{notice}")?;
    }
    Ok(choice.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    use bosun_proto::api::{Container, ObjectMeta, PodSpec};

    fn pod(containers: &[&str], annotation: Option<&str>) -> Pod {
        Pod {
            metadata: Some(ObjectMeta {
                name: "p".into(),
                namespace: "default".into(),
                annotations: annotation
                    .map(|name| (DEFAULT_CONTAINER.to_string(), name.to_string()))
                    .into_iter()
                    .collect(),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: containers
                    .iter()
                    .map(|name| Container {
                        name: name.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn choice(name: &str, notice: Option<&str>) -> Choice {
        Choice {
            name: name.into(),
            notice: notice.map(String::from),
        }
    }

    #[test]
    fn the_first_of_several_containers_is_chosen_and_noted() {
        assert_eq!(
            default_container(&pod(&["web", "probe"], None)).unwrap(),
            choice("web", Some("Defaulted container \"web\" out of: web, probe"))
        );
    }

    #[test]
    fn a_single_container_is_chosen_without_a_note() {
        assert_eq!(default_container(&pod(&["web"], None)).unwrap(), choice("web", None));
    }

    #[test]
    fn the_annotation_names_the_default_container() {
        assert_eq!(
            default_container(&pod(&["web", "probe"], Some("probe"))).unwrap(),
            choice("probe", None)
        );
        // One the pod does not have is ignored, as kubectl ignores it.
        assert_eq!(
            default_container(&pod(&["web", "probe"], Some("gone"))).unwrap(),
            choice("web", Some("Defaulted container \"web\" out of: web, probe"))
        );
    }

    #[test]
    fn a_pod_without_containers_has_no_default() {
        let error = default_container(&pod(&[], None)).unwrap_err();
        assert_eq!(error.to_string(), "error: pod default/p does not have any containers");
    }
}
