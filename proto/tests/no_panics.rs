//! Whatever a file or a client sends, the codec, validation and the
//! parsers answer with a value or an error, never a panic: real manifests
//! with one field after another replaced by values of every shape, and
//! arbitrary selector, field selector and quantity strings.

use bosun_proto::codec::{decode_objects, object_to_value, to_yaml};
use bosun_proto::fields::FieldSelector;
use bosun_proto::quantity::Quantity;
use bosun_proto::selector::Selector;
use bosun_proto::validate::validate;
use proptest::prelude::*;
use serde_json::Value;

/// Manifests touching most of the object model.
const MANIFESTS: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {app: web}, annotations: {a: b}}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
    matchExpressions: [{key: tier, operator: In, values: [front]}]
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 1}}
  minReadySeconds: 5
  progressDeadlineSeconds: 60
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      restartPolicy: Always
      terminationGracePeriodSeconds: 10
      nodeSelector: {disk: ssd}
      tolerations: [{key: k, operator: Equal, value: v, effect: NoSchedule, tolerationSeconds: 5}]
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: NotIn, values: [a]}]}]
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 10
              preference: {matchExpressions: [{key: zone, operator: Exists}]}
      volumes:
        - {name: cache, emptyDir: {sizeLimit: 1Gi}}
        - {name: conf, configMap: {name: settings, items: [{key: a, path: a.txt}]}}
      containers:
        - name: app
          image: busybox:1
          command: [sh, -c]
          args: ["echo $(A)"]
          workingDir: /
          env:
            - {name: A, value: x}
            - name: B
              valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}
          envFrom: [{prefix: P_, configMapRef: {name: settings, optional: true}}]
          ports: [{containerPort: 80, hostPort: 8080, protocol: TCP}]
          resources: {requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: "1", memory: 128Mi}}
          volumeMounts: [{name: cache, mountPath: /cache, readOnly: true}]
          livenessProbe: {httpGet: {path: /, port: 80}, periodSeconds: 5, failureThreshold: 3}
          readinessProbe: {tcpSocket: {port: http}, initialDelaySeconds: 1}
          startupProbe: {exec: {command: [true]}, timeoutSeconds: 2}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Secret
metadata: {name: s}
data: {k: aGVsbG8=}
stringData: {t: plain}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /data}
---
apiVersion: v1
kind: Node
metadata: {name: n1}
spec:
  unschedulable: true
  taints: [{key: k, effect: NoExecute}]
"#;

fn documents() -> Vec<Value> {
    MANIFESTS
        .split("\n---\n")
        .map(|doc| serde_yaml::from_str(doc).expect("the fixture is YAML"))
        .collect()
}

/// Values of every shape JSON and YAML can carry, and strings that look
/// like what fields expect (quantities, percentages, times, base64).
fn any_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        "[-+]?[0-9]{0,25}(\\.[0-9]{0,12})?(n|u|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|e[-+]?[0-9]{1,4}|%)?"
            .prop_map(Value::from),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z?".prop_map(Value::from),
        "[A-Za-z0-9+/=]{0,16}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z]{1,8}", inner), 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// Replaces the value found by walking `choices` down from `at`
/// (each choice picks a child; the walk stops early at a leaf).
fn replace(at: &mut Value, choices: &[usize], with: Value) {
    let Some((choice, rest)) = choices.split_first() else {
        *at = with;
        return;
    };
    match at {
        Value::Object(map) if !map.is_empty() => {
            let len = map.len();
            if let Some((_, child)) = map.iter_mut().nth(choice % len) {
                replace(child, rest, with);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let len = items.len();
            replace(&mut items[choice % len], rest, with);
        }
        _ => *at = with,
    }
}

/// Decodes `text` and does what the masters and ctl do with what decodes.
fn decode_and_use(text: &str) {
    if let Ok(objects) = decode_objects(text, "fuzzed.yaml") {
        for object in &objects {
            let _ = validate(object);
            let _ = object_to_value(object);
        }
        let _ = to_yaml(&objects);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn a_manifest_with_any_field_replaced_decodes_or_errs(
        document in 0usize..5,
        choices in prop::collection::vec(any::<usize>(), 0..10),
        with in any_value(),
        json in any::<bool>(),
    ) {
        let mut value = documents().swap_remove(document);
        replace(&mut value, &choices, with);
        let text = if json {
            serde_json::to_string(&value).unwrap_or_default()
        } else {
            serde_yaml::to_string(&value).unwrap_or_default()
        };
        decode_and_use(&text);
    }

    #[test]
    fn any_text_decodes_or_errs(text in "\\PC{0,200}") {
        decode_and_use(&text);
    }

    #[test]
    fn selectors_and_quantities_parse_or_err(
        text in "\\PC{0,40}",
        quantity in "[-+]?[0-9]{0,40}(\\.[0-9]{0,40})?[a-zA-Z0-9+-]{0,5}",
    ) {
        let _ = Selector::parse(&text);
        let _ = FieldSelector::parse(&text);
        for given in [&text, &quantity] {
            if let Ok(q) = Quantity::parse(given) {
                let _ = (q.millis(), q.units(), q.is_negative());
            }
        }
    }
}
