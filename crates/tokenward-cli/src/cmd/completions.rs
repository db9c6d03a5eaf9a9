//! `completions`: a shell completion script for the whole command line.

use clap::Args;

use crate::cli::Cli;
use crate::error::Result;
use crate::out;

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// Print the completion script for `a.shell` on stdout.
pub(crate) fn run(a: CompletionsArgs) -> Result<u8> {
    let mut command = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(a.shell, &mut command, "tokenward", &mut out::Stdout);
    Ok(0)
}
