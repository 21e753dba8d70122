//! The in-guest agent: PID 1 of the initramfs.
//!
//! It mounts the kernel's filesystems, reads its [`Job`] from `/job.json`,
//! does it (a facts harvest, or a batch of scripts run: see `run`), reports on the data channel (the second serial port, `ttyS1`)
//! as framed records (see `tapmatrix-wire`), and powers the machine off.
//! Whatever happens it ends with a `done` record and a power-off: PID 1 must
//! never exit (the kernel would panic).

mod harvest;
mod modules;
mod ringbuf;
mod run;
mod tasks;
mod tracefs;
mod window;
mod workload;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};

use anyhow::{Context, Result};
use rustix::mount::{MountFlags, mount};
use rustix::system::{RebootCommand, reboot};
use rustix::termios::{OptionalActions, tcdrain, tcgetattr, tcsetattr};
use tapmatrix_wire::{DoneStatus, JOB_PATH, Job, RecordKind, RecordWriter};
use window::MemoryWindow;

/// The serial port that carries the data channel.
const DATA_CHANNEL: &str = "/dev/ttyS1";

/// Filesystems to mount: (source, target, type). Failures are reported, not fatal.
const MOUNTS: &[(&str, &str, &str)] = &[
    ("proc", "/proc", "proc"),
    ("sysfs", "/sys", "sysfs"),
    ("devtmpfs", "/dev", "devtmpfs"),
    ("tracefs", "/sys/kernel/tracing", "tracefs"),
    ("debugfs", "/sys/kernel/debug", "debugfs"),
];

fn main() {
    for (source, target, fstype) in MOUNTS {
        let _ = fs::create_dir_all(target);
        if let Err(error) = mount(*source, *target, *fstype, MountFlags::empty(), None) {
            log(&format!("mount {fstype} on {target}: {error}"));
        }
    }
    raise_open_files();
    log("started");
    match Channel::open() {
        Ok(channel) => {
            // A panic must not end PID 1 (the kernel would panic too).
            let job = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&channel)))
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the agent panicked")));
            let status = match job {
                Ok(()) => DoneStatus {
                    ok: true,
                    message: "job done".to_owned(),
                },
                Err(error) => {
                    log(&format!("job failed: {error:#}"));
                    DoneStatus {
                        ok: false,
                        message: format!("{error:#}"),
                    }
                }
            };
            if let Err(error) = channel.close(&status) {
                log(&format!("closing the data channel: {error:#}"));
            }
        }
        Err(error) => log(&format!("no data channel: {error:#}")),
    }
    power_off();
}

/// Lifts the open files limit to the kernel's most (`fs.nr_open`): a BPF
/// program on each function of a module's wildcard holds a program, a
/// perf event and a link descriptor, and 1024 (the default) ran out at
/// about 500 probes (SystemTap's example `nfs_func_users`).
fn raise_open_files() {
    let most = fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(65_536);
    let limit = rustix::process::Rlimit {
        current: Some(most),
        maximum: Some(most),
    };
    if let Err(error) = rustix::process::setrlimit(rustix::process::Resource::Nofile, limit) {
        log(&format!("raising the open files limit to {most}: {error}"));
    }
}

/// Reads the job and does it.
fn run(channel: &Channel) -> Result<()> {
    let text = fs::read(JOB_PATH).with_context(|| format!("reading {JOB_PATH}"))?;
    let job: Job = serde_json::from_slice(&text).with_context(|| format!("parsing {JOB_PATH}"))?;
    log(&format!("job read ({} bytes)", text.len()));
    match job {
        Job::Harvest(what) => harvest::run(channel, what),
        Job::Run { items } => run::run(channel, &items),
    }
}

/// The data channel: records go to a writer thread so that reading and
/// compressing overlap with the transfer.
struct Channel {
    frames: SyncSender<Frame>,
    writer: JoinHandle<Result<()>>,
}

/// What the writer thread is asked to do.
enum Frame {
    /// Write one record.
    Record(RecordKind, String, Vec<u8>),
    /// Push what is buffered to the host now (commit it to the window),
    /// then say so.
    Flush(SyncSender<()>),
    /// Write the done record, flush and drain the port.
    Finish(DoneStatus),
}

/// Where the stream goes.
enum Sink {
    /// The memory window the host named on the command line.
    Window(MemoryWindow),
    /// The serial port, in raw mode.
    Serial(File),
}

