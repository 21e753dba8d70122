//! apt-get and apt-cache run against a private state directory inside the
//! cache: its own sources.list (the Debian archive with the matrix's
//! suites), its own lists and archives, an empty dpkg status. The host's
//! /etc/apt is only read; nothing is installed.
//!
//! The archive: the one `TAPMATRIX_DEBIAN_MIRROR` names, else the one the
//! matrix names (`debian_archive:`), else the host's own apt sources (the
//! entry for the host's Debian release). A named archive is verified with
//! `TAPMATRIX_DEBIAN_KEYRING`, the matrix's `keyring:`, or the host's
//! `debian-archive-keyring`.
//!
//! Keys: Debian signs bullseye, bookworm, trixie, trixie-backports and sid
//! with keys that bookworm's `debian-archive-keyring` holds (checked with
//! `apt-get update` against all five on a bookworm host, 2026-11), so the
//! host's own `Signed-By` keyring is used as is. `apt-get update` runs with
//! `--error-on=any`, so a suite whose signature does not verify is an error,
//! never silently skipped or trusted.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::deb822;
use crate::lock::LockedPackage;
use crate::resolve::{PackageRecord, SuiteIndex};
use crate::sources::{self, ArchiveMirror};
use crate::{Error, atomic_write};

/// The environment variable naming the Debian archive to fetch from (its
/// URI, as in a `deb` line), instead of the matrix's or the host's.
pub const MIRROR_ENV: &str = "TAPMATRIX_DEBIAN_MIRROR";

/// The environment variable naming the keyring that verifies that archive.
pub const KEYRING_ENV: &str = "TAPMATRIX_DEBIAN_KEYRING";

/// Where Debian's `debian-archive-keyring` package puts its keyring.
pub const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A Debian archive named by the user (`debian_archive:` in the matrix, or
/// the environment), instead of the host's apt sources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DebianArchive {
    /// Its URI, as in a `deb` line (`http://...`, `file:/...`).
    pub uri: String,
    /// The keyring that verifies it (default: [`DEBIAN_KEYRING`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyring: Option<PathBuf>,
}

impl DebianArchive {
    /// The archive the environment names, if any.
    pub fn from_env() -> Option<DebianArchive> {
        let uri = std::env::var(MIRROR_ENV)
            .ok()
            .filter(|uri| !uri.is_empty())?;
        let keyring = std::env::var_os(KEYRING_ENV)
            .filter(|keyring| !keyring.is_empty())
            .map(PathBuf::from);
        Some(DebianArchive { uri, keyring })
    }

    /// As a mirror of the private sources list, with its keyring.
    fn mirror(&self) -> Result<ArchiveMirror, Error> {
        let keyring = match &self.keyring {
            Some(keyring) => keyring.clone(),
            None if Path::new(DEBIAN_KEYRING).is_file() => PathBuf::from(DEBIAN_KEYRING),
            None => {
                return Err(Error::NoDebianKeyring {
                    uri: self.uri.clone(),
                });
            }
        };
        Ok(ArchiveMirror {
            uri: self.uri.clone(),
            signed_by: Some(keyring.display().to_string()),
        })
    }
}

/// Where the host's apt configuration and os-release are (the real ones
/// unless a test points elsewhere), and the Debian archive named instead
/// of them, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostApt {
    /// The host's apt configuration directory, normally `/etc/apt`.
    pub etc_apt: PathBuf,
    /// The host's os-release, normally `/etc/os-release`.
    pub os_release: PathBuf,
    /// The archive to fetch from instead of the host's apt sources.
    pub archive: Option<DebianArchive>,
}

impl Default for HostApt {
    /// The host's files, and the archive `TAPMATRIX_DEBIAN_MIRROR` names.
    fn default() -> HostApt {
        HostApt {
            etc_apt: PathBuf::from("/etc/apt"),
            os_release: PathBuf::from("/etc/os-release"),
            archive: DebianArchive::from_env(),
        }
    }
}

impl HostApt {
    /// The archive `matrix` names, unless one is named already (the
    /// environment wins over the matrix).
    pub fn with_matrix(mut self, matrix: &crate::Matrix) -> HostApt {
        if self.archive.is_none() {
            self.archive = matrix.debian_archive.clone();
        }
        self
    }

