//! Bad input gets the right gRPC code and a message a person can act on,
//! and the masters keep serving afterwards.

use std::io::Write;

use anyhow::Result;
use bosun_integration_tests::{config_map, cpu_time, ctl, MasterCluster};
use bosun_proto::api::{self, CreateRequest, GetRequest, Object, ObjectMeta, UpdateRequest, WatchRequest};
use futures::StreamExt;
use tonic::Code;

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: busybox:1.36
          imagePullPolicy: IfNotPresent
          resources:
            limits: {memory: 128Mi}
";

fn manifest_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn bad_manifests_are_refused_with_file_document_and_field() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    let dir = tempfile::tempdir()?;
    let cases = [
        (
            "malformed.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a\n".to_string(),
            "document 1: not valid YAML or JSON",
        ),
        (
            "unknown.yaml",
            format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n---\n{}",
                DEPLOYMENT.replace("imagePullPolicy", "imagePullPolcy")
            ),
            "document 2: spec.template.spec.containers[0].imagePullPolcy: unknown field",
        ),
        (
            "type.yaml",
            DEPLOYMENT.replace("replicas: 2", "replicas: two"),
            "document 1: spec.replicas: expected an integer, got the string \"two\"",
        ),
        (
            "quantity.yaml",
            DEPLOYMENT.replace("128Mi", "128Mx"),
            "document 1: spec.template.spec.containers[0].resources.limits.memory: \"128Mx\" is not a valid quantity",
        ),
    ];
    for (file, text, expected) in cases {
        let path = manifest_file(&dir, file, &text);
        let out = ctl(&servers, &["create", "-f", &path], "").await;
        let error = out.error.unwrap_or_default();
        assert!(error.contains(&format!("{path}: {expected}")), "{file}: {error}");
    }
    // Nothing from a file with a bad document was created.
    let out = ctl(&servers, &["get", "ns", "shop"], "").await;
    assert!(out.error.is_some(), "{out:?}");
    // The masters keep serving.
    let path = manifest_file(&dir, "good.yaml", DEPLOYMENT);
    let out = ctl(&servers, &["create", "-f", &path], "").await;
    assert_eq!(out.stdout, "deployment.apps/web created\n", "{out:?}");
    Ok(())
}

