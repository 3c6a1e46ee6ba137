use std::collections::HashMap;

use bosun_proto::api::{Container, ObjectMeta, PodSpec};

use std::sync::Arc;

use super::*;

const T0: u64 = 1_700_000_000;

pub(crate) fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(T0 + secs)
}

fn context() -> Context {
    Context {
        backoff: Backoff {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(40),
            reset_after: Duration::from_secs(600),
        },
        host_ip: "192.0.2.1".into(),
    }
}

fn pod(restart_policy: &str, containers: &[&str]) -> Pod {
    Pod {
        metadata: Some(ObjectMeta {
            name: "web".into(),
            namespace: "default".into(),
            uid: "uid-1".into(),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            restart_policy: restart_policy.into(),
            termination_grace_period_seconds: Some(30),
            containers: containers
                .iter()
                .map(|name| Container {
                    name: name.to_string(),
                    image: "busybox".into(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container as the runtime reports it (shared with the probe tests).
pub(crate) fn container(id: &str, name: &str, attempt: u32, state: ContainerState) -> ContainerInfo {
    ContainerInfo {
        id: id.into(),
        labels: HashMap::from([
            (labels::CONTAINER.to_string(), name.to_string()),
            (labels::ATTEMPT.to_string(), attempt.to_string()),
        ]),
        state,
        image: "busybox".into(),
        image_id: "sha256:busybox".into(),
        ip: (name == labels::SANDBOX).then(|| "10.0.0.5".to_string()),
        created_at: at(0),
    }
}

fn running(since: u64) -> ContainerState {
    ContainerState::Running { started_at: at(since) }
}

fn exited(code: i32, started: u64, finished: u64) -> ContainerState {
    ContainerState::Exited {
        exit_code: code,
        oom_killed: false,
        started_at: Some(at(started)),
        finished_at: at(finished),
        error: String::new(),
    }
}

fn present(pod: &Pod) -> Desired {
    Desired::Present(Arc::new(pod.clone()))
}

fn sandbox() -> ContainerInfo {
    container("sb", labels::SANDBOX, 0, running(0))
}

/// An instance of a pod's only container, holding the pod's network.
pub(crate) fn holding(id: &str, name: &str, attempt: u32, state: ContainerState) -> ContainerInfo {
    let mut instance = container(id, name, attempt, state);
    instance.labels.insert(labels::POD_IP.into(), "10.0.0.7".into());
    instance.ip = instance.is_running().then(|| "10.0.0.7".into());
    instance
}

/// A pod of one container "web" in each shape the planner handles: holding
/// its network itself, or adopted with the running sandbox of an earlier
/// agent holding it (as a pod of several containers always has).
#[derive(Clone, Copy, Debug)]
struct Shaped(Shape);

impl Shaped {
    fn both() -> [Shaped; 2] {
        [Shaped(Shape::Single), Shaped(Shape::Sandbox)]
    }

    /// The runtime's containers: the sandbox, if any, and these instances
    /// of container `name`.
    fn actual(self, name: &str, instances: &[(&str, u32, ContainerState)]) -> Vec<ContainerInfo> {
        let sandbox = (self.0 == Shape::Sandbox).then(sandbox);
        let instances = instances.iter().map(|(id, attempt, state)| match self.0 {
            Shape::Single => holding(id, name, *attempt, state.clone()),
            Shape::Sandbox => container(id, name, *attempt, state.clone()),
        });
        sandbox.into_iter().chain(instances).collect()
    }

    fn pod_ip(self) -> &'static str {
        match self.0 {
            Shape::Single => "10.0.0.7",
            Shape::Sandbox => "10.0.0.5",
        }
    }

    fn start(self, name: &str, attempt: u32) -> Action {
        Action::StartContainer {
            name: name.into(),
            attempt,
            shape: self.0,
        }
    }
}

fn waiting_reason(plan: &Plan, index: usize) -> String {
    let status = plan.status.as_ref().unwrap();
    status.container_statuses[index]
        .state
        .clone()
        .unwrap()
        .waiting
        .map(|w| w.reason)
        .unwrap_or_default()
}

fn phase_of(plan: &Plan) -> &str {
    &plan.status.as_ref().unwrap().phase
}

#[test]
fn a_new_pod_gets_a_sandbox_then_its_containers() {
    let pod = pod("Always", &["web", "sidecar"]);
    let mut memory = Memory::default();
    let first = plan(&present(&pod), &[], &mut memory, &context(), at(1));
    assert_eq!(first.actions, vec![Action::StartSandbox { attempt: 0 }]);
    assert_eq!(phase_of(&first), "Pending");
    assert_eq!(waiting_reason(&first, 0), "ContainerCreating");

    let second = plan(&present(&pod), &[sandbox()], &mut memory, &context(), at(2));
    assert_eq!(
        second.actions,
        vec![
            Action::StartContainer {
                name: "web".into(),
                attempt: 0,
                shape: Shape::Sandbox,
            },
            Action::StartContainer {
                name: "sidecar".into(),
                attempt: 0,
                shape: Shape::Sandbox,
            },
        ]
    );
}

#[test]
fn a_new_pod_of_one_container_holds_its_network_itself() {
    let pod = pod("Always", &["web"]);
    let mut memory = Memory::default();
    let first = plan(&present(&pod), &[], &mut memory, &context(), at(1));
    assert_eq!(first.actions, vec![Shaped(Shape::Single).start("web", 0)]);
    assert_eq!(phase_of(&first), "Pending");
    assert_eq!(waiting_reason(&first, 0), "ContainerCreating");
    assert_eq!(first.status.as_ref().unwrap().pod_ip, "", "no address before it runs");
}

#[test]
fn the_shape_follows_the_containers_and_an_adopted_sandbox() {
    let cases = [
        ("one container", vec!["web"], vec![], Shape::Single),
        ("two containers", vec!["web", "sidecar"], vec![], Shape::Sandbox),
        (
            "one container, adopted with its sandbox",
            vec!["web"],
            vec![sandbox()],
            Shape::Sandbox,
        ),
        (
            "one container, its old sandbox dead",
            vec!["web"],
            vec![container("sb", labels::SANDBOX, 0, exited(137, 0, 5))],
            Shape::Single,
        ),
    ];
    for (case, containers, actual, shape) in cases {
        let pod = pod("Always", &containers);
        assert_eq!(Shape::of(pod.spec.as_ref().unwrap(), &actual), shape, "{case}");
    }
}

#[test]
fn running_containers_make_a_running_ready_pod() {
    for shaped in Shaped::both() {
        let pod = pod("Always", &["web"]);
        let actual = shaped.actual("web", &[("c1", 0, running(1))]);
        let plan = plan(&present(&pod), &actual, &mut Memory::default(), &context(), at(5));
        assert!(plan.actions.is_empty(), "{shaped:?}");
        let status = plan.status.unwrap();
        assert_eq!(status.phase, "Running");
        assert_eq!(status.pod_ip, shaped.pod_ip(), "{shaped:?}");
        assert_eq!(status.host_ip, "192.0.2.1");
        assert!(status
            .conditions
            .iter()
            .any(|c| c.r#type == "Ready" && c.status == "True"));
        assert!(status.container_statuses[0].ready);
    }
}

#[test]
fn a_crashing_container_backs_off_with_growing_delays() {
    for shaped in Shaped::both() {
        let pod = pod("Always", &["web"]);
        let mut memory = Memory::default();
        // First crash at t=10: back-off 10 s.
        let actual = shaped.actual("web", &[("c0", 0, exited(1, 5, 10))]);
        let waiting = plan(&present(&pod), &actual, &mut memory, &context(), at(12));
        assert!(waiting.actions.is_empty(), "{shaped:?}");
        assert_eq!(waiting.wake_at, Some(at(20)));
        assert_eq!(waiting_reason(&waiting, 0), "CrashLoopBackOff");
        assert_eq!(phase_of(&waiting), "Running");
        assert_eq!(
            waiting.status.as_ref().unwrap().pod_ip,
            shaped.pod_ip(),
            "{shaped:?}: the address is kept while the container waits"
        );
        let restart = plan(&present(&pod), &actual, &mut memory, &context(), at(20));
        assert_eq!(restart.actions, vec![shaped.start("web", 1)]);
        // Second crash: 20 s; third: 40 s (the cap).
        let actual = shaped.actual("web", &[("c1", 1, exited(1, 21, 22)), ("c0", 0, exited(1, 5, 10))]);
        let waiting = plan(&present(&pod), &actual, &mut memory, &context(), at(23));
        assert_eq!(waiting.wake_at, Some(at(42)));
        assert_eq!(waiting.status.as_ref().unwrap().container_statuses[0].restart_count, 1);
        let actual = shaped.actual(
            "web",
            &[
                ("c2", 2, exited(1, 43, 44)),
                ("c1", 1, exited(1, 21, 22)),
                ("c0", 0, exited(1, 5, 10)),
            ],
        );
        let waiting = plan(&present(&pod), &actual, &mut memory, &context(), at(45));
        assert_eq!(waiting.wake_at, Some(at(84)));
        assert!(
            waiting.actions.contains(&Action::Remove(vec!["c0".into()])),
            "keeps two attempts: {:?}",
            waiting.actions
        );
    }
}

#[test]
fn a_long_run_resets_the_back_off() {
    let pod = pod("Always", &["web"]);
    let mut memory = Memory::default();
    memory.containers.insert(
        "web".into(),
        ContainerMemory {
            crashes: 3,
            ..Default::default()
        },
    );
    for shaped in Shaped::both() {
        let actual = shaped.actual("web", &[("c4", 4, exited(1, 100, 800))]);
        let plan = plan(&present(&pod), &actual, &mut memory.clone(), &context(), at(801));
        assert_eq!(plan.wake_at, Some(at(810)), "{shaped:?}: back to the initial delay");
    }
}

#[test]
fn restart_policies_decide_restarts_and_phase() {
    let cases = [
        ("OnFailure", 0, false, "Succeeded"),
        ("OnFailure", 2, true, "Running"),
        ("Never", 0, false, "Succeeded"),
        ("Never", 2, false, "Failed"),
        ("Always", 0, true, "Running"),
    ];
    for shaped in Shaped::both() {
        for (policy, code, restarts, phase) in cases {
            let pod = pod(policy, &["job"]);
            let actual = shaped.actual("job", &[("c0", 0, exited(code, 1, 2))]);
            let plan = plan(&present(&pod), &actual, &mut Memory::default(), &context(), at(100));
            let restarted = plan.actions.contains(&shaped.start("job", 1));
            assert_eq!(restarted, restarts, "{shaped:?} {policy} exit {code}");
            assert_eq!(phase_of(&plan), phase, "{shaped:?} {policy} exit {code}");
        }
    }
}

#[test]
fn a_finished_pod_gives_back_its_sandbox_and_is_never_started_again() {
    for (policy, code, phase) in [
        ("Never", 0, "Succeeded"),
        ("Never", 3, "Failed"),
        ("OnFailure", 0, "Succeeded"),
    ] {
        let pod = pod(policy, &["job"]);
        let job = container("c0", "job", 0, exited(code, 1, 2));
        let mut memory = Memory::default();
        // Finished with its sandbox up: the status is final and the
        // sandbox is stopped.
        let first = plan(
            &present(&pod),
            &[sandbox(), job.clone()],
            &mut memory,
            &context(),
            at(100),
        );
        assert_eq!(
            first.actions,
            vec![Action::StopSandbox { id: "sb".into() }],
            "{policy} {code}"
        );
        assert_eq!(phase_of(&first), phase);
        assert_eq!(first.status.as_ref().unwrap().pod_ip, "10.0.0.5");
        // The stopped sandbox is removed; the job's container stays for its
        // logs; nothing starts, and the last status stands.
        let stopped = container("sb", labels::SANDBOX, 0, exited(137, 0, 101));
        let second = plan(
            &present(&pod),
            &[stopped, job.clone()],
            &mut memory,
            &context(),
            at(102),
        );
        assert_eq!(
            second.actions,
            vec![Action::Remove(vec!["sb".into()])],
            "{policy} {code}"
        );
        assert!(second.status.is_none());
        let third = plan(
            &present(&pod),
            std::slice::from_ref(&job),
            &mut memory,
            &context(),
            at(103),
        );
        assert!(third.actions.is_empty() && third.status.is_none(), "{third:?}");

        // After an agent restart (no memory) the reported phase says the
        // same.
        let mut reported = pod.clone();
        reported.status = first.status.clone();
        let fresh = plan(&present(&reported), &[job], &mut Memory::default(), &context(), at(200));
        assert!(fresh.actions.is_empty() && fresh.status.is_none(), "{fresh:?}");
    }
    // A pod that runs on (restartPolicy Always) keeps its sandbox, and one
    // whose sandbox died is started over.
    let pod = pod("Always", &["web", "sidecar"]);
    let web = container("c0", "web", 0, running(1));
    let sidecar = container("s0", "sidecar", 0, running(1));
    let running_plan = plan(
        &present(&pod),
        &[sandbox(), web.clone(), sidecar.clone()],
        &mut Memory::default(),
        &context(),
        at(5),
    );
    assert!(running_plan.actions.is_empty());
    let dead = container("sb", labels::SANDBOX, 0, exited(137, 0, 6));
    let restart = plan(
        &present(&pod),
        &[dead, web, sidecar],
        &mut Memory::default(),
        &context(),
        at(7),
    );
    assert!(
        restart.actions.contains(&Action::StartSandbox { attempt: 1 }),
        "{restart:?}"
    );
}

#[test]
fn a_finished_pod_of_one_container_is_never_started_again() {
    for (policy, code, phase) in [
        ("Never", 0, "Succeeded"),
        ("Never", 3, "Failed"),
        ("OnFailure", 0, "Succeeded"),
    ] {
        let pod = pod(policy, &["job"]);
        let job = holding("c0", "job", 0, exited(code, 1, 2));
        let mut memory = Memory::default();
        // Nothing to stop: the container held the network and has exited.
        let first = plan(
            &present(&pod),
            std::slice::from_ref(&job),
            &mut memory,
            &context(),
            at(100),
        );
        assert!(first.actions.is_empty(), "{policy} {code}: {:?}", first.actions);
        assert_eq!(phase_of(&first), phase);
        assert_eq!(first.status.as_ref().unwrap().pod_ip, "10.0.0.7");
        assert!(memory.finished, "its address can be given back");
        let second = plan(
            &present(&pod),
            std::slice::from_ref(&job),
            &mut memory,
            &context(),
            at(101),
        );
        assert!(second.actions.is_empty() && second.status.is_none(), "{second:?}");
        let mut reported = pod.clone();
        reported.status = first.status.clone();
        let fresh = plan(&present(&reported), &[job], &mut Memory::default(), &context(), at(200));
        assert!(fresh.actions.is_empty() && fresh.status.is_none(), "{fresh:?}");
    }
}

#[test]
fn deletion_stops_everything_with_the_grace_period_then_deletes_the_pod() {
    let mut pod = pod("Always", &["web"]);
    let meta = pod.metadata.as_mut().unwrap();
    meta.deletion_timestamp = Some(at(50).into());
    meta.deletion_grace_period_seconds = Some(7);
    for shaped in Shaped::both() {
        let actual = shaped.actual("web", &[("c1", 0, running(1))]);
        let stopping = plan(&present(&pod), &actual, &mut Memory::default(), &context(), at(51));
        assert_eq!(
            stopping.actions,
            vec![Action::StopAll {
                grace: Duration::from_secs(7)
            }],
            "{shaped:?}"
        );
    }
    let gone = plan(&present(&pod), &[], &mut Memory::default(), &context(), at(52));
    assert_eq!(gone.actions, vec![Action::DeletePod]);
    assert!(!gone.done);
}

#[test]
fn leftovers_of_a_pod_that_is_gone_are_stopped_then_the_worker_ends() {
    let mut leftover = container("c1", "web", 0, running(1));
    leftover.labels.insert(labels::GRACE.into(), "3".into());
    let stopping = plan(
        &Desired::Gone { grace: None },
        &[leftover],
        &mut Memory::default(),
        &context(),
        at(5),
    );
    assert_eq!(
        stopping.actions,
        vec![Action::StopAll {
            grace: Duration::from_secs(3)
        }]
    );
    let done = plan(
        &Desired::Gone { grace: None },
        &[],
        &mut Memory::default(),
        &context(),
        at(6),
    );
    assert!(done.done && done.actions.is_empty());
}

#[test]
fn a_dead_sandbox_restarts_the_pod_and_keeps_counting_restarts() {
    let pod = pod("Always", &["web", "sidecar"]);
    let mut memory = Memory::default();
    let actual = [
        container("sb", labels::SANDBOX, 0, exited(137, 0, 30)),
        container("c3", "web", 3, running(10)),
    ];
    let plan1 = plan(&present(&pod), &actual, &mut memory, &context(), at(31));
    assert_eq!(
        plan1.actions,
        vec![
            Action::Remove(vec!["sb".into(), "c3".into()]),
            Action::StartSandbox { attempt: 1 }
        ]
    );
    let actual = [container("sb1", labels::SANDBOX, 1, running(32))];
    let plan2 = plan(&present(&pod), &actual, &mut memory, &context(), at(33));
    assert_eq!(
        plan2.actions,
        vec![
            Shaped(Shape::Sandbox).start("web", 4),
            Shaped(Shape::Sandbox).start("sidecar", 0)
        ]
    );
}

#[test]
fn a_pod_of_several_containers_whose_sandbox_was_removed_starts_over() {
    let pod = pod("Always", &["web", "sidecar"]);
    let actual = [container("c0", "web", 0, running(1))];
    let plan = plan(&present(&pod), &actual, &mut Memory::default(), &context(), at(5));
    assert_eq!(
        plan.actions,
        vec![Action::Remove(vec!["c0".into()]), Action::StartSandbox { attempt: 0 }]
    );
}

#[test]
fn a_pod_of_one_container_left_by_an_earlier_agent_in_a_dead_sandbox_starts_over_on_its_own() {
    let pod = pod("Always", &["web"]);
    let joined = container("c3", "web", 3, running(10));
    let cases = [
        (
            "its sandbox dead",
            vec![container("sb", labels::SANDBOX, 0, exited(137, 0, 30)), joined.clone()],
            vec!["sb", "c3"],
        ),
        ("its sandbox removed", vec![joined], vec!["c3"]),
    ];
    for (case, actual, removed) in cases {
        let mut memory = Memory::default();
        let plan = plan(&present(&pod), &actual, &mut memory, &context(), at(31));
        assert_eq!(
            plan.actions,
            vec![
                Action::Remove(removed.into_iter().map(String::from).collect()),
                Shaped(Shape::Single).start("web", 4),
            ],
            "{case}"
        );
    }
}

#[test]
fn a_failed_pull_shows_err_image_pull_then_image_pull_back_off() {
    let pod = pod("Always", &["web"]);
    let mut memory = Memory::default();
    memory.containers.entry("web".into()).or_default().start_failed(
        "ErrImagePull",
        "pull access denied".into(),
        &context().backoff,
        at(10),
    );
    for shaped in Shaped::both() {
        let actual = shaped.actual("web", &[]);
        let mut memory = memory.clone();
        let backing_off = plan(&present(&pod), &actual, &mut memory, &context(), at(12));
        assert!(backing_off.actions.is_empty(), "{shaped:?}");
        assert_eq!(waiting_reason(&backing_off, 0), "ImagePullBackOff");
        assert_eq!(backing_off.wake_at, Some(at(20)));
        let retry = plan(&present(&pod), &actual, &mut memory, &context(), at(20));
        assert_eq!(retry.actions, vec![shaped.start("web", 0)]);
        assert_eq!(waiting_reason(&retry, 0), "ErrImagePull");
    }
}

#[test]
fn a_forced_deletion_kills_at_once() {
    let leftover = container("c1", "web", 0, running(1));
    let stopping = plan(
        &Desired::Gone { grace: Some(0) },
        &[leftover],
        &mut Memory::default(),
        &context(),
        at(5),
    );
    assert_eq!(stopping.actions, vec![Action::StopAll { grace: Duration::ZERO }]);
}

fn exec_probe() -> Option<Box<bosun_proto::api::Probe>> {
    Some(Box::new(bosun_proto::api::Probe {
        exec: Some(bosun_proto::api::ExecAction {
            command: vec!["true".into()],
        }),
        ..Default::default()
    }))
}

/// `pod("Always", ["web"])` with the probes named in `probes` ("startup",
/// "liveness", "readiness").
fn probed_pod(restart_policy: &str, probes: &[&str]) -> Pod {
    let mut pod = pod(restart_policy, &["web"]);
    let container = &mut pod.spec.as_mut().unwrap().containers[0];
    for probe in probes {
        match *probe {
            "startup" => container.startup_probe = exec_probe(),
            "liveness" => container.liveness_probe = exec_probe(),
            "readiness" => container.readiness_probe = exec_probe(),
            other => panic!("no probe {other}"),
        }
    }
    pod
}

fn verdict(started: bool, ready: bool, failure: Option<crate::probe::Kind>) -> Verdict {
    Verdict {
        started,
        ready,
        failure: failure.map(|kind| crate::probe::Failure {
            kind,
            message: "command [\"true\"] exited with 1: ".into(),
        }),
    }
}

#[test]
fn probe_verdicts_decide_readiness_started_and_the_pod_conditions() {
    use crate::probe::Kind::Liveness;
    // (case, probes, verdict read by the worker, expected (ready, started))
    type Case = (&'static str, Vec<&'static str>, Option<Verdict>, (bool, bool));
    let cases: Vec<Case> = vec![
        ("no probes: ready when running", vec![], None, (true, true)),
        ("liveness only: ready at once", vec!["liveness"], None, (true, true)),
        ("readiness before any verdict", vec!["readiness"], None, (false, true)),
        ("startup before any verdict", vec!["startup"], None, (false, false)),
        (
            "readiness failing",
            vec!["readiness"],
            Some(verdict(true, false, None)),
            (false, true),
        ),
        (
            "readiness passing",
            vec!["readiness"],
            Some(verdict(true, true, None)),
            (true, true),
        ),
        (
            "startup passed",
            vec!["startup", "readiness"],
            Some(verdict(true, true, None)),
            (true, true),
        ),
        (
            "liveness gave up: readiness unchanged until the kill",
            vec!["liveness"],
            Some(verdict(true, true, Some(Liveness))),
            (true, true),
        ),
    ];
    for (shaped, (case, probes, read, (ready, started))) in Shaped::both()
        .into_iter()
        .flat_map(|s| cases.iter().cloned().map(move |c| (s, c)))
    {
        let case = format!("{shaped:?}: {case}");
        let pod = probed_pod("Always", &probes);
        let mut memory = Memory::default();
        if let Some(read) = read {
            memory.probes.insert("c1".into(), read);
        }
        let actual = shaped.actual("web", &[("c1", 0, running(1))]);
        let plan = plan(&present(&pod), &actual, &mut memory, &context(), at(5));
        let status = plan.status.unwrap();
        let web = &status.container_statuses[0];
        assert_eq!((web.ready, web.started), (ready, Some(started)), "{case}");
        assert_eq!(status.phase, "Running", "{case}");
        for kind in ["Ready", "ContainersReady"] {
            let condition = status.conditions.iter().find(|c| c.r#type == kind).unwrap();
            assert_eq!(condition.status, if ready { "True" } else { "False" }, "{case}: {kind}");
        }
    }
}

#[test]
fn a_verdict_for_an_older_instance_does_not_apply_to_a_new_one() {
    let pod = probed_pod("Always", &["readiness"]);
    let mut memory = Memory::default();
    memory.probes.insert("c0".into(), verdict(true, true, None));
    for shaped in Shaped::both() {
        let actual = shaped.actual("web", &[("c1", 1, running(10)), ("c0", 0, exited(137, 1, 9))]);
        let plan = plan(&present(&pod), &actual, &mut memory.clone(), &context(), at(11));
        assert!(!plan.status.unwrap().container_statuses[0].ready, "{shaped:?}");
    }
}

#[test]
fn a_probe_that_gave_up_kills_the_container_then_the_restart_policy_decides() {
    for (shaped, kind) in Shaped::both()
        .into_iter()
        .flat_map(|s| [crate::probe::Kind::Liveness, crate::probe::Kind::Startup].map(|k| (s, k)))
    {
        let mut pod = probed_pod("Always", &["startup", "liveness"]);
        pod.spec.as_mut().unwrap().termination_grace_period_seconds = Some(4);
        let mut memory = Memory::default();
        memory.probes.insert("c0".into(), verdict(true, true, Some(kind)));
        let actual = shaped.actual("web", &[("c0", 0, running(1))]);
        let killing = plan(&present(&pod), &actual, &mut memory, &context(), at(20));
        let [Action::Kill {
            id,
            name,
            grace,
            reason,
        }] = killing.actions.as_slice()
        else {
            panic!("{kind:?}: one kill: {:?}", killing.actions);
        };
        assert_eq!(
            (id.as_str(), name.as_str(), *grace),
            ("c0", "web", Duration::from_secs(4))
        );
        let probe = kind.name().to_ascii_lowercase();
        assert!(reason.contains(&format!("failed its {probe} probe")), "{reason}");

        // Killed: an ordinary exit, restarted after the back-off and counted.
        memory.probes.clear();
        let actual = shaped.actual("web", &[("c0", 0, exited(137, 1, 21))]);
        let waiting = plan(&present(&pod), &actual, &mut memory, &context(), at(22));
        assert_eq!(waiting_reason(&waiting, 0), "CrashLoopBackOff");
        let last = waiting.status.as_ref().unwrap().container_statuses[0]
            .last_state
            .clone()
            .unwrap()
            .terminated
            .unwrap();
        assert_eq!((last.exit_code, last.reason.as_str()), (137, "Error"));
        let restart = plan(&present(&pod), &actual, &mut memory, &context(), at(31));
        assert_eq!(restart.actions, vec![shaped.start("web", 1)]);
    }
    // restartPolicy Never: the killed container stays terminated.
    let pod = probed_pod("Never", &["liveness"]);
    let actual = [sandbox(), container("c0", "web", 0, exited(137, 1, 21))];
    let sandboxed = plan(&present(&pod), &actual, &mut Memory::default(), &context(), at(40));
    assert_eq!(sandboxed.actions, vec![Action::StopSandbox { id: "sb".into() }]);
    assert_eq!(phase_of(&sandboxed), "Failed");
    let actual = [holding("c0", "web", 0, exited(137, 1, 21))];
    let single = plan(&present(&pod), &actual, &mut Memory::default(), &context(), at(40));
    assert!(single.actions.is_empty(), "{:?}", single.actions);
    assert_eq!(phase_of(&single), "Failed");
}
