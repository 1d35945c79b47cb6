//! Deletion on the simulators: `release_for_deletion` releases the shared volume through
//! the storage manager, then removes the cluster manager, `Pending` until each is done,
//! and converges when asked again.

mod support;

use shared_storage::ports::sim::SimConfig;
use shared_storage::ports::{Progress, PvcRef};
use support::{Harness, NAME, NS};

fn pvc() -> PvcRef {
    PvcRef {
        namespace: NS.into(),
        name: "pvc-c1".into(),
    }
}

/// Calls `release_for_deletion` until it is done; every outcome in order.
async fn release(h: &Harness) -> Vec<Progress> {
    let mut outcomes = Vec::new();
    for _ in 0..20 {
        let outcome =
            h.op.service
                .release_for_deletion(&h.cluster_ref())
                .await
                .expect("no error");
        let done = outcome.is_done();
        outcomes.push(outcome);
        if done {
            return outcomes;
        }
    }
    panic!("never done: {outcomes:?}");
}

#[tokio::test]
async fn a_deleted_cluster_releases_its_volume_then_removes_its_cm_pending_until_done() {
    let config = SimConfig {
        ready_after_polls: 2,
        ..SimConfig::default()
    };
    let h = Harness::created(config, 1).await;
    assert_eq!(
        h.sim.storage(&pvc()).and_then(|s| s.owner).as_deref(),
        Some(NAME)
    );
    assert!(h.sim.cm(&h.cluster_ref()).is_some());
    assert!(
        h.sim.delete_cluster(NS, NAME),
        "marked for deletion (finalizer)"
    );
    h.sim.clear_call_log();

    let outcomes = release(&h).await;

    assert!(
        outcomes.iter().filter(|o| !o.is_done()).count() >= 2,
        "the release and the removal each wait: {outcomes:?}"
    );
    let storage = h.sim.storage(&pvc()).expect("known volume");
    assert_eq!(storage.owner, None, "the volume is free");
    assert_eq!(storage.write_node, None);
    assert!(h.sim.cm(&h.cluster_ref()).is_none(), "the CM is gone");
    // The CM is not touched until the volume is released (each later ask re-checks the
    // volume first, which is then free at once).
    let calls: Vec<_> = h
        .sim
        .call_log()
        .iter()
        .filter(|c| c.port != "clusters")
        .map(|c| c.op)
        .collect();
    let first_remove = calls
        .iter()
        .position(|op| *op == "remove")
        .expect("removed");
    assert!(first_remove >= 2, "the release waited first: {calls:?}");
    assert!(
        calls[..first_remove].iter().all(|op| *op == "release"),
        "{calls:?}"
    );
    // The service never writes the cluster: the finalizer is the caller's to remove.
    let cr = h.cr();
    assert!(cr.metadata.deletion_timestamp.is_some());
    assert_eq!(
        cr.metadata.finalizers.as_deref(),
        Some(&[shared_storage::crd::FINALIZER.to_owned()][..])
    );
}

#[tokio::test]
async fn asking_again_after_the_release_is_done_at_once_and_changes_nothing() {
    let h = Harness::created(SimConfig::default(), 0).await;
    assert!(h.sim.delete_cluster(NS, NAME));
    release(&h).await;
    let storage = h.sim.storage(&pvc());

    let again = release(&h).await;

    assert_eq!(
        again,
        [Progress::Done(())],
        "a second ensure is done on its first call"
    );
    assert_eq!(h.sim.storage(&pvc()), storage);
    assert!(h.sim.cm(&h.cluster_ref()).is_none());
}

#[tokio::test]
async fn a_volume_another_cluster_took_over_is_left_to_it() {
    let h = Harness::created(SimConfig::default(), 0).await;
    let mut taken = h.sim.storage(&pvc()).expect("volume");
    taken.owner = Some("other".into());
    h.sim.set_storage(&pvc(), taken.clone());
    assert!(h.sim.delete_cluster(NS, NAME));

    release(&h).await;

    assert_eq!(
        h.sim.storage(&pvc()),
        Some(taken),
        "the other owner keeps it"
    );
    assert!(h.sim.cm(&h.cluster_ref()).is_none());
}
