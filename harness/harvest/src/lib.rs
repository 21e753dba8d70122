//! The facts harvest of a kernel matrix: boot each fetched kernel once (in
//! parallel, bounded by `jobs`), parse what it exposed into
//! [`KernelFacts`], and store them in the cache as `facts/<id>/`.
//!
//! A kernel whose stored facts were harvested from the same image with the
//! current facts format is not booted again: every later step works offline.
//! The raw harvest and the console log of the last boot stay in
//! `boots/<id>/harvest/`. Beside the facts, `modules.json` says where the
//! kernel's modules tree is (or why there is none), for the module facts
//! read offline from the `.ko` files; it is written on every harvest, also
//! when the facts were current.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tapmatrix_facts::modules::MODULES_FILE;
use tapmatrix_facts::{FORMAT_VERSION, FactsError, KernelFacts, ModulesRecord};
use tapmatrix_kernels::{CacheGuard, FetchedKernel, KernelId, Origin};
use tapmatrix_vm::{HarvestError, VmOptions, boot_many, harvest_raw};

/// `facts/<id>/harvest.json`: where the stored facts came from.
const STAMP: &str = "harvest.json";

/// What a kernel's stored facts were harvested from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HarvestStamp {
    /// SHA256 of the booted `vmlinuz`.
    pub vmlinuz_sha256: String,
    /// The facts format they were written in ([`FORMAT_VERSION`]).
    pub facts_format: u32,
    /// The kernel's release, as the guest reported it.
    pub release: String,
}

/// How one kernel's facts came to be in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Harvested {
    /// They were already there, from the same image and facts format.
    Cached,
    /// The kernel was booted for them.
    Booted {
        /// Wall time of the boot.
        wall: Duration,
    },
}

/// Why one kernel's harvest failed.
#[derive(Debug, thiserror::Error)]
pub enum HarvestFailure {
    /// The boot or the agent failed (an infrastructure error).
    #[error("harvesting kernel `{id}`: {source}")]
    Boot {
        /// The kernel.
        id: KernelId,
        /// What failed.
        source: HarvestError,
    },
    /// What the kernel exposed could not be parsed into facts.
    #[error("parsing the facts of kernel `{id}` (raw harvest kept in {}): {source}", .raw_dir.display())]
    Facts {
        /// The kernel.
        id: KernelId,
        /// The raw harvest.
        raw_dir: PathBuf,
        /// What was wrong.
        source: FactsError,
    },
    /// The cache could not be written.
    #[error("storing the facts of kernel `{id}`: {source}")]
    Cache {
        /// The kernel.
        id: KernelId,
        /// What failed.
        source: Box<tapmatrix_kernels::Error>,
    },
}

/// One kernel's harvest: its id and how it went.
#[derive(Debug)]
pub struct KernelHarvest {
    /// The kernel.
    pub id: KernelId,
    /// Its release.
    pub release: String,
    /// Cached, booted, or why not.
    pub outcome: Result<Harvested, HarvestFailure>,
}

impl HarvestStamp {
    /// The stamp for facts harvested now from `kernel`, which reported `release`.
    fn new(kernel: &FetchedKernel, release: &str) -> HarvestStamp {
        HarvestStamp {
            vmlinuz_sha256: vmlinuz_sha256(kernel),
            facts_format: FORMAT_VERSION,
            release: release.to_owned(),
        }
    }
}

/// The recorded SHA256 of the kernel's `vmlinuz` (empty when not recorded,
/// which no stored stamp matches).
fn vmlinuz_sha256(kernel: &FetchedKernel) -> String {
    kernel
        .record
        .files
        .iter()
        .find(|file| kernel.vmlinuz.ends_with(&file.name))
        .map(|file| file.sha256.clone())
        .unwrap_or_default()
}

