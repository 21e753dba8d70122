//! Raw harvest files the host reads from the kernel image it boots (the PVH
//! `vmlinux` of [`crate::bootable_kernel`]) instead of the guest: under TCG
//! the guest's `/proc/kallsyms` costs 0.2 to 0.7 s of a harvest (the kernel
//! formats 5 to 10 MB of text), and `/sys/kernel/btf/vmlinux` is the image's
//! own `.BTF` section, byte for byte.
//!
//! `kallsyms` comes from the kernel's compressed symbol table, the one
//! `/proc/kallsyms` expands: `scripts/kallsyms` writes into `.rodata` the
//! symbol count, the names (each a length, one byte or, from 6.1, two when
//! the first has its top bit set, then that many token numbers), a marker
//! every 256 names (the offset of that name, `u32`), the 256 tokens
//! (NUL-terminated strings) and their offsets (`u16`); a name expands to its
//! type letter followed by the symbol. The order of these tables changed
//! in 6.4 and the image has no symbol naming them, so they are found by
//! their shape: the token offsets first (256 increasing `u16` from 0 that
//! end where the tokens they index end), then, before the tokens, the
//! count whose names decode in full and are followed by markers that agree
//! with them. The file has the guest's lines of text and weak symbols (types
//! `t T w W`), in table order, each with the address 0: the facts use only
//! names and types.

use std::path::Path;

use object::{Object, ObjectSection};

/// Why the image's symbol table could not be read (the guest then reads
/// `/proc/kallsyms`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SymbolTableError {
    /// The image's `.rodata` section is missing or unreadable.
    #[error("the kernel image has no readable .rodata section: {0}")]
    Rodata(String),
    /// No token table and offsets of the expected shape.
    #[error("no kallsyms token table in .rodata (a kernel without CONFIG_KALLSYMS?)")]
    TokenTable,
    /// A token table, but no symbol count before it whose names decode.
    #[error("no kallsyms name table that decodes before the token table")]
    Names,
}

/// The raw files taken from a kernel image, each absent when the image has
/// none (the guest then sends it).
#[derive(Debug, Default)]
pub struct ImageFiles {
    /// `kallsyms`: text and weak symbols, as the guest's file has them.
    pub kallsyms: Option<Vec<u8>>,
    /// `btf_vmlinux`: the `.BTF` section.
    pub btf: Option<Vec<u8>>,
}

impl ImageFiles {
    /// The files of the kernel image at `kernel` (none where it is not an
    /// uncompressed ELF image, or where a table cannot be read: logged).
    pub fn read(kernel: &Path) -> ImageFiles {
        let Ok(image) = std::fs::read(kernel) else {
            return ImageFiles::default();
        };
        if !image.starts_with(b"\x7fELF") {
            return ImageFiles::default();
        }
        let file = match object::File::parse(&*image) {
            Ok(file) => file,
            Err(why) => {
                tracing::debug!(kernel = %kernel.display(), %why, "the image left to the guest");
                return ImageFiles::default();
            }
        };
        let kallsyms = match text_symbols(&file) {
            Ok(lines) => Some(lines),
            Err(why) => {
                tracing::debug!(kernel = %kernel.display(), %why, "kallsyms left to the guest");
                None
            }
        };
        ImageFiles {
            kallsyms,
            btf: btf_section(&file),
        }
    }
}

/// The `.BTF` section of an ELF image.
fn btf_section(file: &object::File<'_>) -> Option<Vec<u8>> {
    let data = file.section_by_name(".BTF")?.data().ok()?;
    (!data.is_empty()).then(|| data.to_vec())
}

/// The kallsyms lines of the image's text and weak symbols
/// (`0000000000000000 T name`).
fn text_symbols(file: &object::File<'_>) -> Result<Vec<u8>, SymbolTableError> {
    let rodata = file
        .section_by_name(".rodata")
        .ok_or_else(|| SymbolTableError::Rodata("no .rodata section".to_owned()))?
        .data()
        .map_err(|e| SymbolTableError::Rodata(e.to_string()))?;
    text_lines(rodata)
}

