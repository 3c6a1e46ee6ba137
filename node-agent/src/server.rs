//! `bosun.internal.v1.Agent`: logs and exec of this node's containers, for
//! the masters to proxy.

use std::pin::Pin;
use std::sync::Arc;

use bosun_proto::api::{exec_request, exec_response, ExecRequest, ExecResponse, ExecStart, LogChunk, LogsRequest, Pod};
use bosun_proto::internal::agent_server::Agent;
use futures::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use crate::context::Context;
use crate::runtime::{labels, ContainerInfo, ContainerRuntime, ExecOutput, LogOptions, RuntimeError};

pub struct AgentService<R> {
    shared: Arc<Context<R>>,
}

impl<R: ContainerRuntime> AgentService<R> {
    pub fn new(shared: Arc<Context<R>>) -> AgentService<R> {
        AgentService { shared }
    }

    fn pod(&self, namespace: &str, name: &str) -> Result<Arc<Pod>, Status> {
        let namespace = if namespace.is_empty() { "default" } else { namespace };
        self.shared
            .pods
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
            .ok_or_else(|| Status::not_found(format!("pod {name:?} in namespace {namespace:?} is not on this node")))
    }

    /// The container to use: the one named, or the pod's only one.
    fn container_name(pod: &Pod, requested: &str) -> Result<String, Status> {
        let names: Vec<String> = pod
            .spec
            .as_ref()
            .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default();
        if requested.is_empty() {
            return match names.as_slice() {
                [only] => Ok(only.clone()),
                _ => Err(Status::invalid_argument(format!(
                    "the pod has several containers; choose one with -c: {}",
                    names.join(", ")
                ))),
            };
        }
        if names.iter().any(|n| n == requested) {
            Ok(requested.to_string())
        } else {
            Err(Status::invalid_argument(format!(
                "the pod has no container {requested:?}; its containers: {}",
                names.join(", ")
            )))
        }
    }

    /// The instances of a container, newest attempt first.
    async fn instances(&self, pod: &Pod, container: &str) -> Result<Vec<ContainerInfo>, Status> {
        let uid = pod.metadata.as_ref().map(|m| m.uid.clone()).unwrap_or_default();
        let mut instances: Vec<ContainerInfo> = self
            .shared
            .runtime
            .list_containers(labels::POD_UID, &uid)
            .await
            .map_err(runtime_status)?
            .into_iter()
            .filter(|c| c.container_name() == container)
            .collect();
        instances.sort_by_key(|c| std::cmp::Reverse(c.attempt()));
        Ok(instances)
    }
}

fn runtime_status(e: RuntimeError) -> Status {
    match e {
        RuntimeError::Unreachable(message) => {
            Status::unavailable(format!("the node's container runtime is unreachable: {message}"))
        }
        RuntimeError::NotFound(message) => Status::not_found(message),
        RuntimeError::Failed(message) => Status::internal(message),
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl<R: ContainerRuntime> Agent for AgentService<R> {
    type LogsStream = BoxStream<LogChunk>;

    async fn logs(&self, request: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let request = request.into_inner();
        let pod = self.pod(&request.namespace, &request.name)?;
        let container = Self::container_name(&pod, &request.container)?;
        let instances = self.instances(&pod, &container).await?;
        let chosen = if request.previous {
            instances.get(1)
        } else {
            instances.first()
        };
        let Some(chosen) = chosen else {
            let which = if request.previous {
                "a previous instance"
            } else {
                "started"
            };
            return Err(Status::failed_precondition(format!(
                "container {container:?} of pod {:?} has not {which}",
                request.name
            )));
        };
        let since = match (request.since_seconds, request.since_time) {
            (Some(seconds), _) => {
                std::time::SystemTime::now().checked_sub(std::time::Duration::from_secs(seconds.max(0).unsigned_abs()))
            }
            (None, Some(time)) => std::time::SystemTime::try_from(time).ok(),
            (None, None) => None,
        };
        let options = LogOptions {
            follow: request.follow,
            tail_lines: request.tail_lines,
            timestamps: request.timestamps,
            since,
        };
        let stream = self
            .shared
            .runtime
            .logs(&chosen.id, options)
            .await
            .map_err(runtime_status)?;
        Ok(Response::new(Box::pin(stream.map(|chunk| {
            chunk
                .map(|data| LogChunk { data: data.to_vec() })
                .map_err(runtime_status)
        }))))
    }

    type ExecStream = BoxStream<ExecResponse>;

    async fn exec(&self, request: Request<Streaming<ExecRequest>>) -> Result<Response<Self::ExecStream>, Status> {
        let mut inbound = request.into_inner();
        let Some(ExecRequest {
            input: Some(exec_request::Input::Start(start)),
        }) = inbound.message().await?
        else {
            return Err(Status::invalid_argument("the first exec message must be start"));
        };
        let ExecStart {
            namespace,
            name,
            container,
            command,
            stdin,
            tty,
            size,
        } = start;
        if command.is_empty() {
            return Err(Status::invalid_argument("exec needs a command"));
        }
        let pod = self.pod(&namespace, &name)?;
        let container = Self::container_name(&pod, &container)?;
        let target = self
            .instances(&pod, &container)
            .await?
            .into_iter()
            .find(ContainerInfo::is_running)
            .ok_or_else(|| {
                Status::failed_precondition(format!("container {container:?} of pod {name:?} is not running"))
            })?;
        let runtime = self.shared.runtime.clone();
        let session = runtime
            .exec(&target.id, command, stdin, tty)
            .await
            .map_err(runtime_status)?;
        let exec_id = session.id.clone();
        if let Some(size) = size.filter(|s| tty && s.width > 0 && s.height > 0) {
            let _ = runtime
                .resize_exec(&exec_id, size.width as u16, size.height as u16)
                .await;
        }
        // Client input: stdin bytes, resizes, end of input.
        let mut input = session.stdin;
        let resize_runtime = runtime.clone();
        let resize_id = exec_id.clone();
        tokio::spawn(async move {
            while let Ok(Some(message)) = inbound.message().await {
                let more = match message.input {
                    Some(exec_request::Input::Stdin(bytes)) => {
                        input.write_all(&bytes).await.is_ok() && input.flush().await.is_ok()
                    }
                    Some(exec_request::Input::Resize(size)) => {
                        let _ = resize_runtime
                            .resize_exec(&resize_id, size.width as u16, size.height as u16)
                            .await;
                        true
                    }
                    Some(exec_request::Input::CloseStdin(true)) => false,
                    _ => true,
                };
                if !more {
                    break;
                }
            }
            let _ = input.shutdown().await;
        });
        // Output, then the exit code once the output ends.
        let output = session.output.map(|item| {
            item.map(|out| ExecResponse {
                output: Some(match out {
                    ExecOutput::Stdout(bytes) => exec_response::Output::Stdout(bytes.to_vec()),
                    ExecOutput::Stderr(bytes) => exec_response::Output::Stderr(bytes.to_vec()),
                }),
            })
            .map_err(runtime_status)
        });
        let exit = futures::stream::once(async move {
            let code = runtime.exec_exit_code(&exec_id).await.map_err(runtime_status)?;
            Ok(ExecResponse {
                output: Some(exec_response::Output::ExitCode(code.unwrap_or(-1) as i32)),
            })
        });
        Ok(Response::new(Box::pin(output.chain(exit))))
    }
}
