//! Instance roles and engine states as the cluster manager reports them (domain §2.5
//! sync_ins_state_from_cm, set_rw, set_ins_state).
//!
//! The cluster manager (CM) names instances by endpoint, `clientIP:port`
//! ([`DbIns::endpoint`](super::DbIns::endpoint)). It is the authority on which instance is the RW (it fails over on
//! its own) and on each engine's phase; these functions fold its reports into the model.
//! Instances are looked up among the RW, the ROs and the temp ROs: a temp RO that was
//! added to the CM before the model recording its promotion was saved is still known.

use chrono::{DateTime, SecondsFormat, Utc};

use super::params::parse_cm_time;
use super::{DomainError, EngineState, SharedStorageCluster};
use crate::ports::CmStatus;

/// Folds a CM status report into the model: first the RW ([`set_rw`] with the CM's RW
/// endpoint), then the state of every instance the CM lists ([`set_ins_state`] with its
/// phase, no reason, and `startAt` parsed by [`parse_cm_time`]; a start time that does not
/// parse is stored empty, never as year 1).
///
/// Returns whether anything changed. All or nothing: on error the model is unchanged.
///
/// # Errors
/// [`DomainError::UnknownEndpoint`] when the CM lists an endpoint no instance has.
pub fn sync_from_cm(
    cluster: &mut SharedStorageCluster,
    status: &CmStatus,
) -> Result<bool, DomainError> {
    let mut next = cluster.clone();
    let mut changed = false;
    if let Some(rw) = status.rw.as_ref().filter(|rw| !rw.endpoint.is_empty()) {
        changed |= set_rw(&mut next, &rw.endpoint)?;
    }
    for ins in status.rw.iter().chain(&status.ro) {
        let started_at = parse_cm_time(&ins.start_at);
        changed |= set_ins_state(&mut next, &ins.endpoint, &ins.phase, "", started_at)?;
    }
    if changed {
        *cluster = next;
    }
    Ok(changed)
}

/// Makes the instance at `endpoint` the RW (the CM failed over or switched over to it): when
/// it is not already the RW, it leaves the ROs (or the temp ROs) and the former RW becomes
/// an RO. Returns whether the RW changed. On error the model is unchanged.
///
/// # Errors
/// [`DomainError::UnknownEndpoint`] when no RO or temp RO is at `endpoint`.
pub fn set_rw(cluster: &mut SharedStorageCluster, endpoint: &str) -> Result<bool, DomainError> {
    if cluster
        .rw
        .as_ref()
        .is_some_and(|rw| rw.endpoint() == endpoint)
    {
        return Ok(false);
    }
    let id = cluster
        .ros
        .values()
        .chain(cluster.temp_ros.values())
        .find(|ins| ins.endpoint() == endpoint)
        .map(|ins| ins.ins_id.clone());
    match id {
        Some(id) => Ok(set_rw_id(cluster, &id)),
        None => Err(unknown_endpoint(cluster, endpoint)),
    }
}

/// Makes the RO or temp RO `ins_id` the RW, the former RW becoming an RO, as [`set_rw`]
/// does by endpoint. Returns whether the RW changed: `false` when `ins_id` is already the
/// RW or names no RO or temp RO (the model is then unchanged).
pub fn set_rw_id(cluster: &mut SharedStorageCluster, ins_id: &str) -> bool {
    let new_rw = match cluster.ros.remove(ins_id) {
        Some(ro) => ro,
        None => match cluster.temp_ros.remove(ins_id) {
            Some(temp) => temp,
            None => return false,
        },
    };
    if let Some(old_rw) = cluster.rw.replace(new_rw) {
        cluster.ros.insert(old_rw.ins_id.clone(), old_rw);
    }
    true
}

