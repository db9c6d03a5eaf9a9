//! `tokenward`: the operator's command for Tokenward. Every token and secret operation in one
//! line, policy as code, the audit log, scans with leak response, a posture report, leak drills,
//! and secrets injected into a command at launch. See `tokenward --help` and `docs/cli.md`.
//!
//! Exit status: 0 success; 1 denied, findings, or report findings; 2 an error (a message on
//! stderr, never a secret).

#![allow(clippy::print_stdout, clippy::print_stderr)]

/// `println!` through [`out::Stdout`]: a closed pipe (`tokenward … | head`) is not a panic.
macro_rules! println {
    () => { $crate::out::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::out::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// `print!` through [`out::Stdout`].
macro_rules! print {
    ($($arg:tt)*) => { $crate::out::print(format_args!($($arg)*)) };
}

mod child;
mod cli;
mod cmd;
mod error;
mod log;
mod open;
mod out;
mod progress;
mod signals;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    log::init(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tokenward: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("tokenward: {e}");
            ExitCode::from(e.code())
        }
    }
}

async fn run(cli: Cli) -> Result<u8, CliError> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => cmd::init::run(g, a).await,
        Command::Policy(c) => cmd::policy::run(g, c).await,
        Command::Role(c) => cmd::policy::role(g, c).await,
        Command::Principal(c) => cmd::policy::principal(g, c).await,
        Command::Issue(a) => cmd::tokens::issue(g, a).await,
        Command::Verify(a) => cmd::tokens::verify(g, a).await,
        Command::List(a) => cmd::tokens::list(g, a).await,
        Command::Show(a) => cmd::tokens::show(g, a).await,
        Command::Revoke(a) => cmd::tokens::revoke(g, a).await,
        Command::Secret(c) => cmd::secrets::run(g, c).await,
        Command::Rewrap { output } => cmd::secrets::rewrap(g, output).await,
        Command::Rekey(a) => cmd::secrets::rekey(g, a).await,
        Command::Migrate { output } => cmd::secrets::migrate(g, output).await,
        Command::Rotate(a) => cmd::rotate::rotate(g, a).await,
        Command::Daemon(a) => cmd::rotate::daemon(g, a).await,
        Command::Serve(a) => cmd::serve::serve(g, a).await,
        Command::Exchange(a) => cmd::serve::exchange(g, a).await,
        Command::Run(a) => cmd::run::run(g, a).await,
        Command::Audit(c) => cmd::audit::run(g, c).await,
        Command::Scan(a) => cmd::scan::run(g, a).await,
        Command::Report(a) => cmd::report::run(g, a).await,
        Command::Inventory(a) => cmd::inventory::run(g, a).await,
        Command::Adopt(a) => cmd::rotate::adopt(g, a).await,
        Command::Drill(a) => cmd::drill::run(g, a).await,
        Command::Alerts(cmd::alerts::AlertsCmd::Check(a)) => cmd::alerts::check(g, a).await,
        Command::Completions(a) => cmd::completions::run(a),
    }
}
