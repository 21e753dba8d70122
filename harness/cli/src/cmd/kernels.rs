//! `tapmatrix kernels ...`: the kernel matrix and its cache.

use clap::Subcommand;

use crate::exit::Status;

/// `tapmatrix kernels` subcommands.
#[derive(Subcommand)]
pub enum KernelsCommand {
    /// Show the matrix: lock state, cache state, harvested or not.
    List,
}

/// Runs a `kernels` subcommand.
pub fn run(command: KernelsCommand) -> anyhow::Result<Status> {
    match command {
        KernelsCommand::List => Ok(Status::Success),
    }
}
