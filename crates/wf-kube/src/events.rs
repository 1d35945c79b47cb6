//! [`EventRecorderHook`]: an optional [`TransitionHook`] publishing a Kubernetes Event
//! (`events.k8s.io/v1`, through [`kube::runtime::events::Recorder`]) on the resource at each
//! transition, rate-limited per resource by a [`RateLimiter`].
//!
//! | transition        | type      | reason               |
//! |-------------------|-----------|----------------------|
//! | `FlowStarted`     | `Normal`  | `WF_FlowStarted`     |
//! | `StepWaiting`     | `Normal`  | `WF_StepWaiting`     |
//! | `StepCompleted`   | `Normal`  | `WF_StepCompleted`   |
//! | `FlowCompleted`   | `Normal`  | `WF_FlowCompleted`   |
//! | `StepFailed`      | `Warning` | `WF_StepFailed`      |
//! | `FlowInterrupted` | `Warning` | `WF_FlowInterrupted` |
//! | `FlowAbandoned`   | `Warning` | `WF_FlowAbandoned`   |
//!
//! A refused request ([`wf_engine::Admission`]) publishes a `Warning` whose reason is the
//! refusal's (e.g. `UNKNOWN_CLASS`), whose note is its message and whose action is
//! [`REFUSAL_ACTION`]; the engine calls the hook once per new refusal.
//!
//! `StepStarted` publishes nothing. The note is `flow=<flow> step=<step> error=<error>`, or
//! `flow=<flow> step=<step> waiting=<reason>` for a wait that says why (the parts that
//! apply), the action is `<flow>` or `<flow>/<step>`. The recorder folds an event with the
//! same type, reason, action and resource within minutes into a series (a count on the
//! first event), so two steps of one flow stay two events. Publishing failures are
//! logged, never returned: events never fail a flow.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::Resource;
use wf_engine::async_trait;
use wf_engine::hook::{HookEvent, Transition, TransitionHook};
use wf_engine::{RefusalEvent, ResourceKey};

/// The action of the Event published for a refused request.
pub const REFUSAL_ACTION: &str = "Admission";

/// Default number of events per resource per window.
pub const DEFAULT_EVENTS_PER_WINDOW: u32 = 10;
/// Default rate-limit window.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);

/// Kubernetes caps the reason and the action at 128 characters, the note at 1 kB.
const MAX_SHORT: usize = 128;
const MAX_NOTE: usize = 1024;
/// Buckets kept before idle (full) ones are pruned.
const PRUNE_ABOVE: usize = 1024;

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// A token bucket per resource (namespace/name): at most `capacity` events at once, refilled
/// at `capacity` per `window`.
#[derive(Debug)]
pub struct RateLimiter {
    capacity: u32,
    window: Duration,
    buckets: Mutex<HashMap<ResourceKey, Bucket>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::new(DEFAULT_EVENTS_PER_WINDOW, DEFAULT_WINDOW)
    }
}

