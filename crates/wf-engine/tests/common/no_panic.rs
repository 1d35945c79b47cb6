//! The harness of the `no_panic` property tests (`docs/FUZZING.md`), shared by the crates:
//! `crates/shared-storage/tests/no_panic.rs` includes this file by path. It runs a check on
//! seeded random bytes and on mutations of real inputs, and fails naming any input that
//! panics.
//!
//! `NO_PANIC_CASES` sets the cases per entry point (default 3000), `NO_PANIC_SEED` the seed.

#![allow(dead_code)] // each test crate uses a part

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub fn cases() -> usize {
    std::env::var("NO_PANIC_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}

fn seed(name: &str) -> u64 {
    let base = std::env::var("NO_PANIC_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x5eed_f00d_u64);
    name.bytes()
        .fold(base, |h, b| h.rotate_left(5) ^ u64::from(b))
}

/// Tokens that steer a mutation towards the parsers' corners.
const TOKENS: &[&str] = &[
    "\"",
    "'",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "null",
    "true",
    "-",
    "\n",
    "\r\n",
    "---\n",
    "...\n",
    "\u{feff}",
    "0",
    "-1",
    "1e999",
    "18446744073709551616",
    "-9223372036854775809",
    "\\u0000",
    "\\ud800",
    "&a ",
    "*a",
    "!!binary ",
    "!tag ",
    "? ",
    "- ",
    "  ",
    "\t",
    "#",
    "|\n",
    ">-\n",
    "~",
    "<<: *a\n",
    "\u{0}",
    "\u{10ffff}",
    "é",
    "0001-01-01 00:00:00",
    "9999-12-31T23:59:59.999Z",
    "+275760-09-13T00:00:00Z",
    "2021-07-21 08:32:47.4921234567",
    "\"flowStatus\":\"running\"",
    "\"runningSteps\":[]",
    "\"stepStatus\":\"running\"",
    "\"StepName\":\"\"",
    "steps:",
    "stepGroup:",
    "className:",
    "retry:",
    "backoff:",
    "maxRetries: -1",
    "initial: 0s",
    "max: 99999999999999h",
    "1-",
    "18446744073709551615-F",
    "0-F",
];

/// One mutation of `input`, steered by `rng`; `others` may be spliced in.
pub fn mutate(rng: &mut fastrand::Rng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    // Mostly one change, so that most inputs stay close to valid and reach deep code.
    let changes = if rng.u8(0..4) < 3 {
        1
    } else {
        rng.usize(2..=6)
    };
    for _ in 0..changes {
        let len = out.len();
        match rng.u8(0..9) {
            0 if len > 0 => {
                let at = rng.usize(..len);
                out[at] ^= 1 << rng.u8(0..8);
            }
            1 if len > 0 => {
                let at = rng.usize(..len);
                out[at] = rng.u8(..);
            }
            2 => {
                let at = rng.usize(..=len);
                let n = rng.usize(1..=8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.u8(..)).collect();
                out.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.usize(..len);
                let end = (at + rng.usize(1..=32)).min(len);
                out.drain(at..end);
            }
            4 => out.truncate(rng.usize(..=len)),
            5 if len > 0 => {
                let at = rng.usize(..len);
                let end = (at + rng.usize(1..=64)).min(len);
                let piece = out[at..end].to_vec();
                let to = rng.usize(..=out.len());
                out.splice(to..to, piece);
            }
            6 | 7 => {
                let at = rng.usize(..=len);
                let token = TOKENS[rng.usize(..TOKENS.len())].as_bytes();
                out.splice(at..at, token.iter().copied());
            }
            _ => {
                if let Some(other) = others.get(rng.usize(..others.len().max(1))) {
                    if !other.is_empty() {
                        let from = rng.usize(..other.len());
                        let end = (from + rng.usize(1..=128)).min(other.len());
                        let at = rng.usize(..=out.len());
                        out.splice(at..at, other[from..end].iter().copied());
                    }
                }
            }
        }
    }
    out
}

/// Runs `check` on `cases()` inputs: a quarter random bytes, the rest mutations of `seeds`
/// (which are checked first, as they are). `check` tells whether the input was accepted (for
/// the figures). A panic fails the test with the input.
pub fn run(name: &str, seeds: &[Vec<u8>], check: impl Fn(&[u8]) -> bool) {
    run_with(name, seeds, |_, _| None, check);
}

/// [`run`], where `remix` may make a mutation of its own from a seed (one that knows the
/// seed's structure), used for half of the mutations when it does.
pub fn run_with(
    name: &str,
    seeds: &[Vec<u8>],
    remix: impl Fn(&mut fastrand::Rng, &[u8]) -> Option<Vec<u8>>,
    check: impl Fn(&[u8]) -> bool,
) {
    let cases = cases();
    let mut rng = fastrand::Rng::with_seed(seed(name));
    let started = std::time::Instant::now();
    let mut ran = 0usize;
    let mut accepted = 0usize;
    for i in 0..cases + seeds.len() {
        let input = if i < seeds.len() {
            seeds[i].clone()
        } else if seeds.is_empty() || rng.u8(0..4) == 0 {
            let n = rng.usize(0..512);
            if rng.bool() {
                (0..n).map(|_| rng.u8(..)).collect()
            } else {
                (0..n).map(|_| rng.u8(0x20..0x7f)).collect()
            }
        } else {
            let base = &seeds[rng.usize(..seeds.len())];
            let remixed = if rng.bool() {
                remix(&mut rng, base)
            } else {
                None
            };
            remixed.unwrap_or_else(|| mutate(&mut rng, base, seeds))
        };
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| check(&input)));
        ran += 1;
        accepted += usize::from(matches!(outcome, Ok(true)));
        if outcome.is_err() {
            let dir = root().join("target/no-panic");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{name}-{i}.bin"));
            let _ = std::fs::write(&file, &input);
            panic!(
                "{name}: case {i} panicked; input saved to {} ({:?})",
                file.display(),
                String::from_utf8_lossy(&input)
            );
        }
    }
    eprintln!(
        "no_panic {name}: {ran} cases ({accepted} accepted), 0 panics, {:.1}s",
        started.elapsed().as_secs_f64()
    );
}
