//! The protocol between the in-guest agent and the host.
//!
//! The host gives the agent a [`Job`] as `/job.json` in the initramfs. The
//! agent answers on the data channel (a serial port) with a stream of
//! [`Record`]s, each framed as:
//!
//! ```text
//! magic "TMR1" | kind u8 | flags u8 | name_len u16 | payload_len u32 | raw_len u32 | name | payload
//! ```
//!
//! (integers little-endian). The stream travels through a memory window
//! (see [`WINDOW_PARAM`]) or, where that is unavailable, the serial port. Flag bit 0 means the payload is an LZ4 block
//! that decompresses to `raw_len` bytes. The stream ends with exactly one
//! [`RecordKind::Done`] record carrying a [`DoneStatus`]: a stream without
//! it was cut short (the guest died, panicked or timed out).

pub mod bundle;

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// Where the host puts the job in the initramfs.
pub const JOB_PATH: &str = "/job.json";

/// The kernel command line parameter naming the memory window:
/// `tapmatrix.window=<base>:<size>` (hexadecimal physical address and size).
/// The host reserves that range from the kernel (`memmap=<size>$<base>`) and
/// backs guest RAM with a file it can read; the agent writes the stream into
/// the range through `/dev/mem`. The window starts with [`WINDOW_MAGIC`] and
/// the committed stream length (u64 LE), then the stream itself.
pub const WINDOW_PARAM: &str = "tapmatrix.window";

/// The magic at the start of a memory window the agent has opened.
pub const WINDOW_MAGIC: [u8; 8] = *b"TMWIN001";

/// The length of the window's header (magic and committed length).
pub const WINDOW_HEADER_LEN: u64 = 16;

/// The magic that starts every record.
pub const MAGIC: [u8; 4] = *b"TMR1";

/// Payloads shorter than this are sent as they are.
const COMPRESS_MIN: usize = 256;

/// Flag bit: the payload is LZ4-compressed.
const FLAG_LZ4: u8 = 1;

/// The length of a record header.
const HEADER_LEN: usize = 16;

/// The longest record name a reader accepts (names are paths in a harvest).
pub const MAX_NAME_LEN: usize = 4096;

/// The largest payload (decompressed) a reader accepts: the biggest file a
/// harvest sends is the kernel's BTF (3.5 to 5.5 MB on the matrix; a few
/// times that on an all-yes config), and the memory window is 64 MiB.
pub const MAX_PAYLOAD_LEN: usize = 128 << 20;

/// LZ4 expands a block at most about 255 times; a header claiming more is
/// corrupt (and would make the reader allocate for nothing).
const LZ4_MAX_RATIO: usize = 255;

/// What the host asks the agent to do. Externally tagged (`{"run":
/// {...}}`), as is [`tapmatrix_ir::Artefact`]: serde reads an internally
/// tagged enum into a buffer first and then again, which made a TCG guest
/// take 0.5 s over a 2 MB job (30 ms -> 10 ms natively).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// Read the kernel's facts (release, tracefs, kallsyms, BTF) and send
    /// each as a [`RecordKind::File`] named by its path in the raw harvest,
    /// but those the host took from the kernel image.
    Harvest(Harvest),
    /// Run each item in turn (events created, workload started, handlers
    /// run) and stream [`tapmatrix_ir::RunMessage`]s as
    /// [`RecordKind::Line`] records named `run`.
    Run {
        /// What to run, in order.
        items: Vec<RunItem>,
    },
}

/// A facts harvest: which files the guest leaves to the host, which read
/// them from the kernel image it boots. By default the guest sends all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Harvest {
    /// The host decoded `kallsyms` from the image's symbol table: the guest
    /// does not read `/proc/kallsyms`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub kallsyms_from_image: bool,
    /// The host took `btf_vmlinux` from the image's `.BTF` section: the
    /// guest does not read `/sys/kernel/btf/vmlinux`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub btf_from_image: bool,
}

fn is_false(value: &bool) -> bool {
    !value
}

/// One script to run in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunItem {
    /// The script's name (for the console log).
    pub name: String,
    /// The compiled script, as its back end finished it.
    pub artefact: tapmatrix_ir::Artefact,
    /// What runs while it is enabled.
    pub workload: tapmatrix_ir::Workload,
    /// Kernel modules to load before the artefact is installed, each after
    /// the modules it depends on: the ones whose functions it probes and
    /// the ones its workload needs (a disk's driver, a filesystem). Each is
    /// in the image at [`module_path`]; one already loaded (by an earlier
    /// item) is not loaded again. Empty for most scripts, and then absent
    /// from the job: an image without modules is what it was before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<String>,
    /// A command run by `/bin/sh -c` to its end after the modules are
    /// loaded and before the artefact is installed (making and mounting a
    /// filesystem): its work is not traced. Failing, the item is not run.
    /// Empty: none (and absent from the job).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub setup: String,
    /// The size in MiB of the virtio block device (`/dev/vda`, unformatted)
    /// its setup and workload use; 0: none (and absent from the job). A boot
    /// gets one disk, as large as its largest item asks, made empty for that
    /// boot; items of one boot share it in turn (each setup makes its own
    /// filesystem).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub disk_mib: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// The directory of the image that holds the modules the items load.
