//! Id layout of a new cluster and the order of instance ids (domain §2.2).
//!
//! Numeric ids come from one global counter and are stored as decimal strings. Creating a
//! cluster with N ROs takes `2*(N+1)+1` of them: `[0]` is the logical cluster id, `[1]`/`[2]`
//! the RW's physical/instance ids, and each following pair an RO's.

use std::cmp::Ordering;

use super::DomainError;

/// The ids of a new cluster, as decimal strings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdLayout {
    /// The logical cluster id (`status.logicId`).
    pub logic_id: String,
    /// The RW's `(physicalInsId, insId)`.
    pub rw: (String, String),
    /// Each RO's `(physicalInsId, insId)`, in allocation order.
    pub ros: Vec<(String, String)>,
}

/// How many ids a cluster with `ro_count` ROs needs: `2*(ro_count+1)+1`.
pub fn ids_needed(ro_count: usize) -> usize {
    2 * (ro_count + 1) + 1
}

/// Lays allocated `ids` out as a cluster with `ro_count` ROs.
///
/// `cluster` (`namespace/name`) only names the cluster in errors. Ids beyond
/// [`ids_needed`]`(ro_count)` are ignored.
///
/// # Errors
/// [`DomainError::NotEnoughIds`] when fewer than [`ids_needed`]`(ro_count)` ids are given.
pub fn layout_ids(cluster: &str, ids: &[u64], ro_count: usize) -> Result<IdLayout, DomainError> {
    let needed = ids_needed(ro_count);
    if ids.len() < needed {
        return Err(DomainError::NotEnoughIds {
            cluster: cluster.to_owned(),
            needed,
            got: ids.len(),
        });
    }
    let pair = |i: usize| (ids[i].to_string(), ids[i + 1].to_string());
    Ok(IdLayout {
        logic_id: ids[0].to_string(),
        rw: pair(1),
        ros: (0..ro_count).map(|r| pair(3 + 2 * r)).collect(),
    })
}

/// Orders instance ids the way the allocator hands them out: numerically (`"999"` <
/// `"1000"`, weakness 13). Ids that are not decimal numbers come after every numeric id and
/// compare as strings among themselves.
pub fn compare_ins_ids(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y).then_with(|| a.cmp(b)),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_needed_is_two_per_instance_plus_the_logic_id() {
        assert_eq!(ids_needed(0), 3);
        assert_eq!(ids_needed(1), 5);
        assert_eq!(ids_needed(3), 9);
    }

    #[test]
    fn layout_ids_takes_logic_id_then_rw_pair_then_ro_pairs() {
        let layout = layout_ids("ns/c", &[1000, 1001, 1002, 1003, 1004, 1005, 1006], 2).unwrap();
        assert_eq!(layout.logic_id, "1000");
        assert_eq!(layout.rw, ("1001".to_owned(), "1002".to_owned()));
        assert_eq!(
            layout.ros,
            vec![
                ("1003".to_owned(), "1004".to_owned()),
                ("1005".to_owned(), "1006".to_owned())
            ]
        );
    }

    #[test]
    fn layout_ids_without_ros_has_only_the_rw() {
        let layout = layout_ids("ns/c", &[7, 8, 9], 0).unwrap();
        assert_eq!(layout.logic_id, "7");
        assert_eq!(layout.rw, ("8".to_owned(), "9".to_owned()));
        assert!(layout.ros.is_empty());
    }

    #[test]
    fn layout_ids_ignores_extra_ids() {
        let layout = layout_ids("ns/c", &[1, 2, 3, 4, 5], 0).unwrap();
        assert!(layout.ros.is_empty());
    }

    #[test]
    fn layout_ids_short_is_not_enough_ids() {
        assert_eq!(
            layout_ids("ns/c", &[1, 2, 3, 4], 1),
            Err(DomainError::NotEnoughIds {
                cluster: "ns/c".to_owned(),
                needed: 5,
                got: 4
            })
        );
    }

    #[test]
    fn weakness_13_numeric_id_comparison() {
        assert_eq!(compare_ins_ids("999", "1000"), Ordering::Less);
        assert_eq!(compare_ins_ids("1000", "999"), Ordering::Greater);
        assert_eq!(compare_ins_ids("1000", "1000"), Ordering::Equal);
        assert_eq!(compare_ins_ids("99999", "abc"), Ordering::Less);
        assert_eq!(compare_ins_ids("abc", "1"), Ordering::Greater);
        assert_eq!(compare_ins_ids("abc", "abd"), Ordering::Less);
        let mut ids = vec!["1000", "x", "999", "10000", "b"];
        ids.sort_by(|a, b| compare_ins_ids(a, b));
        assert_eq!(ids, ["999", "1000", "10000", "b", "x"]);
    }
}