#[tokio::test]
async fn api_errors_carry_the_right_code_and_a_clear_message() -> Result<()> {
    let cluster = MasterCluster::start(3, &["--watch-history", "5"]).await?;
    let leader = cluster.leader().await?;
    let follower = cluster.others(leader)[0];
    let mut api = cluster.objects(follower).await?;
    let create = |object: Object| CreateRequest {
        object: Some(object),
        ..Default::default()
    };

    let err = api.create(create(config_map("default", "", ""))).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("metadata.name: is required"),
        "{}",
        err.message()
    );

    let err = api
        .create(create(config_map("default", "Bad_Name", "")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("is not a valid DNS-1123 subdomain"),
        "{}",
        err.message()
    );

    let pod: Object = api::Pod {
        metadata: Some(ObjectMeta {
            name: "p".into(),
            ..Default::default()
        }),
        spec: Some(api::PodSpec {
            containers: vec![api::Container {
                name: "c".into(),
                image: "busybox".into(),
                resources: Some(api::ResourceRequirements {
                    requests: [("cpu".to_string(), api::Quantity { value: "lots".into() })].into(),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .into();
    let err = api.create(create(pod)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .contains("spec.containers[0].resources.requests.cpu: \"lots\" is not a valid quantity"),
        "{}",
        err.message()
    );

    let created = api
        .create(create(config_map("default", "once", "")))
        .await?
        .into_inner();
    let err = api.create(create(config_map("default", "once", ""))).await.unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(
        err.message(),
        "configmaps \"once\" in namespace \"default\" already exists"
    );

    let mut stale = config_map("default", "once", "");
    stale.metadata_mut().unwrap().resource_version = created.resource_version() + 1000;
    let err = api
        .update(UpdateRequest {
            object: Some(stale),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted);
    let expected = format!(
        "you sent resourceVersion {} but it is now {}",
        created.resource_version() + 1000,
        created.resource_version()
    );
    assert!(err.message().contains(&expected), "{}", err.message());

    let err = api.create(create(config_map("nope", "x", ""))).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(
        err.message().starts_with("namespace \"nope\" not found"),
        "{}",
        err.message()
    );

    let get = |kind: &str, name: &str| GetRequest {
        kind: kind.into(),
        namespace: String::new(),
        name: name.into(),
        allow_stale: false,
    };
    let err = api.get(get("ConfigMap", "missing")).await.unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    let err = api.get(get("Widget", "x")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().starts_with("unknown kind \"Widget\""),
        "{}",
        err.message()
    );

    let err = api
        .create(CreateRequest {
            object: Some(Object::default()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);

    // More writes than the kept history: an old revision has expired.
    for i in 0..10 {
        api.create(create(config_map("default", &format!("h{i}"), ""))).await?;
    }
    let request = WatchRequest {
        kind: "ConfigMap".into(),
        since_revision: created.resource_version(),
        ..Default::default()
    };
    let err = api.watch(request).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange);
    assert!(err.message().contains("list again"), "{}", err.message());

    // Every master still serves reads and writes.
    for index in 0..3 {
        let mut api = cluster.objects(index).await?;
        api.create(create(config_map("default", &format!("after-{index}"), "")))
            .await?;
        let mut watch = api
            .watch(WatchRequest {
                kind: "ConfigMap".into(),
                ..Default::default()
            })
            .await?
            .into_inner();
        api.create(create(config_map("default", &format!("watched-{index}"), "")))
            .await?;
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
            .await?
            .unwrap()?;
        assert_eq!(event.object.unwrap().name(), format!("watched-{index}"));
    }
    Ok(())
}

fn create_request(object: Object) -> CreateRequest {
    CreateRequest {
        object: Some(object),
        ..Default::default()
    }
}

/// A client that read a revision on one master may watch from it on
/// another that has not applied it yet: the watch waits for it (idle, not
/// asking its history in a loop) and then delivers exactly what follows.
#[tokio::test]
async fn a_watch_from_a_revision_the_master_has_not_reached_waits_for_it() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let mut api = cluster.objects(0).await?;
    let now = api
        .create(create_request(config_map("default", "now", "")))
        .await?
        .into_inner()
        .resource_version();
    let ahead = now + 3;
    let mut watch = api
        .watch(WatchRequest {
            kind: "ConfigMap".into(),
            since_revision: ahead,
            ..Default::default()
        })
        .await?
        .into_inner();
    // While the watch waits, the master stays idle (a spinning watch used
    // a whole core).
    let pid = cluster.masters[0].pid().expect("the master runs");
    let before = cpu_time(pid);
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let used = (cpu_time(pid) - before).as_secs_f64();
    assert!(
        used < 0.5,
        "the master used {used:.2} CPU-seconds in 1 s with only a waiting watch"
    );
    let mut revisions = Vec::new();
    for i in 0..5 {
        let stored = api
            .create(create_request(config_map("default", &format!("later-{i}"), "")))
            .await?
            .into_inner();
        revisions.push((stored.resource_version(), stored.name().to_string()));
    }
    let expected: Vec<String> = revisions
        .iter()
        .filter(|(revision, _)| *revision > ahead)
        .map(|(_, name)| name.clone())
        .collect();
    assert!(!expected.is_empty(), "{revisions:?}");
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let event = tokio::time::timeout(std::time::Duration::from_secs(10), watch.next())
            .await?
            .unwrap()?;
        assert!(
            event.revision > ahead,
            "an event from before the revision asked for: {event:?}"
        );
        seen.push(event.object.unwrap().name().to_string());
    }
    assert_eq!(seen, expected);
    Ok(())
}

#[tokio::test]
async fn update_statuses_answers_each_object_on_its_own() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let mut api = cluster.objects(0).await?;
    let created = api
        .create(CreateRequest {
            object: Some(config_map("default", "here", "v")),
            ..Default::default()
        })
        .await?
        .into_inner();
    let with_status = |name: &str| -> Object {
        api::Pod {
            metadata: Some(ObjectMeta {
                name: name.into(),
                ..Default::default()
            }),
            status: Some(api::PodStatus {
                phase: "Running".into(),
                ..Default::default()
            }),
            ..Default::default()
        }
        .into()
    };
    let pod: Object = api::Pod {
        metadata: Some(ObjectMeta {
            name: "web".into(),
            ..Default::default()
        }),
        spec: Some(api::PodSpec {
            containers: vec![api::Container {
                name: "c".into(),
                image: "busybox".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .into();
    api.create(CreateRequest {
        object: Some(pod),
        ..Default::default()
    })
    .await?;
    let mut stale = created.clone();
    stale.metadata_mut().unwrap().resource_version = 1;

    let results = api
        .update_statuses(api::UpdateStatusesRequest {
            objects: vec![with_status("web"), with_status("missing"), Object::default(), stale],
        })
        .await?
        .into_inner()
        .results;
    let codes: Vec<Code> = results.iter().map(|r| Code::from_i32(r.code)).collect();
    assert_eq!(
        codes,
        [Code::Ok, Code::NotFound, Code::InvalidArgument, Code::Aborted],
        "{results:?}"
    );
    let stored = api::Pod::try_from(results[0].object.clone().unwrap())?;
    assert_eq!(stored.status.unwrap().phase, "Running");
    assert_eq!(
        results[1].message, "pods \"missing\" in namespace \"default\" not found",
        "{results:?}"
    );
    assert!(results[2].message.contains("object is empty"), "{results:?}");

    let too_many = api::UpdateStatusesRequest {
        objects: vec![with_status("web"); 1001],
    };
    let err = api.update_statuses(too_many).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("at most 1000"), "{}", err.message());
    Ok(())
}

#[tokio::test]
async fn create_many_answers_each_object_on_its_own() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let mut api = cluster.objects(0).await?;
    api.create(create_request(config_map("default", "taken", "v"))).await?;
    let results = api
        .create_many(api::CreateManyRequest {
            objects: vec![
                config_map("default", "first", "1"),
                config_map("default", "taken", "again"),
                config_map("nowhere", "lost", "v"),
                Object::default(),
                config_map("default", "second", "2"),
            ],
        })
        .await?
        .into_inner()
        .results;
    let codes: Vec<Code> = results.iter().map(|r| Code::from_i32(r.code)).collect();
    assert_eq!(
        codes,
        [
            Code::Ok,
            Code::AlreadyExists,
            Code::NotFound,
            Code::InvalidArgument,
            Code::Ok
        ],
        "{results:?}"
    );
    for (index, name) in [(0, "first"), (4, "second")] {
        let stored = results[index].object.clone().unwrap();
        assert_eq!(stored.name(), name);
        assert!(stored.metadata().unwrap().resource_version > 0, "{stored:?}");
    }
    // What failed lost nothing: the taken name keeps its first value.
    let taken = api
        .get(GetRequest {
            kind: "ConfigMap".into(),
            namespace: "default".into(),
            name: "taken".into(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let Some(api::object::Resource::ConfigMap(taken)) = taken.resource else {
        panic!("not a ConfigMap: {taken:?}");
    };
    assert_eq!(taken.data.get("value").map(String::as_str), Some("v"), "{taken:?}");

    let too_many = api::CreateManyRequest {
        objects: vec![config_map("default", "many", "v"); 1001],
    };
    let err = api.create_many(too_many).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("at most 1000"), "{}", err.message());
    Ok(())
}

/// No object is too big: ConfigMap data over 1 MiB and requests over the
/// API's limit are refused, naming the limit, and nothing is stored.
#[tokio::test]
async fn objects_over_the_size_limits_are_refused_and_nothing_is_stored() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let mut api = cluster.objects(0).await?;
    let sized = |name: &str, bytes: usize| CreateRequest {
        object: Some(config_map("default", name, &"x".repeat(bytes))),
        ..Default::default()
    };

    let err = api.create(sized("big", 2 << 20)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message()
            .starts_with("ConfigMap \"big\" is invalid: data: is 2097157 bytes, over the 1048576-byte (1 MiB) limit"),
        "{}",
        err.message()
    );
    let err = api.create(sized("huge", 40 << 20)).await.unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    assert!(err.message().contains("16777216"), "{}", err.message());

    for name in ["big", "huge"] {
        let get = api
            .get(GetRequest {
                kind: "ConfigMap".into(),
                namespace: "default".into(),
                name: name.into(),
                allow_stale: false,
            })
            .await
            .unwrap_err();
        assert_eq!(get.code(), Code::NotFound, "{name}: {get:?}");
    }
    // Just under the limit is fine, and the master still serves.
    api.create(sized("fits", (1 << 20) - 100)).await?;

    // ctl says the same for a file.
    let dir = tempfile::tempdir()?;
    let text = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: file}}\ndata: {{a: {}}}\n",
        "y".repeat(3 << 20)
    );
    let path = manifest_file(&dir, "big.yaml", &text);
    let out = ctl(&cluster.addrs(), &["create", "-f", &path], "").await;
    assert!(!out.ok(), "{out:?}");
    assert!(out.stderr.contains("1048576-byte (1 MiB) limit"), "{out:?}");
    Ok(())
}

/// A dry run defaults, validates and checks against the stored objects as
/// the write would, returns what would be stored, and stores nothing.
#[tokio::test]
async fn dry_runs_check_everything_and_store_nothing() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let mut api = cluster.objects(0).await?;
    let get = GetRequest {
        kind: "ConfigMap".into(),
        namespace: "default".into(),
        name: "dry".into(),
        allow_stale: false,
    };
    let would = api
        .create(CreateRequest {
            object: Some(config_map("default", "dry", "one")),
            dry_run: true,
        })
        .await?
        .into_inner();
    assert_eq!(would.name(), "dry");
    assert!(
        !would.metadata().unwrap().uid.is_empty(),
        "stamped as a create would be"
    );
    assert_eq!(api.get(get.clone()).await.unwrap_err().code(), Code::NotFound);

    let err = api
        .create(CreateRequest {
            object: Some(config_map("nowhere", "dry", "one")),
            dry_run: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");
    assert!(
        err.message().contains("namespace \"nowhere\" not found"),
        "{}",
        err.message()
    );

    let stored = api
        .create(CreateRequest {
            object: Some(config_map("default", "dry", "one")),
            ..Default::default()
        })
        .await?
        .into_inner();
    let err = api
        .create(CreateRequest {
            object: Some(config_map("default", "dry", "one")),
            dry_run: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);

    let mut changed = stored.clone();
    if let Some(api::object::Resource::ConfigMap(cm)) = changed.resource.as_mut() {
        cm.data.insert("value".into(), "two".into());
    }
    let would = api
        .update(UpdateRequest {
            object: Some(changed.clone()),
            dry_run: true,
        })
        .await?
        .into_inner();
    let data = |o: &Object| api::ConfigMap::try_from(o.clone()).unwrap().data["value"].clone();
    assert_eq!(data(&would), "two");
    let now = api.get(get.clone()).await?.into_inner();
    assert_eq!(data(&now), "one");
    assert_eq!(now.resource_version(), stored.resource_version(), "nothing written");

    changed.metadata_mut().unwrap().resource_version = stored.resource_version() - 1;
    let err = api
        .update(UpdateRequest {
            object: Some(changed),
            dry_run: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "a stale resourceVersion: {err:?}");
    Ok(())
}