pub const MODULE_DIR: &str = "/lib/modules/tapmatrix";

/// Where module `name`'s (decompressed) `.ko` is in the image.
pub fn module_path(name: &str) -> String {
    format!("{MODULE_DIR}/{name}.ko")
}

/// The kernel command line word that asks the agent to echo every decoded
/// event hit of a run as a [`RecordKind::Line`] record named [`HIT_RECORD`]
/// (a [`HitEcho`] in JSON), for tests and debugging. At most
/// [`HIT_ECHO_LIMIT`] hits per item are echoed.
pub const ECHO_HITS_PARAM: &str = "tapmatrix.echo_hits";

/// The kernel command line parameter `tapmatrix.buffer_kb=N` sets the
/// per-CPU ring buffer size a run uses (default 4096 KiB); tests make it
/// small to see lost events counted.
pub const BUFFER_KB_PARAM: &str = "tapmatrix.buffer_kb";

/// The name of the records carrying [`tapmatrix_ir::RunMessage`]s.
pub const RUN_RECORD: &str = "run";

/// The name of the records carrying [`HitEcho`]es.
pub const HIT_RECORD: &str = "hit";

/// How many hits per item the agent echoes at most.
pub const HIT_ECHO_LIMIT: usize = 1000;

/// One event hit as the agent decoded it from the ring buffer (echoed only
/// when the kernel command line has [`ECHO_HITS_PARAM`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HitEcho {
    /// The run item.
    pub item: u32,
    /// The event's index in the bundle.
    pub event: u32,
    /// The hit as the runtime got it.
    pub hit: tapmatrix_ir::Hit,
}

/// What a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// The content of a file; the name is its path relative to the output.
    File = 1,
    /// A file could not be read; the name is its path, the payload the error.
    FileError = 2,
    /// One line of streamed output (JSON) from a running job.
    Line = 3,
    /// The last record: the payload is a JSON [`DoneStatus`].
    Done = 4,
}

impl RecordKind {
    /// The kind a header byte stands for, if any.
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::File),
            2 => Some(Self::FileError),
            3 => Some(Self::Line),
            4 => Some(Self::Done),
            _ => None,
        }
    }
}

/// One record of the stream, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// What the record carries.
    pub kind: RecordKind,
    /// The record's name (a path for files).
    pub name: String,
    /// The payload, decompressed.
    pub payload: Vec<u8>,
}

/// How the job ended, as the agent saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoneStatus {
    /// Whether the job completed.
    pub ok: bool,
    /// Why it did not, or a short summary.
    pub message: String,
}

/// Why a stream could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Reading the stream failed.
    #[error("reading the data channel: {0}")]
    Io(#[from] io::Error),
    /// The stream ended inside a record.
    #[error("the data channel ends inside a record at byte {offset}")]
    Truncated {
        /// Where the unfinished record starts.
        offset: u64,
    },
    /// The bytes at a record boundary are not a record.
    #[error("the data channel is corrupt at byte {offset}: {what}")]
    Corrupt {
        /// Where the bad record starts.
        offset: u64,
        /// What was wrong.
        what: String,
    },
}

/// Writes records to a data channel.
#[derive(Debug)]
pub struct RecordWriter<W: Write> {
    out: W,
    written: u64,
    compress: bool,
}

