//! Objects made from flags, as kubectl's generators make them:
//! `ctl create namespace|configmap|secret generic|deployment` and
//! `ctl run`. Each is written as a manifest and decoded by the same codec
//! as `ctl create -f`, so it gets the same defaults and checks.

use std::path::Path;

use base64::Engine;
use bosun_proto::api::Object;
use bosun_proto::codec;
use serde_json::{json, Map, Value};

use super::apply::create_one;
use super::set_namespace;
use crate::cli::{CreateCommand, DataArgs, DeploymentArgs, RunArgs, SecretCommand};
use crate::output::object_name;
use crate::{Client, CtlError, Io};

/// `ctl create KIND NAME ...`.
///
/// # Errors
/// Bad flags or unreadable files (nothing is sent), or the masters'
/// refusal.
pub async fn create(
    client: &mut Client,
    what: &CreateCommand,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let manifest = match what {
        CreateCommand::Namespace { name } => {
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
        }
        CreateCommand::Configmap(args) => {
            let data = Value::Object(text_data(&data(args)?)?);
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": args.name}, "data": data})
        }
        CreateCommand::Secret {
            kind: SecretCommand::Generic(args),
        } => {
            let encoded: Map<String, Value> = data(args)?
                .into_iter()
                .map(|(key, bytes)| {
                    (
                        key,
                        Value::from(base64::engine::general_purpose::STANDARD.encode(bytes)),
                    )
                })
                .collect();
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": args.name}, "type": "Opaque", "data": encoded})
        }
        CreateCommand::Deployment(args) => deployment(args)?,
    };
    send(client, &manifest, namespace, io).await
}

/// `ctl run NAME --image IMAGE ...`: a pod.
///
/// # Errors
/// Bad flags, or the masters' refusal.
pub async fn run(
    client: &mut Client,
    args: &RunArgs,
    namespace: Option<&str>,
    io: &mut Io<'_>,
) -> Result<(), CtlError> {
    let labels: Map<String, Value> = match &args.labels {
        Some(text) => pairs(text.split(',').filter(|s| !s.is_empty()), "label")?
            .into_iter()
            .map(|(k, v)| (k, Value::from(v)))
            .collect(),
        None => [("run".to_string(), Value::from(args.name.clone()))]
            .into_iter()
            .collect(),
    };
    let env: Vec<Value> = pairs(args.env.iter().map(String::as_str), "environment variable")?
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": value}))
        .collect();
    let mut container = json!({"name": args.name, "image": args.image});
    if !env.is_empty() {
        container["env"] = Value::from(env);
    }
    if let Some(port) = args.port {
        container["ports"] = json!([{"containerPort": port}]);
    }
    if !args.args.is_empty() {
        let key = if args.command { "command" } else { "args" };
        container[key] = json!(args.args);
    }
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": args.name, "labels": labels},
        "spec": {"restartPolicy": args.restart, "containers": [container]},
    });
    send(client, &manifest, namespace, io).await
}

/// Decodes `manifest` as `create -f` would, and creates it.
async fn send(client: &mut Client, manifest: &Value, namespace: Option<&str>, io: &mut Io<'_>) -> Result<(), CtlError> {
    let mut object = decode(manifest)?;
    set_namespace(&mut object, namespace)?;
    let created = create_one(client, object).await?;
    writeln!(io.stdout, "{} created", object_name(&created))?;
    Ok(())
}

fn decode(manifest: &Value) -> Result<Object, CtlError> {
    codec::decode_objects(&manifest.to_string(), "the command line")
        .map_err(|e| CtlError::Invalid(e.to_string()))?
        .pop()
        .ok_or_else(|| CtlError::Invalid("nothing to create".into()))
}

/// A Deployment labelled `app=NAME`, one container per image, named
/// after the image.
fn deployment(args: &DeploymentArgs) -> Result<Value, CtlError> {
    if args.image.len() > 1 && (args.port.is_some() || !args.command.is_empty()) {
        return Err(CtlError::Invalid(
            "cannot specify multiple --image options and a port or command".into(),
        ));
    }
    let mut containers: Vec<Value> = args
        .image
        .iter()
        .map(|image| json!({"name": container_name(image), "image": image}))
        .collect();
    if let Some(first) = containers.first_mut() {
        if let Some(port) = args.port {
            first["ports"] = json!([{"containerPort": port}]);
        }
        if !args.command.is_empty() {
            first["command"] = json!(args.command);
        }
    }
    Ok(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": args.name, "labels": {"app": args.name}},
        "spec": {
            "replicas": args.replicas,
            "selector": {"matchLabels": {"app": args.name}},
            "template": {
                "metadata": {"labels": {"app": args.name}},
                "spec": {"containers": containers},
            },
        },
    }))
}

/// kubectl's container name for an image: its last path segment without
/// tag or digest, lower-cased, other characters turned into `-`.
fn container_name(image: &str) -> String {
    let without_digest = image.split('@').next().unwrap_or(image);
    let last = without_digest.rsplit('/').next().unwrap_or(without_digest);
    let without_tag = last.split(':').next().unwrap_or(last);
    let name: String = without_tag
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        "container".to_string()
    } else {
        name.chars().take(63).collect()
    }
}

