//! ctl against a real three-master cluster: the commands users run, their
//! output, failover between masters, and the binary's exit codes.

use std::process::Command;

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use bosun_integration_tests::{bin_dir, ctl, wait_until, MasterCluster};
use bosun_proto::api::{GetRequest, UpdateRequest};

const MANIFESTS: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels: {app: web, tier: front}
data:
  color: blue
---
apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: shop
  labels: {app: db}
stringData:
  password: hunter2
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports:
    - port: 80
      targetPort: 8080
";

#[tokio::test]
async fn create_get_apply_describe_and_delete_work_like_kubectl() -> Result<()> {
    let cluster = MasterCluster::start(3, &[]).await?;
    let servers = cluster.addrs();
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("all.yaml"), MANIFESTS)?;
    std::fs::write(dir.path().join("notes.txt"), "not a manifest")?;
    let dir_arg = dir.path().display().to_string();

    let out = ctl(&servers, &["create", "-f", &dir_arg], "").await;
    assert!(out.ok(), "{out:?}");
    assert_eq!(
        out.stdout,
        "namespace/shop created\nconfigmap/settings created\nsecret/db created\nservice/web created\n"
    );

    let out = ctl(&servers, &["get", "cm", "-n", "shop"], "").await;
    assert!(
        out.stdout.starts_with("NAME       DATA   AGE\nsettings   1      "),
        "{out:?}"
    );
    let out = ctl(
        &servers,
        &["get", "cm,secrets", "-A", "-l", "app in (web,db)", "-o", "name"],
        "",
    )
    .await;
    assert_eq!(out.stdout, "configmap/settings\nsecret/db\n", "{out:?}");
    let out = ctl(&servers, &["get", "svc", "web", "-n", "shop", "-o", "wide"], "").await;
    assert!(
        out.stdout.contains("ClusterIP") && out.stdout.contains("80/TCP") && out.stdout.contains("app=web"),
        "{out:?}"
    );
    let out = ctl(&servers, &["get", "secret/db", "-n", "shop", "-o", "json"], "").await;
    let secret: serde_json::Value = serde_json::from_str(&out.stdout)?;
    assert_eq!(
        secret["data"]["password"], "aHVudGVyMg==",
        "stringData is stored as data"
    );
    assert_eq!(secret["type"], "Opaque");
    let out = ctl(&servers, &["get", "pods"], "").await;
    assert_eq!(out.stderr, "No resources found in default namespace.\n");
    for format in ["yaml", "json", "name"] {
        let out = ctl(&servers, &["get", "pods", "missing", "-o", format], "").await;
        assert_eq!(out.stdout, "", "only the error, no empty List: {out:?}");
        assert!(
            out.stderr
                .starts_with("Error from server (NotFound): pods \"missing\" in namespace \"default\" not found"),
            "{out:?}"
        );
        assert!(!out.ok(), "{out:?}");
    }

    // apply: unchanged, then configured, with a label set by someone else kept.
    let out = ctl(&servers, &["apply", "-f", "-"], MANIFESTS).await;
    assert!(out.ok(), "{out:?}");
    let out = ctl(&servers, &["apply", "-f", "-"], MANIFESTS).await;
    assert!(out.stdout.contains("configmap/settings unchanged"), "{out:?}");
    // Someone else (a controller, another tool) labels the object.
    let mut api = cluster.objects(0).await?;
    let request = GetRequest {
        kind: "cm".into(),
        namespace: "shop".into(),
        name: "settings".into(),
        allow_stale: false,
    };
    let mut labelled = api.get(request).await?.into_inner();
    labelled
        .metadata_mut()
        .unwrap()
        .labels
        .insert("owner".into(), "ops".into());
    api.update(UpdateRequest {
        object: Some(labelled),
        ..Default::default()
    })
    .await?;
    let out = ctl(
        &servers,
        &["apply", "-f", "-"],
        &MANIFESTS.replace("color: blue", "color: red"),
    )
    .await;
    assert!(out.stdout.contains("configmap/settings configured"), "{out:?}");
    let out = ctl(
        &servers,
        &["get", "cm", "-n", "shop", "-l", "owner=ops", "-o", "yaml"],
        "",
    )
    .await;
    assert!(
        out.stdout.contains("color: red") && out.stdout.contains("owner: ops"),
        "{out:?}"
    );

    // A label removed from the manifest is removed; the foreign one stays.
    let without_tier = MANIFESTS
        .replace(", tier: front", "")
        .replace("color: blue", "color: red");
    let out = ctl(&servers, &["apply", "-f", "-"], &without_tier).await;
    assert!(out.stdout.contains("configmap/settings configured"), "{out:?}");
    let out = ctl(
        &servers,
        &["get", "cm", "-n", "shop", "-l", "owner=ops,!tier", "-o", "name"],
        "",
    )
    .await;
    assert_eq!(out.stdout, "configmap/settings\n", "{out:?}");

    let out = ctl(&servers, &["describe", "cm", "settings", "-n", "shop"], "").await;
    assert!(out.stdout.contains("Name:         settings"), "{out:?}");
    assert!(out.stdout.contains("Labels:       app=web"), "{out:?}");
    assert!(out.stdout.contains("Data:\n  color: red"), "{out:?}");

    let out = ctl(&servers, &["delete", "secret", "db", "-n", "shop"], "").await;
    assert_eq!(out.stdout, "secret \"db\" deleted\n");
    let out = ctl(&servers, &["delete", "secret", "db", "-n", "shop"], "").await;
    assert_eq!(out.error.as_deref(), Some("error: 1 of 1 objects failed (see above)"));
    assert!(
        out.stderr
            .starts_with("Error from server (NotFound): secrets \"db\" in namespace \"shop\" not found"),
        "{out:?}"
    );

    // Deleting the namespace deletes what is in it.
    let out = ctl(&servers, &["delete", "ns", "shop"], "").await;
    assert_eq!(out.stdout, "namespace \"shop\" deleted\n", "{out:?}");
    let out = ctl(&servers, &["get", "cm,svc", "-A", "-o", "name"], "").await;
    assert_eq!(out.stdout, "", "{out:?}");
    let out = ctl(
        &servers,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: shop}\n",
    )
    .await;
    assert!(out.stderr.contains("namespace \"shop\" not found"), "{out:?}");
    Ok(())
}

