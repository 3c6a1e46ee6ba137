//! The probes of one running container as a pure state machine: check
//! outcomes in, a [`Verdict`] out. It decides which probe falls due when
//! (initial delay, period, startup gating) and applies the thresholds; it
//! never touches a clock or a container, so it is tested with tables.
//!
//! Times are offsets from the moment the container started, so an initial
//! delay counts from the container's start even when the probes begin later
//! (an agent that adopts a running container).

use std::time::Duration;

use bosun_proto::api::{Container, Probe};

/// Which probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Gates the others; failing it kills the container.
    Startup,
    /// Failing it kills the container.
    Liveness,
    /// Decides whether the container is ready; never kills.
    Readiness,
}

impl Kind {
    /// The name Kubernetes users know (`Liveness probe failed: ...`).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

/// A probe's timing and thresholds, with Kubernetes' defaults for values
/// left unset (the masters fill them in too; this covers older objects).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    /// Successes in a row that make a failing probe pass (1 for liveness
    /// and startup probes, whatever the spec says).
    pub success_threshold: u32,
    /// Failures in a row that make a passing probe fail.
    pub failure_threshold: u32,
}

impl Settings {
    pub fn of(probe: &Probe, kind: Kind) -> Settings {
        let positive = |value: i32, default: u32| u32::try_from(value).ok().filter(|v| *v > 0).unwrap_or(default);
        let success_threshold = match kind {
            Kind::Readiness => positive(probe.success_threshold, 1),
            Kind::Liveness | Kind::Startup => 1,
        };
        Settings {
            initial_delay: Duration::from_secs(u64::try_from(probe.initial_delay_seconds).unwrap_or(0)),
            period: Duration::from_secs(positive(probe.period_seconds, 10).into()),
            timeout: Duration::from_secs(positive(probe.timeout_seconds, 1).into()),
            success_threshold,
            failure_threshold: positive(probe.failure_threshold, 3),
        }
    }
}

/// What one check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Success,
    /// The container answered wrongly, or not in time.
    Failure(String),
    /// The check could not be made (the runtime is unreachable): no
    /// evidence either way, so it counts for nothing.
    Unknown(String),
}

/// A probe that gave up on the container: it must be killed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// [`Kind::Startup`] or [`Kind::Liveness`].
    pub kind: Kind,
    /// The last failed check's message.
    pub message: String,
}

/// What the probes say about a container, for its status and the plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// No startup probe, or it has succeeded.
    pub started: bool,
    /// Started, and no readiness probe or its last verdict is success.
    pub ready: bool,
    /// Set once a startup or liveness probe failed for good.
    pub failure: Option<Failure>,
}

impl Verdict {
    /// The verdict before any probe ran.
    pub fn initial(container: &Container) -> Verdict {
        ContainerProbes::new(container).verdict()
    }
}

/// One probe's schedule and counters.
#[derive(Clone, Debug)]
struct Track {
    settings: Settings,
    /// When the next check falls due.
    next_at: Duration,
    /// A check is running; no second one starts until it ends.
    in_flight: bool,
    /// Consecutive results of the same kind as the last one.
    successes: u32,
    failures: u32,
    /// The thresholded verdict: `true` once `success_threshold` successes
    /// in a row were seen, `false` after `failure_threshold` failures.
    passing: bool,
}

impl Track {
    fn new(probe: &Probe, kind: Kind) -> Track {
        let settings = Settings::of(probe, kind);
        Track {
            settings,
            next_at: settings.initial_delay,
            in_flight: false,
            successes: 0,
            failures: 0,
            // Readiness starts failing; liveness starts passing; startup
            // has not passed until it succeeds.
            passing: kind == Kind::Liveness,
        }
    }

    fn due(&self, now: Duration) -> bool {
        !self.in_flight && self.next_at <= now
    }

    /// Counts an outcome into the streaks and the thresholded verdict.
    fn count(&mut self, outcome: &Outcome) {
        self.in_flight = false;
        match outcome {
            Outcome::Success => {
                self.successes += 1;
                self.failures = 0;
                if self.successes >= self.settings.success_threshold {
                    self.passing = true;
                }
            }
            Outcome::Failure(_) => {
                self.failures += 1;
                self.successes = 0;
                if self.failures >= self.settings.failure_threshold {
                    self.passing = false;
                }
            }
            Outcome::Unknown(_) => {}
        }
    }
}

