//! Command output on standard output (or any writer, for tests): a reader that goes away
//! (`history c1 | head`) ends the output quietly instead of panicking in `println!`
//! ("failed printing to stdout: Broken pipe").

use std::io::{ErrorKind, Write};

/// A command's output: standard output, locked for the command, or any writer. After a
/// write fails (the pipe is closed) every further write is skipped.
pub struct Stdout<'a> {
    lock: Box<dyn Write + 'a>,
    closed: bool,
}

impl Default for Stdout<'static> {
    fn default() -> Self {
        Stdout::to(std::io::stdout().lock())
    }
}

impl Stdout<'static> {
    /// Locked standard output.
    pub fn new() -> Self {
        Self::default()
    }
}

impl<'a> Stdout<'a> {
    /// The output into `writer` (e.g. a `&mut Vec<u8>` in a test).
    pub fn to(writer: impl Write + 'a) -> Self {
        Stdout {
            lock: Box::new(writer),
            closed: false,
        }
    }

    /// Writes `text` as it is.
    pub fn text(&mut self, text: &str) {
        if self.closed {
            return;
        }
        if let Err(err) = self.lock.write_all(text.as_bytes()) {
            self.close(&err);
        }
    }

    /// Writes one line.
    pub fn line(&mut self, line: impl std::fmt::Display) {
        if self.closed {
            return;
        }
        if let Err(err) = writeln!(self.lock, "{line}") {
            self.close(&err);
        }
    }

    /// Whether the reader went away.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    fn close(&mut self, err: &std::io::Error) {
        self.closed = true;
        if err.kind() != ErrorKind::BrokenPipe {
            tracing::debug!(%err, "standard output is gone; the rest of the output is dropped");
        }
    }
}

impl Drop for Stdout<'_> {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.lock.flush();
        }
    }
}
