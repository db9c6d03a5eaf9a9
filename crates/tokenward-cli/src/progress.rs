//! Progress on stderr (indicatif) for long commands — scans, bulk rotations, reports over many
//! tokens — shown only when stderr is a terminal and `--quiet` is not given, and cleared when
//! done, so pipes, files and CI logs never see it.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::Global;

/// Whether progress is drawn for this invocation.
pub(crate) fn shown(g: &Global) -> bool {
    !g.quiet && std::io::stderr().is_terminal()
}

/// A bar of `len` steps (`{what} [=====>   ] 120/400`), hidden unless [`shown`].
pub(crate) fn bar(g: &Global, len: u64, what: &str) -> ProgressBar {
    if !shown(g) {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr_with_hz(10));
    b.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.set_message(what.to_owned());
    b
}

/// A spinner with a message, for work of unknown length, hidden unless [`shown`].
pub(crate) fn spinner(g: &Global, what: &str) -> ProgressBar {
    if !shown(g) {
        return ProgressBar::hidden();
    }
    let s = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(10));
    s.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    s.set_message(what.to_owned());
    s.enable_steady_tick(Duration::from_millis(100));
    s
}
