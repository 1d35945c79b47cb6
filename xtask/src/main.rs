//! Project tasks: `cargo xtask <task>`.
//!
//! - `check-flows`: loads every flow directory under `workflows/` with the engine's loader
//!   (group expansion and validation included) and reports the first problem of each
//!   directory, naming the file. Exits non-zero when any directory is invalid.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use wf_engine::{FlowLoader, RetryPolicy, YamlDirLoader};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Checks every `<root>/<resource type>/` directory; returns the report lines and whether
/// all were valid.
fn check_flows(root: &Path) -> Result<Vec<String>, Vec<String>> {
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

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("check-flows") => {
            let root = args
                .get(1)
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace_root().join("workflows"));
            match check_flows(&root) {
                Ok(lines) => {
                    for line in lines {
                        println!("{line}");
                    }
                    ExitCode::SUCCESS
                }
                Err(lines) => {
                    for line in lines {
                        eprintln!("{line}");
                    }
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: cargo xtask check-flows [DIR]");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_flows_are_valid() {
        let lines = check_flows(&workspace_root().join("workflows")).expect("valid flows");
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("quickstart: 1 flows, 3 steps")),
            "{lines:?}"
        );
    }

    #[test]
    fn broken_flow_is_reported_with_its_file() {
        let root = tempfile_dir();
        std::fs::create_dir_all(root.join("demo")).unwrap();
        std::fs::write(root.join("demo/Bad.yaml"), "flowName: Bad\nsteps: []\n").unwrap();
        let errors = check_flows(&root).unwrap_err();
        assert!(
            errors[0].contains("Bad.yaml") && errors[0].contains("has no steps"),
            "{errors:?}"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
