//! The flows of `workflows/shared/`, embedded in the crate so the binary runs anywhere.

use wf_engine::StaticLoader;

macro_rules! embed {
    ($file:literal) => {
        (
            concat!("workflows/shared/", $file),
            include_str!(concat!("../../../workflows/shared/", $file)),
        )
    };
}

/// The flow files (path as in the repository, YAML text).
pub const SHARED_FLOWS: [(&str, &str); 14] = [
    embed!("CreateSharedStorageCluster.yaml"),
    embed!("ExtendStorageSharedStorageCluster.yaml"),
    embed!("SharedStorageClusterAddRo.yaml"),
    embed!("SharedStorageClusterFlushParams.yaml"),
    embed!("SharedStorageClusterMigrateRo.yaml"),
    embed!("SharedStorageClusterMigrateRw.yaml"),
    embed!("SharedStorageClusterModifyClass.yaml"),
    embed!("SharedStorageClusterRebuild.yaml"),
    embed!("SharedStorageClusterRebuildRo.yaml"),
    embed!("SharedStorageClusterRemoveRo.yaml"),
    embed!("SharedStorageClusterRestartCluster.yaml"),
    embed!("SharedStorageClusterRestartIns.yaml"),
    embed!("SharedStorageClusterSwitchRw.yaml"),
    embed!("SharedStorageClusterUpgradeMinorVersion.yaml"),
];

/// A loader over the embedded flows.
pub fn embedded_loader() -> StaticLoader {
    SHARED_FLOWS
        .iter()
        .fold(StaticLoader::new(), |loader, (path, text)| {
            loader.with(*path, *text)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_engine::{FlowLoader, RetryPolicy, YamlDirLoader};

    #[test]
    fn embedded_flows_are_the_repository_flows() {
        let embedded = embedded_loader().load(&RetryPolicy::default()).unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../workflows");
        let on_disk = YamlDirLoader::new(root, "shared")
            .load(&RetryPolicy::default())
            .unwrap();
        assert_eq!(embedded.len(), on_disk.len(), "a flow file is not embedded");
        for flow in on_disk.flows() {
            assert_eq!(
                embedded.get(&flow.name).map(|f| &f.steps),
                Some(&flow.steps),
                "{}",
                flow.name
            );
        }
    }
}
