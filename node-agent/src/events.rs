//! Events about the node's pods, as the kubelet records them, for
//! `ctl describe pod` and `ctl get events`: `Pulling`, `Pulled`, `Created`
//! and `Started` as a container starts, `Failed` when a container or the
//! sandbox cannot start (with the engine's message), `BackOff` when a
//! crashing container or a failing pull waits, `Unhealthy` for each failed
//! probe, `Killing` when a probe gets a container restarted.
//!
//! Repeats are counted, not repeated: one (pod, type, reason, message) is
//! one event whose `count` and `lastTimestamp` grow, written at most once
//! per [`REPEAT_INTERVAL`], so a probe failing every second costs a write
//! every few seconds, not one per failure. New events are batched: every
//! event waiting when the writer is free goes in one `CreateMany` call, so
//! a container start's three events, or a burst of pod starts, cost one
//! request (and the masters pack them into few Raft entries).
//!
//! Recording never waits for the masters: when the queue is full, events
//! are dropped (events are best effort, as in Kubernetes).

use std::collections::HashMap;
use std::time::Duration;

use bosun_proto::api::{Event, ObjectReference, Pod, PodStatus};
use bosun_proto::client::{Api, Client, ClientError, PostParams};
use bosun_proto::events::{self, Source};
use bosun_proto::Kind;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most writes of one repeating event in this time.
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(5);
/// Events waiting to be written before new ones are dropped.
const QUEUE: usize = 1024;
/// Repeating events remembered at once; beyond this, new ones are dropped.
const MAX_SERIES: usize = 8192;

/// Records events for the agent's pods; cheap to clone.
#[derive(Clone)]
pub struct Recorder {
    queue: Option<mpsc::Sender<Message>>,
}

enum Message {
    Record(Note),
    /// The pod is gone: write what is pending for it and forget it.
    Forget(String),
}

/// One occurrence of an event.
#[derive(Clone, Debug, PartialEq)]
pub struct Note {
    pub pod: ObjectReference,
    pub kind: &'static str,
    pub reason: String,
    pub message: String,
}

impl Recorder {
    /// Starts the task writing events from `node` through `client`.
    pub fn start(client: Client, node: &str, token: CancellationToken) -> Recorder {
        let (queue, notes) = mpsc::channel(QUEUE);
        let source = Source {
            component: "node-agent".to_string(),
            host: node.to_string(),
        };
        tokio::spawn(run(client, source, notes, token));
        Recorder { queue: Some(queue) }
    }

    /// A recorder that drops everything, for tests.
    pub fn disabled() -> Recorder {
        Recorder { queue: None }
    }

    /// The recorder of events about `pod`.
    pub fn for_pod(&self, pod: &Pod) -> PodEvents {
        PodEvents {
            recorder: self.clone(),
            pod: events::involving(Kind::Pod, &pod.metadata.clone().unwrap_or_default()),
        }
    }

    fn send(&self, message: Message) {
        if let Some(queue) = &self.queue {
            if queue.try_send(message).is_err() {
                tracing::debug!("event queue full: an event is dropped");
            }
        }
    }

    /// Forgets pod `uid`, gone with its containers.
    pub fn forget(&self, uid: &str) {
        self.send(Message::Forget(uid.to_string()));
    }
}

/// Records events about one pod.
#[derive(Clone)]
pub struct PodEvents {
    recorder: Recorder,
    pod: ObjectReference,
}

impl PodEvents {
    pub fn warning(&self, reason: &str, message: impl Into<String>) {
        self.record(events::WARNING, reason, message.into());
    }

    pub fn normal(&self, reason: &str, message: impl Into<String>) {
        self.record(events::NORMAL, reason, message.into());
    }

    fn record(&self, kind: &'static str, reason: &str, message: String) {
        self.recorder.send(Message::Record(Note {
            pod: self.pod.clone(),
            kind,
            reason: reason.to_string(),
            message,
        }));
    }
}

