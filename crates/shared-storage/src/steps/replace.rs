//! Steps that plan and carry out instance replacements, additions, moves and removals.

use super::{StepFn, StepFuture};
use crate::crd::annotations;
use crate::service::{migrate_target, Loaded, SharedStorageService};

/// The steps of this file.
pub(super) const STEPS: &[(&str, StepFn)] = &[
    ("GenerateTempRoIds", generate_temp_ro_ids),
    ("GenerateMigrateTempId", generate_migrate_temp_id),
    ("GenerateRebuildRoTempId", generate_rebuild_ro_temp_id),
    ("GenerateAddRoTempId", generate_add_ro_temp_id),
    ("InitTempRoMeta", init_temp_ro_meta),
    ("CreateTempRoForRw", create_temp_ro_for_rw),
    ("ConvertTempRoToRo", convert_temp_ro_to_ro),
    ("SwitchNewRoToRw", switch_new_ro_to_rw),
    ("DeleteOldRw", delete_old_rw),
    ("EnsureNewRoUpToDate", ensure_new_ro_up_to_date),
    ("EnsureRoMigrate", ensure_ro_migrate),
    ("StopOldRo", stop_old_ro),
    ("RemoveRo", remove_ro),
    ("CleanTempRoMeta", clean_temp_ro_meta),
    ("RemoveAllInsPod", remove_all_ins_pod),
];

fn generate_temp_ro_ids<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.generate_temp_ro_ids(&mut c.model).await })
}

fn generate_migrate_temp_id<'a>(
    svc: &'a SharedStorageService,
    c: &'a mut Loaded,
) -> StepFuture<'a> {
    Box::pin(async move {
        let migrate = c.annotation(annotations::MIGRATE).map(str::to_owned);
        svc.generate_migrate_temp_id(&mut c.model, migrate.as_deref())
            .await
    })
}

fn generate_rebuild_ro_temp_id<'a>(
    svc: &'a SharedStorageService,
    c: &'a mut Loaded,
) -> StepFuture<'a> {
    Box::pin(async move { svc.generate_rebuild_ro_temp_id(&mut c.model).await })
}

fn generate_add_ro_temp_id<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.generate_add_ro_temp_id(&mut c.model).await })
}

fn init_temp_ro_meta<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.init_temp_ro_meta(&mut c.model).await })
}

fn create_temp_ro_for_rw<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let migrate = c.annotation(annotations::MIGRATE).map(str::to_owned);
        svc.create_temp_ro_for_rw(&mut c.model, migrate.as_deref())
            .await
    })
}

fn convert_temp_ro_to_ro<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.convert_temp_ro_to_ro(&mut c.model).await })
}

fn switch_new_ro_to_rw<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.switch_new_ro_to_rw(&mut c.model).await })
}

fn delete_old_rw<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.delete_old_rw(&mut c.model).await })
}

fn ensure_new_ro_up_to_date<'a>(
    svc: &'a SharedStorageService,
    c: &'a mut Loaded,
) -> StepFuture<'a> {
    Box::pin(async move { svc.ensure_new_ros(&mut c.model, None).await })
}

fn ensure_ro_migrate<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let node = migrate_target(&c.model, c.annotation(annotations::MIGRATE));
        svc.ensure_new_ros(&mut c.model, node.as_deref()).await
    })
}

fn stop_old_ro<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.stop_old_ro(&mut c.model).await })
}

fn remove_ro<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let target = c.annotation(annotations::REMOVE_INS).map(str::to_owned);
        svc.remove_ro(&mut c.model, target.as_deref()).await
    })
}

fn clean_temp_ro_meta<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.clean_temp_ro_meta(&mut c.model).await })
}

fn remove_all_ins_pod<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.delete_all_instance_pods(&mut c.model).await })
}

#[cfg(test)]
mod tests {
    //! Each step against mocked ports: its effect, its idempotence (a second run changes
    //! nothing and repeats no work), its waiting paths and its interrupts.

    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::{Arc, Mutex};

    use mockall::predicate::eq;

    use super::super::testing::{Fixture, FixtureBuilder};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use crate::crd::{
        annotations, EngineStateRecord, InstanceStatus, MPDCluster, MPDClusterSpec,
        MPDClusterStatus, NetInfo,
    };
    use crate::domain::{interrupt, InsType};
    use crate::ports::{
        CmInsStatus, CmInstance, CmRole, CmStatus, EngineTarget, Health, InsPodSpec, PodFailure,
        PodProgress, PortError, Progress,
    };

    const DONE: Result<Progress, String> = Ok(Progress::Done(()));

    // ---- the stored object -------------------------------------------------------------

    /// The CM endpoint of the instance placed as number `n` (node-n, 192.168.0.n).
    fn ep(n: u8) -> String {
        format!("192.168.0.{n}:5432")
    }

    /// A status entry: placed on node-`n` (installed, RUNNING) or, with `n == 0`, as
    /// InitTempRoMeta creates it (no node, not installed).
    fn entry(phys: &str, ins: &str, ty: &str, n: u8, fs: &str) -> InstanceStatus {
        let mut e = InstanceStatus {
            physical_ins_id: phys.into(),
            ins_id: ins.into(),
            ins_name: ins.into(),
            pod_name: format!("c1-{phys}-{ins}"),
            pod_name_space: "ns".into(),
            net_info: NetInfo {
                working_host_ip: String::new(),
                working_port: 5432,
            },
            polar_fs_host_id: fs.into(),
            ins_type: ty.into(),
            ..InstanceStatus::default()
        };
        if n > 0 {
            e.node_name = format!("node-{n}");
            e.host_client_ip = format!("192.168.0.{n}");
            e.net_info.working_host_ip = format!("10.0.0.{n}");
            e.installed = true;
            e.current_state = EngineStateRecord {
                state: "RUNNING".into(),
                ..EngineStateRecord::default()
            };
        }
        e
    }

    fn set_annotation(cr: &mut MPDCluster, key: &str, value: &str) {
        cr.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(key.into(), value.into());
    }

    fn set_plan(cr: &mut MPDCluster, pairs: &[(&str, &str)]) {
        let plan: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        set_annotation(
            cr,
            annotations::TEMP_RO_IDS,
            &serde_json::to_string(&plan).unwrap(),
        );
    }

    fn entries(cr: &mut MPDCluster) -> &mut BTreeMap<String, InstanceStatus> {
        &mut cr.status.as_mut().unwrap().db_instance_status
    }

    fn put(cr: &mut MPDCluster, e: InstanceStatus) {
        entries(cr).insert(e.ins_id.clone(), e);
    }

    fn fail(cr: &mut MPDCluster, id: &str) {
        entries(cr).get_mut(id).unwrap().current_state.state = "FAILED".into();
    }

    /// ModifyClass/Upgrade after InitTempRoMeta: a planned, fresh temp RO per instance.
    fn planned_all() -> FixtureBuilder {
        Fixture::running().edit(|cr| {
            set_plan(cr, &[("1001", "2000"), ("1003", "2001"), ("1005", "2002")]);
            put(cr, entry("1001", "2000", "tempro", 0, "8"));
            put(cr, entry("1003", "2001", "tempro", 0, "9"));
            put(cr, entry("1005", "2002", "tempro", 0, "10"));
        })
    }

    /// After CreateTempRoForRw: the RW's replacement 2000 is installed on node-4.
    fn rw_replacement_installed() -> FixtureBuilder {
        planned_all().edit(|cr| put(cr, entry("1001", "2000", "tempro", 4, "8")))
    }

    /// After ConvertTempRoToRo: 2000 is an RO.
    fn rw_replacement_converted() -> FixtureBuilder {
        planned_all().edit(|cr| put(cr, entry("1001", "2000", "ro", 4, "8")))
    }

    /// After SwitchNewRoToRw: 2000 is the RW, the old RW 1002 an RO of the same slot.
    fn switched() -> FixtureBuilder {
        planned_all().edit(|cr| {
            put(cr, entry("1001", "2000", "rw", 4, "8"));
            entries(cr).get_mut("1002").unwrap().ins_type = "ro".into();
            let status = cr.status.as_mut().unwrap();
            status.leader_instance_id = "2000".into();
            status.leader_instance_host = "node-4".into();
        })
    }

    /// After DeleteOldRw.
    fn old_rw_deleted() -> FixtureBuilder {
        switched().edit(|cr| {
            entries(cr).remove("1002");
        })
    }

    fn pairs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    fn stored_plan(f: &Fixture) -> BTreeMap<String, String> {
        f.annotation(annotations::TEMP_RO_IDS)
            .map(|raw| serde_json::from_str(&raw).unwrap())
            .unwrap_or_default()
    }

    fn stored_entries(f: &Fixture) -> BTreeMap<String, InstanceStatus> {
        f.stored().status.unwrap().db_instance_status
    }

