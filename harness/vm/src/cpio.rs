//! A writer for the cpio "newc" format, the one the kernel unpacks as an
//! initramfs. Entries get fixed owners and mtimes so images are reproducible.

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Member {
    /// A directory.
    Dir,
    /// A regular file with its content and permission bits.
    File {
        /// The content.
        data: Vec<u8>,
        /// Permission bits (e.g. 0o755).
        mode: u32,
    },
    /// A symbolic link to `target`.
    Symlink {
        /// Where the link points.
        target: String,
    },
    /// A character device node.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
}

/// Writes `members` (paths relative to the root, sorted by the caller so
/// parents come first) as a newc archive with its trailer.
pub fn write_newc<'a>(members: impl IntoIterator<Item = (&'a str, &'a Member)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (inode, (path, member)) in (1..).zip(members) {
        let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match member {
            Member::Dir => (0o040_755, &[], (0, 0)),
            Member::File { data, mode } => (0o100_000 | mode, data, (0, 0)),
            Member::Symlink { target } => (0o120_777, target.as_bytes(), (0, 0)),
            Member::CharDevice { major, minor } => (0o020_600, &[], (*major, *minor)),
        };
        let nlink = if matches!(member, Member::Dir) { 2 } else { 1 };
        write_entry(&mut out, inode, path, mode, nlink, data, rdev);
    }
    write_entry(&mut out, 0, "TRAILER!!!", 0, 1, &[], (0, 0));
    out
}

/// One header, name and data, each padded to four bytes.
fn write_entry(
    out: &mut Vec<u8>,
    inode: u32,
    name: &str,
    mode: u32,
    nlink: u32,
    data: &[u8],
    (rdev_major, rdev_minor): (u32, u32),
) {
    let fields = [
        inode,
        mode,
        0, // uid
        0, // gid
        nlink,
        0, // mtime
        u32::try_from(data.len()).unwrap_or(u32::MAX),
        0, // devmajor
        0, // devminor
        rdev_major,
        rdev_minor,
        u32::try_from(name.len() + 1).unwrap_or(u32::MAX),
        0, // check
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08X}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

/// Pads with zeros to a multiple of four bytes.
fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_newc_headers_names_and_padding() {
        let file = Member::File {
            data: b"hello".to_vec(),
            mode: 0o644,
        };
        let archive = write_newc([("a", &Member::Dir), ("a/b", &file)]);
        let text = String::from_utf8_lossy(&archive);
        assert!(archive.starts_with(b"07070100000001000041ED"));
        assert_eq!(archive.len() % 4, 0);
        // header (110) + "a\0" padded to 112; next header starts there.
        assert_eq!(&archive[112..118], b"070701");
        assert!(text.contains("a/b\0"));
        assert!(text.contains("hello"));
        assert!(text.contains("TRAILER!!!"));
        // file size field of a/b is 5
        assert_eq!(&archive[112 + 54..112 + 62], b"00000005");
    }
}
