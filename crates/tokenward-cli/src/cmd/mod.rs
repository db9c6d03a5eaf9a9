//! One module per command group. Each holds its commands' clap arguments (the `…Args` structs
//! and `…Cmd` subcommand enums) first, then the code that runs them. Adding a command: its module
//! here (arguments and `run`), its variant in `cli::Command`, and its line in `main.rs`'s `run`.

pub(crate) mod alerts;
pub(crate) mod audit;
pub(crate) mod completions;
pub(crate) mod drill;
pub(crate) mod init;
pub(crate) mod inventory;
pub(crate) mod policy;
pub(crate) mod report;
pub(crate) mod rotate;
pub(crate) mod run;
pub(crate) mod scan;
pub(crate) mod secrets;
pub(crate) mod serve;
pub(crate) mod tokens;
