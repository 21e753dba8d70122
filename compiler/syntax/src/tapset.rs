//! Which files of a tapset directory SystemTap reads, and in what order.
//!
//! SystemTap does not walk a tapset directory recursively. For each
//! directory it globs `*.stp` (and `*.stpm` for macros) in a fixed list of
//! subdirectories, most specific first: for the kernel runtime and release
//! `6.1.0` on `x86_64`,
//! `linux/6.1.0/x86_64`, `6.1.0/x86_64`, `linux/6.1.0`, `6.1.0`,
//! `linux/6.1/x86_64`, `6.1/x86_64`, `linux/6.1`, `6.1`, `linux/x86_64`,
//! `x86_64`, `linux`, and the directory itself. So other architectures'
//! directories and the `dyninst/` and `bpf/` runtimes are never read.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::profile::{Profile, Runtime};

/// The files of one tapset directory, in SystemTap's order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TapsetFiles {
    /// `.stp` files: tapset scripts.
    pub scripts: Vec<PathBuf>,
    /// `.stpm` files: library macros, visible to every file.
    pub macros: Vec<PathBuf>,
}

/// The subdirectories (relative, `""` for the directory itself) searched
/// for a profile, most specific first.
pub fn search_subdirs(profile: &Profile) -> Vec<String> {
    let mut versions: Vec<String> = Vec::new();
    if profile.runtime == Runtime::Kernel {
        let release = profile.kernel_release.as_str();
        versions.push(format!("/{release}"));
        let mut base = profile.kernel_version().to_string();
        if base != release {
            versions.push(format!("/{base}"));
        }
        if let Some(first_dot) = base.find('.') {
            while let Some(last_dot) = base.rfind('.').filter(|&d| d > first_dot) {
                base.truncate(last_dot);
                versions.push(format!("/{base}"));
            }
        }
    }
    versions.push(String::new());
    let with_arch: Vec<String> = versions
        .iter()
        .flat_map(|v| [format!("{v}/{}", profile.arch), v.clone()])
        .collect();
    let runtime = profile.runtime.tapset_dir();
    with_arch
        .iter()
        .flat_map(|v| [format!("/{runtime}{v}"), v.clone()])
        .map(|v| v.trim_start_matches('/').to_string())
        .collect()
}

/// Lists the files SystemTap would read from tapset directory `dir`.
pub fn tapset_files(dir: &Path, profile: &Profile) -> std::io::Result<TapsetFiles> {
    let mut out = TapsetFiles::default();
    let mut seen = HashSet::new();
    // The directory itself must exist; its subdirectories are optional.
    std::fs::read_dir(dir)?;
    for sub in search_subdirs(profile) {
        let path = if sub.is_empty() {
            dir.to_path_buf()
        } else {
            dir.join(&sub)
        };
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        for file in files {
            let key = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
            let list = match file.extension().and_then(|e| e.to_str()) {
                Some("stp") => &mut out.scripts,
                Some("stpm") => &mut out.macros,
                _ => continue,
            };
            if seen.insert(key) {
                list.push(file);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_runtime_search_order() {
        let profile = Profile::default();
        assert_eq!(
            search_subdirs(&profile),
            [
                "linux/6.1.0/x86_64",
                "6.1.0/x86_64",
                "linux/6.1.0",
                "6.1.0",
                "linux/6.1/x86_64",
                "6.1/x86_64",
                "linux/6.1",
                "6.1",
                "linux/x86_64",
                "x86_64",
                "linux",
                "",
            ]
        );
    }

    #[test]
    fn release_with_abi_adds_base_version() {
        let profile = Profile {
            kernel_release: "5.10.0-28-amd64".to_string(),
            runtime: Runtime::Kernel,
            ..Profile::default()
        };
        let dirs = search_subdirs(&profile);
        assert!(dirs.contains(&"5.10.0-28-amd64".to_string()));
        assert!(dirs.contains(&"linux/5.10.0".to_string()));
        assert!(dirs.contains(&"5.10".to_string()));
    }

    #[test]
    fn bpf_runtime_uses_bpf_dir_and_no_versions() {
        let profile = Profile {
            runtime: Runtime::Bpf,
            ..Profile::default()
        };
        assert_eq!(
            search_subdirs(&profile),
            ["bpf/x86_64", "x86_64", "bpf", ""]
        );
    }

    #[test]
    fn skips_other_arches_and_runtimes() {
        let dir = tempfile::tempdir().unwrap();
        for sub in [
            "",
            "x86_64",
            "arm64",
            "linux",
            "linux/x86_64",
            "linux/s390",
            "dyninst",
            "bpf",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
            let name = if sub.is_empty() {
                "top".to_string()
            } else {
                sub.replace('/', "_")
            };
            std::fs::write(dir.path().join(sub).join(format!("{name}.stp")), "").unwrap();
        }
        std::fs::write(dir.path().join("linux/m.stpm"), "").unwrap();
        let files = tapset_files(dir.path(), &Profile::default()).unwrap();
        let names: Vec<String> = files
            .scripts
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["linux_x86_64.stp", "x86_64.stp", "linux.stp", "top.stp"]
        );
        assert_eq!(files.macros.len(), 1);
    }
}
