//! The initial instances of a new cluster (domain §2.5 init_meta, step 2).

use super::fs_id::next_fs_ids;
use super::{DbIns, DomainError, IdLayout, SharedStorageCluster};

/// Builds the RW and the ROs of a new cluster from its allocated ids and sets its logical
/// id.
///
/// Each instance gets `insName = insId`, the pod name `<cluster>-<phys>-<ins>` in the
/// cluster's namespace, the cluster's engine port and its own fsId from the pool. The ROs
/// are the pairs of `layout.ros` (the caller sizes the layout from `roReplicas`).
///
/// Idempotent: a cluster that already has an RW is left as it is, whatever `layout` says.
/// The cluster status and the CM port are not touched here (init_meta sets them).
///
/// # Errors
/// [`DomainError::FsIdsExhausted`] when the pool has too few free fsIds; the cluster is then
/// unchanged.
pub fn build_initial_instances(
    cluster: &mut SharedStorageCluster,
    layout: &IdLayout,
) -> Result<(), DomainError> {
    if cluster.rw.is_some() {
        return Ok(());
    }
    let mut fs_ids = next_fs_ids(cluster, 1 + layout.ros.len())?.into_iter();
    let mut instance = |(phys, ins): &(String, String)| -> Result<DbIns, DomainError> {
        let fs_id = fs_ids.next().ok_or_else(|| DomainError::FsIdsExhausted {
            cluster: cluster.qualified_name(),
        })?;
        Ok(new_instance(cluster, phys, ins, fs_id))
    };
    let rw = instance(&layout.rw)?;
    let ros = layout
        .ros
        .iter()
        .map(|pair| instance(pair).map(|ro| (ro.ins_id.clone(), ro)))
        .collect::<Result<Vec<_>, _>>()?;
    cluster.logic_ins_id.clone_from(&layout.logic_id);
    cluster.rw = Some(rw);
    cluster.ros.extend(ros);
    Ok(())
}

/// A new, not yet scheduled instance of `cluster`: `insName = insId`, pod
/// `<cluster>-<phys>-<ins>` in the cluster's namespace, the cluster's port.
pub(crate) fn new_instance(
    cluster: &SharedStorageCluster,
    phys: &str,
    ins: &str,
    fs_id: String,
) -> DbIns {
    DbIns {
        physical_ins_id: phys.to_owned(),
        ins_id: ins.to_owned(),
        ins_name: ins.to_owned(),
        pod_name: DbIns::pod_name_for(&cluster.name, phys, ins),
        pod_namespace: cluster.namespace.clone(),
        port: cluster.port,
        fs_id,
        ..DbIns::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::layout_ids;

    fn empty_cluster() -> SharedStorageCluster {
        SharedStorageCluster {
            name: "pc".into(),
            namespace: "db".into(),
            port: 5432,
            ro_replicas: 2,
            ..SharedStorageCluster::default()
        }
    }

    fn layout() -> IdLayout {
        layout_ids("db/pc", &[1000, 1001, 1002, 1003, 1004, 1005, 1006], 2).unwrap()
    }

    #[test]
    fn initial_instances_are_the_rw_and_ros_of_the_layout() {
        let mut c = empty_cluster();
        build_initial_instances(&mut c, &layout()).unwrap();
        assert_eq!(c.logic_ins_id, "1000");
        let rw = c.rw.as_ref().unwrap();
        assert_eq!(
            rw,
            &DbIns {
                physical_ins_id: "1001".into(),
                ins_id: "1002".into(),
                ins_name: "1002".into(),
                pod_name: "pc-1001-1002".into(),
                pod_namespace: "db".into(),
                port: 5432,
                fs_id: "5".into(),
                ..DbIns::default()
            }
        );
        assert_eq!(c.ros.keys().collect::<Vec<_>>(), ["1004", "1006"]);
        let ro = &c.ros["1006"];
        assert_eq!(ro.physical_ins_id, "1005");
        assert_eq!(ro.ins_name, "1006");
        assert_eq!(ro.pod_name, "pc-1005-1006");
        assert_eq!(ro.pod_namespace, "db");
        assert_eq!(ro.port, 5432);
        assert!(c.temp_ros.is_empty());
    }

    #[test]
    fn initial_instances_have_distinct_fs_ids() {
        let mut c = empty_cluster();
        build_initial_instances(&mut c, &layout()).unwrap();
        let fs: Vec<&str> = c.all_instances().map(|i| i.fs_id.as_str()).collect();
        assert_eq!(fs, ["5", "6", "7"]);
    }

    #[test]
    fn initial_instances_are_not_rebuilt_when_an_rw_exists() {
        let mut c = empty_cluster();
        build_initial_instances(&mut c, &layout()).unwrap();
        let before = c.clone();
        let other = layout_ids("db/pc", &[1, 2, 3, 4, 5], 1).unwrap();
        build_initial_instances(&mut c, &other).unwrap();
        assert_eq!(c, before);
    }

    #[test]
    fn initial_instances_with_too_few_fs_ids_leave_the_cluster_unchanged() {
        let mut c = empty_cluster();
        let ids: Vec<u64> = (1..=45).collect();
        let big = layout_ids("db/pc", &ids, 21).unwrap();
        let before = c.clone();
        assert!(matches!(
            build_initial_instances(&mut c, &big),
            Err(DomainError::FsIdsExhausted { .. })
        ));
        assert_eq!(c, before);
    }
}
