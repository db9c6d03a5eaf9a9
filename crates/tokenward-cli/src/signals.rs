//! SIGTERM and SIGINT for the long-running commands (`daemon`, `run`).

use crate::error::{CliError, Result};

/// SIGTERM and SIGINT, caught from the moment this is made (a signal before the first await is
/// not lost, nor does it kill the process).
pub(crate) struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn catch() -> Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = signal(SignalKind::terminate())
                .map_err(|e| CliError::new(format!("catching SIGTERM: {e}")))?;
            let int = signal(SignalKind::interrupt())
                .map_err(|e| CliError::new(format!("catching SIGINT: {e}")))?;
            Ok(Self { term, int })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Resolves at the next SIGTERM or SIGINT.
    pub(crate) async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
