//! Locks and fetches a real Debian kernel (7.3 from trixie-backports: the
//! split layout, two small packages) through the host's own apt sources into
//! a temporary cache, then exercises the faults: a corrupt and a truncated
//! .deb in the archive cache, a cache another run holds.

use std::path::Path;

use tapmatrix_kernels::{
    Cache, Error, Fetcher, HostApt, Matrix, Part, Progress, bzimage_release, lock_matrix,
};

/// A host whose apt sources cannot be read: any apt work fails, so a fetch
/// that succeeds with it did no network work.
fn no_apt_host(dir: &Path) -> HostApt {
    HostApt {
        etc_apt: dir.join("no-such-etc-apt"),
        os_release: dir.join("no-such-os-release"),
        archive: None,
    }
}

#[test]
fn lock_fetch_and_faults_on_a_real_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let matrix_path = dir.path().join("matrix.yaml");
    std::fs::write(
        &matrix_path,
        "kernels:\n  - id: \"7.3\"\n    debian: { suite: trixie-backports, series: \"7.3\" }\n",
    )
    .unwrap();
    let matrix = Matrix::load(&matrix_path).unwrap();
    let cache = Cache::open(&dir.path().join("cache")).unwrap();
    let guard = cache.lock().unwrap();

    // Lock: the newest 7.3 image, split into an unsigned binary and a base.
    let lock = lock_matrix(&matrix, &guard, &HostApt::default(), &Progress::hidden()).unwrap();
    lock.save(&matrix.lock_path()).unwrap();
    assert_eq!(lock.kernels.len(), 1);
    let locked = &lock.kernels[0];
    assert!(
        locked.image.starts_with("linux-image-7.3."),
        "{}",
        locked.image
    );
    let holds: Vec<&[Part]> = locked.packages.iter().map(|p| p.holds.as_slice()).collect();
    assert_eq!(holds, [&[Part::Vmlinuz][..], &[Part::Config][..]]);
    assert!(locked.packages[0].name.starts_with("linux-binary-"));
    assert!(locked.packages[1].name.starts_with("linux-base-"));

    // Cold fetch.
    let entries = lock.entries(&matrix).unwrap();
    let entry = &entries[0];
    let suites = matrix.suites();
    let mut fetcher = Fetcher::new(
        &guard,
        suites.clone(),
        HostApt::default(),
        Progress::hidden(),
    );
    let fetched = fetcher.fetch(entry).unwrap();
    assert!(fetched.release.starts_with("7.3."), "{}", fetched.release);
    let image = std::fs::read(&fetched.vmlinuz).unwrap();
    assert_eq!(
        bzimage_release(&image).as_deref(),
        Some(fetched.release.as_str())
    );
    let config = std::fs::read_to_string(fetched.config.as_ref().unwrap()).unwrap();
    assert!(
        config.contains("CONFIG_FTRACE=y"),
        "config lacks CONFIG_FTRACE=y"
    );
    assert_eq!(cache.fetched(&fetched.id), Some(fetched.clone()));

    // Warm fetch: no apt at all (the host sources it would need are gone).
    let mut offline = Fetcher::new(
        &guard,
        suites.clone(),
        no_apt_host(dir.path()),
        Progress::hidden(),
    );
    assert_eq!(offline.fetch(entry).unwrap(), fetched);

    // A corrupt .deb in the archive cache: a clear error, the bad file removed,
    // no half-written kernel; the next fetch downloads it again.
    let archives = cache.root().join("apt/archives");
    let binary = archives.join(locked.packages[0].deb_name());
    let mut bytes = std::fs::read(&binary).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&binary, &bytes).unwrap();
    std::fs::remove_dir_all(cache.kernel_dir(&fetched.id)).unwrap();
    let error = offline.fetch(entry).unwrap_err();
    let Error::ChecksumMismatch {
        package, expected, ..
    } = &error
    else {
        panic!("expected a checksum mismatch, got {error}");
    };
    assert_eq!(package, &locked.packages[0].name);
    assert_eq!(expected, &locked.packages[0].sha256);
    assert!(
        error.to_string().contains("tapmatrix kernels --matrix"),
        "{error}"
    );
    assert!(!binary.exists(), "the corrupt .deb is still there");
    assert!(cache.fetched(&fetched.id).is_none());
    assert!(!cache.kernel_dir(&fetched.id).exists());
    assert_eq!(fetcher.fetch(entry).unwrap(), fetched);

    // A truncated .deb: the same.
    let base = archives.join(locked.packages[1].deb_name());
    let length = std::fs::metadata(&base).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&base)
        .unwrap()
        .set_len(length / 3)
        .unwrap();
    std::fs::remove_dir_all(cache.kernel_dir(&fetched.id)).unwrap();
    let error = offline.fetch(entry).unwrap_err();
    assert!(matches!(error, Error::ChecksumMismatch { .. }), "{error}");
    assert!(!base.exists());
    assert_eq!(fetcher.fetch(entry).unwrap(), fetched);

    // A damaged unpacked kernel is unpacked again from the verified .deb, offline.
    std::fs::write(&fetched.vmlinuz, b"damaged").unwrap();
    assert_eq!(offline.fetch(entry).unwrap(), fetched);
    assert_eq!(std::fs::read(&fetched.vmlinuz).unwrap(), image);

    // Another run holding the cache alone: `try_lock` refuses at once,
    // naming the holder.
    let error = cache.try_lock().unwrap_err();
    assert!(matches!(error, Error::CacheBusy { .. }), "{error}");
    assert!(
        error
            .to_string()
            .contains(&format!("pid {}", std::process::id())),
        "{error}"
    );
    drop(guard);

    // Only finished things remain: no work-in-progress directories.
    let leftovers: Vec<_> = std::fs::read_dir(cache.root().join("tmp"))
        .map(|entries| entries.map(|entry| entry.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "leftovers in tmp/: {leftovers:?}");
}