impl<W: Write> RecordWriter<W> {
    /// A writer over `out` (give it a buffered writer).
    pub fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            compress: true,
        }
    }

    /// A writer that never compresses (for channels faster than LZ4 in the guest).
    pub fn uncompressed(out: W) -> Self {
        Self {
            compress: false,
            ..Self::new(out)
        }
    }

    /// How many bytes were written so far (headers included).
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// Writes one record, compressing payloads where that makes them
    /// smaller. A name over [`MAX_NAME_LEN`] or a payload over
    /// [`MAX_PAYLOAD_LEN`] bytes is refused (no reader would take it).
    pub fn write(&mut self, kind: RecordKind, name: &str, payload: &[u8]) -> io::Result<()> {
        if name.len() > MAX_NAME_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "record name too long",
            ));
        }
        if payload.len() > MAX_PAYLOAD_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("payload over {MAX_PAYLOAD_LEN} bytes"),
            ));
        }
        let name_len = u16::try_from(name.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "record name too long"))?;
        let raw_len = u32::try_from(payload.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "payload over 4 GiB"))?;
        let compressed = (self.compress && payload.len() >= COMPRESS_MIN)
            .then(|| lz4_flex::block::compress(payload))
            .filter(|packed| packed.len() < payload.len());
        let (flags, body) = match &compressed {
            Some(packed) => (FLAG_LZ4, packed.as_slice()),
            None => (0, payload),
        };
        let body_len = u32::try_from(body.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "payload over 4 GiB"))?;
        let mut header = [0u8; HEADER_LEN];
        header[..4].copy_from_slice(&MAGIC);
        header[4] = kind as u8;
        header[5] = flags;
        header[6..8].copy_from_slice(&name_len.to_le_bytes());
        header[8..12].copy_from_slice(&body_len.to_le_bytes());
        header[12..16].copy_from_slice(&raw_len.to_le_bytes());
        self.out.write_all(&header)?;
        self.out.write_all(name.as_bytes())?;
        self.out.write_all(body)?;
        self.written += (HEADER_LEN + name.len() + body.len()) as u64;
        Ok(())
    }

    /// Writes the final record and flushes.
    pub fn finish(&mut self, status: &DoneStatus) -> io::Result<()> {
        let payload = serde_json::to_vec(status).map_err(io::Error::other)?;
        self.write(RecordKind::Done, "done", &payload)?;
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Flushes what is buffered.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Reads records from a data channel.
#[derive(Debug)]
pub struct RecordReader<R: Read> {
    input: R,
    offset: u64,
}

impl<R: Read> RecordReader<R> {
    /// A reader over `input` (give it a buffered reader).
    pub fn new(input: R) -> Self {
        Self { input, offset: 0 }
    }

    /// How many bytes the records read so far took.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next record; `Ok(None)` at a clean end of input between records.
    ///
    /// The guest's kernel may be anyone's build: every length in a header
    /// is checked against [`MAX_NAME_LEN`] and [`MAX_PAYLOAD_LEN`] (and a
    /// compressed body against what LZ4 can expand to) before anything is
    /// allocated, and a body is read as it arrives, so a header claiming
    /// more than the input holds costs no more than the input.
    pub fn next_record(&mut self) -> Result<Option<Record>, WireError> {
        let start = self.offset;
        let mut header = [0u8; HEADER_LEN];
        match read_full(&mut self.input, &mut header)? {
            0 => return Ok(None),
            HEADER_LEN => {}
            _ => return Err(WireError::Truncated { offset: start }),
        }
        let corrupt = |what: &str| WireError::Corrupt {
            offset: start,
            what: what.to_owned(),
        };
        if header[..4] != MAGIC {
            return Err(corrupt("no record magic"));
        }
        let kind = RecordKind::from_byte(header[4]).ok_or_else(|| corrupt("unknown kind"))?;
        let flags = header[5];
        let name_len = usize::from(u16::from_le_bytes([header[6], header[7]]));
        let body_len = le_u32(&header[8..12]);
        let raw_len = le_u32(&header[12..16]);
        let compressed = flags & FLAG_LZ4 != 0;
        if flags & !FLAG_LZ4 != 0 {
            return Err(corrupt("unknown flags"));
        }
        if name_len > MAX_NAME_LEN {
            return Err(corrupt(&format!(
                "a name of {name_len} bytes (at most {MAX_NAME_LEN})"
            )));
        }
        if raw_len > MAX_PAYLOAD_LEN || body_len > MAX_PAYLOAD_LEN {
            return Err(corrupt(&format!(
                "a payload of {} bytes (at most {MAX_PAYLOAD_LEN})",
                raw_len.max(body_len)
            )));
        }
        if !compressed && body_len != raw_len {
            return Err(corrupt("payload length differs from its header"));
        }
        if compressed && raw_len > body_len.saturating_mul(LZ4_MAX_RATIO) + 16 {
            return Err(corrupt(&format!(
                "{body_len} compressed bytes cannot expand to {raw_len}"
            )));
        }
        let name = read_up_to(&mut self.input, name_len)?;
        let body = read_up_to(&mut self.input, body_len)?;
        if name.len() != name_len || body.len() != body_len {
            return Err(WireError::Truncated { offset: start });
        }
        self.offset = start + (HEADER_LEN + name_len + body_len) as u64;
        let name = String::from_utf8(name).map_err(|_| corrupt("name is not UTF-8"))?;
        let payload = if compressed {
            lz4_flex::block::decompress(&body, raw_len)
                .map_err(|error| corrupt(&format!("bad LZ4 payload: {error}")))?
        } else {
            body
        };
        if payload.len() != raw_len {
            return Err(corrupt("payload length differs from its header"));
        }
        Ok(Some(Record {
            kind,
            name,
            payload,
        }))
    }
}

/// A little-endian `u32` from four bytes, as a length.
fn le_u32(bytes: &[u8]) -> usize {
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes);
    u32::from_le_bytes(word) as usize
}

