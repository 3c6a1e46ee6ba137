//! The container the agent itself runs in, when it runs in one on the
//! engine it drives (the docker-compose agent, with the engine's socket
//! mounted).
//!
//! Such an agent must do two things a host agent does not:
//! - join the pods' network, or it cannot reach pod IPs and every
//!   `httpGet`/`tcpSocket` probe times out ([`super::docker::Docker`]
//!   connects it when it prepares the network);
//! - name its data directory as the engine sees it: `/data` is the same
//!   path in every agent container, while the volume mounted there is not
//!   (see [`crate::cleanup`]).
//!
//! The container's id comes from `/proc/self/mountinfo`: the engine bind
//! mounts `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` from
//! `.../containers/<64 hex id>/`. Only those three mount points count: a
//! host's own mount table also lists `.../containers/<id>/mounts/shm` for
//! every running container, which must not make a host agent think it is
//! one of them.

use std::path::{Path, PathBuf};

/// Mount points the engine fills from the container's own directory.
const OWN_FILES: [&str; 3] = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];

/// The agent's own container, as the engine reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OwnContainer {
    pub id: String,
    /// The name without the engine's leading `/`.
    pub name: String,
    /// Networks the container is attached to.
    pub networks: Vec<String>,
    pub mounts: Vec<Mount>,
}

/// One mount of the agent's container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount {
    /// Where it is mounted in the container.
    pub destination: PathBuf,
    /// What is mounted: `volume:NAME` for a volume, `bind:PATH` for a path
    /// of the engine's host.
    pub source: String,
}

/// The id of the container this process runs in, from the text of
/// `/proc/self/mountinfo`; `None` outside a container.
pub fn id_from_mountinfo(mountinfo: &str) -> Option<String> {
    mountinfo.lines().find_map(|line| {
        // id parent major:minor root mount-point options...
        let mut fields = line.split_whitespace().skip(3);
        let root = fields.next()?;
        let mount_point = fields.next()?;
        if !OWN_FILES.contains(&mount_point) {
            return None;
        }
        let (_, after) = root.rsplit_once("/containers/")?;
        let id = after.split('/').next()?;
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
    })
}

impl OwnContainer {
    /// Where `data_dir` (a path inside this container) really lives, as a
    /// name that is the same for every container mounting the same data and
    /// different for containers that do not: the volume or host path
    /// mounted there, or this container's name when the data dir is in the
    /// container's own filesystem.
    pub fn data_location(&self, data_dir: &Path) -> String {
        let mount = self
            .mounts
            .iter()
            .filter(|m| data_dir.starts_with(&m.destination))
            .max_by_key(|m| m.destination.components().count());
        match mount {
            Some(mount) => {
                let rest = data_dir.strip_prefix(&mount.destination).unwrap_or(Path::new(""));
                if rest.as_os_str().is_empty() {
                    mount.source.clone()
                } else {
                    format!("{}/{}", mount.source, rest.display())
                }
            }
            None => format!("container:{}{}", self.name, data_dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "2d5bf44f935d56b12d8d920f1d0359da9bc385dc4b6152d5621faecdc1f0b766";

    #[test]
    fn finds_the_container_id_from_the_engine_mounted_hostname() {
        let mountinfo = format!(
            "72 48 0:40 / / rw,nodev,noatime master:2 - fuse.fuse-overlayfs fuse-overlayfs rw\n\
             89 72 254:0 /var/lib/docker/volumes/agent/_data /data rw,relatime master:1 - ext4 /dev/vda rw\n\
             91 72 254:0 /var/lib/docker/containers/{ID}/hostname /etc/hostname rw,relatime - ext4 /dev/vda rw\n"
        );
        assert_eq!(id_from_mountinfo(&mountinfo).as_deref(), Some(ID));
    }

    #[test]
    fn a_host_listing_other_containers_shm_mounts_is_not_a_container() {
        let mountinfo = format!(
            "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
             45 27 254:0 /var/lib/docker /var/lib/docker rw,relatime shared:1 - ext4 /dev/vda rw\n\
             99 45 0:50 / /var/lib/docker/containers/{ID}/mounts/shm rw - tmpfs shm rw\n"
        );
        assert_eq!(id_from_mountinfo(&mountinfo), None);
        assert_eq!(id_from_mountinfo(""), None);
    }

    #[test]
    fn a_short_or_odd_id_is_not_taken() {
        let mountinfo = "91 72 254:0 /x/containers/abc123/hostname /etc/hostname rw - ext4 /dev/vda rw\n";
        assert_eq!(id_from_mountinfo(mountinfo), None);
    }

    fn own(mounts: &[(&str, &str)]) -> OwnContainer {
        OwnContainer {
            id: ID.into(),
            name: "bosun_agent_1".into(),
            networks: vec![],
            mounts: mounts
                .iter()
                .map(|(destination, source)| Mount {
                    destination: destination.into(),
                    source: source.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn the_data_location_is_the_volume_or_path_mounted_at_the_data_dir() {
        let container = own(&[
            ("/var/run/docker.sock", "bind:/var/run/docker.sock"),
            ("/data", "volume:bosun_agent"),
            ("/data/cache", "volume:other"),
        ]);
        assert_eq!(container.data_location(Path::new("/data")), "volume:bosun_agent");
        assert_eq!(
            container.data_location(Path::new("/data/agent")),
            "volume:bosun_agent/agent"
        );
        assert_eq!(container.data_location(Path::new("/data/cache/x")), "volume:other/x");
        // "/database" is not under "/data".
        assert_eq!(
            container.data_location(Path::new("/database")),
            "container:bosun_agent_1/database"
        );
    }
}