    /// The archive's mirrors: the named archive, else the host's.
    fn mirrors(&self) -> Result<Vec<ArchiveMirror>, Error> {
        if let Some(archive) = &self.archive {
            return Ok(vec![archive.mirror()?]);
        }
        let codename = sources::host_codename(&self.os_release)?;
        let host_sources = sources::read_host_sources(&self.etc_apt)?;
        sources::archive_mirrors(&host_sources, &codename)
    }
}

/// A prepared private apt state (`<cache>/apt`).
#[derive(Debug, Clone)]
pub struct AptState {
    dir: PathBuf,
}

impl AptState {
    /// Writes the private sources.list for these suites (plus those it
    /// already listed) from the host's mirrors and creates the state
    /// directories.
    pub fn prepare(dir: &Path, suites: &[String], host: &HostApt) -> Result<AptState, Error> {
        let mirrors = host.mirrors()?;
        for sub in ["lists/partial", "archives/partial"] {
            let path = dir.join(sub);
            std::fs::create_dir_all(&path).map_err(|error| Error::io(&path, error))?;
        }
        let mut keyrings = Vec::new();
        for (index, mirror) in mirrors.iter().enumerate() {
            keyrings.push(keyring_option(dir, index, mirror)?);
        }
        // Keep the suites an earlier run listed: apt-get update drops the
        // lists of suites no longer in sources.list, and `lock` needs them all.
        let list = dir.join("sources.list");
        let mut all: Vec<String> = match std::fs::read_to_string(&list) {
            Ok(text) => sources::parse_one_line(&text, &list)
                .into_iter()
                .flat_map(|source| source.suites)
                .collect(),
            Err(_) => Vec::new(),
        };
        all.extend(suites.iter().cloned());
        let mut suites: Vec<String> = Vec::new();
        for suite in all {
            if !suites.contains(&suite) {
                suites.push(suite);
            }
        }
        let text = sources::render_sources_list(&mirrors, &suites, |mirror| {
            mirrors
                .iter()
                .position(|known| known == mirror)
                .and_then(|index| keyrings.get(index).cloned().flatten())
        });
        atomic_write(&list, text.as_bytes())?;
        Ok(AptState {
            dir: dir.to_owned(),
        })
    }

    /// The `-o` options that point apt at the private state.
    fn options(&self) -> Vec<String> {
        let dir = self.dir.display();
        [
            format!("Dir::Etc::SourceList={dir}/sources.list"),
            "Dir::Etc::SourceParts=/dev/null".to_owned(),
            format!("Dir::State::Lists={dir}/lists"),
            format!("Dir::Cache={dir}"),
            // The host may disable apt's binary caches (Docker images do);
            // without them every apt-get call re-parses all the indices.
            "Dir::Cache::pkgcache=pkgcache.bin".to_owned(),
            "Dir::Cache::srcpkgcache=srcpkgcache.bin".to_owned(),
            "Dir::State::status=/dev/null".to_owned(),
            "APT::Architecture=amd64".to_owned(),
            "APT::Architectures=amd64".to_owned(),
            "Acquire::Languages=none".to_owned(),
            "Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false".to_owned(),
            // The private state is this user's: run as root, apt would
            // otherwise download as `_apt`, which cannot write there, and
            // warn that it does not.
            "APT::Sandbox::User=root".to_owned(),
        ]
        .into_iter()
        .flat_map(|option| ["-o".to_owned(), option])
        .collect()
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command.args(self.options()).env("LC_ALL", "C.UTF-8");
        command
    }

    /// `apt-get update` of the private lists.
    pub fn update(&self) -> Result<(), Error> {
        let mut command = self.command("apt-get");
        command.args(["--error-on=any", "-q", "update"]);
        run(
            command,
            "could not read the Debian archive's package lists",
            "apt-get update",
        )
        .map(drop)
    }

