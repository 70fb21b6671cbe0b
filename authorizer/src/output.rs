//! The process's standard output, written once per invocation.
//!
//! In Lambda, stdout is a pipe read by another process, and each `write` can wake it:
//! measured through the Runtime API (`authorizer/benches/startup.py --floor`), the
//! audit line and each metrics document written on their own cost more than the whole
//! decision. While an invocation runs, log lines are collected here; at its end they
//! go out with the metrics documents in one `write`. Outside invocations (init, the
//! runtime's own messages between events) lines are written straight through.

use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard};

use lambda_runtime::tracing::subscriber::fmt::MakeWriter;

/// Collects the lines of one invocation; clones share the same buffer.
#[derive(Clone, Default)]
pub struct InvocationOutput {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    collecting: bool,
    buf: Vec<u8>,
}

impl InvocationOutput {
    fn state(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a writer panicked: the bytes are still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts collecting lines for an invocation.
    pub fn begin(&self) {
        self.state().collecting = true;
    }

    /// Ends the invocation: `append` adds to what was collected (the metrics
    /// documents), then everything is written to `out` at once.
    pub fn end(&self, out: &mut impl Write, append: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let mut state = self.state();
        state.collecting = false;
        append(&mut state.buf);
        let result = if state.buf.is_empty() {
            Ok(())
        } else {
            out.write_all(&state.buf).and_then(|_| out.flush())
        };
        state.buf.clear();
        result
    }
}

/// One log line's writer (the `fmt` layer formats a whole line, then writes it).
pub struct LineWriter<'a> {
    output: &'a InvocationOutput,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut state = self.output.state();
        if state.collecting {
            state.buf.extend_from_slice(bytes);
            Ok(bytes.len())
        } else {
            drop(state);
            io::stdout().lock().write_all(bytes)?;
            Ok(bytes.len())
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for InvocationOutput {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter { output: self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_an_invocation_are_written_once_with_what_is_appended() {
        let out = InvocationOutput::default();
        out.begin();
        out.make_writer().write_all(b"line 1\n").unwrap();
        out.make_writer().write_all(b"line 2\n").unwrap();
        let mut sink = Vec::new();
        out.end(&mut sink, |buf| buf.extend_from_slice(b"metrics\n"))
            .unwrap();
        assert_eq!(sink, b"line 1\nline 2\nmetrics\n");
        // The buffer is empty for the next invocation.
        let mut sink = Vec::new();
        out.begin();
        out.end(&mut sink, |_| {}).unwrap();
        assert!(sink.is_empty());
    }
}
