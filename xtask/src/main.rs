//! Project tasks: `cargo xtask <task>`.
//!
//! - `check-flows [DIR]` ([`check_flows`]): loads every flow directory under `DIR` (default
//!   `<workspace>/workflows`) with the engine's loader, checks `shared/` against the
//!   shared-storage registration, and reports each problem, naming the file. Exits non-zero
//!   when any is found; otherwise prints one summary line and a warning per unused class.
//! - `crd [--check]` ([`crd`]): writes `deploy/crd.yaml` from the MPDCluster type, or with
//!   `--check` fails when the checked-in file is stale.
//! - `deploy --check` ([`deploy`]): parses every manifest of `deploy/` into its
//!   `k8s-openapi` type and fails on drift from what the code needs (CRD, RBAC, the
//!   Deployment's ports, probes, identity and security, the Service, the callback token).
//!
//! A usage error exits with status 2.

mod check_flows;
mod crd;
mod deploy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The usage line printed on a usage error.
const USAGE: &str =
    "usage: cargo xtask check-flows [DIR] | cargo xtask crd [--check] | cargo xtask deploy --check";

/// A parsed command line.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    /// `check-flows [DIR]`; `None` means `<workspace>/workflows`.
    CheckFlows(Option<PathBuf>),
    /// `crd` (write) or `crd --check`.
    Crd {
        /// Only compare, do not write.
        check: bool,
    },
    /// `deploy --check`.
    DeployCheck,
    /// `help`, `-h` or `--help`.
    Help,
}

/// Parses the arguments after the program name; `Err` is a usage error.
fn parse(args: &[String]) -> Result<Command, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["check-flows"] => Ok(Command::CheckFlows(None)),
        ["check-flows", dir] if !dir.starts_with('-') => {
            Ok(Command::CheckFlows(Some(PathBuf::from(dir))))
        }
        ["crd"] => Ok(Command::Crd { check: false }),
        ["crd", "--check"] => Ok(Command::Crd { check: true }),
        ["deploy", "--check"] => Ok(Command::DeployCheck),
        ["help" | "-h" | "--help"] => Ok(Command::Help),
        [] => Err("no task given".to_owned()),
        [task, ..] if matches!(*task, "check-flows" | "crd" | "deploy") => Err(format!(
            "unexpected arguments to `{task}`: {}",
            args[1..].join(" ")
        )),
        [task, ..] => Err(format!("unknown task `{task}`")),
    }
}

/// The workspace root: the parent of this crate's directory.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `path` relative to the current directory when it lies below it, so messages stay short.
fn relative_to_cwd(path: PathBuf) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|relative| !relative.as_os_str().is_empty())
        .unwrap_or(path)
}

/// `check-flows`: the summary line on stdout and warnings on stderr, or every problem.
fn run_check_flows(dir: Option<PathBuf>) -> ExitCode {
    let root = dir.unwrap_or_else(|| relative_to_cwd(workspace_root().join("workflows")));
    match check_flows::check_flows(&root, &[check_flows::Registration::shared()]) {
        Ok(summary) => {
            println!("{}", summary.line());
            for warning in summary.warnings() {
                eprintln!("{warning}");
            }
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("error: {problem}");
            }
            eprintln!(
                "check-flows: {} problem(s) in {}",
                problems.len(),
                root.display()
            );
            ExitCode::FAILURE
        }
    }
}

/// `crd`: writes or checks `deploy/crd.yaml`.
fn run_crd(check: bool) -> ExitCode {
    let path = relative_to_cwd(workspace_root().join(crd::CRD_PATH));
    let result = if check {
        crd::check(&path).map(|()| format!("crd: {} is up to date", path.display()))
    } else {
        crd::write(&path).map(|()| format!("crd: wrote {}", path.display()))
    };
    match result {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `deploy --check`: the summary line, or every problem.
fn run_deploy_check() -> ExitCode {
    let dir = relative_to_cwd(workspace_root().join(deploy::DEPLOY_DIR));
    match deploy::check(&dir) {
        Ok(summary) => {
            println!("{}", summary.line(&dir));
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for problem in &problems {
                eprintln!("error: {problem}");
            }
            eprintln!("deploy: {} problem(s) in {}", problems.len(), dir.display());
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse(&args) {
        Ok(Command::CheckFlows(dir)) => run_check_flows(dir),
        Ok(Command::Crd { check }) => run_crd(check),
        Ok(Command::DeployCheck) => run_deploy_check(),
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(problem) => {
            eprintln!("error: {problem}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn tasks_and_their_options_are_parsed() {
        assert_eq!(
            parse(&args(&["check-flows"])),
            Ok(Command::CheckFlows(None))
        );
        assert_eq!(
            parse(&args(&["check-flows", "some/dir"])),
            Ok(Command::CheckFlows(Some(PathBuf::from("some/dir"))))
        );
        assert_eq!(parse(&args(&["crd"])), Ok(Command::Crd { check: false }));
        assert_eq!(
            parse(&args(&["crd", "--check"])),
            Ok(Command::Crd { check: true })
        );
        assert_eq!(
            parse(&args(&["deploy", "--check"])),
            Ok(Command::DeployCheck)
        );
        assert_eq!(parse(&args(&["--help"])), Ok(Command::Help));
    }

    #[test]
    fn unknown_tasks_and_extra_arguments_are_usage_errors() {
        for bad in [
            &[][..],
            &["frobnicate"][..],
            &["check-flows", "a", "b"][..],
            &["check-flows", "--check"][..],
            &["crd", "--chek"][..],
            &["crd", "--check", "x"][..],
            &["deploy"][..],
            &["deploy", "--force"][..],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