    /// insId -> insType of the stored entries.
    fn types(f: &Fixture) -> BTreeMap<String, String> {
        stored_entries(f)
            .into_iter()
            .map(|(id, e)| (id, e.ins_type))
            .collect()
    }

    fn stored_entry(f: &Fixture, id: &str) -> InstanceStatus {
        stored_entries(f)
            .remove(id)
            .unwrap_or_else(|| panic!("no entry {id}"))
    }

    /// Node, client IP, host IP and install mark of an entry.
    fn placement(e: &InstanceStatus) -> (&str, &str, &str, bool) {
        (
            e.node_name.as_str(),
            e.host_client_ip.as_str(),
            e.net_info.working_host_ip.as_str(),
            e.installed,
        )
    }

    /// What a comparison of the stored object looks at (MPDCluster has no `PartialEq`).
    fn snapshot(f: &Fixture) -> (ObjectMeta, MPDClusterSpec, Option<MPDClusterStatus>) {
        let cr = f.stored();
        (cr.metadata, cr.spec, cr.status)
    }

    fn leader(f: &Fixture) -> (String, String) {
        let status = f.stored().status.unwrap();
        (status.leader_instance_id, status.leader_instance_host)
    }

    fn follower_num(f: &Fixture) -> i32 {
        f.stored().spec.follower_num
    }

    fn writes(f: &Fixture) -> (usize, usize) {
        (f.spec_writes(), f.status_writes())
    }

    fn assert_interrupt(result: Result<Progress, String>, reason: &str) {
        match result {
            Err(e) => assert!(e.starts_with(&format!("{reason}: ")), "{e}"),
            other => panic!("expected the interrupt {reason}, got {other:?}"),
        }
    }

    fn assert_pending(result: Result<Progress, String>) {
        assert!(
            matches!(result, Ok(Progress::Pending { .. })),
            "expected Pending, got {result:?}"
        );
    }

    /// Runs `step` until it is done (at most 10 runs); the number of runs.
    async fn run_to_done(f: &Fixture, step: &str) -> usize {
        for run in 1..=10 {
            match f.run(step).await {
                Ok(Progress::Done(())) => return run,
                Ok(Progress::Pending { .. }) => {}
                Err(e) => panic!("{step}: {e}"),
            }
        }
        panic!("{step} not done after 10 runs")
    }

    // ---- a stateful world behind the CM, pod, engine and pfsd mocks --------------------

    /// What the mocked ports know. `log` records the calls that do work, in order.
    #[derive(Default)]
    struct World {
        cm_rw: Option<CmInsStatus>,
        cm_ro: Vec<CmInsStatus>,
        /// The CM phase of an instance just added.
        added_phase: String,
        added: Vec<CmInstance>,
        removed: Vec<CmInstance>,
        /// pod -> (node, n).
        pods: BTreeMap<String, (String, u8)>,
        next_n: u8,
        /// Overrides every `ensure_pod` answer.
        pod_answer: Option<PodProgress>,
        specs: Vec<InsPodSpec>,
        /// How many `delete_pod` calls answer Pending first.
        delete_pending: usize,
        delete_calls: Vec<String>,
        /// Pods whose engine is installed.
        engines: BTreeSet<String>,
        /// Overrides a healthy answer.
        health: Option<Health>,
        health_checks: Vec<EngineTarget>,
        stop_fails: bool,
        log: Vec<String>,
    }

    type Shared = Arc<Mutex<World>>;

    fn cm_ins(endpoint: String, phase: &str) -> CmInsStatus {
        CmInsStatus {
            endpoint,
            phase: phase.into(),
            ..CmInsStatus::default()
        }
    }

    fn log(w: &Shared) -> Vec<String> {
        w.lock().unwrap().log.clone()
    }

    fn count(w: &Shared, event: &str) -> usize {
        w.lock().unwrap().log.iter().filter(|e| *e == event).count()
    }

    fn cm_endpoints(w: &Shared) -> (Option<String>, Vec<String>) {
        let w = w.lock().unwrap();
        (
            w.cm_rw.as_ref().map(|i| i.endpoint.clone()),
            w.cm_ro.iter().map(|i| i.endpoint.clone()).collect(),
        )
    }

    /// Wires the CM, pods, engine and pfsd mocks of `f` to a world where every placed
    /// instance of the stored object has a pod with a running engine, and the CM knows the
    /// RW at `ep(rw)` and ROs at `ep(n)` for `ros`, all RUNNING. New pods go on node-5, ...
    /// (after the highest number in use), or on their target node.
    fn world(f: &mut FixtureBuilder, rw: u8, ros: &[u8]) -> Shared {
        let mut world = World {
            cm_rw: Some(cm_ins(ep(rw), "RUNNING")),
            cm_ro: ros.iter().map(|n| cm_ins(ep(*n), "RUNNING")).collect(),
            added_phase: "RUNNING".into(),
            ..World::default()
        };
        for e in
            f.cr.lock()
                .unwrap()
                .status
                .iter()
                .flat_map(|s| s.db_instance_status.values())
        {
            let n = e
                .host_client_ip
                .rsplit('.')
                .next()
                .and_then(|n| n.parse().ok());
            if let Some(n) = n {
                world
                    .pods
                    .insert(e.pod_name.clone(), (e.node_name.clone(), n));
                world.engines.insert(e.pod_name.clone());
                world.next_n = world.next_n.max(n + 1);
            }
        }
        let w = Arc::new(Mutex::new(world));
        let cluster = f.cluster.clone();

        let (s, c) = (w.clone(), cluster.clone());
        f.cm.expect_status().returning(move |got| {
            assert_eq!(*got, c);
            let w = s.lock().unwrap();
            Ok(CmStatus {
                phase: "RUNNING".into(),
                ha_enabled: false,
                rw: w.cm_rw.clone(),
                ro: w.cm_ro.clone(),
            })
        });
        let (s, c) = (w.clone(), cluster.clone());
        f.cm.expect_add_ins().returning(move |got, ins| {
            assert_eq!(*got, c);
            let mut guard = s.lock().unwrap();
            let w = &mut *guard;
            w.log.push(format!("add_ins {}", ins.pod_name));
            w.added.push(ins.clone());
            if w.cm_ro.iter().all(|i| i.endpoint != ins.endpoint()) {
                w.cm_ro.push(cm_ins(ins.endpoint(), &w.added_phase));
            }
            Ok(())
        });
        let (s, c) = (w.clone(), cluster.clone());
        f.cm.expect_remove_ins().returning(move |got, ins| {
            assert_eq!(*got, c);
            let mut guard = s.lock().unwrap();
            let w = &mut *guard;
            w.log.push(format!("remove_ins {}", ins.pod_name));
            w.removed.push(ins.clone());
            let endpoint = ins.endpoint();
            w.cm_ro.retain(|i| i.endpoint != endpoint);
            if w.cm_rw.as_ref().is_some_and(|i| i.endpoint == endpoint) {
                w.cm_rw = None;
            }
            Ok(())
        });
        let (s, c) = (w.clone(), cluster.clone());
        f.cm.expect_switchover().returning(move |got, from, to| {
            assert_eq!(*got, c);
            let mut guard = s.lock().unwrap();
            let w = &mut *guard;
            w.log.push(format!("switchover {from} -> {to}"));
            assert_eq!(w.cm_rw.as_ref().map(|i| i.endpoint.as_str()), Some(from));
            let at = w.cm_ro.iter().position(|i| i.endpoint == to).unwrap();
            let new_rw = w.cm_ro.remove(at);
            if let Some(old) = w.cm_rw.replace(new_rw) {
                w.cm_ro.push(old);
            }
            Ok(())
        });

        let (s, c) = (w.clone(), cluster);
        f.pods.expect_ensure_pod().returning(move |spec| {
            assert_eq!(spec.cluster, c);
            let mut guard = s.lock().unwrap();
            let w = &mut *guard;
            w.specs.push(spec.clone());
            if let Some(answer) = w.pod_answer.clone() {
                return Ok(answer);
            }
            let (node, n) = match w.pods.get(&spec.pod_name) {
                Some(found) => found.clone(),
                None => {
                    let n = w.next_n;
                    w.next_n += 1;
                    let node = spec
                        .target_node
                        .clone()
                        .unwrap_or_else(|| format!("node-{n}"));
                    w.pods.insert(spec.pod_name.clone(), (node.clone(), n));
                    w.log.push(format!("create_pod {}", spec.pod_name));
                    (node, n)
                }
            };
            Ok(PodProgress::Ready {
                node,
                host_ip: format!("10.0.0.{n}"),
                client_ip: format!("192.168.0.{n}"),
            })
        });
        let s = w.clone();
        f.pods
            .expect_delete_pod()
            .returning(move |namespace, name| {
                assert_eq!(namespace, "ns");
                let mut guard = s.lock().unwrap();
                let w = &mut *guard;
                w.delete_calls.push(name.to_owned());
                if w.delete_pending > 0 {
                    w.delete_pending -= 1;
                    return Ok(Progress::pending(format!("pod {name} is terminating")));
                }
                if w.pods.remove(name).is_some() {
                    w.engines.remove(name);
                    w.log.push(format!("delete_pod {name}"));
                }
                Ok(Progress::Done(()))
            });

        let s = w.clone();
        f.engine.expect_health().returning(move |t| {
            let mut guard = s.lock().unwrap();
            let w = &mut *guard;
            w.health_checks.push(t.clone());
            Ok(if w.engines.contains(&t.pod_name) {
                w.health.unwrap_or(Health::Ok)
            } else {
                Health::ContainerNotFound
            })
        });
        let s = w.clone();
        f.engine.expect_install().returning(move |t| {
            assert_eq!(t.namespace, "ns");
            let mut w = s.lock().unwrap();
            w.log.push(format!("install {}", t.ins_id));
            w.engines.insert(t.pod_name.clone());
            Ok(())
        });
        let s = w.clone();
        f.engine.expect_start().returning(move |t| {
            s.lock().unwrap().log.push(format!("start {}", t.ins_id));
            Ok(())
        });
        let s = w.clone();
        f.engine.expect_setup_log_agent().returning(move |t| {
            s.lock()
                .unwrap()
                .log
                .push(format!("log_agent {}", t.ins_id));
            Ok(())
        });
        let s = w.clone();
        f.engine.expect_graceful_stop().returning(move |t| {
            let mut w = s.lock().unwrap();
            w.log.push(format!("stop {}", t.ins_id));
            if w.stop_fails || !w.pods.contains_key(&t.pod_name) {
                return Err(PortError::Unavailable {
                    port: "engine",
                    message: format!("no engine in {}", t.pod_name),
                });
            }
            Ok(())
        });
        f.pfsd.expect_start_pfsd().returning(|t, _, volume| {
            assert_eq!(volume, "wwid-c1");
            assert!(!t.pod_name.is_empty());
            Ok(Progress::Done(()))
        });
        w
    }