/// `KEY=VALUE` items as pairs.
fn pairs<'a>(items: impl Iterator<Item = &'a str>, what: &str) -> Result<Vec<(String, String)>, CtlError> {
    items
        .map(|item| {
            item.split_once('=')
                .filter(|(key, _)| !key.is_empty())
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .ok_or_else(|| CtlError::Invalid(format!("invalid {what} {item:?}: expected KEY=VALUE")))
        })
        .collect()
}

/// The keys and contents of `--from-literal` and `--from-file`, in order;
/// a key given twice is refused.
fn data(args: &DataArgs) -> Result<Vec<(String, Vec<u8>)>, CtlError> {
    let mut data: Vec<(String, Vec<u8>)> = pairs(args.literals.iter().map(String::as_str), "literal")?
        .into_iter()
        .map(|(key, value)| (key, value.into_bytes()))
        .collect();
    for source in &args.files {
        let (key, path) = match source.split_once('=') {
            Some((key, path)) => (Some(key.to_string()), Path::new(path)),
            None => (None, Path::new(source.as_str())),
        };
        let unreadable = |e: std::io::Error| CtlError::Invalid(format!("cannot read {}: {e}", path.display()));
        if path.is_dir() {
            if key.is_some() {
                return Err(CtlError::Invalid(format!(
                    "cannot give a key for the directory {}",
                    path.display()
                )));
            }
            let mut entries: Vec<_> = std::fs::read_dir(path)
                .map_err(unreadable)?
                .filter_map(Result::ok)
                .filter(|e| e.path().is_file())
                .collect();
            entries.sort_by_key(std::fs::DirEntry::file_name);
            for entry in entries {
                let key = entry.file_name().to_string_lossy().into_owned();
                data.push((key, std::fs::read(entry.path()).map_err(unreadable)?));
            }
        } else {
            let key = key.unwrap_or_else(|| {
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            });
            data.push((key, std::fs::read(path).map_err(unreadable)?));
        }
    }
    for (index, (key, _)) in data.iter().enumerate() {
        if data[..index].iter().any(|(k, _)| k == key) {
            return Err(CtlError::Invalid(format!(
                "cannot add key {key:?}, another key by that name already exists"
            )));
        }
    }
    Ok(data)
}

/// ConfigMap data: each value must be text.
fn text_data(data: &[(String, Vec<u8>)]) -> Result<Map<String, Value>, CtlError> {
    data.iter()
        .map(|(key, bytes)| {
            let text = String::from_utf8(bytes.clone()).map_err(|_| {
                CtlError::Invalid(format!(
                    "the value of {key:?} is not UTF-8 text; put binary data in a Secret"
                ))
            })?;
            Ok((key.clone(), Value::from(text)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containers_are_named_after_their_images() {
        for (image, name) in [
            ("nginx", "nginx"),
            ("nginx:1.27", "nginx"),
            ("registry.example.com:5000/team/My_App:v2", "my-app"),
            ("busybox@sha256:abc", "busybox"),
            ("local/busybox:1", "busybox"),
            (":", "container"),
        ] {
            assert_eq!(container_name(image), name, "{image}");
        }
    }

    #[test]
    fn a_deployment_is_labelled_after_its_name_and_decodes() {
        let args = DeploymentArgs {
            name: "web".into(),
            image: vec!["nginx:1.27".into()],
            replicas: 3,
            port: Some(80),
            command: vec!["nginx".into(), "-g".into(), "daemon off;".into()],
        };
        let object = decode(&deployment(&args).unwrap()).unwrap();
        let value = codec::object_to_value(&object);
        assert_eq!(value["spec"]["replicas"], 3);
        assert_eq!(value["spec"]["selector"]["matchLabels"]["app"], "web");
        let container = &value["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["name"], "nginx");
        assert_eq!(container["ports"][0]["containerPort"], 80);
        assert_eq!(container["command"][2], "daemon off;");

        let two = DeploymentArgs {
            image: vec!["a".into(), "b".into()],
            ..args
        };
        assert!(deployment(&two).is_err(), "a port or command needs a single image");
    }

    #[test]
    fn data_comes_from_literals_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.conf"), "x = 1\n").unwrap();
        std::fs::write(dir.path().join("b.bin"), [0xff, 0x00]).unwrap();
        let file = dir.path().join("a.conf").display().to_string();
        let args = |literals: &[&str], files: &[String]| DataArgs {
            name: "n".into(),
            literals: literals.iter().map(|s| s.to_string()).collect(),
            files: files.to_vec(),
        };
        let got = data(&args(&["k=v=w"], &[format!("renamed={file}")])).unwrap();
        assert_eq!(
            got,
            [("k".into(), b"v=w".to_vec()), ("renamed".into(), b"x = 1\n".to_vec())]
        );
        let all = data(&args(&[], &[dir.path().display().to_string()])).unwrap();
        assert_eq!(
            all.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["a.conf", "b.bin"]
        );
        assert!(text_data(&all).unwrap_err().to_string().contains("not UTF-8"));
        for (literals, files, words) in [
            (vec!["novalue"], vec![], "expected KEY=VALUE"),
            (vec!["k=1", "k=2"], vec![], "another key by that name"),
            (
                vec![],
                vec!["/nonexistent/file".to_string()],
                "cannot read /nonexistent/file",
            ),
        ] {
            let error = data(&args(&literals, &files)).unwrap_err().to_string();
            assert!(error.contains(words), "{error}");
        }
    }
}
