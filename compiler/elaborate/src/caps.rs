//! What a back end can serve on one kernel: the seam between elaboration
//! and the back ends. Elaboration knows no back end; it asks the
//! [`Capabilities`] it is given whether a construct can be served, and an
//! unsupported construct is one error naming the back end, the kernel and
//! the construct.

use std::collections::BTreeMap;

use tapmatrix_resolve::TracepointNames;

use crate::error::ElaborateError;

/// A construct of the language that not every back end serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Construct {
    /// Reading kernel memory at an address computed at run time:
    /// `@cast(ptr, "type")->member` on a value, `kernel_string(ptr)` of a
    /// computed pointer, `->` on a value, a target array indexed by a
    /// variable, reads in functions.
    ComputedRead,
    /// `task_current()`: the current task as a pointer, to read through.
    CurrentTask,
    /// Assigning to a target variable (`$var = value`).
    TargetWrite,
    /// `@entry(expr)` in a return probe.
    EntryValue,
    /// `backtrace()`, `print_backtrace()` and the stack functions.
    Backtrace,
    /// The credentials of the task at an event hit: `uid()`, `gid()`,
    /// `euid()`...
    CredentialsAtHit,
    /// `timer.profile`.
    ProfileTimer,
    /// `perf.type(T).config(C)` probes and `perf.*` aliases.
    PerfProbe,
    /// The registers the probe interrupted, at an event hit: `user_mode()`,
    /// `addr()`, `uaddr()`.
    Registers,
}

impl Construct {
    /// How messages name it.
    pub fn describe(self) -> &'static str {
        match self {
            Construct::ComputedRead => "reading kernel memory at a computed address",
            Construct::CurrentTask => "the current task",
            Construct::TargetWrite => "writing a target variable",
            Construct::EntryValue => "@entry",
            Construct::Backtrace => "a kernel backtrace",
            Construct::CredentialsAtHit => "the task's credentials at an event hit",
            Construct::ProfileTimer => "timer.profile",
            Construct::PerfProbe => "perf probes",
            Construct::Registers => "the probe's registers (user_mode(), addr(), uaddr())",
        }
    }
}

/// What one back end serves on one kernel. Every construct not refused is
/// served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// The back end's name (`tracefs`, `bpf`).
    pub backend: String,
    /// The kernel, as messages name it (its id or release).
    pub kernel: String,
    /// What a bare `$name` at a tracepoint reads where the event has both
    /// an argument and a format field of that name.
    pub tracepoint_names: TracepointNames,
    refused: BTreeMap<Construct, String>,
}

impl Capabilities {
    /// A back end on `kernel` that serves every construct.
    pub fn all(backend: impl Into<String>, kernel: impl Into<String>) -> Capabilities {
        Capabilities {
            backend: backend.into(),
            kernel: kernel.into(),
            tracepoint_names: TracepointNames::default(),
            refused: BTreeMap::new(),
        }
    }

    /// The same, reading `names` for a bare `$name` at a tracepoint.
    #[must_use]
    pub fn with_tracepoint_names(mut self, names: TracepointNames) -> Capabilities {
        self.tracepoint_names = names;
        self
    }

    /// The same, refusing `construct` for `why` (said to the user: what to
    /// do instead, or why it cannot be).
    #[must_use]
    pub fn refuse(mut self, construct: Construct, why: impl Into<String>) -> Capabilities {
        self.refused.insert(construct, why.into());
        self
    }

    /// Whether `construct` is served; if not, why.
    pub fn serves(&self, construct: Construct) -> Result<(), &str> {
        match self.refused.get(&construct) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }

    /// The error for `what` (an instance of `construct`, as the script
    /// wrote it) at `location`, when it is not served.
    pub fn unsupported(
        &self,
        construct: Construct,
        what: &str,
        location: String,
    ) -> Option<ElaborateError> {
        let why = self.serves(construct).err()?;
        let described = construct.describe();
        let message = if what.is_empty() || what == described {
            format!(
                "{described} is not supported by the {} back end on {}",
                self.backend, self.kernel
            )
        } else {
            format!(
                "{described} ({what}) is not supported by the {} back end on {}",
                self.backend, self.kernel
            )
        };
        let mut error = ElaborateError::new(message, location).with_hint(why);
        error.refusal = true;
        Some(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsupported_construct_names_back_end_kernel_and_construct() {
        let caps = Capabilities::all("tracefs", "5.10")
            .refuse(Construct::EntryValue, "save the value in an entry probe");
        assert!(caps.serves(Construct::ComputedRead).is_ok());
        assert!(
            caps.unsupported(Construct::ComputedRead, "", "t.stp:1:1".into())
                .is_none()
        );
        let error = caps
            .unsupported(Construct::EntryValue, "@entry($count)", "t.stp:3:9".into())
            .unwrap();
        assert_eq!(
            error.to_string(),
            "semantic error: @entry (@entry($count)) is not supported by the tracefs back end on 5.10 at t.stp:3:9\n        hint: save the value in an entry probe"
        );
    }
}