    // ---- GenerateTempRoIds -------------------------------------------------------------

    #[tokio::test]
    async fn generate_temp_ro_ids_plans_a_replacement_for_the_rw_and_every_ro() {
        let mut f = Fixture::running();
        f.ids
            .expect_next_ids()
            .with(eq(3))
            .times(1)
            .returning(|_| Ok(vec![2000, 2001, 2002]));
        let f = f.build();
        assert_eq!(f.run("GenerateTempRoIds").await, DONE);
        assert_eq!(
            stored_plan(&f),
            pairs(&[("1001", "2000"), ("1003", "2001"), ("1005", "2002")])
        );
        assert_eq!(
            types(&f),
            pairs(&[("1002", "rw"), ("1004", "ro"), ("1006", "ro")]),
            "the plan only: no temp RO yet"
        );
    }

    #[tokio::test]
    async fn generate_temp_ro_ids_is_idempotent_and_keeps_the_first_ids() {
        let mut f = Fixture::running();
        f.ids
            .expect_next_ids()
            .times(1)
            .returning(|_| Ok(vec![2000, 2001, 2002]));
        let f = f.build();
        assert_eq!(f.run("GenerateTempRoIds").await, DONE);
        let (plan, stored) = (stored_plan(&f), writes(&f));
        assert_eq!(f.run("GenerateTempRoIds").await, DONE);
        assert_eq!(stored_plan(&f), plan);
        assert_eq!(writes(&f), stored, "no second write");
    }

    #[tokio::test]
    async fn generate_temp_ro_ids_keeps_an_existing_plan() {
        let mut f = Fixture::running().edit(|cr| set_plan(cr, &[("1001", "2000")]));
        f.ids.expect_next_ids().never();
        let f = f.build();
        assert_eq!(f.run("GenerateTempRoIds").await, DONE);
        assert_eq!(stored_plan(&f), pairs(&[("1001", "2000")]));
        assert_eq!(writes(&f), (0, 0));
    }

    // ---- GenerateMigrateTempId ---------------------------------------------------------

    #[tokio::test]
    async fn generate_migrate_temp_id_plans_the_slot_of_the_named_ro() {
        let mut f =
            Fixture::running().edit(|cr| set_annotation(cr, annotations::MIGRATE, "1004|node-9"));
        f.ids
            .expect_next_ids()
            .with(eq(1))
            .times(1)
            .returning(|_| Ok(vec![2001]));
        let f = f.build();
        assert_eq!(f.run("GenerateMigrateTempId").await, DONE);
        assert_eq!(stored_plan(&f), pairs(&[("1003", "2001")]));
    }

    #[tokio::test]
    async fn generate_migrate_temp_id_plans_the_rw_slot_when_migrate_names_the_rw() {
        let mut f =
            Fixture::running().edit(|cr| set_annotation(cr, annotations::MIGRATE, "1002|node-9"));
        f.ids
            .expect_next_ids()
            .with(eq(1))
            .times(1)
            .returning(|_| Ok(vec![2000]));
        let f = f.build();
        assert_eq!(f.run("GenerateMigrateTempId").await, DONE);
        assert_eq!(stored_plan(&f), pairs(&[("1001", "2000")]));
    }

    #[tokio::test]
    async fn generate_migrate_temp_id_is_idempotent() {
        let mut f =
            Fixture::running().edit(|cr| set_annotation(cr, annotations::MIGRATE, "1004|node-9"));
        f.ids
            .expect_next_ids()
            .times(1)
            .returning(|_| Ok(vec![2001]));
        let f = f.build();
        assert_eq!(f.run("GenerateMigrateTempId").await, DONE);
        let stored = writes(&f);
        assert_eq!(f.run("GenerateMigrateTempId").await, DONE);
        assert_eq!(stored_plan(&f), pairs(&[("1003", "2001")]));
        assert_eq!(writes(&f), stored);
    }

    #[tokio::test]
    async fn generate_migrate_temp_id_ignores_an_incomplete_annotation() {
        for value in [None, Some("1004|"), Some("|node-9"), Some("1004")] {
            let mut f = Fixture::running().edit(|cr| {
                if let Some(value) = value {
                    set_annotation(cr, annotations::MIGRATE, value);
                }
            });
            f.ids.expect_next_ids().never();
            let f = f.build();
            assert_eq!(f.run("GenerateMigrateTempId").await, DONE, "{value:?}");
            assert!(stored_plan(&f).is_empty(), "{value:?}");
            assert_eq!(writes(&f), (0, 0), "{value:?}");
        }
    }

    #[tokio::test]
    async fn weakness_4_unknown_migrate_id_is_an_error_not_an_empty_plan() {
        let mut f =
            Fixture::running().edit(|cr| set_annotation(cr, annotations::MIGRATE, "4242|node-9"));
        f.ids.expect_next_ids().never();
        let f = f.build();
        let err = f.run("GenerateMigrateTempId").await.unwrap_err();
        assert!(err.contains("no instance `4242`"), "{err}");
        assert_eq!(f.annotation(annotations::TEMP_RO_IDS), None);
        assert_eq!(writes(&f), (0, 0));
    }

    #[tokio::test]
    async fn generate_migrate_temp_id_refuses_a_temp_ro() {
        let mut f = Fixture::running().edit(|cr| {
            put(cr, entry("1003", "2001", "tempro", 0, "8"));
            set_annotation(cr, annotations::MIGRATE, "2001|node-9");
        });
        f.ids.expect_next_ids().never();
        let f = f.build();
        let err = f.run("GenerateMigrateTempId").await.unwrap_err();
        assert!(err.contains("temporary RO"), "{err}");
        assert!(stored_plan(&f).is_empty());
    }

    // ---- GenerateRebuildRoTempId -------------------------------------------------------

    #[tokio::test]
    async fn generate_rebuild_ro_temp_id_plans_the_slot_of_the_failed_ro() {
        let mut f = Fixture::running().edit(|cr| fail(cr, "1006"));
        f.ids
            .expect_next_ids()
            .with(eq(1))
            .times(1)
            .returning(|_| Ok(vec![2000]));
        let f = f.build();
        assert_eq!(f.run("GenerateRebuildRoTempId").await, DONE);
        assert_eq!(stored_plan(&f), pairs(&[("1005", "2000")]));
        assert_eq!(
            types(&f)["1006"],
            "ro",
            "the failed RO stays until StopOldRo"
        );
    }

    #[tokio::test]
    async fn generate_rebuild_ro_temp_id_is_idempotent() {
        let mut f = Fixture::running().edit(|cr| fail(cr, "1006"));
        f.ids
            .expect_next_ids()
            .times(1)
            .returning(|_| Ok(vec![2000]));
        let f = f.build();
        assert_eq!(f.run("GenerateRebuildRoTempId").await, DONE);
        let stored = writes(&f);
        assert_eq!(f.run("GenerateRebuildRoTempId").await, DONE);
        assert_eq!(stored_plan(&f), pairs(&[("1005", "2000")]));
        assert_eq!(writes(&f), stored);
    }

