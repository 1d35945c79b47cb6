//! The MPDCluster custom resource (`mpd.polardb.aliyun.com/v1`), with the wire names of the
//! original so existing resources keep working.

pub mod annotations;
mod spec;
mod status;

pub use spec::{
    ClassInfo, DbProxyInfo, MPDCluster, MPDClusterSpec, NetCfg, ResourceAdditional, ShareStore,
    VersionCfg,
};
pub use status::{
    ClusterManagerStatus, EngineStateRecord, InstanceStatus, MPDClusterStatus, NetInfo,
};

/// The finalizer the first create step adds and the deletion handler removes.
pub const FINALIZER: &str = "mpd.finalizers.polardb.aliyun.com";

/// `spec.dbClusterType` of the clusters this crate handles.
pub const SHARED_CLUSTER_TYPE: &str = "share";

/// `insType` values of `dbInstanceStatus` entries.
pub mod ins_type {
    /// The read-write instance.
    pub const RW: &str = "rw";
    /// A read-only instance.
    pub const RO: &str = "ro";
    /// A replacement instance that is not yet an RO.
    pub const TEMP_RO: &str = "tempro";
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::Value;

    use super::MPDCluster;

    fn crd() -> Value {
        serde_json::to_value(MPDCluster::crd()).expect("the CRD serialises")
    }

    fn spec_property(crd: &Value, path: &[&str]) -> Value {
        let mut at = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
        for key in path {
            at = &at["properties"][key];
        }
        at.clone()
    }

    #[test]
    fn kubectl_get_shows_status_leader_ro_count_ready_and_age_and_knows_mpd() {
        let crd = crd();
        assert_eq!(
            crd["spec"]["names"]["shortNames"],
            serde_json::json!(["mpd"])
        );
        let columns: Vec<(String, String)> = crd["spec"]["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .expect("printer columns")
            .iter()
            .map(|c| {
                (
                    c["name"].as_str().unwrap_or_default().to_owned(),
                    c["jsonPath"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["Status", "Leader", "RO", "Ready", "Age"]);
        assert_eq!(columns[0].1, ".status.clusterStatus");
        assert_eq!(
            columns[3].1,
            r#".status.conditions[?(@.type=="Ready")].status"#
        );
        let description = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(description.contains("shared storage"), "{description}");
    }

    #[test]
    fn the_schema_refuses_a_negative_follower_num_an_unknown_cluster_type_and_a_bad_port() {
        let crd = crd();
        assert_eq!(spec_property(&crd, &["followerNum"])["minimum"], 0.0);
        assert_eq!(
            spec_property(&crd, &["dbClusterType"])["enum"],
            serde_json::json!(["share", "local"])
        );
        let port = spec_property(&crd, &["netCfg", "engineStartPort"]);
        assert_eq!(
            (port["minimum"].as_f64(), port["maximum"].as_f64()),
            (Some(1.0), Some(65535.0))
        );
    }
}
