//! `ctl cordon`, `ctl uncordon`, `ctl drain`.

use std::time::{Duration, Instant};

use bosun_proto::api::{DeleteRequest, Node, UpdateRequest};
use bosun_proto::client;
use bosun_proto::Kind;

use super::{get_object, list_objects};
use crate::cli::DrainArgs;
use crate::{Client, CtlError, Io};

/// Attempts when the node changes between read and write.
const ATTEMPTS: usize = 5;
/// How often drain checks whether the pods are gone.
const POLL: Duration = Duration::from_millis(250);

/// Sets or clears `spec.unschedulable`.
///
/// # Errors
/// When the node does not exist or keeps changing.
pub async fn set_cordon(client: &Client, name: &str, cordon: bool, io: &mut Io<'_>) -> Result<(), CtlError> {
    let verb = if cordon { "cordoned" } else { "uncordoned" };
    for _ in 0..ATTEMPTS {
        let mut client_mut = client.clone();
        let object = get_object(&mut client_mut, Kind::Node, "", name).await?;
        let mut node = Node::try_from(object).map_err(|e| CtlError::Invalid(e.to_string()))?;
        let spec = node.spec.get_or_insert_with(Default::default);
        if spec.unschedulable == cordon {
            writeln!(io.stdout, "node/{name} already {verb}")?;
            return Ok(());
        }
        spec.unschedulable = cordon;
        let request = UpdateRequest {
            object: Some(node.into()),
            ..Default::default()
        };
        let result = client
            .call(|channel| {
                let request = request.clone();
                async move { client::objects(channel).update(request).await }
            })
            .await;
        match result {
            Ok(_) => {
                writeln!(io.stdout, "node/{name} {verb}")?;
                return Ok(());
            }
            Err(e) if e.code() == Some(tonic::Code::Aborted) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(CtlError::Invalid(format!("node {name:?} kept changing; try again")))
}

/// Cordons the node, deletes its pods (gracefully), and waits until they
/// are gone.
///
/// # Errors
/// A failed deletion (unless `--ignore-errors`) or the timeout.
pub async fn drain(client: &Client, args: &DrainArgs, io: &mut Io<'_>) -> Result<(), CtlError> {
    set_cordon(client, &args.node, true, io).await?;
    let started = Instant::now();
    let selector = format!("spec.nodeName={}", args.node);
    let mut client_mut = client.clone();
    let pods = list_objects(&mut client_mut, Kind::Pod, "", "", &selector).await?;
    let mut failed = 0;
    for pod in &pods {
        let (namespace, name) = (pod.namespace().to_string(), pod.name().to_string());
        writeln!(io.stdout, "evicting pod {namespace}/{name}")?;
        let request = DeleteRequest {
            kind: "Pod".into(),
            namespace,
            name: name.clone(),
            resource_version: None,
            grace_period_seconds: args.grace_period,
            propagation_policy: String::new(),
        };
        let result = client
            .call(|channel| {
                let request = request.clone();
                async move { client::objects(channel).delete(request).await }
            })
            .await;
        match result {
            Ok(_) => {}
            Err(e) if e.code() == Some(tonic::Code::NotFound) => {}
            Err(e) if args.ignore_errors => {
                writeln!(io.stderr, "error: cannot evict pod {name:?}: {e}; continuing")?;
                failed += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
    loop {
        let left = list_objects(&mut client_mut, Kind::Pod, "", "", &selector).await?.len();
        if left <= failed {
            break;
        }
        if args.timeout > 0 && started.elapsed() > Duration::from_secs(args.timeout) {
            return Err(CtlError::Invalid(format!(
                "drain timed out after {}s with {left} pod(s) still on node {:?}",
                args.timeout, args.node
            )));
        }
        tokio::time::sleep(POLL).await;
    }
    writeln!(io.stdout, "node/{} drained", args.node)?;
    Ok(())
}
