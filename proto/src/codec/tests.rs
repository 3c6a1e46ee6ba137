use super::*;
use crate::api::object::Resource;
use crate::api::{self, int_or_string};

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels:
    app: web
  annotations:
    bosun.io/auto-rollback: "true"
spec:
  replicas: 3
  revisionHistoryLimit: 5
  progressDeadlineSeconds: 60
  selector:
    matchLabels:
      app: web
    matchExpressions:
      - {key: tier, operator: In, values: [frontend]}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 1
  template:
    metadata:
      labels:
        app: web
        tier: frontend
    spec:
      terminationGracePeriodSeconds: 10
      nodeSelector:
        disk: ssd
      tolerations:
        - key: dedicated
          operator: Equal
          value: web
          effect: NoSchedule
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
              - matchExpressions:
                  - key: zone
                    operator: In
                    values: [a, b]
      containers:
        - name: web
          image: busybox:1.36
          imagePullPolicy: IfNotPresent
          command: ["httpd", "-f", "-p", "8080"]
          workingDir: /srv
          ports:
            - containerPort: 8080
              name: http
          env:
            - name: MODE
              value: prod
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: PASSWORD
              valueFrom:
                secretKeyRef: {name: db, key: password}
          envFrom:
            - configMapRef:
                name: web-config
          resources:
            requests:
              cpu: 250m
              memory: 64Mi
            limits:
              cpu: 1
              memory: 128Mi
          readinessProbe:
            httpGet:
              path: /
              port: http
            periodSeconds: 2
          livenessProbe:
            tcpSocket:
              port: 8080
          volumeMounts:
            - name: cache
              mountPath: /cache
      volumes:
        - name: cache
          emptyDir: {}
        - name: config
          configMap:
            name: web-config
"#;

fn decode_one(text: &str) -> Object {
    let mut objects = decode_objects(text, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(objects.len(), 1);
    objects.remove(0)
}

fn decode_err(text: &str) -> DecodeError {
    decode_objects(text, "test.yaml").expect_err("decoding should fail")
}

#[test]
fn loads_a_kubernetes_deployment_unchanged() {
    let object = decode_one(DEPLOYMENT);
    let deploy = api::Deployment::try_from(object).unwrap();
    let meta = deploy.metadata.unwrap();
    assert_eq!(meta.name, "web");
    assert_eq!(meta.namespace, "shop");
    let spec = deploy.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.progress_deadline_seconds, Some(60));
    let rolling = spec.strategy.unwrap().rolling_update.unwrap();
    assert_eq!(
        rolling.max_surge.unwrap().value,
        Some(int_or_string::Value::StrValue("25%".into()))
    );
    assert_eq!(
        rolling.max_unavailable.unwrap().value,
        Some(int_or_string::Value::IntValue(1))
    );
    let pod = spec.template.unwrap().spec.unwrap();
    assert_eq!(pod.termination_grace_period_seconds, Some(10));
    let container = &pod.containers[0];
    assert_eq!(container.image, "busybox:1.36");
    assert_eq!(container.resources.as_ref().unwrap().limits["cpu"].value, "1");
    assert_eq!(container.resources.as_ref().unwrap().requests["memory"].value, "64Mi");
    assert_eq!(
        container.env[1]
            .value_from
            .as_ref()
            .unwrap()
            .field_ref
            .as_ref()
            .unwrap()
            .field_path,
        "metadata.name"
    );
    assert!(matches!(pod.volumes[0].source, Some(api::volume::Source::EmptyDir(_))));
    assert_eq!(
        pod.affinity
            .unwrap()
            .node_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()
            .node_selector_terms[0]
            .match_expressions[0]
            .values,
        vec!["a", "b"]
    );
}

#[test]
fn reads_every_document_of_a_multi_document_file() {
    let text = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\ndata: {a: b}\n";
    let objects = decode_objects(text, "x.yaml").unwrap();
    let kinds: Vec<_> = objects.iter().map(|o| o.kind().unwrap()).collect();
    assert_eq!(kinds, vec![Kind::Namespace, Kind::ConfigMap]);
}

#[test]
fn reads_json_and_kubernetes_lists() {
    let text = r#"{"apiVersion":"v1","kind":"List","items":[
        {"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a"}},
        {"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"},"data":{"k":"aGVsbG8="}}]}"#;
    let objects = decode_objects(text, "x.json").unwrap();
    assert_eq!(objects.len(), 2);
    let secret = api::Secret::try_from(objects[1].clone()).unwrap();
    assert_eq!(secret.data["k"], b"hello");
}

#[test]
fn unknown_field_names_document_and_path() {
    let text = DEPLOYMENT.replace("imagePullPolicy: IfNotPresent", "imagePullPolcy: IfNotPresent");
    let text = format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: shop}}\n---\n{text}");
    let err = decode_err(&text);
    assert_eq!(err.document, 2);
    assert_eq!(err.path, "spec.template.spec.containers[0].imagePullPolcy");
    assert_eq!(
        err.to_string(),
        "test.yaml: document 2: spec.template.spec.containers[0].imagePullPolcy: unknown field"
    );
}

#[test]
fn wrong_type_names_expected_and_actual() {
    let err = decode_err(&DEPLOYMENT.replace("replicas: 3", "replicas: three"));
    assert_eq!(err.path, "spec.replicas");
    assert_eq!(err.message, "expected an integer, got the string \"three\"");
    let err = decode_err(&DEPLOYMENT.replace("app: web\n  annotations", "app: 7\n  annotations"));
    assert_eq!(err.path, "metadata.labels.app");
    assert_eq!(err.message, "expected a string, got a number");
}

