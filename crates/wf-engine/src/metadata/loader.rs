//! Where flow YAML comes from: a directory per resource type, or text given in code.

use std::path::{Path, PathBuf};

use super::{FlowCatalog, MetadataError};
use crate::RetryPolicy;

/// Files whose name ends with this define step groups; all other `*.yaml` files define flows.
pub const GROUP_FILE_SUFFIX: &str = "_step_group.yaml";

/// One YAML file's text and where it came from (used in every error message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowSource {
    /// The file's path (or any name for text given in code).
    pub path: PathBuf,
    /// The YAML text.
    pub text: String,
}

impl FlowSource {
    /// A source from a name and YAML text.
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        FlowSource {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// Loads the flow catalog of one resource type.
pub trait FlowLoader: Send + Sync {
    /// Reads, parses, expands and validates the flows; `defaults` is the retry policy
    /// where YAML sets none.
    fn load(&self, defaults: &RetryPolicy) -> Result<FlowCatalog, MetadataError>;
}

/// The default loader: every `*.yaml` file in `<root>/<resource type>/`, in name order.
#[derive(Clone, Debug)]
pub struct YamlDirLoader {
    dir: PathBuf,
}

impl YamlDirLoader {
    /// A loader for `<root>/<resource_type>/`.
    pub fn new(root: impl AsRef<Path>, resource_type: &str) -> Self {
        YamlDirLoader {
            dir: root.as_ref().join(resource_type),
        }
    }

    /// The directory read.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The YAML files of the directory with their text, in name order.
    pub fn read_sources(&self) -> Result<Vec<FlowSource>, MetadataError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| MetadataError::Io { path, source }
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let path = entry.map_err(io(&self.dir))?.path();
            if path.extension().is_some_and(|ext| ext == "yaml") && path.is_file() {
                paths.push(path);
            }
        }
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let text = std::fs::read_to_string(&path).map_err(io(&path))?;
                Ok(FlowSource { path, text })
            })
            .collect()
    }
}

impl FlowLoader for YamlDirLoader {
    fn load(&self, defaults: &RetryPolicy) -> Result<FlowCatalog, MetadataError> {
        FlowCatalog::from_sources(&self.read_sources()?, defaults)
    }
}

/// A loader over YAML text held in memory: for tests, examples and embedded flows.
#[derive(Clone, Debug, Default)]
pub struct StaticLoader {
    sources: Vec<FlowSource>,
}

impl StaticLoader {
    /// A loader with no flows yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one YAML file's text under a name used in error messages.
    #[must_use]
    pub fn with(mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.sources.push(FlowSource::new(path, text));
        self
    }
}

impl FlowLoader for StaticLoader {
    fn load(&self, defaults: &RetryPolicy) -> Result<FlowCatalog, MetadataError> {
        FlowCatalog::from_sources(&self.sources, defaults)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_loader_reads_yaml_files_of_the_resource_type_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("shared");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(
            dir.join("Create.yaml"),
            "flowName: Create\nsteps:\n  - {className: demo.A, stepName: A}\n",
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), "not yaml").unwrap();
        let catalog = YamlDirLoader::new(root.path(), "shared")
            .load(&RetryPolicy::default())
            .unwrap();
        assert_eq!(catalog.len(), 1);
        assert!(catalog.get("Create").is_some());
    }

    #[test]
    fn missing_directory_error_names_the_path() {
        let root = tempfile::tempdir().unwrap();
        let err = YamlDirLoader::new(root.path(), "nope")
            .load(&RetryPolicy::default())
            .unwrap_err();
        assert!(matches!(err, MetadataError::Io { .. }));
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