/// Records the engine state `state` of every instance at `endpoint` whose current state
/// string differs: the current state moves to the last state, and the new current state
/// is `{state, reason, startAt}` with `startAt` as RFC 3339 (`""` when `started_at` is
/// `None`). Returns whether a state changed.
///
/// # Errors
/// [`DomainError::UnknownEndpoint`] when no instance is at `endpoint`.
pub fn set_ins_state(
    cluster: &mut SharedStorageCluster,
    endpoint: &str,
    state: &str,
    reason: &str,
    started_at: Option<DateTime<Utc>>,
) -> Result<bool, DomainError> {
    let mut found = false;
    let mut changed = false;
    let instances = cluster
        .rw
        .iter_mut()
        .chain(cluster.ros.values_mut())
        .chain(cluster.temp_ros.values_mut());
    for ins in instances.filter(|ins| ins.endpoint() == endpoint) {
        found = true;
        if ins.current_state.state != state {
            let current = EngineState {
                state: state.to_owned(),
                reason: reason.to_owned(),
                started_at: started_at
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
                    .unwrap_or_default(),
            };
            ins.last_state = std::mem::replace(&mut ins.current_state, current);
            changed = true;
        }
    }
    if found {
        Ok(changed)
    } else {
        Err(unknown_endpoint(cluster, endpoint))
    }
}

