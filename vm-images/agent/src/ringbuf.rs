//! The ftrace ring buffer in binary: the pages `per_cpu/cpuN/trace_pipe_raw`
//! hands out (layout per `events/header_page`), the event headers in them
//! (per `events/header_event`: the compressed 5-bit type / 27-bit delta
//! header), and the records' fields (per each event's `format`).

use anyhow::{Context, Result, bail};
use tapmatrix_ir::Value;

/// The page header's `commit` flag: events were lost before this page.
const MISSED_EVENTS: u64 = 1 << 31;
/// The page header's `commit` flag: the count of lost events is stored
/// after the page's data.
const MISSED_STORED: u64 = 1 << 30;
/// Event header types (`type_len`) above the data lengths.
const TYPE_PADDING: u32 = 29;
const TYPE_TIME_EXTEND: u32 = 30;
const TYPE_TIME_STAMP: u32 = 31;
/// Bits of the time delta in the event header.
const TS_SHIFT: u32 = 27;

/// Where a page's parts are, from `events/header_page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLayout {
    /// Offset and size of the `commit` word.
    commit: (usize, usize),
    /// Offset of the data.
    data: usize,
    /// Bytes a read of `trace_pipe_raw` must ask for: the whole page.
    pub page_size: usize,
}

impl PageLayout {
    /// Parses `events/header_page`.
    pub fn parse(text: &str) -> Result<Self> {
        let fields = parse_fields(text);
        let find = |name: &str| {
            fields
                .iter()
                .find(|field| field.name == name)
                .with_context(|| format!("header_page has no `{name}` field:\n{text}"))
        };
        let commit = find("commit")?;
        let data = find("data")?;
        Ok(Self {
            commit: (commit.offset, commit.size),
            data: data.offset,
            page_size: data.offset + data.size,
        })
    }
}

/// A record's decoded event header: where its payload is and when it fired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Trace clock time, in nanoseconds.
    pub timestamp_ns: u64,
    /// The payload (starting with `common_type`).
    pub data: Vec<u8>,
}

/// What one page holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The records, in order.
    pub records: Vec<RawRecord>,
    /// Events lost before this page (1 when the kernel flagged a loss
    /// without counting it).
    pub missed: u64,
}

/// Decodes one page read from `trace_pipe_raw`.
pub fn decode_page(layout: &PageLayout, page: &[u8]) -> Result<Page> {
    let word = |at: usize, size: usize| -> Result<u64> {
        let bytes = page
            .get(at..at + size)
            .with_context(|| format!("page of {} bytes cut at {at}", page.len()))?;
        Ok(le_unsigned(bytes))
    };
    let mut timestamp = word(0, 8)?;
    let commit = word(layout.commit.0, layout.commit.1)?;
    let length = usize::try_from(commit & !(MISSED_EVENTS | MISSED_STORED) & 0xffff_ffff)?;
    let data_end = layout.data + length;
    if data_end > page.len() {
        bail!(
            "page commit {length} overruns the page ({} bytes)",
            page.len()
        );
    }
    let mut out = Page::default();
    if commit & MISSED_EVENTS != 0 {
        out.missed = if commit & MISSED_STORED != 0 {
            word(data_end, 8).unwrap_or(1).max(1)
        } else {
            1
        };
    }
    let mut at = layout.data;
    while at + 4 <= data_end {
        let header = u32::try_from(word(at, 4)?)?;
        let type_len = header & 0x1f;
        let delta = u64::from(header >> 5);
        let array0 = || word(at + 4, 4);
        match type_len {
            TYPE_PADDING => {
                if delta == 0 {
                    // The rest of the page is empty.
                    break;
                }
                // A discarded event: skip it (its delta counts, as in
                // libtraceevent's reader).
                timestamp += delta;
                at += usize::try_from(array0()?)?.max(4) + 4;
            }
            TYPE_TIME_EXTEND => {
                timestamp += (array0()? << TS_SHIFT) + delta;
                at += 8;
            }
            TYPE_TIME_STAMP => {
                let absolute = (array0()? << TS_SHIFT) + delta;
                // The stamp keeps the low 59 bits; the top ones are the reader's.
                timestamp = absolute | (timestamp & (0x1f << 59));
                at += 8;
            }
            0 => {
                let length = usize::try_from(array0()?)?;
                let data = page
                    .get(at + 8..(at + 4 + length).max(at + 8))
                    .context("a record overruns its page")?;
                timestamp += delta;
                out.records.push(RawRecord {
                    timestamp_ns: timestamp,
                    data: data.to_vec(),
                });
                at += length.max(4) + 4;
            }
            words => {
                let length = words as usize * 4;
                let data = page
                    .get(at + 4..at + 4 + length)
                    .context("a record overruns its page")?;
                timestamp += delta;
                out.records.push(RawRecord {
                    timestamp_ns: timestamp,
                    data: data.to_vec(),
                });
                at += 4 + length;
            }
        }
    }
    Ok(out)
}

