//! The command line of `shared-storage-operator`: argument parsing and dispatch. The binary
//! is a thin shell over this module.

mod args;
pub mod backend;
mod connection;
pub mod inspect;
mod local;
mod printer;
mod run;
mod runner;
pub mod signals;
mod stdout;

use std::process::ExitCode;

use clap::Parser;

pub use args::{
    Cli, Command, GlobalArgs, InspectArgs, NameArgs, OutputFormat, PullPolicy, RunArgs, Target,
    TargetArgs,
};
pub use backend::{Backend, InspectError};
pub use run::{operate, RunError};
pub use stdout::Stdout;

/// Exit code: everything ended `Running` (or the command succeeded).
pub const EXIT_OK: u8 = 0;
/// Exit code: a resource is `Interrupt`, or a command failed at run time.
pub const EXIT_INTERRUPTED: u8 = 1;
/// Exit code: bad input (a malformed or invalid document, a bad flag) or a locked state dir.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: stopped by Ctrl-C (SIGINT) after the running steps reached a saved
/// transition (128 + 2, as a shell reports it).
pub const EXIT_SIGINT: u8 = 130;
/// Exit code of `local`: stopped by SIGTERM after the running steps reached a saved
/// transition (128 + 15). `run` exits [`EXIT_OK`] after SIGTERM, its normal stop.
pub const EXIT_SIGTERM: u8 = 143;

/// The log filter when `RUST_LOG` is not set: warnings and errors, except kube-client's
/// per-request trace layer, which logs every failed request again at `ERROR` although the
/// caller reports it (with the resource and what it meant).
pub const DEFAULT_LOG_FILTER: &str = "warn,kube_client::client::builder=off";

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
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