#[tokio::test]
async fn ctl_fails_over_to_the_next_master_and_reports_the_cluster() -> Result<()> {
    let mut cluster = MasterCluster::start(3, &[]).await?;
    let leader = cluster.leader().await?;
    let dead = cluster.masters[leader].addr.clone();
    cluster.kill(leader);
    let mut servers = vec![dead.clone()];
    servers.extend(cluster.addrs());

    let out = ctl(
        &servers,
        &["create", "-f", "-"],
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: failover}\n",
    )
    .await;
    assert_eq!(out.stdout, "configmap/failover created\n", "{out:?}");

    let out = ctl(&servers, &["cluster", "status", "-o", "json"], "").await;
    let status: serde_json::Value = serde_json::from_str(&out.stdout)?;
    let members = status["members"].as_array().unwrap();
    assert_eq!(members.len(), 3);
    let unreachable: Vec<_> = members.iter().filter(|m| m["role"] == "unreachable").collect();
    assert_eq!(unreachable.len(), 1, "{status}");
    assert_eq!(unreachable[0]["address"], dead.as_str());
    assert!(status["leader"].as_u64().is_some(), "{status}");
    let out = ctl(&servers, &["cluster", "status"], "").await;
    assert!(out.stdout.starts_with("ID   ADDRESS"), "{out:?}");
    assert!(out.stdout.contains("\nLeader: "), "{out:?}");
    let out = ctl(&servers, &["version"], "").await;
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        out.stdout.starts_with(&format!(
            "Client Version: v{version}\nServer Version: v{version} (master "
        )),
        "{out:?}"
    );
    Ok(())
}

#[test]
fn the_ctl_binary_exits_non_zero_with_an_actionable_message() {
    let output = Command::new(bin_dir().join("ctl"))
        .args(["--server", "127.0.0.1:1", "get", "pods"])
        .output()
        .expect("run ctl");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: cannot reach any master (127.0.0.1:1: "),
        "{stderr}"
    );
    assert!(stderr.contains("--server HOST:PORT or BOSUN_SERVER"), "{stderr}");

    let output = Command::new(bin_dir().join("ctl"))
        .args(["get", "widgets"])
        .output()
        .expect("run ctl");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).starts_with("error: unknown kind \"widgets\""));

    // Unknown commands: kubectl's words, and only near misses suggested.
    for (args, expected) in [
        (
            &["gte", "pods"][..],
            "error: unknown command \"gte\" for \"ctl\"\n\nDid you mean this?\n\tget\n",
        ),
        (&["foo"], "error: unknown command \"foo\" for \"ctl\"\n"),
    ] {
        let output = Command::new(bin_dir().join("ctl"))
            .args(args)
            .output()
            .expect("run ctl");
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&output.stderr), expected, "{args:?}");
    }
}

#[tokio::test]
async fn a_reader_that_stops_early_ends_ctl_quietly() -> Result<()> {
    use std::io::BufRead;
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    // Output well over a pipe's buffer (64 KiB), so ctl is still writing
    // when the reader goes.
    let data: String = (0..100).map(|i| format!("  k{i}: {}\n", "x".repeat(2000))).collect();
    let yaml = format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata:\n{data}");
    let out = ctl(&servers, &["create", "-f", "-"], &yaml).await;
    ensure!(out.ok(), "{out:?}");

    let mut child = Command::new(bin_dir().join("ctl"))
        .args(["--server", &servers.join(","), "get", "cm", "big", "-o", "yaml"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let mut reader = std::io::BufReader::new(child.stdout.take().context("stdout")?);
    let mut first = String::new();
    reader.read_line(&mut first)?;
    ensure!(first == "apiVersion: v1\n", "{first:?}");
    drop(reader);
    let output = tokio::task::spawn_blocking(move || child.wait_with_output()).await??;
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(stderr.is_empty(), "no message for a closed pipe: {stderr}");
    ensure!(
        output.status.code() == Some(141),
        "the shell's code for SIGPIPE, as kubectl: {:?}",
        output.status
    );
    Ok(())
}

#[tokio::test]
async fn logs_and_exec_default_to_the_annotated_or_first_container() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    // No nodes: the pods stay unbound, and the streams fail after the
    // container is chosen.
    let pods = "apiVersion: v1\nkind: Pod\nmetadata: {name: two}\nspec:\n  containers: [{name: web, image: busybox}, {name: probe, image: busybox}]\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: chosen\n  annotations: {kubectl.kubernetes.io/default-container: probe}\nspec:\n  containers: [{name: web, image: busybox}, {name: probe, image: busybox}]\n";
    let out = ctl(&servers, &["create", "-f", "-"], pods).await;
    ensure!(out.ok(), "{out:?}");
    for command in [&["logs", "two"][..], &["exec", "two", "--", "true"]] {
        let out = ctl(&servers, command, "").await;
        ensure!(
            out.stderr
                .starts_with("Defaulted container \"web\" out of: web, probe\n"),
            "{command:?}: {out:?}"
        );
    }
    for command in [
        &["logs", "chosen"][..],
        &["logs", "two", "-c", "probe"],
        &["exec", "chosen", "--", "true"],
    ] {
        let out = ctl(&servers, command, "").await;
        ensure!(!out.stderr.contains("Defaulted"), "{command:?}: {out:?}");
    }
    Ok(())
}

fn config_map_with(name: &str, color: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{color: {color}}}\n")
}

