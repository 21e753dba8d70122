//! SystemTap's own tapsets (Debian's `systemtap-common` package) parse with
//! zero errors for x86_64 / kernel 6.1.0, and every file round-trips through
//! the printer; SystemTap's example scripts (`systemtap-doc`) parse too.
//!
//! The packages are fetched with `apt-get download` (not installed) into the
//! cargo target directory and reused by later runs; none of their files are
//! part of this repository. Without apt-get the tests are skipped, unless the
//! `CI` environment variable is set, where that is a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::path::{Path, PathBuf};
use std::process::Command;

use tapmatrix_syntax::{FileKind, Profile, Session, print_file, tapset_files};

/// Where an unpacked package lives.
fn cache_dir(package: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(package)
}

/// The tapset directory, fetching the package when it is not cached yet.
/// `None`: skipped (no apt-get, not in CI).
fn tapset_dir() -> Option<PathBuf> {
    Some(unpacked("systemtap-common")?.join("usr/share/systemtap/tapset"))
}

/// The root of Debian package `package` unpacked, fetched when not cached.
fn unpacked(package: &str) -> Option<PathBuf> {
    // The tests run in parallel: one fetch at a time.
    static FETCH: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = FETCH
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let root = cache_dir(package).join("root");
    if root.is_dir() {
        return Some(root);
    }
    let in_ci = std::env::var_os("CI").is_some();
    let have_apt = Command::new("apt-get")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_apt {
        assert!(!in_ci, "apt-get is needed to fetch {package} in CI");
        println!("SKIP real_tapsets: apt-get not available to fetch Debian's {package}");
        return None;
    }
    let download = cache_dir(package).join("download");
    std::fs::create_dir_all(&download).unwrap();
    let status = Command::new("apt-get")
        .args(["download", package])
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
    let unpack = cache_dir(package).join("unpack");
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
    Some(root)
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

/// SystemTap's example scripts parse, in guru mode with the tapsets'
/// macros visible. Scripts that need command-line arguments are only
/// checked to fail for that reason; the one deliberately incomplete
/// template is rejected.
#[test]
fn systemtap_example_scripts_parse() {
    let (Some(tapsets), Some(doc)) = (tapset_dir(), unpacked("systemtap-doc")) else {
        return;
    };
    let profile = Profile {
        guru_mode: true,
        ..Profile::default()
    };
    let macros = tapset_files(&tapsets, &profile).unwrap().macros;
    let mut scripts = Vec::new();
    let mut stack = vec![doc];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "stp") {
                scripts.push(path);
            }
        }
    }
    scripts.sort();
    let mut session = Session::new(profile, &[]);
    for path in &macros {
        let id = session.load(path).unwrap();
        assert!(session.define_library_macros(id).is_empty());
    }
    let (mut clean, mut need_args, mut failures) = (0, 0, Vec::new());
    for path in &scripts {
        let id = session.load(path).unwrap();
        let p = session.parse(
            id,
            FileKind {
                privileged: false,
                user_file: true,
            },
        );
        if p.diagnostics.is_empty() {
            clean += 1;
        } else if p
            .diagnostics
            .iter()
            .any(|d| d.message.starts_with("command line argument out of range"))
        {
            need_args += 1;
        } else if !path.to_string_lossy().contains("template") {
            failures.extend(p.diagnostics.iter().map(|d| d.render(session.sources())));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join(""));
    assert!(clean > 150, "only {clean} example scripts parsed");
    println!(
        "{clean} example scripts parse, {need_args} need arguments, of {}",
        scripts.len()
    );
}