/// The probes of one container instance.
///
/// ```text
///              startup succeeds            liveness fails failureThreshold×
///   Starting ───────────────────► Started ──────────────────────────────► Failed
///   (startup probe only;          (liveness and readiness run;            (nothing runs;
///    not ready)                    ready per readiness)                    the container is killed)
///      │ startup fails failureThreshold×                                     ▲
///      └─────────────────────────────────────────────────────────────────────┘
/// ```
///
/// A container without a startup probe begins Started.
#[derive(Clone, Debug)]
pub struct ContainerProbes {
    startup: Option<Track>,
    liveness: Option<Track>,
    readiness: Option<Track>,
    /// Set once, when a startup or liveness probe gives up; stops all
    /// probing of this instance.
    failure: Option<Failure>,
}

impl ContainerProbes {
    pub fn new(container: &Container) -> ContainerProbes {
        let track = |probe: &Option<Box<Probe>>, kind| probe.as_deref().map(|p| Track::new(p, kind));
        ContainerProbes {
            startup: track(&container.startup_probe, Kind::Startup),
            liveness: track(&container.liveness_probe, Kind::Liveness),
            readiness: track(&container.readiness_probe, Kind::Readiness),
            failure: None,
        }
    }

    /// Whether the container has any probe at all.
    pub fn any(&self) -> bool {
        self.startup.is_some() || self.liveness.is_some() || self.readiness.is_some()
    }

    fn started(&self) -> bool {
        self.startup.as_ref().is_none_or(|t| t.passing)
    }

    pub fn verdict(&self) -> Verdict {
        let started = self.started();
        Verdict {
            started,
            ready: started && self.readiness.as_ref().is_none_or(|t| t.passing),
            failure: self.failure.clone(),
        }
    }

    pub fn settings(&self, kind: Kind) -> Option<Settings> {
        self.track(kind).map(|t| t.settings)
    }

    fn track(&self, kind: Kind) -> Option<&Track> {
        match kind {
            Kind::Startup => self.startup.as_ref(),
            Kind::Liveness => self.liveness.as_ref(),
            Kind::Readiness => self.readiness.as_ref(),
        }
    }

    fn track_mut(&mut self, kind: Kind) -> Option<&mut Track> {
        match kind {
            Kind::Startup => self.startup.as_mut(),
            Kind::Liveness => self.liveness.as_mut(),
            Kind::Readiness => self.readiness.as_mut(),
        }
    }

    /// The probes that may run now: the startup probe until it succeeds,
    /// then liveness and readiness; none once one gave up.
    fn active(&self) -> Vec<Kind> {
        if self.failure.is_some() {
            return vec![];
        }
        if !self.started() {
            return vec![Kind::Startup];
        }
        [Kind::Liveness, Kind::Readiness]
            .into_iter()
            .filter(|k| self.track(*k).is_some())
            .collect()
    }

    /// The checks to start at `now`; each is marked in flight and its next
    /// check scheduled a period after this one begins.
    pub fn begin_due(&mut self, now: Duration) -> Vec<Kind> {
        let due: Vec<Kind> = self
            .active()
            .into_iter()
            .filter(|k| self.track(*k).is_some_and(|t| t.due(now)))
            .collect();
        for kind in &due {
            let track = self.track_mut(*kind).expect("due probes exist");
            track.in_flight = true;
            track.next_at = now + track.settings.period;
        }
        due
    }

    /// When the next check falls due, or `None` when none is scheduled:
    /// every active probe is in flight (wait for one to end), or none will
    /// run again (there are none, or one gave up).
    pub fn next_due(&self) -> Option<Duration> {
        self.active()
            .into_iter()
            .filter_map(|k| self.track(k))
            .filter(|t| !t.in_flight)
            .map(|t| t.next_at)
            .min()
    }

