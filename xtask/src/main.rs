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
//! - `crash-sweep [--flows A,B,...|--all|--ci] [--quick|--every M] [--jobs N] [--work DIR]`
//!   ([`crash_sweep`]): builds the operator with `--features failpoints`, crashes each flow
//!   at every persisted transition (or every M-th), resumes it and checks it; prints a table
//!   and every failure, and exits non-zero when any is found. Default: `--ci`, the flows CI
//!   sweeps ([`crash_sweep::CI_FLOWS`]). The state directories go to `--work` (default
//!   `<target>/crash-sweep`, emptied first).
//!
//! A usage error exits with status 2.

mod check_flows;
mod crash_sweep;
mod crd;
mod deploy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The usage line printed on a usage error.
const USAGE: &str = "usage: cargo xtask check-flows [DIR] | cargo xtask crd [--check] | \
cargo xtask deploy --check | cargo xtask crash-sweep [--flows A,B,...|--all|--ci] \
[--quick|--every M] [--jobs N] [--work DIR]";

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
    /// `crash-sweep ...`.
    CrashSweep(crash_sweep::Options),
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
        ["crash-sweep", rest @ ..] => parse_crash_sweep(rest).map(Command::CrashSweep),
        ["help" | "-h" | "--help"] => Ok(Command::Help),
        [] => Err("no task given".to_owned()),
        [task, ..] if matches!(*task, "check-flows" | "crd" | "deploy") => Err(format!(
            "unexpected arguments to `{task}`: {}",
            args[1..].join(" ")
        )),
        [task, ..] => Err(format!("unknown task `{task}`")),
    }
}

/// The options of `crash-sweep`.
fn parse_crash_sweep(args: &[&str]) -> Result<crash_sweep::Options, String> {
    let mut flows: Option<Vec<crash_sweep::FlowCase>> = None;
    let mut every = 1;
    let mut jobs = 2;
    let mut work = None;
    let mut rest = args.iter();
    let list = |names: &str| -> Result<Vec<crash_sweep::FlowCase>, String> {
        names
            .split(',')
            .filter(|n| !n.trim().is_empty())
            .map(|n| {
                crash_sweep::flow_by_name(n.trim()).ok_or_else(|| {
                    let known: Vec<&str> = crash_sweep::FLOWS.iter().map(|c| c.short).collect();
                    format!("unknown flow `{n}` (known: {})", known.join(","))
                })
            })
            .collect()
    };
    let number = |flag: &str, value: Option<&&str>| -> Result<usize, String> {
        value
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{flag}` needs a positive number"))
    };
    while let Some(arg) = rest.next() {
        match *arg {
            "--flows" => {
                let names = rest.next().ok_or("`--flows` needs a list of flows")?;
                flows = Some(list(names)?);
            }
            "--all" => flows = Some(crash_sweep::FLOWS.to_vec()),
            "--ci" => flows = Some(list(crash_sweep::CI_FLOWS)?),
            "--quick" => every = crash_sweep::QUICK_EVERY,
            "--every" => every = number("--every", rest.next())?,
            "--jobs" => jobs = number("--jobs", rest.next())?,
            "--work" => {
                work = Some(PathBuf::from(
                    rest.next().ok_or("`--work` needs a directory")?,
                ));
            }
            other => return Err(format!("unexpected argument to `crash-sweep`: {other}")),
        }
    }
    let flows = match flows {
        Some(flows) if flows.is_empty() => return Err("`--flows` names no flow".to_owned()),
        Some(flows) => flows,
        None => list(crash_sweep::CI_FLOWS)?,
    };
    Ok(crash_sweep::Options {
        flows,
        every,
        jobs,
        work,
    })
}

/// `crash-sweep`: builds, sweeps, prints the table, the failures and the final line.
fn run_crash_sweep(options: &crash_sweep::Options) -> ExitCode {
    let root = workspace_root();
    let work = options
        .work
        .clone()
        .unwrap_or_else(|| crash_sweep::target_dir(&root).join("crash-sweep"));
    let started = std::time::Instant::now();
    let bin = match crash_sweep::build(&root, &work) {
        Ok(bin) => bin,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "crash-sweep: built {} in {:.0}s; {} flow(s), crashing every {} hit(s), {} job(s)",
        relative_to_cwd(bin.clone()).display(),
        started.elapsed().as_secs_f64(),
        options.flows.len(),
        options.every,
        options.jobs
    );
    let progress = |line: &str| eprintln!("crash-sweep: {line}");
    let report = match crash_sweep::sweep(&root, &bin, &work, options, &progress) {
        Ok(report) => report,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report.table());
    for failure in &report.failures {
        println!(
            "FAIL {} k={} failpoint={} [{}] {} (state kept in {})",
            failure.flow,
            failure.k,
            failure.failpoint,
            failure.class,
            failure.detail,
            relative_to_cwd(failure.dir.clone()).display()
        );
    }
    let classes = report.classes();
    if !classes.is_empty() {
        println!("failure classes (count, first reproducer):");
        for (class, count, first) in &classes {
            println!(
                "  {class}: {count}, e.g. --flows {} with {}={}",
                crash_sweep::flow_by_name(first.flow).map_or(first.flow, |c| c.short),
                wf_engine::failpoints::CRASH_AT_ENV,
                first.k
            );
        }
    }
    println!("{}", report.summary());
    if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
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
        Ok(Command::CrashSweep(options)) => run_crash_sweep(&options),
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
        let Ok(Command::CrashSweep(all)) = parse(&args(&["crash-sweep", "--all", "--quick"]))
        else {
            panic!("crash-sweep --all --quick");
        };
        assert_eq!(all.flows.len(), 14);
        assert_eq!(all.every, crash_sweep::QUICK_EVERY);
        assert_eq!(all.jobs, 2);
        let Ok(Command::CrashSweep(some)) = parse(&args(&[
            "crash-sweep",
            "--flows",
            "Create,ModifyClass",
            "--jobs",
            "3",
        ])) else {
            panic!("crash-sweep --flows");
        };
        assert_eq!(
            some.flows.iter().map(|c| c.short).collect::<Vec<_>>(),
            ["Create", "ModifyClass"]
        );
        assert_eq!((some.every, some.jobs), (1, 3));
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
            &["crash-sweep", "--flows"][..],
            &["crash-sweep", "--flows", "Nope"][..],
            &["crash-sweep", "--every", "0"][..],
            &["crash-sweep", "--jobs"][..],
            &["crash-sweep", "--fast"][..],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