    #[tokio::test]
    async fn generate_rebuild_ro_temp_id_without_a_failed_ro_is_an_error() {
        // A failed RW is not rebuilt as an RO.
        let mut f = Fixture::running().edit(|cr| fail(cr, "1002"));
        f.ids.expect_next_ids().never();
        let f = f.build();
        let err = f.run("GenerateRebuildRoTempId").await.unwrap_err();
        assert!(err.contains("no failed read-only instance"), "{err}");
        assert!(stored_plan(&f).is_empty());
    }

    // ---- GenerateAddRoTempId -----------------------------------------------------------

    #[tokio::test]
    async fn generate_add_ro_temp_id_plans_a_new_slot_and_a_new_ins_id() {
        let mut f = Fixture::running();
        f.ids
            .expect_next_ids()
            .with(eq(2))
            .times(1)
            .returning(|_| Ok(vec![3000, 3001]));
        let f = f.build();
        assert_eq!(f.run("GenerateAddRoTempId").await, DONE);
        assert_eq!(stored_plan(&f), pairs(&[("3000", "3001")]));
        assert_eq!(
            types(&f),
            pairs(&[("1002", "rw"), ("1004", "ro"), ("1006", "ro")])
        );
    }

    #[tokio::test]
    async fn generate_add_ro_temp_id_is_idempotent() {
        let mut f = Fixture::running();
        f.ids
            .expect_next_ids()
            .times(1)
            .returning(|_| Ok(vec![3000, 3001]));
        let f = f.build();
        assert_eq!(f.run("GenerateAddRoTempId").await, DONE);
        let stored = writes(&f);
        assert_eq!(f.run("GenerateAddRoTempId").await, DONE);
        assert_eq!(stored_plan(&f), pairs(&[("3000", "3001")]));
        assert_eq!(writes(&f), stored);
    }

    #[tokio::test]
    async fn weakness_25_generate_add_ro_temp_id_does_not_overwrite_a_plan() {
        // A re-run after InitTempRoMeta and a partial install: the plan and the temp RO stay.
        let mut f = Fixture::running().edit(|cr| {
            set_plan(cr, &[("3000", "3001")]);
            put(cr, entry("3000", "3001", "tempro", 4, "8"));
        });
        f.ids.expect_next_ids().never();
        let f = f.build();
        let before = snapshot(&f);
        assert_eq!(f.run("GenerateAddRoTempId").await, DONE);
        assert_eq!(stored_plan(&f), pairs(&[("3000", "3001")]));
        assert_eq!(snapshot(&f), before);
    }

    // ---- InitTempRoMeta ----------------------------------------------------------------

    #[tokio::test]
    async fn init_temp_ro_meta_creates_a_tempro_entry_per_planned_replacement() {
        let f = Fixture::running()
            .edit(|cr| set_plan(cr, &[("1001", "2000"), ("1003", "2001"), ("1005", "2002")]))
            .build();
        assert_eq!(f.run("InitTempRoMeta").await, DONE);
        let stored = stored_entries(&f);
        // Same slot, new id and pod, the cluster port, the next free fsIds (5..7 are used).
        assert_eq!(stored["2000"], entry("1001", "2000", "tempro", 0, "8"));
        assert_eq!(stored["2001"], entry("1003", "2001", "tempro", 0, "9"));
        assert_eq!(stored["2002"], entry("1005", "2002", "tempro", 0, "10"));
        assert_eq!(stored.len(), 6, "the RW and ROs stay");
        assert_eq!(leader(&f), ("1002".into(), "node-1".into()));
        assert_eq!(follower_num(&f), 2);
    }

    #[tokio::test]
    async fn init_temp_ro_meta_is_idempotent() {
        let f = Fixture::running()
            .edit(|cr| set_plan(cr, &[("1001", "2000"), ("1003", "2001")]))
            .build();
        assert_eq!(f.run("InitTempRoMeta").await, DONE);
        let (before, stored) = (snapshot(&f), writes(&f));
        assert_eq!(f.run("InitTempRoMeta").await, DONE);
        assert_eq!(snapshot(&f), before);
        assert_eq!(writes(&f), stored, "no second write");
    }

    #[tokio::test]
    async fn weakness_25_init_temp_ro_meta_keeps_existing_temp_ros() {
        // 2000 was created and installed by an earlier run; only 2001 is missing.
        let installed = entry("1001", "2000", "tempro", 4, "8");
        let kept = installed.clone();
        let f = Fixture::running()
            .edit(|cr| {
                set_plan(cr, &[("1001", "2000"), ("1003", "2001")]);
                put(cr, installed);
            })
            .build();
        assert_eq!(f.run("InitTempRoMeta").await, DONE);
        assert_eq!(
            stored_entry(&f, "2000"),
            kept,
            "no new fsId, node or install"
        );
        assert_eq!(
            stored_entry(&f, "2001"),
            entry("1003", "2001", "tempro", 0, "9")
        );
    }

    #[tokio::test]
    async fn init_temp_ro_meta_skips_replacements_already_promoted() {
        let f = old_rw_deleted()
            .edit(|cr| put(cr, entry("1003", "2001", "ro", 5, "9")))
            .build();
        let before = snapshot(&f);
        assert_eq!(f.run("InitTempRoMeta").await, DONE);
        assert_eq!(snapshot(&f), before, "2000 is the RW and 2001 an RO");
    }

    // ---- CreateTempRoForRw -------------------------------------------------------------

    #[tokio::test]
    async fn create_temp_ro_for_rw_installs_the_rw_replacement_as_an_ro_outside_the_cm() {
        let mut f = planned_all();
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();

        assert_pending(f.run("CreateTempRoForRw").await);
        let e = stored_entry(&f, "2000");
        assert_eq!(e.ins_type, "tempro");
        assert_eq!(
            placement(&e),
            ("node-4", "192.168.0.4", "10.0.0.4", false),
            "the pod's node and IPs are saved at once"
        );
        assert_eq!(
            log(&w),
            ["create_pod c1-1001-2000", "install 2000", "start 2000"]
        );

        assert_eq!(f.run("CreateTempRoForRw").await, DONE);
        let e = stored_entry(&f, "2000");
        assert_eq!(e.ins_type, "tempro", "converted by the next step");
        assert!(e.installed);
        assert_eq!(
            log(&w),
            [
                "create_pod c1-1001-2000",
                "install 2000",
                "start 2000",
                "log_agent 2000"
            ]
        );
        let w = w.lock().unwrap();
        assert!(w.added.is_empty(), "not added to the CM");
        for spec in &w.specs {
            assert_eq!(
                (
                    spec.pod_name.as_str(),
                    spec.physical_ins_id.as_str(),
                    spec.ins_id.as_str(),
                    spec.ins_type,
                    spec.port,
                    spec.target_node.as_deref()
                ),
                (
                    "c1-1001-2000",
                    "1001",
                    "2000",
                    Some(InsType::Ro),
                    5432,
                    None
                )
            );
        }
        assert_eq!(
            stored_entry(&f, "2001"),
            entry("1003", "2001", "tempro", 0, "9")
        );
    }

    #[tokio::test]
    async fn create_temp_ro_for_rw_is_idempotent() {
        let mut f = planned_all();
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        run_to_done(&f, "CreateTempRoForRw").await;
        let (before, stored, events) = (snapshot(&f), writes(&f), log(&w));
        let pod_calls = w.lock().unwrap().specs.len();

        assert_eq!(f.run("CreateTempRoForRw").await, DONE);
        assert_eq!(snapshot(&f), before);
        assert_eq!(writes(&f), stored);
        assert_eq!(log(&w), events, "no second install");
        assert_eq!(
            w.lock().unwrap().specs.len(),
            pod_calls,
            "installed: no pod call"
        );
        assert_eq!(count(&w, "install 2000"), 1);
    }

    #[tokio::test]
    async fn create_temp_ro_for_rw_waits_for_its_pod() {
        let mut f = planned_all();
        let w = world(&mut f, 1, &[2, 3]);
        w.lock().unwrap().pod_answer = Some(PodProgress::Pending {
            reason: "scheduling".into(),
        });
        let f = f.build();
        assert_pending(f.run("CreateTempRoForRw").await);
        assert!(log(&w).is_empty(), "no engine work before the pod is ready");
        assert_eq!(writes(&f), (0, 0));

        w.lock().unwrap().pod_answer = None;
        run_to_done(&f, "CreateTempRoForRw").await;
        assert_eq!(count(&w, "install 2000"), 1);
    }