#[tokio::test]
async fn replace_puts_the_whole_object_and_apply_refuses_one_too_big_for_its_record() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    let out = ctl(&servers, &["replace", "-f", "-"], &config_map_with("rep", "blue")).await;
    ensure!(
        out.stderr
            .starts_with("Error from server (NotFound): configmaps \"rep\""),
        "replace creates nothing: {out:?}"
    );
    ensure!(!out.ok(), "{out:?}");

    let labelled = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rep, labels: {old: x}}\ndata: {color: blue}\n";
    let out = ctl(&servers, &["create", "-f", "-"], labelled).await;
    ensure!(out.ok(), "{out:?}");
    let out = ctl(&servers, &["replace", "-f", "-"], &config_map_with("rep", "red")).await;
    ensure!(out.stdout == "configmap/rep replaced\n", "{out:?}");
    let out = ctl(&servers, &["get", "cm", "rep", "-o", "json"], "").await;
    let stored: serde_json::Value = serde_json::from_str(&out.stdout)?;
    ensure!(stored["data"]["color"] == "red", "{stored}");
    ensure!(
        stored["metadata"].get("labels").is_none(),
        "the whole object is replaced: {stored}"
    );
    let uid = stored["metadata"]["uid"].clone();

    let stale =
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: rep, resourceVersion: \"1\"}\ndata: {color: green}\n";
    let out = ctl(&servers, &["replace", "-f", "-"], stale).await;
    ensure!(out.stderr.starts_with("Error from server (Conflict)"), "{out:?}");

    let out = ctl(
        &servers,
        &["replace", "--force", "-f", "-"],
        &config_map_with("rep", "green"),
    )
    .await;
    ensure!(
        out.stdout == "configmap \"rep\" deleted\nconfigmap/rep replaced\n",
        "{out:?}"
    );
    let out = ctl(&servers, &["get", "cm", "rep", "-o", "json"], "").await;
    let stored: serde_json::Value = serde_json::from_str(&out.stdout)?;
    ensure!(
        stored["data"]["color"] == "green" && stored["metadata"]["uid"] != uid,
        "{stored}"
    );

    // The last-applied record of this one would pass 262144 bytes.
    let big = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: big}}\ndata: {{blob: {}}}\n",
        "x".repeat(270_000)
    );
    let out = ctl(&servers, &["apply", "-f", "-"], &big).await;
    ensure!(
        out.stderr.starts_with(
            "error: ConfigMap \"big\" is too big for apply: metadata.annotations[bosun.io/last-applied-configuration] would be 27"
        ) && out.stderr.ends_with(
            " bytes, over the 262144-byte limit; use 'ctl create -f' or 'ctl replace -f' instead\n"
        ),
        "{out:?}"
    );
    ensure!(!out.ok(), "{out:?}");
    let out = ctl(&servers, &["get", "cm", "big", "-o", "name"], "").await;
    ensure!(out.stdout.is_empty(), "nothing was written: {out:?}");
    let out = ctl(&servers, &["create", "-f", "-"], &big).await;
    ensure!(out.ok(), "{out:?}");
    let out = ctl(&servers, &["replace", "-f", "-"], &big).await;
    ensure!(out.stdout == "configmap/big replaced\n", "{out:?}");
    Ok(())
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n";

