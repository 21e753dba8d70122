//! `printf` directives as SystemTap's runtime formats them
//! (`runtime/vsprintf.c`: `number`, `_stp_vsprint_char`,
//! `_stp_vsprint_memory`, `_stp_vsprint_binary`).

/// Widths and precisions are clamped to the print buffer
/// (`STP_BUFFER_SIZE`).
const BUFFER_SIZE: i64 = 8192;

/// Directive flags.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Flags {
    /// `-`.
    pub(crate) left: bool,
    /// `+`.
    pub(crate) plus: bool,
    /// ` `.
    pub(crate) space: bool,
    /// `#`.
    pub(crate) special: bool,
    /// `0`.
    pub(crate) zeropad: bool,
}

impl Flags {
    /// Parses flags as written (`-+ #0`).
    pub(crate) fn parse(text: &str) -> Flags {
        let mut flags = Flags::default();
        for c in text.chars() {
            match c {
                '-' => flags.left = true,
                '+' => flags.plus = true,
                ' ' => flags.space = true,
                '#' => flags.special = true,
                '0' => flags.zeropad = true,
                _ => {}
            }
        }
        flags
    }
}

/// A resolved field: width and precision, `-1` when unspecified.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    /// Flags.
    pub(crate) flags: Flags,
    /// Minimum width, or -1.
    pub(crate) width: i64,
    /// Precision, or -1.
    pub(crate) precision: i64,
}

impl Field {
    /// A field from a directive; `dynamic_width` and `dynamic_precision`
    /// are the `*` arguments, if any.
    pub(crate) fn new(
        mut flags: Flags,
        width: Option<i64>,
        dynamic_width: Option<i64>,
        precision: Option<i64>,
        dynamic_precision: Option<i64>,
    ) -> Field {
        let width = match (width, dynamic_width) {
            (_, Some(w)) => {
                // A negative `*` width left-justifies.
                let w = i64::from(w as i32);
                if w < 0 {
                    flags.left = true;
                }
                w.unsigned_abs().min(BUFFER_SIZE as u64) as i64
            }
            (Some(w), None) if w >= 0 => w.min(BUFFER_SIZE),
            _ => -1,
        };
        let precision = match (precision, dynamic_precision) {
            (_, Some(p)) => i64::from(p as i32).clamp(0, BUFFER_SIZE),
            (Some(p), None) if p >= 0 => p.min(BUFFER_SIZE),
            _ => -1,
        };
        Field {
            flags,
            width,
            precision,
        }
    }
}

