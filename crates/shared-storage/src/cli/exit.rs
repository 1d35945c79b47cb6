//! The exit codes of `shared-storage-operator`, in one place: every command ends in an
//! [`Outcome`], and [`Outcome::code`] is the only mapping onto process exit codes (the
//! table `--help` prints and docs/GUIDE.md documents).

use super::runner::Settled;

/// Exit code: everything ended `Running` (or the command succeeded).
pub const EXIT_OK: u8 = 0;
/// Exit code: a resource is `Interrupt`, a request was refused, or a command failed at run
/// time (an unknown name, an API error).
pub const EXIT_INTERRUPTED: u8 = 1;
/// Exit code: bad input (a missing, malformed or invalid document, a bad flag) or a locked
/// state dir.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: stopped by Ctrl-C (SIGINT) after the running steps reached a saved
/// transition (128 + 2, as a shell reports it).
pub const EXIT_SIGINT: u8 = 130;
/// Exit code of `local`: stopped by SIGTERM after the running steps reached a saved
/// transition (128 + 15). `run` exits [`EXIT_OK`] after SIGTERM, its normal stop.
pub const EXIT_SIGTERM: u8 = 143;

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// Every resource is `Running`, or the command did what it was asked.
    Success,
    /// A resource ended `Interrupt`.
    Interrupted,
    /// A request was refused before anything ran (`recover` of a cluster that is not
    /// interrupted, `cancel` with no flow running, a spec the state machine refuses).
    Refused,
    /// The command failed at run time: an unknown name, an unreadable state, an API error.
    Failed,
    /// Bad input: a missing, unreadable or invalid file, a bad flag.
    BadInput,
    /// The state directory is locked by another process.
    Locked,
    /// Stopped by Ctrl-C (SIGINT).
    Sigint,
    /// Stopped by SIGTERM (`local`).
    Sigterm,
}

impl Outcome {
    /// The process exit code.
    pub const fn code(self) -> u8 {
        match self {
            Outcome::Success => EXIT_OK,
            Outcome::Interrupted | Outcome::Refused | Outcome::Failed => EXIT_INTERRUPTED,
            Outcome::BadInput | Outcome::Locked => EXIT_BAD_INPUT,
            Outcome::Sigint => EXIT_SIGINT,
            Outcome::Sigterm => EXIT_SIGTERM,
        }
    }

    /// The outcome of an exit code of a lower layer (e.g. [`crate::local::LocalError`]'s):
    /// 0 success, 2 bad input, anything else a failure.
    pub fn of_code(code: i32) -> Outcome {
        match code {
            0 => Outcome::Success,
            2 => Outcome::BadInput,
            _ => Outcome::Failed,
        }
    }
}

/// The outcome of a resource `local` settled: `Running` (or gone) is success, `Interrupt`
/// is [`Outcome::Interrupted`], anything else (a stable state other than those, a reconcile
/// that keeps failing) [`Outcome::Failed`].
pub fn of_settled(settled: &Settled) -> Outcome {
    match settled {
        Settled::Running | Settled::Gone => Outcome::Success,
        Settled::Interrupted { .. } => Outcome::Interrupted,
        Settled::Refused { .. } => Outcome::Refused,
        Settled::Other(_) | Settled::Failed(_) => Outcome::Failed,
    }
}

/// The worst of `outcomes` (the one with the highest precedence in the enum's order);
/// [`Outcome::Success`] for none.
pub fn worst(outcomes: impl IntoIterator<Item = Outcome>) -> Outcome {
    outcomes.into_iter().max().unwrap_or(Outcome::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_codes() {
        assert_eq!(Outcome::Success.code(), 0);
        for one in [Outcome::Interrupted, Outcome::Refused, Outcome::Failed] {
            assert_eq!(one.code(), 1, "{one:?}");
        }
        assert_eq!(Outcome::BadInput.code(), 2);
        assert_eq!(Outcome::Locked.code(), 2);
        assert_eq!(Outcome::Sigint.code(), 130);
        assert_eq!(Outcome::Sigterm.code(), 143);
        assert_eq!(Outcome::of_code(2), Outcome::BadInput);
        assert_eq!(Outcome::of_code(1), Outcome::Failed);
    }

    #[test]
    fn local_exits_with_the_worst_outcome_of_its_resources() {
        let interrupted = Settled::Interrupted {
            reason: "NO_AVAILABLE_NODE".into(),
            message: String::new(),
            creation: false,
        };
        let all = [Settled::Running, interrupted, Settled::Gone];
        assert_eq!(worst(all.iter().map(of_settled)).code(), 1);
        assert_eq!(
            worst([Settled::Running, Settled::Gone].iter().map(of_settled)).code(),
            0
        );
        assert_eq!(worst([]), Outcome::Success);
    }
}
