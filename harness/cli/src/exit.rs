//! Exit statuses, and how an error chooses one.

use std::process::ExitCode;

/// How a command ended, as the process exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything passed.
    Success = 0,
    /// Something failed or differs (a test, a diff, an unresolved probe).
    Failed = 1,
    /// Bad usage or bad input (a script that does not parse, an unknown kernel id).
    Usage = 2,
    /// The infrastructure failed (QEMU missing, no kernel booted, download failed).
    Infra = 3,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        ExitCode::from(status as u8)
    }
}

/// An error that carries the exit status it should end the process with.
#[derive(Debug, thiserror::Error)]
#[error("{error:#}")]
pub struct Classified {
    /// The status to exit with.
    pub status: Status,
    /// What went wrong.
    pub error: anyhow::Error,
}

/// Marks an error as the user's input being wrong (exit status 2).
pub fn input_error(error: impl Into<anyhow::Error>) -> anyhow::Error {
    Classified {
        status: Status::Usage,
        error: error.into(),
    }
    .into()
}

/// Marks an error as an infrastructure failure (exit status 3).
pub fn infra_error(error: impl Into<anyhow::Error>) -> anyhow::Error {
    Classified {
        status: Status::Infra,
        error: error.into(),
    }
    .into()
}

/// The exit status for an error: its classification, else 1.
pub fn status_of(error: &anyhow::Error) -> Status {
    error
        .chain()
        .find_map(|cause| cause.downcast_ref::<Classified>())
        .map_or(Status::Failed, |classified| classified.status)
}