impl RateLimiter {
    /// At most `capacity` events per resource per `window`. A zero window refills at once
    /// (no limit while `capacity > 0`); a zero capacity drops everything.
    pub fn new(capacity: u32, window: Duration) -> Self {
        RateLimiter {
            capacity,
            window,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<ResourceKey, Bucket>> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a token for `key` now; `false` means the event is to be dropped.
    pub fn try_acquire(&self, key: &ResourceKey) -> bool {
        self.try_acquire_at(key, Instant::now())
    }

    /// Takes a token for `key` at `now` (for tests and callers with their own clock).
    pub fn try_acquire_at(&self, key: &ResourceKey, now: Instant) -> bool {
        let capacity = f64::from(self.capacity);
        let window = self.window.as_secs_f64();
        let mut buckets = self.lock();
        if buckets.len() > PRUNE_ABOVE {
            // A bucket idle for a whole window is full again: forgetting it changes nothing.
            let window = self.window;
            buckets.retain(|_, b| now.saturating_duration_since(b.last) < window);
        }
        let bucket = buckets.entry(key.clone()).or_insert(Bucket {
            tokens: capacity,
            last: now,
        });
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        let refill = if window > 0.0 {
            elapsed * capacity / window
        } else {
            capacity
        };
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.last = now.max(bucket.last);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The event for a transition, or `None` for transitions that publish nothing
/// (`StepStarted`).
pub fn event_for(event: &HookEvent<'_>, transition: Transition) -> Option<Event> {
    let type_ = match transition {
        Transition::StepStarted => return None,
        Transition::FlowStarted
        | Transition::StepWaiting
        | Transition::StepCompleted
        | Transition::FlowCompleted => EventType::Normal,
        Transition::StepFailed | Transition::FlowInterrupted | Transition::FlowAbandoned => {
            EventType::Warning
        }
    };
    let mut note = format!("flow={}", event.runtime.flow_name);
    if let Some(step) = event.step_runtime() {
        note.push_str(" step=");
        note.push_str(&step.step_name);
    }
    if transition == Transition::StepWaiting {
        if let Some(reason) = event.wait_reason() {
            note.push_str(" waiting=");
            note.push_str(reason);
        }
    }
    let error = match transition {
        Transition::FlowInterrupted | Transition::FlowAbandoned => event
            .error
            .or(Some(event.runtime.error_message.as_str()))
            .filter(|e| !e.is_empty()),
        _ => event.error,
    };
    if let Some(error) = error {
        note.push_str(" error=");
        note.push_str(error);
    }
    Some(Event {
        type_,
        reason: truncate(format!("WF_{transition:?}"), MAX_SHORT),
        note: Some(truncate(note, MAX_NOTE)),
        action: truncate(
            match event.step_runtime() {
                Some(step) => format!("{}/{}", event.runtime.flow_name, step.step_name),
                None => event.runtime.flow_name.clone(),
            },
            MAX_SHORT,
        ),
        secondary: None,
    })
}

/// The event for a refused request: `Warning`, the refusal's reason and message.
pub fn refusal_event(event: &RefusalEvent<'_>) -> Event {
    Event {
        type_: EventType::Warning,
        reason: truncate(event.refusal.reason.clone(), MAX_SHORT),
        note: Some(truncate(event.refusal.message.clone(), MAX_NOTE)),
        action: REFUSAL_ACTION.to_owned(),
        secondary: None,
    }
}

/// Cuts `text` to at most `max` bytes, on a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Publishes a Kubernetes Event on the resource at each transition (see the module docs for
/// the mapping). Optional: construct it and register it as a hook explicitly.
pub struct EventRecorderHook {
    recorder: Recorder,
    api_version: String,
    kind: String,
    limiter: RateLimiter,
}

impl EventRecorderHook {
    /// A hook for resources of `api_version` (e.g. `example.com/v1`) and `kind`, reporting
    /// as `reporter` (e.g. the controller's name), with the default rate limit
    /// ([`DEFAULT_EVENTS_PER_WINDOW`] per [`DEFAULT_WINDOW`]).
    pub fn new(
        client: kube::Client,
        reporter: impl Into<Reporter>,
        api_version: impl Into<String>,
        kind: impl Into<String>,
    ) -> Self {
        EventRecorderHook {
            recorder: Recorder::new(client, reporter.into()),
            api_version: api_version.into(),
            kind: kind.into(),
            limiter: RateLimiter::default(),
        }
    }

    /// A hook for resources of type `K` (its API version and kind).
    pub fn for_resource<K: Resource<DynamicType = ()>>(
        client: kube::Client,
        reporter: impl Into<Reporter>,
    ) -> Self {
        Self::new(client, reporter, K::api_version(&()), K::kind(&()))
    }

    /// At most `events` per resource per `window`; excess events are dropped.
    #[must_use]
    pub fn with_rate_limit(mut self, events: u32, window: Duration) -> Self {
        self.limiter = RateLimiter::new(events, window);
        self
    }

    /// The reference of the resource an event is about.
    pub fn reference(&self, key: &ResourceKey) -> ObjectReference {
        ObjectReference {
            api_version: Some(self.api_version.clone()),
            kind: Some(self.kind.clone()),
            namespace: (!key.namespace.is_empty()).then(|| key.namespace.clone()),
            name: Some(key.name.clone()),
            ..ObjectReference::default()
        }
    }

    /// Publishes the Warning of a refused request (not rate-limited: the engine reports a
    /// refusal once); whether it was published.
    pub async fn publish_refusal(&self, event: &RefusalEvent<'_>) -> bool {
        let k8s_event = refusal_event(event);
        let reference = self.reference(event.resource);
        match self.recorder.publish(&k8s_event, &reference).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(resource = %event.resource, reason = %k8s_event.reason, %error, "publishing an event failed");
                false
            }
        }
    }

    /// Publishes the event for a transition; whether one was published (`false` when the
    /// transition has none, the rate limit dropped it, or the API server refused it).
    pub async fn publish(&self, event: &HookEvent<'_>, transition: Transition) -> bool {
        let Some(k8s_event) = event_for(event, transition) else {
            return false;
        };
        if !self.limiter.try_acquire(event.resource) {
            tracing::debug!(
                resource = %event.resource,
                reason = %k8s_event.reason,
                "event dropped by the rate limit"
            );
            return false;
        }
        let reference = self.reference(event.resource);
        match self.recorder.publish(&k8s_event, &reference).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(
                    resource = %event.resource,
                    reason = %k8s_event.reason,
                    %error,
                    "publishing an event failed"
                );
                false
            }
        }
    }
}