#[tokio::test]
async fn apply_dry_run_and_diff_tell_what_apply_would_do() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("app.yaml");
    let file_arg = file.display().to_string();
    let blue = format!("{}---\n{SERVICE}", config_map_with("dry", "blue"));
    std::fs::write(&file, &blue)?;

    let out = ctl(&servers, &["apply", "--dry-run=client", "-f", &file_arg], "").await;
    ensure!(
        out.stdout == "configmap/dry created (dry run)\nservice/web created (dry run)\n",
        "{out:?}"
    );
    let out = ctl(&servers, &["get", "cm,svc", "-o", "name"], "").await;
    ensure!(
        !out.stdout.contains("dry") && !out.stdout.contains("service/web"),
        "nothing written: {out:?}"
    );
    let diff = Command::new(bin_dir().join("ctl"))
        .args(["--server", &servers.join(","), "diff", "-f", &file_arg])
        .output()?;
    ensure!(diff.status.code() == Some(1), "new objects differ: {diff:?}");
    ensure!(
        String::from_utf8_lossy(&diff.stdout).contains("+++ MERGED/v1.ConfigMap.default.dry\n"),
        "{diff:?}"
    );

    let out = ctl(&servers, &["apply", "-f", &file_arg], "").await;
    ensure!(out.ok(), "{out:?}");
    ensure!(
        out.stderr
            == "warning: Services are stored but not yet served (no virtual IPs, node ports or DNS) by this version\n",
        "a stored Service is not taken for a served one: {out:?}"
    );
    // The masters filled in the Service's defaults (clusterIP, protocol):
    // they are not differences.
    let out = ctl(&servers, &["apply", "--dry-run=client", "-f", &file_arg], "").await;
    ensure!(
        out.stdout == "configmap/dry unchanged (dry run)\nservice/web unchanged (dry run)\n",
        "{out:?}"
    );
    let out = ctl(&servers, &["diff", "-f", &file_arg], "").await;
    ensure!(
        out.ok() && out.stdout.is_empty(),
        "no diff for an unchanged manifest: {out:?}"
    );

    std::fs::write(&file, blue.replace("color: blue", "color: red"))?;
    let out = ctl(&servers, &["apply", "--dry-run", "-f", &file_arg], "").await;
    ensure!(
        out.stdout == "configmap/dry configured (dry run)\nservice/web unchanged (dry run)\n",
        "{out:?}"
    );
    let diff = Command::new(bin_dir().join("ctl"))
        .args(["--server", &servers.join(","), "diff", "-f", &file_arg])
        .output()?;
    let text = String::from_utf8_lossy(&diff.stdout);
    ensure!(diff.status.code() == Some(1), "{diff:?}");
    ensure!(
        text.starts_with("diff -u -N LIVE/v1.ConfigMap.default.dry MERGED/v1.ConfigMap.default.dry\n")
            && text.contains("\n-  color: blue\n+  color: red\n")
            && !text.contains("Service"),
        "{text}"
    );
    let out = ctl(&servers, &["get", "cm", "dry", "-o", "jsonpath={.data.color}"], "").await;
    ensure!(out.stdout == "blue", "dry runs and diffs write nothing: {out:?}");

    let failed = Command::new(bin_dir().join("ctl"))
        .args(["--server", &servers.join(","), "diff", "-f", "/nonexistent.yaml"])
        .output()?;
    ensure!(
        failed.status.code() == Some(2),
        "an error is exit 2, as kubectl: {failed:?}"
    );
    // The masters check a server dry run as the write, and store nothing.
    let out = ctl(&servers, &["apply", "--dry-run=server", "-f", &file_arg], "").await;
    ensure!(
        out.stdout == "configmap/dry configured (server dry run)\nservice/web unchanged (server dry run)\n",
        "{out:?}"
    );
    let out = ctl(&servers, &["get", "cm", "dry", "-o", "jsonpath={.data.color}"], "").await;
    ensure!(out.stdout == "blue", "a server dry run writes nothing: {out:?}");
    std::fs::write(
        &file,
        config_map_with("dry", "red").replace("name: dry", "name: dry, namespace: nowhere"),
    )?;
    let out = ctl(&servers, &["apply", "--dry-run=server", "-f", &file_arg], "").await;
    ensure!(
        !out.ok() && out.stderr.contains("namespace \"nowhere\" not found"),
        "the masters check a server dry run against the store: {out:?}"
    );
    Ok(())
}

#[test]
fn completion_scripts_and_config_view_need_no_master() -> Result<()> {
    let run = |args: &[&str], env: Option<&str>| -> Result<String> {
        let mut command = Command::new(bin_dir().join("ctl"));
        command.args(args).env_remove("BOSUN_SERVER");
        if let Some(servers) = env {
            command.env("BOSUN_SERVER", servers);
        }
        let output = command.output()?;
        ensure!(output.status.success(), "{args:?}: {output:?}");
        Ok(String::from_utf8(output.stdout)?)
    };
    let bash = run(&["completion", "bash"], None)?;
    ensure!(bash.contains("complete -F _ctl") && bash.contains("drain"), "{bash}");
    let zsh = run(&["completion", "zsh"], None)?;
    ensure!(zsh.starts_with("#compdef ctl"), "{zsh}");

    ensure!(
        run(&["config", "view"], None)? == "servers:\n- 127.0.0.1:7420\nserversFrom: default\nnamespace: default\n"
    );
    ensure!(
        run(&["config", "view"], Some("10.0.0.1:7420,10.0.0.2:7420"))?
            == "servers:\n- 10.0.0.1:7420\n- 10.0.0.2:7420\nserversFrom: env BOSUN_SERVER\nnamespace: default\n"
    );
    ensure!(
        run(
            &["--server", "m1:7420", "-n", "shop", "config", "view"],
            Some("ignored:1")
        )? == "servers:\n- m1:7420\nserversFrom: flag --server\nnamespace: shop\n"
    );
    Ok(())
}

const EVENTS: &str = "apiVersion: v1
kind: Event
metadata:
  name: web.old
involvedObject: {kind: Pod, namespace: default, name: web}
reason: Started
message: long ago
firstTimestamp: \"2020-01-01T00:00:00Z\"
lastTimestamp: \"2020-01-01T00:05:00Z\"
---
apiVersion: v1
kind: Event
metadata:
  name: web.new
involvedObject: {kind: Pod, namespace: default, name: web}
reason: Started
message: just now
";

#[tokio::test]
async fn events_older_than_the_ttl_are_deleted_and_newer_ones_kept() -> Result<()> {
    let cluster = MasterCluster::start(1, &["--event-ttl-seconds", "10"]).await?;
    let servers = cluster.addrs();
    let out = ctl(&servers, &["create", "-f", "-"], EVENTS).await;
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stdout, "event/web.old created\nevent/web.new created\n");
    // The TTL counts from lastTimestamp (else firstTimestamp, else
    // creation): the 2020 event goes at the leader's next sweep (every
    // quarter TTL), the unstamped one lives 10 s from its creation.
    let names = wait_until(Duration::from_secs(15), "the old event to expire", || {
        let servers = servers.clone();
        async move {
            let out = ctl(&servers, &["get", "events", "-o", "name"], "").await;
            ensure!(out.ok(), "{out:?}");
            Ok((!out.stdout.contains("event/web.old")).then_some(out.stdout))
        }
    })
    .await?;
    assert_eq!(names, "event/web.new\n");
    Ok(())
}

fn config_map_yaml(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: v}}\n")
}

