//! The QEMU launcher: one boot of a kernel with an initramfs, its console on
//! `ttyS0` saved to a log, its data channel on `ttyS1` saved to a file, a
//! timeout, and a verdict. QEMU never outlives the boot: it is killed on
//! timeout and on drop, and gets SIGKILL if this process dies.

use std::fs::{self, File};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tapmatrix_wire::{
    DoneStatus, Record, RecordKind, RecordReader, WINDOW_HEADER_LEN, WINDOW_MAGIC, WINDOW_PARAM,
    WireError,
};

use crate::accel::{self, Choice};
use crate::{ResolvedAccel, VmOptions};

/// One boot to run.
#[derive(Debug, Clone)]
pub struct BootSpec {
    /// The kernel image QEMU boots (see [`crate::bootable_kernel`]).
    pub kernel: PathBuf,
    /// The initramfs image.
    pub initramfs: PathBuf,
    /// Extra kernel command line words (after `console=ttyS0 panic=-1 quiet`).
    pub append: Vec<String>,
    /// Where the console log (`console.log`) and data channel (`data.bin`) go.
    pub work_dir: PathBuf,
    /// What counts as a clean end.
    pub ending: Ending,
    /// Accelerator, memory, CPUs, the timeout, the QEMU program and the
    /// cache (for the accelerator's remembered verdicts).
    pub vm: VmOptions,
    /// The size in MiB of an empty virtio block device the guest gets
    /// (`/dev/vda` once `virtio_pci` and `virtio_blk` are loaded); 0: none.
    pub disk_mib: u32,
}

impl BootSpec {
    /// A boot of `kernel` (a vmlinuz; its PVH vmlinux is extracted once and
    /// booted instead where possible) with `initramfs` using `options`,
    /// logging into `work_dir`.
    pub fn new(kernel: &Path, initramfs: &Path, work_dir: &Path, options: &VmOptions) -> Self {
        let image = crate::bootable_kernel(kernel, &options.cache_dir);
        Self::of_image(image, initramfs, work_dir, options)
    }

