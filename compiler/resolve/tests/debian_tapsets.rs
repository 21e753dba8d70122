//! Loading Debian's SystemTap 4.8 tapset library (package
//! `systemtap-common`, fetched with `apt-get download` into the cargo
//! target directory, as the syntax crate's `real_tapsets` test does) for
//! several kernels at once gives, for each kernel, the library that
//! loading it alone gives: sharing parses between kernels changes nothing.
//! Without apt-get the test is skipped, unless `CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

use tapmatrix_facts::KernelFacts;
use tapmatrix_resolve::{Loaded, Sources, kernel_profile};

/// Debian's tapset directory, fetched when not cached; `None`: skipped.
fn debian_tapsets() -> Option<PathBuf> {
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("systemtap-common");
    let root = cache.join("root");
    let dir = root.join("usr/share/systemtap/tapset");
    if dir.is_dir() {
        return Some(dir);
    }
    let in_ci = std::env::var_os("CI").is_some();
    if Command::new("apt-get").arg("--version").output().is_err() {
        assert!(!in_ci, "apt-get is needed to fetch systemtap-common in CI");
        println!("SKIP: apt-get not available to fetch Debian's systemtap-common");
        return None;
    }
    let download = cache.join("download");
    std::fs::create_dir_all(&download).unwrap();
    let status = Command::new("apt-get")
        .args(["download", "systemtap-common"])
        .current_dir(&download)
        .status()
        .expect("run apt-get download");
    if !status.success() {
        assert!(
            !in_ci,
            "apt-get download systemtap-common failed ({status})"
        );
        println!("SKIP: apt-get download systemtap-common failed ({status})");
        return None;
    }
    let deb = std::fs::read_dir(&download)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb after apt-get download");
    let unpack = cache.join("unpack");
    let _ = std::fs::remove_dir_all(&unpack);
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpack)
        .status()
        .expect("run dpkg-deb");
    assert!(status.success(), "dpkg-deb -x {} failed", deb.display());
    // Another test may have published it meanwhile: either tree will do.
    if std::fs::rename(&unpack, &root).is_err() {
        let _ = std::fs::remove_dir_all(&unpack);
    }
    dir.is_dir().then_some(dir)
}

/// What a loaded library says, as text: every alias with its location,
/// points and target expressions, and the diagnostics.
fn describe(loaded: &Loaded) -> Vec<String> {
    let mut lines: Vec<String> = loaded
        .library
        .aliases()
        .iter()
        .map(|alias| {
            let points: Vec<String> = alias.points.iter().map(ToString::to_string).collect();
            let targets: Vec<&str> = alias.targets.iter().map(|t| t.text.as_str()).collect();
            format!(
                "{} {} = {} {:?}",
                alias.location,
                alias.name,
                points.join(", "),
                targets
            )
        })
        .collect();
    lines.extend(loaded.diagnostics.iter().map(|d| d.rendered.clone()));
    lines
}

#[test]
fn shared_loading_equals_loading_each_kernel_alone() {
    let Some(debian) = debian_tapsets() else {
        return;
    };
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../facts/fixtures");
    let profiles: Vec<_> = ["5.10", "6.1", "6.12", "7.3"]
        .iter()
        .map(|id| {
            let dir = fixtures.join(format!("linux-{id}"));
            let facts = KernelFacts::from_raw(&dir, Some(&dir.join("config"))).unwrap();
            kernel_profile(&facts)
        })
        .collect();
    let sources = Sources {
        tapset_dirs: vec![debian],
        script: None,
        script_text: None,
    };
    let all = sources.load_all(profiles.clone()).unwrap();
    assert_eq!(all.len(), profiles.len());
    for (loaded, profile) in all.iter().zip(profiles) {
        let release = profile.kernel_release.clone();
        let alone = sources.load(profile).unwrap();
        let (shared, alone) = (describe(loaded), describe(&alone));
        assert!(shared.len() > 5000, "{release}: {} lines", shared.len());
        assert!(shared == alone, "{release}: the shared load differs");
    }
}
