//! The host's apt sources, read (never written) to find the URIs that serve
//! the Debian archive, and the private `sources.list` built from them.
//!
//! Both formats are read: one-line (`sources.list`, `sources.list.d/*.list`)
//! and deb822 (`sources.list.d/*.sources`). Commented-out lines, entries with
//! `Enabled: no` and files with other extensions (`*.disabled`) are ignored.

use std::path::{Path, PathBuf};

use crate::Error;
use crate::deb822;

/// One enabled `deb` entry of the host's apt sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AptSource {
    /// Mirror URIs, as written.
    pub uris: Vec<String>,
    /// Suites (codenames or aliases), as written.
    pub suites: Vec<String>,
    /// The `Signed-By` value: keyring paths or fingerprints, or an inline
    /// armored key block (deb822 only).
    pub signed_by: Option<String>,
    /// The file the entry came from.
    pub file: PathBuf,
}

/// A mirror of the Debian archive taken from the host's sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveMirror {
    /// The mirror's URI, as the host wrote it.
    pub uri: String,
    /// The host's `Signed-By` for it, if any.
    pub signed_by: Option<String>,
}

/// Reads every enabled `deb` entry under an apt configuration directory
/// (normally `/etc/apt`).
pub fn read_host_sources(etc_apt: &Path) -> Result<Vec<AptSource>, Error> {
    let mut sources = Vec::new();
    let main = etc_apt.join("sources.list");
    if let Some(text) = read_optional(&main)? {
        sources.extend(parse_one_line(&text, &main));
    }
    let parts = etc_apt.join("sources.list.d");
    let mut files = match std::fs::read_dir(&parts) {
        Ok(entries) => entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .collect::<Vec<_>>(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(Error::io(&parts, error)),
    };
    files.sort();
    for file in files {
        let extension = file.extension().and_then(|extension| extension.to_str());
        let parse: fn(&str, &Path) -> Vec<AptSource> = match extension {
            Some("list") => parse_one_line,
            Some("sources") => parse_deb822,
            _ => continue,
        };
        if let Some(text) = read_optional(&file)? {
            sources.extend(parse(&text, &file));
        }
    }
    Ok(sources)
}

fn read_optional(path: &Path) -> Result<Option<String>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::io(path, error)),
    }
}

/// Parses the one-line format: `deb [opt=value ...] URI SUITE COMPONENT...`.
pub fn parse_one_line(text: &str, file: &Path) -> Vec<AptSource> {
    let mut sources = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let rest = rest.trim_start();
        let (options, rest) = match rest.strip_prefix('[') {
            Some(bracketed) => match bracketed.split_once(']') {
                Some((options, rest)) => (options, rest),
                None => continue,
            },
            None => ("", rest),
        };
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        let signed_by = options.split_whitespace().find_map(|option| {
            let (name, value) = option.split_once('=')?;
            name.eq_ignore_ascii_case("signed-by")
                .then(|| value.to_owned())
        });
        sources.push(AptSource {
            uris: vec![uri.to_owned()],
            suites: vec![suite.to_owned()],
            signed_by,
            file: file.to_owned(),
        });
    }
    sources
}

/// Parses the deb822 format (`*.sources`).
pub fn parse_deb822(text: &str, file: &Path) -> Vec<AptSource> {
    deb822::parse(text)
        .into_iter()
        .filter(|paragraph| {
            let enabled = paragraph.get("Enabled").is_none_or(|value| {
                !matches!(value.to_ascii_lowercase().as_str(), "no" | "false" | "0")
            });
            let types = paragraph.get("Types").unwrap_or("");
            enabled && types.split_whitespace().any(|kind| kind == "deb")
        })
        .filter_map(|paragraph| {
            let words = |name: &str| -> Vec<String> {
                paragraph
                    .get(name)
                    .unwrap_or("")
                    .split_whitespace()
                    .map(str::to_owned)
                    .collect()
            };
            let uris = words("URIs");
            let suites = words("Suites");
            (!uris.is_empty() && !suites.is_empty()).then(|| AptSource {
                uris,
                suites,
                signed_by: paragraph.get("Signed-By").map(str::to_owned),
                file: file.to_owned(),
            })
        })
        .collect()
}

/// The host's Debian codename (`VERSION_CODENAME` in an os-release file).
/// A host of another distribution (`ID` other than `debian`, as on Ubuntu,
/// whose apt sources serve Ubuntu's archive) has none.
pub fn host_codename(os_release: &Path) -> Result<String, Error> {
    let text = std::fs::read_to_string(os_release).map_err(|error| {
        Error::no_mirror(format!(
            "the host has no readable {} ({error}) to tell its release",
            os_release.display()
        ))
    })?;
    let value = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
            .map(|value| value.trim().trim_matches('"').to_owned())
            .filter(|value| !value.is_empty())
    };
    if let Some(id) = value("ID").filter(|id| id != "debian") {
        return Err(Error::no_mirror(format!(
            "this host is not Debian (ID={id} in {}): its apt sources serve its own distribution",
            os_release.display()
        )));
    }
    value("VERSION_CODENAME").ok_or_else(|| {
        Error::no_mirror(format!("{} has no VERSION_CODENAME", os_release.display()))
    })
}