/// Why each waiting container of `status` waits, by name: the reason and
/// the restart count it waits at.
pub type Waits = HashMap<String, (String, i32)>;

/// The waits of `status`.
pub fn waits(status: &PodStatus) -> Waits {
    status
        .container_statuses
        .iter()
        .filter_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            Some((c.name.clone(), (waiting.reason.clone(), c.restart_count)))
        })
        .collect()
}

/// The `BackOff` messages for the containers of `pod` whose wait for a
/// back-off begins with `status` (they were not waiting for it `before`,
/// or waited at a lower restart count): once per crash of a crash-looping
/// container, even when its short runs between crashes go unseen; once
/// for a pull that keeps failing (its `Failed` events count the tries).
pub fn back_offs(pod: &Pod, before: &Waits, status: &PodStatus) -> Vec<String> {
    let meta = pod.metadata.clone().unwrap_or_default();
    waits(status)
        .into_iter()
        .filter(|(name, wait)| before.get(name) != Some(wait))
        .filter_map(|(name, (reason, _))| match reason.as_str() {
            "CrashLoopBackOff" => Some(format!(
                "Back-off restarting failed container {name} in pod {}_{}({})",
                meta.name, meta.namespace, meta.uid
            )),
            "ImagePullBackOff" => {
                let image = status.container_statuses.iter().find(|c| c.name == name)?.image.clone();
                Some(format!("Back-off pulling image {image:?}"))
            }
            _ => None,
        })
        .collect()
}