    #[tokio::test]
    async fn create_temp_ro_for_rw_waits_while_the_engine_starts() {
        let mut f = planned_all();
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        assert_pending(f.run("CreateTempRoForRw").await);
        w.lock().unwrap().health = Some(Health::StartingUp);
        assert_pending(f.run("CreateTempRoForRw").await);
        assert!(!stored_entry(&f, "2000").installed);
        w.lock().unwrap().health = None;
        assert_eq!(f.run("CreateTempRoForRw").await, DONE);
        assert_eq!(
            count(&w, "install 2000"),
            1,
            "a starting engine is not reinstalled"
        );
    }

    #[tokio::test]
    async fn create_temp_ro_for_rw_places_it_on_the_migrate_target_when_migrate_names_the_rw() {
        let mut f =
            planned_all().edit(|cr| set_annotation(cr, annotations::MIGRATE, "1002|node-9"));
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        run_to_done(&f, "CreateTempRoForRw").await;
        let targets: Vec<_> = w
            .lock()
            .unwrap()
            .specs
            .iter()
            .map(|s| s.target_node.clone())
            .collect();
        assert!(!targets.is_empty());
        assert!(targets.iter().all(|t| t.as_deref() == Some("node-9")));
        assert_eq!(stored_entry(&f, "2000").node_name, "node-9");
    }

    #[tokio::test]
    async fn create_temp_ro_for_rw_ignores_a_migrate_naming_an_ro() {
        let mut f =
            planned_all().edit(|cr| set_annotation(cr, annotations::MIGRATE, "1004|node-9"));
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        run_to_done(&f, "CreateTempRoForRw").await;
        assert!(w
            .lock()
            .unwrap()
            .specs
            .iter()
            .all(|s| s.target_node.is_none()));
    }

    #[tokio::test]
    async fn create_temp_ro_for_rw_without_a_temp_ro_interrupts_meta_lost() {
        // The plan names 2000 but its entity is gone; no port is called.
        let f = Fixture::running()
            .edit(|cr| set_plan(cr, &[("1001", "2000")]))
            .build();
        assert_interrupt(
            f.run("CreateTempRoForRw").await,
            interrupt::TEMP_RO_FOR_RW_MEAT_LOST,
        );
    }

    #[tokio::test]
    async fn create_temp_ro_for_rw_is_done_once_the_replacement_is_an_ro() {
        let f = rw_replacement_converted().build();
        assert_eq!(f.run("CreateTempRoForRw").await, DONE);
        assert_eq!(writes(&f), (0, 0));
    }

    #[tokio::test]
    async fn create_temp_ro_for_rw_interrupts_with_the_pod_failure() {
        let mut f = planned_all();
        let w = world(&mut f, 1, &[2, 3]);
        w.lock().unwrap().pod_answer = Some(PodProgress::Failed {
            failure: PodFailure::NoAvailableNode,
            message: "no node passes the probe".into(),
        });
        let f = f.build();
        assert_interrupt(f.run("CreateTempRoForRw").await, "NO_AVAILABLE_NODE");
        assert!(log(&w).is_empty());
    }

    // ---- ConvertTempRoToRo -------------------------------------------------------------

    #[tokio::test]
    async fn convert_temp_ro_to_ro_promotes_the_rw_replacement_and_adds_it_to_the_cm() {
        let mut f = rw_replacement_installed();
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();

        assert_pending(f.run("ConvertTempRoToRo").await);
        assert_eq!(
            types(&f),
            pairs(&[
                ("1002", "rw"),
                ("1004", "ro"),
                ("1006", "ro"),
                ("2000", "ro"),
                ("2001", "tempro"),
                ("2002", "tempro"),
            ])
        );
        assert_eq!(
            w.lock().unwrap().added,
            [CmInstance {
                pod_name: "c1-1001-2000".into(),
                host_ip: "10.0.0.4".into(),
                client_ip: "192.168.0.4".into(),
                host_name: "node-4".into(),
                port: 5432,
                role: Some(CmRole::Ro),
            }]
        );
        assert_eq!(f.run("ConvertTempRoToRo").await, DONE, "RUNNING in the CM");
        assert_eq!(leader(&f), ("1002".into(), "node-1".into()));
    }

    #[tokio::test]
    async fn convert_temp_ro_to_ro_is_idempotent() {
        let mut f = rw_replacement_installed();
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        run_to_done(&f, "ConvertTempRoToRo").await;
        let (before, stored) = (snapshot(&f), writes(&f));
        assert_eq!(f.run("ConvertTempRoToRo").await, DONE);
        assert_eq!(snapshot(&f), before);
        assert_eq!(writes(&f), stored);
        assert_eq!(count(&w, "add_ins c1-1001-2000"), 1);
    }

    #[tokio::test]
    async fn convert_temp_ro_to_ro_waits_until_the_cm_reports_it_running() {
        let mut f = rw_replacement_installed();
        let w = world(&mut f, 1, &[2, 3]);
        w.lock().unwrap().added_phase = "STARTING".into();
        let f = f.build();
        assert_pending(f.run("ConvertTempRoToRo").await);
        assert_pending(f.run("ConvertTempRoToRo").await);
        assert_eq!(
            count(&w, "add_ins c1-1001-2000"),
            1,
            "added once while it starts"
        );
        for ins in &mut w.lock().unwrap().cm_ro {
            ins.phase = "RUNNING".into();
        }
        assert_eq!(f.run("ConvertTempRoToRo").await, DONE);
    }

    #[tokio::test]
    async fn weakness_3_convert_temp_ro_to_ro_promotes_the_rw_replacement_not_any_temp_ro() {
        // The ROs' replacements sort before the RW's, in every order; they have no pod.
        let mut f = Fixture::running().edit(|cr| {
            set_plan(cr, &[("1003", "1998"), ("1005", "1999"), ("1001", "2000")]);
            put(cr, entry("1003", "1998", "tempro", 0, "9"));
            put(cr, entry("1005", "1999", "tempro", 0, "10"));
            put(cr, entry("1001", "2000", "tempro", 4, "8"));
        });
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        run_to_done(&f, "ConvertTempRoToRo").await;
        let t = types(&f);
        assert_eq!(
            (t["2000"].as_str(), t["1998"].as_str(), t["1999"].as_str()),
            ("ro", "tempro", "tempro")
        );
        assert_eq!(log(&w), ["add_ins c1-1001-2000"]);
    }

    #[tokio::test]
    async fn convert_temp_ro_to_ro_without_the_rw_replacement_interrupts_meta_lost() {
        // Only the RO's replacement exists: it is never promoted in the RW's place.
        let f = Fixture::running()
            .edit(|cr| {
                set_plan(cr, &[("1001", "2000"), ("1003", "2001")]);
                put(cr, entry("1003", "2001", "tempro", 0, "8"));
            })
            .build();
        assert_interrupt(
            f.run("ConvertTempRoToRo").await,
            interrupt::TEMP_RO_FOR_RW_MEAT_LOST,
        );
        assert_eq!(types(&f)["2001"], "tempro");
        assert_eq!(writes(&f), (0, 0));
    }

    // ---- SwitchNewRoToRw ---------------------------------------------------------------

    #[tokio::test]
    async fn switch_new_ro_to_rw_switches_over_to_the_planned_replacement() {
        let mut f = rw_replacement_converted();
        let w = world(&mut f, 1, &[2, 3, 4]);
        let f = f.build();

        assert_pending(f.run("SwitchNewRoToRw").await);
        assert_eq!(log(&w), ["switchover 192.168.0.1:5432 -> 192.168.0.4:5432"]);
        assert_eq!(
            leader(&f),
            ("1002".into(), "node-1".into()),
            "until the CM shows it"
        );

        assert_eq!(f.run("SwitchNewRoToRw").await, DONE);
        assert_eq!(leader(&f), ("2000".into(), "node-4".into()));
        assert_eq!(
            types(&f),
            pairs(&[
                ("1002", "ro"),
                ("1004", "ro"),
                ("1006", "ro"),
                ("2000", "rw"),
                ("2001", "tempro"),
                ("2002", "tempro"),
            ])
        );
        assert_eq!(
            w.lock().unwrap().health_checks.last(),
            Some(&EngineTarget {
                namespace: "ns".into(),
                pod_name: "c1-1001-2000".into(),
                ins_id: "2000".into(),
                is_rw: true,
            }),
            "the new RW is health-checked"
        );
    }

    #[tokio::test]
    async fn switch_new_ro_to_rw_is_idempotent() {
        let mut f = rw_replacement_converted();
        let w = world(&mut f, 1, &[2, 3, 4]);
        let f = f.build();
        run_to_done(&f, "SwitchNewRoToRw").await;
        let (before, stored) = (snapshot(&f), writes(&f));
        assert_eq!(f.run("SwitchNewRoToRw").await, DONE);
        assert_eq!(snapshot(&f), before);
        assert_eq!(writes(&f), stored);
        assert_eq!(log(&w).len(), 1, "one switchover");
    }