impl Channel {
    /// Opens the memory window, else the serial port, and starts the writer thread.
    fn open() -> Result<Self> {
        let sink = match MemoryWindow::from_cmdline() {
            Ok(Some(window)) => Sink::Window(window),
            Ok(None) => Sink::Serial(open_serial()?),
            Err(error) => {
                log(&format!(
                    "no memory window ({error:#}), using {DATA_CHANNEL}"
                ));
                Sink::Serial(open_serial()?)
            }
        };
        let (frames, receiver) = sync_channel(64);
        let writer = thread::spawn(move || match sink {
            // The window takes bytes faster than LZ4 makes them in a TCG
            // guest (measured: 1.0 s of agent time uncompressed, 1.5 s with
            // LZ4 for 6.1's 8 MB); the serial port is 0.2 MB/s: compress there.
            Sink::Window(window) => write_frames(window, false, receiver, |_| Ok(())),
            Sink::Serial(port) => {
                let drain = port.try_clone().context("duplicating the port")?;
                write_frames(port, true, receiver, move |_| {
                    tcdrain(&drain).context("draining the data channel")
                })
            }
        });
        Ok(Self { frames, writer })
    }

    /// Queues one record.
    fn send(&self, kind: RecordKind, name: &str, payload: Vec<u8>) -> Result<()> {
        self.frames
            .send(Frame::Record(kind, name.to_owned(), payload))
            .context("the data channel's writer stopped")
    }

    /// Has what was queued so far reach the host, and waits until it has
    /// (a run's messages stream as they happen; a kernel panic may follow).
    fn flush(&self) -> Result<()> {
        let (done, flushed) = sync_channel(1);
        self.frames
            .send(Frame::Flush(done))
            .context("the data channel's writer stopped")?;
        flushed
            .recv()
            .context("the data channel's writer stopped while flushing")
    }

    /// Sends the done record and waits until every byte left.
    fn close(self, status: &DoneStatus) -> Result<()> {
        let _ = self.frames.send(Frame::Finish(status.clone()));
        drop(self.frames);
        match self.writer.join() {
            Ok(result) => result,
            Err(_) => anyhow::bail!("the data channel's writer panicked"),
        }
    }
}

/// Opens the serial port in raw mode (no output processing: binary-safe).
fn open_serial() -> Result<File> {
    let port = File::options()
        .read(true)
        .write(true)
        .open(DATA_CHANNEL)
        .with_context(|| format!("opening {DATA_CHANNEL}"))?;
    let mut termios = tcgetattr(&port).context("reading the port's termios")?;
    termios.make_raw();
    tcsetattr(&port, OptionalActions::Now, &termios).context("setting raw mode")?;
    Ok(port)
}

/// The writer thread: frames records onto `out` until told to finish, then
/// flushes and runs `drain`.
fn write_frames<W: Write>(
    out: W,
    compress: bool,
    frames: Receiver<Frame>,
    drain: impl FnOnce(&W) -> Result<()>,
) -> Result<()> {
    let out = BufWriter::with_capacity(1 << 16, out);
    let mut writer = if compress {
        RecordWriter::new(out)
    } else {
        RecordWriter::uncompressed(out)
    };
    for frame in frames {
        match frame {
            Frame::Record(kind, name, payload) => writer.write(kind, &name, &payload)?,
            Frame::Flush(done) => {
                writer.flush()?;
                let _ = done.send(());
            }
            Frame::Finish(status) => {
                writer.finish(&status)?;
                drain(writer.get_ref().get_ref())?;
                log(&format!(
                    "data channel done, {} bytes sent",
                    writer.bytes_written()
                ));
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A line on the console (ttyS0), which the host keeps as the boot log,
/// stamped with the time since boot.
fn log(message: &str) {
    let uptime = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    let _ = writeln!(
        std::io::stderr(),
        "[{:5}.{:03}] tapmatrix-agent: {message}",
        uptime.tv_sec,
        uptime.tv_nsec / 1_000_000
    );
}

/// Powers the machine off; QEMU (run with `-no-reboot`) then exits.
fn power_off() -> ! {
    rustix::fs::sync();
    loop {
        if let Err(error) = reboot(RebootCommand::PowerOff) {
            log(&format!("power off: {error}"));
        }
        thread::sleep(std::time::Duration::from_secs(1));
    }
}