    /// Reads the `Packages` indices of these suites (only the `linux-*`
    /// paragraphs), one [`SuiteIndex`] per suite, in order.
    pub fn read_indices(&self, suites: &[String]) -> Result<Vec<SuiteIndex>, Error> {
        let mut command = self.command("apt-get");
        command.args([
            "indextargets",
            "--format",
            "$(RELEASE) $(FILENAME)",
            "Identifier: Packages",
        ]);
        let listing = run(
            command,
            "could not list the package indices",
            "apt-get indextargets",
        )?;
        let mut indices = Vec::new();
        for suite in suites {
            let files: Vec<&str> = listing
                .lines()
                .filter_map(|line| line.trim().split_once(' '))
                .filter(|(release, file)| release == suite && Path::new(file).exists())
                .map(|(_, file)| file)
                .collect();
            if files.is_empty() {
                return Err(Error::Apt {
                    what: format!(
                        "the archive has no package index for suite `{suite}` (does it carry that suite?)"
                    ),
                    command: "apt-get indextargets".to_owned(),
                    detail: String::new(),
                });
            }
            let mut index = SuiteIndex::new(suite);
            for file in files {
                let mut command = Command::new("/usr/lib/apt/apt-helper");
                command.args(["cat-file", file]);
                let text = run(
                    command,
                    &format!("could not read the package index {file}"),
                    "apt-helper cat-file",
                )?;
                for chunk in text.split("\n\n") {
                    if !chunk.trim_start().starts_with("Package: linux-") {
                        continue;
                    }
                    for paragraph in deb822::parse(chunk) {
                        if let Some(record) = PackageRecord::from_paragraph(&paragraph) {
                            index.insert(record);
                        }
                    }
                }
            }
            indices.push(index);
        }
        Ok(indices)
    }

    /// `apt-get download NAME=VERSION` into `into`; returns the .deb's path.
    /// The bar follows the bytes written. A version apt cannot find is
    /// looked for once more after a new `apt-get update`: a mirror in the
    /// middle of its sync served lists without a version that was there
    /// before and after (6.1's, once, on a fresh cache).
    pub fn download(
        &self,
        package: &LockedPackage,
        into: &Path,
        bar: &ProgressBar,
    ) -> Result<PathBuf, Error> {
        match self.download_once(package, into, bar) {
            Err(Error::Apt { detail, .. }) if not_found(&detail) => {
                tracing::info!(
                    "apt-get found no {} {}: updating the lists and trying again",
                    package.name,
                    package.version
                );
                self.update()?;
                self.download_once(package, into, bar)
            }
            done => done,
        }
    }

    fn download_once(
        &self,
        package: &LockedPackage,
        into: &Path,
        bar: &ProgressBar,
    ) -> Result<PathBuf, Error> {
        let log_path = into.join("apt-get.log");
        let log = std::fs::File::create(&log_path).map_err(|error| Error::io(&log_path, error))?;
        let log_err = log
            .try_clone()
            .map_err(|error| Error::io(&log_path, error))?;
        let mut command = self.command("apt-get");
        command
            .args([
                "-q",
                "download",
                &format!("{}={}", package.name, package.version),
            ])
            .current_dir(into)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        let what = format!("apt-get download {}={}", package.name, package.version);
        let failed = |detail: String| Error::Apt {
            what: format!("could not download {} {}", package.name, package.version),
            command: what.clone(),
            detail,
        };
        let mut child = command.spawn().map_err(|error| failed(error.to_string()))?;
        let deb = into.join(package.deb_name());
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) => {
                    let written = std::fs::metadata(&deb).map_or(0, |metadata| metadata.len());
                    bar.set_position(written.min(package.size));
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => return Err(failed(error.to_string())),
            }
        };
        let output = std::fs::read_to_string(&log_path).unwrap_or_default();
        if !status.success() {
            let mut words = apt_words(&output);
            if not_found(&words) {
                words.push_str(
                    "\nThe locked version has left the archive (sid and backports keep only recent ones): \
                     run `tapmatrix kernels --matrix MATRIX lock` to pin the newest \
                     (a tapmatrix built since has a newer built-in lock).",
                );
            }
            return Err(failed(words));
        }
        if !deb.is_file() {
            return Err(failed(format!(
                "apt-get did not write {}\n{}",
                deb.display(),
                apt_words(&output)
            )));
        }
        bar.set_position(package.size);
        Ok(deb)
    }
}

/// Whether apt's words say it knows no such package or version.
fn not_found(words: &str) -> bool {
    words.contains("was not found") || words.contains("Unable to locate")
}

