//! Steps that restart instances, switch the RW on request, flush parameters, grow storage.

use super::{StepFn, StepFuture};
use crate::crd::annotations;
use crate::service::{Loaded, SharedStorageService};

/// The steps of this file.
pub(super) const STEPS: &[(&str, StepFn)] = &[
    ("RestartIns", restart_ins),
    ("RestartCluster", restart_cluster),
    ("RestartClusterIfNeed", restart_cluster_if_need),
    ("SwitchRw", switch_rw),
    ("ExtendStorageFs", extend_storage_fs),
    ("UpdateModifyClassMeta", update_modify_class_meta),
    ("FlushParamsIfNecessary", flush_params_if_necessary),
    ("FlushParams", flush_params),
];

fn restart_ins<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let target = c.annotation(annotations::RESTART_INS).map(str::to_owned);
        svc.restart_ins(&c.model, &mut c.markers, target.as_deref())
            .await
    })
}

fn restart_cluster<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        svc.restart_cluster(&c.model, &mut c.markers, "restartCluster")
            .await
    })
}

fn restart_cluster_if_need<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        if !annotations::is_true(c.annotation(annotations::FLUSH_PARAMS_RESTART_CLUSTER)) {
            return Ok(crate::ports::Progress::Done(()));
        }
        svc.restart_cluster(&c.model, &mut c.markers, "restartClusterIfNeed")
            .await
    })
}

fn switch_rw<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let target = c.annotation(annotations::SWITCH_RW).map(str::to_owned);
        svc.switch_rw(&mut c.model, target.as_deref()).await
    })
}

fn extend_storage_fs<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.grow_storage(&c.model, &mut c.markers).await })
}

fn update_modify_class_meta<'a>(
    svc: &'a SharedStorageService,
    c: &'a mut Loaded,
) -> StepFuture<'a> {
    Box::pin(async move { svc.update_modify_class_meta(&mut c.model).await })
}

fn flush_params_if_necessary<'a>(
    svc: &'a SharedStorageService,
    c: &'a mut Loaded,
) -> StepFuture<'a> {
    Box::pin(async move {
        svc.flush_params_if_necessary(&c.model, &mut c.markers)
            .await
    })
}