/// The mirrors serving the Debian archive: the URIs of entries whose suites
/// include the host's own codename (so not `-security`, which lives
/// elsewhere), each once.
pub fn archive_mirrors(sources: &[AptSource], codename: &str) -> Result<Vec<ArchiveMirror>, Error> {
    let mut mirrors: Vec<ArchiveMirror> = Vec::new();
    for source in sources {
        if !source.suites.iter().any(|suite| suite == codename) {
            continue;
        }
        for uri in &source.uris {
            if !mirrors.iter().any(|mirror| &mirror.uri == uri) {
                mirrors.push(ArchiveMirror {
                    uri: uri.clone(),
                    signed_by: source.signed_by.clone(),
                });
            }
        }
    }
    if mirrors.is_empty() {
        return Err(Error::NoDebianMirror {
            detail: format!(
                "no enabled `deb` entry in the host's apt sources lists the suite `{codename}`"
            ),
        });
    }
    Ok(mirrors)
}

/// Renders a private one-line `sources.list`: every mirror times every
/// suite, component `main`. `keyring_for` turns a mirror's `Signed-By` into
/// what goes in the `signed-by=` option (an inline key must be written to a
/// file first; the caller does that).
pub fn render_sources_list(
    mirrors: &[ArchiveMirror],
    suites: &[String],
    keyring_for: impl Fn(&ArchiveMirror) -> Option<String>,
) -> String {
    let mut text = String::from(
        "# Written by tapmatrix from the host's own apt sources, with the matrix's suites.\n",
    );
    for mirror in mirrors {
        let options = keyring_for(mirror)
            .map(|keyring| format!("[signed-by={keyring}] "))
            .unwrap_or_default();
        for suite in suites {
            text.push_str(&format!("deb {options}{} {suite} main\n", mirror.uri));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "Types: deb\n# http://snapshot.example/archive/debian/20250520T000000Z\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb-src\nURIs: http://src.example/debian\nSuites: bookworm\nComponents: main\n\nEnabled: no\nTypes: deb\nURIs: http://disabled.example/debian\nSuites: bookworm\nComponents: main\n";

    #[test]
    fn deb822_entries_skip_disabled_and_source_entries() {
        let sources = parse_deb822(DEB822, Path::new("debian.sources"));
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].uris, ["http://mirror.example/debian"]);
        assert_eq!(sources[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(
            sources[0].signed_by.as_deref(),
            Some("/usr/share/keyrings/debian-archive-keyring.gpg")
        );
    }

    #[test]
    fn one_line_entries_with_options_and_comments() {
        let text = "# deb http://commented.example/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://a.example/debian bookworm main contrib # trailing\ndeb-src http://a.example/debian bookworm main\ndeb http://b.example/debian bookworm-security main\n";
        let sources = parse_one_line(text, Path::new("sources.list"));
        assert_eq!(sources.len(), 2);
        assert_eq!(sources[0].uris, ["http://a.example/debian"]);
        assert_eq!(sources[0].signed_by.as_deref(), Some("/k.gpg"));
        assert_eq!(sources[1].suites, ["bookworm-security"]);
        assert_eq!(sources[1].signed_by, None);
    }

    #[test]
    fn archive_mirrors_take_the_codename_entries_only() {
        let sources = parse_deb822(DEB822, Path::new("debian.sources"));
        let mirrors = archive_mirrors(&sources, "bookworm").unwrap();
        assert_eq!(mirrors.len(), 1);
        assert_eq!(mirrors[0].uri, "http://mirror.example/debian");
        let error = archive_mirrors(&sources, "trixie").unwrap_err();
        assert!(error.to_string().contains("`trixie`"), "{error}");
    }

    #[test]
    fn reads_a_host_directory_and_ignores_disabled_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        std::fs::write(dir.path().join("sources.list.d/debian.sources"), DEB822).unwrap();
        std::fs::write(
            dir.path()
                .join("sources.list.d/other.list.disabled-by-farm"),
            "deb http://other.example/apt bookworm main\n",
        )
        .unwrap();
        let sources = read_host_sources(dir.path()).unwrap();
        assert_eq!(sources.len(), 2);
        assert!(
            sources
                .iter()
                .all(|source| !source.uris[0].contains("other"))
        );
    }

    #[test]
    fn renders_every_suite_for_every_mirror() {
        let mirrors = vec![ArchiveMirror {
            uri: "http://m.example/debian".into(),
            signed_by: Some("/k.gpg".into()),
        }];
        let suites = vec!["bullseye".to_owned(), "sid".to_owned()];
        let text = render_sources_list(&mirrors, &suites, |mirror| mirror.signed_by.clone());
        assert!(text.contains("deb [signed-by=/k.gpg] http://m.example/debian bullseye main\n"));
        assert!(text.contains("deb [signed-by=/k.gpg] http://m.example/debian sid main\n"));
    }

    #[test]
    fn codename_from_os_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("os-release");
        std::fs::write(
            &path,
            "NAME=\"Debian GNU/Linux\"\nVERSION_CODENAME=bookworm\n",
        )
        .unwrap();
        assert_eq!(host_codename(&path).unwrap(), "bookworm");
        std::fs::write(
            &path,
            "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n",
        )
        .unwrap();
        let error = host_codename(&path).unwrap_err().to_string();
        assert!(error.contains("ID=ubuntu"), "{error}");
        assert!(error.contains("TAPMATRIX_DEBIAN_MIRROR"), "{error}");
    }
}
