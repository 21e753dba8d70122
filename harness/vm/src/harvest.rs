//! The raw facts harvest: boot a kernel with the agent's harvest job and
//! write what it sends into a directory, in the layout the facts parser reads:
//!
//! `uname_release`, `proc_version`, `tracing/README`,
//! `tracing/available_filter_functions`, `tracing/available_events`,
//! `tracing/events/<system>/<event>/format`, `kprobes_blacklist`,
//! `kallsyms` (text symbols only), `btf_vmlinux`, and `manifest.json` (every
//! file with its size or the error reading it). `kallsyms` and
//! `btf_vmlinux` are read from the kernel image on the host where it can
//! be ([`crate::ImageFiles`]), else in the guest. A file that is absent is one
//! the kernel does not have. `console.log` is the boot's console.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tapmatrix_wire::{Harvest, Job, Record, RecordKind, bundle};

use crate::image_files::ImageFiles;
use crate::{
    BootError, BootSpec, Initramfs, InitramfsError, ResolvedAccel, VmOptions, boot_streaming,
};

/// The manifest's file name in a harvest directory.
const MANIFEST: &str = "manifest.json";

/// What a harvest wrote.
#[derive(Debug, Clone)]
pub struct HarvestReport {
    /// The harvest directory.
    pub out_dir: PathBuf,
    /// The kernel's release (`uname -r`).
    pub release: String,
    /// How many files were written.
    pub files: usize,
    /// Their total size in bytes.
    pub bytes: u64,
    /// How many files could not be read in the guest (see the manifest).
    pub errors: usize,
    /// Wall time of the boot.
    pub wall: Duration,
    /// The accelerator used.
    pub accel: ResolvedAccel,
}

/// `manifest.json`: what each harvested file is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// By path in the harvest directory.
    pub files: BTreeMap<String, ManifestEntry>,
}

/// One file of the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// Its size, when it was read.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub size: Option<u64>,
    /// Why it could not be read in the guest (the file is then absent).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// Why a harvest failed.
