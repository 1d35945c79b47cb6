//! Command-line arguments.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The MPDCluster operator. `local` runs it on an embedded backend: no Kubernetes needed.
#[derive(Clone, Debug, Parser)]
#[command(name = "shared-storage-operator", version, about)]
pub struct Cli {
    /// Options every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes.
#[derive(Clone, Debug, Args)]
pub struct GlobalArgs {
    /// Where the local backend keeps its state (resources, runs, history, simulators).
    #[arg(long, global = true, default_value = "./.mpd-local")]
    pub state_dir: PathBuf,
    /// The namespace of the resources named on the command line.
    #[arg(long, short = 'n', global = true, default_value = "default")]
    pub namespace: String,
}

/// The commands.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Apply MPDCluster documents and reconcile until every resource is stable.
    Local(LocalArgs),
    /// The flow runs of a resource.
    Workflows(InspectArgs),
    /// The history events of a resource.
    History(InspectArgs),
    /// The resource with its status, as YAML.
    Get(NameArgs),
    /// Ask for recovery of an interrupted resource (annotation `interrupt.recover=T`).
    Recover(NameArgs),
    /// Cancel the running flow of a resource (annotation `cancelled=true`).
    Cancel(NameArgs),
}

/// Arguments of `local`.
#[derive(Clone, Debug, Args)]
pub struct LocalArgs {
    /// MPDCluster YAML files (several documents per file allowed).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Keep running and re-apply a file when it changes.
    #[arg(long)]
    pub watch: bool,
    /// Latency of every simulated call, e.g. `50ms`.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    pub sim_latency: Duration,
    /// Probability that a simulated call fails (0.0 to 1.0).
    #[arg(long, value_parser = parse_rate, default_value_t = 0.0)]
    pub sim_fail_rate: f64,
    /// Seed of the simulators' fault injection.
    #[arg(long, default_value_t = 0)]
    pub sim_seed: u64,
    /// How many resources reconcile at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub workers: u16,
}

/// A resource name.
#[derive(Clone, Debug, Args)]
pub struct NameArgs {
    /// The MPDCluster name.
    pub name: String,
}

/// A resource name and an output format.
#[derive(Clone, Debug, Args)]
pub struct InspectArgs {
    /// The MPDCluster name.
    pub name: String,
    /// How to print.
    #[arg(long, short = 'o', value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

/// How a listing is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns.
    Table,
    /// JSON (one array).
    Json,
}

fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| format!("{e} (write e.g. 50ms, 1s)"))
}

fn parse_rate(value: &str) -> Result<f64, String> {
    let rate: f64 = value.parse().map_err(|e| format!("{e}"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!("{rate} is not between 0 and 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_options_are_accepted_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "op",
            "local",
            "a.yaml",
            "--state-dir",
            "/tmp/x",
            "--sim-fail-rate",
            "0.2",
            "--sim-seed",
            "7",
        ])
        .unwrap();
        assert_eq!(cli.global.state_dir, PathBuf::from("/tmp/x"));
        assert_eq!(cli.global.namespace, "default");
        let Command::Local(local) = cli.command else {
            panic!("local")
        };
        assert_eq!(local.sim_fail_rate, 0.2);
        assert_eq!(local.sim_seed, 7);
    }

    #[test]
    fn a_fail_rate_outside_zero_to_one_is_refused() {
        assert!(Cli::try_parse_from(["op", "local", "a.yaml", "--sim-fail-rate", "1.5"]).is_err());
    }

    #[test]
    fn outputs_parse() {
        let cli = Cli::try_parse_from(["op", "workflows", "demo", "--output", "json", "-n", "ns"])
            .unwrap();
        let Command::Workflows(args) = cli.command else {
            panic!("workflows")
        };
        assert_eq!(args.output, OutputFormat::Json);
        assert_eq!(cli.global.namespace, "ns");
    }
}
