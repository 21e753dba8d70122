//! Tracepoints (`events/<system>/<event>/format`) and the syscalls derived
//! from the `syscalls` system's `sys_enter_*` events.

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// One field of a trace event's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// The field's name (`prev_pid`).
    pub name: String,
    /// Its C type as the format declares it, with any array suffix:
    /// `pid_t`, `char[16]`, `const char *`, `__data_loc char[]`.
    #[serde(rename = "type")]
    pub c_type: String,
    /// Offset in the record, in bytes.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// Signed.
    pub signed: bool,
}

/// A trace event: system, name and the fields after the common ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tracepoint {
    /// Its system (`sched`).
    pub system: String,
    /// Its name (`sched_switch`).
    pub name: String,
    /// Its own fields (the `common_*` fields are in [`crate::KernelFacts::common_fields`]).
    pub fields: Vec<Field>,
}

impl Tracepoint {
    /// A field by name.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|field| field.name == name)
    }
}

/// A parsed `format` file: the event's own fields and its common fields.
#[derive(Debug)]
pub(crate) struct Format {
    pub(crate) name: String,
    pub(crate) common: Vec<Field>,
    pub(crate) fields: Vec<Field>,
}

/// Parses a trace event `format` file.
pub(crate) fn parse_format(text: &str) -> Result<Format, ParseError> {
    let mut name = None;
    let mut common = Vec::new();
    let mut fields = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_number = index + 1;
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("name:") {
            name = Some(rest.trim().to_owned());
        } else if let Some(rest) = trimmed.strip_prefix("field:") {
            let field = parse_field(rest).map_err(|what| ParseError::new(line_number, what))?;
            if field.name.starts_with("common_") {
                common.push(field);
            } else {
                fields.push(field);
            }
        } else if trimmed.starts_with("print fmt:") {
            break;
        }
    }
    let name = name.ok_or_else(|| ParseError::new(1, "no `name:` line".to_owned()))?;
    Ok(Format {
        name,
        common,
        fields,
    })
}

/// `char prev_comm[16];\toffset:8;\tsize:16;\tsigned:1;` (after `field:`).
fn parse_field(text: &str) -> Result<Field, String> {
    let mut parts = text.split(';').map(str::trim);
    let declaration = parts.next().unwrap_or("");
    let (mut offset, mut size, mut signed) = (None, None, None);
    for part in parts.filter(|p| !p.is_empty()) {
        let (key, value) = part
            .split_once(':')
            .ok_or_else(|| format!("expected `key:value`, found {part:?}"))?;
        let number = || {
            value
                .parse::<u32>()
                .map_err(|_| format!("{key}: not a number: {value:?}"))
        };
        match key {
            "offset" => offset = Some(number()?),
            "size" => size = Some(number()?),
            "signed" => signed = Some(number()? != 0),
            _ => {}
        }
    }
    let (c_type, name) = split_declaration(declaration)
        .ok_or_else(|| format!("cannot find the field name in {declaration:?}"))?;
    Ok(Field {
        name,
        c_type,
        offset: offset.ok_or("no offset")?,
        size: size.ok_or("no size")?,
        signed: signed.unwrap_or(false),
    })
}

/// `const char * filename` -> (`const char *`, `filename`);
/// `char comm[16]` -> (`char[16]`, `comm`).
fn split_declaration(declaration: &str) -> Option<(String, String)> {
    let declaration = declaration.trim();
    let mut head = declaration;
    let mut arrays = String::new();
    while let Some(stripped) = head.strip_suffix(']') {
        let open = stripped.rfind('[')?;
        arrays.insert_str(0, &head[open..]);
        head = head[..open].trim_end();
    }
    let name_start = head
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    let name = &head[name_start..];
    let c_type = head[..name_start].trim();
    if name.is_empty() || c_type.is_empty() {
        return None;
    }
    Some((format!("{c_type}{arrays}"), name.to_owned()))
}

/// A system call, from its `sys_enter_NAME` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Syscall {
    /// The name without `sys_` (`openat`).
    pub name: String,
    /// Its arguments: the enter event's fields after `__syscall_nr`.
    pub args: Vec<Field>,
    /// A `sys_exit_NAME` event exists too.
    pub has_exit: bool,
}

/// Derives the syscalls from the `syscalls` system's events.
pub(crate) fn syscalls(tracepoints: &[Tracepoint]) -> Vec<Syscall> {
    let events: Vec<&Tracepoint> = tracepoints
        .iter()
        .filter(|tp| tp.system == "syscalls")
        .collect();
    let mut syscalls: Vec<Syscall> = events
        .iter()
        .filter_map(|tp| {
            let name = tp.name.strip_prefix("sys_enter_")?;
            let exit = format!("sys_exit_{name}");
            Some(Syscall {
                name: name.to_owned(),
                args: tp
                    .fields
                    .iter()
                    .filter(|f| f.name != "__syscall_nr")
                    .cloned()
                    .collect(),
                has_exit: events.iter().any(|e| e.name == exit),
            })
        })
        .collect();
    syscalls.sort_by(|a, b| a.name.cmp(&b.name));
    syscalls
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHED_SWITCH: &str = "name: sched_switch\nID: 319\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:1;\n\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n\tfield:const char * filename;\toffset:32;\tsize:8;\tsigned:0;\n\tfield:__data_loc char[] name;\toffset:40;\tsize:4;\tsigned:1;\n\nprint fmt: \"prev_comm=%s\", REC->prev_comm\n";

    #[test]
    fn parses_a_format() {
        let format = parse_format(SCHED_SWITCH).unwrap();
        assert_eq!(format.name, "sched_switch");
        assert_eq!(format.common.len(), 2);
        let types: Vec<_> = format
            .fields
            .iter()
            .map(|f| {
                (
                    f.c_type.as_str(),
                    f.name.as_str(),
                    f.offset,
                    f.size,
                    f.signed,
                )
            })
            .collect();
        assert_eq!(
            types,
            [
                ("char[16]", "prev_comm", 8, 16, true),
                ("pid_t", "prev_pid", 24, 4, true),
                ("const char *", "filename", 32, 8, false),
                ("__data_loc char[]", "name", 40, 4, true),
            ]
        );
    }

    #[test]
    fn reports_the_bad_line() {
        let err =
            parse_format("name: x\nformat:\n\tfield:int a;\toffset:zero;\tsize:4;\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(err.what.contains("offset"), "{}", err.what);
        assert_eq!(parse_format("format:\n").unwrap_err().line, 1);
    }
}