#[test]
fn bad_quantity_names_the_resource() {
    let err = decode_err(&DEPLOYMENT.replace("memory: 128Mi", "memory: 128Mx"));
    assert_eq!(err.path, "spec.template.spec.containers[0].resources.limits.memory");
    assert!(err.message.contains("\"128Mx\" is not a valid quantity"), "{err}");
}

#[test]
fn missing_or_unknown_kind_and_wrong_api_version_are_refused() {
    assert_eq!(decode_err("apiVersion: v1\nmetadata: {name: a}\n").path, "kind");
    let err = decode_err("apiVersion: v1\nkind: Widget\nmetadata: {name: a}\n");
    assert!(err.message.starts_with("unknown kind \"Widget\""), "{err}");
    let err = decode_err("apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: a}\n");
    assert_eq!(err.path, "apiVersion");
    assert_eq!(
        err.message,
        "Deployment is served as \"apps/v1\", not \"extensions/v1beta1\""
    );
}

#[test]
fn malformed_yaml_is_an_error_with_the_document() {
    let err = decode_err("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a\n");
    assert_eq!(err.document, 1);
    assert!(err.message.starts_with("not valid YAML or JSON"), "{err}");
}

#[test]
fn two_volume_sources_are_refused() {
    let text = DEPLOYMENT.replace("emptyDir: {}", "emptyDir: {}\n          hostPath: {path: /tmp}");
    let err = decode_err(&text);
    assert_eq!(err.path, "spec.template.spec.volumes[0].hostPath");
    assert!(err.message.starts_with("only one of"), "{err}");
}

#[test]
fn encoding_round_trips_and_omits_unset_fields() {
    let object = decode_one(DEPLOYMENT);
    let yaml = to_yaml(std::slice::from_ref(&object));
    assert!(!yaml.contains("status"), "{yaml}");
    assert!(yaml.contains("maxSurge: 25%"), "{yaml}");
    assert!(yaml.contains("cpu: '1'") || yaml.contains("cpu: \"1\""), "{yaml}");
    assert_eq!(decode_one(&yaml), object);
    let json = to_json(&object);
    assert_eq!(decode_one(&json), object);
}

#[test]
fn timestamps_are_rfc3339() {
    let mut object = decode_one("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n");
    object.metadata_mut().unwrap().creation_timestamp = Some(prost_types::Timestamp {
        seconds: 1_700_000_000,
        nanos: 0,
    });
    let yaml = to_yaml(std::slice::from_ref(&object));
    assert!(yaml.contains("creationTimestamp: 2023-11-14T22:13:20Z"), "{yaml}");
    assert_eq!(decode_one(&yaml), object);
    let err = decode_err("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, creationTimestamp: yesterday}\n");
    assert_eq!(err.path, "metadata.creationTimestamp");
}

#[test]
fn null_fields_count_as_unset() {
    let object = decode_one("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: null}\ndata: ~\n");
    let Some(Resource::ConfigMap(cm)) = object.resource else {
        panic!()
    };
    assert!(cm.data.is_empty());
}

/// docs/manifests.md lists every field of every object message, so the
/// documentation cannot fall behind the protobuf definitions.
#[test]
fn manifest_docs_list_every_field() {
    let docs = include_str!("../../../docs/manifests.md");
    let files = [
        "bosun/v1/meta.proto",
        "bosun/v1/pod.proto",
        "bosun/v1/core.proto",
        "bosun/v1/apps.proto",
        "bosun/v1/storage.proto",
    ];
    let mut missing = Vec::new();
    for file in POOL.files().filter(|f| files.contains(&f.name())) {
        for message in file.messages() {
            let heading = format!("### {}\n", message.name());
            let Some(start) = docs.find(&heading) else {
                missing.push(heading.trim().to_string());
                continue;
            };
            let section = &docs[start + heading.len()..];
            let section = &section[..section.find("\n### ").unwrap_or(section.len())];
            if matches!(message.full_name(), QUANTITY | INT_OR_STRING) {
                continue;
            }
            for field in message.fields() {
                if !section.contains(&format!("`{}`", field.json_name())) {
                    missing.push(format!("{}.{}", message.name(), field.json_name()));
                }
            }
        }
    }
    assert!(missing.is_empty(), "docs/manifests.md lacks: {missing:?}");
}

#[test]
fn fields_spelled_with_capitals_in_kubernetes_keep_them() {
    // Kubernetes writes clusterIP, hostIP, podIP, containerID...: a
    // headless Service and a pod's status read and print as there.
    let service = decode_one(
        "apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec:\n  clusterIP: None\n  selector: {app: db}\n  ports: [{port: 5432}]\n",
    );
    let Some(Resource::Service(svc)) = &service.resource else {
        panic!("a service")
    };
    assert_eq!(svc.spec.as_ref().unwrap().cluster_ip, "None");
    let pod: Object = api::Pod {
        metadata: Some(api::ObjectMeta {
            name: "p".into(),
            ..Default::default()
        }),
        status: Some(api::PodStatus {
            pod_ip: "10.0.0.7".into(),
            host_ip: "192.0.2.1".into(),
            container_statuses: vec![api::ContainerStatus {
                container_id: "docker://abc".into(),
                image_id: "sha256:def".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    }
    .into();
    let value = object_to_value(&pod);
    let status = &value["status"];
    assert_eq!(
        (&status["podIP"], &status["hostIP"]),
        (&"10.0.0.7".into(), &"192.0.2.1".into()),
        "{value}"
    );
    assert_eq!(status["containerStatuses"][0]["containerID"], "docker://abc");
    assert_eq!(status["containerStatuses"][0]["imageID"], "sha256:def");
    let error =
        decode_err("apiVersion: v1\nkind: Service\nmetadata: {name: db}\nspec: {clusterIp: None}\n").to_string();
    assert!(
        error.contains("clusterIp"),
        "the lower-case spelling is not Kubernetes': {error}"
    );
}