/// The stamp of the facts stored in `facts_dir`, if any.
fn stored_stamp(facts_dir: &Path) -> Option<HarvestStamp> {
    let text = std::fs::read_to_string(facts_dir.join(STAMP)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether the cache holds facts for `kernel` harvested from the same
/// image in the current facts format.
pub fn is_current(guard: &CacheGuard<'_>, kernel: &FetchedKernel) -> bool {
    let facts_dir = guard.cache().facts_dir(&kernel.id);
    let sha256 = vmlinuz_sha256(kernel);
    guard.cache().harvested(&kernel.id)
        && stored_stamp(&facts_dir).is_some_and(|stamp| {
            !sha256.is_empty()
                && stamp.vmlinuz_sha256 == sha256
                && stamp.facts_format == FORMAT_VERSION
        })
}

/// Harvests the facts of `kernels` into the cache: boots those without
/// current facts (all of them with `force`), at most `jobs` at a time, and
/// returns one result per kernel, in order. A failure of one kernel does not
/// stop the others.
pub fn harvest_kernels(
    guard: &CacheGuard<'_>,
    kernels: &[FetchedKernel],
    options: &VmOptions,
    jobs: usize,
    force: bool,
) -> Vec<KernelHarvest> {
    let cache = guard.cache();
    let to_boot: Vec<&FetchedKernel> = kernels
        .iter()
        .filter(|kernel| force || !is_current(guard, kernel))
        .collect();
    // Each worker parses and stores its kernel's facts as soon as its boot
    // ends, while the other workers' guests still run.
    let booted = boot_many(&to_boot, options, jobs, "harvest", |kernel, options| {
        let cache_error = |source| HarvestFailure::Cache {
            id: kernel.id.clone(),
            source: Box::new(source),
        };
        // Another run may be harvesting this kernel: wait for it, and use
        // what it stored unless asked to boot anyway.
        let _harvesting = guard.harvest_lock(&kernel.id).map_err(cache_error)?;
        if !force && is_current(guard, kernel) {
            return Ok(Harvested::Cached);
        }
        // This directory is the cache's own. The last harvest of this very
        // kernel (its facts are current, its manifest is there) stays:
        // the new one rewrites only the files that differ and removes
        // those no longer sent (`harvest_raw`). Anything else there (an
        // interrupted first harvest, another build of the kernel) goes.
        let raw_dir = cache.boots_dir(&kernel.id).join("harvest");
        let same_kernel = raw_dir.join("manifest.json").is_file() && is_current(guard, kernel);
        if raw_dir.exists() && !same_kernel {
            std::fs::remove_dir_all(&raw_dir).map_err(|source| {
                cache_error(tapmatrix_kernels::Error::Io {
                    path: raw_dir.clone(),
                    error: source,
                })
            })?;
        }
        let report = harvest_raw(&kernel.vmlinuz, &raw_dir, options).map_err(|source| {
            HarvestFailure::Boot {
                id: kernel.id.clone(),
                source,
            }
        })?;
        store(guard, kernel, &raw_dir, &report.release)?;
        Ok(Harvested::Booted { wall: report.wall })
    });
    let mut booted = to_boot
        .iter()
        .map(|kernel| &kernel.id)
        .zip(booted)
        .peekable();
    kernels
        .iter()
        .map(|kernel| {
            let outcome = booted
                .next_if(|(id, _)| **id == kernel.id)
                .map_or(Ok(Harvested::Cached), |(_, outcome)| outcome)
                .and_then(|harvested| {
                    record_modules(guard, kernel).map_err(|source| HarvestFailure::Cache {
                        id: kernel.id.clone(),
                        source,
                    })?;
                    Ok(harvested)
                });
            KernelHarvest {
                id: kernel.id.clone(),
                release: kernel.release.clone(),
                outcome,
            }
        })
        .collect()
}

/// What a kernel's facts should say about its modules: the tree fetched
/// with it, or why there is none.
pub fn modules_record(guard: &CacheGuard<'_>, kernel: &FetchedKernel) -> ModulesRecord {
    let cache = guard.cache();
    if let Some(modules) = &kernel.modules {
        // Relative to the facts directory where both are in the cache, so
        // that the cache can move.
        let facts_dir = cache.facts_dir(&kernel.id);
        let path = match (
            facts_dir.strip_prefix(cache.root()),
            modules.strip_prefix(cache.root()),
        ) {
            (Ok(facts), Ok(modules)) => facts
                .components()
                .map(|_| Path::new(".."))
                .collect::<PathBuf>()
                .join(modules),
            _ => modules.clone(),
        };
        return ModulesRecord::Tree { path };
    }
    let reason = match &kernel.record.origin {
        Origin::Debian(locked) if locked.modules.is_none() => locked
            .missing
            .iter()
            .find(|line| line.contains("the modules"))
            .map(|line| line.replace(" (the modules):", ":"))
            .unwrap_or_else(|| "the lock names no modules package".to_owned()),
        Origin::Debian(_) => format!(
            "the modules of kernel `{}` are not fetched: run `tapmatrix kernels fetch {}`",
            kernel.id, kernel.id
        ),
        Origin::Local(_) => "a local kernel entry has no modules tree".to_owned(),
    };
    ModulesRecord::Missing { reason }
}

/// Writes `facts/<id>/modules.json` ([`modules_record`]) where the
/// kernel has facts and it differs.
fn record_modules(
    guard: &CacheGuard<'_>,
    kernel: &FetchedKernel,
) -> Result<(), Box<tapmatrix_kernels::Error>> {
    let facts_dir = guard.cache().facts_dir(&kernel.id);
    if !guard.cache().harvested(&kernel.id) {
        return Ok(());
    }
    let path = facts_dir.join(MODULES_FILE);
    let json = serde_json::to_string_pretty(&modules_record(guard, kernel)).map_err(|error| {
        Box::new(tapmatrix_kernels::Error::Json {
            path: path.clone(),
            message: error.to_string(),
        })
    })?;
    if std::fs::read_to_string(&path).is_ok_and(|old| old == json) {
        return Ok(());
    }
    Ok(tapmatrix_kernels::atomic_write(&path, json.as_bytes())?)
}

/// Parses a raw harvest into facts and installs them, with their stamp, as
/// `facts/<id>/` (by rename: readers never see half of it).
fn store(
    guard: &CacheGuard<'_>,
    kernel: &FetchedKernel,
    raw_dir: &Path,
    release: &str,
) -> Result<(), HarvestFailure> {
    let id = kernel.id.clone();
    let cache_error = |source| HarvestFailure::Cache {
        id: id.clone(),
        source: Box::new(source),
    };
    let facts_error = |source| HarvestFailure::Facts {
        id: id.clone(),
        raw_dir: raw_dir.to_path_buf(),
        source,
    };
    let facts = KernelFacts::from_raw(raw_dir, kernel.config.as_deref()).map_err(facts_error)?;
    let stamp = HarvestStamp::new(kernel, release);
    let facts_dir = guard.cache().facts_dir(&kernel.id);
    if stored_stamp(&facts_dir).as_ref() == Some(&stamp) && facts.is_saved_in(&facts_dir) {
        // The same facts of the same image: nothing to rewrite.
        return Ok(());
    }
    let work = guard.work_dir().map_err(cache_error)?;
    facts.save(work.path()).map_err(facts_error)?;
    let stamp_path = work.path().join(STAMP);
    let json = serde_json::to_string_pretty(&stamp)
        .map_err(|error| std::io::Error::other(error.to_string()));
    json.and_then(|json| std::fs::write(&stamp_path, json))
        .map_err(|source| {
            cache_error(tapmatrix_kernels::Error::Io {
                path: stamp_path.clone(),
                error: source,
            })
        })?;
    guard.install_dir(work, &facts_dir).map_err(cache_error)
}
