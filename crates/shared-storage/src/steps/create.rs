//! Steps of cluster creation (and of Rebuild's re-creation).

use super::{StepFn, StepFuture};
use crate::ports::Progress;
use crate::service::{Loaded, SharedStorageService};

/// The steps of this file.
pub(super) const STEPS: &[(&str, StepFn)] = &[
    ("InitMeta", init_meta),
    ("PrepareStorage", prepare_storage),
    ("CreateClusterManager", create_cluster_manager),
    ("CreateRwPod", create_rw_pod),
    ("CreateRoPods", create_ro_pods),
    ("CreateNetwork", create_network),
];

fn init_meta<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.init_meta(&mut c.model).await })
}

fn prepare_storage<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.prepare_storage(&c.model).await })
}

fn create_cluster_manager<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move {
        let annotations = c.cr.metadata.annotations.clone().unwrap_or_default();
        svc.create_cluster_manager(&c.model, &annotations).await
    })
}

fn create_rw_pod<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.create_rw(&mut c.model).await })
}

fn create_ro_pods<'a>(svc: &'a SharedStorageService, c: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { svc.create_ros(&mut c.model).await })
}

/// Registered for compatibility with the original; no flow uses it.
fn create_network<'a>(_: &'a SharedStorageService, _: &'a mut Loaded) -> StepFuture<'a> {
    Box::pin(async move { Ok(Progress::Done(())) })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use mockall::predicate::eq;

    use super::super::testing::{ready_on, Fixture, FixtureBuilder};
    use crate::crd::FINALIZER;
    use crate::domain::{ContainerResources, InsType, StorageInfo};
    use crate::ports::{
        Account, ClassDef, ClusterRef, CmInsStatus, CmInstance, CmRole, CmSpec, CmStatus,
        EngineTarget, Health, ParamSet, ParamValue, PodFailure, PodProgress, PortCheck,
        PortPurpose, Progress, PvcRef, StorageRequest, VersionDef,
    };

    const DONE: Result<Progress, String> = Ok(Progress::Done(()));
    /// The wire name of the consensus-port annotation (`service::create::CM_CONSENSUS_PORT`).
    const CONSENSUS_PORT: &str = "polardb.mpd/cmConsensusPort";
    const CLASS: &str = "polar.o.x4.medium";

    fn cluster() -> ClusterRef {
        ClusterRef::new("ns", "c1")
    }

    fn pending(reason: &str) -> Result<Progress, String> {
        Ok(Progress::pending(reason))
    }

    // ---- InitMeta ----------------------------------------------------------------------

    fn class_def() -> ClassDef {
        ClassDef {
            name: CLASS.into(),
            cpu: "2".into(),
            memory: "8Gi".into(),
            resources: BTreeMap::from([
                (
                    "engine".to_string(),
                    ContainerResources {
                        cpu: "2".into(),
                        mem_limit: "8Gi".into(),
                        config: String::new(),
                    },
                ),
                (
                    "pfsd".to_string(),
                    ContainerResources {
                        cpu: "1".into(),
                        mem_limit: "1Gi".into(),
                        config: "-w 2".into(),
                    },
                ),
            ]),
        }
    }

    fn version_def(name: &str) -> VersionDef {
        VersionDef {
            name: name.to_owned(),
            images: BTreeMap::from([
                ("engineImage".to_string(), format!("engine:{name}")),
                ("managerImage".to_string(), format!("manager:{name}")),
                ("clusterManagerImage".to_string(), format!("cm:{name}")),
                ("pfsdImage".to_string(), format!("pfsd:{name}")),
                ("pfsdToolImage".to_string(), format!("pfsd-tool:{name}")),
            ]),
        }
    }

    fn param_set(values: &[(&str, &str)]) -> ParamSet {
        ParamSet {
            params: values
                .iter()
                .map(|(name, value)| {
                    let param = ParamValue {
                        name: (*name).to_owned(),
                        value: (*value).to_owned(),
                        update_time: None,
                        inoperative_value: false,
                    };
                    ((*name).to_owned(), param)
                })
                .collect(),
            latest_flush_time: None,
        }
    }

    type Cell<T> = Arc<Mutex<T>>;
    /// Account Secrets by name: the logical id and privilege they were created with.
    type Secrets = Cell<BTreeMap<String, (String, u32)>>;

    /// The parameter ConfigMaps as stateful mocks; a missing one is created once from the
    /// class parameters.
    fn param_store(
        f: &mut FixtureBuilder,
        user: Option<ParamSet>,
        running: Option<ParamSet>,
    ) -> (Cell<Option<ParamSet>>, Cell<Option<ParamSet>>) {
        let creates = usize::from(user.is_none()) + usize::from(running.is_none());
        let user = f.shared(user);
        let running = f.shared(running);
        let read = user.clone();
        f.params
            .expect_user_params()
            .with(eq(cluster()))
            .returning(move |_| Ok(read.lock().unwrap().clone()));
        let read = running.clone();
        f.params
            .expect_running_params()
            .with(eq(cluster()))
            .returning(move |_| Ok(read.lock().unwrap().clone()));
        f.params
            .expect_class_params()
            .with(eq(CLASS))
            .times(usize::from(creates > 0))
            .returning(|_| Ok(BTreeMap::from([("max_connections".into(), "800".into())])));
        let write = user.clone();
        let user_missing = write.lock().unwrap().is_none();
        f.params
            .expect_save_user_params()
            .times(usize::from(user_missing))
            .returning(move |_, p| {
                *write.lock().unwrap() = Some(p.clone());
                Ok(())
            });
        let write = running.clone();
        let running_missing = write.lock().unwrap().is_none();
        f.params
            .expect_save_running_params()
            .times(usize::from(running_missing))
            .returning(move |_, p| {
                *write.lock().unwrap() = Some(p.clone());
                Ok(())
            });
        (user, running)
    }

    /// The account Secrets as a stateful mock (a Secret is created once, then kept).
    fn account_store(f: &mut FixtureBuilder) -> Secrets {
        let secrets = f.shared(BTreeMap::new());
        let write = secrets.clone();
        f.accounts
            .expect_ensure_account()
            .withf(|c, _, _, _| *c == cluster())
            .returning(move |_, logic_id, name, privilege| {
                write
                    .lock()
                    .unwrap()
                    .entry(name.to_owned())
                    .or_insert_with(|| (logic_id.to_owned(), privilege));
                Ok(Account {
                    name: name.to_owned(),
                    password: "secret".into(),
                    privilege,
                })
            });
        secrets
    }

    /// A new cluster: every InitMeta port, allocations `times(1)` across all runs.
    fn init_meta_fixture() -> (FixtureBuilder, Secrets) {
        let mut f = Fixture::fresh();
        param_store(&mut f, None, None);
        f.classes
            .expect_class()
            .with(eq(CLASS))
            .returning(|_| Ok(class_def()));
        f.versions
            .expect_version()
            .with(eq("1.1.1"))
            .returning(|name| Ok(version_def(name)));
        f.port_alloc
            .expect_check_engine_port()
            .with(eq(5432))
            .times(1)
            .returning(|_| Ok(PortCheck::Free));
        f.ids
            .expect_next_ids()
            .with(eq(7))
            .times(1)
            .returning(|n| Ok((1000..).take(n).collect()));
        f.port_alloc
            .expect_allocate_port()
            .with(eq(PortPurpose::ClusterManager))
            .times(1)
            .returning(|_| Ok(30000));
        let secrets = account_store(&mut f);
        (f, secrets)
    }

    #[tokio::test]
    async fn init_meta_allocates_ids_and_builds_instances_once() {
        let (f, secrets) = init_meta_fixture();
        let f = f.build();
        assert_eq!(f.run("InitMeta").await, DONE);

        let stored = f.stored();
        let status = stored.status.clone().unwrap();
        assert_eq!(status.cluster_status, "Creating");
        assert_eq!(status.logic_id, "1000");
        assert_eq!(status.leader_instance_id, "1002");
        assert_eq!(
            status.cluster_manager_status.as_ref().unwrap().working_port,
            30000
        );
        let layout: Vec<_> = status
            .db_instance_status
            .values()
            .map(|e| {
                (
                    e.ins_type.as_str(),
                    e.physical_ins_id.as_str(),
                    e.ins_id.as_str(),
                    e.pod_name.as_str(),
                    e.polar_fs_host_id.as_str(),
                    e.net_info.working_port,
                    e.installed,
                )
            })
            .collect();
        assert_eq!(
            layout,
            [
                ("rw", "1001", "1002", "c1-1001-1002", "5", 5432, false),
                ("ro", "1003", "1004", "c1-1003-1004", "6", 5432, false),
                ("ro", "1005", "1006", "c1-1005-1006", "7", 5432, false),
            ]
        );
        assert_eq!(
            stored.spec.version_cfg.cluster_manager_image.as_deref(),
            Some("cm:1.1.1"),
            "images resolved from the version"
        );
        assert_eq!(
            stored.spec.version_cfg.engine_image.as_deref(),
            Some("engine:1.1.1")
        );
        let resources = stored.spec.resource_additional.clone().unwrap();
        assert_eq!(
            resources["pfsd"].config.as_deref(),
            Some("-w 2"),
            "resources resolved from the class"
        );
        assert_eq!(
            stored.metadata.finalizers.clone().unwrap_or_default(),
            [FINALIZER]
        );
        assert_eq!(
            *secrets.lock().unwrap(),
            BTreeMap::from([
                ("aurora".to_string(), ("1000".to_string(), 7)),
                ("replicator".to_string(), ("1000".to_string(), 15)),
            ])
        );
    }

    #[tokio::test]
    async fn init_meta_run_twice_allocates_nothing_more_and_writes_nothing() {
        let (f, secrets) = init_meta_fixture();
        let f = f.build();
        assert_eq!(f.run("InitMeta").await, DONE);
        let (first, writes) = (f.stored(), f.writes());
        assert_eq!(
            f.run("InitMeta").await,
            DONE,
            "ids, engine-port check and CM port are times(1)"
        );
        assert_eq!(f.writes(), writes, "no second write");
        let again = f.stored();
        assert_eq!(again.metadata, first.metadata);
        assert_eq!(again.spec, first.spec);
        assert_eq!(again.status, first.status);
        assert_eq!(secrets.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn init_meta_resolves_the_latest_version_when_none_is_named_and_keeps_it() {
        let mut f = Fixture::fresh().edit(|cr| cr.spec.version_cfg.version_name.clear());
        param_store(&mut f, None, None);
        f.classes.expect_class().returning(|_| Ok(class_def()));
        f.versions
            .expect_version()
            .with(eq(""))
            .times(1)
            .returning(|_| Ok(version_def("1.2.0")));
        f.versions
            .expect_version()
            .with(eq("1.2.0"))
            .times(1)
            .returning(|name| Ok(version_def(name)));
        f.port_alloc
            .expect_check_engine_port()
            .returning(|_| Ok(PortCheck::Free));
        f.ids
            .expect_next_ids()
            .times(1)
            .returning(|n| Ok((1000..).take(n).collect()));
        f.port_alloc
            .expect_allocate_port()
            .times(1)
            .returning(|_| Ok(30000));
        account_store(&mut f);
        let f = f.build();
        assert_eq!(f.run("InitMeta").await, DONE);
        let version = f.stored().spec.version_cfg;
        assert_eq!(version.version_name, "1.2.0");
        assert_eq!(version.engine_image.as_deref(), Some("engine:1.2.0"));
        assert_eq!(
            f.run("InitMeta").await,
            DONE,
            "the second run asks for 1.2.0 by name"
        );
        assert_eq!(f.stored().spec.version_cfg, version);
    }

    #[tokio::test]
    async fn weakness_25_init_meta_keeps_existing_parameters() {
        let mut f = Fixture::running();
        let edited = param_set(&[("max_connections", "2000"), ("work_mem", "64MB")]);
        let (user, running) = param_store(&mut f, Some(edited.clone()), Some(edited.clone()));
        f.classes.expect_class().returning(|_| Ok(class_def()));
        f.versions
            .expect_version()
            .returning(|name| Ok(version_def(name)));
        account_store(&mut f);
        let f = f.build();
        assert_eq!(f.run("InitMeta").await, DONE);
        assert_eq!(f.run("InitMeta").await, DONE);
        assert_eq!(
            user.lock().unwrap().as_ref(),
            Some(&edited),
            "user edits kept"
        );
        assert_eq!(running.lock().unwrap().as_ref(), Some(&edited));
        assert_eq!(
            f.state(),
            "Running",
            "an existing cluster is not re-created"
        );
    }

    #[tokio::test]
    async fn weakness_25_init_meta_creates_only_the_missing_parameter_set() {
        let mut f = Fixture::running();
        let edited = param_set(&[("max_connections", "2000")]);
        let (user, running) = param_store(&mut f, Some(edited.clone()), None);
        f.classes.expect_class().returning(|_| Ok(class_def()));
        f.versions
            .expect_version()
            .returning(|name| Ok(version_def(name)));
        account_store(&mut f);
        let f = f.build();
        assert_eq!(f.run("InitMeta").await, DONE);
        assert_eq!(f.run("InitMeta").await, DONE);
        assert_eq!(user.lock().unwrap().as_ref(), Some(&edited));
        let running = running.lock().unwrap().clone().unwrap();
        assert_eq!(running.params["max_connections"].value, "800");
    }

    async fn init_meta_with_port_check(check: PortCheck) -> (String, crate::crd::MPDCluster) {
        let mut f = Fixture::fresh();
        param_store(&mut f, None, None);
        f.classes.expect_class().returning(|_| Ok(class_def()));
        f.versions
            .expect_version()
            .returning(|name| Ok(version_def(name)));
        f.port_alloc
            .expect_check_engine_port()
            .with(eq(5432))
            .returning(move |_| Ok(check));
        // No ids, no CM port, no account: any such call fails the test.
        let f = f.build();
        let err = f.run("InitMeta").await.unwrap_err();
        (err, f.stored())
    }

    #[tokio::test]
    async fn weakness_10_init_meta_interrupts_when_the_engine_port_is_in_use() {
        let (err, stored) = init_meta_with_port_check(PortCheck::InUse).await;
        assert!(err.starts_with("ENGINE_PORT_UNAVAILABLE"), "{err}");
        let status = stored.status.unwrap();
        assert!(status.db_instance_status.is_empty(), "no metadata built");
        assert_eq!(status.logic_id, "");
    }

    #[tokio::test]
    async fn weakness_10_init_meta_interrupts_when_the_engine_port_is_out_of_range() {
        let (err, _) = init_meta_with_port_check(PortCheck::OutOfRange).await;
        assert!(err.starts_with("ENGINE_PORT_UNAVAILABLE"), "{err}");
    }

    // ---- PrepareStorage ----------------------------------------------------------------

    fn storage_request() -> StorageRequest {
        StorageRequest {
            pvc: PvcRef {
                namespace: "ns".into(),
                name: "pvc-c1".into(),
            },
            volume_id: "wwid-c1".into(),
            volume_type: "lun".into(),
            owner: "c1".into(),
            format: true,
        }
    }

    /// The SMS as a stateful mock: the first request starts a (format and) use job that is
    /// pending once; the volume is formatted at most once per owner. Returns the format count.
    fn sms(f: &mut FixtureBuilder) -> Cell<u32> {
        let formats = f.shared(0u32);
        let job = f.shared(None::<u32>);
        let count = formats.clone();
        f.storage
            .expect_use_storage()
            .with(eq(storage_request()))
            .returning(move |_| {
                let mut job = job.lock().unwrap();
                match *job {
                    None => {
                        *job = Some(1);
                        Ok(Progress::pending("formatting"))
                    }
                    Some(1) => {
                        *job = Some(0);
                        *count.lock().unwrap() += 1;
                        Ok(Progress::Done(()))
                    }
                    Some(_) => Ok(Progress::Done(())),
                }
            });
        formats
    }

    #[tokio::test]
    async fn prepare_storage_asks_the_sms_to_format_and_use_the_volume_for_the_cluster() {
        let mut f = Fixture::creating();
        let formats = sms(&mut f);
        let f = f.build();
        assert_eq!(f.run("PrepareStorage").await, pending("formatting"));
        assert_eq!(f.run("PrepareStorage").await, DONE);
        assert_eq!(*formats.lock().unwrap(), 1);
        assert_eq!(f.writes(), 0, "the object is not written");
    }

    #[tokio::test]
    async fn prepare_storage_run_again_repeats_only_the_idempotent_use_request() {
        let mut f = Fixture::creating();
        let formats = sms(&mut f);
        let f = f.build();
        assert_eq!(
            f.run_until_done("PrepareStorage", 3).await.map(|r| r.len()),
            Ok(1)
        );
        assert_eq!(f.run("PrepareStorage").await, DONE);
        assert_eq!(f.run("PrepareStorage").await, DONE);
        assert_eq!(
            *formats.lock().unwrap(),
            1,
            "the same request; the SMS formats once per owner"
        );
        assert_eq!(f.writes(), 0);
    }

    #[tokio::test]
    async fn prepare_storage_waits_while_the_sms_job_runs() {
        let mut f = Fixture::creating();
        f.storage
            .expect_use_storage()
            .returning(|_| Ok(Progress::pending("sms job 42 running")));
        let f = f.build();
        assert_eq!(f.run("PrepareStorage").await, pending("sms job 42 running"));
    }

    // ---- CreateClusterManager ----------------------------------------------------------

    fn cm_spec(consensus_port: i32) -> CmSpec {
        CmSpec {
            cluster: cluster(),
            logic_id: "1000".into(),
            rw_physical_id: "1001".into(),
            image: "cm:1.1.1".into(),
            port: 30000,
            consensus_port,
            storage: StorageInfo {
                pvc_name: "pvc-c1".into(),
                pvc_namespace: "ns".into(),
                volume_id: "wwid-c1".into(),
                volume_type: "lun".into(),
            },
        }
    }

    /// The CM deployment as a stateful mock: pending for `pending_polls` calls, then done.
    fn cm_deployment(f: &mut FixtureBuilder, pending_polls: u32) {
        let polls = f.shared(0u32);
        f.cm.expect_ensure_deployed()
            .with(eq(cm_spec(31000)))
            .returning(move |_| {
                let mut polls = polls.lock().unwrap();
                *polls += 1;
                if *polls <= pending_polls {
                    Ok(Progress::pending("cluster manager starting"))
                } else {
                    Ok(Progress::Done(()))
                }
            });
        f.port_alloc
            .expect_allocate_port()
            .with(eq(PortPurpose::Consensus))
            .times(1)
            .returning(|_| Ok(31000));
    }

    #[tokio::test]
    async fn create_cluster_manager_deploys_the_cm_with_its_ports_image_and_storage() {
        let mut f = Fixture::creating();
        cm_deployment(&mut f, 0);
        let f = f.build();
        assert_eq!(f.run("CreateClusterManager").await, DONE);
        assert_eq!(f.annotation(CONSENSUS_PORT).as_deref(), Some("31000"));
    }

    #[tokio::test]
    async fn weakness_25_create_cluster_manager_does_not_leak_a_consensus_port() {
        let mut f = Fixture::creating();
        cm_deployment(&mut f, 1);
        let f = f.build();
        assert_eq!(
            f.run("CreateClusterManager").await,
            pending("cluster manager starting")
        );
        assert_eq!(f.run("CreateClusterManager").await, DONE);
        let writes = f.writes();
        assert_eq!(
            f.run("CreateClusterManager").await,
            DONE,
            "allocate_port is times(1); every run deploys with port 31000"
        );
        assert_eq!(f.writes(), writes);
        assert_eq!(f.annotation(CONSENSUS_PORT).as_deref(), Some("31000"));
    }

    #[tokio::test]
    async fn create_cluster_manager_waits_while_the_cm_starts() {
        let mut f = Fixture::creating();
        cm_deployment(&mut f, 5);
        let f = f.build();
        assert_eq!(
            f.run("CreateClusterManager").await,
            pending("cluster manager starting")
        );
    }

    // ---- CreateRwPod / CreateRoPods ----------------------------------------------------

    /// One instance the world brings up: its ids, its node number and its type.
    #[derive(Clone, Copy)]
    struct Ins {
        phys: &'static str,
        id: &'static str,
        n: u8,
        ty: InsType,
    }

    const RW: Ins = Ins {
        phys: "1001",
        id: "1002",
        n: 1,
        ty: InsType::Rw,
    };
    const RO_1: Ins = Ins {
        phys: "1003",
        id: "1004",
        n: 2,
        ty: InsType::Ro,
    };
    const RO_2: Ins = Ins {
        phys: "1005",
        id: "1006",
        n: 3,
        ty: InsType::Ro,
    };

    impl Ins {
        fn pod(self) -> String {
            format!("c1-{}-{}", self.phys, self.id)
        }

        fn endpoint(self) -> String {
            format!("192.168.0.{}:5432", self.n)
        }

        fn target(self) -> EngineTarget {
            EngineTarget {
                namespace: "ns".into(),
                pod_name: self.pod(),
                ins_id: self.id.into(),
                is_rw: self.ty == InsType::Rw,
            }
        }

        fn cm_instance(self) -> CmInstance {
            CmInstance {
                pod_name: self.pod(),
                host_ip: format!("10.0.0.{}", self.n),
                client_ip: format!("192.168.0.{}", self.n),
                host_name: format!("node-{}", self.n),
                port: 5432,
                role: Some(if self.ty == InsType::Rw {
                    CmRole::Rw
                } else {
                    CmRole::Ro
                }),
            }
        }

        fn cm_running(self) -> CmInsStatus {
            CmInsStatus {
                endpoint: self.endpoint(),
                pod_name: self.pod(),
                phase: "RUNNING".into(),
                start_at: String::new(),
            }
        }
    }

    /// The world instance creation talks to, as stateful mocks. Each of `create` gets: a pod
    /// that is ready on its node (`ensure_pod` may repeat), for the RW the write lock, pfsd,
    /// an engine that is missing until installed and started once (`times(1)`), then starting
    /// up for one probe; for the RW the engine accounts once; the log agent once; one
    /// `add_ins` after which the CM lists it `STARTING`, then `RUNNING` from the next read.
    /// `in_cm` are already `RUNNING` in the CM. Returns the log of creating calls.
    fn world(f: &mut FixtureBuilder, create: &[Ins], in_cm: &[Ins]) -> Cell<Vec<String>> {
        let log = f.shared(Vec::new());
        let mut cm = CmStatus {
            phase: "RUNNING".into(),
            ha_enabled: true,
            ..CmStatus::default()
        };
        for ins in in_cm {
            if ins.ty == InsType::Rw {
                cm.rw = Some(ins.cm_running());
            } else {
                cm.ro.push(ins.cm_running());
            }
        }
        let cm = f.shared(cm);
        let read = cm.clone();
        f.cm.expect_status()
            .with(eq(cluster()))
            .returning(move |_| {
                let mut guard = read.lock().unwrap();
                let seen = guard.clone();
                let cm = &mut *guard;
                for ins in cm.rw.iter_mut().chain(cm.ro.iter_mut()) {
                    ins.phase = "RUNNING".into();
                }
                Ok(seen)
            });
        let health = f.shared(BTreeMap::<String, Health>::new());
        let probe = health.clone();
        f.engine.expect_health().returning(move |t| {
            let mut health = probe.lock().unwrap();
            let now = health
                .get(&t.pod_name)
                .copied()
                .unwrap_or(Health::ContainerNotFound);
            if now == Health::StartingUp {
                health.insert(t.pod_name.clone(), Health::Ok);
            }
            Ok(now)
        });
        for ins in create.iter().copied() {
            let calls = log.clone();
            f.pods
                .expect_ensure_pod()
                .withf(move |s| {
                    s.pod_name == ins.pod()
                        && s.cluster == cluster()
                        && s.physical_ins_id == ins.phys
                        && s.ins_id == ins.id
                        && s.ins_type == Some(ins.ty)
                        && s.port == 5432
                        && s.pvc_name == "pvc-c1"
                        && s.images.get("engineImage").map(String::as_str) == Some("engine:1.1.1")
                        && s.target_node.is_none()
                })
                .returning(move |s| {
                    calls.lock().unwrap().push(format!("pod {}", s.pod_name));
                    Ok(ready_on(ins.n))
                });
            if ins.ty == InsType::Rw {
                f.storage
                    .expect_set_write_lock()
                    .with(
                        eq(PvcRef {
                            namespace: "ns".into(),
                            name: "pvc-c1".into(),
                        }),
                        eq(format!("node-{}", ins.n)),
                    )
                    .returning(|_, _| Ok(Progress::Done(())));
                f.accounts
                    .expect_accounts()
                    .with(eq(cluster()))
                    .returning(|_| {
                        Ok(["aurora", "replicator"]
                            .map(|name| Account {
                                name: name.into(),
                                password: "secret".into(),
                                privilege: 7,
                            })
                            .to_vec())
                    });
                let calls = log.clone();
                f.engine
                    .expect_create_accounts()
                    .withf(move |t, a| {
                        *t == ins.target()
                            && a.iter()
                                .map(|a| a.name.as_str())
                                .eq(["aurora", "replicator"])
                    })
                    .times(1)
                    .returning(move |t, _| {
                        calls
                            .lock()
                            .unwrap()
                            .push(format!("accounts {}", t.pod_name));
                        Ok(())
                    });
            }
            f.pfsd
                .expect_start_pfsd()
                .withf(move |t, config, volume| {
                    *t == ins.target() && config.is_empty() && volume == "wwid-c1"
                })
                .returning(|_, _, _| Ok(Progress::Done(())));
            let calls = log.clone();
            f.engine
                .expect_install()
                .with(eq(ins.target()))
                .times(1)
                .returning(move |t| {
                    calls
                        .lock()
                        .unwrap()
                        .push(format!("install {}", t.pod_name));
                    Ok(())
                });
            let (calls, starting) = (log.clone(), health.clone());
            f.engine
                .expect_start()
                .with(eq(ins.target()))
                .times(1)
                .returning(move |t| {
                    calls.lock().unwrap().push(format!("start {}", t.pod_name));
                    starting
                        .lock()
                        .unwrap()
                        .insert(t.pod_name.clone(), Health::StartingUp);
                    Ok(())
                });
            let calls = log.clone();
            f.engine
                .expect_setup_log_agent()
                .with(eq(ins.target()))
                .times(1)
                .returning(move |t| {
                    calls
                        .lock()
                        .unwrap()
                        .push(format!("log agent {}", t.pod_name));
                    Ok(())
                });
            let (calls, members) = (log.clone(), cm.clone());
            f.cm.expect_add_ins()
                .with(eq(cluster()), eq(ins.cm_instance()))
                .times(1)
                .returning(move |_, added| {
                    calls
                        .lock()
                        .unwrap()
                        .push(format!("add {}", added.pod_name));
                    let entry = CmInsStatus {
                        phase: "STARTING".into(),
                        ..ins.cm_running()
                    };
                    let mut cm = members.lock().unwrap();
                    if added.role == Some(CmRole::Rw) {
                        cm.rw = Some(entry);
                    } else {
                        cm.ro.push(entry);
                    }
                    Ok(())
                });
        }
        log
    }

    fn assert_installed_on_its_node(f: &Fixture, ins: Ins) {
        let entry = f.instance(ins.id);
        assert_eq!(entry.node_name, format!("node-{}", ins.n), "{}", ins.id);
        assert_eq!(entry.net_info.working_host_ip, format!("10.0.0.{}", ins.n));
        assert_eq!(entry.host_client_ip, format!("192.168.0.{}", ins.n));
        assert!(entry.installed, "{} installed", ins.id);
    }

    fn assert_not_scheduled(f: &Fixture, ins: Ins) {
        let entry = f.instance(ins.id);
        assert_eq!(entry.node_name, "", "{}", ins.id);
        assert!(!entry.installed, "{}", ins.id);
    }

    #[tokio::test]
    async fn create_rw_pod_creates_installs_and_adds_the_rw_once() {
        let mut f = Fixture::creating();
        let log = world(&mut f, &[RW], &[]);
        let f = f.build();
        let waits = f.run_until_done("CreateRwPod", 10).await.unwrap();
        assert!(!waits.is_empty(), "waits for the engine and the CM");
        assert_installed_on_its_node(&f, RW);
        assert_eq!(f.stored().status.unwrap().leader_instance_host, "node-1");
        assert_not_scheduled(&f, RO_1);
        assert_not_scheduled(&f, RO_2);
        let steps: Vec<String> = log
            .lock()
            .unwrap()
            .iter()
            .filter(|c| !c.starts_with("pod "))
            .cloned()
            .collect();
        assert_eq!(
            steps,
            [
                "install c1-1001-1002",
                "start c1-1001-1002",
                "accounts c1-1001-1002",
                "log agent c1-1001-1002",
                "add c1-1001-1002",
            ]
        );
    }

    #[tokio::test]
    async fn create_rw_pod_run_again_after_done_creates_nothing() {
        let mut f = Fixture::creating();
        let log = world(&mut f, &[RW], &[]);
        let f = f.build();
        f.run_until_done("CreateRwPod", 10).await.unwrap();
        let (calls, writes) = (log.lock().unwrap().len(), f.writes());
        assert_eq!(f.run("CreateRwPod").await, DONE);
        assert_eq!(f.run("CreateRwPod").await, DONE);
        assert_eq!(
            log.lock().unwrap().len(),
            calls,
            "only the CM status is read"
        );
        assert_eq!(f.writes(), writes, "no write");
        assert_installed_on_its_node(&f, RW);
    }

    #[tokio::test]
    async fn create_rw_pod_waits_while_the_pod_is_pending() {
        let mut f = Fixture::creating();
        f.pods.expect_ensure_pod().returning(|_| {
            Ok(PodProgress::Pending {
                reason: "pod c1-1001-1002 is being scheduled".into(),
            })
        });
        let f = f.build();
        assert_eq!(
            f.run("CreateRwPod").await,
            pending("pod c1-1001-1002 is being scheduled")
        );
        assert_eq!(f.writes(), 0);
    }

    #[tokio::test]
    async fn create_rw_pod_waits_for_the_write_lock_before_starting_pfsd() {
        let mut f = Fixture::creating();
        f.pods.expect_ensure_pod().returning(|_| Ok(ready_on(1)));
        f.storage
            .expect_set_write_lock()
            .returning(|_, _| Ok(Progress::pending("write lock moving to node-1")));
        let f = f.build();
        assert_eq!(
            f.run("CreateRwPod").await,
            pending("write lock moving to node-1")
        );
        assert_eq!(
            f.instance(RW.id).node_name,
            "node-1",
            "the node is saved at once"
        );
        assert!(!f.instance(RW.id).installed);
    }

    #[tokio::test]
    async fn create_rw_pod_interrupts_when_no_node_is_available() {
        let mut f = Fixture::creating();
        f.pods.expect_ensure_pod().returning(|_| {
            Ok(PodProgress::Failed {
                failure: PodFailure::NoAvailableNode,
                message: "no node passes the health probe".into(),
            })
        });
        let f = f.build();
        let err = f.run("CreateRwPod").await.unwrap_err();
        assert!(err.starts_with("NO_AVAILABLE_NODE"), "{err}");
        assert!(err.contains("c1-1001-1002"), "{err}");
        assert_eq!(f.writes(), 0);
    }

    #[tokio::test]
    async fn create_rw_pod_fails_retryably_when_the_cm_reports_the_rw_failed() {
        let mut f = Fixture::creating().edit(|cr| {
            let status = cr.status.as_mut().unwrap();
            let rw = status.db_instance_status.get_mut("1002").unwrap();
            rw.node_name = "node-1".into();
            rw.host_client_ip = "192.168.0.1".into();
            rw.installed = true;
        });
        f.cm.expect_status().returning(|_| {
            Ok(CmStatus {
                rw: Some(CmInsStatus {
                    phase: "FAILED".into(),
                    ..RW.cm_running()
                }),
                ..CmStatus::default()
            })
        });
        let f = f.build();
        let err = f.run("CreateRwPod").await.unwrap_err();
        assert!(err.contains("FAILED"), "{err}");
        assert!(!err.starts_with("NO_AVAILABLE_NODE"));
    }

    /// The cluster after CreateRwPod: the RW scheduled, installed and running.
    fn rw_created() -> FixtureBuilder {
        Fixture::creating().edit(|cr| {
            let status = cr.status.as_mut().unwrap();
            status.leader_instance_host = "node-1".into();
            let rw = status.db_instance_status.get_mut("1002").unwrap();
            rw.node_name = "node-1".into();
            rw.net_info.working_host_ip = "10.0.0.1".into();
            rw.host_client_ip = "192.168.0.1".into();
            rw.installed = true;
        })
    }

    #[tokio::test]
    async fn create_ro_pods_creates_installs_and_adds_each_ro_once_in_id_order() {
        let mut f = rw_created();
        let log = world(&mut f, &[RO_1, RO_2], &[RW]);
        let f = f.build();
        f.run_until_done("CreateRoPods", 20).await.unwrap();
        assert_installed_on_its_node(&f, RO_1);
        assert_installed_on_its_node(&f, RO_2);
        let log = log.lock().unwrap().clone();
        let at = |call: &str| log.iter().position(|c| c == call).unwrap();
        assert!(
            at("add c1-1003-1004") < at("pod c1-1005-1006"),
            "the second RO starts after the first is in the CM: {log:?}"
        );
        assert!(
            !log.iter().any(|c| c.starts_with("accounts")),
            "no accounts on ROs"
        );
        assert_eq!(
            f.stored().status.unwrap().leader_instance_id,
            "1002",
            "the RW stays"
        );
    }

    #[tokio::test]
    async fn create_ro_pods_run_again_after_done_creates_nothing() {
        let mut f = rw_created();
        let log = world(&mut f, &[RO_1, RO_2], &[RW]);
        let f = f.build();
        f.run_until_done("CreateRoPods", 20).await.unwrap();
        let (calls, writes) = (log.lock().unwrap().len(), f.writes());
        assert_eq!(f.run("CreateRoPods").await, DONE);
        assert_eq!(f.run("CreateRoPods").await, DONE);
        assert_eq!(log.lock().unwrap().len(), calls);
        assert_eq!(f.writes(), writes);
    }

    #[tokio::test]
    async fn create_ro_pods_waits_while_a_pod_is_pending() {
        let mut f = rw_created();
        f.pods
            .expect_ensure_pod()
            .withf(|s| s.pod_name == "c1-1003-1004")
            .returning(|_| {
                Ok(PodProgress::Pending {
                    reason: "pulling image".into(),
                })
            });
        // The second RO is not touched while the first waits.
        let f = f.build();
        assert_eq!(f.run("CreateRoPods").await, pending("pulling image"));
        assert_eq!(f.writes(), 0);
    }

    #[tokio::test]
    async fn create_ro_pods_interrupts_when_no_node_is_available() {
        let mut f = rw_created();
        f.pods.expect_ensure_pod().returning(|_| {
            Ok(PodProgress::Failed {
                failure: PodFailure::NoAvailableNode,
                message: "every node already runs an instance of c1".into(),
            })
        });
        let f = f.build();
        let err = f.run("CreateRoPods").await.unwrap_err();
        assert!(err.starts_with("NO_AVAILABLE_NODE"), "{err}");
        assert!(err.contains("c1-1003-1004"), "{err}");
    }

    // ---- CreateNetwork -----------------------------------------------------------------

    #[tokio::test]
    async fn create_network_does_nothing() {
        // No expectation on any port: a call would fail the test.
        let f = Fixture::creating().build();
        assert_eq!(f.run("CreateNetwork").await, DONE);
        assert_eq!(f.writes(), 0);
    }

    #[tokio::test]
    async fn create_network_run_twice_does_nothing_twice() {
        let f = Fixture::running().build();
        let before = f.stored();
        assert_eq!(f.run("CreateNetwork").await, DONE);
        assert_eq!(f.run("CreateNetwork").await, DONE);
        assert_eq!(f.writes(), 0);
        assert_eq!(f.stored().status, before.status);
        assert_eq!(f.stored().spec, before.spec);
    }
}
