//! Numbered slots of a machine-wide pool (pod ranges, host links) held by
//! one test process, so tests running side by side never share one.
//!
//! A claim is a file named after its slot, made whole in one step (a hard
//! link to a file already written) and naming its process by pid and start
//! time, so a pid used again by another process does not keep a dead
//! test's claim alive. The claim of a process that is gone is taken over
//! under a second file (`SLOT.takeover`), so two processes finding the
//! same dead claim never both get it. Released when dropped.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Result;

/// One slot of a pool, held until dropped.
#[derive(Debug)]
pub struct Claim {
    path: PathBuf,
    slot: u32,
}

/// What a claim file says about its holder.
#[derive(Debug, PartialEq)]
enum Holder {
    Alive,
    Gone(String),
}

impl Claim {
    /// Claims the first slot of `slots` in pool directory `dir` that no
    /// live process holds.
    ///
    /// # Errors
    /// When the pool directory cannot be written. `Ok(None)` when every
    /// slot is held.
    pub fn first_free(dir: &Path, slots: impl IntoIterator<Item = u32>) -> Result<Option<Claim>> {
        let token = Token::write(dir)?;
        Ok(slots.into_iter().find_map(|slot| take(dir, slot, &token.0)))
    }

    /// Claims `slot` when no live process holds it.
    ///
    /// # Errors
    /// When the pool directory cannot be written. `Ok(None)` when a live
    /// process holds it.
    pub fn slot_if_free(dir: &Path, slot: u32) -> Result<Option<Claim>> {
        let token = Token::write(dir)?;
        Ok(take(dir, slot, &token.0))
    }

    /// Slots of the pool whose claim names a process that is gone.
    pub fn stale(dir: &Path) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|slot| matches!(holder(&dir.join(slot.to_string())), Some(Holder::Gone(_))))
            .collect()
    }

    pub fn slot(&self) -> u32 {
        self.slot
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A file naming this process, to be linked as a claim; removed when
/// dropped (a claim made from it is another name of the same file).
struct Token(PathBuf);

impl Token {
    fn write(dir: &Path) -> Result<Token> {
        std::fs::create_dir_all(dir)?;
        static ATTEMPTS: AtomicUsize = AtomicUsize::new(0);
        let pid = std::process::id();
        let attempt = ATTEMPTS.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("claim-{pid}-{attempt}"));
        std::fs::write(&path, identity(pid).unwrap_or_else(|| pid.to_string()))?;
        Ok(Token(path))
    }
}

impl Drop for Token {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn take(dir: &Path, slot: u32, token: &Path) -> Option<Claim> {
    let path = dir.join(slot.to_string());
    // Twice: a claim released between the link and the look at it.
    for _ in 0..2 {
        match std::fs::hard_link(token, &path) {
            Ok(()) => return Some(Claim { path, slot }),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(_) => return None,
        }
        match holder(&path) {
            Some(Holder::Alive) => return None,
            Some(Holder::Gone(seen)) => return take_over(&path, &seen, token).then_some(Claim { path, slot }),
            None => {}
        }
    }
    None
}

/// Replaces the claim at `path`, which said `seen` (a process that is
/// gone), with `token`, unless another process is doing the same.
fn take_over(path: &Path, seen: &str, token: &Path) -> bool {
    let lock = path.with_extension("takeover");
    let created = OpenOptions::new().write(true).create_new(true).open(&lock);
    let mut file = match created {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            // A takeover lock outlives its process only when that died in
            // the few steps below: free it for the next attempt.
            if matches!(holder(&lock), Some(Holder::Gone(_))) {
                let _ = std::fs::remove_file(&lock);
            }
            return false;
        }
        Err(_) => return false,
    };
    let pid = std::process::id();
    let _ = file.write_all(identity(pid).unwrap_or_else(|| pid.to_string()).as_bytes());
    drop(file);
    // Under the lock, the claim is replaced only if it is still the dead
    // one seen: a live process may have claimed the slot meanwhile.
    let still_dead = std::fs::read_to_string(path).is_ok_and(|now| now == seen);
    let taken = still_dead && std::fs::remove_file(path).is_ok() && std::fs::hard_link(token, path).is_ok();
    let _ = std::fs::remove_file(&lock);
    taken
}

/// Whether the process a claim file names still runs; `None` when the
/// file is missing.
fn holder(path: &Path) -> Option<Holder> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut fields = text.split_whitespace();
    let pid = fields.next().and_then(|p| p.parse::<u32>().ok());
    let alive = match (pid, fields.next()) {
        (Some(pid), Some(start)) => identity(pid).is_some_and(|now| now == format!("{pid} {start}")),
        (Some(pid), None) => Path::new(&format!("/proc/{pid}")).exists(),
        // Being written this instant (a claim is whole, a lock may not
        // be), unless it has been so for a while.
        (None, _) => std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age < std::time::Duration::from_secs(60)),
    };
    Some(if alive { Holder::Alive } else { Holder::Gone(text) })
}

/// `PID STARTTIME` of a running process (the start time in clock ticks
/// since boot, field 22 of /proc/PID/stat), which a pid used again has not.
fn identity(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces and brackets.
    let after_name = stat.rsplit_once(") ")?.1;
    let start = after_name.split_whitespace().nth(19)?;
    Some(format!("{pid} {start}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_held_once_and_freed_on_drop() -> Result<()> {
        let dir = tempfile::TempDir::with_prefix("bosun-test-claims-")?;
        let first = Claim::first_free(dir.path(), 0..3)?.expect("a free slot");
        let second = Claim::first_free(dir.path(), 0..3)?.expect("another free slot");
        assert_eq!((first.slot(), second.slot()), (0, 1));
        assert!(Claim::slot_if_free(dir.path(), 0)?.is_none());
        drop(first);
        assert_eq!(Claim::first_free(dir.path(), 0..3)?.map(|c| c.slot()), Some(0));
        Ok(())
    }

    #[test]
    fn the_claim_of_a_process_that_is_gone_is_taken_over() -> Result<()> {
        let dir = tempfile::TempDir::with_prefix("bosun-test-claims-")?;
        // A pid that runs, with a start time it never had; and an old-style
        // claim of a pid that no longer runs.
        std::fs::write(dir.path().join("0"), format!("{} 1", std::process::id()))?;
        let mut gone = std::process::Command::new("true").spawn()?;
        gone.wait()?;
        std::fs::write(dir.path().join("1"), gone.id().to_string())?;
        assert_eq!(Claim::stale(dir.path()).len(), 2);
        let claim = Claim::first_free(dir.path(), 0..2)?.expect("a stale slot");
        assert_eq!(claim.slot(), 0);
        assert_eq!(Claim::stale(dir.path()), [1]);
        assert_eq!(holder(&dir.path().join("0")), Some(Holder::Alive));
        Ok(())
    }
}
