//! Other Debian packages than kernels, through the same private apt state:
//! SystemTap's `systemtap-common` (its tapset library), for the benchmarks
//! and tests that read SystemTap's own tapsets as the newest suite of the
//! matrix ships them.

use std::path::PathBuf;

use crate::apt::{AptState, HostApt};
use crate::{CacheGuard, Error, deb};

/// Downloads the newest `name` any suite of the private apt state lists
/// and unpacks it under `<cache>/packages/<deb name>/` (reused when there);
/// returns that directory, the package's root.
pub fn fetch_package(guard: &CacheGuard<'_>, name: &str, host: &HostApt) -> Result<PathBuf, Error> {
    let apt = AptState::prepare(&guard.cache().apt_dir(), &[], host)?;
    if !apt.has_lists() {
        apt.update()?;
    }
    let work = guard.work_dir()?;
    let deb = apt.download_newest(name, work.path())?;
    let stem = deb.file_stem().map_or_else(
        || name.to_owned(),
        |stem| stem.to_string_lossy().into_owned(),
    );
    let target = guard.cache().root().join("packages").join(stem);
    if target.is_dir() {
        return Ok(target);
    }
    let unpacked = guard.work_dir()?;
    deb::unpack_all(&deb, unpacked.path())?;
    guard.install_dir(unpacked, &target)?;
    Ok(target)
}