#[derive(Debug, thiserror::Error)]
pub enum HarvestError {
    /// The image could not be built.
    #[error(transparent)]
    Image(#[from] InitramfsError),
    /// The boot failed (timeout, panic, QEMU missing, early exit).
    #[error(transparent)]
    Boot(#[from] BootError),
    /// The agent ran but reported a failure.
    #[error("the agent failed in the guest: {message}")]
    Agent {
        /// The agent's message.
        message: String,
    },
    /// The output directory holds something that is not a harvest.
    #[error("{} is not empty and not a harvest directory (no manifest.json): choose another output directory", .path.display())]
    NotAHarvestDir {
        /// The directory.
        path: PathBuf,
    },
    /// The agent sent a file name that is not a relative path.
    #[error("the agent sent a file named {name:?}, which is not a plain relative path")]
    BadName {
        /// The name.
        name: String,
    },
    /// Writing the output failed.
    #[error("writing {}: {source}", .path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Boots `vmlinuz`, harvests its raw facts into `out_dir` (replacing an
/// earlier harvest there), and reports what was written.
pub fn harvest_raw(
    vmlinuz: &Path,
    out_dir: &Path,
    options: &VmOptions,
) -> Result<HarvestReport, HarvestError> {
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| HarvestError::Write { path, source }
    };
    let started = std::time::Instant::now();
    let previous = prepare_out_dir(out_dir)?;
    let kernel = crate::bootable_kernel(vmlinuz, &options.cache_dir);
    // What the host reads from the image the guest need not (an image it
    // cannot read is left to the guest, file by file).
    let from_image = ImageFiles::read(&kernel);
    let job = Harvest {
        kallsyms_from_image: from_image.kallsyms.is_some(),
        btf_from_image: from_image.btf.is_some(),
    };
    let image = Initramfs::with_job(Job::Harvest(job)).build(&options.cache_dir)?;
    let spec = BootSpec::of_image(kernel, &image, out_dir, options);
    tracing::debug!(elapsed = ?started.elapsed(), ?job, "harvest: image and kernel ready");
    // Files are written as the agent sends them, while the guest still runs,
    // by a writer thread spreading them over rayon's pool: on a busy disk
    // each small file costs a millisecond or more, 1500 of them add up.
    let mut manifest = Manifest::default();
    let mut bytes = 0;
    let (files_tx, to_write) = std::sync::mpsc::channel::<(PathBuf, Vec<u8>)>();
    for (name, payload) in [
        ("kallsyms", from_image.kallsyms),
        ("btf_vmlinux", from_image.btf),
    ] {
        let Some(payload) = payload else { continue };
        let size = payload.len() as u64;
        bytes += size;
        manifest.files.insert(
            name.to_owned(),
            ManifestEntry {
                size: Some(size),
                error: None,
            },
        );
        // The receiver is alive: the writer below drains it.
        let _ = files_tx.send((out_dir.join(name), payload));
    }
    let (outcome, written) = std::thread::scope(|scope| {
        let writer = scope.spawn(move || {
            to_write
                .into_iter()
                .par_bridge()
                .try_for_each(|(path, payload)| {
                    // A file the last harvest wrote alike is left as it is.
                    if std::fs::read(&path).is_ok_and(|old| old == payload) {
                        return Ok(());
                    }
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(write_error(parent))?;
                    }
                    std::fs::write(&path, payload).map_err(write_error(&path))
                })
        });
        let mut on_record = |record: Record| -> Result<(), String> {
            if record.kind == RecordKind::File && record.name == bundle::EVENT_FORMATS {
                // The event formats, one file each in the raw layout.
                let files = bundle::split(&record.payload).map_err(|error| error.to_string())?;
                for (name, data) in files {
                    let relative = plain_relative(&name).map_err(|error| error.to_string())?;
                    let size = data.len() as u64;
                    bytes += size;
                    files_tx
                        .send((out_dir.join(relative), data.to_vec()))
                        .map_err(|_| "the file writer stopped".to_owned())?;
                    manifest.files.insert(
                        name,
                        ManifestEntry {
                            size: Some(size),
                            error: None,
                        },
                    );
                }
                return Ok(());
            }
            let relative = plain_relative(&record.name).map_err(|error| error.to_string())?;
            let entry = match record.kind {
                RecordKind::File => {
                    let size = record.payload.len() as u64;
                    bytes += size;
                    files_tx
                        .send((out_dir.join(relative), record.payload))
                        .map_err(|_| "the file writer stopped".to_owned())?;
                    ManifestEntry {
                        size: Some(size),
                        error: None,
                    }
                }
                RecordKind::FileError => ManifestEntry {
                    size: None,
                    error: Some(String::from_utf8_lossy(&record.payload).into_owned()),
                },
                RecordKind::Line | RecordKind::Done => return Ok(()),
            };
            manifest.files.insert(record.name, entry);
            Ok(())
        };
        let outcome = boot_streaming(&spec, &mut on_record);
        drop(files_tx);
        let written = writer.join().unwrap_or_else(|_| {
            Err(HarvestError::Write {
                path: out_dir.to_path_buf(),
                source: std::io::Error::other("the file writer panicked"),
            })
        });
        (outcome, written)
    });
    let outcome = outcome
        .map_err(HarvestError::from)
        .and_then(|outcome| written.map(|()| outcome))
        .and_then(
            |outcome| match outcome.done.as_ref().filter(|done| !done.ok) {
                Some(done) => Err(HarvestError::Agent {
                    message: done.message.clone(),
                }),
                None => Ok(outcome),
            },
        );
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => {
            // The directory may hold files of both harvests now: its
            // manifest names them all, so that the next harvest knows what
            // to remove.
            let mut both = previous;
            both.files.extend(manifest.files);
            let _ = serde_json::to_vec_pretty(&both)
                .map(|json| std::fs::write(out_dir.join(MANIFEST), json));
            return Err(error);
        }
    };
    tracing::debug!(elapsed = ?started.elapsed(), "harvest: guest done, files written");
    let _ = std::fs::remove_file(out_dir.join("data.bin"));
    // Files of the last harvest this one did not send.
    for name in previous.files.keys() {
        let sent = manifest
            .files
            .get(name)
            .is_some_and(|entry| entry.size.is_some());
        if !sent && let Ok(relative) = plain_relative(name) {
            let path = out_dir.join(relative);
            match std::fs::remove_file(&path) {
                Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                    return Err(write_error(&path)(error));
                }
                _ => {}
            }
        }
    }
    let manifest_path = out_dir.join(MANIFEST);
    let json = serde_json::to_vec_pretty(&manifest).map_err(|error| HarvestError::Write {
        path: manifest_path.clone(),
        source: error.into(),
    })?;
    std::fs::write(&manifest_path, json).map_err(write_error(&manifest_path))?;
    let release = std::fs::read_to_string(out_dir.join("uname_release"))
        .map(|text| text.trim().to_owned())
        .unwrap_or_default();
    let files = manifest
        .files
        .values()
        .filter(|entry| entry.size.is_some())
        .count();
    Ok(HarvestReport {
        out_dir: out_dir.to_path_buf(),
        release,
        files,
        bytes,
        errors: manifest.files.len() - files,
        wall: outcome.wall,
        accel: outcome.accel,
    })
}

