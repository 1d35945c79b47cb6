//! Leader election against `kube-fake-client`, with paused tokio time: lease expiry is
//! judged on `tokio::time::Instant`, so takeovers are driven by `tokio::time::advance` and
//! nothing depends on the wall clock.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube_fake_client::{interceptor, ClientBuilder, Error as FakeError};
use tokio::time::{advance, Instant};
use wf_engine::CancellationToken;
use wf_kube::{LeaderElector, LeaderError, LeaseConfig};

const NS: &str = "operators";
const LEASE: &str = "db-operator";

/// Test switches read by the interceptors.
#[derive(Default)]
struct Faults {
    /// Fail every replace of the lease with a 500.
    fail_replace: AtomicBool,
    /// Replaces of the lease refused so far.
    failed_replaces: AtomicUsize,
    /// Replaces of the lease received so far.
    replaces: AtomicUsize,
    /// When set, every GET of the lease answers this (stale) object.
    frozen_get: Mutex<Option<serde_json::Value>>,
}

async fn cluster(objects: Vec<Lease>) -> (kube::Client, Arc<Faults>) {
    let faults = Arc::new(Faults::default());
    let (g, r) = (faults.clone(), faults.clone());
    let funcs = interceptor::Funcs::new()
        .get(move |ctx| {
            if ctx.name == LEASE {
                let frozen = g.frozen_get.lock().expect("lock").clone();
                return Ok(frozen);
            }
            Ok(None)
        })
        .replace(move |ctx| {
            if ctx.name == LEASE {
                r.replaces.fetch_add(1, Ordering::SeqCst);
            }
            if ctx.name == LEASE && r.fail_replace.load(Ordering::SeqCst) {
                r.failed_replaces.fetch_add(1, Ordering::SeqCst);
                return Err(FakeError::Internal("injected by the test".into()));
            }
            Ok(None)
        });
    let mut builder = ClientBuilder::new().with_interceptor_funcs(funcs);
    for object in objects {
        builder = builder.with_object(object);
    }
    (builder.build().await.expect("fake client"), faults)
}

fn config(identity: &str) -> LeaseConfig {
    LeaseConfig::new(NS, LEASE, identity)
}

fn elector(client: &kube::Client, identity: &str) -> LeaderElector {
    LeaderElector::new(client.clone(), config(identity)).expect("valid config")
}

async fn lease(client: &kube::Client) -> LeaseSpec {
    Api::<Lease>::namespaced(client.clone(), NS)
        .get(LEASE)
        .await
        .expect("lease")
        .spec
        .expect("spec")
}

async fn acquire(e: &LeaderElector) -> bool {
    e.try_acquire_or_renew().await.expect("attempt")
}

#[tokio::test(start_paused = true)]
async fn first_elector_creates_the_lease_and_leads() {
    let (client, _) = cluster(vec![]).await;
    let a = elector(&client, "a");
    assert!(!a.is_leader());
    assert!(acquire(&a).await);
    assert!(a.is_leader());
    let spec = lease(&client).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert_eq!(spec.lease_transitions, Some(0));
    assert!(spec.acquire_time.is_some());
    assert!(spec.renew_time.is_some());

    // A renewal keeps the holder, the acquire time and the transitions, and moves renewTime.
    advance(Duration::from_secs(2)).await;
    assert!(acquire(&a).await);
    let renewed = lease(&client).await;
    assert_eq!(renewed.holder_identity.as_deref(), Some("a"));
    assert_eq!(renewed.acquire_time, spec.acquire_time);
    assert_eq!(renewed.lease_transitions, Some(0));
    assert!(renewed.renew_time > spec.renew_time);
}

#[tokio::test(start_paused = true)]
async fn standby_is_not_leader_while_the_holder_renews() {
    let (client, _) = cluster(vec![]).await;
    let (a, b) = (elector(&client, "a"), elector(&client, "b"));
    assert!(acquire(&a).await);
    assert!(!acquire(&b).await);
    // 4 rounds of 10 s: 40 s in all, far beyond the 15 s lease, but each renewal is a change
    // that b observes, so the lease never expires for b.
    for _ in 0..4 {
        advance(Duration::from_secs(10)).await;
        assert!(acquire(&a).await);
        assert!(!acquire(&b).await);
        assert!(a.is_leader());
        assert!(!b.is_leader());
    }
    let spec = lease(&client).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_transitions, Some(0));
}

