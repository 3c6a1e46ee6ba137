//! `ctl cp`: copies a file or a directory between this machine and a
//! container, as kubectl's: `[NAMESPACE/]POD:PATH` names the container
//! side, the other is local. The bytes travel as a tar stream over an exec
//! session, so the container's image needs `tar` (as kubectl's). Entries
//! coming back that would land outside the destination are refused.

use std::io::Cursor;
use std::path::{Component, Path, PathBuf};

use bosun_proto::api::ExecStart;

use super::exec::{session, Stdin};
use super::{namespace_or_default, target_pod};
use crate::cli::CpArgs;
use crate::{Client, CtlError, Io};

/// One side of a copy.
#[derive(Debug, PartialEq, Eq)]
enum Location {
    Local(PathBuf),
    Container {
        namespace: Option<String>,
        pod: String,
        path: String,
    },
}

/// `[NAMESPACE/]POD:PATH`, or a local path.
fn location(text: &str) -> Location {
    if let Some((target, path)) = text.split_once(':') {
        let (namespace, pod) = match target.split_once('/') {
            Some((namespace, pod)) => (Some(namespace), pod),
            None => (None, target),
        };
        let is_name = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if is_name(pod) && namespace.is_none_or(is_name) && !path.is_empty() {
            return Location::Container {
                namespace: namespace.map(str::to_string),
                pod: pod.to_string(),
                path: path.to_string(),
            };
        }
    }
    Location::Local(PathBuf::from(text))
}

/// # Errors
/// Two local or two container sides, an unreadable source, a container
/// without `tar` or the path, or an unsafe entry in what came back.
pub async fn run(client: &Client, args: &CpArgs, namespace: Option<&str>, io: &mut Io<'_>) -> Result<(), CtlError> {
    match (location(&args.source), location(&args.destination)) {
        (
            Location::Local(local),
            Location::Container {
                namespace: ns,
                pod,
                path,
            },
        ) => {
            let namespace = ns.unwrap_or_else(|| namespace_or_default(namespace));
            let pod = target_pod(client, &namespace, &pod, io).await?;
            let (dir, name) = split(&path);
            let archive = pack(&local, &name)?;
            let command = ["tar", "-xmf", "-", "-C", &dir].map(String::from).to_vec();
            exec(
                client,
                &namespace,
                &pod,
                args.container.as_deref(),
                command,
                Some(archive),
            )
            .await?;
            Ok(())
        }
        (
            Location::Container {
                namespace: ns,
                pod,
                path,
            },
            Location::Local(local),
        ) => {
            let namespace = ns.unwrap_or_else(|| namespace_or_default(namespace));
            let pod = target_pod(client, &namespace, &pod, io).await?;
            let (dir, name) = split(&path);
            let command = ["tar", "-cf", "-", "-C", &dir, &name].map(String::from).to_vec();
            let archive = exec(client, &namespace, &pod, args.container.as_deref(), command, None).await?;
            unpack(&archive, &name, &local)
        }
        (Location::Local(_), Location::Local(_)) => Err(CtlError::Invalid(
            "one of the source and the destination must be a container path, POD:PATH".into(),
        )),
        _ => Err(CtlError::Invalid(
            "copying between two containers is not supported; one side must be local".into(),
        )),
    }
}

/// The directory holding `path` in the container, and its last name.
fn split(path: &str) -> (String, String) {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rsplit_once('/') {
        Some(("", name)) => ("/".to_string(), name.to_string()),
        Some((dir, name)) => (dir.to_string(), name.to_string()),
        None => (".".to_string(), trimmed.to_string()),
    }
}

/// A tar stream holding `local` (a file or a directory) under `name`.
fn pack(local: &Path, name: &str) -> Result<Vec<u8>, CtlError> {
    let unreadable = |e: std::io::Error| CtlError::Invalid(format!("cannot read {}: {e}", local.display()));
    let mut builder = tar::Builder::new(Vec::new());
    builder.follow_symlinks(false);
    if local.is_dir() {
        builder.append_dir_all(name, local).map_err(unreadable)?;
    } else {
        builder.append_path_with_name(local, name).map_err(unreadable)?;
    }
    builder.into_inner().map_err(unreadable)
}

