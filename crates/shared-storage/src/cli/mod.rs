//! The command line of `shared-storage-operator`: argument parsing and dispatch. The binary
//! is a thin shell over this module.

mod args;
pub mod backend;
mod connection;
mod delete;
mod exit;
mod format;
pub mod inspect;
mod listing;
mod local;
mod printer;
mod run;
mod runner;
pub mod signals;
mod stdout;

use std::process::ExitCode;

use clap::Parser;

pub use args::{
    Cli, Command, GetArgs, GlobalArgs, HistoryArgs, InspectArgs, NameArgs, OutputFormat,
    PullPolicy, RunArgs, Target, TargetArgs,
};
pub use backend::{Backend, InspectError};
pub use run::{operate, RunError};
pub use stdout::Stdout;

pub use exit::{Outcome, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM};

/// The log filter when `RUST_LOG` is not set: warnings and errors, except kube-client's
/// per-request trace layer, which logs every failed request again at `ERROR` although the
/// caller reports it (with the resource and what it meant).
pub const DEFAULT_LOG_FILTER: &str = "warn,kube_client::client::builder=off";

/// The log filter of the commands other than `run` when `RUST_LOG` is not set and no `-v`
/// is given: warnings (damage found in the state directory, for one), except the engine's
/// log of each step failure and interrupt (`wf_engine::execution`), which `local` prints
/// as its own line: a failure is printed once.
pub const QUIET_LOG_FILTER: &str =
    "warn,wf_engine::execution=error,kube_client::client::builder=off";

/// The log filter for `-v` (`-v` warnings, `-vv` info, `-vvv` debug), else `default`.
fn log_filter(verbose: u8, default: &str) -> String {
    let level = match verbose {
        0 => return default.to_owned(),
        1 => "warn",
        2 => "info",
        _ => "debug",
    };
    format!("{level},kube_client::client::builder=off")
}

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let default = match cli.command {
        Command::Run(_) => DEFAULT_LOG_FILTER,
        _ => QUIET_LOG_FILTER,
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(log_filter(cli.global.verbose, default))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(EXIT_INTERRUPTED);
        }
    };
    ExitCode::from(runtime.block_on(run(cli)))
}

/// Runs a parsed command line; returns the exit code.
pub async fn run(cli: Cli) -> u8 {
    let global = cli.global.clone();
    match cli.command {
        Command::Run(args) => run::run(*args).await,
        Command::Local(args) => local::run(&global, args).await,
        command => inspect::dispatch(&global, command).await,
    }
}