#[async_trait]
impl TransitionHook for EventRecorderHook {
    async fn on_transition(&self, event: &HookEvent<'_>, transition: Transition) {
        self.publish(event, transition).await;
    }

    async fn on_refused(&self, event: &RefusalEvent<'_>) {
        self.publish_refusal(event).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::api::ListParams;
    use kube::Api;
    use wf_engine::hook::WorkflowHook;
    use wf_engine::{FlowStatus, JsonMap, StepRuntime, StepStatus, WorkflowRuntime};

    fn runtime() -> WorkflowRuntime {
        WorkflowRuntime {
            flow_status: FlowStatus::Running,
            retry_times: 0,
            resume_times: 0,
            flow_name: "CreateCluster".into(),
            start_time: None,
            complete_time: None,
            error_message: String::new(),
            init_context: JsonMap::new(),
            running_steps: vec![StepRuntime {
                step_name: "InitMeta".into(),
                step_status: StepStatus::Failed,
                step_start_time: None,
                last_step_complete_time: None,
                context_output: JsonMap::new(),
                retry_times: 1,
                resume_times: 0,
                last_error: Some("boom".into()),
                wait_reason: None,
            }],
        }
    }

    fn event<'a>(
        rt: &'a WorkflowRuntime,
        key: &'a ResourceKey,
        step: Option<usize>,
        error: Option<&'a str>,
    ) -> HookEvent<'a> {
        HookEvent {
            resource_type: "Db",
            resource: key,
            seq: 1,
            runtime: rt,
            step,
            error,
            replayed: false,
        }
    }

    async fn fake_client() -> kube::Client {
        kube_fake_client::ClientBuilder::new()
            .build()
            .await
            .expect("fake client")
    }

    async fn events(client: &kube::Client, ns: &str) -> Vec<K8sEvent> {
        let mut items = Api::<K8sEvent>::namespaced(client.clone(), ns)
            .list(&ListParams::default())
            .await
            .expect("list events")
            .items;
        items.sort_by_key(|e| e.event_time.as_ref().map(|t| t.0));
        items
    }

    #[test]
    fn a_wait_that_says_why_puts_the_reason_in_the_note() {
        let mut rt = runtime();
        rt.running_steps[0].step_status = StepStatus::Waiting;
        rt.running_steps[0].wait_reason = Some("pod c1-1 is Pending".into());
        let key = ResourceKey::new("ns", "c1");
        let e =
            event_for(&event(&rt, &key, Some(0), None), Transition::StepWaiting).expect("event");
        assert_eq!(
            e.note.as_deref(),
            Some("flow=CreateCluster step=InitMeta waiting=pod c1-1 is Pending")
        );
    }

    #[test]
    fn transitions_map_to_type_reason_and_note() {
        let rt = runtime();
        let key = ResourceKey::new("ns", "c1");
        let failed = event_for(
            &event(&rt, &key, Some(0), Some("boom")),
            Transition::StepFailed,
        )
        .expect("event");
        assert_eq!(failed.type_, EventType::Warning);
        assert_eq!(failed.reason, "WF_StepFailed");
        assert_eq!(
            failed.note.as_deref(),
            Some("flow=CreateCluster step=InitMeta error=boom")
        );
        assert_eq!(failed.action, "CreateCluster/InitMeta");
        for (transition, type_) in [
            (Transition::FlowStarted, EventType::Normal),
            (Transition::StepWaiting, EventType::Normal),
            (Transition::StepCompleted, EventType::Normal),
            (Transition::FlowCompleted, EventType::Normal),
            (Transition::FlowInterrupted, EventType::Warning),
        ] {
            let e = event_for(&event(&rt, &key, None, None), transition).expect("event");
            assert_eq!(e.type_, type_, "{transition:?}");
            assert_eq!(e.reason, format!("WF_{transition:?}"));
            assert_eq!(e.note.as_deref(), Some("flow=CreateCluster"));
        }
        assert!(event_for(&event(&rt, &key, Some(0), None), Transition::StepStarted).is_none());
        // An interrupt without an event error reports the run's error.
        let mut rt = runtime();
        rt.error_message = "MANY_RETRY: InitMeta".into();
        let e =
            event_for(&event(&rt, &key, None, None), Transition::FlowInterrupted).expect("event");
        assert_eq!(
            e.note.as_deref(),
            Some("flow=CreateCluster error=MANY_RETRY: InitMeta")
        );
    }

    #[test]
    fn long_notes_are_cut_on_a_char_boundary() {
        let rt = runtime();
        let key = ResourceKey::new("ns", "c1");
        let error = "é".repeat(1000);
        let e = event_for(
            &event(&rt, &key, None, Some(&error)),
            Transition::StepFailed,
        )
        .expect("event");
        let note = e.note.expect("note");
        assert!(
            note.len() <= MAX_NOTE && note.len() > MAX_NOTE - 2,
            "{}",
            note.len()
        );
    }

    #[test]
    fn rate_limiter_allows_a_burst_then_drops_until_refilled_per_resource() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60));
        let a = ResourceKey::new("ns", "a");
        let b = ResourceKey::new("ns", "b");
        let t0 = Instant::now();
        let burst: Vec<bool> = (0..5).map(|_| limiter.try_acquire_at(&a, t0)).collect();
        assert_eq!(burst, [true, true, true, false, false]);
        // Another resource has its own bucket.
        assert!(limiter.try_acquire_at(&b, t0));
        // One token comes back every 20 s.
        assert!(!limiter.try_acquire_at(&a, t0 + Duration::from_secs(19)));
        assert!(limiter.try_acquire_at(&a, t0 + Duration::from_secs(21)));
        assert!(!limiter.try_acquire_at(&a, t0 + Duration::from_secs(22)));
        // A whole idle window refills the bucket, never past its capacity.
        let later = t0 + Duration::from_secs(600);
        let burst: Vec<bool> = (0..4).map(|_| limiter.try_acquire_at(&a, later)).collect();
        assert_eq!(burst, [true, true, true, false]);
    }

    #[tokio::test]
    async fn a_failed_step_publishes_a_warning_event_on_the_resource() {
        let client = fake_client().await;
        let hook = EventRecorderHook::new(client.clone(), "wf-operator", "example.com/v1", "Db");
        let rt = runtime();
        let key = ResourceKey::new("ns", "c1");
        hook.on_wf_init(&event(&rt, &key, None, None)).await;
        hook.on_step_init(&event(&rt, &key, Some(0), None)).await;
        hook.on_step_completed(&event(&rt, &key, Some(0), Some("boom")))
            .await;
        let got = events(&client, "ns").await;
        let summary: Vec<(Option<&str>, Option<&str>)> = got
            .iter()
            .map(|e| (e.type_.as_deref(), e.reason.as_deref()))
            .collect();
        assert_eq!(
            summary,
            [
                (Some("Normal"), Some("WF_FlowStarted")),
                (Some("Warning"), Some("WF_StepFailed")),
            ]
        );
        let failed = &got[1];
        assert_eq!(
            failed.note.as_deref(),
            Some("flow=CreateCluster step=InitMeta error=boom")
        );
        let regarding = failed.regarding.as_ref().expect("regarding");
        assert_eq!(regarding.api_version.as_deref(), Some("example.com/v1"));
        assert_eq!(regarding.kind.as_deref(), Some("Db"));
        assert_eq!(regarding.namespace.as_deref(), Some("ns"));
        assert_eq!(regarding.name.as_deref(), Some("c1"));
        assert_eq!(failed.reporting_controller.as_deref(), Some("wf-operator"));
    }

    #[tokio::test]
    async fn two_steps_completed_are_two_events_and_a_repeat_is_a_series() {
        let client = fake_client().await;
        let hook = EventRecorderHook::new(client.clone(), "wf-operator", "example.com/v1", "Db");
        let mut rt = runtime();
        let mut second = rt.running_steps[0].clone();
        second.step_name = "CreatePods".into();
        rt.running_steps.push(second);
        let key = ResourceKey::new("ns", "c1");
        for step in [0, 1, 1] {
            assert!(
                hook.publish(
                    &event(&rt, &key, Some(step), None),
                    Transition::StepCompleted
                )
                .await
            );
        }
        let got = events(&client, "ns").await;
        let notes: Vec<(Option<&str>, i32)> = got
            .iter()
            .map(|e| (e.note.as_deref(), e.series.as_ref().map_or(1, |s| s.count)))
            .collect();
        assert_eq!(
            notes,
            [
                (Some("flow=CreateCluster step=InitMeta"), 1),
                (Some("flow=CreateCluster step=CreatePods"), 2),
            ]
        );
    }

    #[tokio::test]
    async fn events_past_the_rate_limit_are_dropped() {
        let client = fake_client().await;
        let hook = EventRecorderHook::new(client.clone(), "wf-operator", "example.com/v1", "Db")
            .with_rate_limit(2, Duration::from_secs(3600));
        let rt = runtime();
        let key = ResourceKey::new("ns", "c1");
        let other = ResourceKey::new("ns", "c2");
        let mut published = vec![];
        for transition in [
            Transition::FlowStarted,
            Transition::StepCompleted,
            Transition::StepFailed,
            Transition::FlowInterrupted,
        ] {
            published.push(
                hook.publish(&event(&rt, &key, Some(0), None), transition)
                    .await,
            );
        }
        assert_eq!(published, [true, true, false, false]);
        assert!(
            hook.publish(&event(&rt, &other, None, None), Transition::FlowStarted)
                .await
        );
        let got = events(&client, "ns").await;
        let reasons: Vec<(Option<&str>, Option<&str>)> = got
            .iter()
            .map(|e| {
                let name = e.regarding.as_ref().and_then(|r| r.name.as_deref());
                (name, e.reason.as_deref())
            })
            .collect();
        assert_eq!(reasons.len(), 3, "{reasons:?}");
        assert!(reasons.contains(&(Some("c1"), Some("WF_FlowStarted"))));
        assert!(reasons.contains(&(Some("c1"), Some("WF_StepCompleted"))));
        assert!(reasons.contains(&(Some("c2"), Some("WF_FlowStarted"))));
    }
}