    #[tokio::test]
    async fn switch_new_ro_to_rw_waits_until_the_target_runs_in_the_cm() {
        let mut f = rw_replacement_converted();
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        assert_pending(f.run("SwitchNewRoToRw").await);
        w.lock().unwrap().cm_ro.push(cm_ins(ep(4), "STARTING"));
        assert_pending(f.run("SwitchNewRoToRw").await);
        assert!(
            log(&w).is_empty(),
            "no switchover to a target not yet running"
        );
        w.lock().unwrap().cm_ro.last_mut().unwrap().phase = "RUNNING".into();
        run_to_done(&f, "SwitchNewRoToRw").await;
        assert_eq!(log(&w).len(), 1);
        assert_eq!(leader(&f).0, "2000");
    }

    #[tokio::test]
    async fn switch_new_ro_to_rw_waits_for_the_new_rw_to_answer() {
        let mut f = switched();
        let w = world(&mut f, 4, &[1, 2, 3]);
        w.lock().unwrap().health = Some(Health::StartingUp);
        let f = f.build();
        assert_pending(f.run("SwitchNewRoToRw").await);
        w.lock().unwrap().health = None;
        assert_eq!(f.run("SwitchNewRoToRw").await, DONE);
        assert!(log(&w).is_empty(), "already the RW: no switchover");
        assert_eq!(writes(&f), (0, 0));
    }

    #[tokio::test]
    async fn switch_new_ro_to_rw_without_a_planned_rw_replacement_interrupts() {
        let f = Fixture::running()
            .edit(|cr| {
                set_plan(cr, &[("1003", "2001")]);
                put(cr, entry("1003", "2001", "ro", 4, "8"));
            })
            .build();
        assert_interrupt(
            f.run("SwitchNewRoToRw").await,
            interrupt::TEMP_INS_ID_NOT_FOUND,
        );
        assert_eq!(leader(&f).0, "1002");
    }

    // ---- DeleteOldRw -------------------------------------------------------------------

    #[tokio::test]
    async fn delete_old_rw_deletes_the_old_incarnation_and_drops_its_entry() {
        let mut f = switched();
        let w = world(&mut f, 4, &[1, 2, 3]);
        let f = f.build();
        assert_eq!(f.run("DeleteOldRw").await, DONE);
        assert_eq!(
            log(&w),
            [
                "remove_ins c1-1001-1002",
                "stop 1002",
                "delete_pod c1-1001-1002"
            ]
        );
        assert_eq!(w.lock().unwrap().removed[0].role, Some(CmRole::Ro));
        assert_eq!(
            types(&f),
            pairs(&[
                ("1004", "ro"),
                ("1006", "ro"),
                ("2000", "rw"),
                ("2001", "tempro"),
                ("2002", "tempro"),
            ])
        );
        assert_eq!(leader(&f), ("2000".into(), "node-4".into()));
        assert_eq!(follower_num(&f), 2, "a replacement, not a removal");
        assert_eq!(cm_endpoints(&w), (Some(ep(4)), vec![ep(2), ep(3)]));
    }

    #[tokio::test]
    async fn delete_old_rw_is_idempotent() {
        let mut f = switched();
        let w = world(&mut f, 4, &[1, 2, 3]);
        let f = f.build();
        assert_eq!(f.run("DeleteOldRw").await, DONE);
        let (before, stored, events) = (snapshot(&f), writes(&f), log(&w));
        assert_eq!(f.run("DeleteOldRw").await, DONE);
        assert_eq!(snapshot(&f), before);
        assert_eq!(writes(&f), stored);
        assert_eq!(log(&w), events);
        assert_eq!(w.lock().unwrap().delete_calls.len(), 1);
    }

    #[tokio::test]
    async fn delete_old_rw_waits_for_the_pod_to_go() {
        let mut f = switched();
        let w = world(&mut f, 4, &[1, 2, 3]);
        w.lock().unwrap().delete_pending = 1;
        let f = f.build();
        assert_pending(f.run("DeleteOldRw").await);
        assert_eq!(
            types(&f)["1002"],
            "ro",
            "the entry stays while the pod goes"
        );
        assert_eq!(f.run("DeleteOldRw").await, DONE);
        assert!(!types(&f).contains_key("1002"));
        assert_eq!(count(&w, "remove_ins c1-1001-1002"), 1);
        assert_eq!(
            count(&w, "stop 1002"),
            1,
            "not stopped again while its pod goes"
        );
        assert_eq!(count(&w, "delete_pod c1-1001-1002"), 1);
    }

    #[tokio::test]
    async fn delete_old_rw_never_deletes_the_planned_replacement() {
        // The RW is still the old one (the switch did not take): its slot's other RO is the
        // replacement the flow built. No port is called.
        let f = rw_replacement_converted().build();
        assert_interrupt(f.run("DeleteOldRw").await, interrupt::RO_META_INVALID);
        assert_eq!(types(&f)["2000"], "ro");
        assert_eq!(writes(&f), (0, 0));
    }

    // ---- EnsureNewRoUpToDate -----------------------------------------------------------

    /// ModifyClass after DeleteOldRw: each RO replaced in id order: the new one installed,
    /// then the old one taken out of the CM, stopped and deleted, then the new one added.
    const REPLACE_ROS: [&str; 16] = [
        "create_pod c1-1003-2001",
        "install 2001",
        "start 2001",
        "log_agent 2001",
        "remove_ins c1-1003-1004",
        "stop 1004",
        "delete_pod c1-1003-1004",
        "add_ins c1-1003-2001",
        "create_pod c1-1005-2002",
        "install 2002",
        "start 2002",
        "log_agent 2002",
        "remove_ins c1-1005-1006",
        "stop 1006",
        "delete_pod c1-1005-1006",
        "add_ins c1-1005-2002",
    ];

    #[tokio::test]
    async fn ensure_new_ro_up_to_date_replaces_each_ro_new_one_installed_before_the_old_goes() {
        let mut f = old_rw_deleted();
        let w = world(&mut f, 4, &[2, 3]);
        let f = f.build();
        run_to_done(&f, "EnsureNewRoUpToDate").await;
        assert_eq!(log(&w), REPLACE_ROS);
        assert_eq!(
            types(&f),
            pairs(&[("2000", "rw"), ("2001", "ro"), ("2002", "ro")])
        );
        let placed = stored_entries(&f);
        assert_eq!(
            placement(&placed["2001"]),
            ("node-5", "192.168.0.5", "10.0.0.5", true)
        );
        assert_eq!(
            placement(&placed["2002"]),
            ("node-6", "192.168.0.6", "10.0.0.6", true)
        );
        assert_eq!(leader(&f), ("2000".into(), "node-4".into()));
        assert_eq!(follower_num(&f), 2);
        assert_eq!(cm_endpoints(&w), (Some(ep(4)), vec![ep(5), ep(6)]));
        assert!(w
            .lock()
            .unwrap()
            .specs
            .iter()
            .all(|s| s.ins_type == Some(InsType::Ro) && s.target_node.is_none()));
    }

    #[tokio::test]
    async fn ensure_new_ro_up_to_date_is_idempotent() {
        let mut f = old_rw_deleted();
        let w = world(&mut f, 4, &[2, 3]);
        let f = f.build();
        run_to_done(&f, "EnsureNewRoUpToDate").await;
        let (before, stored) = (snapshot(&f), writes(&f));
        assert_eq!(f.run("EnsureNewRoUpToDate").await, DONE);
        assert_eq!(snapshot(&f), before);
        assert_eq!(writes(&f), stored);
        assert_eq!(
            log(&w),
            REPLACE_ROS,
            "nothing installed, deleted or added twice"
        );
    }

    #[tokio::test]
    async fn ensure_new_ro_up_to_date_keeps_the_old_ro_while_the_new_pod_waits() {
        let mut f = old_rw_deleted();
        let w = world(&mut f, 4, &[2, 3]);
        w.lock().unwrap().pod_answer = Some(PodProgress::Pending {
            reason: "pulling the image".into(),
        });
        let f = f.build();
        assert_pending(f.run("EnsureNewRoUpToDate").await);
        assert!(
            log(&w).is_empty(),
            "nothing deleted before the replacement runs"
        );
        assert_eq!(types(&f)["1004"], "ro");
        assert_eq!(types(&f)["2001"], "tempro");
    }

    #[tokio::test]
    async fn ensure_new_ro_up_to_date_waits_for_the_old_pod_to_go() {
        let mut f = old_rw_deleted();
        let w = world(&mut f, 4, &[2, 3]);
        w.lock().unwrap().delete_pending = 2;
        let f = f.build();
        run_to_done(&f, "EnsureNewRoUpToDate").await;
        assert_eq!(log(&w), REPLACE_ROS, "the waits repeat no work");
    }

