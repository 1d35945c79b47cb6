//! Ctrl-C and SIGTERM: a graceful stop. [`Shutdown::listen`] installs the handlers at once
//! (a signal that comes while a flow runs is never missed); the first signal fires the
//! token, so the command drains: the workflow manager parks each running flow at its next
//! step boundary ([`wf_engine::WorkflowManager::set_draining`]), the running step reaches
//! its saved transition, and the command exits with [`StopSignal::exit_code`]. A second
//! signal exits at once, as a kill would (the next run resumes the step it cut short).

use std::sync::{Arc, OnceLock};

use wf_engine::CancellationToken;

use super::{EXIT_OK, EXIT_SIGINT, EXIT_SIGTERM};

/// The signal that asked the process to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT: Ctrl-C.
    Interrupt,
    /// SIGTERM: a supervisor (`kill`, systemd, the kubelet).
    Terminate,
}

impl StopSignal {
    /// The signal's name.
    pub fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "SIGINT",
            StopSignal::Terminate => "SIGTERM",
        }
    }

    /// The exit code after a drained stop: 130 for Ctrl-C ([`EXIT_SIGINT`]), 143 for SIGTERM
    /// ([`EXIT_SIGTERM`]), as a shell reports a process the signal killed; except that SIGTERM
    /// is the normal way to stop `run` (`serving`), which then exits [`EXIT_OK`].
    pub fn exit_code(self, serving: bool) -> u8 {
        match (self, serving) {
            (StopSignal::Interrupt, _) => EXIT_SIGINT,
            (StopSignal::Terminate, true) => EXIT_OK,
            (StopSignal::Terminate, false) => EXIT_SIGTERM,
        }
    }
}

/// Listens for SIGINT and SIGTERM (Ctrl-C only where there are no Unix signals) from its
/// creation on, for the life of the process.
#[derive(Clone, Debug)]
pub struct Shutdown {
    token: CancellationToken,
    signal: Arc<OnceLock<StopSignal>>,
}

impl Shutdown {
    /// Installs the handlers and starts listening (on the current Tokio runtime). After the
    /// first signal, a second one exits the process at once, with 130 or 143 (not a clean
    /// stop, even for `run`).
    pub fn listen() -> std::io::Result<Shutdown> {
        let mut signals = Signals::install()?;
        let shutdown = Shutdown {
            token: CancellationToken::new(),
            signal: Arc::new(OnceLock::new()),
        };
        let (token, signal) = (shutdown.token.clone(), shutdown.signal.clone());
        tokio::spawn(async move {
            let first = signals.next().await;
            let _ = signal.set(first);
            eprintln!(
                "{}: stopping once the running steps are saved ({} again to stop at once)",
                first.name(),
                first.name()
            );
            token.cancel();
            let second = signals.next().await;
            eprintln!("{}: stopping at once", second.name());
            std::process::exit(i32::from(second.exit_code(false)));
        });
        Ok(shutdown)
    }

    /// Fires at the first signal.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The first signal, once one came.
    pub fn signal(&self) -> Option<StopSignal> {
        self.signal.get().copied()
    }

    /// Resolves at the first signal, with it.
    pub async fn stopped(&self) -> StopSignal {
        self.token.cancelled().await;
        self.signal().unwrap_or(StopSignal::Interrupt)
    }
}

/// The installed handlers.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Signals {})
        }
    }

    async fn next(&mut self) -> StopSignal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => StopSignal::Interrupt,
                _ = self.terminate.recv() => StopSignal::Terminate,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            StopSignal::Interrupt
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_c_is_130_and_sigterm_143_except_for_run_whose_normal_stop_it_is() {
        assert_eq!(StopSignal::Interrupt.exit_code(false), 130);
        assert_eq!(StopSignal::Interrupt.exit_code(true), 130);
        assert_eq!(StopSignal::Terminate.exit_code(false), 143);
        assert_eq!(StopSignal::Terminate.exit_code(true), 0);
    }
}
