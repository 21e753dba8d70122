//! `kernels/matrix.yaml`: which kernels the matrix runs on, and where each
//! comes from.
//!
//! ```yaml
//! kernels:
//!   - id: "6.1"                       # the kernel's id: a directory name in the cache
//!     debian: { suite: bookworm, series: "6.1" }   # newest 6.1 package in bookworm
//!   - id: my-tree
//!     local:                          # a developer's own build tree
//!       bzimage: ~/src/linux/arch/x86/boot/bzImage
//!       config: ~/src/linux/.config   # optional, as are vmlinux and system_map
//! ```
//!
//! Relative local paths are relative to the directory holding matrix.yaml;
//! a leading `~/` means the home directory. An optional top-level
//! `debian_archive: { uri: URI, keyring: FILE }` names the Debian archive
//! to fetch from, for hosts whose apt sources have none (the environment's
//! `TAPMATRIX_DEBIAN_MIRROR` wins over it).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::{DebianArchive, Error};

/// A kernel's id: the series for Debian entries of the default matrix
/// (`"6.1"`), any name for local ones. Safe as a directory name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KernelId(String);

impl KernelId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KernelId {
    type Error = String;

    fn try_from(id: String) -> Result<Self, String> {
        let valid = !id.is_empty()
            && !id.starts_with('.')
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
        if valid {
            Ok(KernelId(id))
        } else {
            Err(format!(
                "`{id}` is not a valid kernel id: use letters, digits, `.`, `-`, `_`, `+`, not starting with `.`"
            ))
        }
    }
}

impl From<KernelId> for String {
    fn from(id: KernelId) -> String {
        id.0
    }
}

impl fmt::Display for KernelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

/// A Debian entry: the newest `linux-image-SERIES.*-FLAVOUR` package of a
/// suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianSpec {
    /// The suite (codename) to take it from: `bullseye`, `trixie-backports`, `sid`.
    pub suite: String,
    /// The upstream series, `MAJOR.MINOR`: `"5.10"`, `"7.3"`.
    pub series: String,
    /// The image flavour, `amd64` unless given (`cloud-amd64`, `rt-amd64`).
    #[serde(default = "default_flavour")]
    pub flavour: String,
}

fn default_flavour() -> String {
    "amd64".to_owned()
}

/// A local entry: files from a developer's kernel build tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalSpec {
    /// The bootable image (`arch/x86/boot/bzImage`).
    pub bzimage: PathBuf,
    /// The uncompressed `vmlinux`, if wanted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vmlinux: Option<PathBuf>,
    /// The kernel's `.config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// Its `System.map`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_map: Option<PathBuf>,
}

/// Where a kernel comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelSource {
    /// A Debian package, resolved by `tapmatrix kernels lock`.
    Debian(DebianSpec),
    /// Files from a local build tree (paths made absolute at load).
    Local(LocalSpec),
}

/// One kernel of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatrixEntry {
    /// Its id.
    pub id: KernelId,
    /// Where it comes from.
    pub source: KernelSource,
}

/// The parsed `matrix.yaml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matrix {
    /// The file it was read from.
    pub path: PathBuf,
    /// The Debian archive to fetch from, if the matrix names one (else the
    /// environment's, else the host's apt sources: see [`crate::HostApt`]).
    pub debian_archive: Option<DebianArchive>,
    /// Its kernels, in file order.
    pub kernels: Vec<MatrixEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMatrix {
    #[serde(default)]
    debian_archive: Option<DebianArchive>,
    kernels: Vec<RawEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: Spanned<KernelId>,
    #[serde(default)]
    debian: Option<DebianSpec>,
    #[serde(default)]
    local: Option<LocalSpec>,
}

impl Matrix {
    /// Reads and checks a matrix file. Errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Matrix, Error> {
        let text = std::fs::read_to_string(path).map_err(|error| Error::io(path, error))?;
        Matrix::parse(&text, path)
    }

    /// Parses matrix text; `path` is for messages and for resolving
    /// relative local paths.
    pub fn parse(text: &str, path: &Path) -> Result<Matrix, Error> {
        let raw: RawMatrix = serde_saphyr::from_str(text).map_err(|error| {
            let location = error.location();
            Error::Matrix {
                path: path.to_owned(),
                line: location.map_or(0, |location| location.line()),
                column: location.map_or(0, |location| location.column()),
                message: first_line(&error.to_string()),
            }
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut kernels: Vec<MatrixEntry> = Vec::new();
        for entry in raw.kernels {
            let at = |message: String| Error::Matrix {
                path: path.to_owned(),
                line: entry.id.referenced.line(),
                column: entry.id.referenced.column(),
                message,
            };
            let id = entry.id.value.clone();
            if kernels.iter().any(|known| known.id == id) {
                return Err(at(format!("kernel id `{id}` appears twice")));
            }
            let source = match (entry.debian, entry.local) {
                (Some(debian), None) => {
                    check_debian(&debian).map_err(at)?;
                    KernelSource::Debian(debian)
                }
                (None, Some(local)) => KernelSource::Local(absolute_local(local, base)),
                _ => {
                    return Err(at(format!(
                        "kernel `{id}` needs exactly one of `debian:` or `local:`"
                    )));
                }
            };
            kernels.push(MatrixEntry { id, source });
        }
        Ok(Matrix {
            path: path.to_owned(),
            debian_archive: raw.debian_archive,
            kernels,
        })
    }

    /// The entry with this id.
    pub fn get(&self, id: &str) -> Option<&MatrixEntry> {
        self.kernels.iter().find(|entry| entry.id.as_str() == id)
    }

    /// The ids, in file order.
    pub fn ids(&self) -> Vec<KernelId> {
        self.kernels.iter().map(|entry| entry.id.clone()).collect()
    }

    /// The suites the Debian entries need, each once, in file order.
    pub fn suites(&self) -> Vec<String> {
        let mut suites: Vec<String> = Vec::new();
        for entry in &self.kernels {
            if let KernelSource::Debian(debian) = &entry.source
                && !suites.contains(&debian.suite)
            {
                suites.push(debian.suite.clone());
            }
        }
        suites
    }

    /// The lock file beside the matrix: `matrix.lock` in the same directory.
    pub fn lock_path(&self) -> PathBuf {
        self.path.with_file_name("matrix.lock")
    }
}

/// The first line of a serde-saphyr message, without its own `error: line
/// N column M:` prefix (the location is printed once, as path:line:col).
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let line = line.strip_prefix("error: ").unwrap_or(line);
    match line
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((_, message)) => message.to_owned(),
        None => line.to_owned(),
    }
}