#[tokio::test(start_paused = true)]
async fn standby_takes_over_once_the_lease_expired_since_its_last_observation() {
    let (client, _) = cluster(vec![]).await;
    let (a, b) = (elector(&client, "a"), elector(&client, "b"));
    assert!(acquire(&a).await);
    advance(Duration::from_secs(5)).await;
    // b first observes a's record now; a stops renewing from here.
    assert!(!acquire(&b).await);
    advance(Duration::from_secs(14)).await;
    // 19 s after a's last renewal but only 14 s after b observed it: not expired for b.
    assert!(!acquire(&b).await);
    advance(Duration::from_secs(1)).await;
    assert!(acquire(&b).await);
    assert!(b.is_leader());
    let spec = lease(&client).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(1));

    // a wakes up: it sees another holder and is no longer the leader.
    assert!(a.is_leader(), "cached until the next attempt");
    assert!(!acquire(&a).await);
    assert!(!a.is_leader());
    assert_eq!(lease(&client).await.holder_identity.as_deref(), Some("b"));
}

#[tokio::test(start_paused = true)]
async fn expiry_ignores_the_remote_renew_time() {
    // A lease whose renewTime is an hour old (e.g. the holder's clock is behind): a newcomer
    // still waits a full lease duration from its own first observation.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let an_hour_ago =
        Timestamp::from_second(i64::try_from(now).expect("secs") - 3600).expect("time");
    let stale = Lease {
        metadata: ObjectMeta {
            name: Some(LEASE.into()),
            namespace: Some(NS.into()),
            ..ObjectMeta::default()
        },
        spec: Some(LeaseSpec {
            holder_identity: Some("ghost".into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(an_hour_ago)),
            renew_time: Some(MicroTime(an_hour_ago)),
            lease_transitions: Some(3),
            ..LeaseSpec::default()
        }),
    };
    let (client, _) = cluster(vec![stale]).await;
    let b = elector(&client, "b");
    assert!(!acquire(&b).await);
    advance(Duration::from_secs(14)).await;
    assert!(!acquire(&b).await);
    advance(Duration::from_secs(1)).await;
    assert!(acquire(&b).await);
    let spec = lease(&client).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(4));
}

#[tokio::test(start_paused = true)]
async fn step_down_lets_the_standby_acquire_at_once() {
    let (client, _) = cluster(vec![]).await;
    let (a, b) = (elector(&client, "a"), elector(&client, "b"));
    assert!(acquire(&a).await);
    assert!(!acquire(&b).await);
    a.step_down().await.expect("step down");
    assert!(!a.is_leader());
    let released = lease(&client).await;
    assert_eq!(released.holder_identity, None);
    assert_eq!(released.lease_duration_seconds, Some(1));
    // No time passes: the empty holder is free to take.
    assert!(acquire(&b).await);
    let spec = lease(&client).await;
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_duration_seconds, Some(15));
    assert_eq!(spec.lease_transitions, Some(1));
    // Stepping down when not the holder changes nothing.
    a.step_down().await.expect("no-op step down");
    assert_eq!(lease(&client).await.holder_identity.as_deref(), Some("b"));
}

#[tokio::test(start_paused = true)]
async fn racing_takeover_has_exactly_one_winner_and_the_loser_gets_false() {
    let (client, faults) = cluster(vec![]).await;
    let (a, b, c) = (
        elector(&client, "a"),
        elector(&client, "b"),
        elector(&client, "c"),
    );
    assert!(acquire(&a).await);
    assert!(!acquire(&b).await);
    assert!(!acquire(&c).await);
    advance(Duration::from_secs(16)).await;
    // Both candidates read the very same version of the expired lease, whoever goes first.
    let snapshot = Api::<Lease>::namespaced(client.clone(), NS)
        .get(LEASE)
        .await
        .expect("lease");
    *faults.frozen_get.lock().expect("lock") = Some(serde_json::to_value(&snapshot).expect("json"));
    let replaces_before = faults.replaces.load(Ordering::SeqCst);
    let (rb, rc) = tokio::join!(b.try_acquire_or_renew(), c.try_acquire_or_renew());
    let (rb, rc) = (rb.expect("b: no error"), rc.expect("c: no error"));
    assert!(rb ^ rc, "exactly one winner: b={rb} c={rc}");
    // Both wrote (the loser's replace got the 409): the loser did not just see a new holder.
    assert_eq!(faults.replaces.load(Ordering::SeqCst) - replaces_before, 2);
    *faults.frozen_get.lock().expect("lock") = None;

    let winner = if rb { "b" } else { "c" };
    let spec = lease(&client).await;
    assert_eq!(spec.holder_identity.as_deref(), Some(winner));
    assert_eq!(spec.lease_transitions, Some(1));
    assert_eq!(b.is_leader(), rb);
    assert_eq!(c.is_leader(), rc);
}

