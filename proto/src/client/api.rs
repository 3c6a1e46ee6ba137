//! A typed view of the `Objects` service for one kind, in the shape of
//! kube's `Api<K>`: `Api::<Pod>::namespaced(&client, "shop").get("web")`
//! instead of a request built by hand and a closure per call. Every call
//! goes through [`Client::call`], so it fails over as the client does.
//! `Api<Object>` ([`Api::dynamic`]) serves a kind chosen at run time, as
//! ctl needs.

use std::marker::PhantomData;

use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

use super::{objects, Client, ClientError};
use crate::api::objects_client::ObjectsClient;
use crate::api::{
    CreateManyRequest, CreateRequest, DeleteRequest, DeleteResponse, GetRequest, ListRequest, Object, ObjectMeta,
    UpdateRequest, UpdateStatusResult, UpdateStatusesRequest, WatchEvent, WatchRequest,
};
use crate::{Kind, WrongKind};

/// A type the API carries: an object of one kind, or [`Object`] itself.
pub trait ApiObject: Sized + Send + Sync + 'static {
    fn meta(&self) -> Option<&ObjectMeta>;
    fn into_object(self) -> Object;
    /// # Errors
    /// When `object` holds another kind.
    fn from_object(object: Object) -> Result<Self, WrongKind>;
}

/// An API type of one kind (`Pod`, `ConfigMap`...).
pub trait Typed: ApiObject {
    const KIND: Kind;
}

impl ApiObject for Object {
    fn meta(&self) -> Option<&ObjectMeta> {
        self.metadata()
    }

    fn into_object(self) -> Object {
        self
    }

    fn from_object(object: Object) -> Result<Self, WrongKind> {
        Ok(object)
    }
}

/// Options of a list.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    pub label_selector: String,
    pub field_selector: String,
}

impl ListParams {
    #[must_use]
    pub fn labels(mut self, selector: &str) -> ListParams {
        self.label_selector = selector.to_string();
        self
    }

    #[must_use]
    pub fn fields(mut self, selector: &str) -> ListParams {
        self.field_selector = selector.to_string();
        self
    }
}

/// Options of a watch.
#[derive(Clone, Debug, Default)]
pub struct WatchParams {
    pub label_selector: String,
    pub field_selector: String,
    /// Changes after this revision; 0 is after every acknowledged write.
    pub since_revision: u64,
}

/// Options of a create or an update.
#[derive(Clone, Copy, Debug, Default)]
pub struct PostParams {
    /// Validate and check against the stored objects, store nothing.
    pub dry_run: bool,
}

/// Options of a delete.
#[derive(Clone, Debug, Default)]
pub struct DeleteParams {
    /// Delete only at this revision.
    pub resource_version: Option<u64>,
    pub grace_period_seconds: Option<i64>,
    /// `Background` (unset), `Foreground` or `Orphan`.
    pub propagation_policy: String,
}

/// A list's objects and the revision to watch from.
#[derive(Clone, Debug)]
pub struct List<K> {
    pub items: Vec<K>,
    pub revision: u64,
}

/// The objects of one kind, in one namespace or in all.
pub struct Api<K> {
    client: Client,
    kind: Kind,
    /// Empty: every namespace (lists and watches) or a cluster-scoped kind.
    namespace: String,
    /// Gets and lists served from any master's memory, without a read
    /// barrier (possibly a little behind the leader).
    stale_reads: bool,
    marker: PhantomData<fn() -> K>,
}

impl<K> Clone for Api<K> {
    fn clone(&self) -> Self {
        Api {
            client: self.client.clone(),
            kind: self.kind,
            namespace: self.namespace.clone(),
            stale_reads: self.stale_reads,
            marker: PhantomData,
        }
    }
}

impl<K: Typed> Api<K> {
    /// The objects of `K` in `namespace` ("" is "default" for gets and
    /// writes, every namespace for lists and watches).
    pub fn namespaced(client: &Client, namespace: &str) -> Api<K> {
        Api::of(client, K::KIND, namespace)
    }

    /// The objects of `K` in every namespace, or of a cluster-scoped kind.
    pub fn all(client: &Client) -> Api<K> {
        Api::of(client, K::KIND, "")
    }
}

impl Api<Object> {
    /// The objects of `kind`, known at run time.
    pub fn dynamic(client: &Client, kind: Kind, namespace: &str) -> Api<Object> {
        Api::of(client, kind, namespace)
    }
}

fn wrong_kind(error: WrongKind) -> ClientError {
    ClientError::Status(Status::internal(format!(
        "the masters answered with another kind: {error}"
    )))
}

/// The outcome of one object of a many-object call.
fn each<K: ApiObject>(result: UpdateStatusResult) -> Result<K, ClientError> {
    match result.object {
        Some(object) if result.code == Code::Ok as i32 => K::from_object(object).map_err(wrong_kind),
        _ => Err(ClientError::Status(Status::new(
            Code::from_i32(result.code),
            result.message,
        ))),
    }
}

