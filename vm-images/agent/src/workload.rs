//! The workload: `/bin/sh -c COMMAND` in its own process group, held at a
//! gate until the events are enabled, so that `target()` is its pid and
//! nothing it does is missed. Its standard output and error are pipes the
//! agent reads while it runs ([`Capture`]: a bounded head and tail).

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tapmatrix_ir::{OutputStream, WORKLOAD_HEAD, WORKLOAD_TAIL};

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
    /// Its standard output and error: the pipe (until it ends) and what
    /// was read from it.
    outputs: Vec<(Option<OwnedFd>, Capture)>,
}

/// One chunk of a workload stream to report: the stream, the text, and
/// how many bytes were left out just before it.
pub type Chunk = (OutputStream, String, u64);

/// What a workload wrote on one stream: the first [`WORKLOAD_HEAD`] bytes
/// are handed on as they come, then only the last [`WORKLOAD_TAIL`] are
/// kept (and the bytes left out in between counted), so a workload that
/// writes gigabytes costs no more memory than that.
#[derive(Debug)]
pub struct Capture {
    stream: OutputStream,
    /// Head bytes still to hand on.
    head_left: usize,
    /// Head bytes read but not handed on yet (an unfinished UTF-8 sequence).
    pending: Vec<u8>,
    /// The last bytes after the head.
    tail: VecDeque<u8>,
    /// Bytes pushed out of the tail.
    dropped: u64,
}

impl Capture {
    /// An empty capture of `stream`.
    pub fn new(stream: OutputStream) -> Self {
        Self {
            stream,
            head_left: WORKLOAD_HEAD,
            pending: Vec::new(),
            tail: VecDeque::new(),
            dropped: 0,
        }
    }

    /// Takes in bytes read from the stream.
    pub fn push(&mut self, mut bytes: &[u8]) {
        let head = bytes.len().min(self.head_left);
        self.pending.extend_from_slice(&bytes[..head]);
        self.head_left -= head;
        bytes = &bytes[head..];
        self.tail.extend(bytes);
        let over = self.tail.len().saturating_sub(WORKLOAD_TAIL);
        self.tail.drain(..over);
        self.dropped += over as u64;
    }

    /// The head text read since the last call (whole UTF-8 sequences only,
    /// unless the head is complete).
    pub fn take_head(&mut self) -> Option<Chunk> {
        let whole = if self.head_left == 0 {
            self.pending.len()
        } else {
            utf8_prefix(&self.pending)
        };
        if whole == 0 {
            return None;
        }
        let bytes: Vec<u8> = self.pending.drain(..whole).collect();
        Some((self.stream, String::from_utf8_lossy(&bytes).into_owned(), 0))
    }

    /// Whatever is left: the rest of the head, then the tail with the
    /// count of bytes left out before it.
    pub fn finish(&mut self) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        if !self.pending.is_empty() {
            let bytes = std::mem::take(&mut self.pending);
            chunks.push((self.stream, String::from_utf8_lossy(&bytes).into_owned(), 0));
        }
        if !self.tail.is_empty() || self.dropped > 0 {
            let bytes: Vec<u8> = self.tail.drain(..).collect();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            chunks.push((self.stream, text, std::mem::take(&mut self.dropped)));
        }
        chunks
    }
}

/// How many leading bytes of `bytes` end on a UTF-8 boundary (an invalid
/// sequence counts as whole: it will be replaced anyway).
fn utf8_prefix(bytes: &[u8]) -> usize {
    match std::str::from_utf8(bytes) {
        Ok(_) => bytes.len(),
        Err(error) if error.error_len().is_none() => error.valid_up_to(),
        Err(_) => bytes.len(),
    }
}

impl Workload {
    /// Starts `command`, held at the gate (stopped).
    pub fn spawn(command: &str) -> Result<Self> {
        let mut child = Command::new("/bin/sh")
            .args(["-c", GATE, "tapmatrix-workload", command])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting the workload `{command}`"))?;
        let mut outputs = Vec::new();
        let pipes = [
            (child.stdout.take().map(OwnedFd::from), OutputStream::Stdout),
            (child.stderr.take().map(OwnedFd::from), OutputStream::Stderr),
        ];
        for (pipe, stream) in pipes {
            if let Some(pipe) = &pipe {
                // Read while the run goes on: never wait for it.
                let flags = rustix::fs::fcntl_getfl(pipe.as_fd())?;
                rustix::fs::fcntl_setfl(pipe.as_fd(), flags | rustix::fs::OFlags::NONBLOCK)?;
            }
            outputs.push((pipe, Capture::new(stream)));
        }
        let mut workload = Self {
            child,
            gated: false,
            released: false,
            status: None,
            outputs,
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

    /// What it wrote since the last call, as chunks to report; with
    /// `last`, everything left (the pipes are closed then: processes that
    /// still hold them write into nothing).
    pub fn output(&mut self, last: bool) -> Vec<Chunk> {
        let mut chunks = Vec::new();
        let mut buffer = [0u8; 16 << 10];
        for (pipe, capture) in &mut self.outputs {
            // At most a few reads per call: a workload writing without end
            // must not keep the agent from its events.
            for _ in 0..64 {
                let Some(fd) = pipe.as_ref() else { break };
                match rustix::io::read(fd, &mut buffer) {
                    Ok(0) => *pipe = None,
                    Ok(read) => capture.push(&buffer[..read]),
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(_) => break,
                }
            }
            chunks.extend(capture.take_head());
            if last {
                *pipe = None;
                chunks.extend(capture.finish());
            }
        }
        chunks
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_stream_keeps_its_head_and_tail_and_counts_the_rest() {
        let mut capture = Capture::new(OutputStream::Stdout);
        let line = b"0123456789abcdef";
        let mut sent = String::new();
        let total = 10 << 20;
        for _ in 0..total / line.len() {
            capture.push(line);
            if let Some((_, text, _)) = capture.take_head() {
                sent.push_str(&text);
            }
        }
        assert_eq!(sent.len(), WORKLOAD_HEAD);
        let rest = capture.finish();
        let [(stream, tail, dropped)] = rest.as_slice() else {
            panic!("{rest:?}")
        };
        assert_eq!(*stream, OutputStream::Stdout);
        assert_eq!(tail.len(), WORKLOAD_TAIL);
        assert_eq!(*dropped as usize, total - WORKLOAD_HEAD - WORKLOAD_TAIL);
        assert!(capture.tail.capacity() < 2 * WORKLOAD_TAIL + 4096);
    }

    #[test]
    fn characters_split_across_reads_stay_whole() {
        let mut capture = Capture::new(OutputStream::Stderr);
        let text = "héllo";
        let bytes = text.as_bytes();
        capture.push(&bytes[..2]);
        let first = capture.take_head().map(|(_, text, _)| text);
        capture.push(&bytes[2..]);
        let second = capture.take_head().map(|(_, text, _)| text);
        assert_eq!(
            format!("{}{}", first.unwrap_or_default(), second.unwrap()),
            text
        );
        assert!(capture.finish().is_empty());
    }
}
