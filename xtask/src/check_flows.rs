//! `cargo xtask check-flows`: validates every flow directory under `workflows/`.

use std::path::{Path, PathBuf};

use wf_engine::{FlowLoader, RetryPolicy, YamlDirLoader};

/// Checks every `<root>/<resource type>/` directory; returns the report lines and whether
/// all were valid.
pub fn check_flows(root: &Path) -> Result<Vec<String>, Vec<String>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) => return Err(vec![format!("cannot read {}: {e}", root.display())]),
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Some(resource_type) = dir.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        match YamlDirLoader::new(root, resource_type).load(&RetryPolicy::default()) {
            Ok(catalog) => {
                let steps: usize = catalog.flows().map(|f| f.steps.len()).sum();
                ok.push(format!(
                    "{resource_type}: {} flows, {steps} steps, {} classes",
                    catalog.len(),
                    catalog.used_classes().len()
                ));
            }
            Err(err) => errors.push(format!("error: {err}")),
        }
    }
    if errors.is_empty() {
        Ok(ok)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_flows_are_valid() {
        let lines = check_flows(&crate::workspace_root().join("workflows")).expect("valid flows");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("quickstart: 1 flows, 3 steps")),
            "{lines:?}"
        );
    }

    #[test]
    fn broken_flow_is_reported_with_its_file() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("demo")).unwrap();
        std::fs::write(
            root.path().join("demo/Bad.yaml"),
            "flowName: Bad\nsteps: []\n",
        )
        .unwrap();
        let errors = check_flows(root.path()).unwrap_err();
        assert!(
            errors[0].contains("Bad.yaml") && errors[0].contains("has no steps"),
            "{errors:?}"
        );
    }
}
