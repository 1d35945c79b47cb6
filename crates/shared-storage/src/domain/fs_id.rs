//! The PFS host id ("fsId") pool of a cluster (domain §2.2).
//!
//! Every instance that mounts the shared PFS needs a host id that no other instance of the
//! cluster uses: the smallest of `5..=25` not taken by the RW, an RO or a temp RO. The pool
//! is per cluster, so no lock beyond the cluster's own is needed.

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use super::{DomainError, SharedStorageCluster};

/// The PFS host ids a cluster may use.
pub const FS_ID_POOL: RangeInclusive<u32> = 5..=25;

/// The smallest free PFS host id of `cluster`, as a decimal string.
///
/// # Errors
/// [`DomainError::FsIdsExhausted`] when all 21 ids are in use (weakness 5: never `""`).
pub fn next_fs_id(cluster: &SharedStorageCluster) -> Result<String, DomainError> {
    let mut ids = next_fs_ids(cluster, 1)?;
    ids.pop().ok_or_else(|| exhausted(cluster))
}

/// The `n` smallest free PFS host ids of `cluster`, increasing; for allocating several
/// instances at once without writing them into the cluster first.
///
/// # Errors
/// [`DomainError::FsIdsExhausted`] when fewer than `n` ids are free; nothing is allocated.
pub fn next_fs_ids(cluster: &SharedStorageCluster, n: usize) -> Result<Vec<String>, DomainError> {
    let used = used_fs_ids(cluster);
    let free: Vec<String> = FS_ID_POOL
        .filter(|id| !used.contains(id))
        .take(n)
        .map(|id| id.to_string())
        .collect();
    if free.len() < n {
        return Err(exhausted(cluster));
    }
    Ok(free)
}

/// The pool ids the RW, ROs and temp ROs hold. Values are read as numbers, so `"05"` holds
/// `5`; values that are not numbers hold nothing of the pool.
fn used_fs_ids(cluster: &SharedStorageCluster) -> BTreeSet<u32> {
    cluster
        .all_instances()
        .filter_map(|ins| ins.fs_id.trim().parse::<u32>().ok())
        .collect()
}

fn exhausted(cluster: &SharedStorageCluster) -> DomainError {
    DomainError::FsIdsExhausted {
        cluster: cluster.qualified_name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::DbIns;

    fn ins(id: &str, fs_id: &str) -> DbIns {
        DbIns {
            physical_ins_id: format!("p{id}"),
            ins_id: id.to_owned(),
            fs_id: fs_id.to_owned(),
            ..DbIns::default()
        }
    }

    fn cluster(rw: Option<&str>, ros: &[&str], temps: &[&str]) -> SharedStorageCluster {
        let mut c = SharedStorageCluster {
            name: "c".into(),
            namespace: "ns".into(),
            rw: rw.map(|fs| ins("rw", fs)),
            ..SharedStorageCluster::default()
        };
        for (i, fs) in ros.iter().enumerate() {
            c.ros.insert(format!("ro{i}"), ins(&format!("ro{i}"), fs));
        }
        for (i, fs) in temps.iter().enumerate() {
            c.temp_ros
                .insert(format!("t{i}"), ins(&format!("t{i}"), fs));
        }
        c
    }

    #[test]
    fn fs_id_of_an_empty_cluster_is_5() {
        assert_eq!(next_fs_id(&cluster(None, &[], &[])).unwrap(), "5");
    }

    #[test]
    fn fs_id_is_the_smallest_unused_by_rw_ro_and_temp_ro() {
        assert_eq!(
            next_fs_id(&cluster(Some("5"), &["6"], &["8"])).unwrap(),
            "7"
        );
        assert_eq!(next_fs_id(&cluster(Some("6"), &["7"], &[])).unwrap(), "5");
        assert_eq!(
            next_fs_id(&cluster(Some("5"), &["6"], &["7"])).unwrap(),
            "8"
        );
    }

    #[test]
    fn fs_id_ignores_values_outside_the_pool() {
        assert_eq!(
            next_fs_id(&cluster(Some("1"), &["", "x"], &["26"])).unwrap(),
            "5"
        );
    }

    #[test]
    fn fs_ids_are_distinct_and_increasing() {
        let ids = next_fs_ids(&cluster(Some("6"), &[], &[]), 3).unwrap();
        assert_eq!(ids, ["5", "7", "8"]);
    }

    #[test]
    fn weakness_5_fs_id_pool_exhausted_is_an_error() {
        let used: Vec<String> = (6..=25).map(|i| i.to_string()).collect();
        let used: Vec<&str> = used.iter().map(String::as_str).collect();
        let mut c = cluster(Some("5"), &used[..10], &used[10..]);
        assert_eq!(c.all_instances().count(), 21);
        let err = DomainError::FsIdsExhausted {
            cluster: "ns/c".into(),
        };
        assert_eq!(next_fs_id(&c), Err(err.clone()));
        c.temp_ros.clear();
        assert_eq!(next_fs_ids(&c, 11), Err(err));
        assert_eq!(next_fs_ids(&c, 10).unwrap().len(), 10);
    }
}