    /// Counts a check's outcome at `now`; returns whether the verdict
    /// changed.
    pub fn record(&mut self, kind: Kind, outcome: &Outcome, now: Duration) -> bool {
        let before = self.verdict();
        let was_started = self.started();
        let Some(track) = self.track_mut(kind) else {
            return false;
        };
        track.count(outcome);
        let gave_up = track.failures >= track.settings.failure_threshold;
        if let (Kind::Startup | Kind::Liveness, Outcome::Failure(message), true) = (kind, outcome, gave_up) {
            self.failure.get_or_insert_with(|| Failure {
                kind,
                message: message.clone(),
            });
        }
        if !was_started && self.started() {
            // Startup passed: the others run at once if their delay is over.
            for track in [self.liveness.as_mut(), self.readiness.as_mut()].into_iter().flatten() {
                track.next_at = track.next_at.max(now);
            }
        }
        self.verdict() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use Outcome::{Failure as F, Success as S, Unknown as U};

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn probe(initial_delay: i32, period: i32, success_threshold: i32, failure_threshold: i32) -> Option<Box<Probe>> {
        Some(Box::new(Probe {
            initial_delay_seconds: initial_delay,
            period_seconds: period,
            timeout_seconds: 1,
            success_threshold,
            failure_threshold,
            ..Default::default()
        }))
    }

    /// A container with the probes given as (kind, successThreshold,
    /// failureThreshold), no initial delay, 1 s periods.
    fn container(probes: &[(Kind, i32, i32)]) -> Container {
        let mut container = Container::default();
        for (kind, success, failure) in probes {
            let slot = match kind {
                Kind::Startup => &mut container.startup_probe,
                Kind::Liveness => &mut container.liveness_probe,
                Kind::Readiness => &mut container.readiness_probe,
            };
            *slot = probe(0, 1, *success, *failure);
        }
        container
    }

    fn fail() -> Outcome {
        F("exit code 1".into())
    }

    /// (started, ready, gave up)
    type Seen = (bool, bool, Option<Kind>);

    fn seen(verdict: &Verdict) -> Seen {
        (verdict.started, verdict.ready, verdict.failure.as_ref().map(|f| f.kind))
    }

    #[test]
    fn thresholds_turn_outcomes_into_verdicts() {
        use Kind::{Liveness as L, Readiness as R, Startup as St};
        let none = None;
        // (case, probes as (kind, successThreshold, failureThreshold),
        // outcomes in order, expected verdict)
        type Case = (&'static str, Vec<(Kind, i32, i32)>, Vec<(Kind, Outcome)>, Seen);
        let cases: Vec<Case> = vec![
            ("no probes: started and ready", vec![], vec![], (true, true, none)),
            (
                "readiness starts not ready",
                vec![(R, 1, 3)],
                vec![],
                (true, false, none),
            ),
            (
                "one success makes ready",
                vec![(R, 1, 3)],
                vec![(R, S)],
                (true, true, none),
            ),
            (
                "successThreshold 2 needs two in a row",
                vec![(R, 2, 3)],
                vec![(R, S), (R, fail()), (R, S)],
                (true, false, none),
            ),
            (
                "successThreshold 2 met",
                vec![(R, 2, 3)],
                vec![(R, S), (R, S)],
                (true, true, none),
            ),
            (
                "ready survives fewer failures than the threshold",
                vec![(R, 1, 3)],
                vec![(R, S), (R, fail()), (R, fail())],
                (true, true, none),
            ),
            (
                "failureThreshold failures make not ready, never a kill",
                vec![(R, 1, 3)],
                vec![(R, S), (R, fail()), (R, fail()), (R, fail())],
                (true, false, none),
            ),
            (
                "a success breaks a failure streak",
                vec![(R, 1, 3)],
                vec![(R, S), (R, fail()), (R, fail()), (R, S), (R, fail()), (R, fail())],
                (true, true, none),
            ),
            (
                "readiness recovers",
                vec![(R, 1, 1)],
                vec![(R, S), (R, fail()), (R, S)],
                (true, true, none),
            ),
            (
                "liveness gives up after failureThreshold",
                vec![(L, 1, 3)],
                vec![(L, fail()), (L, fail()), (L, fail())],
                (true, true, Some(L)),
            ),
            (
                "liveness streak broken by a success",
                vec![(L, 1, 3)],
                vec![(L, fail()), (L, fail()), (L, S), (L, fail()), (L, fail())],
                (true, true, none),
            ),
            (
                "an unknown outcome counts for nothing",
                vec![(L, 1, 3)],
                vec![(L, fail()), (L, fail()), (L, U("runtime down".into())), (L, fail())],
                (true, true, Some(L)),
            ),
            (
                "liveness successThreshold is always 1",
                vec![(L, 5, 1), (R, 1, 1)],
                vec![(L, S), (R, S)],
                (true, true, none),
            ),
            (
                "startup gates readiness",
                vec![(St, 1, 3), (R, 1, 3)],
                vec![(St, fail())],
                (false, false, none),
            ),
            (
                "startup success without readiness makes ready",
                vec![(St, 1, 3), (L, 1, 3)],
                vec![(St, fail()), (St, S)],
                (true, true, none),
            ),
            (
                "startup gives up after failureThreshold",
                vec![(St, 1, 2), (R, 1, 3)],
                vec![(St, fail()), (St, fail())],
                (false, false, Some(St)),
            ),
            (
                "startup then readiness",
                vec![(St, 1, 3), (R, 1, 3)],
                vec![(St, S), (R, S)],
                (true, true, none),
            ),
        ];
        for (name, probes, outcomes, expected) in cases {
            let mut state = ContainerProbes::new(&container(&probes));
            for (i, (kind, outcome)) in outcomes.iter().enumerate() {
                state.begin_due(secs(i as u64));
                state.record(*kind, outcome, secs(i as u64));
            }
            assert_eq!(seen(&state.verdict()), expected, "{name}");
        }
    }

    #[test]
    fn a_give_up_keeps_the_failing_message_and_stops_all_probing() {
        let mut state = ContainerProbes::new(&container(&[(Kind::Liveness, 1, 1), (Kind::Readiness, 1, 1)]));
        assert_eq!(state.begin_due(secs(0)), vec![Kind::Liveness, Kind::Readiness]);
        assert!(state.record(Kind::Liveness, &F("cat: /tmp/healthy: No such file".into()), secs(0)));
        let failure = state.verdict().failure.unwrap();
        assert_eq!(failure.message, "cat: /tmp/healthy: No such file");
        assert_eq!(state.begin_due(secs(100)), vec![]);
        assert_eq!(state.next_due(), None);
    }

    #[test]
    fn schedules_follow_initial_delay_period_and_startup_gating() {
        let container = Container {
            startup_probe: probe(2, 5, 1, 3),
            liveness_probe: probe(4, 10, 1, 3),
            readiness_probe: probe(0, 3, 1, 3),
            ..Default::default()
        };
        let mut state = ContainerProbes::new(&container);
        // (step, at, outcome recorded first, checks begun, next due after)
        type Step = (&'static str, u64, Option<(Kind, Outcome)>, Vec<Kind>, Option<u64>);
        let steps: Vec<Step> = vec![
            ("nothing before the startup delay", 0, None, vec![], Some(2)),
            ("startup at its delay", 2, None, vec![Kind::Startup], None),
            (
                "startup fails; next a period after it began",
                3,
                Some((Kind::Startup, fail())),
                vec![],
                Some(7),
            ),
            ("not due before", 6, None, vec![], Some(7)),
            ("startup again", 7, None, vec![Kind::Startup], None),
            // Both delays are over when startup passes: both run at once.
            (
                "startup passes",
                8,
                Some((Kind::Startup, S)),
                vec![Kind::Liveness, Kind::Readiness],
                None,
            ),
            ("readiness answers", 9, Some((Kind::Readiness, S)), vec![], Some(11)),
            ("liveness answers", 10, Some((Kind::Liveness, S)), vec![], Some(11)),
            (
                "readiness again, never startup",
                12,
                None,
                vec![Kind::Readiness],
                Some(18),
            ),
        ];
        for (name, at, outcome, begun, next) in steps {
            if let Some((kind, outcome)) = outcome {
                state.record(kind, &outcome, secs(at));
            }
            assert_eq!(state.begin_due(secs(at)), begun, "{name}: begun");
            assert_eq!(state.next_due(), next.map(secs), "{name}: next due");
        }
    }

    #[test]
    fn settings_default_what_is_unset_and_pin_liveness_success_to_one() {
        let unset = Probe::default();
        let cases = [
            (Kind::Readiness, unset.clone(), (0, 10, 1, 1, 3)),
            (Kind::Liveness, unset.clone(), (0, 10, 1, 1, 3)),
            (
                Kind::Readiness,
                Probe {
                    initial_delay_seconds: 5,
                    period_seconds: 2,
                    timeout_seconds: 3,
                    success_threshold: 4,
                    failure_threshold: 6,
                    ..Default::default()
                },
                (5, 2, 3, 4, 6),
            ),
            (
                Kind::Startup,
                Probe {
                    success_threshold: 4,
                    initial_delay_seconds: -1,
                    ..Default::default()
                },
                (0, 10, 1, 1, 3),
            ),
        ];
        for (kind, probe, (delay, period, timeout, success, failure)) in cases {
            let settings = Settings::of(&probe, kind);
            assert_eq!(
                settings,
                Settings {
                    initial_delay: secs(delay),
                    period: secs(period),
                    timeout: secs(timeout),
                    success_threshold: success,
                    failure_threshold: failure,
                },
                "{kind:?} {probe:?}"
            );
        }
    }
}
