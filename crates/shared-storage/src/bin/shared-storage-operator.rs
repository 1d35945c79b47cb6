//! `shared-storage-operator`: the MPDCluster operator; `local` runs it on the embedded
//! backend. The logic lives in `shared_storage::cli`.
//!
//! Built with the feature `failpoints`, the binary first arms the engine's crash counter
//! from `WF_CRASH_AT` and `WF_FAILPOINT_LOG` (`wf_engine::failpoints::arm_from_env`), for
//! `cargo xtask crash-sweep`.

fn main() -> std::process::ExitCode {
    #[cfg(feature = "failpoints")]
    if let Err(err) = wf_engine::failpoints::arm_from_env() {
        eprintln!("error: {err}");
        return std::process::ExitCode::from(2);
    }
    shared_storage::cli::main()
}
