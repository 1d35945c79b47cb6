//! `shared-storage-operator`: the MPDCluster operator; `local` runs it on the embedded
//! backend. The logic lives in `shared_storage::cli`.

fn main() -> std::process::ExitCode {
    shared_storage::cli::main()
}
