//! Signals for the long-running commands: SIGTERM and SIGINT stop `daemon` and `run`; `run` also
//! passes SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH on to its command.

use crate::error::{CliError, Result};

#[cfg(unix)]
use nix::sys::signal::Signal;
#[cfg(unix)]
use tokio::signal::unix::SignalKind;

/// The signals that stop a long-running command.
#[cfg(unix)]
const STOP: [Signal; 2] = [Signal::SIGTERM, Signal::SIGINT];

/// The signals `run` passes on to its command besides [`STOP`] (reload, quit, the user's own, a
/// resized terminal), the command going on.
#[cfg(unix)]
const PASSED_ON: [Signal; 5] =
    [Signal::SIGHUP, Signal::SIGQUIT, Signal::SIGUSR1, Signal::SIGUSR2, Signal::SIGWINCH];

/// Signals caught from the moment this is made (a signal before the first await is not lost, nor
/// does it kill the process).
pub(crate) struct Signals {
    #[cfg(unix)]
    caught: Vec<(Signal, tokio::signal::unix::Signal)>,
}

/// A signal received.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caught {
    #[cfg(unix)]
    signal: Signal,
}

impl Caught {
    /// SIGTERM or SIGINT: stop.
    pub(crate) fn stops(self) -> bool {
        #[cfg(unix)]
        return STOP.contains(&self.signal);
        #[cfg(not(unix))]
        true
    }

    /// Sends the same signal to `pid`.
    #[cfg(unix)]
    pub(crate) fn send_to(self, pid: u32) {
        if let Ok(pid) = i32::try_from(pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), self.signal);
        }
    }
}

impl Signals {
    /// SIGTERM and SIGINT.
    pub(crate) fn catch() -> Result<Self> {
        #[cfg(unix)]
        return Self::of(&STOP);
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// SIGTERM and SIGINT, and the signals `run` passes on to its command.
    pub(crate) fn catch_for_child() -> Result<Self> {
        #[cfg(unix)]
        return Self::of(&[STOP.as_slice(), PASSED_ON.as_slice()].concat());
        #[cfg(not(unix))]
        Ok(Self {})
    }

    #[cfg(unix)]
    fn of(signals: &[Signal]) -> Result<Self> {
        let caught = signals
            .iter()
            .map(|&s| {
                tokio::signal::unix::signal(SignalKind::from_raw(s as i32))
                    .map(|stream| (s, stream))
                    .map_err(|e| CliError::new(format!("catching {s}: {e}")))
            })
            .collect::<Result<_>>()?;
        Ok(Self { caught })
    }

    /// The next signal caught.
    pub(crate) async fn recv(&mut self) -> Caught {
        #[cfg(unix)]
        return std::future::poll_fn(|cx| {
            for (signal, stream) in &mut self.caught {
                if stream.poll_recv(cx).is_ready() {
                    return std::task::Poll::Ready(Caught { signal: *signal });
                }
            }
            std::task::Poll::Pending
        })
        .await;
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Caught {}
        }
    }
}
