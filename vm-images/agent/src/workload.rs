//! The workload: `/bin/sh -c COMMAND` in its own process group, held at a
//! gate until the events are enabled, so that `target()` is its pid and
//! nothing it does is missed.

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::process::{
    Pid, Signal, WaitId, WaitIdOptions, WaitOptions, kill_process, kill_process_group, wait,
    waitid, waitpid,
};

/// The shell that stops itself, and once continued becomes the workload
/// (`exec`: same pid). The gate makes no system call the workload's own
/// probes would see but the end of its `kill` (a pipe gate showed up as
/// reads of the workload). Waiting for the stop also waits for the end of
/// its exec (`Command::spawn` returns before the kernel has finished it,
/// and its `sched_process_exec` would land in the run).
const GATE: &str = "kill -STOP $$ && exec /bin/sh -c \"$1\"";

/// A started workload.
pub struct Workload {
    child: Child,
    gated: bool,
    released: bool,
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
        let mut workload = Self {
            child,
            gated: false,
            released: false,
            status: None,
        };
        let pid = workload.process().context("the workload has no pid")?;
        // Wait until it has stopped itself (or died trying).
        let stopped = waitpid(Some(pid), WaitOptions::UNTRACED)
            .context("waiting for the workload to reach its gate")?;
        workload.gated = stopped.is_some_and(|(_, status)| status.stopped());
        if !workload.gated {
            workload.kill();
            anyhow::bail!("the workload's shell ended before its gate");
        }
        Ok(workload)
    }

    /// The workload's pid (`target()`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Lets it run.
    pub fn release(&mut self) -> Result<()> {
        if std::mem::take(&mut self.gated)
            && let Some(pid) = self.process()
        {
            kill_process(pid, Signal::CONT).context("continuing the workload")?;
            self.released = true;
        }
        Ok(())
    }

    /// Its exit status once it has ended (128 + N for a signal); `None`
    /// while it runs and when it never passed the gate. It is left
    /// unreaped (until [`Workload::kill`]), so that `/proc/PID` still names
    /// it while its last records are read.
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
        if let Some(pid) = self.process() {
            let _ = kill_process_group(pid, Signal::KILL);
        }
        if let Ok(status) = self.child.wait()
            && self.status.is_none()
        {
            self.status = status
                .code()
                .or_else(|| status.signal().map(|signal| 128 + signal));
        }
    }
}

/// Kills every process but the agent (a workload's descendants that left
/// its process group), leaving kernel threads alone; how many it signalled.
pub fn kill_strays() -> usize {
    let own = std::process::id().to_string();
    let mut killed = 0;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|name| *name != own)
            .and_then(|name| name.parse::<i32>().ok())
            .and_then(Pid::from_raw)
        else {
            continue;
        };
        // Kernel threads have no executable.
        if std::fs::read_link(entry.path().join("exe")).is_ok()
            && kill_process(pid, Signal::KILL).is_ok()
        {
            killed += 1;
        }
    }
    killed
}

/// Reaps the agent's children (orphans are re-parented to PID 1) until
/// none is left, waiting at most `patience` for those still dying.
pub fn reap_orphans(patience: Duration) {
    let deadline = Instant::now() + patience;
    loop {
        // `wait`, not `waitpid(None)`: that one only waits for the agent's
        // own process group.
        match wait(WaitOptions::NOHANG) {
            Ok(Some(_)) => {}
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            // No child left (ECHILD), or out of patience.
            Ok(None) | Err(_) => return,
        }
    }
}