#[tokio::test(start_paused = true)]
async fn loop_publishes_leadership_steps_down_after_the_renew_deadline_and_releases_on_shutdown() {
    let (client, faults) = cluster(vec![]).await;
    let a = Arc::new(elector(&client, "a"));
    let shutdown = CancellationToken::new();
    let handle = Arc::clone(&a).spawn(shutdown.clone());
    let mut leading = handle.subscribe();
    leading.wait_for(|l| *l).await.expect("leads");
    assert!(handle.is_leader());
    assert!(a.is_leader());
    assert_eq!(lease(&client).await.holder_identity.as_deref(), Some("a"));

    // Several renewals go through while nothing fails.
    let renew_before = lease(&client).await.renew_time;
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(handle.is_leader());
    assert!(lease(&client).await.renew_time > renew_before);

    // Every renewal now fails: leadership is given up once the renew deadline has passed
    // since the last successful renewal, not before.
    faults.fail_replace.store(true, Ordering::SeqCst);
    let failing_since = Instant::now();
    leading.wait_for(|l| !*l).await.expect("steps down");
    let waited = failing_since.elapsed();
    let (deadline, retry) = (Duration::from_secs(10), Duration::from_secs(2));
    assert!(
        waited >= deadline - retry && waited <= deadline + retry,
        "stepped down after {waited:?}"
    );
    assert!(faults.failed_replaces.load(Ordering::SeqCst) >= 4);
    assert!(!handle.is_leader());
    assert!(!a.is_leader());

    // The API recovers: the loop, still a candidate, leads again.
    faults.fail_replace.store(false, Ordering::SeqCst);
    leading.wait_for(|l| *l).await.expect("leads again");

    // Shutdown while leading releases the lease and publishes false.
    shutdown.cancel();
    handle.join().await.expect("loop ends");
    assert!(!*leading.borrow());
    assert!(!a.is_leader());
    let spec = lease(&client).await;
    assert_eq!(spec.holder_identity, None);
    assert_eq!(spec.lease_duration_seconds, Some(1));
    // So a standby acquires at once.
    assert!(acquire(&elector(&client, "b")).await);
}

#[tokio::test(start_paused = true)]
async fn loop_loses_leadership_at_once_when_another_holder_shows_up() {
    let (client, _) = cluster(vec![]).await;
    let a = Arc::new(elector(&client, "a"));
    let shutdown = CancellationToken::new();
    let handle = Arc::clone(&a).spawn(shutdown.clone());
    let mut leading = handle.subscribe();
    leading.wait_for(|l| *l).await.expect("leads");
    // Someone overwrites the holder (as a takeover by a candidate would).
    let api = Api::<Lease>::namespaced(client.clone(), NS);
    let mut current = api.get(LEASE).await.expect("lease");
    if let Some(spec) = current.spec.as_mut() {
        spec.holder_identity = Some("z".into());
    }
    api.replace(LEASE, &Default::default(), &current)
        .await
        .expect("replace");
    let changed_at = Instant::now();
    leading.wait_for(|l| !*l).await.expect("loses");
    // Lost at the next attempt, well before the renew deadline.
    assert!(changed_at.elapsed() <= Duration::from_secs(2));
    shutdown.cancel();
    handle.join().await.expect("loop ends");
    // Not the holder: shutdown does not touch the lease.
    assert_eq!(lease(&client).await.holder_identity.as_deref(), Some("z"));
}

#[test]
fn invalid_configs_are_rejected() {
    let bad = [
        config("a").with_renew_deadline(Duration::from_secs(15)),
        config("a").with_retry_period(Duration::from_secs(10)),
        config("a").with_retry_period(Duration::ZERO),
        config("a").with_lease_duration(Duration::from_millis(500)),
        config(""),
        LeaseConfig::new(NS, "", "a"),
    ];
    for c in bad {
        match c.validate() {
            Err(LeaderError::InvalidConfig {
                namespace, name, ..
            }) => {
                assert_eq!(namespace, c.namespace);
                assert_eq!(name, c.name);
            }
            other => panic!("{c:?} accepted: {other:?}"),
        }
    }
    let e = config("a")
        .with_renew_deadline(Duration::from_secs(20))
        .validate()
        .expect_err("invalid");
    assert!(e.to_string().contains("operators/db-operator"), "{e}");
    assert!(e.to_string().contains("renew_deadline"), "{e}");
    config("a")
        .with_lease_duration(Duration::from_secs(60))
        .with_renew_deadline(Duration::from_secs(40))
        .with_retry_period(Duration::from_secs(5))
        .validate()
        .expect("valid");
}

#[tokio::test]
async fn elector_rejects_an_invalid_config() {
    let (client, _) = cluster(vec![]).await;
    let bad = config("a").with_retry_period(Duration::from_secs(11));
    assert!(matches!(
        LeaderElector::new(client, bad),
        Err(LeaderError::InvalidConfig { .. })
    ));
}
