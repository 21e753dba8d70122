//! Initramfs images: the static agent as `/init`, busybox at `/bin/busybox`
//! with its applet links, a root-only `/etc/passwd` and `/etc/group`, the
//! job as `/job.json`, and whatever files a run adds. A gzip-compressed
//! cpio newc archive (every Debian kernel from 5.10 on has
//! `CONFIG_RD_GZIP=y`), reproducible, built once per content and cached
//! under `<cache>/initramfs/<sha256>.cpio.gz`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use tapmatrix_wire::Job;

use crate::cpio::{Member, write_newc};

/// A file a run adds to the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraFile {
    /// Absolute path in the guest (e.g. `/floor`).
    pub path: String,
    /// Content.
    pub data: Vec<u8>,
    /// Permission bits.
    pub mode: u32,
}

/// What goes into an image besides the agent and busybox.
#[derive(Debug, Clone, Default)]
pub struct Initramfs {
    /// The job, written to `/job.json`.
    pub job: Option<Job>,
    /// More files.
    pub extra: Vec<ExtraFile>,
}

/// Why an image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InitramfsError {
    /// busybox is missing or not static.
    #[error(
        "no static busybox at /bin/busybox: install the Debian package busybox-static (`tapmatrix doctor --install`)"
    )]
    NoBusybox,
    /// Reading busybox or listing its applets failed.
    #[error("reading busybox at {path}: {reason}")]
    Busybox {
        /// Where busybox is.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// An extra file's path is not absolute or collides with a built-in one.
    #[error("bad initramfs path {path:?}: {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Writing the image to the cache failed.
    #[error("writing the initramfs to {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The commands a guest has on its `PATH`: the applets of the busybox
/// every image carries (`ls`, `dd`, `sleep`...).
pub fn guest_commands() -> Result<std::collections::BTreeSet<String>, InitramfsError> {
    let busybox = crate::Prerequisites::check()
        .busybox
        .ok_or(InitramfsError::NoBusybox)?;
    let list = duct::cmd(&busybox, ["--list-full"])
        .stdout_capture()
        .stderr_null()
        .read()
        .map_err(|error| InitramfsError::Busybox {
            path: busybox.clone(),
            reason: format!("`busybox --list-full`: {error}"),
        })?;
    Ok(list
        .lines()
        .filter_map(|applet| applet.trim().rsplit('/').next())
        .filter(|name| !name.is_empty())
        .map(str::to_owned)
        .chain(std::iter::once("busybox".to_owned()))
        .collect())
}

impl Initramfs {
    /// An image that runs `job`.
    pub fn with_job(job: Job) -> Self {
        Self {
            job: Some(job),
            extra: Vec::new(),
        }
    }

    /// Builds the image (or finds it in `cache_dir`) and returns its path.
    ///
    /// The image is two concatenated gzip'd cpio archives (the kernel
    /// unpacks one after the other): the base every image shares (the
    /// agent, busybox and its applets, `/etc`), compressed once per process
    /// and cached, then the job and the extra files, the only part a run
    /// compresses.
    pub fn build(&self, cache_dir: &Path) -> Result<PathBuf, InitramfsError> {
        let busybox = crate::Prerequisites::check()
            .busybox
            .ok_or(InitramfsError::NoBusybox)?;
        let dir = cache_dir.join("initramfs");
        let base = base_image(&dir, &busybox)?;
        let members = self.own_members(&busybox)?;
        if members.is_empty() {
            return Ok(base.path.clone());
        }
        let archive = write_newc(members.iter().map(|(path, member)| (path.as_str(), member)));
        let mut hasher = Sha256::new();
        hasher.update(base.digest.as_bytes());
        hasher.update(&archive);
        let name: String = hasher
            .finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        let path = dir.join(format!("{name}.cpio.gz"));
        if path.is_file() {
            return Ok(path);
        }
        let write_error = |source| InitramfsError::Write {
            path: path.clone(),
            source,
        };
        let mut encoder = GzEncoder::new(base.compressed.clone(), Compression::fast());
        encoder.write_all(&archive).map_err(write_error)?;
        let compressed = encoder.finish().map_err(write_error)?;
        // Unique per writer, renamed whole: threads and processes building
        // the same image at once each land a complete one.
        tapmatrix_kernels::write_atomic(&path, &compressed).map_err(write_error)?;
        Ok(path)
    }

    /// Every member, by path relative to the root (sorted: parents first):
    /// the base's and the image's own.
    #[cfg(test)]
    pub(crate) fn members(
        &self,
        busybox: &Path,
    ) -> Result<BTreeMap<String, Member>, InitramfsError> {
        let mut members = base_members(busybox)?;
        members.extend(self.own_members(busybox)?);
        Ok(members)
    }

    /// The image's own members (the job, the extra files and their
    /// directories), by path relative to the root (sorted: parents first).
    fn own_members(&self, busybox: &Path) -> Result<BTreeMap<String, Member>, InitramfsError> {
        let busybox_error = |reason: String| InitramfsError::Busybox {
            path: busybox.to_path_buf(),
            reason,
        };
        let mut members = BTreeMap::new();
        if let Some(job) = &self.job {
            let data = serde_json::to_vec(job).map_err(|error| busybox_error(error.to_string()))?;
            members.insert(
                tapmatrix_wire::JOB_PATH.trim_start_matches('/').to_owned(),
                Member::File { data, mode: 0o644 },
            );
        }
        for file in &self.extra {
            let relative = file.path.strip_prefix('/').ok_or(InitramfsError::BadPath {
                path: file.path.clone(),
                reason: "not absolute",
            })?;
            if relative.is_empty()
                || relative
                    .split('/')
                    .any(|part| part.is_empty() || part == "." || part == "..")
            {
                return Err(InitramfsError::BadPath {
                    path: file.path.clone(),
                    reason: "empty, `.` or `..` component",
                });
            }
            let mut parent = String::new();
            for part in relative
                .split('/')
                .collect::<Vec<_>>()
                .split_last()
                .map_or(&[][..], |(_, dirs)| dirs)
            {
                if !parent.is_empty() {
                    parent.push('/');
                }
                parent.push_str(part);
                members.entry(parent.clone()).or_insert(Member::Dir);
            }
            members.insert(
                relative.to_owned(),
                Member::File {
                    data: file.data.clone(),
                    mode: file.mode,
                },
            );
        }
        Ok(members)
    }
}

/// The members every image has: directories, `/dev/console`, `/etc`, the
/// agent as `/init`, busybox and its applet links.
fn base_members(busybox: &Path) -> Result<BTreeMap<String, Member>, InitramfsError> {
    let busybox_error = |reason: String| InitramfsError::Busybox {
        path: busybox.to_path_buf(),
        reason,
    };
    let mut members = BTreeMap::new();
    for dir in [
        "bin", "dev", "etc", "proc", "root", "sbin", "sys", "tmp", "usr", "usr/bin", "usr/sbin",
    ] {
        members.insert(dir.to_owned(), Member::Dir);
    }
    members.insert(
        "dev/console".to_owned(),
        Member::CharDevice { major: 5, minor: 1 },
    );
    // Workloads name users (`id`, `ls -l`, `cat /etc/passwd`).
    for (path, text) in [
        ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
        ("etc/group", "root:x:0:\n"),
    ] {
        members.insert(
            path.to_owned(),
            Member::File {
                data: text.as_bytes().to_vec(),
                mode: 0o644,
            },
        );
    }
    members.insert(
        "init".to_owned(),
        Member::File {
            data: crate::AGENT.to_vec(),
            mode: 0o755,
        },
    );
    let data = std::fs::read(busybox).map_err(|error| busybox_error(error.to_string()))?;
    members.insert("bin/busybox".to_owned(), Member::File { data, mode: 0o755 });
    let list = duct::cmd(busybox, ["--list-full"])
        .stdout_capture()
        .stderr_null()
        .read()
        .map_err(|error| busybox_error(format!("`busybox --list-full`: {error}")))?;
    for applet in list.lines().map(str::trim).filter(|line| !line.is_empty()) {
        if applet.contains("..") || applet.starts_with('/') || applet == "bin/busybox" {
            continue;
        }
        members.entry(applet.to_owned()).or_insert(Member::Symlink {
            target: "/bin/busybox".to_owned(),
        });
    }
    Ok(members)
}

/// The shared first part of every image, compressed.
struct BaseImage {
    /// Its file in the cache (the image of a job-less, extra-less build).
    path: PathBuf,
    /// The SHA256 of its archive, hex.
    digest: String,
    /// The gzip'd archive.
    compressed: Vec<u8>,
}

/// The base image for `busybox` in `dir`: built and compressed once per
/// process (and written to the cache once), then shared by every build.
fn base_image(dir: &Path, busybox: &Path) -> Result<Arc<BaseImage>, InitramfsError> {
    static BASES: Mutex<Vec<(PathBuf, PathBuf, Arc<BaseImage>)>> = Mutex::new(Vec::new());
    let mut bases = BASES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, _, base)) = bases
        .iter()
        .find(|(d, b, base)| d == dir && b == busybox && base.path.is_file())
    {
        return Ok(Arc::clone(base));
    }
    let members = base_members(busybox)?;
    let archive = write_newc(members.iter().map(|(path, member)| (path.as_str(), member)));
    let digest: String = Sha256::digest(&archive)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let path = dir.join(format!("{digest}.cpio.gz"));
    let write_error = |source| InitramfsError::Write {
        path: path.clone(),
        source,
    };
    let compressed = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(_) => {
            std::fs::create_dir_all(dir).map_err(write_error)?;
            let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
            encoder.write_all(&archive).map_err(write_error)?;
            let compressed = encoder.finish().map_err(write_error)?;
            tapmatrix_kernels::write_atomic(&path, &compressed).map_err(write_error)?;
            compressed
        }
    };
    let base = Arc::new(BaseImage {
        path,
        digest,
        compressed,
    });
    bases.retain(|(d, b, _)| !(d == dir && b == busybox));
    bases.push((dir.to_path_buf(), busybox.to_path_buf(), Arc::clone(&base)));
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapmatrix_wire::Harvest;

    #[test]
    fn images_are_reproducible_and_cached_by_content() {
        let cache = tempfile::tempdir().unwrap();
        let image = Initramfs {
            job: Some(Job::Harvest(Harvest::default())),
            extra: vec![ExtraFile {
                path: "/scripts/a.sh".into(),
                data: b"echo hi\n".to_vec(),
                mode: 0o755,
            }],
        };
        let first = image.build(cache.path()).unwrap();
        let bytes = std::fs::read(&first).unwrap();
        std::fs::remove_file(&first).unwrap();
        let second = image.build(cache.path()).unwrap();
        assert_eq!(first, second);
        assert_eq!(
            bytes,
            std::fs::read(&second).unwrap(),
            "same content, same bytes"
        );
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip");
        let other = Initramfs::default().build(cache.path()).unwrap();
        assert_ne!(other, first);
    }

    #[test]
    fn many_threads_build_one_image_at_once() {
        // Every kernel of a harvest shares one image: the first boots of a
        // fresh cache all build it at the same moment.
        let cache = tempfile::tempdir().unwrap();
        let image = Initramfs::with_job(Job::Harvest(Harvest::default()));
        let built: Vec<PathBuf> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..16)
                .map(|_| scope.spawn(|| image.build(cache.path())))
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().unwrap().unwrap())
                .collect()
        });
        assert!(built.iter().all(|path| *path == built[0]));
        // Whole, not torn: both archives (the base's, then the job's)
        // decompress, the job's ends with its trailer and names the job.
        let bytes = std::fs::read(&built[0]).unwrap();
        let mut decoder = flate2::read::MultiGzDecoder::new(bytes.as_slice());
        let mut archives = Vec::new();
        std::io::Read::read_to_end(&mut decoder, &mut archives).unwrap();
        let job = write_newc(
            image
                .own_members(Path::new("/bin/busybox"))
                .unwrap()
                .iter()
                .map(|(path, member)| (path.as_str(), member)),
        );
        assert!(archives.ends_with(&job), "the job's archive last, whole");
        let base = write_newc(
            base_members(Path::new("/bin/busybox"))
                .unwrap()
                .iter()
                .map(|(path, member)| (path.as_str(), member)),
        );
        assert!(
            archives.starts_with(&base),
            "the base's archive first, whole"
        );
        assert_eq!(archives.len(), base.len() + job.len());
        let left: Vec<_> = std::fs::read_dir(cache.path().join("initramfs"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(
            left.len(),
            2,
            "the base and the image, no temporary file left: {left:?}",
        );
    }

    #[test]
    fn members_hold_init_busybox_applets_job_and_extras() {
        let image = Initramfs {
            job: Some(Job::Harvest(Harvest::default())),
            extra: vec![ExtraFile {
                path: "/scripts/a.sh".into(),
                data: Vec::new(),
                mode: 0o755,
            }],
        };
        let members = image.members(Path::new("/bin/busybox")).unwrap();
        assert!(matches!(members["init"], Member::File { mode: 0o755, .. }));
        assert_eq!(
            members["bin/sh"],
            Member::Symlink {
                target: "/bin/busybox".into()
            }
        );
        assert!(matches!(members["job.json"], Member::File { .. }));
        assert!(matches!(members["etc/passwd"], Member::File { .. }));
        assert_eq!(members["scripts"], Member::Dir);
        assert!(members.contains_key("scripts/a.sh"));
    }

    #[test]
    fn rejects_relative_and_dotted_paths() {
        for path in ["relative", "/a/../b", "/"] {
            let image = Initramfs {
                job: None,
                extra: vec![ExtraFile {
                    path: path.into(),
                    data: Vec::new(),
                    mode: 0o644,
                }],
            };
            assert!(matches!(
                image.members(Path::new("/bin/busybox")),
                Err(InitramfsError::BadPath { .. })
            ));
        }
    }
}
