//! The pods' addresses on this node. The agent, not the engine, gives each
//! pod its address in the node's pod range, and the container holding the
//! pod's network (its sandbox, or its only container) is created with it
//! and labelled with it ([`labels::POD_IP`]). So a pod of one container
//! keeps its address while that container restarts (each restart is a new
//! container), and the engine never hands the address of a pod waiting to
//! restart to another pod.
//!
//! The addresses in use are read back once, from the labels of this
//! node's containers, before the first is given out; from then on every
//! address goes through here. The top sixteenth of the range is left to
//! the engine ([`engine_range`]) for containers that are not pods (the
//! agent's own container when it runs in one).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

use bosun_proto::net::Cidr;
use tokio::sync::Mutex;

use crate::runtime::{labels, ContainerRuntime, RuntimeError};

/// Why a pod got no address.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AddressError {
    #[error("all {count} pod addresses of this node's range {range} are in use")]
    Exhausted { range: Cidr, count: u64 },
    #[error("cannot read the addresses in use: {0}")]
    Runtime(#[from] RuntimeError),
}

/// The part of a node's pod range the engine allocates from by itself, for
/// containers that are not pods: its top sixteenth (a /28 of a /24), or
/// nothing when the range is too small to spare it.
pub fn engine_range(pod_range: Cidr) -> Option<Cidr> {
    let prefix = pod_range.prefix() + 4;
    (prefix <= 30).then(|| pod_range.block(prefix, 15)).flatten()
}

/// The addresses pods may hold: after the network address and the
/// gateway, up to the engine's part (or the broadcast address).
fn pod_indices(pod_range: Cidr) -> std::ops::Range<u64> {
    let end = match engine_range(pod_range) {
        Some(engine) => u64::from(u32::from(engine.network()) - u32::from(pod_range.network())),
        None => pod_range.size().saturating_sub(1),
    };
    2..end.max(2)
}

#[derive(Default)]
struct Book {
    by_pod: HashMap<String, Ipv4Addr>,
    used: HashSet<Ipv4Addr>,
    /// Where the search for a free address starts: just after the last
    /// one given, so a freed address is not reused at once (peers may
    /// still hold connections and neighbour entries for it).
    next: u64,
}

/// This node's pod addresses, by pod uid.
#[derive(Default)]
pub struct Addresses {
    /// `None` until read back from the runtime.
    book: Mutex<Option<Book>>,
}

impl Addresses {
    /// The address of pod `uid`: the one it holds, or a free one, kept for
    /// it until [`Addresses::release`].
    ///
    /// # Errors
    /// When the range is used up, or the runtime cannot say which
    /// addresses are in use (at the first call).
    pub async fn assign<R: ContainerRuntime>(
        &self,
        runtime: &R,
        node: &str,
        cluster: &str,
        pod_range: Cidr,
        uid: &str,
    ) -> Result<Ipv4Addr, AddressError> {
        let mut book = self.book.lock().await;
        if book.is_none() {
            *book = Some(read_back(runtime, node, cluster, pod_range).await?);
        }
        let book = book.as_mut().expect("read back above");
        if let Some(address) = book.by_pod.get(uid) {
            return Ok(*address);
        }
        let indices = pod_indices(pod_range);
        let count = indices.end - indices.start;
        let start = book.next.clamp(indices.start, indices.end);
        let free = (start..indices.end)
            .chain(indices.start..start)
            .find_map(|i| pod_range.address(i).filter(|a| !book.used.contains(a)).map(|a| (i, a)));
        let Some((index, address)) = free else {
            return Err(AddressError::Exhausted {
                range: pod_range,
                count,
            });
        };
        book.next = index + 1;
        book.used.insert(address);
        book.by_pod.insert(uid.to_string(), address);
        Ok(address)
    }

    /// Frees pod `uid`'s address (it finished, or is gone).
    pub async fn release(&self, uid: &str) {
        if let Some(book) = self.book.lock().await.as_mut() {
            if let Some(address) = book.by_pod.remove(uid) {
                book.used.remove(&address);
            }
        }
    }

    /// Pod `uid`'s address turned out to be taken by a container the agent
    /// did not make: it is not given again, and the pod gets another.
    pub async fn taken_elsewhere(&self, uid: &str) {
        if let Some(book) = self.book.lock().await.as_mut() {
            book.by_pod.remove(uid);
        }
    }

    /// The address pod `uid` holds, if it was given one.
    pub async fn of(&self, uid: &str) -> Option<Ipv4Addr> {
        self.book.lock().await.as_ref()?.by_pod.get(uid).copied()
    }
}

