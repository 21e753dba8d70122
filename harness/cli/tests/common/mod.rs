//! Shared by the CLI's integration tests: a scratch matrix and cache whose
//! harvested kernels carry facts parsed from the facts crate's fixtures
//! (cut from real harvests), as `tapmatrix kernels harvest` would leave them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A path in the repository.
pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// A scratch `matrix.yaml` and cache.
pub struct Scratch {
    /// Holds `matrix.yaml` and `cache/`.
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// A matrix of the Debian kernels `ids`, of which `harvested` have facts.
    pub fn new(ids: &[&str], harvested: &[&str]) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        let mut yaml = "kernels:\n".to_owned();
        for id in ids {
            let suite = match *id {
                "5.10" => "bullseye",
                "6.1" => "bookworm",
                "6.12" => "trixie",
                _ => "trixie-backports",
            };
            yaml +=
                &format!("  - id: \"{id}\"\n    debian: {{ suite: {suite}, series: \"{id}\" }}\n");
        }
        std::fs::write(dir.path().join("matrix.yaml"), yaml).unwrap();
        for id in harvested {
            let raw = repo(&format!("compiler/facts/fixtures/linux-{id}"));
            let facts =
                tapmatrix_facts::KernelFacts::from_raw(&raw, Some(&raw.join("config"))).unwrap();
            facts
                .save(&dir.path().join("cache/facts").join(id))
                .unwrap();
        }
        Scratch { dir }
    }

    /// Runs `tapmatrix FIRST --matrix M --cache-dir C REST...` from the repository root.
    pub fn run(&self, first: &str, rest: &[&str]) -> Output {
        let matrix = self.dir.path().join("matrix.yaml");
        let cache = self.dir.path().join("cache");
        Command::new(env!("CARGO_BIN_EXE_tapmatrix"))
            .current_dir(repo(""))
            .arg(first)
            .args(["--matrix", matrix.to_str().unwrap()])
            .args(["--cache-dir", cache.to_str().unwrap()])
            .args(rest)
            .output()
            .expect("tapmatrix runs")
    }
}