    #[tokio::test]
    async fn ensure_new_ro_up_to_date_adds_the_planned_ro_of_add_ro() {
        let mut f = Fixture::running().edit(|cr| {
            cr.spec.follower_num = 3;
            set_plan(cr, &[("3000", "3001")]);
            put(cr, entry("3000", "3001", "tempro", 0, "8"));
        });
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        run_to_done(&f, "EnsureNewRoUpToDate").await;
        assert_eq!(
            log(&w),
            [
                "create_pod c1-3000-3001",
                "install 3001",
                "start 3001",
                "log_agent 3001",
                "add_ins c1-3000-3001"
            ]
        );
        assert_eq!(types(&f)["3001"], "ro");
        assert_eq!(types(&f).len(), 4);
        assert_eq!(follower_num(&f), 3, "the user's count, unchanged");
    }

    #[tokio::test]
    async fn ensure_new_ro_up_to_date_interrupts_with_the_pod_failure() {
        let mut f = old_rw_deleted();
        let w = world(&mut f, 4, &[2, 3]);
        w.lock().unwrap().pod_answer = Some(PodProgress::Failed {
            failure: PodFailure::PodUnscheduled,
            message: "0/6 nodes are available".into(),
        });
        let f = f.build();
        assert_interrupt(f.run("EnsureNewRoUpToDate").await, "POD_UNSCHEDULED");
        assert!(log(&w).is_empty());
        assert_eq!(types(&f)["1004"], "ro");
    }

    // ---- EnsureRoMigrate ---------------------------------------------------------------

    fn migrating_ro() -> FixtureBuilder {
        Fixture::running().edit(|cr| {
            set_annotation(cr, annotations::MIGRATE, "1004|node-9");
            set_plan(cr, &[("1003", "2001")]);
            put(cr, entry("1003", "2001", "tempro", 0, "8"));
        })
    }

    #[tokio::test]
    async fn ensure_ro_migrate_creates_the_replacement_on_the_target_node_then_deletes_the_old() {
        let mut f = migrating_ro();
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        run_to_done(&f, "EnsureRoMigrate").await;
        assert!(w
            .lock()
            .unwrap()
            .specs
            .iter()
            .all(|s| s.target_node.as_deref() == Some("node-9")));
        assert_eq!(
            log(&w),
            [
                "create_pod c1-1003-2001",
                "install 2001",
                "start 2001",
                "log_agent 2001",
                "remove_ins c1-1003-1004",
                "stop 1004",
                "delete_pod c1-1003-1004",
                "add_ins c1-1003-2001"
            ]
        );
        assert_eq!(
            types(&f),
            pairs(&[("1002", "rw"), ("1006", "ro"), ("2001", "ro")])
        );
        assert_eq!(stored_entry(&f, "2001").node_name, "node-9");
        assert_eq!(cm_endpoints(&w), (Some(ep(1)), vec![ep(3), ep(4)]));
    }

    #[tokio::test]
    async fn ensure_ro_migrate_is_idempotent() {
        let mut f = migrating_ro();
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        run_to_done(&f, "EnsureRoMigrate").await;
        let (before, stored, events) = (snapshot(&f), writes(&f), log(&w));
        assert_eq!(f.run("EnsureRoMigrate").await, DONE);
        assert_eq!(snapshot(&f), before);
        assert_eq!(writes(&f), stored);
        assert_eq!(log(&w), events);
    }

    // ---- StopOldRo ---------------------------------------------------------------------

    fn rebuilding_ro() -> FixtureBuilder {
        Fixture::running().edit(|cr| {
            fail(cr, "1006");
            set_plan(cr, &[("1005", "2002")]);
        })
    }

    #[tokio::test]
    async fn stop_old_ro_deletes_the_failed_ro_before_its_replacement_and_keeps_its_entry() {
        let mut f = rebuilding_ro();
        let w = world(&mut f, 1, &[2, 3]);
        w.lock().unwrap().stop_fails = true; // a failed engine may not stop: ignored
        let f = f.build();
        assert_eq!(f.run("StopOldRo").await, DONE);
        assert_eq!(
            log(&w),
            [
                "remove_ins c1-1005-1006",
                "stop 1006",
                "delete_pod c1-1005-1006"
            ]
        );
        assert_eq!(
            types(&f),
            pairs(&[("1002", "rw"), ("1004", "ro"), ("1006", "ro")])
        );
        assert_eq!(
            placement(&stored_entry(&f, "1006")),
            ("", "192.168.0.3", "10.0.0.3", false),
            "marked stopped: no pod, no node"
        );
        assert_eq!(follower_num(&f), 2);
        assert_eq!(cm_endpoints(&w), (Some(ep(1)), vec![ep(2)]));
    }

    #[tokio::test]
    async fn stop_old_ro_is_idempotent() {
        let mut f = rebuilding_ro();
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        assert_eq!(f.run("StopOldRo").await, DONE);
        let (before, stored, events) = (snapshot(&f), writes(&f), log(&w));
        assert_eq!(f.run("StopOldRo").await, DONE);
        assert_eq!(snapshot(&f), before);
        assert_eq!(writes(&f), stored);
        assert_eq!(log(&w), events, "no second stop");
        assert_eq!(w.lock().unwrap().delete_calls.len(), 1, "no second delete");
    }

    #[tokio::test]
    async fn stop_old_ro_waits_for_the_pod_to_go() {
        let mut f = rebuilding_ro();
        let w = world(&mut f, 1, &[2, 3]);
        w.lock().unwrap().delete_pending = 1;
        let f = f.build();
        assert_pending(f.run("StopOldRo").await);
        assert!(stored_entry(&f, "1006").installed);
        assert_eq!(f.run("StopOldRo").await, DONE);
        assert!(!stored_entry(&f, "1006").installed);
        assert_eq!(count(&w, "remove_ins c1-1005-1006"), 1);
        assert_eq!(
            count(&w, "stop 1006"),
            1,
            "not stopped again while its pod goes"
        );
        assert_eq!(count(&w, "delete_pod c1-1005-1006"), 1);
    }

    #[tokio::test]
    async fn stop_old_ro_refuses_a_slot_held_by_the_rw() {
        let f = Fixture::running()
            .edit(|cr| set_plan(cr, &[("1001", "2000")]))
            .build();
        assert_interrupt(f.run("StopOldRo").await, interrupt::RO_META_INVALID);
        assert_eq!(writes(&f), (0, 0));
    }

    #[tokio::test]
    async fn stop_old_ro_is_done_once_the_replacement_holds_the_slot() {
        let f = Fixture::running()
            .edit(|cr| {
                set_plan(cr, &[("1005", "2002")]);
                entries(cr).remove("1006");
                put(cr, entry("1005", "2002", "ro", 4, "8"));
            })
            .build();
        assert_eq!(f.run("StopOldRo").await, DONE);
        assert_eq!(writes(&f), (0, 0));
    }

    #[tokio::test]
    async fn stop_old_ro_without_a_plan_is_done() {
        let f = Fixture::running().build();
        assert_eq!(f.run("StopOldRo").await, DONE);
        assert_eq!(writes(&f), (0, 0));
    }

    // ---- RemoveRo ----------------------------------------------------------------------

    fn removing(id: &'static str) -> FixtureBuilder {
        Fixture::running().edit(|cr| set_annotation(cr, annotations::REMOVE_INS, id))
    }

    #[tokio::test]
    async fn remove_ro_deletes_the_named_ro_and_decrements_follower_num() {
        let mut f = removing("1006");
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        assert_eq!(f.run("RemoveRo").await, DONE);
        assert_eq!(
            log(&w),
            [
                "remove_ins c1-1005-1006",
                "stop 1006",
                "delete_pod c1-1005-1006"
            ]
        );
        assert_eq!(types(&f), pairs(&[("1002", "rw"), ("1004", "ro")]));
        assert_eq!(follower_num(&f), 1);
        assert_eq!(cm_endpoints(&w), (Some(ep(1)), vec![ep(2)]));
    }

    #[tokio::test]
    async fn remove_ro_is_idempotent() {
        let mut f = removing("1006");
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        assert_eq!(f.run("RemoveRo").await, DONE);
        let (before, stored, events) = (snapshot(&f), writes(&f), log(&w));
        assert_eq!(f.run("RemoveRo").await, DONE);
        assert_eq!(snapshot(&f), before);
        assert_eq!(follower_num(&f), 1, "decremented once");
        assert_eq!(writes(&f), stored);
        assert_eq!(log(&w), events);
        assert_eq!(w.lock().unwrap().delete_calls.len(), 1);
    }