impl AptState {
    /// Whether `apt-get update` has filled the private lists.
    pub fn has_lists(&self) -> bool {
        std::fs::read_dir(self.dir.join("lists")).is_ok_and(|entries| {
            entries
                .filter_map(Result::ok)
                .any(|entry| entry.file_name().to_string_lossy().ends_with("_Packages"))
        })
    }

    /// `apt-get download NAME` (the newest version any listed suite has)
    /// into `into`; returns the .deb's path.
    pub fn download_newest(&self, name: &str, into: &Path) -> Result<PathBuf, Error> {
        let mut command = self.command("apt-get");
        command.args(["-q", "download", name]).current_dir(into);
        let what = format!("downloading {name} failed");
        let line = format!("apt-get download {name}");
        run(command, &what, &line)?;
        let entries = std::fs::read_dir(into).map_err(|error| Error::io(into, error))?;
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .find(|path| {
                path.extension().is_some_and(|e| e == "deb")
                    && path
                        .file_name()
                        .is_some_and(|f| f.to_string_lossy().starts_with(&format!("{name}_")))
            })
            .ok_or_else(|| Error::Apt {
                what,
                command: line,
                detail: format!("no {name}_*.deb in {}", into.display()),
            })
    }
}

/// The `signed-by=` value for a mirror: its keyring paths or fingerprints
/// as the host wrote them, or for an inline key block, a file holding it.
fn keyring_option(
    dir: &Path,
    index: usize,
    mirror: &ArchiveMirror,
) -> Result<Option<String>, Error> {
    let Some(signed_by) = &mirror.signed_by else {
        return Ok(None);
    };
    if signed_by.contains("BEGIN PGP PUBLIC KEY BLOCK") {
        let path = dir.join(format!("keyring-{index}.asc"));
        let mut text = signed_by.clone();
        text.push('\n');
        atomic_write(&path, text.as_bytes())?;
        return Ok(Some(path.display().to_string()));
    }
    Ok(Some(
        signed_by.split_whitespace().collect::<Vec<_>>().join(","),
    ))
}

/// Runs a command to completion (its output captured, never shown); its
/// stdout on success, else `what` went wrong with apt's own words.
fn run(mut command: Command, what: &str, name: &str) -> Result<String, Error> {
    let failed = |detail: String| Error::Apt {
        what: what.to_owned(),
        command: name.to_owned(),
        detail,
    };
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| failed(error.to_string()))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if output.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(failed(apt_words(&format!("{stdout}\n{stderr}"))))
}

/// apt's own error and warning lines, else the last lines of its output.
pub fn apt_words(output: &str) -> String {
    let flagged: Vec<&str> = output
        .lines()
        .filter(|line| line.starts_with("E:") || line.starts_with("W:") || line.starts_with("Err:"))
        .collect();
    let lines: Vec<&str> = if flagged.is_empty() {
        let all: Vec<&str> = output
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect();
        all[all.len().saturating_sub(5)..].to_vec()
    } else {
        flagged
    };
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_words_prefer_error_lines() {
        let output = "Hit:1 http://m.example/debian sid InRelease\nErr:2 http://m.example/debian nope Release\n  404  Not Found\nE: The repository 'http://m.example/debian nope Release' does not have a Release file.\n";
        let words = apt_words(output);
        assert!(words.starts_with("Err:2"), "{words}");
        assert!(words.contains("E: The repository"), "{words}");
        assert!(!words.contains("Hit:1"), "{words}");
        assert_eq!(apt_words("a\nb\n"), "a\nb");
    }

    #[test]
    fn inline_keys_go_to_a_file_and_paths_stay() {
        let dir = tempfile::tempdir().unwrap();
        let inline = ArchiveMirror {
            uri: "http://m.example/debian".into(),
            signed_by: Some(
                "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nabc\n-----END PGP PUBLIC KEY BLOCK-----"
                    .into(),
            ),
        };
        let option = keyring_option(dir.path(), 0, &inline).unwrap().unwrap();
        assert!(option.ends_with("keyring-0.asc"), "{option}");
        assert!(std::fs::read_to_string(&option).unwrap().contains("abc"));
        let path = ArchiveMirror {
            uri: "http://m.example/debian".into(),
            signed_by: Some("/a.gpg /b.gpg".into()),
        };
        assert_eq!(
            keyring_option(dir.path(), 1, &path).unwrap().as_deref(),
            Some("/a.gpg,/b.gpg")
        );
    }
}