/// Makes `out_dir` an empty directory, removing an earlier harvest but nothing else.
fn prepare_out_dir(out_dir: &Path) -> Result<Manifest, HarvestError> {
    let write_error = |source| HarvestError::Write {
        path: out_dir.to_path_buf(),
        source,
    };
    let manifest_path = out_dir.join(MANIFEST);
    if manifest_path.is_file() {
        // The last harvest's files stay: those sent alike are not written
        // again, the others are replaced or removed. A manifest that does
        // not parse leaves nothing to trust: start afresh.
        let previous = std::fs::read(&manifest_path)
            .ok()
            .and_then(|json| serde_json::from_slice::<Manifest>(&json).ok());
        match previous {
            Some(previous) => return Ok(previous),
            None => std::fs::remove_dir_all(out_dir).map_err(write_error)?,
        }
    } else if std::fs::read_dir(out_dir).is_ok_and(|mut entries| entries.next().is_some()) {
        return Err(HarvestError::NotAHarvestDir {
            path: out_dir.to_path_buf(),
        });
    }
    std::fs::create_dir_all(out_dir).map_err(write_error)?;
    Ok(Manifest::default())
}

/// `name` as a relative path of plain components.
fn plain_relative(name: &str) -> Result<&Path, HarvestError> {
    let path = Path::new(name);
    if name.is_empty()
        || !path
            .components()
            .all(|part| matches!(part, Component::Normal(_)))
    {
        return Err(HarvestError::BadName {
            name: name.to_owned(),
        });
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_names_are_written() {
        assert!(plain_relative("tracing/events/sched/sched_switch/format").is_ok());
        for bad in ["", "/etc/passwd", "../x", "a/../../b", "./a"] {
            assert!(plain_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_last_harvest_is_kept_for_comparison_unless_its_manifest_is_bad() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kallsyms"), "t").unwrap();
        let mut manifest = Manifest::default();
        manifest.files.insert(
            "kallsyms".to_owned(),
            ManifestEntry {
                size: Some(1),
                error: None,
            },
        );
        std::fs::write(
            dir.path().join(MANIFEST),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        assert_eq!(prepare_out_dir(dir.path()).unwrap(), manifest);
        assert!(dir.path().join("kallsyms").exists() && dir.path().join(MANIFEST).exists());
        std::fs::write(dir.path().join(MANIFEST), "not json").unwrap();
        assert_eq!(prepare_out_dir(dir.path()).unwrap(), Manifest::default());
        assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
    }

    #[test]
    fn an_unrelated_directory_is_not_cleared() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("precious"), "x").unwrap();
        assert!(matches!(
            prepare_out_dir(dir.path()),
            Err(HarvestError::NotAHarvestDir { .. })
        ));
        assert!(dir.path().join("precious").exists());
    }
}
