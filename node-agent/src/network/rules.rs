//! The packet filter's side of the pod network: forwarding of pod traffic
//! past Docker's `FORWARD` policy of DROP, and masquerading of what pods
//! send outside the pod ranges.
//!
//! The rules live in two chains of Bosun's own, each reached by one jump
//! at the top of the built-in chain it serves:
//!
//! ```text
//! filter FORWARD     -j BOSUN-FORWARD       accept from and to every pod range
//! nat    POSTROUTING -j BOSUN-POSTROUTING   pod ranges: return (source kept);
//!                                           from this node's range: masquerade
//! ```
//!
//! They are written with `iptables-restore`, the tool Docker itself uses, so
//! they land in the same backend as Docker's rules (nftables or legacy) and
//! in the same tables: an accept in a table of Bosun's own could not undo
//! the drop of Docker's `FORWARD` chain, since every table's verdict at a
//! hook must accept. Each sync replaces both chains whole, in one
//! transaction; the jumps are added once.

use std::process::Stdio;

use bosun_proto::net::Cidr;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The chain of forwarding accepts.
pub const FORWARD_CHAIN: &str = "BOSUN-FORWARD";
/// The chain of masquerading.
pub const POSTROUTING_CHAIN: &str = "BOSUN-POSTROUTING";

/// (table, built-in chain, Bosun's chain).
const JUMPS: [(&str, &str, &str); 2] = [
    ("filter", "FORWARD", FORWARD_CHAIN),
    ("nat", "POSTROUTING", POSTROUTING_CHAIN),
];

/// The packet filter refused.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot run {program}: {source} (it comes with iptables, which Docker needs too)")]
    Spawn {
        program: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} failed: {stderr}")]
    Failed { program: &'static str, stderr: String },
}

type Result<T> = std::result::Result<T, RulesError>;

/// The `iptables-restore` input that replaces both chains: `ranges` are
/// every known pod range, `own` this node's.
pub fn restore_input(own: Cidr, ranges: &[Cidr]) -> String {
    let mut text = format!("*filter\n:{FORWARD_CHAIN} - [0:0]\n");
    for range in ranges {
        text.push_str(&format!("-A {FORWARD_CHAIN} -s {range} -j ACCEPT\n"));
        text.push_str(&format!("-A {FORWARD_CHAIN} -d {range} -j ACCEPT\n"));
    }
    text.push_str(&format!("COMMIT\n*nat\n:{POSTROUTING_CHAIN} - [0:0]\n"));
    for range in ranges {
        text.push_str(&format!("-A {POSTROUTING_CHAIN} -s {own} -d {range} -j RETURN\n"));
    }
    text.push_str(&format!("-A {POSTROUTING_CHAIN} -s {own} -j MASQUERADE\nCOMMIT\n"));
    text
}

async fn run(program: &'static str, args: &[&str], input: Option<&str>) -> Result<std::process::Output> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if input.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| RulesError::Spawn { program, source })?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        stdin
            .write_all(text.as_bytes())
            .await
            .map_err(|source| RulesError::Spawn { program, source })?;
    }
    child
        .wait_with_output()
        .await
        .map_err(|source| RulesError::Spawn { program, source })
}

async fn iptables(args: &[&str]) -> Result<bool> {
    Ok(run("iptables", args, None).await?.status.success())
}

/// Replaces both chains with the rules for `ranges` and makes sure each is
/// jumped to exactly once.
///
/// # Errors
/// When `iptables-restore` or `iptables` fails.
pub async fn sync(own: Cidr, ranges: &[Cidr]) -> Result<()> {
    let output = run(
        "iptables-restore",
        &["-w", "--noflush"],
        Some(&restore_input(own, ranges)),
    )
    .await?;
    if !output.status.success() {
        return Err(RulesError::Failed {
            program: "iptables-restore",
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    for (table, builtin, chain) in JUMPS {
        let jumps = count_jumps(table, builtin, chain).await?;
        if jumps == 0 {
            let inserted = iptables(&["-w", "-t", table, "-I", builtin, "1", "-j", chain]).await?;
            if !inserted {
                return Err(RulesError::Failed {
                    program: "iptables",
                    stderr: format!("cannot add the jump from {table} {builtin} to {chain}"),
                });
            }
        }
        for _ in 1..jumps {
            iptables(&["-w", "-t", table, "-D", builtin, "-j", chain]).await?;
        }
    }
    Ok(())
}

async fn count_jumps(table: &str, builtin: &str, chain: &str) -> Result<usize> {
    let output = run("iptables", &["-w", "-t", table, "-S", builtin], None).await?;
    if !output.status.success() {
        return Err(RulesError::Failed {
            program: "iptables",
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let jump = format!("-A {builtin} -j {chain}");
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.trim() == jump)
        .count())
}

/// Removes the jumps and both chains; how many chains were there.
///
/// # Errors
/// When `iptables` cannot run.
pub async fn cleanup() -> Result<usize> {
    let mut removed = 0;
    for (table, builtin, chain) in JUMPS {
        while iptables(&["-w", "-t", table, "-D", builtin, "-j", chain]).await? {}
        if iptables(&["-w", "-t", table, "-F", chain]).await? {
            iptables(&["-w", "-t", table, "-X", chain]).await?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_ranges_are_forwarded_and_only_the_rest_is_masqueraded() {
        let own: Cidr = "10.42.0.0/24".parse().unwrap();
        let other: Cidr = "10.42.1.0/24".parse().unwrap();
        assert_eq!(
            restore_input(own, &[own, other]),
            "*filter\n:BOSUN-FORWARD - [0:0]\n\
             -A BOSUN-FORWARD -s 10.42.0.0/24 -j ACCEPT\n\
             -A BOSUN-FORWARD -d 10.42.0.0/24 -j ACCEPT\n\
             -A BOSUN-FORWARD -s 10.42.1.0/24 -j ACCEPT\n\
             -A BOSUN-FORWARD -d 10.42.1.0/24 -j ACCEPT\n\
             COMMIT\n*nat\n:BOSUN-POSTROUTING - [0:0]\n\
             -A BOSUN-POSTROUTING -s 10.42.0.0/24 -d 10.42.0.0/24 -j RETURN\n\
             -A BOSUN-POSTROUTING -s 10.42.0.0/24 -d 10.42.1.0/24 -j RETURN\n\
             -A BOSUN-POSTROUTING -s 10.42.0.0/24 -j MASQUERADE\n\
             COMMIT\n"
        );
    }
}