/// A running `ctl` whose output lines are read as they come.
struct Watching {
    _child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Watching {
    fn spawn(servers: &[String], args: &[&str]) -> Result<Watching> {
        let mut child = tokio::process::Command::new(bin_dir().join("ctl"))
            .args(["--server", &servers.join(",")])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stdout = child.stdout.take().context("stdout")?;
        Ok(Watching {
            _child: child,
            lines: tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout)),
        })
    }

    /// The next line, within `timeout`; `None` when none came.
    async fn line_within(&mut self, timeout: Duration) -> Result<Option<String>> {
        match tokio::time::timeout(timeout, self.lines.next_line()).await {
            Ok(line) => Ok(Some(line?.context("ctl ended")?)),
            Err(_) => Ok(None),
        }
    }

    async fn line(&mut self) -> Result<String> {
        self.line_within(Duration::from_secs(20))
            .await?
            .context("no line from ctl within 20 s")
    }
}

#[tokio::test]
async fn get_watch_prints_the_objects_then_each_change() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    let create = |name: &str| {
        let (servers, yaml) = (servers.clone(), config_map_yaml(name));
        async move {
            let out = ctl(&servers, &["create", "-f", "-"], &yaml).await;
            ensure!(out.ok(), "{out:?}");
            Ok(())
        }
    };
    create("before").await?;

    let mut watching = Watching::spawn(&servers, &["get", "configmaps", "-w"])?;
    let header = watching.line().await?;
    ensure!(header.starts_with("NAME") && header.contains("DATA"), "{header}");
    let first = watching.line().await?;
    ensure!(
        first.starts_with("before "),
        "the objects as they are come first: {first}"
    );
    create("after").await?;
    let added = watching.line().await?;
    ensure!(added.starts_with("after "), "{added}");
    ensure!(
        added.find(" 1 ") == first.find(" 1 "),
        "rows line up with the first:\n{first}\n{added}"
    );
    let out = ctl(&servers, &["delete", "configmap", "before"], "").await;
    ensure!(out.ok(), "{out:?}");
    let deleted = watching.line().await?;
    ensure!(
        deleted.starts_with("before "),
        "a deleted object in its last state: {deleted}"
    );

    // One named object: its state, then its changes only (it is followed
    // from the version read, and the other ConfigMap's change is not its).
    let mut one = Watching::spawn(&servers, &["get", "cm", "after", "-w", "-o", "name"])?;
    ensure!(one.line().await? == "configmap/after", "its state first");
    create("other").await?;
    let changed = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: after}\ndata: {k: changed}\n";
    let out = ctl(&servers, &["apply", "-f", "-"], changed).await;
    ensure!(out.ok(), "{out:?}");
    ensure!(one.line().await? == "configmap/after", "its change next");

    // --watch-only: changes only. Its watch starts at some moment after
    // the spawn, so changes are made until one shows.
    let mut changes = Watching::spawn(&servers, &["get", "cm", "--watch-only", "-o", "name"])?;
    let mut shown = None;
    for attempt in 0..40 {
        create(&format!("third-{attempt}")).await?;
        if let Some(line) = changes.line_within(Duration::from_millis(500)).await? {
            shown = Some(line);
            break;
        }
    }
    let shown = shown.context("no change shown by --watch-only")?;
    ensure!(shown.starts_with("configmap/third-"), "only changes: {shown}");

    // One kind at a time, one named object at most; a missing one is an
    // error at once.
    let out = ctl(&servers, &["get", "cm,secrets", "-w"], "").await;
    ensure!(
        out.error
            .as_deref()
            .is_some_and(|e| e.contains("only specify a single resource type")),
        "{out:?}"
    );
    let out = ctl(&servers, &["get", "cm", "a", "b", "-w"], "").await;
    ensure!(
        out.error.as_deref().is_some_and(|e| e.contains("individual resources")),
        "{out:?}"
    );
    let out = ctl(&servers, &["get", "cm", "missing", "-w"], "").await;
    ensure!(out.error.as_deref().is_some_and(|e| e.contains("not found")), "{out:?}");
    Ok(())
}

#[tokio::test]
async fn no_headers_prints_only_the_rows_also_when_watching() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    let out = ctl(&servers, &["create", "-f", "-"], &config_map_yaml("plain")).await;
    ensure!(out.ok(), "{out:?}");

    let out = ctl(&servers, &["get", "cm", "--no-headers"], "").await;
    ensure!(out.ok(), "{out:?}");
    ensure!(
        out.stdout.starts_with("plain   1   "),
        "no header, columns as wide as the rows: {out:?}"
    );
    ensure!(out.stdout.lines().count() == 1, "{out:?}");
    let out = ctl(
        &servers,
        &["get", "cm", "--no-headers", "-o", "custom-columns=NAME:.metadata.name"],
        "",
    )
    .await;
    ensure!(out.stdout == "plain\n", "{out:?}");

    let mut watching = Watching::spawn(&servers, &["get", "cm", "-w", "--no-headers"])?;
    let first = watching.line().await?;
    ensure!(first.starts_with("plain "), "a row, not the header: {first}");
    let out = ctl(&servers, &["create", "-f", "-"], &config_map_yaml("later")).await;
    ensure!(out.ok(), "{out:?}");
    let added = watching.line().await?;
    ensure!(added.starts_with("later "), "{added}");
    Ok(())
}

