//! The in-guest agent: PID 1 of the initramfs.
//!
//! It mounts the kernel's filesystems, reads its [`Job`] from `/job.json`,
//! does it, reports on the data channel (the second serial port, `ttyS1`)
//! as framed records (see `tapmatrix-wire`), and powers the machine off.
//! Whatever happens it ends with a `done` record and a power-off: PID 1 must
//! never exit (the kernel would panic).

mod harvest;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::{self, JoinHandle};

use anyhow::{Context, Result};
use rustix::mount::{MountFlags, mount};
use rustix::system::{RebootCommand, reboot};
use rustix::termios::{OptionalActions, tcdrain, tcgetattr, tcsetattr};
use tapmatrix_wire::{DoneStatus, JOB_PATH, Job, RecordKind, RecordWriter};

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
    match Channel::open() {
        Ok(channel) => {
            let status = match run(&channel) {
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

/// Reads the job and does it.
fn run(channel: &Channel) -> Result<()> {
    let text = fs::read(JOB_PATH).with_context(|| format!("reading {JOB_PATH}"))?;
    let job: Job = serde_json::from_slice(&text).with_context(|| format!("parsing {JOB_PATH}"))?;
    match job {
        Job::Harvest => harvest::run(channel),
    }
}

/// The data channel: records go to a writer thread so that reading and
/// compressing overlap with the (slow) serial transmission.
struct Channel {
    frames: SyncSender<Frame>,
    writer: JoinHandle<Result<()>>,
}

/// What the writer thread is asked to do.
enum Frame {
    /// Write one record.
    Record(RecordKind, String, Vec<u8>),
    /// Write the done record, flush and drain the port.
    Finish(DoneStatus),
}

impl Channel {
    /// Opens the serial port in raw mode and starts the writer thread.
    fn open() -> Result<Self> {
        let port = File::options()
            .read(true)
            .write(true)
            .open(DATA_CHANNEL)
            .with_context(|| format!("opening {DATA_CHANNEL}"))?;
        let mut termios = tcgetattr(&port).context("reading the port's termios")?;
        termios.make_raw();
        tcsetattr(&port, OptionalActions::Now, &termios).context("setting raw mode")?;
        let (frames, receiver) = sync_channel(64);
        let writer = thread::spawn(move || write_frames(port, receiver));
        Ok(Self { frames, writer })
    }

    /// Queues one record.
    fn send(&self, kind: RecordKind, name: &str, payload: Vec<u8>) -> Result<()> {
        self.frames
            .send(Frame::Record(kind, name.to_owned(), payload))
            .context("the data channel's writer stopped")
    }

    /// Sends the done record and waits until every byte left the port.
    fn close(self, status: &DoneStatus) -> Result<()> {
        let _ = self.frames.send(Frame::Finish(status.clone()));
        drop(self.frames);
        match self.writer.join() {
            Ok(result) => result,
            Err(_) => anyhow::bail!("the data channel's writer panicked"),
        }
    }
}

/// The writer thread: frames records onto the port until told to finish.
fn write_frames(port: File, frames: Receiver<Frame>) -> Result<()> {
    let drain = port.try_clone().context("duplicating the port")?;
    let mut writer = RecordWriter::new(BufWriter::with_capacity(1 << 16, port));
    for frame in frames {
        match frame {
            Frame::Record(kind, name, payload) => writer.write(kind, &name, &payload)?,
            Frame::Finish(status) => {
                writer.finish(&status)?;
                tcdrain(&drain).context("draining the data channel")?;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A line on the console (ttyS0), which the host keeps as the boot log.
fn log(message: &str) {
    let _ = writeln!(std::io::stderr(), "tapmatrix-agent: {message}");
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