impl<K: ApiObject> Api<K> {
    fn of(client: &Client, kind: Kind, namespace: &str) -> Api<K> {
        Api {
            client: client.clone(),
            kind,
            namespace: if kind.namespaced() {
                namespace.to_string()
            } else {
                String::new()
            },
            stale_reads: false,
            marker: PhantomData,
        }
    }

    /// This API with gets and lists answered from the memory of whichever
    /// master the client uses, without confirming with the leader first:
    /// cheaper, and possibly a little behind the last write.
    #[must_use]
    pub fn stale_reads(mut self) -> Api<K> {
        self.stale_reads = true;
        self
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// One call of the Objects service with `request`, through the
    /// client's failover; the reply's message.
    async fn call<Req, T, F, Fut>(&self, request: Req, rpc: F) -> Result<T, ClientError>
    where
        Req: Clone,
        F: Fn(ObjectsClient<Channel>, Req) -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.client
            .call(|channel| {
                let reply = rpc(objects(channel), request.clone());
                async move { reply.await.map(tonic::Response::into_inner) }
            })
            .await
    }

    fn typed(object: Object) -> Result<K, ClientError> {
        K::from_object(object).map_err(wrong_kind)
    }

    /// The object as written: with this API's namespace when it has none.
    fn outgoing(&self, object: K) -> Object {
        let mut object = object.into_object();
        if let Some(meta) = object.metadata_mut() {
            if meta.namespace.is_empty() && self.kind.namespaced() {
                meta.namespace.clone_from(&self.namespace);
            }
        }
        object
    }

    /// # Errors
    /// NOT_FOUND when there is no such object, or the call's failure.
    pub async fn get(&self, name: &str) -> Result<K, ClientError> {
        let request = GetRequest {
            kind: self.kind.name().to_string(),
            namespace: self.namespace.clone(),
            name: name.to_string(),
            allow_stale: self.stale_reads,
        };
        let object = self
            .call(
                request,
                |mut objects, request| async move { objects.get(request).await },
            )
            .await?;
        Self::typed(object)
    }

