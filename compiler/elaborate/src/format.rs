//! String literals and `printf` formats: C escapes decoded, directives parsed.

use tapmatrix_ir::{FormatSpec, ScalarType};

/// Decodes the C escapes the front end keeps as written (`\n`, `\t`,
/// `\\`, octal `\101`, hex `\x41`...).
pub fn decode_escapes(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut bytes: Vec<u8> = Vec::new();
    let mut chars = raw.chars().peekable();
    let flush = |bytes: &mut Vec<u8>, out: &mut String| {
        if !bytes.is_empty() {
            out.push_str(&String::from_utf8_lossy(bytes));
            bytes.clear();
        }
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            flush(&mut bytes, &mut out);
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            flush(&mut bytes, &mut out);
            out.push('\\');
            break;
        };
        let simple = match e {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            't' => Some('\t'),
            'n' => Some('\n'),
            'v' => Some('\x0b'),
            'f' => Some('\x0c'),
            'r' => Some('\r'),
            '\\' => Some('\\'),
            _ => None,
        };
        if let Some(s) = simple {
            flush(&mut bytes, &mut out);
            out.push(s);
            continue;
        }
        let (radix, max, first) = match e {
            '0'..='7' => (8, 3, Some(e)),
            'x' => (16, 2, None),
            other => {
                flush(&mut bytes, &mut out);
                out.push(other);
                continue;
            }
        };
        let mut digits = String::new();
        digits.extend(first);
        while digits.len() < max {
            match chars.peek() {
                Some(d) if d.is_digit(radix) => {
                    digits.push(*d);
                    chars.next();
                }
                _ => break,
            }
        }
        match u32::from_str_radix(&digits, radix) {
            Ok(value) => bytes.push((value & 0xff) as u8),
            Err(_) => {
                flush(&mut bytes, &mut out);
                out.push_str("\\x");
            }
        }
    }
    flush(&mut bytes, &mut out);
    out
}

/// A parsed format: its pieces and the argument types it consumes, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Format {
    /// The pieces.
    pub specs: Vec<FormatSpec>,
    /// What each argument must be.
    pub args: Vec<ScalarType>,
}

/// Parses a `printf` format (escapes already decoded), as SystemTap does:
/// `%[flags][width][.precision][length]conversion`, `%%` for `%`.
pub fn parse_format(text: &str) -> Result<Format, String> {
    let mut specs = Vec::new();
    let mut args = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            literal.push(c);
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            literal.push('%');
            continue;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.peek() {
            if "-+ #0".contains(f) {
                flags.push(f);
                chars.next();
            } else {
                break;
            }
        }
        let number = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
                      args: &mut Vec<ScalarType>|
         -> Option<i64> {
            if chars.peek() == Some(&'*') {
                chars.next();
                args.push(ScalarType::Long);
                return Some(-1);
            }
            let mut digits = String::new();
            while let Some(&d) = chars.peek() {
                if d.is_ascii_digit() {
                    digits.push(d);
                    chars.next();
                } else {
                    break;
                }
            }
            digits.parse().ok()
        };
        let width = number(&mut chars, &mut args);
        let precision = if chars.peek() == Some(&'.') {
            chars.next();
            Some(number(&mut chars, &mut args).unwrap_or(0))
        } else {
            None
        };
        while let Some(&l) = chars.peek() {
            if "hlLjzt".contains(l) {
                chars.next();
            } else {
                break;
            }
        }
        let conversion = match chars.next() {
            Some(c @ ('d' | 'i' | 'u' | 'o' | 'x' | 'X' | 'c' | 'p' | 'b' | 'm' | 'M')) => {
                args.push(ScalarType::Long);
                c
            }
            Some('s') => {
                args.push(ScalarType::String);
                's'
            }
            Some(other) => return Err(format!("invalid conversion specifier '%{other}'")),
            None => return Err("missing conversion specifier after '%'".to_owned()),
        };
        if !literal.is_empty() {
            specs.push(FormatSpec::Literal {
                text: std::mem::take(&mut literal),
            });
        }
        specs.push(FormatSpec::Directive {
            flags,
            width,
            precision,
            conversion,
        });
    }
    if !literal.is_empty() {
        specs.push(FormatSpec::Literal { text: literal });
    }
    Ok(Format { specs, args })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_decode_like_c() {
        assert_eq!(decode_escapes(r"a\tb\n"), "a\tb\n");
        assert_eq!(decode_escapes(r"\101\x42\\"), "AB\\");
        assert_eq!(decode_escapes(r"\0"), "\0");
        assert_eq!(decode_escapes("plain \"q\""), "plain \"q\"");
    }

    #[test]
    fn formats_parse_into_directives_and_argument_types() {
        let f = parse_format("%-5s=%*d %%\n").unwrap();
        assert_eq!(
            f.args,
            [ScalarType::String, ScalarType::Long, ScalarType::Long]
        );
        assert_eq!(
            f.specs,
            [
                FormatSpec::Directive {
                    flags: "-".to_owned(),
                    width: Some(5),
                    precision: None,
                    conversion: 's'
                },
                FormatSpec::Literal {
                    text: "=".to_owned()
                },
                FormatSpec::Directive {
                    flags: String::new(),
                    width: Some(-1),
                    precision: None,
                    conversion: 'd'
                },
                FormatSpec::Literal {
                    text: " %\n".to_owned()
                },
            ]
        );
        assert_eq!(parse_format("%lld %.3x").unwrap().args.len(), 2);
        assert!(parse_format("%q").unwrap_err().contains("%q"));
        assert!(parse_format("50%").is_err());
    }
}