fn check_debian(debian: &DebianSpec) -> Result<(), String> {
    let series_ok = debian.series.split_once('.').is_some_and(|(major, minor)| {
        [major, minor]
            .iter()
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()))
    });
    if !series_ok {
        return Err(format!(
            "series `{}` is not MAJOR.MINOR (like \"6.1\" or \"7.3\")",
            debian.series
        ));
    }
    let word = |text: &str| {
        !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    if !word(&debian.suite) {
        return Err(format!(
            "suite `{}` is not a Debian suite name",
            debian.suite
        ));
    }
    if !word(&debian.flavour) {
        return Err(format!(
            "flavour `{}` is not a kernel flavour",
            debian.flavour
        ));
    }
    Ok(())
}

fn absolute_local(local: LocalSpec, base: &Path) -> LocalSpec {
    let resolve = |path: PathBuf| -> PathBuf {
        if let Ok(rest) = path.strip_prefix("~")
            && let Some(home) = std::env::var_os("HOME")
        {
            return PathBuf::from(home).join(rest);
        }
        if path.is_absolute() {
            path
        } else {
            base.join(path)
        }
    };
    LocalSpec {
        bzimage: resolve(local.bzimage),
        vmlinux: local.vmlinux.map(resolve),
        config: local.config.map(resolve),
        system_map: local.system_map.map(resolve),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Matrix, Error> {
        Matrix::parse(text, Path::new("/repo/kernels/matrix.yaml"))
    }

    #[test]
    fn parses_debian_and_local_entries() {
        let matrix = parse(
            "kernels:\n  - id: \"6.1\"\n    debian: { suite: bookworm, series: \"6.1\" }\n  - id: mine\n    local:\n      bzimage: build/bzImage\n      config: /abs/.config\n",
        )
        .unwrap();
        assert_eq!(matrix.kernels.len(), 2);
        assert_eq!(
            matrix.kernels[0].source,
            KernelSource::Debian(DebianSpec {
                suite: "bookworm".into(),
                series: "6.1".into(),
                flavour: "amd64".into()
            })
        );
        let KernelSource::Local(local) = &matrix.kernels[1].source else {
            panic!("not local");
        };
        assert_eq!(local.bzimage, Path::new("/repo/kernels/build/bzImage"));
        assert_eq!(local.config.as_deref(), Some(Path::new("/abs/.config")));
        assert_eq!(matrix.suites(), ["bookworm"]);
        assert_eq!(matrix.lock_path(), Path::new("/repo/kernels/matrix.lock"));
    }

    #[test]
    fn unknown_field_has_line_and_column() {
        let error =
            parse("kernels:\n  - id: a\n    debian: { suite: sid, series: \"7.2\", flavor: rt }\n")
                .unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("/repo/kernels/matrix.yaml:3:"), "{text}");
        assert!(text.contains("unknown field `flavor`"), "{text}");
        assert_eq!(
            text.matches("line").count(),
            0,
            "location given twice: {text}"
        );
    }

    #[test]
    fn both_or_neither_source_is_an_error_at_the_id() {
        let error = parse("kernels:\n  - id: a\n    debian: { suite: sid, series: \"7.2\" }\n    local: { bzimage: x }\n")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "/repo/kernels/matrix.yaml:2:9: kernel `a` needs exactly one of `debian:` or `local:`"
        );
        let error = parse("kernels:\n  - id: a\n").unwrap_err();
        assert!(error.to_string().contains("exactly one"), "{error}");
    }

    #[test]
    fn duplicate_ids_and_bad_ids_are_errors() {
        let error = parse("kernels:\n  - id: a\n    local: { bzimage: x }\n  - id: a\n    local: { bzimage: y }\n")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "/repo/kernels/matrix.yaml:4:9: kernel id `a` appears twice"
        );
        let error = parse("kernels:\n  - id: ../etc\n    local: { bzimage: x }\n").unwrap_err();
        assert!(
            error.to_string().contains("not a valid kernel id"),
            "{error}"
        );
        assert!(error.to_string().contains(":2:"), "{error}");
    }

    #[test]
    fn unquoted_series_keeps_its_text() {
        // serde-saphyr hands a String target the scalar as written: 6.10 stays "6.10".
        let matrix =
            parse("kernels:\n  - id: a\n    debian: { suite: sid, series: 6.10 }\n").unwrap();
        let KernelSource::Debian(debian) = &matrix.kernels[0].source else {
            panic!("not debian");
        };
        assert_eq!(debian.series, "6.10");
    }

    #[test]
    fn bad_series_is_an_error() {
        let error =
            parse("kernels:\n  - id: a\n    debian: { suite: sid, series: \"7\" }\n").unwrap_err();
        assert!(error.to_string().contains("MAJOR.MINOR"), "{error}");
    }
}
