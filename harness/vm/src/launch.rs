//! The QEMU launcher: one boot of a kernel with an initramfs, its console on
//! `ttyS0` saved to a log, its data channel on `ttyS1` saved to a file, a
//! timeout, and a verdict. QEMU never outlives the boot: it is killed on
//! timeout and on drop, and gets SIGKILL if this process dies.

use std::fs;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tapmatrix_wire::{DoneStatus, Record, RecordKind, RecordReader};

use crate::{ResolvedAccel, VmOptions};

/// One boot to run.
#[derive(Debug, Clone)]
pub struct BootSpec {
    /// The kernel image (`vmlinuz`).
    pub kernel: PathBuf,
    /// The initramfs image.
    pub initramfs: PathBuf,
    /// Extra kernel command line words (after `console=ttyS0 panic=-1 quiet`).
    pub append: Vec<String>,
    /// Where the console log (`console.log`) and data channel (`data.bin`) go.
    pub work_dir: PathBuf,
    /// What counts as a clean end.
    pub ending: Ending,
    /// Accelerator, memory and CPUs, and the timeout.
    pub accel: ResolvedAccel,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// Guest CPUs.
    pub cpus: u32,
    /// How long the boot may take before QEMU is killed.
    pub timeout: Duration,
}

impl BootSpec {
    /// A boot of `kernel` with `initramfs` using `options`, logging into `work_dir`.
    pub fn new(kernel: &Path, initramfs: &Path, work_dir: &Path, options: &VmOptions) -> Self {
        Self {
            kernel: kernel.to_path_buf(),
            initramfs: initramfs.to_path_buf(),
            append: Vec::new(),
            work_dir: work_dir.to_path_buf(),
            ending: Ending::AgentDone,
            accel: options.accel.resolve(),
            memory_mib: options.memory_mib,
            cpus: options.cpus,
            timeout: options.timeout,
        }
    }
}

/// What a clean boot ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The agent's `done` record, then power-off.
    AgentDone,
    /// Power-off alone (a boot without the agent, such as the bare-boot floor).
    PowerOff,
}

/// A boot that ended cleanly.
#[derive(Debug)]
pub struct BootOutcome {
    /// The records the agent sent, without the final `done` record.
    pub records: Vec<Record>,
    /// The agent's final status (`None` for [`Ending::PowerOff`] boots).
    pub done: Option<DoneStatus>,
    /// The console log.
    pub console_log: PathBuf,
    /// Wall time from starting QEMU to its exit.
    pub wall: Duration,
}

/// Why a boot failed: each an infrastructure error, never a test verdict.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The work directory could not be prepared.
    #[error("preparing {path}: {source}")]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// QEMU could not be started.
    #[error(
        "could not start qemu-system-x86_64 ({source}): install the Debian package qemu-system-x86 (`tapmatrix doctor --install`)"
    )]
    Spawn {
        /// The I/O error.
        source: std::io::Error,
    },
    /// The boot took longer than its timeout; QEMU was killed.
    #[error("the guest timed out after {}s and was killed; console log: {}", .timeout.as_secs(), .console_log.display())]
    Timeout {
        /// The timeout.
        timeout: Duration,
        /// The console log.
        console_log: PathBuf,
    },
    /// The kernel panicked.
    #[error("kernel panic: {line}; console log: {}", .console_log.display())]
    KernelPanic {
        /// The console's panic line.
        line: String,
        /// The console log.
        console_log: PathBuf,
    },
    /// QEMU itself failed (bad arguments, unreadable kernel).
    #[error("qemu-system-x86_64 failed ({status}): {stderr}")]
    Qemu {
        /// QEMU's exit status.
        status: String,
        /// What QEMU printed.
        stderr: String,
    },
    /// The guest powered off or died without the agent's `done` record.
    #[error("the guest stopped before the agent finished ({reason}); last console line: {last_line:?}; console log: {}", .console_log.display())]
    EarlyExit {
        /// What was wrong with the data channel.
        reason: String,
        /// The console's last non-empty line.
        last_line: String,
        /// The console log.
        console_log: PathBuf,
    },
}