/// Unpacks `archive`, whose entries start with `name`, as `local`.
fn unpack(archive: &[u8], name: &str, local: &Path) -> Result<(), CtlError> {
    let failed = |e: std::io::Error| CtlError::Invalid(format!("cannot write {}: {e}", local.display()));
    let mut entries = tar::Archive::new(Cursor::new(archive));
    for entry in entries.entries().map_err(failed)? {
        let mut entry = entry.map_err(failed)?;
        let path = entry.path().map_err(failed)?.into_owned();
        let Ok(rest) = path.strip_prefix(name) else { continue };
        if rest.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(CtlError::Invalid(format!(
                "refusing {}: it would land outside {}",
                path.display(),
                local.display()
            )));
        }
        let target = if rest.as_os_str().is_empty() {
            local.to_path_buf()
        } else {
            local.join(rest)
        };
        if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(failed)?;
        }
        entry.unpack(&target).map_err(failed)?;
    }
    Ok(())
}

/// Runs `command` in the container with `input` as its stdin; its stdout.
async fn exec(
    client: &Client,
    namespace: &str,
    pod: &str,
    container: Option<&str>,
    command: Vec<String>,
    input: Option<Vec<u8>>,
) -> Result<Vec<u8>, CtlError> {
    let start = ExecStart {
        namespace: namespace.to_string(),
        name: pod.to_string(),
        container: container.unwrap_or_default().to_string(),
        command,
        stdin: input.is_some(),
        tty: false,
        size: None,
    };
    let (mut stdin, mut stdout, mut stderr) = (std::io::empty(), Vec::new(), Vec::new());
    let mut io = Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    let stdin = input.map_or(Stdin::None, Stdin::Bytes);
    match session(client, start, stdin, &mut io).await {
        Ok(()) => Ok(stdout),
        Err(CtlError::Exit(code)) => Err(CtlError::Invalid(format!(
            "tar in the container exited with {code}: {}",
            String::from_utf8_lossy(&stderr).trim()
        ))),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_paths_are_told_from_local_ones() {
        let container = |namespace: Option<&str>, pod: &str, path: &str| Location::Container {
            namespace: namespace.map(str::to_string),
            pod: pod.into(),
            path: path.into(),
        };
        assert_eq!(location("web:/tmp/a"), container(None, "web", "/tmp/a"));
        assert_eq!(location("shop/web-1:logs"), container(Some("shop"), "web-1", "logs"));
        assert_eq!(location("./file"), Location::Local("./file".into()));
        assert_eq!(location("/tmp/a:b/c:d"), Location::Local("/tmp/a:b/c:d".into()));
        assert_eq!(location("web:"), Location::Local("web:".into()));
    }

    #[test]
    fn paths_split_into_directory_and_name() {
        assert_eq!(split("/tmp/a"), ("/tmp".into(), "a".into()));
        assert_eq!(split("/a/"), ("/".into(), "a".into()));
        assert_eq!(split("a"), (".".into(), "a".into()));
    }

    #[test]
    fn a_directory_packs_and_unpacks_under_the_new_name() {
        let source = tempfile::tempdir().unwrap();
        std::fs::create_dir(source.path().join("sub")).unwrap();
        std::fs::write(source.path().join("sub/x.txt"), "x").unwrap();
        std::fs::write(source.path().join("top.txt"), "top").unwrap();
        let archive = pack(source.path(), "copied").unwrap();
        let target = tempfile::tempdir().unwrap();
        let local = target.path().join("here");
        unpack(&archive, "copied", &local).unwrap();
        assert_eq!(std::fs::read_to_string(local.join("sub/x.txt")).unwrap(), "x");
        assert_eq!(std::fs::read_to_string(local.join("top.txt")).unwrap(), "top");
        // A single file lands as the destination itself.
        let archive = pack(&source.path().join("top.txt"), "renamed.txt").unwrap();
        let file = target.path().join("file.txt");
        unpack(&archive, "renamed.txt", &file).unwrap();
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "top");
    }

    #[test]
    fn entries_escaping_the_destination_are_refused() {
        // The tar crate will not write such a name; a hostile container can.
        let mut header = tar::Header::new_old();
        let name = b"copied/../../evil";
        header.as_old_mut().name[..name.len()].copy_from_slice(name);
        header.set_size(1);
        header.set_mode(0o644);
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        builder.append(&header, &b"!"[..]).unwrap();
        let archive = builder.into_inner().unwrap();
        let target = tempfile::tempdir().unwrap();
        let error = unpack(&archive, "copied", &target.path().join("here"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("would land outside"), "{error}");
        assert!(!target.path().join("evil").exists());
    }
}