/// `number()`: an integer in `base`, signed for `%d`/`%i`.
pub(crate) fn number(out: &mut String, num: i64, base: u32, signed: bool, large: bool, f: Field) {
    let mut flags = f.flags;
    if flags.left {
        flags.zeropad = false;
    }
    let pad = if flags.zeropad { '0' } else { ' ' };
    let mut size = f.width;
    let mut precision = f.precision;
    let mut magnitude = num as u64;
    let mut sign = None;
    if signed {
        if num < 0 {
            sign = Some('-');
            magnitude = num.unsigned_abs();
            size -= 1;
        } else if flags.plus {
            sign = Some('+');
            size -= 1;
        } else if flags.space {
            sign = Some(' ');
            size -= 1;
        }
    }
    if flags.special {
        if base == 16 {
            size -= 2;
        } else if base == 8 {
            size -= 1;
        }
    }
    let digits = if large {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    let mut tmp = Vec::with_capacity(64);
    if magnitude == 0 {
        tmp.push(b'0');
    }
    while magnitude != 0 {
        tmp.push(digits[(magnitude % u64::from(base)) as usize]);
        magnitude /= u64::from(base);
    }
    let len = tmp.len() as i64;
    if len > precision {
        precision = len;
    }
    size -= precision;
    if !flags.zeropad && !flags.left {
        while size > 0 {
            out.push(' ');
            size -= 1;
        }
    }
    if let Some(sign) = sign {
        out.push(sign);
    }
    if flags.special {
        if base == 8 {
            out.push('0');
        } else if base == 16 {
            out.push('0');
            out.push(if large { 'X' } else { 'x' });
        }
    }
    if !flags.left {
        while size > 0 {
            out.push(pad);
            size -= 1;
        }
    }
    while len < precision {
        out.push('0');
        precision -= 1;
    }
    for &d in tmp.iter().rev() {
        out.push(char::from(d));
    }
    while size > 0 {
        out.push(' ');
        size -= 1;
    }
}

/// `%s`: a string, cut to the precision and padded to the width.
pub(crate) fn string(out: &mut String, s: &str, f: Field) {
    let mut len = s.len();
    if f.precision >= 0 {
        len = len.min(f.precision as usize);
    }
    let s = &s[..floor_boundary(s, len)];
    let len = s.len() as i64;
    if !f.flags.left {
        pad(out, f.width - len);
    }
    out.push_str(s);
    if f.flags.left {
        pad(out, f.width - len);
    }
    if f.flags.zeropad {
        out.push('\0');
    }
}

/// `%c`: one byte; `#` escapes it as C would.
pub(crate) fn character(out: &mut String, code: i64, f: Field) {
    let byte = code as u8;
    let printable = byte.is_ascii_graphic() || byte == b' ';
    let escaped: Option<String> =
        if f.flags.special && (!printable || byte == b'\'' || byte == b'\\') {
            Some(match byte {
                0x07 => "\\a".to_owned(),
                0x08 => "\\b".to_owned(),
                0x0c => "\\f".to_owned(),
                b'\n' => "\\n".to_owned(),
                b'\r' => "\\r".to_owned(),
                b'\t' => "\\t".to_owned(),
                0x0b => "\\v".to_owned(),
                b'\'' => "\\'".to_owned(),
                b'\\' => "\\\\".to_owned(),
                _ => format!("\\{:03o}", byte),
            })
        } else {
            None
        };
    let size = escaped.as_ref().map_or(1, String::len) as i64;
    if !f.flags.left {
        pad(out, f.width - size);
    }
    match escaped {
        Some(text) => out.push_str(&text),
        None => out.push(char::from(byte)),
    }
    if f.flags.left {
        pad(out, f.width - size);
    }
}

/// `%m` and `%M` on bytes the handler already holds: `len` bytes (the
/// precision, default 1), raw or as hex pairs.
pub(crate) fn memory(out: &mut String, bytes: &[u8], hex: bool, f: Field) {
    let len = if f.precision > 0 {
        f.precision as usize
    } else {
        1
    };
    let shown = len * if hex { 2 } else { 1 };
    if !f.flags.left {
        pad(out, f.width - shown as i64);
    }
    for i in 0..len {
        let byte = bytes.get(i).copied().unwrap_or(0);
        if hex {
            out.push_str(&format!("{byte:02x}"));
        } else {
            out.push(char::from(byte));
        }
    }
    if f.flags.left {
        pad(out, f.width - shown as i64);
    }
    if f.flags.zeropad {
        out.push('\0');
    }
}

/// `%b`: the value's low bytes, native (little) endian, as raw bytes.
pub(crate) fn binary(out: &mut String, num: i64, f: Field) {
    let valid = |p: i64| if matches!(p, 1 | 2 | 4 | 8) { p } else { -1 };
    let mut precision = valid(f.precision);
    let mut width = f.width;
    if width == -1 {
        if precision == -1 {
            width = 8;
            precision = 8;
        } else {
            width = precision;
        }
    } else if precision == -1 {
        precision = valid(width);
        if precision == -1 {
            precision = 8;
        }
    }
    if !f.flags.left {
        while precision < width {
            out.push('\0');
            width -= 1;
        }
    }
    for byte in num.to_le_bytes().iter().take(precision as usize) {
        out.push(char::from(*byte));
    }
    while precision < width {
        out.push('\0');
        width -= 1;
    }
}

fn pad(out: &mut String, n: i64) {
    for _ in 0..n.max(0) {
        out.push(' ');
    }
}

/// The largest char boundary of `s` at or below `index`.
pub(crate) fn floor_boundary(s: &str, index: usize) -> usize {
    let mut i = index.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(flags: &str, width: Option<i64>, precision: Option<i64>) -> Field {
        Field::new(Flags::parse(flags), width, None, precision, None)
    }

    fn num(n: i64, base: u32, signed: bool, large: bool, f: Field) -> String {
        let mut out = String::new();
        number(&mut out, n, base, signed, large, f);
        out
    }

    #[test]
    fn integers_as_the_kernel_vsprintf() {
        assert_eq!(num(42, 10, true, false, field("", Some(5), None)), "   42");
        assert_eq!(num(42, 10, true, false, field("-", Some(5), None)), "42   ");
        assert_eq!(num(42, 10, true, false, field("0", Some(5), None)), "00042");
        assert_eq!(
            num(-42, 10, true, false, field("0", Some(5), None)),
            "-0042"
        );
        assert_eq!(num(42, 10, true, false, field("+", None, None)), "+42");
        assert_eq!(num(42, 10, true, false, field(" ", None, None)), " 42");
        assert_eq!(num(7, 10, true, false, field("", None, Some(3))), "007");
        assert_eq!(num(255, 16, false, false, field("#", None, None)), "0xff");
        assert_eq!(num(255, 16, false, true, field("#", None, None)), "0XFF");
        assert_eq!(num(0, 16, false, false, field("#", None, None)), "0x0");
        assert_eq!(num(8, 8, false, false, field("#", None, None)), "010");
        assert_eq!(
            num(255, 16, false, false, field("#0", Some(8), None)),
            "0x0000ff"
        );
        assert_eq!(
            num(-1, 10, false, false, field("", None, None)),
            "18446744073709551615"
        );
        assert_eq!(
            num(i64::MIN, 10, true, false, field("", None, None)),
            "-9223372036854775808"
        );
    }

    #[test]
    fn strings_and_chars() {
        let mut out = String::new();
        string(&mut out, "hello", field("", Some(8), Some(3)));
        string(&mut out, "|", field("", None, None));
        string(&mut out, "ab", field("-", Some(4), None));
        assert_eq!(out, "     hel|ab  ");
        let mut out = String::new();
        character(&mut out, i64::from(b'\n'), field("#", None, None));
        character(&mut out, 65, field("", Some(3), None));
        character(&mut out, 1, field("#", None, None));
        assert_eq!(out, "\\n  A\\001");
    }

    #[test]
    fn dynamic_negative_width_left_justifies() {
        let f = Field::new(Flags::default(), Some(-1), Some(-4), None, None);
        let mut out = String::new();
        number(&mut out, 1, 10, true, false, f);
        assert_eq!(out, "1   ");
    }

    #[test]
    fn binary_writes_little_endian_bytes() {
        let mut out = String::new();
        binary(&mut out, 0x4142, field("", None, Some(2)));
        assert_eq!(out, "BA");
    }
}