    /// A boot of the kernel image `image` as it is (what
    /// [`crate::bootable_kernel`] gave).
    pub fn of_image(
        image: PathBuf,
        initramfs: &Path,
        work_dir: &Path,
        options: &VmOptions,
    ) -> Self {
        Self {
            kernel: image,
            initramfs: initramfs.to_path_buf(),
            append: Vec::new(),
            work_dir: work_dir.to_path_buf(),
            ending: Ending::AgentDone,
            vm: options.clone(),
            disk_mib: 0,
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
    /// The accelerator the boot ran under.
    pub accel: ResolvedAccel,
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
    /// Handling the agent's records failed (a corrupt stream, or the
    /// caller's handler failed); QEMU was killed if still running.
    #[error("handling the guest's output: {message}")]
    Output {
        /// What failed.
        message: String,
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

/// Boots `spec` and waits for it to end, at most `spec.timeout`; the
/// outcome holds every record the agent sent.
pub fn boot(spec: &BootSpec) -> Result<BootOutcome, BootError> {
    let mut records = Vec::new();
    let mut outcome = boot_streaming(spec, &mut |record| {
        records.push(record);
        Ok(())
    })?;
    outcome.records = records;
    Ok(outcome)
}

/// Boots `spec` like [`boot`], handing each record to `on_record` as soon as
/// the agent commits it (the memory window is read while the guest runs);
/// the outcome's `records` is then empty. An error from `on_record` stops
/// the boot.
pub fn boot_streaming(
    spec: &BootSpec,
    on_record: &mut dyn FnMut(Record) -> Result<(), String>,
) -> Result<BootOutcome, BootError> {
    let choice = accel::choose(spec.vm.accel, &spec.vm);
    match boot_once(spec, choice, on_record) {
        Ok(outcome) => Ok(outcome),
        Err(Attempt::Failed(error)) => Err(error),
        Err(Attempt::KvmSilent(reason)) => {
            accel::kvm_fails(&spec.vm, &reason);
            boot_once(spec, Choice::TCG, on_record).map_err(Attempt::into_boot_error)
        }
    }
}

/// How one boot attempt failed.
enum Attempt {
    /// The boot failed.
    Failed(BootError),
    /// A boot under KVM on trial never showed the kernel running (what it
    /// did instead): nothing was handed on, boot again under TCG.
    KvmSilent(String),
}

impl Attempt {
    fn into_boot_error(self) -> BootError {
        match self {
            Self::Failed(error) => error,
            Self::KvmSilent(message) => BootError::Output { message },
        }
    }
}

impl From<BootError> for Attempt {
    fn from(error: BootError) -> Self {
        Self::Failed(error)
    }
}

/// One boot of `spec` under `choice`.
fn boot_once(
    spec: &BootSpec,
    choice: Choice,
    on_record: &mut dyn FnMut(Record) -> Result<(), String>,
) -> Result<BootOutcome, Attempt> {
    fs::create_dir_all(&spec.work_dir).map_err(|source| BootError::WorkDir {
        path: spec.work_dir.clone(),
        source,
    })?;
    let console_log = spec.work_dir.join("console.log");
    let data = spec.work_dir.join("data.bin");
    let ram = GuestRam::create(spec.vm.memory_mib).map_err(|source| BootError::WorkDir {
        path: ram_dir(),
        source,
    })?;
    let window = ram.window;
    let mut append = vec![
        "console=ttyS0".to_owned(),
        "panic=-1".to_owned(),
        "quiet".to_owned(),
        format!("memmap={}${:#x}", window.size, window.base),
        format!("{WINDOW_PARAM}={:#x}:{:#x}", window.base, window.size),
    ];
    append.extend(spec.append.iter().cloned());
    let mut args: Vec<std::ffi::OsString> = Vec::new();
    let mut push = |arg: &dyn AsRef<std::ffi::OsStr>| args.push(arg.as_ref().to_owned());
    for arg in choice.accel.qemu_args() {
        push(&arg);
    }
    // Made for this boot and unlinked at once: kept alive by `disk` until
    // QEMU is gone, never shared with another boot, nothing left behind.
    let disk =
        Disk::create(spec.disk_mib, &spec.vm.cache_dir).map_err(|source| BootError::WorkDir {
            path: Disk::dir(&spec.vm.cache_dir),
            source,
        })?;
    for arg in device_args(disk.as_ref().map(Disk::drive)) {
        push(&arg);
    }
    push(&"-m");
    push(&format!("{}M", spec.vm.memory_mib));
    push(&"-object");
    push(&format!(
        "memory-backend-file,id=tapmatrix-ram,size={}M,mem-path=/proc/self/fd/{},share=on",
        spec.vm.memory_mib,
        ram.file.as_raw_fd()
    ));
    push(&"-machine");
    push(&"pc,memory-backend=tapmatrix-ram");
    push(&"-smp");
    push(&spec.vm.cpus.to_string());
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
    let expression = duct::cmd(spec.vm.qemu.as_os_str(), args)
        .stdin_null()
        .stdout_capture()
        .stderr_capture()
        .unchecked();
    let mut stream = Stream::default();
    let streaming = spec.ending == Ending::AgentDone;
    let started = Instant::now();
    // Under KVM on trial: whether the kernel showed itself yet, and whether
    // the boot was killed for staying silent.
    let mut on_trial = choice.on_trial;
    let mut silent = false;
    let mut on_poll = || {
        if on_trial {
            let alive = ram.committed().is_some()
                || fs::read(&console_log).is_ok_and(|text| accel::console_shows_kernel(&text));
            if alive {
                on_trial = false;
                accel::kvm_works(&spec.vm);
            } else if started.elapsed() >= spec.vm.kvm_trial {
                silent = true;
                return Err("silent".to_owned());
            }
        }
        if streaming {
            stream.pull_window(&ram)?;
            stream.deliver(on_record)?;
            // The agent's done record is its last word: what is left is
            // its power-off, which the host need not wait for.
            return Ok(stream.done.is_some());
        }
        Ok(false)
    };
    let ended = run_with_timeout(
        &expression,
        spec.vm.timeout,
        Some(ram.file.as_raw_fd()),
        &mut on_poll,
    )
    .map_err(|source| BootError::Spawn { source })?;
    let wall = started.elapsed();
    drop(disk);
    if on_trial {
        // Ended (or was killed) before the kernel showed itself under KVM.
        let console = fs::read(&console_log).unwrap_or_default();
        if ram.committed().is_none() && !accel::console_shows_kernel(&console) {
            return Err(Attempt::KvmSilent(match &ended {
                Ended::Exited(output) if !silent => format!(
                    "failed before the kernel printed anything (QEMU {}: {})",
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
                _ => format!("showed no kernel output within {} s", wall.as_secs()),
            }));
        }
        accel::kvm_works(&spec.vm);
    }
    let console = fs::read(&console_log).unwrap_or_default();
    let console = String::from_utf8_lossy(&console);
    if let Some(at) = console.find("Kernel panic") {
        let line = console[at..].lines().next().unwrap_or_default();
        return Err(BootError::KernelPanic {
            line: line.trim().to_owned(),
            console_log,
        }
        .into());
    }
    let output = match ended {
        Ended::Finished => None,
        Ended::TimedOut => {
            return Err(BootError::Timeout {
                timeout: spec.vm.timeout,
                console_log,
            }
            .into());
        }
        Ended::Aborted(message) => return Err(BootError::Output { message }.into()),
        Ended::Exited(output) => Some(output),
    };
    if let Some(output) = output.filter(|output| !output.status.success()) {
        return Err(BootError::Qemu {
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        }
        .into());
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
    let done = match spec.ending {
        Ending::PowerOff => None,
        Ending::AgentDone => {
            stream.pull_window(&ram).map_err(early)?;
            if !stream.window_seen {
                // No memory window: the agent used the serial port.
                let bytes = fs::read(&data)
                    .map_err(|error| early(format!("no data channel file: {error}")))?;
                stream.buffer.extend_from_slice(&bytes);
            }
            stream
                .deliver(on_record)
                .map_err(|message| BootError::Output { message })?;
            Some(stream.finish().map_err(early)?)
        }
    };
    Ok(BootOutcome {
        records: Vec::new(),
        done,
        console_log,
        wall,
        accel: choice.accel,
    })
}

/// The data stream as received so far, and what of it was handed on.
#[derive(Default)]
struct Stream {
    /// Received bytes not yet discarded.
    buffer: Vec<u8>,
    /// How much of `buffer` was parsed into records.
    parsed: usize,
    /// How many stream bytes were fetched from the window.
    fetched: u64,
    /// Whether the agent opened the memory window.
    window_seen: bool,
    /// Records handed on.
    records: usize,
    /// The agent's final status, once its `done` record arrived.
    done: Option<DoneStatus>,
}

impl Stream {
    /// Fetches what the agent committed to the window since the last call.
    fn pull_window(&mut self, ram: &GuestRam) -> Result<(), String> {
        let Some(committed) = ram.committed() else {
            return Ok(());
        };
        self.window_seen = true;
        if committed > self.fetched {
            let at = ram.window.base + WINDOW_HEADER_LEN + self.fetched;
            let length =
                usize::try_from(committed - self.fetched).map_err(|error| error.to_string())?;
            let start = self.buffer.len();
            self.buffer.resize(start + length, 0);
            ram.file
                .read_exact_at(&mut self.buffer[start..], at)
                .map_err(|error| format!("reading the memory window: {error}"))?;
            self.fetched = committed;
        }
        Ok(())
    }

    /// Hands every complete record received to `on_record`, up to `done`.
    fn deliver(
        &mut self,
        on_record: &mut dyn FnMut(Record) -> Result<(), String>,
    ) -> Result<(), String> {
        while self.done.is_none() {
            let mut reader = RecordReader::new(&self.buffer[self.parsed..]);
            match reader.next_record() {
                Ok(Some(record)) => {
                    self.parsed +=
                        usize::try_from(reader.offset()).map_err(|error| error.to_string())?;
                    if record.kind == RecordKind::Done {
                        let done = serde_json::from_slice(&record.payload)
                            .map_err(|error| format!("bad done record: {error}"))?;
                        self.done = Some(done);
                    } else {
                        self.records += 1;
                        on_record(record)?;
                    }
                }
                Ok(None) | Err(WireError::Truncated { .. }) => break,
                Err(error) => return Err(error.to_string()),
            }
        }
        if self.parsed >= 1 << 20 {
            self.buffer.drain(..self.parsed);
            self.parsed = 0;
        }
        Ok(())
    }

    /// The agent's final status, or why the stream is incomplete.
    fn finish(self) -> Result<DoneStatus, String> {
        self.done.ok_or_else(|| {
            let rest = self.buffer.len() - self.parsed;
            if rest > 0 {
                format!(
                    "the data channel ends inside a record after {} records ({rest} bytes left over)",
                    self.records
                )
            } else {
                format!(
                    "the data channel ends after {} records without a done record",
                    self.records
                )
            }
        })
    }
}

/// Guest RAM as an unlinked file of ours that QEMU maps shared (passed as
/// `/proc/self/fd/N`), so that the memory window can be read from the host
/// and nothing is left behind whatever way this process ends.
struct GuestRam {
    file: File,
    window: Window,
}

/// The physical range reserved from the guest kernel for the data stream.
#[derive(Debug, Clone, Copy)]
struct Window {
    base: u64,
    size: u64,
}

/// Where guest RAM files are created: `/dev/shm` (memory), else the temp dir.
fn ram_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

impl GuestRam {
    /// A RAM file of `memory_mib` MiB; the window sits in the middle (away
    /// from the kernel at the bottom and the initrd QEMU loads at the top).
    fn create(memory_mib: u32) -> std::io::Result<Self> {
        let file = tempfile::tempfile_in(ram_dir())?;
        let bytes = u64::from(memory_mib) << 20;
        file.set_len(bytes)?;
        let window = Window {
            base: (bytes / 2) & !0xF_FFFF,
            size: (bytes / 4).min(64 << 20) & !0xF_FFFF,
        };
        Ok(Self { file, window })
    }

    /// How many stream bytes the agent committed, if it opened the window.
    fn committed(&self) -> Option<u64> {
        let mut header = [0u8; WINDOW_HEADER_LEN as usize];
        self.file
            .read_exact_at(&mut header, self.window.base)
            .ok()?;
        if header[..8] != WINDOW_MAGIC {
            return None;
        }
        let mut length = [0u8; 8];
        length.copy_from_slice(&header[8..]);
        Some(u64::from_le_bytes(length).min(self.window.size - WINDOW_HEADER_LEN))
    }
}

/// QEMU's devices: none of its defaults, no network device whatever the
/// build's defaults (`-nic none`), and the disk's `-drive` when there is one.
fn device_args(drive: Option<String>) -> Vec<String> {
    let mut args: Vec<String> = [
        "-nographic",
        "-nodefaults",
        "-no-user-config",
        "-no-reboot",
        "-nic",
        "none",
    ]
    .map(str::to_owned)
    .into();
    if let Some(drive) = drive {
        args.push("-drive".to_owned());
        args.push(drive);
    }
    args
}

/// The guest's disk: an empty sparse file of the cache's `tmp/`, unlinked
/// as soon as it is made; QEMU opens it through `/proc/PID/fd/N` of this
/// process.
struct Disk {
    file: File,
}

impl Disk {
    /// Where disks are made: `<cache>/tmp` (a disk, not memory).
    fn dir(cache_dir: &Path) -> PathBuf {
        cache_dir.join("tmp")
    }

    /// An empty disk of `mib` MiB, or none for 0.
    fn create(mib: u32, cache_dir: &Path) -> std::io::Result<Option<Self>> {
        if mib == 0 {
            return Ok(None);
        }
        let dir = Self::dir(cache_dir);
        fs::create_dir_all(&dir)?;
        let file = tempfile::tempfile_in(&dir)?;
        file.set_len(u64::from(mib) << 20)?;
        Ok(Some(Self { file }))
    }

    /// QEMU's `-drive` value: a raw virtio disk (virtio-blk-pci), its
    /// writes not flushed to the host (the file is thrown away).
    fn drive(&self) -> String {
        format!(
            "file=/proc/{}/fd/{},if=virtio,format=raw,cache=unsafe",
            std::process::id(),
            self.file.as_raw_fd()
        )
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
    /// The caller's polling failed; it was killed.
    Aborted(String),
    /// The caller's polling said the child's work was done (a guest whose
    /// agent sent its done record); it was killed.
    Finished,
}

/// Runs `expression` (with unchecked status), killing it after `timeout`;
/// `on_poll` runs about every 10 ms while it does; `Ok(true)` from it
/// means the child's work is done, and it is killed.
/// The child gets SIGKILL if this process dies, and is killed if the
/// waiting is abandoned (panic unwinding drops the guard).
/// `pass_fd` is a descriptor the child inherits (the others stay close-on-exec).
pub(crate) fn run_with_timeout(
    expression: &duct::Expression,
    timeout: Duration,
    pass_fd: Option<RawFd>,
    on_poll: &mut dyn FnMut() -> Result<bool, String>,
) -> std::io::Result<Ended> {
    let handle = expression
        .before_spawn(move |command| prepare_child(command, pass_fd))
        .start()?;
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
        match on_poll() {
            Ok(false) => {}
            Ok(true) => {
                drop(guard);
                return Ok(Ended::Finished);
            }
            Err(message) => {
                drop(guard);
                return Ok(Ended::Aborted(message));
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills (and reaps) the child when dropped, unless emptied.
struct KillOnDrop(Option<duct::Handle>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self.0.take() {
            // `kill` only signals; `wait` reaps, so no process is left when this returns.
            let _ = handle.kill();
            let _ = handle.wait();
        }
    }
}

/// In the child: asks the kernel to SIGKILL it when the thread that spawned
/// it exits (each boot is spawned and waited for on the same thread), and
/// lets it inherit `pass_fd`.
#[allow(unsafe_code)]
fn prepare_child(
    command: &mut std::process::Command,
    pass_fd: Option<RawFd>,
) -> std::io::Result<()> {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs between fork and exec; it only makes the
    // prctl(PR_SET_PDEATHSIG) and fcntl(F_SETFD) system calls, which are
    // async-signal-safe, and allocates nothing. `pass_fd` belongs to a file
    // the parent keeps open until the child has exited, so it is valid here.
    unsafe {
        command.pre_exec(move || {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            if let Some(fd) = pass_fd {
                let fd = std::os::fd::BorrowedFd::borrow_raw(fd);
                rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty())?;
            }
            Ok(())
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapmatrix_wire::RecordWriter;

    #[test]
    fn a_disk_is_an_unlinked_sparse_file_and_the_only_device_added() {
        let cache = tempfile::tempdir().unwrap();
        assert!(Disk::create(0, cache.path()).unwrap().is_none());
        assert!(!device_args(None).iter().any(|arg| arg == "-drive"));
        let disk = Disk::create(32, cache.path()).unwrap().unwrap();
        let metadata = disk.file.metadata().unwrap();
        assert_eq!(metadata.len(), 32 << 20);
        // Sparse: nothing written yet.
        assert_eq!(std::os::unix::fs::MetadataExt::blocks(&metadata), 0);
        // Unlinked: the cache's tmp/ holds nothing.
        assert_eq!(fs::read_dir(Disk::dir(cache.path())).unwrap().count(), 0);
        let drive = disk.drive();
        // QEMU reaches it through this process's descriptor.
        let path = drive
            .strip_prefix("file=")
            .and_then(|rest| rest.split(',').next())
            .unwrap();
        assert_eq!(fs::metadata(path).unwrap().len(), 32 << 20);
        assert!(drive.contains(",if=virtio,format=raw"), "{drive}");
        let args = device_args(Some(drive.clone()));
        assert_eq!(args[args.len() - 2..], ["-drive".to_owned(), drive]);
        // No network device: `-nic none`, and nothing else names one.
        let nic = args.iter().position(|arg| arg == "-nic").unwrap();
        assert_eq!(args[nic + 1], "none");
        assert!(
            !args
                .iter()
                .any(|arg| arg.contains("netdev") || arg == "-net" || arg.contains("virtio-net")),
            "{args:?}"
        );
    }

    fn stream_bytes(done: bool) -> Vec<u8> {
        let mut writer = RecordWriter::new(Vec::new());
        writer.write(RecordKind::File, "a", b"first").unwrap();
        writer.write(RecordKind::File, "b", &[7; 3000]).unwrap();
        if done {
            writer
                .finish(&DoneStatus {
                    ok: true,
                    message: "done".into(),
                })
                .unwrap();
        }
        writer.get_ref().clone()
    }

    #[test]
    fn records_are_handed_on_as_they_complete() {
        let bytes = stream_bytes(true);
        let mut stream = Stream::default();
        let mut names = Vec::new();
        // Arrive in ragged pieces, as a running guest commits them.
        for piece in bytes.chunks(7) {
            stream.buffer.extend_from_slice(piece);
            stream
                .deliver(&mut |record| {
                    names.push(record.name);
                    Ok(())
                })
                .unwrap();
        }
        assert_eq!(names, ["a", "b"]);
        assert!(stream.finish().unwrap().ok);
    }

    #[test]
    fn a_stream_without_done_is_incomplete() {
        let bytes = stream_bytes(false);
        let mut stream = Stream::default();
        stream.buffer.extend_from_slice(&bytes[..bytes.len() - 10]);
        stream.deliver(&mut |_| Ok(())).unwrap();
        let error = stream.finish().unwrap_err();
        assert!(
            error.contains("ends inside a record after 1 records"),
            "{error}"
        );
    }
}
