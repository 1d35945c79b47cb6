//! Driving the `shared-storage-operator` binary in local mode from the tests in this
//! directory: run a command on a state directory and show what it printed.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_shared-storage-operator"))
}

/// The repository's `examples/` directory.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// The example file `name`.
pub fn example(name: &str) -> PathBuf {
    examples_dir().join(name)
}

/// Runs the binary with `args` on the state directory `state`.
pub fn op(state: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("run the binary")
}

/// The exit status, stdout and stderr of `out`, for an assertion message.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What `out` printed on stdout.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
