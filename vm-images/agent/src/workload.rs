//! The workload: `/bin/sh -c COMMAND` in its own process group, held at a
//! gate until the events are enabled, so that `target()` is its pid and
//! nothing it does is missed.

use std::io::Write;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, Command, Stdio};

use anyhow::{Context, Result};
use rustix::process::{
    Pid, Signal, WaitId, WaitIdOptions, WaitOptions, kill_process_group, waitid, waitpid,
};

/// The shell that waits for one line on its standard input, then becomes
/// the workload (`exec`: same pid).
const GATE: &str = "read -r go && exec /bin/sh -c \"$1\"";

/// A started workload.
pub struct Workload {
    child: Child,
    gate: Option<ChildStdin>,
    released: bool,
    status: Option<i32>,
}

impl Workload {
    /// Starts `command`, held at the gate.
    pub fn spawn(command: &str) -> Result<Self> {
        let mut child = Command::new("/bin/sh")
            .args(["-c", GATE, "tapmatrix-workload", command])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting the workload `{command}`"))?;
        let gate = child.stdin.take();
        Ok(Self {
            child,
            gate,
            released: false,
            status: None,
        })
    }

    /// The workload's pid (`target()`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it run.
    pub fn release(&mut self) -> Result<()> {
        if let Some(mut gate) = self.gate.take() {
            gate.write_all(b"go\n")
                .context("opening the workload's gate")?;
            self.released = true;
        }
        Ok(())
    }

    /// Its exit status once it has ended (128 + N for a signal); `None`
    /// while it runs and when it never passed the gate. It is
    /// left unreaped (until [`Workload::kill`]), so that `/proc/PID` still
    /// names it while its last records are read.
    pub fn poll(&mut self) -> Option<i32> {
        if self.status.is_none()
            && let Some(pid) = self.process()
            && let Ok(Some(status)) = waitid(
                WaitId::Pid(pid),
                WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT,
            )
        {
            self.status = status
                .exit_status()
                .or_else(|| status.terminating_signal().map(|signal| 128 + signal));
        }
        self.status.filter(|_| self.released)
    }

    /// Its pid, as rustix wants it.
    fn process(&self) -> Option<Pid> {
        i32::try_from(self.child.id()).ok().and_then(Pid::from_raw)
    }

    /// Kills its whole process group (if it still runs) and reaps it.
    pub fn kill(&mut self) {
        self.gate = None;
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