/// [`text_symbols`] of the image's `.rodata`.
fn text_lines(rodata: &[u8]) -> Result<Vec<u8>, SymbolTableError> {
    let table = SymbolTable::find(rodata)?;
    let mut out = Vec::with_capacity(table.count * 24);
    let mut name = Vec::with_capacity(128);
    let mut at = table.names;
    for _ in 0..table.count {
        name.clear();
        at = table.expand(at, &mut name).ok_or(SymbolTableError::Names)?;
        if let [kind @ (b't' | b'T' | b'w' | b'W'), symbol @ ..] = name.as_slice() {
            out.extend_from_slice(b"0000000000000000 ");
            out.push(*kind);
            out.push(b' ');
            out.extend_from_slice(symbol);
            out.push(b'\n');
        }
    }
    Ok(out)
}

/// The tables of one image, located.
struct SymbolTable<'a> {
    rodata: &'a [u8],
    /// The 256 tokens.
    tokens: Vec<&'a [u8]>,
    /// Where the names start.
    names: usize,
    /// How many names.
    count: usize,
    /// Where the tokens start: the names end before.
    tokens_at: usize,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

/// The fewest and the most symbols a kernel is taken to have (Debian's
/// have 94,000 to 210,000).
const COUNTS: std::ops::RangeInclusive<u32> = 1_000..=4_000_000;

/// How far before the tokens the symbol count is looked for.
const NAMES_WITHIN: usize = 32 << 20;