#[tokio::test]
async fn wait_blocks_until_conditions_hold_or_times_out() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    // No nodes: the scheduler marks the pod unschedulable.
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: lonely, labels: {app: w}}\nspec:\n  containers: [{name: c, image: busybox}]\n";
    let out = ctl(&servers, &["create", "-f", "-"], pod).await;
    ensure!(out.ok(), "{out:?}");
    let out = ctl(
        &servers,
        &[
            "wait",
            "--for=condition=PodScheduled=False",
            "pod/lonely",
            "--timeout=20s",
        ],
        "",
    )
    .await;
    ensure!(out.ok() && out.stdout == "pod/lonely condition met\n", "{out:?}");
    let out = ctl(
        &servers,
        &["wait", "--for=jsonpath={.status.phase}=Pending", "pods", "-l", "app=w"],
        "",
    )
    .await;
    ensure!(out.ok() && out.stdout == "pod/lonely condition met\n", "{out:?}");

    // Never ready: the timeout, and 0 to look once.
    for timeout in ["--timeout=1s", "--timeout=0"] {
        let out = ctl(&servers, &["wait", "--for=condition=Ready", "pod/lonely", timeout], "").await;
        let error = out.error.clone().unwrap_or_default();
        ensure!(
            error.contains("timed out waiting for the condition on pods/lonely"),
            "{out:?}"
        );
    }

    // Deletion, waited for while it happens.
    let out = ctl(&servers, &["create", "-f", "-"], &config_map_yaml("doomed")).await;
    ensure!(out.ok(), "{out:?}");
    let (waited, deleted) = tokio::join!(
        ctl(&servers, &["wait", "--for=delete", "configmap/doomed"], ""),
        ctl(&servers, &["delete", "configmap", "doomed"], "")
    );
    ensure!(deleted.ok(), "{deleted:?}");
    ensure!(
        waited.ok() && waited.stdout == "configmap/doomed condition met\n",
        "{waited:?}"
    );

    // Clear errors for what cannot be waited for.
    let out = ctl(&servers, &["wait", "--for=condition=Ready", "pod/missing"], "").await;
    ensure!(out.error.as_deref().is_some_and(|e| e.contains("not found")), "{out:?}");
    let out = ctl(&servers, &["wait", "--for=condition=Ready", "pods"], "").await;
    ensure!(
        out.error
            .as_deref()
            .is_some_and(|e| e.contains("no name was specified")),
        "{out:?}"
    );
    let out = ctl(&servers, &["wait", "--for=ready", "pod/lonely"], "").await;
    ensure!(
        out.error
            .as_deref()
            .is_some_and(|e| e.contains("unrecognized condition")),
        "{out:?}"
    );
    Ok(())
}

#[tokio::test]
async fn label_and_annotate_change_metadata_as_kubectl_does() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    for name in ["one", "two"] {
        let out = ctl(&servers, &["create", "-f", "-"], &config_map_yaml(name)).await;
        ensure!(out.ok(), "{out:?}");
    }
    let run = |args: &'static [&'static str]| {
        let servers = servers.clone();
        async move { ctl(&servers, args, "").await }
    };
    let out = run(&["label", "configmaps", "one", "two", "tier=db"]).await;
    ensure!(
        out.ok() && out.stdout == "configmap/one labeled\nconfigmap/two labeled\n",
        "{out:?}"
    );
    let out = run(&["get", "cm", "-l", "tier=db", "-o", "name"]).await;
    ensure!(out.stdout == "configmap/one\nconfigmap/two\n", "{out:?}");
    let out = run(&["get", "cm", "-L", "tier", "--show-labels"]).await;
    let header = out.stdout.lines().next().unwrap_or_default().to_string();
    ensure!(header.ends_with("TIER   LABELS"), "{out:?}");
    ensure!(out.stdout.contains("db     tier=db"), "{out:?}");

    // A different value needs --overwrite; the same value is no change.
    let out = run(&["label", "cm/one", "tier=web"]).await;
    let error = out.error.clone().unwrap_or_default();
    ensure!(
        error.contains("'tier' already has a value (db), and --overwrite is false"),
        "{out:?}"
    );
    let out = run(&["label", "cm/one", "tier=db"]).await;
    ensure!(out.ok() && out.stdout == "configmap/one not labeled\n", "{out:?}");
    let out = run(&["label", "cm/one", "tier=web", "--overwrite"]).await;
    ensure!(out.ok() && out.stdout == "configmap/one labeled\n", "{out:?}");

    // Removal, over a selector.
    let out = run(&["label", "cm", "-l", "tier", "tier-"]).await;
    ensure!(
        out.ok() && out.stdout == "configmap/one unlabeled\nconfigmap/two unlabeled\n",
        "{out:?}"
    );
    let out = run(&["get", "cm", "-l", "tier", "-o", "name"]).await;
    ensure!(out.stdout.is_empty(), "{out:?}");

    let out = run(&["annotate", "cm/two", "owner=team-a"]).await;
    ensure!(out.ok() && out.stdout == "configmap/two annotated\n", "{out:?}");
    let out = run(&["get", "cm", "two", "-o", "json"]).await;
    ensure!(out.stdout.contains("\"owner\": \"team-a\""), "{out:?}");

    // Bad input is refused and changes nothing.
    let out = run(&["label", "cm/two", "Not A Key!=x"]).await;
    ensure!(!out.ok(), "{out:?}");
    let out = run(&["label", "cm/missing", "a=b"]).await;
    ensure!(!out.ok() && out.stderr.contains("not found"), "{out:?}");

    // --all, as kubectl's delete.
    let out = run(&["delete", "cm", "one", "--all"]).await;
    ensure!(!out.ok(), "names and --all together are refused: {out:?}");
    let out = run(&["delete", "configmaps", "--all"]).await;
    ensure!(
        out.ok() && out.stdout.contains("\"one\" deleted") && out.stdout.contains("\"two\" deleted"),
        "{out:?}"
    );
    let out = run(&["get", "cm", "-o", "name"]).await;
    ensure!(out.ok() && out.stdout.is_empty(), "{out:?}");
    Ok(())
}