/// Reads `len` bytes, or fewer if the input ends first; the buffer grows
/// with what arrives, not with what was announced.
fn read_up_to(input: &mut impl Read, len: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len.min(64 << 10));
    input.take(len as u64).read_to_end(&mut out)?;
    Ok(out)
}

/// Reads until `buf` is full or the input ends; returns how much was read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(records: &[(RecordKind, &str, Vec<u8>)], done: bool) -> Vec<u8> {
        let mut writer = RecordWriter::new(Vec::new());
        for (kind, name, payload) in records {
            writer.write(*kind, name, payload).unwrap();
        }
        if done {
            writer
                .finish(&DoneStatus {
                    ok: true,
                    message: "fine".into(),
                })
                .unwrap();
        }
        writer.out
    }

    #[test]
    fn round_trips_small_and_compressible_payloads() {
        let big = b"vfs_read\n".repeat(1000);
        let bytes = encode(
            &[
                (RecordKind::File, "uname_release", b"6.1.0\n".to_vec()),
                (
                    RecordKind::File,
                    "tracing/available_filter_functions",
                    big.clone(),
                ),
                (
                    RecordKind::FileError,
                    "kprobes_blacklist",
                    b"ENOENT".to_vec(),
                ),
            ],
            true,
        );
        assert!(
            bytes.len() < big.len() / 4,
            "the big payload was compressed"
        );
        let mut reader = RecordReader::new(bytes.as_slice());
        let first = reader.next_record().unwrap().unwrap();
        assert_eq!(first.name, "uname_release");
        assert_eq!(first.payload, b"6.1.0\n");
        let second = reader.next_record().unwrap().unwrap();
        assert_eq!(second.payload, big);
        assert_eq!(
            reader.next_record().unwrap().unwrap().kind,
            RecordKind::FileError
        );
        let done = reader.next_record().unwrap().unwrap();
        assert_eq!(done.kind, RecordKind::Done);
        let status: DoneStatus = serde_json::from_slice(&done.payload).unwrap();
        assert!(status.ok);
        assert!(reader.next_record().unwrap().is_none());
    }

    #[test]
    fn an_uncompressed_writer_sends_payloads_as_they_are() {
        let big = b"vfs_read\n".repeat(1000);
        let mut writer = RecordWriter::uncompressed(Vec::new());
        writer.write(RecordKind::File, "f", &big).unwrap();
        assert_eq!(writer.bytes_written() as usize, HEADER_LEN + 1 + big.len());
        let bytes = writer.out;
        let record = RecordReader::new(bytes.as_slice())
            .next_record()
            .unwrap()
            .unwrap();
        assert_eq!(record.payload, big);
    }

    #[test]
    fn a_cut_stream_is_truncated_not_clean() {
        let bytes = encode(&[(RecordKind::File, "a", vec![7; 100])], false);
        let cut = &bytes[..bytes.len() - 1];
        let mut reader = RecordReader::new(cut);
        assert!(matches!(
            reader.next_record(),
            Err(WireError::Truncated { offset: 0 })
        ));
    }

    #[test]
    fn garbage_is_corrupt() {
        let mut reader = RecordReader::new(&b"Linux version 6.1 garbage here"[..]);
        assert!(matches!(
            reader.next_record(),
            Err(WireError::Corrupt { offset: 0, .. })
        ));
    }

    #[test]
    fn jobs_are_externally_tagged_json() {
        let all = Job::Harvest(Harvest::default());
        let json = serde_json::to_string(&all).unwrap();
        assert_eq!(json, r#"{"harvest":{}}"#);
        assert_eq!(serde_json::from_str::<Job>(&json).unwrap(), all);
        let from_image = Job::Harvest(Harvest {
            kallsyms_from_image: true,
            btf_from_image: true,
        });
        let json = serde_json::to_string(&from_image).unwrap();
        assert_eq!(
            json,
            r#"{"harvest":{"kallsyms_from_image":true,"btf_from_image":true}}"#
        );
        assert_eq!(serde_json::from_str::<Job>(&json).unwrap(), from_image);
    }
}