impl<'a> SymbolTable<'a> {
    fn find(rodata: &'a [u8]) -> Result<SymbolTable<'a>, SymbolTableError> {
        let (tokens_at, tokens) = find_tokens(rodata).ok_or(SymbolTableError::TokenTable)?;
        let mut table = SymbolTable {
            rodata,
            tokens,
            names: 0,
            count: 0,
            tokens_at,
        };
        // The count is an aligned `u32` (or the low half of a `u64`), the
        // names right after it, within some MB before the tokens (6 MB on
        // 7.3). Searched upwards: the count comes before every name, and a
        // candidate in the names themselves would decode to their end
        // before failing, one in other data fails within a few names.
        let lowest = tokens_at.saturating_sub(NAMES_WITHIN).next_multiple_of(4);
        for at in (lowest..tokens_at.saturating_sub(8)).step_by(4) {
            let Some(count) = u32_at(rodata, at).filter(|count| COUNTS.contains(count)) else {
                continue;
            };
            for names in [at + 4, at + 8] {
                table.names = names;
                table.count = count as usize;
                if table.names_check_out() {
                    return Ok(table);
                }
            }
        }
        Err(SymbolTableError::Names)
    }

    /// The name at `at`: where its tokens are, if it has some and its
    /// first token starts with a type letter.
    fn name(&self, at: usize) -> Option<std::ops::Range<usize>> {
        let first = *self.rodata.get(at)?;
        let (length, at) = if first & 0x80 != 0 {
            let second = *self.rodata.get(at + 1)?;
            (usize::from(first & 0x7f) | usize::from(second) << 7, at + 2)
        } else {
            (usize::from(first), at + 1)
        };
        let end = at.checked_add(length)?;
        if length == 0 || end > self.tokens_at {
            return None;
        }
        let kind = self.tokens[usize::from(self.rodata[at])].first()?;
        kind.is_ascii_alphabetic().then_some(at..end)
    }

    /// Expands the name at `at` into `out`; where the next name starts.
    fn expand(&self, at: usize, out: &mut Vec<u8>) -> Option<usize> {
        let tokens = self.name(at)?;
        let end = tokens.end;
        for &token in &self.rodata[tokens] {
            out.extend_from_slice(self.tokens[usize::from(token)]);
        }
        Some(end)
    }

    /// Whether `count` names decode from `names` on, each with a type
    /// letter, and end (aligned to 4 or 8) where markers start that agree
    /// with them: 0, then the offset of the 256th name. The markers are
    /// looked for first, within half again of where names of the first
    /// 256's mean length would end (5.10's end 17% past it): a candidate in
    /// other data fails within a few names, one within the names would
    /// otherwise be decoded to their end.
    fn names_check_out(&self) -> bool {
        let decode = |from: usize, count: usize| {
            let mut at = from;
            for _ in 0..count {
                at = self.name(at)?.end;
            }
            Some(at)
        };
        let first = self.count.min(256);
        let Some(after_first) = decode(self.names, first) else {
            return false;
        };
        let markers_at = |end: usize| [end.next_multiple_of(4), end.next_multiple_of(8)];
        if self.count == first {
            return markers_at(after_first)
                .iter()
                .any(|&at| u32_at(self.rodata, at) == Some(0));
        }
        let second = (after_first - self.names) as u32;
        let estimate = self.names + self.count / 256 * second as usize;
        let slack = estimate.saturating_sub(self.names) / 2 + 4096;
        let window = estimate.saturating_sub(slack).max(after_first) & !3;
        let window_end = (estimate + slack).min(self.tokens_at);
        let Some(markers) = (window..window_end).step_by(4).find(|&at| {
            u32_at(self.rodata, at) == Some(0) && u32_at(self.rodata, at + 4) == Some(second)
        }) else {
            return false;
        };
        decode(after_first, self.count - first)
            .is_some_and(|end| markers_at(end).contains(&markers))
    }
}

/// The token offsets (256 `u16`, the first 0, each token at least one
/// byte and its NUL) and the tokens they index, which end right before
/// them (with up to 7 bytes of alignment): where the tokens start, and
/// the tokens.
fn find_tokens(rodata: &[u8]) -> Option<(usize, Vec<&[u8]>)> {
    let mut offsets = [0u16; 256];
    for here in (0..rodata.len().saturating_sub(512)).step_by(2) {
        if u16_at(rodata, here) != Some(0) || !matches!(u16_at(rodata, here + 2), Some(2..=64)) {
            continue;
        }
        for (i, offset) in offsets.iter_mut().enumerate() {
            *offset = u16_at(rodata, here + 2 * i)?;
        }
        let increasing = offsets
            .windows(2)
            .all(|pair| (2..=256).contains(&pair[1].wrapping_sub(pair[0])));
        if increasing && let Some(found) = tokens_before(rodata, here, &offsets) {
            return Some(found);
        }
    }
    None
}

/// The tokens `offsets` (at `here`) index, if they end right before it.
fn tokens_before<'a>(
    rodata: &'a [u8],
    here: usize,
    offsets: &[u16; 256],
) -> Option<(usize, Vec<&'a [u8]>)> {
    let last = usize::from(offsets[255]);
    for padding in 0..8 {
        let end = here.checked_sub(padding)?;
        // The last token: one byte or more, then its NUL at `end - 1`.
        for last_length in 1..64 {
            let Some(start) = end.checked_sub(last + last_length + 1) else {
                break;
            };
            let table = &rodata[start..end];
            if table[last + last_length] != 0 || table[last..last + last_length].contains(&0) {
                continue;
            }
            let ends_right = offsets.windows(2).all(|pair| {
                let (from, to) = (usize::from(pair[0]), usize::from(pair[1]));
                table[to - 1] == 0 && !table[from..to - 1].contains(&0)
            });
            if ends_right {
                let mut tokens: Vec<&[u8]> = offsets
                    .windows(2)
                    .map(|pair| &table[usize::from(pair[0])..usize::from(pair[1]) - 1])
                    .collect();
                tokens.push(&table[last..last + last_length]);
                return Some((start, tokens));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.rodata` in the 6.4+ layout: junk, the count, the names, the
    /// markers, the tokens, their offsets, junk. Token `b` is the byte `b`
    /// for `b` >= 1, token 0 is `"__"`.
    fn rodata(names: &[&str], count_width: usize) -> Vec<u8> {
        let mut out = vec![0x5a; 1000];
        out.resize(out.len().next_multiple_of(8), 0);
        let count = names.len() as u64;
        out.extend_from_slice(&count.to_le_bytes()[..count_width]);
        let start = out.len();
        let mut markers = Vec::new();
        for (i, name) in names.iter().enumerate() {
            if i % 256 == 0 {
                markers.push((out.len() - start) as u32);
            }
            let bytes = name.as_bytes();
            if bytes.len() > 127 {
                out.push(0x80 | (bytes.len() & 0x7f) as u8);
                out.push((bytes.len() >> 7) as u8);
            } else {
                out.push(bytes.len() as u8);
            }
            out.extend_from_slice(bytes);
        }
        out.resize(out.len().next_multiple_of(4), 0);
        for marker in markers {
            out.extend_from_slice(&marker.to_le_bytes());
        }
        out.resize(out.len().next_multiple_of(8), 0);
        let mut table = b"__\0".to_vec();
        let mut offsets = vec![0u16];
        for byte in 1..=255u8 {
            offsets.push(table.len() as u16);
            table.extend_from_slice(&[byte, 0]);
        }
        out.extend_from_slice(&table);
        out.resize(out.len().next_multiple_of(8), 0);
        for offset in offsets {
            out.extend_from_slice(&offset.to_le_bytes());
        }
        out.extend_from_slice(&[0xa5; 600]);
        out
    }

    fn decode(rodata: &[u8]) -> Result<String, SymbolTableError> {
        let table = SymbolTable::find(rodata)?;
        let mut names = String::new();
        let mut at = table.names;
        let mut name = Vec::new();
        for _ in 0..table.count {
            name.clear();
            at = table.expand(at, &mut name).ok_or(SymbolTableError::Names)?;
            names.push_str(&String::from_utf8_lossy(&name));
            names.push('\n');
        }
        Ok(names)
    }

    #[test]
    fn names_decode_in_both_count_widths_with_long_names_and_many_markers() {
        let long = format!("T{}", "x".repeat(200));
        let mut names: Vec<String> = (0..1500)
            .map(|i| format!("{}sym_{i}", ['t', 'T', 'd', 'W'][i % 4]))
            .collect();
        names[700] = long.clone();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        for width in [4, 8] {
            let decoded = decode(&rodata(&names, width)).unwrap();
            let expected: String = names.iter().map(|name| format!("{name}\n")).collect();
            assert_eq!(decoded, expected, "count width {width}");
        }
    }

    #[test]
    fn a_table_whose_markers_disagree_is_not_taken() {
        let names: Vec<String> = (0..600).map(|i| format!("tf{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut bytes = rodata(&names, 8);
        // The second marker (name 256's offset) made wrong.
        let tokens = find_tokens(&bytes).unwrap().0;
        let second = (0..tokens)
            .rev()
            .find(|&at| {
                u32_at(&bytes, at) == Some(0) && u32_at(&bytes, at + 4).is_some_and(|m| m > 1000)
            })
            .unwrap()
            + 4;
        bytes[second] ^= 1;
        assert_eq!(decode(&bytes).unwrap_err(), SymbolTableError::Names);
    }

    #[test]
    fn rodata_without_tables_says_so() {
        assert_eq!(
            decode(&vec![0u8; 4096]).unwrap_err(),
            SymbolTableError::TokenTable
        );
    }

    #[test]
    fn text_symbols_keep_the_text_and_weak_lines_in_table_order() {
        let names: Vec<&str> = ["tlocal", "Tglobal", "Wweak", "wweak2", "ddata", "Rro"]
            .into_iter()
            .cycle()
            .take(1200)
            .collect();
        let lines = String::from_utf8(text_lines(&rodata(&names, 8)).unwrap()).unwrap();
        let expected = "0000000000000000 t local\n0000000000000000 T global\n\
                        0000000000000000 W weak\n0000000000000000 w weak2\n";
        assert_eq!(lines, expected.repeat(200));
    }
}
