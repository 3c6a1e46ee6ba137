//! `ctl logs`: a container's output, through the masters. The pod is
//! named, or one of a Deployment's or ReplicaSet's (`deploy/web`), or every
//! pod matching `-l` (one after the other, or all at once with `-f`), each
//! line optionally prefixed with `[pod/NAME/CONTAINER]` as kubectl does.

use bosun_proto::api::pods_client::PodsClient;
use bosun_proto::api::{LogChunk, LogsRequest, Pod};
use bosun_proto::Kind;
use futures::stream::{self, BoxStream, StreamExt};

use super::container::{default_container, target_container};
use super::{list_objects, namespace_or_default, target_pod};
use crate::cli::LogsArgs;
use crate::{Client, CtlError, Io};

/// # Errors
/// When a pod, its node or its container cannot be reached.
pub async fn run(client: &Client, args: &LogsArgs, namespace: Option<&str>, io: &mut Io<'_>) -> Result<(), CtlError> {
    let namespace = namespace_or_default(namespace);
    let pods = match (&args.pod, &args.selector) {
        (Some(pod), _) => {
            let pod = target_pod(client, &namespace, pod, io).await?;
            let container = target_container(client, &namespace, &pod, args.container.as_deref(), io).await?;
            vec![(pod, container)]
        }
        (None, Some(selector)) => selected(client, &namespace, selector, args.container.as_deref(), io).await?,
        (None, None) => return Err(CtlError::Invalid("expected POD, TYPE/NAME or -l SELECTOR".into())),
    };
    if pods.is_empty() {
        writeln!(io.stderr, "No resources found in {namespace} namespace.")?;
        return Ok(());
    }
    if args.follow && pods.len() > args.max_log_requests {
        return Err(CtlError::Invalid(format!(
            "you are attempting to follow {} log streams, but maximum allowed concurrency is {}, use --max-log-requests to increase the limit",
            pods.len(),
            args.max_log_requests
        )));
    }
    let since_time = match &args.since_time {
        Some(text) => Some(
            text.parse::<prost_types::Timestamp>()
                .map_err(|_| CtlError::Invalid(format!("--since-time {text:?} is not an RFC 3339 time")))?,
        ),
        None => None,
    };
    let since_seconds = args
        .since
        .map(|d| i64::try_from(d.as_secs().max(1)).unwrap_or(i64::MAX));
    let requests = pods.into_iter().map(|(name, container)| {
        let prefix = args.prefix.then(|| format!("[pod/{name}/{container}] "));
        let request = LogsRequest {
            name,
            namespace: namespace.clone(),
            container,
            follow: args.follow,
            tail_lines: args.tail,
            previous: args.previous,
            timestamps: args.timestamps,
            since_seconds,
            since_time,
        };
        (prefix, request)
    });
    let mut lines = Lines::default();
    if args.follow {
        // All at once, interleaved as the output comes.
        let mut streams = Vec::new();
        for (prefix, request) in requests {
            let chunks = open(client, request).await?;
            streams.push(chunks.map(move |chunk| (prefix.clone(), chunk)));
        }
        let mut merged = stream::select_all(streams);
        while let Some((prefix, chunk)) = merged.next().await {
            emit(&mut lines, prefix.as_deref(), &chunk?.data, io)?;
        }
    } else {
        // One pod after the other: a stream opens when the one before ends.
        for (prefix, request) in requests {
            let mut chunks = open(client, request).await?;
            while let Some(chunk) = chunks.next().await {
                emit(&mut lines, prefix.as_deref(), &chunk?.data, io)?;
            }
        }
    }
    io.stdout.write_all(lines.rest().as_bytes())?;
    Ok(())
}

/// Opens one pod's log stream.
async fn open(
    client: &Client,
    request: LogsRequest,
) -> Result<BoxStream<'static, Result<LogChunk, tonic::Status>>, CtlError> {
    let stream = client
        .call(|channel| {
            let request = request.clone();
            async move { PodsClient::new(channel).logs(request).await.map(|r| r.into_inner()) }
        })
        .await?;
    Ok(stream::unfold(stream, |mut stream| async move {
        let next = stream.message().await.transpose()?;
        Some((next, stream))
    })
    .boxed())
}

/// Writes `data`, its whole lines after `prefix` when there is one.
fn emit(lines: &mut Lines, prefix: Option<&str>, data: &[u8], io: &mut Io<'_>) -> Result<(), CtlError> {
    match prefix {
        Some(prefix) => io.stdout.write_all(lines.prefixed(prefix, data).as_bytes())?,
        None => io.stdout.write_all(data)?,
    }
    io.stdout.flush()?;
    Ok(())
}

/// The pods matching `selector`, by name, each with the container to
/// read: `flag` (`-c`), else its default one (noted on stderr as for one
/// pod, see [`default_container`]).
async fn selected(
    client: &Client,
    namespace: &str,
    selector: &str,
    flag: Option<&str>,
    io: &mut Io<'_>,
) -> Result<Vec<(String, String)>, CtlError> {
    let mut client = client.clone();
    let mut pods: Vec<Pod> = list_objects(&mut client, Kind::Pod, namespace, selector, "")
        .await?
        .into_iter()
        .filter_map(|o| Pod::try_from(o).ok())
        .collect();
    pods.sort_by_key(|pod| pod.metadata.as_ref().map(|m| m.name.clone()));
    let mut chosen = Vec::new();
    for pod in pods {
        let name = pod.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
        let container = match flag {
            Some(flag) => flag.to_string(),
            None => {
                let choice = default_container(&pod)?;
                if let Some(notice) = choice.notice {
                    writeln!(io.stderr, "{notice}")?;
                }
                choice.name
            }
        };
        chosen.push((name, container));
    }
    Ok(chosen)
}

/// Splits the output of several prefixed streams into whole lines, so a
/// prefix always starts a line. Text without its newline yet waits for
/// the rest of its line (from the same prefix).
#[derive(Default)]
struct Lines {
    partial: Vec<(String, String)>,
}

impl Lines {
    fn prefixed(&mut self, prefix: &str, data: &[u8]) -> String {
        let text = String::from_utf8_lossy(data);
        let index = match self.partial.iter().position(|(p, _)| p == prefix) {
            Some(index) => index,
            None => {
                self.partial.push((prefix.to_string(), String::new()));
                self.partial.len() - 1
            }
        };
        let pending = &mut self.partial[index].1;
        pending.push_str(&text);
        let mut out = String::new();
        while let Some(end) = pending.find('\n') {
            out.push_str(prefix);
            out.push_str(&pending[..=end]);
            pending.drain(..=end);
        }
        out
    }

    /// What is left without a newline, each with its prefix.
    fn rest(&mut self) -> String {
        self.partial
            .drain(..)
            .filter(|(_, text)| !text.is_empty())
            .map(|(prefix, text)| format!("{prefix}{text}\n"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_start_whole_lines_whatever_the_chunks() {
        let mut lines = Lines::default();
        assert_eq!(lines.prefixed("[a] ", b"one\ntw"), "[a] one\n");
        assert_eq!(lines.prefixed("[b] ", b"x\n"), "[b] x\n");
        assert_eq!(lines.prefixed("[a] ", b"o\nthree\n"), "[a] two\n[a] three\n");
        assert_eq!(lines.prefixed("[a] ", b"tail"), "");
        assert_eq!(lines.rest(), "[a] tail\n");
        assert_eq!(lines.rest(), "");
    }
}
