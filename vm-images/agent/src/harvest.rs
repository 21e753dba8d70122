//! The facts harvest: every raw file the host's facts parser needs, sent as
//! one record each, named by its path in the raw harvest layout.

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::Result;
use rustix::fs::{Mode, OFlags};
use tapmatrix_wire::{Harvest, RecordKind, bundle};

use crate::Channel;

/// The tracefs mount point.
const TRACING: &str = "/sys/kernel/tracing";

/// Plain files copied as they are: (name in the harvest, path in the guest).
const PLAIN_FILES: &[(&str, &str)] = &[
    ("proc_version", "/proc/version"),
    ("tracing/README", "/sys/kernel/tracing/README"),
    (
        "tracing/available_filter_functions",
        "/sys/kernel/tracing/available_filter_functions",
    ),
    (
        "tracing/available_events",
        "/sys/kernel/tracing/available_events",
    ),
    ("kprobes_blacklist", "/sys/kernel/debug/kprobes/blacklist"),
];

/// The kernel's BTF: (name in the harvest, path in the guest).
const BTF: (&str, &str) = ("btf_vmlinux", "/sys/kernel/btf/vmlinux");

/// Sends the whole harvest, but what the host took from the kernel image.
pub fn run(channel: &Channel, what: Harvest) -> Result<()> {
    let release = rustix::system::uname()
        .release()
        .to_string_lossy()
        .into_owned();
    channel.send(
        RecordKind::File,
        "uname_release",
        format!("{release}\n").into_bytes(),
    )?;
    for (name, path) in PLAIN_FILES {
        send_file(channel, name, Path::new(path), |bytes| bytes)?;
    }
    if !what.btf_from_image {
        send_file(channel, BTF.0, Path::new(BTF.1), |bytes| bytes)?;
    }
    crate::log("tracefs and BTF files queued");
    if !what.kallsyms_from_image {
        // About 10 MB on 7.x: room for it at once (no copies as it grows).
        let kallsyms = Path::new("/proc/kallsyms");
        send_file_read_with(channel, "kallsyms", kallsyms, 16 << 20, text_symbols)?;
        crate::log("kallsyms queued");
    }
    send_event_formats(channel)?;
    crate::log("event formats queued");
    Ok(())
}

/// Sends one file, or the error reading it.
fn send_file(
    channel: &Channel,
    name: &str,
    path: &Path,
    transform: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> Result<()> {
    send_file_read_with(channel, name, path, 8192, transform)
}

/// [`send_file`], read into a buffer of `capacity` bytes to start with.
fn send_file_read_with(
    channel: &Channel,
    name: &str,
    path: &Path,
    capacity: usize,
    transform: impl FnOnce(Vec<u8>) -> Vec<u8>,
) -> Result<()> {
    match read_with(path, capacity) {
        Ok(bytes) => channel.send(RecordKind::File, name, transform(bytes)),
        Err(error) => channel.send(
            RecordKind::FileError,
            name,
            format!("{}: {error}", path.display()).into_bytes(),
        ),
    }
}

/// Reads a whole file into a buffer of `capacity` bytes to start with.
/// (`fs::read` asks for the size first, which proc, sysfs and tracefs
/// files do not know: one system call less per file.)
fn read_with(path: &Path, capacity: usize) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(capacity);
    fs::File::open(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Sends `events/<system>/<event>/format` for every event that has one,
/// all in one record (a [`bundle`]): one record each cost the guest a
/// channel hand-off per file, some 2,800 per kernel.
fn send_event_formats(channel: &Channel) -> Result<()> {
    let events = Path::new(TRACING).join("events");
    let mut formats = Vec::with_capacity(4 << 20);
    let mut buffer = Vec::with_capacity(16 << 10);
    for system in sorted_dirs(&events) {
        // Each format opened relative to its system's directory: one path
        // walk through tracefs per system, not per event.
        let Ok(system_dir) = rustix::fs::open(
            events.join(&system),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        for event in sorted_dirs(&events.join(&system)) {
            buffer.clear();
            let read = rustix::fs::openat(
                &system_dir,
                format!("{event}/format"),
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map(fs::File::from)
            .map_err(std::io::Error::from)
            .and_then(|mut file| file.read_to_end(&mut buffer));
            if read.is_ok() {
                let name = format!("tracing/events/{system}/{event}/format");
                bundle::push(&mut formats, &name, &buffer);
            }
        }
    }
    channel.send(RecordKind::File, bundle::EVENT_FORMATS, formats)
}

/// The names of the directories in `dir`, sorted (none if it cannot be read).
fn sorted_dirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// The lines of `/proc/kallsyms` whose type is a text or weak symbol (t T w W).
fn text_symbols(kallsyms: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(kallsyms.len());
    for line in kallsyms.split_inclusive(|&byte| byte == b'\n') {
        let kind = line
            .iter()
            .position(|&byte| byte == b' ')
            .and_then(|space| line.get(space + 1));
        if matches!(kind, Some(b't' | b'T' | b'w' | b'W')) {
            out.extend_from_slice(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_text_and_weak_symbols() {
        let input = b"ffffffff81000000 T _text\nffffffff82000000 D jiffies\n\
ffffffff81001000 t helper\t[mod]\nffffffff81002000 W weak_fn\nffffffff83000000 b bss\n";
        let kept = String::from_utf8(text_symbols(input.to_vec())).unwrap();
        assert_eq!(
            kept,
            "ffffffff81000000 T _text\nffffffff81001000 t helper\t[mod]\nffffffff81002000 W weak_fn\n"
        );
    }
}
