//! Which MPDClusters this operator handles: `spec.operatorName` equal to
//! `--filter-operator-name` (an empty name accepts every operator name) and
//! `spec.dbClusterType` `share`. Other clusters are never reconciled, not even their
//! deletion (domain weakness 15: the original loaded local clusters as shared there).

use crate::crd::{MPDCluster, SHARED_CLUSTER_TYPE};

/// The default `--filter-operator-name`.
pub const DEFAULT_OPERATOR_NAME: &str = "polar-mpd";

/// The filter on watched MPDClusters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterFilter {
    /// The `spec.operatorName` to handle; empty: any.
    pub operator_name: String,
}

impl Default for ClusterFilter {
    fn default() -> Self {
        ClusterFilter {
            operator_name: DEFAULT_OPERATOR_NAME.to_owned(),
        }
    }
}

impl ClusterFilter {
    /// A filter for `operator_name` (empty: any).
    pub fn new(operator_name: impl Into<String>) -> Self {
        ClusterFilter {
            operator_name: operator_name.into(),
        }
    }

    /// Whether this operator handles `cr`.
    pub fn admits(&self, cr: &MPDCluster) -> bool {
        (self.operator_name.is_empty() || cr.spec.operator_name == self.operator_name)
            && cr.spec.db_cluster_type == SHARED_CLUSTER_TYPE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::MPDClusterSpec;

    fn cr(operator: &str, kind: &str) -> MPDCluster {
        MPDCluster::new(
            "c1",
            MPDClusterSpec {
                operator_name: operator.into(),
                db_cluster_type: kind.into(),
                ..MPDClusterSpec::default()
            },
        )
    }

    #[test]
    fn only_shared_clusters_of_this_operator_name_are_handled() {
        let filter = ClusterFilter::default();
        assert!(filter.admits(&cr("polar-mpd", "share")));
        assert!(!filter.admits(&cr("other", "share")));
        assert!(!filter.admits(&cr("polar-mpd", "local")));
        assert!(!filter.admits(&cr("", "share")));
    }

    #[test]
    fn an_empty_operator_name_accepts_any_operator_but_still_only_shared_clusters() {
        let filter = ClusterFilter::new("");
        assert!(filter.admits(&cr("other", "share")));
        assert!(filter.admits(&cr("", "share")));
        assert!(!filter.admits(&cr("other", "local")));
    }
}
