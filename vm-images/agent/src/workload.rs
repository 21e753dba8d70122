//! The workload: `/bin/sh -c COMMAND` in its own process group, held at a
//! gate until the events are enabled, so that `target()` is its pid and
//! nothing it does is missed. The gate's shell says when it is ready (its
//! `exec` is over: `Command::spawn` returns before the kernel has finished
//! the exec, whose `sched_process_exec` would otherwise land in the run).
//! Its standard output is a pipe the agent drains and drops.

use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::process::{
    Pid, Signal, WaitId, WaitIdOptions, WaitOptions, kill_process_group, wait, waitid,
};

/// The shell that says it is ready, waits for one line on its standard
/// input, then becomes the workload (`exec`: same pid).
const GATE: &str = "echo ready && read -r go && exec /bin/sh -c \"$1\"";

/// A started workload.
pub struct Workload {
    child: Child,
    gate: Option<ChildStdin>,
    output: Option<ChildStdout>,
    released: bool,
    status: Option<i32>,
}

impl Workload {
    /// Starts `command` and waits until it is held at the gate.
    pub fn spawn(command: &str) -> Result<Self> {
        let mut child = Command::new("/bin/sh")
            .args(["-c", GATE, "tapmatrix-workload", command])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting the workload `{command}`"))?;
        let gate = child.stdin.take();
        let output = child.stdout.take();
        let mut workload = Self {
            child,
            gate,
            output,
            released: false,
            status: None,
        };
        if let Err(error) = workload.await_gate() {
            workload.kill();
            return Err(error);
        }
        Ok(workload)
    }

    /// Waits for the gate's `ready`, then makes the output non-blocking.
    fn await_gate(&mut self) -> Result<()> {
        let output = self
            .output
            .as_mut()
            .context("the workload has no output pipe")?;
        let mut said = Vec::new();
        let mut byte = [0u8; 1];
        while !said.ends_with(b"ready\n") {
            match output.read(&mut byte) {
                Ok(0) => anyhow::bail!("the workload's shell ended before its gate"),
                Ok(_) => said.push(byte[0]),
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error).context("reading the workload's gate"),
            }
        }
        rustix::fs::fcntl_setfl(&*output, rustix::fs::OFlags::NONBLOCK)
            .context("making the workload's output non-blocking")
    }

    /// Reads and drops what the workload wrote (so that it never blocks on
    /// a full pipe).
    pub fn drain_output(&mut self) {
        let mut buffer = [0u8; 4096];
        if let Some(output) = &mut self.output {
            while matches!(output.read(&mut buffer), Ok(read) if read > 0) {}
        }
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
        self.output = None;
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
            && rustix::process::kill_process(pid, Signal::KILL).is_ok()
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
