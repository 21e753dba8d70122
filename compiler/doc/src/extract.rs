//! Doc comments out of tapset source text, into [`FileDoc`]s.

use std::path::{Path, PathBuf};

/// What went wrong reading a tapset directory's doc comments.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// A file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A doc comment that cannot be understood.
    #[error("{}:{line}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// The comment's first line (1-based).
        line: usize,
        /// What is wrong and what to write instead.
        message: String,
    },
}

/// A documented thing's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A probe alias (`probe NAME = ...`).
    Probe,
    /// A function (`function NAME ...`).
    Function,
}

/// A documented variable or parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// What it holds.
    pub text: String,
}

/// One documented probe alias or function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Probe or function.
    pub kind: EntryKind,
    /// Its name (`vfs.read`, `pid`).
    pub name: String,
    /// The one-line summary.
    pub summary: String,
    /// Its variables (probe) or parameters (function), in order.
    pub params: Vec<Param>,
    /// The paragraphs after the parameters, in order.
    pub paragraphs: Vec<String>,
    /// A function's signature as declared (`function substr:string (str:string, ...)`).
    pub signature: Option<String>,
    /// The declaration's line (1-based).
    pub line: usize,
}

/// One tapset file's documentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDoc {
    /// The file's name (`vfs.stp`).
    pub name: String,
    /// The file's leading `//` comment, one paragraph per blank comment line.
    pub intro: Vec<String>,
    /// Its documented probes and functions, in source order.
    pub entries: Vec<Entry>,
}

/// The documentation of every `.stp` file of a directory, by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<FileDoc>, DocError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| DocError::Io { path, source }
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.extension().is_some_and(|ext| ext == "stp") {
            paths.push(path);
        }
    }
    paths.sort();
    paths
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).map_err(io(path))?;
            extract(path, &text)
        })
        .collect()
}

/// The documentation of one tapset file's text (`path` names it in errors).
pub fn extract(path: &Path, text: &str) -> Result<FileDoc, DocError> {
    let lines: Vec<&str> = text.lines().collect();
    let malformed = |line: usize, message: String| DocError::Malformed {
        path: path.to_owned(),
        line,
        message,
    };
    let mut entries = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        if lines[index].trim() != "/**" {
            index += 1;
            continue;
        }
        let start = index;
        let mut body = Vec::new();
        index += 1;
        loop {
            let Some(line) = lines.get(index) else {
                return Err(malformed(
                    start + 1,
                    "unterminated doc comment: end it with */".into(),
                ));
            };
            let trimmed = line.trim();
            if trimmed == "*/" {
                break;
            }
            let content = trimmed.strip_prefix('*').unwrap_or(trimmed);
            body.push(content.strip_prefix(' ').unwrap_or(content).trim_end());
            index += 1;
        }
        index += 1;
        let declaration = lines[index..]
            .iter()
            .position(|line| !line.trim().is_empty())
            .map(|offset| index + offset);
        let mut entry = parse_comment(&body).map_err(|message| malformed(start + 1, message))?;
        let Some(declaration) = declaration else {
            return Err(malformed(
                start + 1,
                format!(
                    "the doc comment of {} is followed by no declaration",
                    entry.name
                ),
            ));
        };
        let (kind, name, signature) = declaration_of(lines[declaration]).ok_or_else(|| {
            malformed(
                start + 1,
                format!(
                    "the doc comment of {} is not followed by a probe or function declaration",
                    entry.name
                ),
            )
        })?;
        if name != entry.name || kind != entry.kind {
            return Err(malformed(
                start + 1,
                format!(
                    "the doc comment documents {} but the declaration after it is {name}: fix the comment's first line",
                    entry.name
                ),
            ));
        }
        entry.signature = signature;
        entry.line = declaration + 1;
        entries.push(entry);
    }
    Ok(FileDoc {
        name: path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default(),
        intro: intro(&lines),
        entries,
    })
}

/// The file's leading `//` comment block, in paragraphs.
fn intro(lines: &[&str]) -> Vec<String> {
    let mut paragraphs = Vec::new();
    let mut current = String::new();
    for line in lines {
        let Some(text) = line.trim().strip_prefix("//") else {
            break;
        };
        let text = text.trim();
        if text.is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
        } else {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(text);
        }
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs
}