#[tokio::test]
async fn create_from_flags_and_run_make_the_objects_kubectl_would() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("app.conf"), "color = blue\n")?;
    let file = dir.path().join("app.conf").display().to_string();
    let secret_file = format!("key={file}");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["create", "namespace", "team"], "namespace/team created\n"),
        (
            vec![
                "-n",
                "team",
                "create",
                "configmap",
                "settings",
                "--from-literal=mode=fast",
                "--from-file",
                &file,
            ],
            "configmap/settings created\n",
        ),
        (
            vec![
                "-n",
                "team",
                "create",
                "secret",
                "generic",
                "creds",
                "--from-literal=password=hunter2",
                "--from-file",
                &secret_file,
            ],
            "secret/creds created\n",
        ),
        (
            vec![
                "-n",
                "team",
                "create",
                "deployment",
                "web",
                "--image=local/busybox:1",
                "--replicas=2",
                "--port=8080",
            ],
            "deployment.apps/web created\n",
        ),
        (
            vec![
                "-n",
                "team",
                "run",
                "once",
                "--image=local/busybox:1",
                "--restart=Never",
                "--env=A=1",
                "--",
                "echo",
                "hi",
            ],
            "pod/once created\n",
        ),
    ];
    for (args, expected) in cases {
        let out = ctl(&servers, &args, "").await;
        ensure!(out.ok() && out.stdout == expected, "{args:?}: {out:?}");
    }
    let json = |kind: &'static str, name: &'static str| {
        let servers = servers.clone();
        async move {
            let out = ctl(&servers, &["-n", "team", "get", kind, name, "-o", "json"], "").await;
            ensure!(out.ok(), "{out:?}");
            Ok::<serde_json::Value, anyhow::Error>(serde_json::from_str(&out.stdout)?)
        }
    };
    let cm = json("cm", "settings").await?;
    ensure!(
        cm["data"]["mode"] == "fast" && cm["data"]["app.conf"] == "color = blue\n",
        "{cm}"
    );
    let secret = json("secret", "creds").await?;
    ensure!(
        secret["data"]["password"] == "aHVudGVyMg==",
        "base64 of hunter2: {secret}"
    );
    ensure!(secret["data"]["key"].is_string(), "{secret}");
    let deploy = json("deploy", "web").await?;
    ensure!(deploy["spec"]["replicas"] == 2, "{deploy}");
    ensure!(deploy["spec"]["selector"]["matchLabels"]["app"] == "web", "{deploy}");
    let container = &deploy["spec"]["template"]["spec"]["containers"][0];
    ensure!(
        container["name"] == "busybox" && container["ports"][0]["containerPort"] == 8080,
        "{deploy}"
    );
    let pod = json("pod", "once").await?;
    ensure!(pod["metadata"]["labels"]["run"] == "once", "{pod}");
    ensure!(pod["spec"]["restartPolicy"] == "Never", "{pod}");
    let container = &pod["spec"]["containers"][0];
    ensure!(
        container["args"] == serde_json::json!(["echo", "hi"]) && container["env"][0]["value"] == "1",
        "{pod}"
    );

    // -o jsonpath, as scripts use it.
    for (args, expected) in [
        (
            vec![
                "-n",
                "team",
                "get",
                "pod",
                "once",
                "-o",
                "jsonpath={.spec.containers[0].args[*]}",
            ],
            "echo hi",
        ),
        (
            vec![
                "-n",
                "team",
                "get",
                "cm",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}{\"\\n\"}{end}",
            ],
            "settings\n",
        ),
        (
            vec![
                "-n",
                "team",
                "get",
                "deploy",
                "web",
                "-o",
                "jsonpath={.spec.template.spec.containers[?(@.name=='busybox')].ports[0].containerPort}",
            ],
            "8080",
        ),
    ] {
        let out = ctl(&servers, &args, "").await;
        ensure!(out.ok() && out.stdout == expected, "{args:?}: {out:?}");
    }
    let out = ctl(
        &servers,
        &["-n", "team", "get", "deploy", "web", "-o", "jsonpath=[{.spec.nope}]"],
        "",
    )
    .await;
    ensure!(
        out.ok() && out.stdout == "[]",
        "a missing field prints nothing, as kubectl's: {out:?}"
    );
    let out = ctl(
        &servers,
        &[
            "-n",
            "team",
            "get",
            "deploy",
            "-o",
            "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas,NOPE:.spec.nope",
        ],
        "",
    )
    .await;
    ensure!(
        out.ok() && out.stdout == "NAME   REPLICAS   NOPE\nweb    2          <none>\n",
        "{out:?}"
    );
    for (output, words) in [
        ("custom-columns=NAME", "expected <header>:<json-path-expr>"),
        ("jsonpath={.spec", "error parsing jsonpath"),
        ("xml", "allowed formats are"),
    ] {
        let out = ctl(&servers, &["-n", "team", "get", "deploy", "web", "-o", output], "").await;
        ensure!(!out.ok() && format!("{out:?}").contains(words), "{output}: {out:?}");
    }

    // What can be created, with kubectl's short names.
    let out = ctl(&servers, &["api-resources"], "").await;
    ensure!(
        out.ok() && out.stdout.lines().count() == 14,
        "a header and 13 kinds: {out:?}"
    );
    ensure!(
        out.stdout
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["deployments", "deploy", "apps/v1", "true", "Deployment"]),
        "{out:?}"
    );

    // Bad flags send nothing.
    let out = ctl(&servers, &["create", "configmap", "bad", "--from-literal=novalue"], "").await;
    ensure!(
        out.error.as_deref().is_some_and(|e| e.contains("expected KEY=VALUE")),
        "{out:?}"
    );
    let out = ctl(&servers, &["run", "Bad_Name", "--image=x"], "").await;
    ensure!(!out.ok(), "{out:?}");
    let out = ctl(&servers, &["get", "cm", "bad"], "").await;
    ensure!(!out.ok(), "nothing was created: {out:?}");
    Ok(())
}