/// Boots `spec` and waits for it to end, at most `spec.timeout`.
pub fn boot(spec: &BootSpec) -> Result<BootOutcome, BootError> {
    fs::create_dir_all(&spec.work_dir).map_err(|source| BootError::WorkDir {
        path: spec.work_dir.clone(),
        source,
    })?;
    let console_log = spec.work_dir.join("console.log");
    let data = spec.work_dir.join("data.bin");
    let mut append = vec![
        "console=ttyS0".to_owned(),
        "panic=-1".to_owned(),
        "quiet".to_owned(),
    ];
    append.extend(spec.append.iter().cloned());
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut push = |arg: &dyn AsRef<std::ffi::OsStr>| args.push(arg.as_ref().to_owned());
    for arg in spec.accel.qemu_args() {
        push(&arg);
    }
    for arg in [
        "-nographic",
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
        "-nic",
        "none",
    ] {
        push(&arg);
    }
    push(&"-m");
    push(&spec.memory_mib.to_string());
    push(&"-smp");
    push(&spec.cpus.to_string());
    push(&"-kernel");
    push(&spec.kernel);
    push(&"-initrd");
    push(&spec.initramfs);
    push(&"-append");
    push(&append.join(" "));
    push(&"-serial");
    push(&format!("file:{}", qemu_path(&console_log)));
    push(&"-serial");
    push(&format!("file:{}", qemu_path(&data)));
    let expression = duct::cmd("qemu-system-x86_64", args)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked();
    let started = Instant::now();
    let ended = run_with_timeout(&expression, spec.timeout)
        .map_err(|source| BootError::Spawn { source })?;
    let wall = started.elapsed();
    let console = fs::read(&console_log).unwrap_or_default();
    let console = String::from_utf8_lossy(&console);
    if let Some(line) = console.lines().find(|line| line.contains("Kernel panic")) {
        return Err(BootError::KernelPanic {
            line: line.trim().to_owned(),
            console_log,
        });
    }
    let output = match ended {
        Ended::TimedOut => {
            return Err(BootError::Timeout {
                timeout: spec.timeout,
                console_log,
            });
        }
        Ended::Exited(output) => output,
    };
    if !output.status.success() {
        return Err(BootError::Qemu {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    let last_line = console
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .unwrap_or("")
        .to_owned();
    let early = |reason: String| BootError::EarlyExit {
        reason,
        last_line: last_line.clone(),
        console_log: console_log.clone(),
    };
    let (records, done) = match spec.ending {
        Ending::PowerOff => (Vec::new(), None),
        Ending::AgentDone => {
            let file = fs::File::open(&data)
                .map_err(|error| early(format!("no data channel file: {error}")))?;
            let (records, done) = read_records(BufReader::new(file)).map_err(early)?;
            (records, Some(done))
        }
    };
    Ok(BootOutcome {
        records,
        done,
        console_log,
        wall,
    })
}

/// The records of a data channel up to its `done` record.
fn read_records(input: impl std::io::Read) -> Result<(Vec<Record>, DoneStatus), String> {
    let mut reader = RecordReader::new(input);
    let mut records = Vec::new();
    loop {
        match reader.next_record() {
            Ok(Some(record)) if record.kind == RecordKind::Done => {
                let done = serde_json::from_slice(&record.payload)
                    .map_err(|error| format!("bad done record: {error}"))?;
                return Ok((records, done));
            }
            Ok(Some(record)) => records.push(record),
            Ok(None) => {
                return Err(format!(
                    "the data channel ends after {} records without a done record",
                    records.len()
                ));
            }
            Err(error) => return Err(error.to_string()),
        }
    }
}

/// A path as a QEMU option value (commas doubled).
fn qemu_path(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

/// How a guarded process ended.
pub(crate) enum Ended {
    /// It exited by itself.
    Exited(std::process::Output),
    /// It ran out of time and was killed.
    TimedOut,
}

/// Runs `expression` (with unchecked status), killing it after `timeout`.
/// The child gets SIGKILL if this process dies, and is killed if the
/// waiting is abandoned (panic unwinding drops the guard).
pub(crate) fn run_with_timeout(
    expression: &duct::Expression,
    timeout: Duration,
) -> std::io::Result<Ended> {
    let handle = expression.before_spawn(kill_with_parent).start()?;
    let guard = KillOnDrop(Some(handle));
    let deadline = Instant::now() + timeout;
    let handle = guard
        .0
        .as_ref()
        .ok_or_else(|| std::io::Error::other("no child"))?;
    loop {
        if let Some(output) = handle.try_wait()? {
            let output = output.clone();
            let mut guard = guard;
            guard.0 = None;
            return Ok(Ended::Exited(output));
        }
        if Instant::now() >= deadline {
            drop(guard);
            return Ok(Ended::TimedOut);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills (and reaps) the child when dropped, unless emptied.
struct KillOnDrop(Option<duct::Handle>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            let _ = handle.kill();
        }
    }
}

/// Asks the kernel to SIGKILL the child when the thread that spawned it exits
/// (each boot is spawned and waited for on the same thread).
#[allow(unsafe_code)]
fn kill_with_parent(command: &mut std::process::Command) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec; it only makes the
    // prctl(PR_SET_PDEATHSIG) system call, which is async-signal-safe, and
    // allocates nothing.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
    Ok(())
}