/// (pod uid, type, reason, message): what makes two occurrences one event.
type Key = (String, &'static str, String, String);

/// One repeating event.
struct Series {
    /// As last written (with its name), or as it is to be written.
    event: Event,
    /// Whether `event` exists on the masters.
    created: bool,
    /// `event` has occurrences the masters have not seen.
    dirty: bool,
    last_write: Instant,
}

/// The bookkeeping of repeats, apart from the I/O: what to write, and
/// when. Writes are made one at a time, so none overlaps a record.
#[derive(Default)]
struct Book {
    series: HashMap<Key, Series>,
}

/// A write the book asks for.
#[derive(Debug, PartialEq)]
enum Write {
    Create(Key, Event),
    Update(Key, Event),
}

impl Book {
    /// Counts `note` seen at `now`; a first occurrence is written at once,
    /// a repeat when the last write is [`REPEAT_INTERVAL`] old.
    fn record(&mut self, note: Note, source: &Source, now: Instant) -> Option<Write> {
        let key = (
            note.pod.uid.clone(),
            note.kind,
            note.reason.clone(),
            note.message.clone(),
        );
        if let Some(series) = self.series.get_mut(&key) {
            series.event.count += 1;
            series.event.last_timestamp = Some(std::time::SystemTime::now().into());
            series.dirty = true;
            return Self::due(key, series, now);
        }
        if self.series.len() >= MAX_SERIES {
            return None;
        }
        let object = events::event(note.pod, source, note.kind, &note.reason, &note.message);
        let event = Event::try_from(object).ok()?;
        let series = Series {
            event: event.clone(),
            created: false,
            dirty: false,
            last_write: now,
        };
        self.series.insert(key.clone(), series);
        Some(Write::Create(key, event))
    }

    fn due(key: Key, series: &mut Series, now: Instant) -> Option<Write> {
        if !series.dirty || now.duration_since(series.last_write) < REPEAT_INTERVAL {
            return None;
        }
        series.dirty = false;
        series.last_write = now;
        let event = series.event.clone();
        Some(if series.created {
            Write::Update(key, event)
        } else {
            Write::Create(key, event)
        })
    }

    /// Every repeat whose write is due at `now`.
    fn due_writes(&mut self, now: Instant) -> Vec<Write> {
        self.series
            .iter_mut()
            .filter_map(|(key, series)| Self::due(key.clone(), series, now))
            .collect()
    }

    /// The write of `key` succeeded: `stored` is the event as the masters
    /// keep it.
    fn written(&mut self, key: &Key, stored: Event) {
        if let Some(series) = self.series.get_mut(key) {
            series.event = stored;
            series.created = true;
        }
    }

    /// The write of `key` failed; it is tried again a [`REPEAT_INTERVAL`]
    /// later. An event gone from the masters (expired or deleted) is then
    /// created again, with its whole count.
    fn failed(&mut self, key: &Key, gone: bool) {
        if let Some(series) = self.series.get_mut(key) {
            series.dirty = true;
            if gone {
                series.created = false;
                if let Some(meta) = series.event.metadata.as_mut() {
                    meta.name.clear();
                    meta.resource_version = 0;
                }
            }
        }
    }

    /// Forgets pod `uid`; returns the updates it still has to make.
    fn forget(&mut self, uid: &str) -> Vec<Write> {
        let keys: Vec<Key> = self.series.keys().filter(|k| k.0 == uid).cloned().collect();
        keys.into_iter()
            .filter_map(|key| {
                let series = self.series.remove(&key)?;
                (series.dirty && series.created).then_some(Write::Update(key, series.event))
            })
            .collect()
    }
}

/// Most messages taken from the queue for one round of writes.
const BATCH: usize = 1000;

async fn run(client: Client, source: Source, mut notes: mpsc::Receiver<Message>, token: CancellationToken) {
    let mut book = Book::default();
    let mut tick = tokio::time::interval(REPEAT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut messages = Vec::with_capacity(BATCH);
    loop {
        let writes = tokio::select! {
            received = notes.recv_many(&mut messages, BATCH) => {
                if received == 0 {
                    return;
                }
                let now = Instant::now();
                let mut writes = Vec::new();
                for message in messages.drain(..) {
                    match message {
                        Message::Record(note) => writes.extend(book.record(note, &source, now)),
                        Message::Forget(uid) => writes.extend(book.forget(&uid)),
                    }
                }
                writes
            },
            _ = tick.tick() => book.due_writes(Instant::now()),
            () = token.cancelled() => return,
        };
        let mut creates: Vec<(Key, Event)> = Vec::new();
        let mut updates: Vec<(Key, Event)> = Vec::new();
        for write in writes {
            match write {
                Write::Create(key, event) => creates.push((key, event)),
                Write::Update(key, event) => updates.push((key, event)),
            }
        }
        if !creates.is_empty() {
            let (keys, events): (Vec<Key>, Vec<Event>) = creates.into_iter().unzip();
            match create_all(&client, events).await {
                Ok(results) => {
                    for (key, result) in keys.iter().zip(results) {
                        book.settle(key, result);
                    }
                }
                Err(error) => {
                    for key in &keys {
                        book.settle(key, Err(error.clone()));
                    }
                }
            }
        }
        for (key, event) in updates {
            let result = update(&client, event).await;
            book.settle(&key, result);
        }
    }
}

impl Book {
    /// Books the outcome of the write of `key`.
    fn settle(&mut self, key: &Key, result: Result<Event, ClientError>) {
        match result {
            Ok(stored) => self.written(key, stored),
            Err(error) => {
                let gone = error.code() == Some(tonic::Code::NotFound);
                tracing::debug!(reason = %key.2, error = %error, "cannot record an event");
                self.failed(key, gone);
            }
        }
    }
}

/// `event` ready to be written: only this agent writes its events, so no
/// precondition is needed.
fn unconditional(mut event: Event) -> Event {
    if let Some(meta) = event.metadata.as_mut() {
        meta.resource_version = 0;
    }
    event
}

/// Creates `events` in one call; the outcome of each, in order.
async fn create_all(client: &Client, events: Vec<Event>) -> Result<Vec<Result<Event, ClientError>>, ClientError> {
    let events = events.into_iter().map(unconditional).collect();
    Api::<Event>::all(client).create_many(events).await
}

/// Updates `event` (its count and last time).
async fn update(client: &Client, event: Event) -> Result<Event, ClientError> {
    Api::<Event>::all(client)
        .update(&PostParams::default(), unconditional(event))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    use bosun_proto::api::ObjectMeta;

    fn note(uid: &str, reason: &str, message: &str) -> Note {
        Note {
            pod: ObjectReference {
                kind: "Pod".into(),
                namespace: "default".into(),
                name: format!("pod-{uid}"),
                uid: uid.into(),
                api_version: "v1".into(),
                ..Default::default()
            },
            kind: events::WARNING,
            reason: reason.into(),
            message: message.into(),
        }
    }

    fn source() -> Source {
        Source {
            component: "node-agent".into(),
            host: "node-a".into(),
        }
    }

    /// The event as the masters would store it, named `name`.
    fn stored(event: &Event, name: &str) -> Event {
        let mut event = event.clone();
        let meta = event.metadata.get_or_insert_with(ObjectMeta::default);
        meta.name = name.into();
        meta.resource_version = 7;
        event
    }

    fn created(book: &mut Book, note: Note, name: &str, now: Instant) -> Event {
        match book.record(note, &source(), now) {
            Some(Write::Create(key, event)) => {
                assert_eq!(event.count, 1);
                let stored = stored(&event, name);
                book.written(&key, stored.clone());
                stored
            }
            other => panic!("a first occurrence is created at once, got {other:?}"),
        }
    }

    #[test]
    fn repeats_are_counted_into_one_event_written_at_most_once_per_interval() {
        let mut book = Book::default();
        let start = Instant::now();
        let first = created(&mut book, note("a", "Unhealthy", "probe failed"), "pod-a.1", start);
        assert_eq!(first.source.as_ref().map(|s| s.host.as_str()), Some("node-a"));
        for _ in 0..3 {
            assert_eq!(
                book.record(note("a", "Unhealthy", "probe failed"), &source(), start),
                None
            );
        }
        assert!(book.due_writes(start + REPEAT_INTERVAL / 2).is_empty(), "too soon");
        let writes = book.due_writes(start + REPEAT_INTERVAL);
        let [Write::Update(key, event)] = writes.as_slice() else {
            panic!("one update of the repeating event, got {writes:?}");
        };
        assert_eq!(event.count, 4);
        assert_eq!(event.metadata.as_ref().unwrap().name, "pod-a.1", "the same event");
        let seconds = |e: &Event| e.last_timestamp.as_ref().map(|t| t.seconds);
        assert!(seconds(event) >= seconds(&first));
        book.written(key, event.clone());
        assert!(
            book.due_writes(start + REPEAT_INTERVAL * 3).is_empty(),
            "nothing new to write"
        );

        // A repeat after a quiet interval goes out at once.
        let later = start + REPEAT_INTERVAL * 3;
        let write = book.record(note("a", "Unhealthy", "probe failed"), &source(), later);
        assert!(
            matches!(write, Some(Write::Update(_, ref e)) if e.count == 5),
            "{write:?}"
        );
    }

    #[test]
    fn another_pod_reason_or_message_is_another_event() {
        let mut book = Book::default();
        let now = Instant::now();
        created(&mut book, note("a", "BackOff", "x"), "a.1", now);
        created(&mut book, note("a", "BackOff", "y"), "a.2", now);
        created(&mut book, note("a", "Failed", "x"), "a.3", now);
        created(&mut book, note("b", "BackOff", "x"), "b.1", now);
    }

    #[test]
    fn an_event_gone_from_the_masters_is_created_again_with_its_count() {
        let mut book = Book::default();
        let start = Instant::now();
        created(&mut book, note("a", "BackOff", "x"), "a.1", start);
        let then = start + REPEAT_INTERVAL;
        let Some(Write::Update(key, _)) = book.record(note("a", "BackOff", "x"), &source(), then) else {
            panic!("an update");
        };
        book.failed(&key, true);
        assert!(book.due_writes(then).is_empty(), "retried an interval later");
        let writes = book.due_writes(then + REPEAT_INTERVAL);
        let [Write::Create(_, event)] = writes.as_slice() else {
            panic!("created again, got {writes:?}");
        };
        assert_eq!(event.count, 2);
        let meta = event.metadata.as_ref().unwrap();
        assert!(meta.name.is_empty() && meta.resource_version == 0, "{meta:?}");
    }

    #[test]
    fn a_first_write_that_failed_is_retried() {
        let mut book = Book::default();
        let start = Instant::now();
        let Some(Write::Create(key, _)) = book.record(note("a", "Failed", "x"), &source(), start) else {
            panic!("a create");
        };
        book.failed(&key, false);
        let writes = book.due_writes(start + REPEAT_INTERVAL);
        assert!(
            matches!(writes.as_slice(), [Write::Create(_, e)] if e.count == 1),
            "{writes:?}"
        );
    }

    fn status(containers: &[(&str, &str, &str)]) -> PodStatus {
        restarted(containers, 0)
    }

    fn restarted(containers: &[(&str, &str, &str)], restart_count: i32) -> PodStatus {
        use bosun_proto::api::{ContainerState, ContainerStateWaiting, ContainerStatus};
        PodStatus {
            container_statuses: containers
                .iter()
                .map(|(name, image, waiting)| ContainerStatus {
                    name: (*name).into(),
                    image: (*image).into(),
                    restart_count,
                    state: Some(ContainerState {
                        waiting: (!waiting.is_empty()).then(|| {
                            Box::new(ContainerStateWaiting {
                                reason: (*waiting).into(),
                                ..Default::default()
                            })
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_back_off_is_an_event_when_it_begins() {
        let pod = Pod {
            metadata: Some(ObjectMeta {
                name: "web".into(),
                namespace: "shop".into(),
                uid: "u1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let crashing = status(&[
            ("app", "busybox", "CrashLoopBackOff"),
            ("side", "nope:1", "ImagePullBackOff"),
        ]);
        let mut messages = back_offs(&pod, &HashMap::new(), &crashing);
        messages.sort();
        assert_eq!(
            messages,
            [
                "Back-off pulling image \"nope:1\"",
                "Back-off restarting failed container app in pod web_shop(u1)"
            ]
        );
        // Still waiting: no new event.
        assert!(back_offs(&pod, &waits(&crashing), &crashing).is_empty());
        // Running again, then crashing again: a new occurrence.
        let running = status(&[("app", "busybox", ""), ("side", "nope:1", "ImagePullBackOff")]);
        assert!(back_offs(&pod, &waits(&crashing), &running).is_empty());
        assert_eq!(back_offs(&pod, &waits(&running), &crashing).len(), 1);
        // Crashed again so fast its run went unseen: the restart count says.
        let again = restarted(&[("app", "busybox", "CrashLoopBackOff")], 1);
        assert_eq!(
            back_offs(&pod, &waits(&crashing), &again),
            ["Back-off restarting failed container app in pod web_shop(u1)"]
        );
        // Other waits are no back-off.
        let creating = status(&[("app", "busybox", "ContainerCreating")]);
        assert!(back_offs(&pod, &HashMap::new(), &creating).is_empty());
    }

    #[test]
    fn forgetting_a_pod_writes_its_last_repeats_and_drops_it() {
        let mut book = Book::default();
        let now = Instant::now();
        created(&mut book, note("a", "BackOff", "x"), "a.1", now);
        created(&mut book, note("a", "Unhealthy", "y"), "a.2", now);
        created(&mut book, note("b", "BackOff", "x"), "b.1", now);
        assert_eq!(book.record(note("a", "BackOff", "x"), &source(), now), None);
        let writes = book.forget("a");
        assert!(
            matches!(writes.as_slice(), [Write::Update(_, e)] if e.count == 2),
            "{writes:?}"
        );
        assert!(book.forget("a").is_empty());
        assert_eq!(book.series.len(), 1, "pod b's event stays");
    }
}