/// One field of an event's `format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Its name (without an array suffix).
    pub name: String,
    /// How its bytes are read.
    pub kind: FieldKind,
    /// Offset in the record.
    pub offset: usize,
    /// Size in the record.
    pub size: usize,
    /// Numbers: sign-extended.
    pub signed: bool,
}

/// How a field's bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    /// An integer of `size` bytes (the first element of a non-char array).
    Number {
        /// Bytes per element.
        element: usize,
    },
    /// `char[N]`: a NUL-terminated string in place.
    CharArray,
    /// `__data_loc char[]`: offset (low 16 bits) and length (high 16) of
    /// a string elsewhere in the record.
    DataLoc,
    /// `__rel_loc char[]`: like `DataLoc`, offset from the field's end.
    RelLoc,
}

/// An event's format: its id and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// The `common_type` its records carry.
    pub id: u16,
    /// Every field, common ones included.
    pub fields: Vec<Field>,
}

impl Format {
    /// Parses an event's `format` file.
    pub fn parse(text: &str) -> Result<Self> {
        let id = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("ID:"))
            .context("the format has no ID line")?
            .trim()
            .parse()
            .context("the format's ID is not a number")?;
        Ok(Self {
            id,
            fields: parse_fields(text),
        })
    }

    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }
}

/// The `field:TYPE NAME; offset:N; size:N; signed:N;` lines of a format.
fn parse_fields(text: &str) -> Vec<Field> {
    text.lines().filter_map(parse_field).collect()
}

