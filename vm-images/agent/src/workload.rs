//! The workload: `/bin/sh -c COMMAND` in its own process group, held at a
//! gate until the events are enabled, so that `target()` is its pid and
//! nothing it does is missed.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result};
use rustix::process::{Pid, Signal, WaitOptions, kill_process, kill_process_group, waitpid};

/// The shell that stops itself, and once continued becomes the workload
/// (`exec`: same pid). The gate makes no system call the workload's own
/// probes would see but the end of its `kill` (a pipe gate showed up as
/// reads of the workload).
const GATE: &str = "kill -STOP $$ && exec /bin/sh -c \"$1\"";

/// A started workload.
pub struct Workload {
    child: Child,
    gated: bool,
    status: Option<i32>,
}

impl Workload {
    /// Starts `command`, held at the gate (stopped).
    pub fn spawn(command: &str) -> Result<Self> {
        let child = Command::new("/bin/sh")
            .args(["-c", GATE, "tapmatrix-workload", command])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting the workload `{command}`"))?;
        let pid = i32::try_from(child.id())
            .ok()
            .and_then(Pid::from_raw)
            .context("the workload has no pid")?;
        // Wait until it has stopped itself (or died trying).
        let stopped = waitpid(Some(pid), WaitOptions::UNTRACED)
            .context("waiting for the workload to reach its gate")?;
        let gated = stopped.is_some_and(|(_, status)| status.stopped());
        Ok(Self {
            child,
            gated,
            status: None,
        })
    }

    /// The workload's pid (`target()`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it run.
    pub fn release(&mut self) -> Result<()> {
        if std::mem::take(&mut self.gated)
            && let Some(pid) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw)
        {
            kill_process(pid, Signal::CONT).context("continuing the workload")?;
        }
        Ok(())
    }

    /// Its exit status once it has ended (128 + N for a signal).
    pub fn poll(&mut self) -> Option<i32> {
        if self.status.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.status = status
                .code()
                .or_else(|| status.signal().map(|signal| 128 + signal));
        }
        self.status
    }

    /// Kills its whole process group (if it still runs) and reaps it.
    pub fn kill(&mut self) {
        if let Some(pid) = i32::try_from(self.child.id()).ok().and_then(Pid::from_raw) {
            let _ = kill_process_group(pid, Signal::KILL);
        }
        if self.status.is_none()
            && let Ok(status) = self.child.wait()
        {
            self.status = status
                .code()
                .or_else(|| status.signal().map(|signal| 128 + signal));
        }
    }
}

/// Reaps every child that has ended (orphans are re-parented to PID 1).
pub fn reap_orphans() {
    while let Ok(Some(_)) = waitpid(None, WaitOptions::NOHANG) {}
}