fn unknown_endpoint(cluster: &SharedStorageCluster, endpoint: &str) -> DomainError {
    DomainError::UnknownEndpoint {
        cluster: cluster.qualified_name(),
        endpoint: endpoint.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DbIns;
    use crate::ports::CmInsStatus;

    fn ins(id: &str, ip: &str, state: &str) -> DbIns {
        DbIns {
            physical_ins_id: format!("p{id}"),
            ins_id: id.into(),
            client_ip: ip.into(),
            port: 5432,
            current_state: EngineState {
                state: state.into(),
                reason: "r".into(),
                started_at: "2024-01-01T00:00:00Z".into(),
            },
            ..DbIns::default()
        }
    }

    /// RW 1 at 10.0.0.1, ROs 2 at 10.0.0.2 and 3 at 10.0.0.3, all RUNNING.
    fn cluster() -> SharedStorageCluster {
        let mut c = SharedStorageCluster {
            name: "pc".into(),
            namespace: "db".into(),
            port: 5432,
            rw: Some(ins("1", "10.0.0.1", "RUNNING")),
            ..SharedStorageCluster::default()
        };
        c.ros.insert("2".into(), ins("2", "10.0.0.2", "RUNNING"));
        c.ros.insert("3".into(), ins("3", "10.0.0.3", "RUNNING"));
        c
    }

    fn cm(ip: &str, phase: &str, start_at: &str) -> CmInsStatus {
        CmInsStatus {
            endpoint: format!("{ip}:5432"),
            pod_name: String::new(),
            phase: phase.into(),
            start_at: start_at.into(),
        }
    }

    fn report(rw: CmInsStatus, ro: Vec<CmInsStatus>) -> CmStatus {
        CmStatus {
            phase: "RunningPhase".into(),
            ha_enabled: true,
            rw: Some(rw),
            ro,
        }
    }

    fn steady() -> CmStatus {
        report(
            cm("10.0.0.1", "RUNNING", "2024-01-01 00:00:00"),
            vec![cm("10.0.0.2", "RUNNING", ""), cm("10.0.0.3", "RUNNING", "")],
        )
    }

    #[test]
    fn sync_from_cm_without_news_changes_nothing() {
        let mut c = cluster();
        assert!(!sync_from_cm(&mut c, &steady()).unwrap());
        assert_eq!(c, cluster());
    }

    #[test]
    fn sync_from_cm_shifts_a_changed_state_into_last_state() {
        let mut c = cluster();
        let mut status = steady();
        status.ro[1] = cm("10.0.0.3", "FAILED", "2024-05-01 13:04:05");
        assert!(sync_from_cm(&mut c, &status).unwrap());
        let ro = &c.ros["3"];
        assert_eq!(ro.last_state, cluster().ros["3"].current_state);
        assert_eq!(
            ro.current_state,
            EngineState {
                state: "FAILED".into(),
                reason: String::new(),
                started_at: "2024-05-01T13:04:05Z".into(),
            }
        );
        assert_eq!(c.ros["2"], cluster().ros["2"]);
        assert_eq!(c.rw, cluster().rw);
    }

    #[test]
    fn sync_from_cm_follows_a_failover() {
        let mut c = cluster();
        let status = report(
            cm("10.0.0.2", "RUNNING", ""),
            vec![cm("10.0.0.1", "RUNNING", ""), cm("10.0.0.3", "RUNNING", "")],
        );
        assert!(sync_from_cm(&mut c, &status).unwrap());
        assert_eq!(c.rw_id(), "2");
        assert_eq!(c.ros.keys().collect::<Vec<_>>(), ["1", "3"]);
        assert_eq!(c.ros["1"].current_state.state, "RUNNING");
        assert!(
            !sync_from_cm(&mut c, &status).unwrap(),
            "second report is no news"
        );
    }

    #[test]
    fn sync_from_cm_promotes_a_temp_ro_the_cm_already_knows() {
        let mut c = cluster();
        c.temp_ros
            .insert("9".into(), ins("9", "10.0.0.9", "RUNNING"));
        let status = report(
            cm("10.0.0.9", "RUNNING", ""),
            vec![cm("10.0.0.1", "RUNNING", "")],
        );
        assert!(sync_from_cm(&mut c, &status).unwrap());
        assert_eq!(c.rw_id(), "9");
        assert!(c.temp_ros.is_empty());
        assert!(c.ros.contains_key("1"));
    }

    #[test]
    fn sync_from_cm_unknown_endpoint_is_an_error_and_changes_nothing() {
        let mut c = cluster();
        let mut status = steady();
        status.ro[0].phase = "STOPPED".into();
        status.ro.push(cm("10.9.9.9", "RUNNING", ""));
        assert_eq!(
            sync_from_cm(&mut c, &status),
            Err(DomainError::UnknownEndpoint {
                cluster: "db/pc".into(),
                endpoint: "10.9.9.9:5432".into()
            })
        );
        assert_eq!(c, cluster());

        let status = report(cm("10.9.9.9", "RUNNING", ""), vec![]);
        assert!(matches!(
            sync_from_cm(&mut c, &status),
            Err(DomainError::UnknownEndpoint { .. })
        ));
        assert_eq!(c, cluster());
    }

    #[test]
    fn weakness_14_bad_cm_start_time_is_stored_empty() {
        let mut c = cluster();
        let mut status = steady();
        status.ro[0] = cm("10.0.0.2", "STOPPED", "not a time");
        assert!(sync_from_cm(&mut c, &status).unwrap());
        assert_eq!(c.ros["2"].current_state.state, "STOPPED");
        assert_eq!(c.ros["2"].current_state.started_at, "");
    }

    #[test]
    fn set_ins_state_records_the_reason() {
        let mut c = cluster();
        let at = parse_cm_time("2024-05-01 00:00:01");
        assert!(set_ins_state(&mut c, "10.0.0.1:5432", "STOPPING", "maintenance", at).unwrap());
        let rw = c.rw.as_ref().unwrap();
        assert_eq!(rw.current_state.reason, "maintenance");
        assert_eq!(rw.current_state.started_at, "2024-05-01T00:00:01Z");
        assert_eq!(rw.last_state.state, "RUNNING");
        assert!(!set_ins_state(&mut c, "10.0.0.1:5432", "STOPPING", "again", None).unwrap());
    }

    #[test]
    fn set_rw_id_swaps_roles_and_ignores_unknown_or_current_ids() {
        let mut c = cluster();
        assert!(!set_rw_id(&mut c, "1"), "already the RW");
        assert!(!set_rw_id(&mut c, "nope"));
        assert_eq!(c, cluster());
        assert!(set_rw_id(&mut c, "3"));
        assert_eq!(c.rw_id(), "3");
        assert_eq!(c.ros.keys().collect::<Vec<_>>(), ["1", "2"]);
    }

    #[test]
    fn set_rw_to_the_current_rw_changes_nothing() {
        let mut c = cluster();
        assert!(!set_rw(&mut c, "10.0.0.1:5432").unwrap());
        assert_eq!(c, cluster());
    }
}
