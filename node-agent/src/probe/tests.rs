use bosun_proto::api::{ExecAction, ObjectMeta, PodSpec, Probe};

use super::*;
use crate::runtime::fake::FakeRuntime;
use crate::runtime::labels;

use crate::plan::tests::{at, container as instance, holding};

fn exec_probe() -> Option<Box<Probe>> {
    Some(Box::new(Probe {
        exec: Some(ExecAction {
            command: vec!["true".into()],
        }),
        period_seconds: 1,
        ..Default::default()
    }))
}

/// A pod with a probed container `web` and an unprobed `sidecar`.
fn pod() -> Pod {
    Pod {
        metadata: Some(ObjectMeta {
            name: "web".into(),
            uid: "uid-1".into(),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![
                Container {
                    name: "web".into(),
                    readiness_probe: exec_probe(),
                    ..Default::default()
                },
                Container {
                    name: "sidecar".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn running(since: u64) -> ContainerState {
    ContainerState::Running { started_at: at(since) }
}

fn exited() -> ContainerState {
    ContainerState::Exited {
        exit_code: 137,
        oom_killed: false,
        started_at: Some(at(1)),
        finished_at: at(2),
        error: String::new(),
    }
}

#[test]
fn only_the_newest_running_instance_of_a_probed_container_is_probed() {
    let sandbox = || instance("sb", labels::SANDBOX, 0, running(0));
    let deleted = {
        let mut pod = pod();
        pod.metadata.as_mut().unwrap().deletion_timestamp = Some(at(9).into());
        pod
    };
    let pod = pod();
    // (case, pod, containers, expected (id, since_start secs))
    type Case<'a> = (&'a str, Option<&'a Pod>, Vec<ContainerInfo>, Vec<(&'a str, u64)>);
    let cases: Vec<Case> = vec![
        (
            "running and probed",
            Some(&pod),
            vec![sandbox(), instance("w0", "web", 0, running(4))],
            vec![("w0", 6)],
        ),
        (
            "unprobed containers are left alone",
            Some(&pod),
            vec![sandbox(), instance("s0", "sidecar", 0, running(4))],
            vec![],
        ),
        (
            "the newest attempt, not an old one",
            Some(&pod),
            vec![
                sandbox(),
                instance("w0", "web", 0, running(1)),
                instance("w1", "web", 1, running(8)),
            ],
            vec![("w1", 2)],
        ),
        (
            "an exited newest instance is not probed",
            Some(&pod),
            vec![
                sandbox(),
                instance("w0", "web", 0, running(1)),
                instance("w1", "web", 1, exited()),
            ],
            vec![],
        ),
        (
            "no sandbox, no probes",
            Some(&pod),
            vec![instance("w0", "web", 0, running(4))],
            vec![],
        ),
        (
            "a pod being deleted is not probed",
            Some(&deleted),
            vec![sandbox(), instance("w0", "web", 0, running(4))],
            vec![],
        ),
        (
            "a pod that is gone is not probed",
            None,
            vec![sandbox(), instance("w0", "web", 0, running(4))],
            vec![],
        ),
    ];
    for (case, pod, actual, expected) in cases {
        let found: Vec<(&str, u64)> = wanted(pod, &actual, at(10))
            .iter()
            .map(|w| {
                assert_eq!(w.pod_ip, Some("10.0.0.5"), "{case}");
                (w.id, w.since_start.as_secs())
            })
            .collect();
        assert_eq!(found, expected, "{case}");
    }
}

#[test]
fn a_pod_of_one_container_is_probed_at_the_address_that_container_holds() {
    let mut pod = pod();
    pod.spec.as_mut().unwrap().containers.truncate(1);
    let running_one = [holding("w0", "web", 0, running(4))];
    let found: Vec<(&str, Option<&str>)> = wanted(Some(&pod), &running_one, at(10))
        .iter()
        .map(|w| (w.id, w.pod_ip))
        .collect();
    assert_eq!(found, vec![("w0", Some("10.0.0.7"))]);
    let exited_one = [holding("w1", "web", 1, exited()), holding("w0", "web", 0, exited())];
    assert!(wanted(Some(&pod), &exited_one, at(10)).is_empty());
}

#[tokio::test(start_paused = true)]
async fn sync_starts_and_stops_tasks_as_instances_come_and_go() {
    let runtime = Arc::new(FakeRuntime::new(false));
    let web = runtime.create_container(&Default::default()).await.unwrap();
    runtime.start_container(&web).await.unwrap();
    let poke = Arc::new(Notify::new());
    let mut probes = Probes::new(
        runtime.clone(),
        Recorder::disabled(),
        poke.clone(),
        CancellationToken::new(),
    );
    let pod = pod();
    let now = SystemTime::now();
    let sandbox = instance("sb", labels::SANDBOX, 0, ContainerState::Running { started_at: now });
    let first = instance(&web, "web", 0, ContainerState::Running { started_at: now });

    probes.sync(Some(&pod), &[sandbox.clone(), first.clone()], now);
    assert_eq!(
        probes.verdicts()[&web],
        Verdict::initial(&pod.spec.as_ref().unwrap().containers[0])
    );
    assert!(!probes.verdicts()[&web].ready, "not ready before the first success");
    poke.notified().await;
    assert!(probes.verdicts()[&web].ready, "ready after the first success");
    let execs = runtime.exec_count();

    // The same instance again: the same task, nothing restarted.
    probes.sync(Some(&pod), &[sandbox.clone(), first.clone()], SystemTime::now());
    assert!(probes.verdicts()[&web].ready);

    // The instance exited: its task stops, nothing else is probed.
    let mut stopped = first.clone();
    stopped.state = exited();
    probes.sync(Some(&pod), &[sandbox.clone(), stopped], SystemTime::now());
    assert!(probes.verdicts().is_empty());
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(runtime.exec_count(), execs, "no probing after the instance stopped");

    // A new instance starts afresh, not ready.
    let second = runtime.create_container(&Default::default()).await.unwrap();
    runtime.start_container(&second).await.unwrap();
    let restarted = instance(
        &second,
        "web",
        1,
        ContainerState::Running {
            started_at: SystemTime::now(),
        },
    );
    probes.sync(Some(&pod), &[sandbox.clone(), restarted.clone()], SystemTime::now());
    assert!(!probes.verdicts()[&second].ready);

    // The pod is gone: everything stops, and stop() waits for the tasks.
    probes.sync(None, &[sandbox, restarted], SystemTime::now());
    assert!(probes.verdicts().is_empty());
    tokio::time::timeout(Duration::from_millis(1), probes.stop())
        .await
        .expect("tasks end when cancelled");
}
