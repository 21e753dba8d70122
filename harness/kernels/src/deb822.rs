//! Debian's control-file format (deb822): paragraphs of `Field: value`
//! lines separated by blank lines, continuation lines starting with a space
//! or a tab. Used by `Packages` indices and `.sources` files.

/// One paragraph: its fields in order, names as written, values with
/// continuation lines joined by `\n` (leading whitespace of each
/// continuation line removed; a lone `.` stands for an empty line).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Paragraph {
    fields: Vec<(String, String)>,
}

impl Paragraph {
    /// The value of a field (field names compare case-insensitively).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Parses deb822 text into paragraphs. Lines starting with `#` are comments.
/// A line that is neither a field, a continuation nor a comment is skipped
/// (apt is as lenient): the caller checks the fields it needs.
pub fn parse(text: &str) -> Vec<Paragraph> {
    let mut paragraphs = Vec::new();
    let mut current = Paragraph::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.fields.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.fields.last_mut() {
                let continued = line.trim();
                value.push('\n');
                if continued != "." {
                    value.push_str(continued);
                }
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            current
                .fields
                .push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    if !current.fields.is_empty() {
        paragraphs.push(current);
    }
    paragraphs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_fields_and_continuations() {
        let text = "Package: a\nVersion: 1.0\nDescription: short\n more\n .\n end\n\n\n# comment\nPackage: b\nsha256: ABC\n";
        let paragraphs = parse(text);
        assert_eq!(paragraphs.len(), 2);
        assert_eq!(paragraphs[0].get("package"), Some("a"));
        assert_eq!(paragraphs[0].get("Description"), Some("short\nmore\n\nend"));
        assert_eq!(paragraphs[1].get("SHA256"), Some("ABC"));
        assert_eq!(paragraphs[1].get("Version"), None);
    }

    #[test]
    fn empty_input_has_no_paragraphs() {
        assert!(parse("").is_empty());
        assert!(parse("\n\n# only a comment\n").is_empty());
    }
}
