//! `ctl cluster status`, `ctl cluster remove`, `ctl version` and `ctl
//! config view`: about the masters and how ctl reaches them.

use bosun_proto::api::{ClusterStatusRequest, RemoveMemberRequest};
use serde_json::json;

use crate::cli::{ServerSource, StatusOutput};
use crate::{Client, CtlError, Io};

/// `ctl config view`: the masters ctl uses, where that list came from,
/// and the namespace, as a small YAML document.
///
/// # Errors
/// A failed write.
pub fn config_view(
    servers: &[String],
    source: ServerSource,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let source = match source {
        ServerSource::Flag => "flag --server",
        ServerSource::Env => "env BOSUN_SERVER",
        ServerSource::Default => "default",
    };
    let view = json!({
        "servers": servers,
        "serversFrom": source,
        "namespace": namespace.unwrap_or("default"),
    });
    write!(io.stdout, "{}", serde_yaml::to_string(&view).unwrap_or_default())?;
    Ok(())
}

/// `ctl version`: this ctl's version, then the answering master's (or
/// why none answered: the client's version is printed either way).
///
/// # Errors
/// No master could be reached.
pub async fn version(client: &mut Client, io: &mut Io<'_>) -> Result<(), CtlError> {
    writeln!(io.stdout, "Client Version: v{}", env!("CARGO_PKG_VERSION"))?;
    let status = client
        .call(|channel| async move {
            let mut cluster = bosun_proto::api::cluster_client::ClusterClient::new(channel);
            cluster.status(ClusterStatusRequest {}).await.map(|r| r.into_inner())
        })
        .await?;
    writeln!(
        io.stdout,
        "Server Version: v{} (master {})",
        status.version, status.answered_by
    )?;
    Ok(())
}

/// # Errors
/// When no master answers.
pub async fn status(client: &mut Client, output: StatusOutput, io: &mut Io<'_>) -> Result<(), CtlError> {
    let status = client
        .call(|channel| async move {
            let mut cluster = bosun_proto::api::cluster_client::ClusterClient::new(channel);
            cluster.status(ClusterStatusRequest {}).await.map(|r| r.into_inner())
        })
        .await?;
    let leader = status.members.iter().find(|m| m.id == status.leader_id);
    if output == StatusOutput::Json {
        let members: Vec<_> = status
            .members
            .iter()
            .map(|m| {
                json!({
                    "id": m.id, "address": m.address, "role": m.role, "term": m.term,
                    "appliedIndex": m.applied_index, "lastLogIndex": m.last_log_index,
                    "voter": m.voter, "error": m.error,
                })
            })
            .collect();
        let value = json!({
            "leader": if status.leader_id == 0 { json!(null) } else { json!(status.leader_id) },
            "leaderAddress": leader.map(|m| m.address.clone()),
            "answeredBy": status.answered_by,
            "version": status.version,
            "members": members,
        });
        writeln!(
            io.stdout,
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        )?;
        return Ok(());
    }
    let mut rows = vec![["ID", "ADDRESS", "ROLE", "TERM", "APPLIED", "VOTER"]
        .map(String::from)
        .to_vec()];
    for m in &status.members {
        let role = if m.error.is_empty() {
            m.role.clone()
        } else {
            format!("{} ({})", m.role, m.error)
        };
        rows.push(vec![
            m.id.to_string(),
            m.address.clone(),
            role,
            m.term.to_string(),
            m.applied_index.to_string(),
            if m.voter { "yes" } else { "no" }.to_string(),
        ]);
    }
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let line: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        writeln!(io.stdout, "{}", line.join("   ").trim_end())?;
    }
    match leader {
        Some(m) => writeln!(io.stdout, "\nLeader: {} ({})", m.id, m.address)?,
        None => writeln!(io.stdout, "\nLeader: none (an election may be under way)")?,
    }
    Ok(())
}

/// `ctl cluster remove ID [--force]`: the leader removes master `id`.
///
/// # Errors
/// When no master answers, or the leader refuses (the last voter, too few
/// reachable voters left without `--force`, not a member).
pub async fn remove(client: &mut Client, id: u64, force: bool, io: &mut Io<'_>) -> Result<(), CtlError> {
    client
        .call(|channel| async move {
            let mut cluster = bosun_proto::api::cluster_client::ClusterClient::new(channel);
            cluster.remove_member(RemoveMemberRequest { id, force }).await
        })
        .await?;
    writeln!(io.stdout, "master {id} removed")?;
    Ok(())
}
