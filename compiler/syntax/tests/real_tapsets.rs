//! SystemTap's own tapsets (Debian's `systemtap-common` package) parse with
//! zero errors for x86_64 / kernel 6.1.0, and every file round-trips through
//! the printer.
//!
//! The package is fetched with `apt-get download` (not installed) into the
//! cargo target directory and reused by later runs; none of its files are
//! part of this repository. Without apt-get the test is skipped, unless the
//! `CI` environment variable is set, where that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

use tapmatrix_syntax::{FileKind, Profile, Session, print_file, tapset_files};

/// Where the unpacked package lives.
fn cache_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("systemtap-common")
}

/// The tapset directory, fetching the package when it is not cached yet.
/// `None`: skipped (no apt-get, not in CI).
fn tapset_dir() -> Option<PathBuf> {
    let root = cache_dir().join("root");
    let tapsets = root.join("usr/share/systemtap/tapset");
    if tapsets.is_dir() {
        return Some(tapsets);
    }
    let in_ci = std::env::var_os("CI").is_some();
    let have_apt = Command::new("apt-get")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_apt {
        assert!(!in_ci, "apt-get is needed to fetch systemtap-common in CI");
        println!("SKIP real_tapsets: apt-get not available to fetch Debian's systemtap-common");
        return None;
    }
    let download = cache_dir().join("download");
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
        println!("SKIP real_tapsets: apt-get download systemtap-common failed ({status})");
        return None;
    }
    let deb = std::fs::read_dir(&download)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb after apt-get download");
    let unpack = cache_dir().join("unpack");
    let _ = std::fs::remove_dir_all(&unpack);
    let status = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&unpack)
        .status()
        .expect("run dpkg-deb");
    assert!(status.success(), "dpkg-deb -x {} failed", deb.display());
    // Publish atomically so an interrupted run never leaves half a tree.
    std::fs::rename(&unpack, &root).unwrap();
    Some(tapsets)
}

#[test]
fn debian_systemtap_tapsets_parse_without_errors() {
    let Some(dir) = tapset_dir() else {
        return;
    };
    let profile = Profile {
        arch: "x86_64".to_string(),
        kernel_release: "6.1.0".to_string(),
        ..Profile::default()
    };
    let files = tapset_files(&dir, &profile).unwrap();
    let mut session = Session::new(profile, &[]);
    let mut rendered = Vec::new();
    for path in &files.macros {
        let id = session.load(path).unwrap();
        rendered.extend(
            session
                .define_library_macros(id)
                .iter()
                .map(|d| d.render(session.sources())),
        );
    }
    let mut parsed = Vec::new();
    for path in &files.scripts {
        let id = session.load(path).unwrap();
        let p = session.parse(
            id,
            FileKind {
                privileged: true,
                user_file: false,
            },
        );
        rendered.extend(p.diagnostics.iter().map(|d| d.render(session.sources())));
        parsed.push((path, p.file));
    }
    assert!(
        rendered.is_empty(),
        "{} errors:\n{}",
        rendered.len(),
        rendered.join("")
    );
    assert!(
        files.scripts.len() > 400,
        "only {} tapset files found",
        files.scripts.len()
    );
    assert!(
        files.macros.len() > 5,
        "only {} macro files found",
        files.macros.len()
    );
    // No other architecture's or runtime's directory was read.
    for path in &files.scripts {
        let rel = path
            .strip_prefix(&dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            !["arm64/", "s390/", "dyninst/", "bpf/", "linux/s390/"]
                .iter()
                .any(|skip| rel.starts_with(skip)),
            "{rel} should not be read for x86_64 / kernel runtime"
        );
    }
    println!(
        "parsed {} tapset files and {} macro files with zero errors",
        files.scripts.len(),
        files.macros.len()
    );

    // Round trip: print, parse the print, compare.
    for (path, file) in &parsed {
        let printed = print_file(file);
        let mut again = Session::new(Profile::default(), &[]);
        let id = again.add_source(format!("{} (printed)", path.display()), printed.as_str());
        let p = again.parse(
            id,
            FileKind {
                privileged: true,
                user_file: false,
            },
        );
        let errors: Vec<String> = p
            .diagnostics
            .iter()
            .map(|d| d.render(again.sources()))
            .collect();
        assert!(errors.is_empty(), "{}", errors.join(""));
        assert!(p.file == *file, "{} does not round-trip", path.display());
    }
}
