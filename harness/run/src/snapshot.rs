//! Expected outputs as insta snapshot files, so that `cargo insta review`
//! reviews them: `snapshots/NAME.snap` beside the scripts (shared by all
//! kernels) or `snapshots/NAME@SERIES.snap` (one per kernel series).

use std::path::{Path, PathBuf};

use crate::Error;
use crate::spec::{SnapshotScope, Spec};

/// The snapshot file of `spec` on a kernel of `series`.
pub fn snapshot_path(spec: &Spec, series: &str) -> PathBuf {
    let dir = spec
        .script
        .parent()
        .unwrap_or(Path::new("."))
        .join("snapshots");
    match spec.snapshot {
        SnapshotScope::Shared | SnapshotScope::Unchecked => dir.join(format!("{}.snap", spec.name)),
        SnapshotScope::PerSeries => dir.join(format!("{}@{series}.snap", spec.name)),
    }
}

/// The expected output in a snapshot file (its body after the metadata
/// header), or `None` when there is no snapshot yet.
pub fn read_snapshot(path: &Path) -> Result<Option<String>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(Error::io(path, error)),
    };
    Ok(Some(snapshot_body(&text).to_owned()))
}

/// The body of insta snapshot text: what follows the second `---` line.
fn snapshot_body(text: &str) -> &str {
    let Some(rest) = text.strip_prefix("---\n") else {
        return text;
    };
    match rest.find("\n---\n") {
        Some(end) => &rest[end + "\n---\n".len()..],
        None => text,
    }
}

/// Whether `actual` matches a snapshot body as insta compares them
/// (trailing line breaks do not count).
pub fn matches(expected: &str, actual: &str) -> bool {
    expected.trim_end_matches(['\n', '\r']) == actual.trim_end_matches(['\n', '\r'])
}

/// A unified diff of expected and actual output.
pub fn diff(expected: &str, actual: &str, expected_name: &str, actual_name: &str) -> String {
    similar::TextDiff::from_lines(expected, actual)
        .unified_diff()
        .header(expected_name, actual_name)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_follows_the_header() {
        let text = "---\nsource: tests/matrix.rs\nexpression: output\n---\nhello\nworld\n";
        assert_eq!(snapshot_body(text), "hello\nworld\n");
        assert!(matches("hello\nworld\n", "hello\nworld"));
        assert!(!matches("hello\n", "hello\nworld\n"));
        let diff = diff("a\nb\n", "a\nc\n", "expected", "actual");
        assert!(diff.contains("-b\n+c\n"), "{diff}");
    }
}
