//! `ctl logs`: a container's output, through the masters. The pod is
//! named, or one of a Deployment's or ReplicaSet's (`deploy/web`).

use bosun_proto::api::pods_client::PodsClient;
use bosun_proto::api::LogsRequest;

use super::{namespace_or_default, target_pod};
use crate::cli::LogsArgs;
use crate::{Client, CtlError, Io};

/// # Errors
/// When the pod, its node or its container cannot be reached.
pub async fn run(client: &Client, args: &LogsArgs, namespace: Option<&str>, io: &mut Io<'_>) -> Result<(), CtlError> {
    let namespace = namespace_or_default(namespace);
    let request = LogsRequest {
        name: target_pod(client, &namespace, &args.pod, io).await?,
        namespace,
        container: args.container.clone().unwrap_or_default(),
        follow: args.follow,
        tail_lines: args.tail,
        previous: args.previous,
        timestamps: args.timestamps,
    };
    let mut stream = client
        .call(|channel| {
            let request = request.clone();
            async move { PodsClient::new(channel).logs(request).await.map(|r| r.into_inner()) }
        })
        .await?;
    while let Some(chunk) = stream.message().await? {
        io.stdout.write_all(&chunk.data)?;
        io.stdout.flush()?;
    }
    Ok(())
}