/// One `field:` line.
fn parse_field(line: &str) -> Option<Field> {
    let mut declaration = None;
    let (mut offset, mut size, mut signed) = (None, None, false);
    for part in line.split(';').map(str::trim) {
        if let Some(rest) = part.strip_prefix("field:") {
            declaration = Some(rest.trim());
        } else if let Some(rest) = part.strip_prefix("offset:") {
            offset = rest.trim().parse().ok();
        } else if let Some(rest) = part.strip_prefix("size:") {
            size = rest.trim().parse().ok();
        } else if let Some(rest) = part.strip_prefix("signed:") {
            signed = rest.trim() == "1";
        }
    }
    let declaration = declaration?;
    let (offset, size): (usize, usize) = (offset?, size?);
    let split = declaration.rfind([' ', '\t'])?;
    let (ty, name) = (declaration[..split].trim(), declaration[split..].trim());
    let (name, count) = match name.split_once('[') {
        Some((base, rest)) => (base, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (name, None),
    };
    let is_char = matches!(
        ty.trim_start_matches("unsigned ")
            .trim_start_matches("signed "),
        "char" | "u8" | "s8"
    ) || ty.ends_with(" char");
    let kind = if ty.starts_with("__data_loc") {
        FieldKind::DataLoc
    } else if ty.starts_with("__rel_loc") {
        FieldKind::RelLoc
    } else if count.is_some() && is_char {
        FieldKind::CharArray
    } else {
        let element = count.filter(|&n| n > 0).map_or(size, |n| size / n);
        FieldKind::Number { element }
    };
    Some(Field {
        name: name.to_owned(),
        kind,
        offset,
        size,
        signed,
    })
}

impl Field {
    /// The field's value in `record`: numbers sign- or zero-extended to a
    /// long per `signed:`, strings up to their NUL.
    pub fn decode(&self, record: &[u8]) -> Value {
        let bytes = |from: usize, len: usize| record.get(from..from + len).unwrap_or(&[]);
        match self.kind {
            FieldKind::Number { element } => {
                Value::Long(extend(bytes(self.offset, element), self.signed))
            }
            FieldKind::CharArray => Value::Str(c_string(bytes(self.offset, self.size))),
            FieldKind::DataLoc | FieldKind::RelLoc => {
                let word = le_unsigned(bytes(self.offset, 4));
                let mut from = usize::try_from(word & 0xffff).unwrap_or(0);
                let len = usize::try_from(word >> 16).unwrap_or(0);
                if self.kind == FieldKind::RelLoc {
                    from += self.offset + 4;
                }
                Value::Str(c_string(bytes(from, len)))
            }
        }
    }
}

/// A little-endian unsigned integer of up to 8 bytes.
fn le_unsigned(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .take(8)
        .rev()
        .fold(0, |value, &byte| (value << 8) | u64::from(byte))
}

/// A little-endian integer of 1, 2, 4 or 8 bytes as a long.
fn extend(bytes: &[u8], signed: bool) -> i64 {
    let value = le_unsigned(bytes);
    let bits = (bytes.len().min(8) * 8) as u32;
    if bits == 0 {
        return 0;
    }
    if bits == 64 {
        return value as i64;
    }
    if signed {
        let shift = 64 - bits;
        ((value << shift) as i64) >> shift
    } else {
        value as i64
    }
}

/// Bytes up to the first NUL, as text.
fn c_string(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER_PAGE: &str = "\tfield: u64 timestamp;\toffset:0;\tsize:8;\tsigned:0;
\tfield: local_t commit;\toffset:8;\tsize:8;\tsigned:1;
\tfield: int overwrite;\toffset:8;\tsize:1;\tsigned:1;
\tfield: char data;\toffset:16;\tsize:4080;\tsigned:1;
";

    const KPROBE_FORMAT: &str = "name: e0
ID: 1531
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:unsigned long __probe_ip;\toffset:8;\tsize:8;\tsigned:0;
\tfield:__data_loc char[] f0;\toffset:16;\tsize:4;\tsigned:1;
\tfield:s32 f1;\toffset:20;\tsize:4;\tsigned:1;
\tfield:char comm[16];\toffset:24;\tsize:16;\tsigned:0;

print fmt: \"(%lx) f0=\\\"%s\\\" f1=%d\", REC->__probe_ip, __get_str(f0), REC->f1
";

    fn record() -> Vec<u8> {
        let mut data = Vec::new();
        data.extend_from_slice(&1531u16.to_le_bytes());
        data.extend_from_slice(&[0, 0]);
        data.extend_from_slice(&42i32.to_le_bytes());
        data.extend_from_slice(&0xffff_ffff_8100_0000u64.to_le_bytes());
        let text = b"/etc/passwd\0";
        let loc = (40u32) | ((text.len() as u32) << 16);
        data.extend_from_slice(&loc.to_le_bytes());
        data.extend_from_slice(&(-100i32).to_le_bytes());
        let mut comm = [0u8; 16];
        comm[..3].copy_from_slice(b"cat");
        data.extend_from_slice(&comm);
        data.extend_from_slice(text);
        while data.len() % 4 != 0 {
            data.push(0);
        }
        data
    }

    #[test]
    fn decodes_a_kprobe_record_by_its_format() {
        let format = Format::parse(KPROBE_FORMAT).unwrap();
        assert_eq!(format.id, 1531);
        let data = record();
        let value = |name: &str| format.field(name).unwrap().decode(&data);
        assert_eq!(value("common_pid"), Value::Long(42));
        assert_eq!(value("common_type"), Value::Long(1531));
        assert_eq!(value("f0"), Value::Str("/etc/passwd".into()));
        assert_eq!(value("f1"), Value::Long(-100), "sign-extended");
        assert_eq!(value("comm"), Value::Str("cat".into()));
        assert_eq!(
            value("__probe_ip"),
            Value::Long(0xffff_ffff_8100_0000u64 as i64)
        );
    }

    #[test]
    fn unsigned_fields_are_zero_extended() {
        let field = parse_field("\tfield:u32 f0;\toffset:0;\tsize:4;\tsigned:0;").unwrap();
        assert_eq!(
            field.decode(&[0x9c, 0xff, 0xff, 0xff]),
            Value::Long(0xffff_ff9c)
        );
        let field =
            parse_field("\tfield:unsigned long args[6];\toffset:0;\tsize:48;\tsigned:0;").unwrap();
        assert_eq!(field.kind, FieldKind::Number { element: 8 });
    }

    fn page(layout: &PageLayout, events: &[u8], commit_flags: u64, stamp: u64) -> Vec<u8> {
        let mut page = vec![0u8; layout.page_size];
        page[..8].copy_from_slice(&stamp.to_le_bytes());
        page[8..16].copy_from_slice(&(events.len() as u64 | commit_flags).to_le_bytes());
        page[16..16 + events.len()].copy_from_slice(events);
        page
    }

    #[test]
    fn decodes_small_large_extended_and_padding_events() {
        let layout = PageLayout::parse(HEADER_PAGE).unwrap();
        assert_eq!(layout.page_size, 4096);
        let small = record();
        let mut events = Vec::new();
        // A small record: type_len = words, delta 5.
        events.extend_from_slice(&((small.len() as u32 / 4) | (5 << 5)).to_le_bytes());
        events.extend_from_slice(&small);
        // A time extend of 1 << 27 plus delta 3.
        events.extend_from_slice(&(TYPE_TIME_EXTEND | (3 << 5)).to_le_bytes());
        events.extend_from_slice(&1u32.to_le_bytes());
        // A discarded event of 16 bytes (array[0]: its length after the header).
        events.extend_from_slice(&(TYPE_PADDING | (1 << 5)).to_le_bytes());
        events.extend_from_slice(&12u32.to_le_bytes());
        events.extend_from_slice(&[0; 8]);
        // A large record: type_len 0, length in array[0] (payload + 4).
        let large = vec![7u8; 200];
        events.extend_from_slice(&(7u32 << 5).to_le_bytes());
        events.extend_from_slice(&(large.len() as u32 + 4).to_le_bytes());
        events.extend_from_slice(&large);
        let bytes = page(&layout, &events, 0, 1000);
        let decoded = decode_page(&layout, &bytes).unwrap();
        assert_eq!(decoded.missed, 0);
        assert_eq!(decoded.records.len(), 2);
        assert_eq!(decoded.records[0].timestamp_ns, 1005);
        assert_eq!(decoded.records[0].data, small);
        assert_eq!(
            decoded.records[1].timestamp_ns,
            1005 + (1 << 27) + 3 + 1 + 7
        );
        assert_eq!(decoded.records[1].data, large);
    }

    #[test]
    fn counts_missed_events() {
        let layout = PageLayout::parse(HEADER_PAGE).unwrap();
        let mut bytes = page(&layout, &[], MISSED_EVENTS | MISSED_STORED, 0);
        bytes[16..24].copy_from_slice(&17u64.to_le_bytes());
        assert_eq!(decode_page(&layout, &bytes).unwrap().missed, 17);
        let bytes = page(&layout, &[], MISSED_EVENTS, 0);
        assert_eq!(decode_page(&layout, &bytes).unwrap().missed, 1);
    }
}
