//! Fetching from a Debian archive the user names, on a host whose apt
//! sources have none (an Ubuntu runner): a signed `file:` archive built
//! here with one fake kernel package, named in the matrix with its
//! keyring, locked and fetched through the private apt state with no
//! network. And the errors: no archive anywhere says what to set; apt's
//! failures are one sentence of ours with apt's lines as the detail.

// An integration test binary: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use tapmatrix_kernels::{
    Cache, Error, Fetcher, HostApt, MIRROR_ENV, Matrix, Progress, lock_matrix,
};

/// Runs a tool the test needs, failing with what to install when absent.
fn tool(program: &str, args: &[&str], dir: &Path) -> Vec<u8> {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| {
            panic!("this test needs `{program}` ({error}): install gpg and dpkg-dev")
        });
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// A signed archive under `root` with suite `fakesuite`, holding
/// `linux-image-6.1.0-99-amd64` and its `-unsigned` twin at 6.1.999-1;
/// returns its keyring.
fn build_archive(root: &Path, gnupg: &Path) -> PathBuf {
    let release = "6.1.0-99-amd64";
    let pool = root.join("pool/main");
    std::fs::create_dir_all(&pool).unwrap();
    for name in [
        format!("linux-image-{release}"),
        format!("linux-image-{release}-unsigned"),
    ] {
        let tree = root.join("build").join(&name);
        std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(tree.join("boot")).unwrap();
        std::fs::write(
            tree.join("DEBIAN/control"),
            format!(
                "Package: {name}\nVersion: 6.1.999-1\nArchitecture: amd64\nMaintainer: tapmatrix tests <tests@example.invalid>\nDescription: a fake kernel\n"
            ),
        )
        .unwrap();
        std::fs::write(
            tree.join(format!("boot/vmlinuz-{release}")),
            b"fake vmlinuz",
        )
        .unwrap();
        std::fs::write(
            tree.join(format!("boot/config-{release}")),
            b"CONFIG_FTRACE=y\n",
        )
        .unwrap();
        let module_dir = tree.join(format!("lib/modules/{release}/kernel/fs/ext4"));
        std::fs::create_dir_all(&module_dir).unwrap();
        std::fs::write(module_dir.join("ext4.ko"), b"fake module").unwrap();
        let deb = pool.join(format!("{name}_6.1.999-1_amd64.deb"));
        tool(
            "dpkg-deb",
            &[
                "--build",
                "--root-owner-group",
                tree.to_str().unwrap(),
                deb.to_str().unwrap(),
            ],
            root,
        );
    }
    let packages = tool("dpkg-scanpackages", &["--multiversion", "pool"], root);
    let index = root.join("dists/fakesuite/main/binary-amd64");
    std::fs::create_dir_all(&index).unwrap();
    std::fs::write(index.join("Packages"), &packages).unwrap();
    let sha: String = Sha256::digest(&packages)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let dists = root.join("dists/fakesuite");
    std::fs::write(
        dists.join("Release"),
        format!(
            "Origin: tapmatrix tests\nSuite: fakesuite\nCodename: fakesuite\nDate: Thu, 01 Jan 2026 00:00:00 UTC\nArchitectures: amd64\nComponents: main\nSHA256:\n {sha} {} main/binary-amd64/Packages\n",
            packages.len()
        ),
    )
    .unwrap();
    let home = gnupg.to_str().unwrap();
    let gpg = |args: &[&str]| {
        let mut all = vec![
            "--batch",
            "--homedir",
            home,
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ];
        all.extend(args);
        tool("gpg", &all, &dists)
    };
    gpg(&[
        "--quick-gen-key",
        "tapmatrix test archive <archive@example.invalid>",
        "ed25519",
        "sign",
        "never",
    ]);
    gpg(&["--clearsign", "--output", "InRelease", "Release"]);
    let keyring = root.join("keyring.gpg");
    std::fs::write(&keyring, gpg(&["--export"])).unwrap();
    keyring
}