    #[tokio::test]
    async fn remove_ro_waits_for_the_pod_to_go() {
        let mut f = removing("1006");
        let w = world(&mut f, 1, &[2, 3]);
        w.lock().unwrap().delete_pending = 1;
        let f = f.build();
        assert_pending(f.run("RemoveRo").await);
        assert_eq!(types(&f)["1006"], "ro");
        assert_eq!(follower_num(&f), 2);
        assert_eq!(f.run("RemoveRo").await, DONE);
        assert_eq!(follower_num(&f), 1);
        assert_eq!(count(&w, "remove_ins c1-1005-1006"), 1);
        assert_eq!(count(&w, "stop 1006"), 1);
    }

    #[tokio::test]
    async fn remove_ro_ignores_an_id_that_is_not_an_ro() {
        for id in ["1002", "4242", ""] {
            let f = removing(id).build();
            assert_eq!(f.run("RemoveRo").await, DONE, "{id}");
            assert_eq!(writes(&f), (0, 0), "{id}");
            assert_eq!(follower_num(&f), 2);
        }
        let f = Fixture::running().build();
        assert_eq!(f.run("RemoveRo").await, DONE);
    }

    #[tokio::test]
    async fn remove_ro_without_remove_ins_removes_the_newest_ro_when_fewer_are_wanted() {
        let mut f = Fixture::running().edit(|cr| cr.spec.follower_num = 1);
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        assert_eq!(f.run("RemoveRo").await, DONE);
        assert_eq!(
            log(&w),
            [
                "remove_ins c1-1005-1006",
                "stop 1006",
                "delete_pod c1-1005-1006"
            ]
        );
        assert_eq!(types(&f), pairs(&[("1002", "rw"), ("1004", "ro")]));
        assert_eq!(
            follower_num(&f),
            1,
            "the lowered count is kept, not lowered again"
        );
        assert_eq!(f.run("RemoveRo").await, DONE);
        assert_eq!(
            types(&f),
            pairs(&[("1002", "rw"), ("1004", "ro")]),
            "one per run"
        );
    }

    #[tokio::test]
    async fn remove_ro_named_with_a_lowered_count_removes_that_ro_and_keeps_the_count() {
        let mut f = removing("1004").edit(|cr| cr.spec.follower_num = 1);
        let w = world(&mut f, 1, &[2, 3]);
        let f = f.build();
        assert_eq!(f.run("RemoveRo").await, DONE);
        assert_eq!(types(&f), pairs(&[("1002", "rw"), ("1006", "ro")]));
        assert_eq!(follower_num(&f), 1);
        assert_eq!(count(&w, "stop 1004"), 1);
    }

    #[tokio::test]
    async fn remove_ro_leaves_temp_ros_alone_when_scaling_in() {
        let f = Fixture::running()
            .edit(|cr| {
                cr.spec.follower_num = 2;
                put(cr, entry("1009", "2009", "tempro", 0, "8"));
            })
            .build();
        assert_eq!(f.run("RemoveRo").await, DONE);
        assert_eq!(writes(&f), (0, 0), "two ROs wanted, two present");
    }

    // ---- CleanTempRoMeta ---------------------------------------------------------------

    #[tokio::test]
    async fn clean_temp_ro_meta_keeps_one_entry_per_slot() {
        let f = Fixture::running()
            .edit(|cr| {
                put(cr, entry("1003", "2001", "tempro", 0, "8"));
                put(cr, entry("1005", "2002", "tempro", 4, "9"));
            })
            .build();
        assert_eq!(f.run("CleanTempRoMeta").await, DONE);
        assert_eq!(
            types(&f),
            pairs(&[("1002", "rw"), ("1004", "ro"), ("1006", "ro")])
        );
        assert_eq!(writes(&f), (0, 1), "one status write");
    }

    #[tokio::test]
    async fn clean_temp_ro_meta_is_idempotent() {
        let f = Fixture::running()
            .edit(|cr| put(cr, entry("1003", "2001", "tempro", 0, "8")))
            .build();
        assert_eq!(f.run("CleanTempRoMeta").await, DONE);
        let (before, stored) = (snapshot(&f), writes(&f));
        assert_eq!(f.run("CleanTempRoMeta").await, DONE);
        assert_eq!(snapshot(&f), before);
        assert_eq!(writes(&f), stored);
    }

    #[tokio::test]
    async fn clean_temp_ro_meta_never_drops_the_rw() {
        // After a replace-in-place switchover the RW has the greater id of its slot.
        let f = switched().build();
        assert_eq!(f.run("CleanTempRoMeta").await, DONE);
        assert_eq!(
            types(&f),
            pairs(&[("1004", "ro"), ("1006", "ro"), ("2000", "rw")])
        );
        assert_eq!(leader(&f).0, "2000");
    }

    #[tokio::test]
    async fn weakness_13_clean_temp_ro_meta_compares_ids_numerically() {
        // As strings "999" > "1000": the original dropped the older 999.
        let f = Fixture::running()
            .edit(|cr| {
                put(cr, entry("500", "999", "ro", 4, "8"));
                put(cr, entry("500", "1000", "tempro", 0, "9"));
            })
            .build();
        assert_eq!(f.run("CleanTempRoMeta").await, DONE);
        let t = types(&f);
        assert!(t.contains_key("999"));
        assert!(!t.contains_key("1000"));
    }

    // ---- RemoveAllInsPod ---------------------------------------------------------------

    /// A Rebuild over a cluster left mid-replacement: an old incarnation 2000 in the RW's
    /// slot and a temp RO 2001 without a pod.
    fn rebuilding() -> FixtureBuilder {
        Fixture::running().edit(|cr| {
            put(cr, entry("1001", "2000", "ro", 4, "8"));
            put(cr, entry("1003", "2001", "tempro", 0, "9"));
        })
    }

    #[tokio::test]
    async fn remove_all_ins_pod_deletes_every_pod_and_resets_the_instances() {
        let mut f = rebuilding();
        let w = world(&mut f, 1, &[2, 3, 4]);
        let f = f.build();
        assert_eq!(f.run("RemoveAllInsPod").await, DONE);
        let deleted: BTreeSet<String> = w.lock().unwrap().delete_calls.iter().cloned().collect();
        assert_eq!(
            deleted,
            [
                "c1-1001-1002",
                "c1-1003-1004",
                "c1-1005-1006",
                "c1-1001-2000",
                "c1-1003-2001"
            ]
            .map(String::from)
            .into()
        );
        assert!(w.lock().unwrap().pods.is_empty());
        assert_eq!(
            types(&f),
            pairs(&[("1002", "rw"), ("1004", "ro"), ("1006", "ro")])
        );
        for (id, e) in stored_entries(&f) {
            assert_eq!(placement(&e), ("", "", "", false), "{id}");
            assert_eq!(e.current_state, EngineStateRecord::default(), "{id}");
            assert_eq!(e.last_state, EngineStateRecord::default(), "{id}");
        }
        // Ids, slots, pods names and fsIds are kept: Rebuild recreates the same instances.
        let rw = stored_entry(&f, "1002");
        assert_eq!(
            (
                rw.physical_ins_id.as_str(),
                rw.pod_name.as_str(),
                rw.polar_fs_host_id.as_str()
            ),
            ("1001", "c1-1001-1002", "5")
        );
        assert_eq!(leader(&f), ("1002".into(), String::new()));
        assert_eq!(follower_num(&f), 2);
    }

    #[tokio::test]
    async fn remove_all_ins_pod_is_idempotent() {
        let mut f = rebuilding();
        let w = world(&mut f, 1, &[2, 3, 4]);
        let f = f.build();
        assert_eq!(f.run("RemoveAllInsPod").await, DONE);
        let (before, stored, events) = (snapshot(&f), writes(&f), log(&w));
        assert_eq!(f.run("RemoveAllInsPod").await, DONE);
        assert_eq!(snapshot(&f), before);
        assert_eq!(writes(&f), stored, "no second save");
        // A re-run asks again that the pods be gone (a check: Rebuild must not leave a
        // pod behind), and finds none to delete.
        assert_eq!(log(&w), events, "no pod deleted twice");
        for pod in ["c1-1001-1002", "c1-1003-1004", "c1-1005-1006"] {
            assert_eq!(count(&w, &format!("delete_pod {pod}")), 1, "{pod}");
        }
    }

    #[tokio::test]
    async fn remove_all_ins_pod_waits_for_each_pod_before_resetting() {
        let mut f = rebuilding();
        let w = world(&mut f, 1, &[2, 3, 4]);
        w.lock().unwrap().delete_pending = 1;
        let f = f.build();
        assert_pending(f.run("RemoveAllInsPod").await);
        assert_eq!(writes(&f), (0, 0), "nothing reset while a pod remains");
        assert_eq!(f.run("RemoveAllInsPod").await, DONE);
        assert_eq!(
            types(&f),
            pairs(&[("1002", "rw"), ("1004", "ro"), ("1006", "ro")])
        );
    }
}