/// A comment's lines (without ` * `) into an entry (signature and line unset).
fn parse_comment(body: &[&str]) -> Result<Entry, String> {
    let Some(first) = body.first() else {
        return Err(
            "empty doc comment: start it with `probe NAME - summary` or `sfunction NAME - summary`"
                .into(),
        );
    };
    let (kind, rest) = if let Some(rest) = first.strip_prefix("probe ") {
        (EntryKind::Probe, rest)
    } else if let Some(rest) = first
        .strip_prefix("sfunction ")
        .or_else(|| first.strip_prefix("function "))
    {
        (EntryKind::Function, rest)
    } else {
        return Err(format!(
            "doc comment starts with {first:?}: start it with `probe NAME - summary` or `sfunction NAME - summary`"
        ));
    };
    let (name, summary) = match rest.split_once(" - ") {
        Some((name, summary)) => (name.trim(), summary.trim()),
        None => (rest.trim(), ""),
    };
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!(
            "{first:?} names no single probe or function: write `NAME - summary`"
        ));
    }
    let mut params: Vec<Param> = Vec::new();
    let mut paragraphs: Vec<String> = Vec::new();
    let mut in_param = false;
    let mut paragraph = String::new();
    for line in &body[1..] {
        if let Some(rest) = line.strip_prefix('@') {
            let Some((param, text)) = rest.split_once(':') else {
                return Err(format!("{line:?}: write a variable as `@name: text`"));
            };
            params.push(Param {
                name: param.trim().to_owned(),
                text: text.trim().to_owned(),
            });
            in_param = true;
        } else if line.is_empty() {
            in_param = false;
            if !paragraph.is_empty() {
                paragraphs.push(std::mem::take(&mut paragraph));
            }
        } else if in_param {
            if let Some(last) = params.last_mut() {
                last.text.push(' ');
                last.text.push_str(line.trim());
            }
        } else {
            if !paragraph.is_empty() {
                paragraph.push(' ');
            }
            paragraph.push_str(line.trim());
        }
    }
    if !paragraph.is_empty() {
        paragraphs.push(paragraph);
    }
    Ok(Entry {
        kind,
        name: name.to_owned(),
        summary: summary.to_owned(),
        params,
        paragraphs,
        signature: None,
        line: 0,
    })
}

/// A declaration line's kind, name and (for a function) signature.
fn declaration_of(line: &str) -> Option<(EntryKind, String, Option<String>)> {
    let line = line.trim();
    if let Some(rest) = line.strip_prefix("probe ") {
        let name: String = rest
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '=' && *c != ',' && *c != '{')
            .collect();
        return Some((EntryKind::Probe, name, None));
    }
    let rest = line.strip_prefix("function ")?;
    let name: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect();
    let end = line
        .find("%{")
        .or_else(|| line.find('{'))
        .unwrap_or(line.len());
    Some((
        EntryKind::Function,
        name,
        Some(line[..end].trim().to_owned()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_comment_gives_name_variables_and_paragraphs() {
        let text = "// Intro line one\n// line two\n//\n// Second.\n\n/**\n * probe a.b - Summary here\n * @x: The x\n *   continued\n * @y: The y\n *\n * Context: somewhere.\n */\nprobe a.b = kernel.function(\"f\")\n{\n}\n";
        let doc = extract(Path::new("t/a.stp"), text).unwrap();
        assert_eq!(doc.name, "a.stp");
        assert_eq!(doc.intro, ["Intro line one line two", "Second."]);
        let entry = &doc.entries[0];
        assert_eq!(
            (entry.kind, entry.name.as_str(), entry.summary.as_str()),
            (EntryKind::Probe, "a.b", "Summary here")
        );
        assert_eq!(
            entry.params[0],
            Param {
                name: "x".into(),
                text: "The x continued".into()
            }
        );
        assert_eq!(entry.params[1].name, "y");
        assert_eq!(entry.paragraphs, ["Context: somewhere."]);
        assert_eq!(entry.line, 14);
    }

    #[test]
    fn a_function_comment_keeps_the_signature() {
        let text = "/**\n * sfunction substr - Returns a substring\n * @str: The string\n */\nfunction substr:string (str:string, start:long) %{ /* builtin */ %}\n";
        let doc = extract(Path::new("s.stp"), text).unwrap();
        assert_eq!(
            doc.entries[0].signature.as_deref(),
            Some("function substr:string (str:string, start:long)")
        );
    }

    #[test]
    fn a_comment_naming_another_declaration_is_an_error() {
        let text = "/**\n * probe a.b - x\n */\nprobe a.c = kernel.function(\"f\") {}\n";
        let error = extract(Path::new("t.stp"), text).unwrap_err().to_string();
        assert!(
            error.starts_with(
                "t.stp:1: the doc comment documents a.b but the declaration after it is a.c"
            ),
            "{error}"
        );
    }

    #[test]
    fn malformed_comments_say_what_to_write() {
        let error = extract(Path::new("t.stp"), "/**\n * hello\n */\nprobe a = b {}\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("start it with `probe NAME - summary`"),
            "{error}"
        );
        let error = extract(Path::new("t.stp"), "/**\n * probe a - b\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("unterminated doc comment"), "{error}");
        let error = extract(
            Path::new("t.stp"),
            "/**\n * probe a - b\n * @x no colon\n */\nprobe a = b {}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("`@name: text`"), "{error}");
    }
}