    /// [`Api::get`], with `None` for an object that does not exist.
    ///
    /// # Errors
    /// The call's failure.
    pub async fn get_opt(&self, name: &str) -> Result<Option<K>, ClientError> {
        match self.get(name).await {
            Ok(object) => Ok(Some(object)),
            Err(e) if e.code() == Some(Code::NotFound) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// # Errors
    /// A bad selector (INVALID_ARGUMENT), or the call's failure.
    pub async fn list(&self, params: &ListParams) -> Result<List<K>, ClientError> {
        let request = ListRequest {
            kind: self.kind.name().to_string(),
            namespace: self.namespace.clone(),
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            allow_stale: self.stale_reads,
        };
        let list = self
            .call(
                request,
                |mut objects, request| async move { objects.list(request).await },
            )
            .await?;
        Ok(List {
            items: list.items.into_iter().map(Self::typed).collect::<Result<_, _>>()?,
            revision: list.revision,
        })
    }

    /// The stream of changes; OUT_OF_RANGE when `since_revision` is older
    /// than the history the masters keep (list again).
    ///
    /// # Errors
    /// The call's failure.
    pub async fn watch(&self, params: &WatchParams) -> Result<Streaming<WatchEvent>, ClientError> {
        let request = WatchRequest {
            kind: self.kind.name().to_string(),
            namespace: self.namespace.clone(),
            label_selector: params.label_selector.clone(),
            field_selector: params.field_selector.clone(),
            since_revision: params.since_revision,
        };
        self.call(
            request,
            |mut objects, request| async move { objects.watch(request).await },
        )
        .await
    }

    /// # Errors
    /// The refusal (ALREADY_EXISTS, INVALID_ARGUMENT...) or the call's failure.
    pub async fn create(&self, params: &PostParams, object: K) -> Result<K, ClientError> {
        let request = CreateRequest {
            object: Some(self.outgoing(object)),
            dry_run: params.dry_run,
        };
        let object = self
            .call(
                request,
                |mut objects, request| async move { objects.create(request).await },
            )
            .await?;
        Self::typed(object)
    }

    /// Replaces metadata and spec; with a resourceVersion set, only if the
    /// stored object is at it (ABORTED otherwise).
    ///
    /// # Errors
    /// The refusal or the call's failure.
    pub async fn update(&self, params: &PostParams, object: K) -> Result<K, ClientError> {
        let request = UpdateRequest {
            object: Some(self.outgoing(object)),
            dry_run: params.dry_run,
        };
        let object = self
            .call(
                request,
                |mut objects, request| async move { objects.update(request).await },
            )
            .await?;
        Self::typed(object)
    }

    /// Replaces the status only.
    ///
    /// # Errors
    /// The refusal or the call's failure.
    pub async fn update_status(&self, object: K) -> Result<K, ClientError> {
        let request = UpdateRequest {
            object: Some(self.outgoing(object)),
            dry_run: false,
        };
        let object = self
            .call(request, |mut objects, request| async move {
                objects.update_status(request).await
            })
            .await?;
        Self::typed(object)
    }

    /// [`Api::update_status`] of many objects in one call: the outcome of
    /// each, in order.
    ///
    /// # Errors
    /// When the call as a whole fails (then nothing is known of any).
    pub async fn update_statuses(&self, objects: Vec<K>) -> Result<Vec<Result<K, ClientError>>, ClientError> {
        let request = UpdateStatusesRequest {
            objects: objects.into_iter().map(|o| self.outgoing(o)).collect(),
        };
        let wanted = request.objects.len();
        let response = self
            .call(request, |mut objects, request| async move {
                objects.update_statuses(request).await
            })
            .await?;
        Ok(complete(response.results.into_iter().map(each).collect(), wanted))
    }

    /// [`Api::create`] of many objects in one call: the outcome of each,
    /// in order.
    ///
    /// # Errors
    /// When the call as a whole fails (then nothing is known of any).
    pub async fn create_many(&self, objects: Vec<K>) -> Result<Vec<Result<K, ClientError>>, ClientError> {
        let request = CreateManyRequest {
            objects: objects.into_iter().map(|o| self.outgoing(o)).collect(),
        };
        let wanted = request.objects.len();
        let response = self
            .call(request, |mut objects, request| async move {
                objects.create_many(request).await
            })
            .await?;
        Ok(complete(response.results.into_iter().map(each).collect(), wanted))
    }

    /// Deletes `name` (a pod bound to a node gracefully; an object with
    /// finalizers is only marked).
    ///
    /// # Errors
    /// NOT_FOUND, ABORTED for a stale resourceVersion, or the call's failure.
    pub async fn delete(&self, name: &str, params: &DeleteParams) -> Result<DeleteResponse, ClientError> {
        let request = DeleteRequest {
            kind: self.kind.name().to_string(),
            namespace: self.namespace.clone(),
            name: name.to_string(),
            resource_version: params.resource_version,
            grace_period_seconds: params.grace_period_seconds,
            propagation_policy: params.propagation_policy.clone(),
        };
        self.call(
            request,
            |mut objects, request| async move { objects.delete(request).await },
        )
        .await
    }
}

/// `results` with one entry per object sent: a short answer (never
/// expected) leaves the missing ones failed, to be retried.
fn complete<K>(mut results: Vec<Result<K, ClientError>>, wanted: usize) -> Vec<Result<K, ClientError>> {
    results.truncate(wanted);
    results.resize_with(wanted, || {
        Err(ClientError::Status(Status::internal(
            "the masters gave no result for this object",
        )))
    });
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{ConfigMap, Node, ObjectMeta, Pod};

    #[test]
    fn an_api_knows_its_kind_and_scope() {
        let client = Client::new(["127.0.0.1:1"]);
        let pods = Api::<Pod>::namespaced(&client, "shop");
        assert_eq!((pods.kind(), pods.namespace()), (Kind::Pod, "shop"));
        // A cluster-scoped kind has no namespace, whatever was asked.
        let nodes = Api::<Node>::namespaced(&client, "shop");
        assert_eq!((nodes.kind(), nodes.namespace()), (Kind::Node, ""));
        let dynamic = Api::dynamic(&client, Kind::ConfigMap, "");
        assert_eq!((dynamic.kind(), dynamic.namespace()), (Kind::ConfigMap, ""));
    }

    #[test]
    fn writes_take_the_api_namespace_when_the_object_has_none() {
        let client = Client::new(["127.0.0.1:1"]);
        let api = Api::<ConfigMap>::namespaced(&client, "shop");
        let named = |namespace: &str| ConfigMap {
            metadata: Some(ObjectMeta {
                name: "settings".into(),
                namespace: namespace.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(api.outgoing(named("")).namespace(), "shop");
        assert_eq!(api.outgoing(named("other")).namespace(), "other");
    }

    #[test]
    fn many_object_answers_map_to_results_and_short_ones_are_completed() {
        let stored = UpdateStatusResult {
            object: Some(Pod::default().into()),
            code: 0,
            message: String::new(),
        };
        let refused = UpdateStatusResult {
            object: None,
            code: Code::NotFound as i32,
            message: "pods \"web\" not found".into(),
        };
        let results: Vec<Result<Pod, ClientError>> = complete(vec![each(stored), each(refused)], 3);
        assert!(results[0].is_ok());
        let Err(e) = &results[1] else { panic!("refused") };
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            (Some(Code::NotFound), "pods \"web\" not found")
        );
        assert_eq!(
            results[2].as_ref().err().and_then(ClientError::code),
            Some(Code::Internal)
        );
        // A kind other than the one asked for is an error, not a panic.
        let node = UpdateStatusResult {
            object: Some(Node::default().into()),
            ..Default::default()
        };
        assert!(each::<Pod>(node).is_err());
    }

    #[tokio::test]
    async fn an_unreachable_master_is_an_error_naming_it() {
        let client = Client::new(["127.0.0.1:1"]);
        let err = Api::<Pod>::namespaced(&client, "default").get("web").await.unwrap_err();
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }
}
