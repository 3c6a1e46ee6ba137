//! `bosun.v1.Pods`: logs and exec, proxied to the agent of the pod's node,
//! so a client needs a route only to a master.

use std::pin::Pin;
use std::sync::Arc;

use bosun_proto::api::pods_server::Pods;
use bosun_proto::api::{exec_request, ExecRequest, ExecResponse, LogChunk, LogsRequest, Node, Pod};
use bosun_proto::internal::agent_client::AgentClient;
use bosun_proto::Kind;
use futures::{Stream, StreamExt};
use tonic::transport::Channel;
use tonic::{Request, Response, Status, Streaming};

use crate::peers::MAX_MESSAGE_BYTES;
use crate::replica::Replica;

pub struct PodsService {
    replica: Arc<Replica>,
}

impl PodsService {
    pub fn new(replica: Arc<Replica>) -> PodsService {
        PodsService { replica }
    }

    /// A client for the agent running pod `namespace/name`.
    fn agent_for(&self, namespace: &str, name: &str) -> Result<AgentClient<Channel>, Status> {
        let namespace = if namespace.is_empty() { "default" } else { namespace };
        let state = self.replica.store.read();
        let pod = state
            .objects
            .get(Kind::Pod, namespace, name)
            .and_then(|o| Pod::try_from((**o).clone()).ok())
            .ok_or_else(|| Status::not_found(format!("pods {name:?} not found in namespace {namespace:?}")))?;
        let node_name = pod.spec.map(|s| s.node_name).unwrap_or_default();
        if node_name.is_empty() {
            return Err(Status::failed_precondition(format!(
                "pod {name:?} is not on a node yet; wait until it is scheduled"
            )));
        }
        let node = state
            .objects
            .get(Kind::Node, "", &node_name)
            .and_then(|o| Node::try_from((**o).clone()).ok())
            .ok_or_else(|| Status::unavailable(format!("node {node_name:?} of pod {name:?} is not registered")))?;
        let status = node.status.unwrap_or_default();
        let port = status
            .daemon_endpoints
            .and_then(|d| d.agent_endpoint)
            .map(|e| e.port)
            .filter(|p| *p > 0)
            .ok_or_else(|| Status::unavailable(format!("node {node_name:?} does not publish its agent's port")))?;
        let address = ["InternalIP", "ExternalIP", "Hostname"]
            .iter()
            .find_map(|kind| status.addresses.iter().find(|a| a.r#type == *kind))
            .map(|a| a.address.clone())
            .ok_or_else(|| Status::unavailable(format!("node {node_name:?} has no address")))?;
        let channel = self
            .replica
            .peers
            .channel(&format!("{address}:{port}"))
            .map_err(|e| Status::unavailable(format!("node {node_name:?}: {e}")))?;
        Ok(AgentClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES))
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A status about reaching the agent, worded for the user.
fn agent_error(status: Status) -> Status {
    if status.code() == tonic::Code::Unavailable {
        Status::unavailable(format!("cannot reach the pod's node agent: {}", status.message()))
    } else {
        status
    }
}

#[tonic::async_trait]
impl Pods for PodsService {
    type LogsStream = BoxStream<LogChunk>;

    async fn logs(&self, request: Request<LogsRequest>) -> Result<Response<Self::LogsStream>, Status> {
        let request = request.into_inner();
        let mut agent = self.agent_for(&request.namespace, &request.name)?;
        let stream = agent.logs(request).await.map_err(agent_error)?.into_inner();
        Ok(Response::new(Box::pin(stream)))
    }

    type ExecStream = BoxStream<ExecResponse>;

    async fn exec(&self, request: Request<Streaming<ExecRequest>>) -> Result<Response<Self::ExecStream>, Status> {
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("exec needs a start message"))?;
        let Some(exec_request::Input::Start(start)) = &first.input else {
            return Err(Status::invalid_argument("the first exec message must be start"));
        };
        let mut agent = self.agent_for(&start.namespace, &start.name)?;
        // Pass the rest of the client's stream on; it ends when the client's does.
        let rest = inbound
            .take_while(|m| futures::future::ready(m.is_ok()))
            .filter_map(|m| futures::future::ready(m.ok()));
        let outbound = futures::stream::once(async { first }).chain(rest);
        let stream = agent.exec(outbound).await.map_err(agent_error)?.into_inner();
        Ok(Response::new(Box::pin(stream)))
    }
}