/// The addresses this node's pods hold: the labels of the containers of
/// this cluster's pods, and the address of any running one without a
/// label (a sandbox made by an older agent).
async fn read_back<R: ContainerRuntime>(
    runtime: &R,
    node: &str,
    cluster: &str,
    pod_range: Cidr,
) -> Result<Book, RuntimeError> {
    let mut book = Book::default();
    for container in runtime.list_containers(labels::NODE, node).await? {
        if container.label(labels::CLUSTER) != cluster {
            continue;
        }
        let labelled = container.label(labels::POD_IP).parse::<Ipv4Addr>().ok();
        let held = labelled.or_else(|| container.ip.as_deref().and_then(|ip| ip.parse().ok()));
        let Some(address) = held.filter(|a| pod_range.contains(*a)) else {
            continue;
        };
        book.used.insert(address);
        book.by_pod
            .insert(container.label(labels::POD_UID).to_string(), address);
    }
    Ok(book)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap as Map;

    use super::*;
    use crate::runtime::fake::FakeRuntime;
    use crate::runtime::ContainerSpec;

    fn range(text: &str) -> Cidr {
        text.parse().expect("a range")
    }

    #[test]
    fn the_engine_keeps_the_top_sixteenth_and_pods_the_rest() {
        let cases = [
            ("10.42.3.0/24", Some("10.42.3.240/28"), 2..240),
            ("10.42.0.0/16", Some("10.42.240.0/20"), 2..61440),
            ("10.42.3.0/26", Some("10.42.3.60/30"), 2..60),
            ("10.42.3.0/27", None, 2..31),
            ("10.42.3.0/30", None, 2..3),
        ];
        for (pod_range, engine, pods) in cases {
            let pod_range = range(pod_range);
            assert_eq!(engine_range(pod_range), engine.map(range), "{pod_range}");
            assert_eq!(pod_indices(pod_range), pods, "{pod_range}");
        }
    }

    async fn create(runtime: &FakeRuntime, uid: &str, cluster: &str, ip: Option<&str>) {
        let mut labels = Map::from([
            (labels::NODE.to_string(), "n1".to_string()),
            (labels::CLUSTER.to_string(), cluster.to_string()),
            (labels::POD_UID.to_string(), uid.to_string()),
        ]);
        if let Some(ip) = ip {
            labels.insert(labels::POD_IP.to_string(), ip.to_string());
        }
        let spec = ContainerSpec {
            name: uid.to_string(),
            labels,
            ..Default::default()
        };
        runtime.create_container(&spec).await.expect("created");
    }

    #[tokio::test]
    async fn addresses_are_read_back_then_given_once_each_and_reused_last() {
        let runtime = FakeRuntime::default();
        create(&runtime, "held", "c1", Some("10.42.3.2")).await;
        create(&runtime, "other-cluster", "c2", Some("10.42.3.3")).await;
        create(&runtime, "outside", "c1", Some("10.9.9.9")).await;
        let addresses = Addresses::default();
        let pod_range = range("10.42.3.0/29");
        let assign = |uid: &'static str| addresses.assign(&runtime, "n1", "c1", pod_range, uid);

        assert_eq!(assign("held").await.unwrap().to_string(), "10.42.3.2", "kept");
        assert_eq!(
            assign("a").await.unwrap().to_string(),
            "10.42.3.3",
            "another cluster's is not ours"
        );
        assert_eq!(assign("a").await.unwrap().to_string(), "10.42.3.3", "asked again");
        assert_eq!(assign("b").await.unwrap().to_string(), "10.42.3.4");
        assert_eq!(assign("c").await.unwrap().to_string(), "10.42.3.5");
        assert_eq!(assign("d").await.unwrap().to_string(), "10.42.3.6");
        let full = assign("e").await.unwrap_err().to_string();
        assert_eq!(full, "all 5 pod addresses of this node's range 10.42.3.0/29 are in use");

        addresses.release("b").await;
        addresses.release("never-had-one").await;
        assert_eq!(addresses.of("b").await, None);
        assert_eq!(assign("e").await.unwrap().to_string(), "10.42.3.4", "the only free one");
        addresses.taken_elsewhere("d").await;
        assert_eq!(
            assign("d").await.unwrap_err().to_string(),
            "all 5 pod addresses of this node's range 10.42.3.0/29 are in use",
            "its address is not given again"
        );
        addresses.release("a").await;
        addresses.release("c").await;
        assert_eq!(
            assign("f").await.unwrap().to_string(),
            "10.42.3.5",
            "the search goes on after the last given"
        );
    }

    #[tokio::test]
    async fn a_runtime_that_cannot_be_read_gives_no_address_until_it_can() {
        let runtime = FakeRuntime::default();
        create(&runtime, "held", "c1", Some("10.42.3.2")).await;
        let addresses = Addresses::default();
        let pod_range = range("10.42.3.0/24");
        runtime.set_unreachable(true);
        let error = addresses
            .assign(&runtime, "n1", "c1", pod_range, "new")
            .await
            .unwrap_err();
        assert!(matches!(error, AddressError::Runtime(_)), "{error}");
        runtime.set_unreachable(false);
        let address = addresses.assign(&runtime, "n1", "c1", pod_range, "new").await.unwrap();
        assert_eq!(address.to_string(), "10.42.3.3", "the held one is still known");
    }
}
