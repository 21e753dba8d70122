//! Text helpers the renderers share: diffs, kernel ranges, wrapping.

/// A unified diff of `old` and `new`.
pub fn unified_diff(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .header(old_name, new_name)
        .to_string()
}

/// The first `max` lines of `text`, with a line saying how many were cut.
pub fn first_lines(text: &str, max: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() <= max {
        return lines.join("\n");
    }
    format!(
        "{}\n[{} more lines]",
        lines[..max].join("\n"),
        lines.len() - max
    )
}

/// Where something holds among kernels in matrix order: `holds[i]` for
/// kernel `i`. Each maximal run of consecutive kernels becomes a phrase:
/// "on every kernel", "since 6.12", "until 6.1", "on 6.12 only",
/// "from 6.1 to 7.0".
pub fn kernel_ranges(kernels: &[&str], holds: &[bool]) -> Vec<String> {
    let mut out = Vec::new();
    let mut index = 0;
    let last = kernels.len().saturating_sub(1);
    while index < kernels.len() {
        if !holds.get(index).copied().unwrap_or(false) {
            index += 1;
            continue;
        }
        let start = index;
        while index + 1 < kernels.len() && holds.get(index + 1).copied().unwrap_or(false) {
            index += 1;
        }
        let end = index;
        out.push(if start == 0 && end == last {
            "on every kernel".to_owned()
        } else if end == last {
            format!("since {}", kernels[start])
        } else if start == end {
            format!("on {} only", kernels[start])
        } else if start == 0 {
            format!("until {}", kernels[end])
        } else {
            format!("from {} to {}", kernels[start], kernels[end])
        });
        index += 1;
    }
    out
}

/// Word-wraps `text` to `width` columns: the first line starts with
/// `first`, the others with `rest` (hanging indentation). A word longer
/// than a line is cut.
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> String {
    let mut out = String::new();
    let mut line = first.to_owned();
    let mut empty = true;
    for word in text.split_whitespace() {
        let mut word = word;
        loop {
            let indent = if out.is_empty() { first } else { rest };
            let room = width.saturating_sub(line.chars().count() + usize::from(!empty));
            let length = word.chars().count();
            if length <= room {
                if !empty {
                    line.push(' ');
                }
                line.push_str(word);
                empty = false;
                break;
            }
            if empty && length > width.saturating_sub(indent.chars().count()) {
                // Cut a word that fits on no line.
                let cut = word
                    .char_indices()
                    .nth(room.max(1))
                    .map_or(word.len(), |(i, _)| i);
                line.push_str(&word[..cut]);
                word = &word[cut..];
                out.push_str(&line);
                out.push('\n');
                line = rest.to_owned();
                if word.is_empty() {
                    break;
                }
                continue;
            }
            out.push_str(&line);
            out.push('\n');
            line = rest.to_owned();
            empty = true;
        }
    }
    if !empty || out.is_empty() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `text` as one line: whitespace runs become one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_sentences() {
        let kernels = ["5.10", "6.1", "6.12", "7.0", "7.3"];
        let ranges = |holds: [bool; 5]| kernel_ranges(&kernels, &holds);
        assert_eq!(ranges([false, false, true, true, true]), ["since 6.12"]);
        assert_eq!(ranges([true; 5]), ["on every kernel"]);
        assert_eq!(ranges([true, true, false, false, false]), ["until 6.1"]);
        assert_eq!(
            ranges([false, true, true, true, false]),
            ["from 6.1 to 7.0"]
        );
        assert_eq!(
            ranges([true, false, true, false, false]),
            ["on 5.10 only", "on 6.12 only"]
        );
        assert_eq!(ranges([false, false, false, false, true]), ["since 7.3"]);
    }

    #[test]
    fn wrapping_keeps_to_the_width() {
        let text = "kernel.function(\"do_sys_ftruncate\") is absent on this kernel and a very_long_identifier_that_does_not_fit_anywhere_on_one_line_of_the_mail_at_all";
        let wrapped = wrap(text, 40, "  - ", "    ");
        for line in wrapped.lines() {
            assert!(line.chars().count() <= 40, "{line:?}");
        }
        assert!(wrapped.starts_with("  - kernel.function"));
        // Nothing lost: the same characters, in order, but for spacing.
        let squeeze = |t: &str| t.chars().filter(|c| !c.is_whitespace()).collect::<String>();
        assert_eq!(squeeze(&wrapped), format!("-{}", squeeze(text)));
        assert_eq!(wrap("", 40, "x ", "  "), "x\n");
    }
}
