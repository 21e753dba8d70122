//! The kernel image to hand QEMU. A Debian `vmlinuz` is a bzImage whose
//! compressed payload the kernel's own decompressor unpacks at boot: under
//! TCG that alone takes most of a boot (9 s of 14 s measured for 6.1's XZ
//! payload). QEMU also boots an uncompressed `vmlinux` directly through its
//! PVH entry point (`CONFIG_PVH`, on in Debian's kernels), so the payload is
//! unpacked once on the host and cached by the vmlinuz's hash. Where that
//! fails (unknown compression, no PVH note), the vmlinuz is booted as it is.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The image to boot for `vmlinuz`: the cached PVH `vmlinux` when one can be
/// extracted, else `vmlinuz` itself.
pub fn bootable_kernel(vmlinuz: &Path, cache_dir: &Path) -> PathBuf {
    match extract_cached(vmlinuz, cache_dir) {
        Ok(path) => path,
        Err(why) => {
            tracing::debug!(vmlinuz = %vmlinuz.display(), %why, "booting the compressed image");
            vmlinuz.to_path_buf()
        }
    }
}

/// Extracts (or finds) the PVH vmlinux of `vmlinuz` under `<cache>/vmlinux/`.
fn extract_cached(vmlinuz: &Path, cache_dir: &Path) -> Result<PathBuf, String> {
    let image = std::fs::read(vmlinuz).map_err(|error| error.to_string())?;
    let digest = Sha256::digest(&image);
    let name: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    let dir = cache_dir.join("vmlinux");
    let path = dir.join(format!("{name}.elf"));
    if path.is_file() {
        return Ok(path);
    }
    let elf = decompress_payload(&image)?;
    if !has_pvh_note(&elf) {
        return Err("the kernel has no PVH entry point".to_owned());
    }
    tapmatrix_kernels::write_atomic(&path, &elf).map_err(|error| error.to_string())?;
    Ok(path)
}

/// The payload of a bzImage, decompressed: the first XZ, zstd or gzip stream
/// that decompresses to an ELF file.
fn decompress_payload(image: &[u8]) -> Result<Vec<u8>, String> {
    const XZ: &[u8] = b"\xfd7zXZ\x00";
    const ZSTD: &[u8] = b"\x28\xb5\x2f\xfd";
    const GZIP: &[u8] = b"\x1f\x8b\x08";
    for (magic, decode) in [
        (XZ, decode_xz as fn(&[u8]) -> std::io::Result<Vec<u8>>),
        (ZSTD, decode_zstd),
        (GZIP, decode_gzip),
    ] {
        let mut from = 0;
        while let Some(at) = find(&image[from..], magic) {
            let start = from + at;
            if let Ok(elf) = decode(&image[start..])
                && elf.starts_with(b"\x7fELF")
            {
                return Ok(elf);
            }
            from = start + 1;
        }
    }
    Err("no XZ, zstd or gzip payload that decompresses to an ELF file".to_owned())
}

fn decode_xz(stream: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    liblzma::read::XzDecoder::new(stream).read_to_end(&mut out)?;
    Ok(out)
}

fn decode_zstd(stream: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(stream)?
        .single_frame()
        .read_to_end(&mut out)?;
    Ok(out)
}