/// A host like an Ubuntu runner: its apt sources list no Debian suite.
fn ubuntu_host(dir: &Path) -> HostApt {
    let etc_apt = dir.join("etc-apt");
    std::fs::create_dir_all(etc_apt.join("sources.list.d")).unwrap();
    std::fs::write(
        etc_apt.join("sources.list.d/ubuntu.sources"),
        "Types: deb\nURIs: http://archive.example.invalid/ubuntu\nSuites: noble noble-updates\nComponents: main\n",
    )
    .unwrap();
    let os_release = dir.join("os-release");
    std::fs::write(
        &os_release,
        "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\n",
    )
    .unwrap();
    HostApt {
        etc_apt,
        os_release,
        archive: None,
    }
}

/// A matrix in `dir/SUITE.yaml` of kernel 6.1 from `suite` of the
/// `file:` archive at `archive`, verified with `keyring`.
fn named(dir: &Path, archive: &Path, keyring: &Path, suite: &str) -> Matrix {
    let path = dir.join(format!("{suite}.yaml"));
    std::fs::write(
        &path,
        format!(
            "debian_archive: {{ uri: \"file:{}\", keyring: \"{}\" }}\nkernels:\n  - id: \"6.1\"\n    debian: {{ suite: {suite}, series: \"6.1\" }}\n",
            archive.display(),
            keyring.display()
        ),
    )
    .unwrap();
    Matrix::load(&path).unwrap()
}

/// Stops the agent gpg started for the test's home.
struct Agent(PathBuf);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--homedir", self.0.to_str().unwrap(), "--kill", "gpg-agent"])
            .output();
    }
}

#[test]
fn a_named_archive_locks_and_fetches_on_a_host_without_debian_sources() {
    let dir = tempfile::tempdir().unwrap();
    let gnupg = dir.path().join("gnupg");
    std::fs::create_dir_all(&gnupg).unwrap();
    std::fs::set_permissions(&gnupg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let _agent = Agent(gnupg.clone());
    let archive = dir.path().join("archive");
    let keyring = build_archive(&archive, &gnupg);
    let host = ubuntu_host(dir.path());
    let cache = Cache::open(&dir.path().join("cache")).unwrap();
    let guard = cache.lock().unwrap();

    // Nothing names an archive: the error says what to set.
    let plain = dir.path().join("plain.yaml");
    std::fs::write(
        &plain,
        "kernels:\n  - id: \"6.1\"\n    debian: { suite: fakesuite, series: \"6.1\" }\n",
    )
    .unwrap();
    let error = lock_matrix(
        &Matrix::load(&plain).unwrap(),
        &guard,
        &host,
        &Progress::hidden(),
    )
    .unwrap_err();
    assert!(matches!(error, Error::NoDebianMirror { .. }), "{error}");
    assert!(error.to_string().contains(MIRROR_ENV), "{error}");
    assert!(error.to_string().contains("debian_archive:"), "{error}");

    // The matrix names it: lock and fetch, offline.
    let matrix = named(dir.path(), &archive, &keyring, "fakesuite");
    let lock = lock_matrix(&matrix, &guard, &host, &Progress::hidden()).unwrap();
    assert_eq!(lock.kernels[0].version, "6.1.999-1");
    assert_eq!(
        lock.kernels[0].packages[0].name,
        "linux-image-6.1.0-99-amd64-unsigned"
    );
    lock.save(&matrix.lock_path()).unwrap();
    let entries = lock.entries(&matrix).unwrap();
    let mut fetcher = Fetcher::new(
        &guard,
        matrix.suites(),
        host.clone().with_matrix(&matrix),
        Progress::hidden(),
    );
    let fetched = fetcher.fetch(&entries[0]).unwrap();
    assert_eq!(fetched.release, "6.1.0-99-amd64");
    assert_eq!(std::fs::read(&fetched.vmlinuz).unwrap(), b"fake vmlinuz");
    let modules = fetched.modules.as_ref().expect("the modules tree");
    assert_eq!(
        std::fs::read(modules.join("kernel/fs/ext4/ext4.ko")).unwrap(),
        b"fake module"
    );

    // apt fails (a suite the archive lacks): one sentence of ours, apt's
    // own lines as the detail.
    let missing = named(dir.path(), &archive, &keyring, "nosuchsuite");
    let error = lock_matrix(&missing, &guard, &host, &Progress::hidden()).unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with(
            "could not read the Debian archive's package lists (`apt-get update` failed); apt said:\n  "
        ),
        "{text}"
    );
    assert!(text.contains("E: The repository"), "{text}");
    assert!(text.contains("nosuchsuite"), "{text}");
}
