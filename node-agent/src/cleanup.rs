//! Removing what an agent made once its cluster is gone.
//!
//! A cluster torn down around its pods (`docker-compose down -v`, masters'
//! data deleted) leaves their containers running, with their host ports.
//! Nothing in the new cluster knows them: the pod sweep only looks at
//! containers of the agent's current cluster, so they would run forever.
//!
//! **Whose containers an agent may remove.** Many agents share one engine
//! (the integration tests run dozens at once, each in its own cluster, and
//! often with the same node names), so "containers of another cluster" is
//! far too wide. Every container carries [`labels::AGENT`], the identity of
//! the agent that made it: its node name and where its data directory
//! lives as the engine sees it ([`identity`]). An agent removes a
//! container of another cluster only when that label is its own identity,
//! i.e. when the container was made by this same agent (same engine, same
//! node name, same data directory) for a cluster it no longer belongs to.
//! Agents of other tests or other compose projects have other data
//! directories (or other volumes behind `/data`), so they never match.
//!
//! - [`remove_stale`] runs when an agent starts into a cluster: it removes
//!   its own containers of earlier clusters, saying so in its log.
//! - [`remove_all`] is `node-agent --cleanup`: every container the agent
//!   made, whatever the cluster (run it with the agent stopped).

use std::path::Path;

use crate::runtime::{labels, ContainerInfo, ContainerRuntime, OwnContainer, Result};

/// The agent's identity on its engine: `NODE@LOCATION`, where LOCATION is
/// the data directory's path on a host, or, for an agent in a container of
/// this engine, the volume or host path mounted at its data directory
/// ([`OwnContainer::data_location`]): `/data` is the same in every agent
/// container, the volume behind it is not, and it is the same for the
/// agent's later containers (`docker-compose up` again, `docker-compose run
/// agent --cleanup`).
pub fn identity(node: &str, data_dir: &Path, own: Option<&OwnContainer>) -> String {
    let location = match own {
        Some(own) => own.data_location(data_dir),
        None => data_dir.display().to_string(),
    };
    format!("{node}@{location}")
}

/// Of the containers made by this agent (already filtered by its
/// identity), those of a cluster other than `cluster`, pod containers
/// before sandboxes.
pub fn stale<'a>(containers: &'a [ContainerInfo], cluster: &str) -> Vec<&'a ContainerInfo> {
    let mut stale: Vec<&ContainerInfo> = containers
        .iter()
        .filter(|c| !cluster.is_empty() && c.label(labels::CLUSTER) != cluster)
        .collect();
    stale.sort_by_key(|c| c.container_name() == labels::SANDBOX);
    stale
}

/// Removes this agent's containers of clusters other than `cluster`;
/// returns how many went.
///
/// # Errors
/// When the runtime fails (the caller carries on: the pods of the current
/// cluster do not depend on it).
pub async fn remove_stale<R: ContainerRuntime>(runtime: &R, identity: &str, cluster: &str) -> Result<usize> {
    let containers = runtime.list_containers(labels::AGENT, identity).await?;
    let stale = stale(&containers, cluster);
    for container in &stale {
        tracing::info!(
            container = %container.id,
            pod = %format!("{}/{}", container.label(labels::POD_NAMESPACE), container.label(labels::POD_NAME)),
            old_cluster = %container.label(labels::CLUSTER),
            cluster,
            "removing a container of a cluster this agent no longer belongs to"
        );
        runtime.remove_container(&container.id).await?;
    }
    Ok(stale.len())
}

/// Removes every container this agent made, in any cluster; returns how
/// many went.
///
/// # Errors
/// When the runtime fails.
pub async fn remove_all<R: ContainerRuntime>(runtime: &R, identity: &str) -> Result<usize> {
    let mut containers = runtime.list_containers(labels::AGENT, identity).await?;
    containers.sort_by_key(|c| c.container_name() == labels::SANDBOX);
    for container in &containers {
        tracing::info!(
            container = %container.id,
            pod = %format!("{}/{}", container.label(labels::POD_NAMESPACE), container.label(labels::POD_NAME)),
            cluster = %container.label(labels::CLUSTER),
            "removing"
        );
        runtime.remove_container(&container.id).await?;
    }
    Ok(containers.len())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::runtime::fake::FakeRuntime;
    use crate::runtime::{ContainerSpec, Mount};

    async fn container(runtime: &FakeRuntime, agent: &str, cluster: &str, name: &str) -> String {
        let spec = ContainerSpec {
            name: format!("{agent}-{cluster}-{name}"),
            image: "img".into(),
            labels: HashMap::from([
                (labels::AGENT.to_string(), agent.to_string()),
                (labels::CLUSTER.to_string(), cluster.to_string()),
                (labels::NODE.to_string(), "node-a".to_string()),
                (labels::CONTAINER.to_string(), name.to_string()),
            ]),
            ..Default::default()
        };
        runtime.create_container(&spec).await.unwrap()
    }

    fn names(runtime: &FakeRuntime) -> Vec<String> {
        let mut names: Vec<String> = runtime
            .containers()
            .iter()
            .map(|c| format!("{} {}", c.label(labels::AGENT), c.label(labels::CLUSTER)))
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn an_agent_in_a_new_cluster_removes_only_its_own_containers_of_old_clusters() {
        let runtime = FakeRuntime::default();
        let me = "node-a@/data/a";
        // Another agent with the same node name (another test) and its own
        // data dir: never touched, whatever its cluster.
        let other = "node-a@/data/b";
        container(&runtime, me, "old", "POD").await;
        container(&runtime, me, "old", "web").await;
        container(&runtime, me, "new", "POD").await;
        container(&runtime, other, "old", "POD").await;
        container(&runtime, other, "third", "POD").await;
        assert_eq!(remove_stale(&runtime, me, "new").await.unwrap(), 2);
        assert_eq!(
            names(&runtime),
            ["node-a@/data/a new", "node-a@/data/b old", "node-a@/data/b third"]
        );
        let removed: Vec<String> = runtime
            .calls()
            .into_iter()
            .filter(|c| c.starts_with("remove"))
            .collect();
        assert_eq!(
            removed,
            ["remove fake-000002", "remove fake-000001"],
            "pod containers before sandboxes"
        );
    }

    #[tokio::test]
    async fn an_agent_that_knows_no_cluster_yet_removes_nothing() {
        let runtime = FakeRuntime::default();
        container(&runtime, "n@/d", "old", "POD").await;
        assert_eq!(remove_stale(&runtime, "n@/d", "").await.unwrap(), 0);
        assert_eq!(names(&runtime).len(), 1);
    }

    #[tokio::test]
    async fn cleanup_removes_every_container_of_the_agent_and_nothing_else() {
        let runtime = FakeRuntime::default();
        container(&runtime, "n@/d", "one", "POD").await;
        container(&runtime, "n@/d", "two", "web").await;
        container(&runtime, "n@/e", "one", "POD").await;
        assert_eq!(remove_all(&runtime, "n@/d").await.unwrap(), 2);
        assert_eq!(names(&runtime), ["n@/e one"]);
    }

    #[test]
    fn identity_is_the_node_and_where_its_data_lives() {
        assert_eq!(identity("node-a", Path::new("/srv/agent"), None), "node-a@/srv/agent");
        let own = OwnContainer {
            id: "x".into(),
            name: "bosun_agent_1".into(),
            networks: vec![],
            mounts: vec![Mount {
                destination: "/data".into(),
                source: "volume:bosun_agent".into(),
            }],
        };
        assert_eq!(
            identity("compose-node", Path::new("/data"), Some(&own)),
            "compose-node@volume:bosun_agent"
        );
    }
}
