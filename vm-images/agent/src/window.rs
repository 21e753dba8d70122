//! The memory window: a physical address range the host reserved from the
//! kernel (`memmap=`) and can read from its side (guest RAM is a file there).
//! The agent writes the record stream into it through `/dev/mem`, far faster
//! than a serial port under TCG, and commits the length after each flush.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;

use anyhow::{Context, Result, bail};
use tapmatrix_wire::{WINDOW_HEADER_LEN, WINDOW_MAGIC, WINDOW_PARAM};

/// An open memory window.
pub struct MemoryWindow {
    mem: File,
    base: u64,
    capacity: u64,
    committed: u64,
    written: u64,
}

impl MemoryWindow {
    /// Opens the window named on the kernel command line, if there is one.
    pub fn from_cmdline() -> Result<Option<Self>> {
        let cmdline = std::fs::read_to_string("/proc/cmdline").context("reading /proc/cmdline")?;
        let Some((base, size)) = parse_param(&cmdline)? else {
            return Ok(None);
        };
        let mem = File::options()
            .read(true)
            .write(true)
            .open("/dev/mem")
            .context("opening /dev/mem")?;
        let mut window = Self {
            mem,
            base,
            capacity: size.saturating_sub(WINDOW_HEADER_LEN),
            committed: 0,
            written: 0,
        };
        window.commit().context("writing the window header")?;
        Ok(Some(window))
    }

    /// Writes the header with the length written so far.
    fn commit(&mut self) -> io::Result<()> {
        let mut header = [0u8; WINDOW_HEADER_LEN as usize];
        header[..8].copy_from_slice(&WINDOW_MAGIC);
        header[8..].copy_from_slice(&self.written.to_le_bytes());
        self.mem.write_all_at(&header, self.base)?;
        self.committed = self.written;
        Ok(())
    }
}

impl Write for MemoryWindow {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.capacity - self.written;
        if room < buf.len() as u64 {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("the memory window ({} bytes) is full", self.capacity),
            ));
        }
        self.mem
            .write_all_at(buf, self.base + WINDOW_HEADER_LEN + self.written)?;
        self.written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.committed != self.written {
            self.commit()?;
        }
        Ok(())
    }
}

/// `(base, size)` from `tapmatrix.window=<base>:<size>` on the command line.
fn parse_param(cmdline: &str) -> Result<Option<(u64, u64)>> {
    let prefix = format!("{WINDOW_PARAM}=");
    let Some(value) = cmdline
        .split_whitespace()
        .find_map(|word| word.strip_prefix(&prefix))
    else {
        return Ok(None);
    };
    let hex = |text: &str| u64::from_str_radix(text.trim_start_matches("0x"), 16);
    let Some((base, size)) = value.split_once(':') else {
        bail!("bad {WINDOW_PARAM}={value}: want <base>:<size> in hex");
    };
    match (hex(base), hex(size)) {
        (Ok(base), Ok(size)) if size > WINDOW_HEADER_LEN => Ok(Some((base, size))),
        _ => bail!("bad {WINDOW_PARAM}={value}: want <base>:<size> in hex"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_window_parameter() {
        let cmdline =
            "console=ttyS0 memmap=64M$0x10000000 tapmatrix.window=0x10000000:0x4000000 quiet\n";
        assert_eq!(
            parse_param(cmdline).unwrap(),
            Some((0x1000_0000, 0x400_0000))
        );
        assert_eq!(parse_param("console=ttyS0").unwrap(), None);
        assert!(parse_param("tapmatrix.window=zz").is_err());
    }
}