/// Runs the ctl binary with `editor` as $BOSUN_EDITOR.
async fn ctl_with_editor(servers: &[String], args: &[&str], editor: &str) -> Result<std::process::Output> {
    Ok(tokio::process::Command::new(bin_dir().join("ctl"))
        .args(["--server", &servers.join(",")])
        .args(args)
        .env("BOSUN_EDITOR", editor)
        .output()
        .await?)
}

#[tokio::test]
async fn edit_writes_back_what_the_editor_saved() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    let out = ctl(&servers, &["create", "-f", "-"], &config_map_yaml("notes")).await;
    ensure!(out.ok(), "{out:?}");

    let edited = ctl_with_editor(&servers, &["edit", "cm/notes"], "sed -i 's/^  k: v$/  k: edited/'").await?;
    let stdout = String::from_utf8_lossy(&edited.stdout);
    ensure!(
        edited.status.success() && stdout == "configmap/notes edited\n",
        "{edited:?}"
    );
    let out = ctl(&servers, &["get", "cm", "notes", "-o", "jsonpath={.data.k}"], "").await;
    ensure!(out.stdout == "edited", "{out:?}");

    let untouched = ctl_with_editor(&servers, &["edit", "configmap", "notes"], "true").await?;
    let stdout = String::from_utf8_lossy(&untouched.stdout);
    ensure!(
        untouched.status.success() && stdout == "Edit cancelled, no changes made.\n",
        "{untouched:?}"
    );

    // Broken YAML and a renamed object are refused; the changes are kept.
    for editor in [
        "sed -i 's/^data:/data: [/'",
        "sed -i 's/^  name: notes$/  name: other/'",
    ] {
        let broken = ctl_with_editor(&servers, &["edit", "cm/notes"], editor).await?;
        let stderr = String::from_utf8_lossy(&broken.stderr);
        ensure!(
            !broken.status.success() && stderr.contains("A copy of your changes has been stored to"),
            "{editor}: {broken:?}"
        );
        if let Some(kept) = stderr
            .split("stored to \"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
        {
            std::fs::remove_file(kept)?;
        }
    }
    let failing = ctl_with_editor(&servers, &["edit", "cm/notes"], "false").await?;
    ensure!(!failing.status.success(), "{failing:?}");
    let out = ctl(&servers, &["get", "cm", "notes", "-o", "jsonpath={.data.k}"], "").await;
    ensure!(out.stdout == "edited", "nothing else was written: {out:?}");
    Ok(())
}

#[tokio::test]
async fn patch_changes_objects_as_kubectl_does() -> Result<()> {
    let cluster = MasterCluster::start(1, &[]).await?;
    let servers = cluster.addrs();
    let out = ctl(
        &servers,
        &[
            "create",
            "deployment",
            "web",
            "--image=local/busybox:1",
            "--",
            "sleep",
            "3600",
        ],
        "",
    )
    .await;
    ensure!(out.ok(), "{out:?}");
    let run = |args: Vec<&'static str>| {
        let servers = servers.clone();
        async move { ctl(&servers, &args, "").await }
    };
    let image = r#"{"spec":{"template":{"spec":{"containers":[{"name":"busybox","image":"local/busybox:2"}]}}}}"#;
    let out = run(vec!["patch", "deploy", "web", "-p", image]).await;
    ensure!(out.ok() && out.stdout == "deployment.apps/web patched\n", "{out:?}");
    let out = run(vec!["patch", "deploy/web", "-p", image]).await;
    ensure!(
        out.ok() && out.stdout == "deployment.apps/web patched (no change)\n",
        "{out:?}"
    );
    let out = run(vec![
        "patch",
        "deploy/web",
        "--type",
        "merge",
        "-p",
        "spec: {replicas: 3}",
    ])
    .await;
    ensure!(out.ok(), "{out:?}");
    let out = run(vec![
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.replicas} {.spec.template.spec.containers[0].image} {.spec.template.spec.containers[0].command[*]}",
    ])
    .await;
    ensure!(
        out.stdout == "3 local/busybox:2 sleep 3600",
        "the strategic patch kept the command: {out:?}"
    );

    let ops = r#"[{"op":"test","path":"/spec/replicas","value":3},{"op":"replace","path":"/spec/replicas","value":1}]"#;
    let out = run(vec!["patch", "deploy/web", "--type", "json", "-p", ops]).await;
    ensure!(out.ok(), "{out:?}");
    for (kind, patch, words) in [
        (
            "json",
            r#"[{"op":"test","path":"/spec/replicas","value":7}]"#,
            "test of /spec/replicas failed",
        ),
        ("merge", r#"{"spec":{"replicas":"many"}}"#, "replicas"),
        (
            "merge",
            r#"{"metadata":{"name":"other"}}"#,
            "cannot change the kind or name",
        ),
        ("strategic", "{not json", "unable to parse"),
    ] {
        let out = run(vec!["patch", "deploy/web", "--type", kind, "-p", patch]).await;
        ensure!(
            out.error.as_deref().is_some_and(|e| e.contains(words)),
            "{patch}: {out:?}"
        );
    }
    let out = run(vec!["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"]).await;
    ensure!(out.stdout == "1", "refused patches wrote nothing: {out:?}");
    Ok(())
}