fn flush_params<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.flush_params(&c.model).await })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use chrono::{DateTime, TimeZone, Utc};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use mockall::predicate::eq;

    use super::super::testing::{Fixture, FixtureBuilder};
    use crate::crd::{annotations, ClassInfo};
    use crate::domain::{ContainerResources, LoadMode};
    use crate::ports::{
        ClassDef, CmInsStatus, CmStatus, EngineTarget, Health, ParamSet, ParamTemplate, ParamValue,
        PortError, Progress, TemplateEntry,
    };

    const DONE: Result<Progress, String> = Ok(Progress::Done(()));

    fn is_pending(outcome: &Result<Progress, String>) -> bool {
        matches!(outcome, Ok(Progress::Pending { .. }))
    }

    fn target(phys: &str, ins: &str, is_rw: bool) -> EngineTarget {
        EngineTarget {
            namespace: "ns".into(),
            pod_name: format!("c1-{phys}-{ins}"),
            ins_id: ins.into(),
            is_rw,
        }
    }

    fn rw() -> EngineTarget {
        target("1001", "1002", true)
    }

    fn ro4() -> EngineTarget {
        target("1003", "1004", false)
    }

    fn ro6() -> EngineTarget {
        target("1005", "1006", false)
    }

    fn unavailable(what: &str) -> PortError {
        PortError::Unavailable {
            port: "engine",
            message: what.to_owned(),
        }
    }

    /// Engine calls in order, as `<action> <insId>`.
    type Log = Arc<Mutex<Vec<String>>>;

    fn record(log: &Log, action: &str, t: &EngineTarget) {
        log.lock().unwrap().push(format!("{action} {}", t.ins_id));
    }

    fn take(log: &Log) -> Vec<String> {
        std::mem::take(&mut *log.lock().unwrap())
    }

    /// `$times` calls of engine method `$method` on `$target`, each logged as `$action`.
    macro_rules! logged {
        ($f:expr, $log:expr, $method:ident, $action:literal, $target:expr, $times:expr) => {{
            let log = $log.clone();
            $f.engine
                .$method()
                .with(eq($target))
                .times($times)
                .returning(move |t| {
                    record(&log, $action, t);
                    Ok(())
                });
        }};
    }

    /// Health probes, logged; instance `ins` answers `StartingUp` to its first `n` probes.
    fn expect_health(f: &mut FixtureBuilder, log: &Log, starting_up: &[(&str, usize)]) {
        let left = f.shared(
            starting_up
                .iter()
                .map(|(ins, n)| ((*ins).to_owned(), *n))
                .collect::<BTreeMap<_, _>>(),
        );
        let log = log.clone();
        f.engine.expect_health().returning(move |t| {
            record(&log, "health", t);
            match left.lock().unwrap().get_mut(&t.ins_id) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    Ok(Health::StartingUp)
                }
                _ => Ok(Health::Ok),
            }
        });
    }

    /// Every expectation RestartCluster needs, each action once.
    fn expect_cluster_restart(f: &mut FixtureBuilder, log: &Log, starting_up: &[(&str, usize)]) {
        for ro in [ro4(), ro6()] {
            logged!(f, log, expect_graceful_stop, "stop", ro.clone(), 1);
            logged!(f, log, expect_start, "start", ro, 1);
        }
        logged!(f, log, expect_restart, "restart", rw(), 1);
        expect_health(f, log, starting_up);
    }

    const CLUSTER_RESTART: [&str; 8] = [
        "stop 1004",
        "stop 1006",
        "restart 1002",
        "health 1002",
        "start 1004",
        "start 1006",
        "health 1004",
        "health 1006",
    ];

    const HEALTH_ALL: [&str; 3] = ["health 1002", "health 1004", "health 1006"];

    // --- RestartIns ---

    #[tokio::test]
    async fn restart_ins_restarts_the_named_instance_then_checks_its_health() {
        let mut f = Fixture::running().annotate(annotations::RESTART_INS, "1004");
        let log = f.shared(Vec::new());
        logged!(f, log, expect_restart, "restart", ro4(), 1);
        expect_health(&mut f, &log, &[]);
        let f = f.build();
        assert_eq!(f.run("RestartIns").await, DONE);
        assert_eq!(take(&log), ["restart 1004", "health 1004"]);
        assert_eq!(f.markers(), ["0/restartIns:1004"]);
    }

    #[tokio::test]
    async fn restart_ins_is_idempotent() {
        let mut f = Fixture::running().annotate(annotations::RESTART_INS, "1002");
        let log = f.shared(Vec::new());
        logged!(f, log, expect_restart, "restart", rw(), 1);
        expect_health(&mut f, &log, &[]);
        let f = f.build();
        assert_eq!(f.run("RestartIns").await, DONE);
        take(&log);
        assert_eq!(f.run("RestartIns").await, DONE);
        assert_eq!(take(&log), ["health 1002"], "a re-run only checks health");
    }

    #[tokio::test]
    async fn restart_ins_waits_while_the_engine_starts_up() {
        let mut f = Fixture::running().annotate(annotations::RESTART_INS, "1006");
        let log = f.shared(Vec::new());
        logged!(f, log, expect_restart, "restart", ro6(), 1);
        expect_health(&mut f, &log, &[("1006", 2)]);
        let f = f.build();
        assert!(is_pending(&f.run("RestartIns").await));
        assert!(is_pending(&f.run("RestartIns").await));
        assert_eq!(f.run("RestartIns").await, DONE);
        assert_eq!(
            take(&log),
            ["restart 1006", "health 1006", "health 1006", "health 1006"]
        );
    }

    #[tokio::test]
    async fn restart_ins_with_an_unknown_or_missing_id_is_a_noop() {
        // No engine expectations: any engine call would panic.
        let f = Fixture::running()
            .annotate(annotations::RESTART_INS, "9999")
            .build();
        assert_eq!(f.run("RestartIns").await, DONE);
        assert_eq!((f.spec_writes(), f.status_writes()), (0, 0));

        let f = Fixture::running().build();
        assert_eq!(f.run("RestartIns").await, DONE, "no restartIns annotation");
        assert_eq!((f.spec_writes(), f.status_writes()), (0, 0));
    }

    #[tokio::test]
    async fn restart_ins_restarts_again_in_a_later_run() {
        let mut f = Fixture::running().annotate(annotations::RESTART_INS, "1004");
        let log = f.shared(Vec::new());
        logged!(f, log, expect_restart, "restart", ro4(), 2);
        expect_health(&mut f, &log, &[]);
        let f = f.build();
        assert_eq!(f.run_in("RestartIns", 1).await, DONE);
        assert_eq!(f.run_in("RestartIns", 1).await, DONE);
        assert_eq!(
            f.run_in("RestartIns", 2).await,
            DONE,
            "run 1's marker does not suppress run 2's restart"
        );
        assert_eq!(
            take(&log),
            [
                "restart 1004",
                "health 1004",
                "health 1004",
                "restart 1004",
                "health 1004"
            ]
        );
        assert_eq!(f.markers(), ["1/restartIns:1004", "2/restartIns:1004"]);
    }

    /// Known bug outside this branch's files: the engine-facing `ServiceStep::init`
    /// (`steps/mod.rs`) loads the cluster without `Loaded::for_run(ctx.run_seq())`, so every
    /// run reads run 0's markers and an interrupted run's markers (never cleaned) suppress a
    /// later run's restart. Un-ignore once `init` scopes the markers.
    #[tokio::test]
    async fn engine_step_scopes_progress_markers_to_its_run() {
        use wf_engine::{CancellationToken, JsonMap, Step, StepContext, StepOutcome};
        let mut f = Fixture::running().annotate(annotations::RESTART_INS, "1004");
        f.engine
            .expect_restart()
            .with(eq(ro4()))
            .times(2)
            .returning(|_| Ok(()));
        f.engine.expect_health().returning(|_| Ok(Health::Ok));
        let f = f.build();
        let service = Arc::new(f.service.clone());
        let (name, body) = super::STEPS[0];
        for seq in [1, 2] {
            let values = JsonMap::from_iter([
                ("name".to_owned(), "c1".into()),
                ("namespace".to_owned(), "ns".into()),
            ]);
            let ctx = StepContext::new(
                "SharedStorageClusterRestartIns",
                name,
                values,
                "name",
                "namespace",
            )
            .with_run(seq);
            let mut step = super::super::ServiceStep::new(service.clone(), name, body);
            step.init(&ctx).await.unwrap();
            assert!(matches!(
                step.do_step(&CancellationToken::new()).await,
                Ok(StepOutcome::Done)
            ));
        }
    }

    // --- RestartCluster ---

    #[tokio::test]
    async fn restart_cluster_stops_ros_restarts_rw_starts_ros_then_checks_health() {
        let mut f = Fixture::running();
        let log = f.shared(Vec::new());
        expect_cluster_restart(&mut f, &log, &[]);
        let f = f.build();
        assert_eq!(f.run("RestartCluster").await, DONE);
        assert_eq!(take(&log), CLUSTER_RESTART);
        assert_eq!(
            f.markers(),
            [
                "0/restartCluster:1002",
                "0/restartCluster:start-ros",
                "0/restartCluster:stop-ros"
            ]
        );
    }

    #[tokio::test]
    async fn restart_cluster_is_idempotent() {
        let mut f = Fixture::running();
        let log = f.shared(Vec::new());
        expect_cluster_restart(&mut f, &log, &[]);
        let f = f.build();
        assert_eq!(f.run("RestartCluster").await, DONE);
        take(&log);
        let writes = f.spec_writes();
        assert_eq!(f.run("RestartCluster").await, DONE);
        assert_eq!(take(&log), HEALTH_ALL, "a re-run only checks health");
        assert_eq!(f.spec_writes(), writes, "no new marker");
    }

    #[tokio::test]
    async fn restart_cluster_waits_for_the_rw_before_starting_the_ros_and_for_the_ros() {
        let mut f = Fixture::running();
        let log = f.shared(Vec::new());
        expect_cluster_restart(&mut f, &log, &[("1002", 1), ("1006", 1)]);
        let f = f.build();
        assert!(is_pending(&f.run("RestartCluster").await));
        assert_eq!(
            take(&log),
            ["stop 1004", "stop 1006", "restart 1002", "health 1002"],
            "the ROs stay stopped while the RW starts up"
        );
        assert!(is_pending(&f.run("RestartCluster").await));
        assert_eq!(
            take(&log),
            [
                "health 1002",
                "start 1004",
                "start 1006",
                "health 1004",
                "health 1006"
            ]
        );
        assert_eq!(f.run("RestartCluster").await, DONE);
        assert_eq!(take(&log), HEALTH_ALL);
    }

    #[tokio::test]
    async fn restart_cluster_forces_the_stop_of_an_ro_whose_graceful_stop_fails() {
        let mut f = Fixture::running();
        let log = f.shared(Vec::new());
        logged!(f, log, expect_graceful_stop, "stop", ro6(), 1);
        let l = log.clone();
        f.engine
            .expect_graceful_stop()
            .with(eq(ro4()))
            .times(1)
            .returning(move |t| {
                record(&l, "stop", t);
                Err(unavailable("exec timed out"))
            });
        logged!(f, log, expect_force_stop, "kill", ro4(), 1);
        for ro in [ro4(), ro6()] {
            logged!(f, log, expect_start, "start", ro, 1);
        }
        logged!(f, log, expect_restart, "restart", rw(), 1);
        expect_health(&mut f, &log, &[]);
        let f = f.build();
        assert_eq!(f.run("RestartCluster").await, DONE);
        assert_eq!(
            take(&log)[..4],
            ["stop 1004", "kill 1004", "stop 1006", "restart 1002"]
        );
    }

    #[tokio::test]
    async fn weakness_25_restart_cluster_does_not_repeat_stops_or_the_rw_restart_on_a_rerun() {
        let mut f = Fixture::running();
        let log = f.shared(Vec::new());
        for ro in [ro4(), ro6()] {
            logged!(f, log, expect_graceful_stop, "stop", ro, 1);
        }
        logged!(f, log, expect_restart, "restart", rw(), 1);
        logged!(f, log, expect_start, "start", ro4(), 2);
        let failed_once = f.shared(false);
        let l = log.clone();
        f.engine
            .expect_start()
            .with(eq(ro6()))
            .times(2)
            .returning(move |t| {
                record(&l, "start", t);
                let mut failed = failed_once.lock().unwrap();
                if *failed {
                    Ok(())
                } else {
                    *failed = true;
                    Err(unavailable("exec failed"))
                }
            });
        expect_health(&mut f, &log, &[]);
        let f = f.build();
        assert!(f.run("RestartCluster").await.is_err());
        take(&log);
        assert_eq!(f.run("RestartCluster").await, DONE);
        assert_eq!(
            take(&log),
            [
                "health 1002",
                "start 1004",
                "start 1006",
                "health 1004",
                "health 1006"
            ],
            "the re-run neither stops the ROs nor restarts the RW again"
        );
    }

    // --- RestartClusterIfNeed ---

    #[tokio::test]
    async fn restart_cluster_if_need_without_the_annotation_is_a_noop() {
        // No engine expectations: any engine call would panic.
        let f = Fixture::running().build();
        assert_eq!(f.run("RestartClusterIfNeed").await, DONE);
        let f = Fixture::running()
            .annotate(annotations::FLUSH_PARAMS_RESTART_CLUSTER, "false")
            .build();
        assert_eq!(f.run("RestartClusterIfNeed").await, DONE);
        assert_eq!(f.spec_writes(), 0);
    }

    #[tokio::test]
    async fn restart_cluster_if_need_restarts_the_cluster_a_flush_asked_for() {
        let mut f = Fixture::running().annotate(annotations::FLUSH_PARAMS_RESTART_CLUSTER, "true");
        let log = f.shared(Vec::new());
        expect_cluster_restart(&mut f, &log, &[]);
        let f = f.build();
        assert_eq!(f.run("RestartClusterIfNeed").await, DONE);
        assert_eq!(take(&log), CLUSTER_RESTART);
        assert!(f
            .markers()
            .iter()
            .all(|m| m.starts_with("0/restartClusterIfNeed:")));
    }

    #[tokio::test]
    async fn restart_cluster_if_need_is_idempotent() {
        let mut f = Fixture::running().annotate(annotations::FLUSH_PARAMS_RESTART_CLUSTER, "true");
        let log = f.shared(Vec::new());
        expect_cluster_restart(&mut f, &log, &[("1004", 1)]);
        let f = f.build();
        assert!(is_pending(&f.run("RestartClusterIfNeed").await));
        assert_eq!(take(&log), CLUSTER_RESTART[..7], "waits for 1004");
        assert_eq!(f.run("RestartClusterIfNeed").await, DONE);
        assert_eq!(take(&log), HEALTH_ALL, "a re-run only checks health");
        assert_eq!(f.run("RestartClusterIfNeed").await, DONE);
        assert_eq!(take(&log), HEALTH_ALL);
    }

    // --- SwitchRw ---

    const RW_EP: &str = "192.168.0.1:5432";
    const RO4_EP: &str = "192.168.0.2:5432";
    const RO6_EP: &str = "192.168.0.3:5432";

    /// A cluster manager whose RW endpoint is the returned cell; RO 1004 (while not the RW)
    /// is in phase `ro4_phase`, everything else RUNNING.
    fn expect_cm(f: &mut FixtureBuilder, ro4_phase: &'static str) -> Arc<Mutex<String>> {
        let leader = f.shared(RW_EP.to_owned());
        let read = leader.clone();
        f.cm.expect_status().returning(move |_| {
            let leader = read.lock().unwrap().clone();
            let ins = |endpoint: &str| CmInsStatus {
                endpoint: endpoint.to_owned(),
                phase: if endpoint == RO4_EP && endpoint != leader {
                    ro4_phase
                } else {
                    "RUNNING"
                }
                .to_owned(),
                ..CmInsStatus::default()
            };
            Ok(CmStatus {
                phase: "RUNNING".into(),
                ha_enabled: false,
                rw: Some(ins(&leader)),
                ro: [RW_EP, RO4_EP, RO6_EP]
                    .into_iter()
                    .filter(|e| *e != leader)
                    .map(ins)
                    .collect(),
            })
        });
        leader
    }

    /// One switchover from the RW to RO 1004, which the CM carries out at once.
    fn expect_switchover_to_ro4(f: &mut FixtureBuilder, leader: &Arc<Mutex<String>>) {
        let write = leader.clone();
        f.cm.expect_switchover()
            .with(eq(f.cluster.clone()), eq(RW_EP), eq(RO4_EP))
            .times(1)
            .returning(move |_, _, to| {
                *write.lock().unwrap() = to.to_owned();
                Ok(())
            });
    }

    fn new_rw() -> EngineTarget {
        target("1003", "1004", true)
    }

    #[tokio::test]
    async fn switch_rw_switches_over_to_the_named_ro_and_saves_the_new_rw() {
        let mut f = Fixture::running().annotate(annotations::SWITCH_RW, "1004");
        let leader = expect_cm(&mut f, "RUNNING");
        expect_switchover_to_ro4(&mut f, &leader);
        f.engine
            .expect_health()
            .with(eq(new_rw()))
            .returning(|_| Ok(Health::Ok));
        let f = f.build();
        assert!(is_pending(&f.run("SwitchRw").await), "switchover requested");
        assert_eq!(f.run("SwitchRw").await, DONE);
        let status = f.stored().status.unwrap();
        assert_eq!(status.leader_instance_id, "1004");
        assert_eq!(status.leader_instance_host, "node-2");
        assert_eq!(status.db_instance_status["1004"].ins_type, "rw");
        assert_eq!(status.db_instance_status["1002"].ins_type, "ro");
        assert_eq!(status.db_instance_status["1006"].ins_type, "ro");
    }

    #[tokio::test]
    async fn switch_rw_is_idempotent() {
        let mut f = Fixture::running().annotate(annotations::SWITCH_RW, "1004");
        let leader = expect_cm(&mut f, "RUNNING");
        expect_switchover_to_ro4(&mut f, &leader);
        f.engine
            .expect_health()
            .with(eq(new_rw()))
            .returning(|_| Ok(Health::Ok));
        let f = f.build();
        assert!(is_pending(&f.run("SwitchRw").await));
        assert_eq!(f.run("SwitchRw").await, DONE);
        let writes = (f.spec_writes(), f.status_writes());
        assert_eq!(f.run("SwitchRw").await, DONE);
        assert_eq!(f.run("SwitchRw").await, DONE);
        assert_eq!((f.spec_writes(), f.status_writes()), writes);
        assert_eq!(f.stored().status.unwrap().leader_instance_id, "1004");
    }

    #[tokio::test]
    async fn switch_rw_waits_while_the_target_is_not_running_in_the_cm() {
        // No switchover expectation: a switchover would panic.
        let mut f = Fixture::running().annotate(annotations::SWITCH_RW, "1004");
        expect_cm(&mut f, "STARTING");
        let f = f.build();
        assert!(is_pending(&f.run("SwitchRw").await));
        assert!(is_pending(&f.run("SwitchRw").await));
        assert_eq!(f.stored().status.unwrap().leader_instance_id, "1002");
    }

    #[tokio::test]
    async fn switch_rw_keeps_waiting_for_the_new_rw_health_on_a_rerun() {
        let mut f = Fixture::running().annotate(annotations::SWITCH_RW, "1004");
        let leader = expect_cm(&mut f, "RUNNING");
        expect_switchover_to_ro4(&mut f, &leader);
        let log = f.shared(Vec::new());
        expect_health(&mut f, &log, &[("1004", 2)]);
        let f = f.build();
        assert!(is_pending(&f.run("SwitchRw").await), "switchover requested");
        assert!(is_pending(&f.run("SwitchRw").await), "swapped, starting up");
        assert_eq!(f.stored().status.unwrap().leader_instance_id, "1004");
        assert!(
            is_pending(&f.run("SwitchRw").await),
            "the new RW is still starting up: not done yet"
        );
        assert_eq!(f.run("SwitchRw").await, DONE);
        assert_eq!(take(&log), ["health 1004", "health 1004", "health 1004"]);
    }

    #[tokio::test]
    async fn switch_rw_to_the_current_leader_is_a_noop() {
        // No cluster-manager expectations: a status read or switchover would panic.
        let mut f = Fixture::running().annotate(annotations::SWITCH_RW, "1002");
        f.engine
            .expect_health()
            .with(eq(rw()))
            .returning(|_| Ok(Health::Ok));
        let f = f.build();
        assert_eq!(f.run("SwitchRw").await, DONE);
        assert_eq!((f.spec_writes(), f.status_writes()), (0, 0));
    }

    #[tokio::test]
    async fn weakness_26_switch_rw_to_a_target_that_is_not_an_ro_is_refused_at_once() {
        // No cluster-manager or engine expectations: any call would panic.
        for value in ["9999", "", "node-2"] {
            let f = Fixture::running()
                .annotate(annotations::SWITCH_RW, value)
                .build();
            assert_eq!(f.run("SwitchRw").await, DONE, "switchRw={value:?}");
            assert_eq!((f.spec_writes(), f.status_writes()), (0, 0));
            assert_eq!(f.stored().status.unwrap().leader_instance_id, "1002");
        }
    }

    // --- ExtendStorageFs ---

    #[tokio::test]
    async fn extend_storage_fs_grows_every_ro_then_the_rw() {
        let mut f = Fixture::running();
        let log = f.shared(Vec::new());
        for t in [ro4(), ro6(), rw()] {
            logged!(f, log, expect_grow_storage, "grow", t, 1);
        }
        let f = f.build();
        assert_eq!(f.run("ExtendStorageFs").await, DONE);
        assert_eq!(take(&log), ["grow 1004", "grow 1006", "grow 1002"]);
    }

    #[tokio::test]
    async fn extend_storage_fs_is_idempotent() {
        let mut f = Fixture::running();
        let log = f.shared(Vec::new());
        for t in [ro4(), ro6(), rw()] {
            logged!(f, log, expect_grow_storage, "grow", t, 1);
        }
        let f = f.build();
        assert_eq!(f.run("ExtendStorageFs").await, DONE);
        let writes = f.spec_writes();
        assert_eq!(f.run("ExtendStorageFs").await, DONE);
        assert_eq!(f.spec_writes(), writes);
        assert_eq!(take(&log).len(), 3);
    }

    #[tokio::test]
    async fn weakness_25_grow_is_not_repeated_on_a_rerun_after_a_failure() {
        let mut f = Fixture::running();
        let log = f.shared(Vec::new());
        logged!(f, log, expect_grow_storage, "grow", ro4(), 1);
        logged!(f, log, expect_grow_storage, "grow", rw(), 1);
        let failed_once = f.shared(false);
        let l = log.clone();
        f.engine
            .expect_grow_storage()
            .with(eq(ro6()))
            .times(2)
            .returning(move |t| {
                record(&l, "grow", t);
                let mut failed = failed_once.lock().unwrap();
                if *failed {
                    Ok(())
                } else {
                    *failed = true;
                    Err(unavailable("grow_pfs failed"))
                }
            });
        let f = f.build();
        assert!(f.run("ExtendStorageFs").await.is_err());
        assert_eq!(f.run("ExtendStorageFs").await, DONE);
        assert_eq!(
            take(&log),
            ["grow 1004", "grow 1006", "grow 1006", "grow 1002"],
            "1004 is not grown twice"
        );
    }

    // --- parameters ---

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, hour, 0, 0).unwrap()
    }

    /// A parameter set of `(name, value, hour of update)`.
    fn pset(values: &[(&str, &str, u32)], flushed: Option<u32>) -> ParamSet {
        ParamSet {
            params: values
                .iter()
                .map(|(name, value, hour)| {
                    (
                        (*name).to_owned(),
                        ParamValue {
                            name: (*name).to_owned(),
                            value: (*value).to_owned(),
                            update_time: Some(at(*hour)),
                            inoperative_value: false,
                        },
                    )
                })
                .collect(),
            latest_flush_time: flushed.map(at),
        }
    }

    fn values(set: &ParamSet) -> BTreeMap<String, String> {
        set.params
            .iter()
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect()
    }

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// `$times` parameter updates of `$target` with `$values`, logged as
    /// `params <insId> k=v,...`.
    fn expect_update_params(
        f: &mut FixtureBuilder,
        log: &Log,
        t: EngineTarget,
        values: BTreeMap<String, String>,
        times: usize,
    ) {
        let log = log.clone();
        f.engine
            .expect_update_params()
            .with(eq(t), eq(values))
            .times(times)
            .returning(move |t, v| {
                let kv: Vec<String> = v.iter().map(|(k, v)| format!("{k}={v}")).collect();
                record(&log, &format!("params {}", kv.join(",")), t);
                Ok(())
            });
    }

    // --- UpdateModifyClassMeta ---

    const MODIFY_CLASS: LoadMode = LoadMode {
        modify_class: true,
        upgrade: false,
    };

    /// A class change from `polar.o.x4.medium` (max_connections 100, work_mem 4MB) to
    /// `polar.o.x4.large` (200, 8MB, engine 4 cores / 16Gi); the user changed work_mem.
    fn class_change() -> (FixtureBuilder, Arc<Mutex<ParamSet>>) {
        let mut f = Fixture::running().edit(|cr| {
            cr.spec.class_info_modify_to = ClassInfo {
                class_name: "polar.o.x4.large".into(),
                ..ClassInfo::default()
            }
        });
        let user = f.shared(pset(
            &[("max_connections", "100", 1), ("work_mem", "64MB", 2)],
            Some(3),
        ));
        let read = user.clone();
        f.params
            .expect_user_params()
            .returning(move |_| Ok(Some(read.lock().unwrap().clone())));
        f.params.expect_class_params().returning(|class| {
            Ok(match class {
                "polar.o.x4.large" => map(&[("max_connections", "200"), ("work_mem", "8MB")]),
                _ => map(&[("max_connections", "100"), ("work_mem", "4MB")]),
            })
        });
        f.classes
            .expect_class()
            .with(eq("polar.o.x4.large"))
            .returning(|name| {
                Ok(ClassDef {
                    name: name.to_owned(),
                    cpu: "4".into(),
                    memory: "16Gi".into(),
                    resources: BTreeMap::from([(
                        "engine".to_owned(),
                        ContainerResources {
                            cpu: "4".into(),
                            mem_limit: "16Gi".into(),
                            config: String::new(),
                        },
                    )]),
                })
            });
        let write = user.clone();
        let cluster = f.cluster.clone();
        f.params
            .expect_save_user_params()
            .withf(move |c, p| {
                *c == cluster
                    && values(p) == map(&[("max_connections", "200"), ("work_mem", "64MB")])
            })
            .times(1)
            .returning(move |_, p| {
                *write.lock().unwrap() = p.clone();
                Ok(())
            });
        (f, user)
    }

    #[tokio::test]
    async fn update_modify_class_meta_applies_the_new_class_defaults_and_resources() {
        let (f, user) = class_change();
        let f = f.build();
        assert_eq!(
            f.run_mode("UpdateModifyClassMeta", MODIFY_CLASS).await,
            DONE
        );
        let user = user.lock().unwrap().clone();
        assert!(user.params["max_connections"].update_time > Some(at(3)));
        assert_eq!(
            user.params["work_mem"].update_time,
            Some(at(2)),
            "user's own"
        );
        assert_eq!(user.latest_flush_time, Some(at(3)));
        let spec = f.stored().spec;
        let engine = &spec.resource_additional.unwrap()["engine"];
        assert_eq!(engine.cpu_cores, Some(Quantity("4".into())));
        assert_eq!(engine.limit_memory, Some(Quantity("16Gi".into())));
        assert_eq!(
            spec.class_info.class_name, "polar.o.x4.medium",
            "the class itself changes at cleanup"
        );
    }

    #[tokio::test]
    async fn update_modify_class_meta_is_idempotent() {
        let (f, _) = class_change();
        let f = f.build();
        assert_eq!(
            f.run_mode("UpdateModifyClassMeta", MODIFY_CLASS).await,
            DONE
        );
        let writes = f.spec_writes();
        assert_eq!(
            f.run_mode("UpdateModifyClassMeta", MODIFY_CLASS).await,
            DONE
        );
        assert_eq!(f.spec_writes(), writes, "resources already saved");
    }

    #[tokio::test]
    async fn update_modify_class_meta_without_a_class_change_is_a_noop() {
        // No parameter or class expectations: any call would panic.
        let f = Fixture::running().build();
        assert_eq!(
            f.run_mode("UpdateModifyClassMeta", MODIFY_CLASS).await,
            DONE
        );
        let f = Fixture::running()
            .edit(|cr| cr.spec.class_info_modify_to.class_name = "polar.o.x4.large".into())
            .build();
        assert_eq!(
            f.run("UpdateModifyClassMeta").await,
            DONE,
            "not loaded in modify-class mode"
        );
        assert_eq!(f.spec_writes(), 0);
    }

    // --- FlushParamsIfNecessary ---

    /// Running and user parameters as `(name, value)`.
    fn connection_params(f: &mut FixtureBuilder, running: &[(&str, &str)], user: &[(&str, &str)]) {
        let running = pset(
            &running.iter().map(|(k, v)| (*k, *v, 1)).collect::<Vec<_>>(),
            None,
        );
        let user = pset(
            &user.iter().map(|(k, v)| (*k, *v, 2)).collect::<Vec<_>>(),
            None,
        );
        f.params
            .expect_running_params()
            .returning(move |_| Ok(Some(running.clone())));
        f.params
            .expect_user_params()
            .returning(move |_| Ok(Some(user.clone())));
    }

    #[tokio::test]
    async fn flush_params_if_necessary_lowers_the_rw_first() {
        let mut f = Fixture::running();
        connection_params(
            &mut f,
            &[
                ("max_connections", "200"),
                ("max_prepared_transactions", "1000"),
            ],
            &[("max_connections", "100")],
        );
        let log = f.shared(Vec::new());
        let values = map(&[
            ("max_connections", "100"),
            ("max_prepared_transactions", "800"),
        ]);
        expect_update_params(&mut f, &log, rw(), values, 1);
        logged!(f, log, expect_restart, "restart", rw(), 1);
        expect_health(&mut f, &log, &[]);
        let f = f.build();
        assert_eq!(f.run("FlushParamsIfNecessary").await, DONE);
        assert_eq!(
            take(&log),
            [
                "params max_connections=100,max_prepared_transactions=800 1002",
                "restart 1002",
                "health 1002"
            ]
        );
    }

    #[tokio::test]
    async fn flush_params_if_necessary_raises_every_ro_first() {
        let mut f = Fixture::running();
        connection_params(
            &mut f,
            &[("max_connections", "100")],
            &[("max_connections", "'300'")],
        );
        let log = f.shared(Vec::new());
        for ro in [ro4(), ro6()] {
            expect_update_params(
                &mut f,
                &log,
                ro.clone(),
                map(&[("max_connections", "300")]),
                1,
            );
            logged!(f, log, expect_restart, "restart", ro, 1);
        }
        expect_health(&mut f, &log, &[]);
        let f = f.build();
        assert_eq!(f.run("FlushParamsIfNecessary").await, DONE);
        assert_eq!(
            take(&log),
            [
                "params max_connections=300 1004",
                "restart 1004",
                "health 1004",
                "params max_connections=300 1006",
                "restart 1006",
                "health 1006"
            ]
        );
    }

    #[tokio::test]
    async fn flush_params_if_necessary_caps_rw_transactions_then_raises_the_ros() {
        let mut f = Fixture::running();
        connection_params(
            &mut f,
            &[
                ("max_connections", "100"),
                ("max_prepared_transactions", "1000"),
            ],
            &[("max_connections", "300")],
        );
        let log = f.shared(Vec::new());
        expect_update_params(
            &mut f,
            &log,
            rw(),
            map(&[("max_prepared_transactions", "800")]),
            1,
        );
        logged!(f, log, expect_restart, "restart", rw(), 1);
        for ro in [ro4(), ro6()] {
            expect_update_params(
                &mut f,
                &log,
                ro.clone(),
                map(&[("max_connections", "300")]),
                1,
            );
            logged!(f, log, expect_restart, "restart", ro, 1);
        }
        expect_health(&mut f, &log, &[]);
        let f = f.build();
        assert_eq!(f.run("FlushParamsIfNecessary").await, DONE);
        let calls = take(&log);
        assert_eq!(
            calls[..3],
            [
                "params max_prepared_transactions=800 1002",
                "restart 1002",
                "health 1002"
            ]
        );
        assert_eq!(calls.len(), 9);
    }

    #[tokio::test]
    async fn flush_params_if_necessary_with_equal_connections_is_a_noop() {
        // No engine expectations: any engine call would panic.
        let mut f = Fixture::running();
        connection_params(
            &mut f,
            &[
                ("max_connections", "100"),
                ("max_prepared_transactions", "800"),
            ],
            &[("max_connections", "100")],
        );
        let f = f.build();
        assert_eq!(f.run("FlushParamsIfNecessary").await, DONE);
        assert_eq!(f.spec_writes(), 0);
    }

    #[tokio::test]
    async fn flush_params_if_necessary_is_idempotent_across_waits() {
        let mut f = Fixture::running();
        connection_params(
            &mut f,
            &[("max_connections", "100")],
            &[("max_connections", "300")],
        );
        let log = f.shared(Vec::new());
        for ro in [ro4(), ro6()] {
            expect_update_params(
                &mut f,
                &log,
                ro.clone(),
                map(&[("max_connections", "300")]),
                1,
            );
            logged!(f, log, expect_restart, "restart", ro, 1);
        }
        expect_health(&mut f, &log, &[("1004", 1)]);
        let f = f.build();
        assert!(is_pending(&f.run("FlushParamsIfNecessary").await));
        assert_eq!(
            take(&log),
            [
                "params max_connections=300 1004",
                "restart 1004",
                "health 1004"
            ],
            "1006 waits for 1004"
        );
        assert_eq!(f.run("FlushParamsIfNecessary").await, DONE);
        assert_eq!(
            take(&log),
            [
                "health 1004",
                "params max_connections=300 1006",
                "restart 1006",
                "health 1006"
            ]
        );
        assert_eq!(f.run("FlushParamsIfNecessary").await, DONE);
        assert_eq!(take(&log), ["health 1004", "health 1006"]);
    }

    // --- FlushParams ---

    /// work_mem is dynamic, shared_buffers is not; both user-changeable.
    fn template() -> ParamTemplate {
        let entry = |default: &str, dynamic| TemplateEntry {
            default_value: default.to_owned(),
            user_changeable: true,
            dynamic,
        };
        ParamTemplate {
            entries: BTreeMap::from([
                ("work_mem".to_owned(), entry("4MB", true)),
                ("shared_buffers".to_owned(), entry("1GB", false)),
            ]),
        }
    }

    /// Running params 4MB / 1GB (at 1), user params `user` (at 2); the running params are a
    /// stateful store. Returns the store.
    fn flush_setup(f: &mut FixtureBuilder, user: &[(&str, &str)]) -> Arc<Mutex<ParamSet>> {
        let running = f.shared(pset(
            &[("work_mem", "4MB", 1), ("shared_buffers", "1GB", 1)],
            None,
        ));
        let read = running.clone();
        f.params
            .expect_running_params()
            .returning(move |_| Ok(Some(read.lock().unwrap().clone())));
        let user = pset(
            &user.iter().map(|(k, v)| (*k, *v, 2)).collect::<Vec<_>>(),
            None,
        );
        f.params
            .expect_user_params()
            .returning(move |_| Ok(Some(user.clone())));
        f.params.expect_template().returning(|| Ok(template()));
        running
    }

    fn expect_save_running(
        f: &mut FixtureBuilder,
        running: &Arc<Mutex<ParamSet>>,
        want: BTreeMap<String, String>,
    ) {
        let write = running.clone();
        f.params
            .expect_save_running_params()
            .withf(move |_, p| values(p) == want)
            .times(1)
            .returning(move |_, p| {
                *write.lock().unwrap() = p.clone();
                Ok(())
            });
    }

    #[tokio::test]
    async fn flush_params_pushes_changed_params_to_every_instance_without_restart() {
        let mut f = Fixture::running();
        let running = flush_setup(&mut f, &[("work_mem", "8MB"), ("shared_buffers", "1GB")]);
        let want = map(&[("shared_buffers", "1GB"), ("work_mem", "8MB")]);
        let log = f.shared(Vec::new());
        for t in [rw(), ro4(), ro6()] {
            expect_update_params(&mut f, &log, t, want.clone(), 1);
        }
        expect_save_running(&mut f, &running, want);
        let f = f.build();
        assert_eq!(f.run("FlushParams").await, DONE);
        assert_eq!(
            take(&log),
            [
                "params shared_buffers=1GB,work_mem=8MB 1002",
                "params shared_buffers=1GB,work_mem=8MB 1004",
                "params shared_buffers=1GB,work_mem=8MB 1006"
            ]
        );
        assert_eq!(
            f.annotation(annotations::FLUSH_PARAMS_RESTART_CLUSTER),
            None,
            "work_mem is dynamic"
        );
    }

    #[tokio::test]
    async fn flush_params_asks_for_a_cluster_restart_for_a_static_param() {
        let mut f = Fixture::running();
        let running = flush_setup(&mut f, &[("work_mem", "4MB"), ("shared_buffers", "2GB")]);
        let want = map(&[("shared_buffers", "2GB"), ("work_mem", "4MB")]);
        let log = f.shared(Vec::new());
        for t in [rw(), ro4(), ro6()] {
            expect_update_params(&mut f, &log, t, want.clone(), 1);
        }
        expect_save_running(&mut f, &running, want);
        let f = f.build();
        assert_eq!(f.run("FlushParams").await, DONE);
        assert_eq!(
            f.annotation(annotations::FLUSH_PARAMS_RESTART_CLUSTER)
                .as_deref(),
            Some("true")
        );
    }

    #[tokio::test]
    async fn flush_params_is_idempotent() {
        let mut f = Fixture::running();
        let running = flush_setup(&mut f, &[("work_mem", "4MB"), ("shared_buffers", "2GB")]);
        let want = map(&[("shared_buffers", "2GB"), ("work_mem", "4MB")]);
        let log = f.shared(Vec::new());
        for t in [rw(), ro4(), ro6()] {
            expect_update_params(&mut f, &log, t, want.clone(), 1);
        }
        expect_save_running(&mut f, &running, want);
        let f = f.build();
        assert_eq!(f.run("FlushParams").await, DONE);
        let writes = f.spec_writes();
        assert_eq!(f.run("FlushParams").await, DONE);
        assert_eq!(f.spec_writes(), writes);
        assert_eq!(take(&log).len(), 3, "no second push");
        assert_eq!(
            f.annotation(annotations::FLUSH_PARAMS_RESTART_CLUSTER)
                .as_deref(),
            Some("true"),
            "the restart request stays"
        );
    }

    #[tokio::test]
    async fn flush_params_with_nothing_changed_is_a_noop() {
        // No engine or save expectations: a push or a save would panic.
        let mut f = Fixture::running();
        flush_setup(&mut f, &[("work_mem", "4MB"), ("shared_buffers", "1GB")]);
        let f = f.build();
        assert_eq!(f.run("FlushParams").await, DONE);
        assert_eq!(f.spec_writes(), 0);
    }

    #[tokio::test]
    async fn weakness_25_flush_params_keeps_the_restart_request_after_a_crash_past_the_save() {
        let mut f = Fixture::running();
        let running = flush_setup(&mut f, &[("work_mem", "4MB"), ("shared_buffers", "2GB")]);
        let want = map(&[("shared_buffers", "2GB"), ("work_mem", "4MB")]);
        let log = f.shared(Vec::new());
        for t in [rw(), ro4(), ro6()] {
            expect_update_params(&mut f, &log, t, want.clone(), 1);
        }
        // The running params are written, then the operator dies before it goes on (the
        // error stands in for the crash).
        let write = running.clone();
        f.params
            .expect_save_running_params()
            .times(1)
            .returning(move |_, p| {
                *write.lock().unwrap() = p.clone();
                Err(unavailable("operator crashed"))
            });
        let f = f.build();
        assert!(f.run("FlushParams").await.is_err());
        assert_eq!(f.run("FlushParams").await, DONE, "nothing left to push");
        assert_eq!(
            f.annotation(annotations::FLUSH_PARAMS_RESTART_CLUSTER)
                .as_deref(),
            Some("true"),
            "the static change still gets its restart"
        );
    }
}