fn decode_gzip(stream: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(stream).read_to_end(&mut out)?;
    Ok(out)
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Whether an ELF64 file has a `Xen` note of type 18 (`XEN_ELFNOTE_PHYS32_ENTRY`),
/// which QEMU needs to boot it through PVH.
fn has_pvh_note(elf: &[u8]) -> bool {
    pvh_note(elf).unwrap_or(false)
}

fn pvh_note(elf: &[u8]) -> Option<bool> {
    const PT_NOTE: u32 = 4;
    const PHYS32_ENTRY: u32 = 18;
    // Every offset and length comes from the file: checked arithmetic, so a
    // malformed kernel (a user's own build) is "no note", never a panic.
    let bytes = |at: usize, len: usize| elf.get(at..at.checked_add(len)?);
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes(at, 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes(at, 4)?.try_into().ok()?));
    let u64_at =
        |at: usize| usize::try_from(u64::from_le_bytes(bytes(at, 8)?.try_into().ok()?)).ok();
    if elf.get(..5)? != b"\x7fELF\x02" {
        return None;
    }
    let phoff = u64_at(0x20)?;
    let phentsize = usize::from(u16_at(0x36)?);
    for index in 0..usize::from(u16_at(0x38)?) {
        let header = phoff.checked_add(index.checked_mul(phentsize)?)?;
        if u32_at(header)? != PT_NOTE {
            continue;
        }
        let mut at = u64_at(header.checked_add(8)?)?;
        let end = at.checked_add(u64_at(header.checked_add(32)?)?)?;
        while at.checked_add(12)? <= end {
            let name_len = usize::try_from(u32_at(at)?).ok()?;
            let desc_len = usize::try_from(u32_at(at + 4)?).ok()?;
            let kind = u32_at(at + 8)?;
            let name = bytes(at + 12, name_len)?;
            if name == b"Xen\0" && kind == PHYS32_ENTRY {
                return Some(true);
            }
            at = at
                .checked_add(12)?
                .checked_add(name_len.next_multiple_of(4))?
                .checked_add(desc_len.next_multiple_of(4))?;
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 with one PT_NOTE segment holding one note.
    fn elf_with_note(name: &[u8], kind: u32) -> Vec<u8> {
        let mut elf = vec![0u8; 64 + 56];
        elf[..5].copy_from_slice(b"\x7fELF\x02");
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        let mut note = Vec::new();
        note.extend_from_slice(&(name.len() as u32).to_le_bytes());
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&kind.to_le_bytes());
        note.extend_from_slice(name);
        note.resize(note.len().next_multiple_of(4), 0);
        note.extend_from_slice(&[0; 4]);
        let offset = elf.len() as u64;
        elf[64..68].copy_from_slice(&4u32.to_le_bytes());
        elf[64 + 8..64 + 16].copy_from_slice(&offset.to_le_bytes());
        elf[64 + 32..64 + 40].copy_from_slice(&(note.len() as u64).to_le_bytes());
        elf.extend_from_slice(&note);
        elf
    }

    #[test]
    fn finds_the_pvh_entry_note() {
        assert!(has_pvh_note(&elf_with_note(b"Xen\0", 18)));
        assert!(!has_pvh_note(&elf_with_note(b"Xen\0", 17)));
        assert!(!has_pvh_note(&elf_with_note(b"GNU\0", 18)));
        assert!(!has_pvh_note(b"not an elf"));
        // Offsets and lengths that point anywhere: no note, no panic.
        let mut wild = elf_with_note(b"Xen\0", 18);
        for at in [0x20, 0x36, 0x38, 64 + 8, 64 + 32, 120, 124] {
            for value in [u64::MAX, u64::MAX / 2, 0x7fff_ffff] {
                let width = if at >= 120 { 4 } else { 8.min(wild.len() - at) };
                let mut patched = wild.clone();
                patched[at..at + width].copy_from_slice(&value.to_le_bytes()[..width]);
                let _ = has_pvh_note(&patched);
            }
        }
        wild.truncate(70);
        assert!(!has_pvh_note(&wild));
    }

    #[test]
    fn decompresses_the_payload_after_a_setup_stub() {
        let elf = elf_with_note(b"Xen\0", 18);
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, &elf).unwrap();
        let mut image = b"MZ setup code \x1f\x8b not a stream".to_vec();
        image.extend(encoder.finish().unwrap());
        image.extend_from_slice(b"trailer");
        assert_eq!(decompress_payload(&image).unwrap(), elf);
        assert!(decompress_payload(b"no payload").is_err());
    }
}
