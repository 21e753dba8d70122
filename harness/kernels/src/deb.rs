//! Taking the kernel image and config out of a .deb: an `ar` archive whose
//! `data.tar.{xz,zst,gz}` holds `/boot/vmlinuz-REL` and `/boot/config-REL`
//! (up to 6.x) or `/usr/lib/modules/REL/vmlinuz[.unsigned]` and
//! `/usr/lib/modules/REL/config` (split packages from 7.0 on).

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::Error;
use crate::lock::Part;

/// What was unpacked from one .deb.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// The kernel release named by the paths (`6.1.0-40-amd64`).
    pub release: Option<String>,
    /// Where the image was written.
    pub vmlinuz: Option<PathBuf>,
    /// Where the config was written.
    pub config: Option<PathBuf>,
}

/// Which part a path inside the data tarball is, and the release it names.
fn classify(path: &str) -> Option<(Part, &str)> {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    if let Some(release) = path.strip_prefix("boot/vmlinuz-") {
        return Some((Part::Vmlinuz, release));
    }
    if let Some(release) = path.strip_prefix("boot/config-") {
        return Some((Part::Config, release));
    }
    let rest = path
        .strip_prefix("usr/lib/modules/")
        .or_else(|| path.strip_prefix("lib/modules/"))?;
    let (release, file) = rest.split_once('/')?;
    match file {
        "vmlinuz" | "vmlinuz.unsigned" => Some((Part::Vmlinuz, release)),
        "config" => Some((Part::Config, release)),
        _ => None,
    }
}

fn bad(path: &Path, detail: impl Into<String>) -> Error {
    Error::BadDeb {
        path: path.to_owned(),
        detail: detail.into(),
    }
}

/// Unpacks `wanted` parts of the .deb at `deb` into `into` as `vmlinuz`
/// and `config`. A wanted part that the package lacks is an error.
pub fn unpack(deb: &Path, wanted: &[Part], into: &Path) -> Result<Unpacked, Error> {
    with_data_tar(deb, |reader| unpack_tar(deb, reader, wanted, into))
}

/// Unpacks every file of the .deb at `deb` under `into` (as `dpkg-deb -x`
/// does; paths that would leave `into` are refused by `tar`).
pub fn unpack_all(deb: &Path, into: &Path) -> Result<(), Error> {
    with_data_tar(deb, |reader| {
        tar::Archive::new(reader)
            .unpack(into)
            .map_err(|error| bad(deb, format!("data.tar: {error}")))
    })
}

/// Calls `f` with the decompressed `data.tar` of the .deb at `deb`.
fn with_data_tar<T>(
    deb: &Path,
    f: impl FnOnce(Box<dyn Read + '_>) -> Result<T, Error>,
) -> Result<T, Error> {
    let file = File::open(deb).map_err(|error| Error::io(deb, error))?;
    let mut archive = ar::Archive::new(file);
    while let Some(entry) = archive.next_entry() {
        let entry = entry.map_err(|error| bad(deb, format!("not an ar archive: {error}")))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        let Some(compression) = name.strip_prefix("data.tar") else {
            continue;
        };
        let reader: Box<dyn Read + '_> = match compression {
            "" => Box::new(entry),
            ".xz" => Box::new(liblzma::read::XzDecoder::new(entry)),
            ".zst" => Box::new(
                zstd::stream::read::Decoder::new(entry)
                    .map_err(|error| bad(deb, error.to_string()))?,
            ),
            ".gz" => Box::new(flate2::read::GzDecoder::new(entry)),
            other => {
                return Err(bad(
                    deb,
                    format!("data.tar{other}: compression not supported"),
                ));
            }
        };
        return f(reader);
    }
    Err(bad(deb, "no data.tar member"))
}

fn unpack_tar(
    deb: &Path,
    reader: impl Read,
    wanted: &[Part],
    into: &Path,
) -> Result<Unpacked, Error> {
    let mut tar = tar::Archive::new(reader);
    let mut unpacked = Unpacked::default();
    let entries = tar.entries().map_err(|error| bad(deb, error.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|error| bad(deb, format!("data.tar: {error}")))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry
            .path()
            .map_err(|error| bad(deb, error.to_string()))?
            .to_string_lossy()
            .into_owned();
        let Some((part, release)) = classify(&path) else {
            continue;
        };
        if !wanted.contains(&part) {
            continue;
        }
        let (name, slot) = match part {
            Part::Vmlinuz => ("vmlinuz", &mut unpacked.vmlinuz),
            Part::Config => ("config", &mut unpacked.config),
        };
        if slot.is_some() {
            return Err(bad(deb, format!("holds more than one {name}")));
        }
        let target = into.join(name);
        let mut out = File::create(&target).map_err(|error| Error::io(&target, error))?;
        io::copy(&mut entry, &mut out).map_err(|error| bad(deb, format!("{path}: {error}")))?;
        out.sync_all().map_err(|error| Error::io(&target, error))?;
        *slot = Some(target);
        match &unpacked.release {
            Some(known) if known != release => {
                return Err(bad(
                    deb,
                    format!("names two releases: {known} and {release}"),
                ));
            }
            _ => unpacked.release = Some(release.to_owned()),
        }
    }
    for part in wanted {
        let missing = match part {
            Part::Vmlinuz => unpacked.vmlinuz.is_none().then_some("vmlinuz"),
            Part::Config => unpacked.config.is_none().then_some("config"),
        };
        if let Some(missing) = missing {
            return Err(bad(
                deb,
                format!("has no {missing} (looked in /boot and /usr/lib/modules/RELEASE)"),
            ));
        }
    }
    Ok(unpacked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_both_layouts() {
        assert_eq!(
            classify("./boot/vmlinuz-5.10.0-32-amd64"),
            Some((Part::Vmlinuz, "5.10.0-32-amd64"))
        );
        assert_eq!(
            classify("./boot/config-6.1.0-40-amd64"),
            Some((Part::Config, "6.1.0-40-amd64"))
        );
        assert_eq!(
            classify("./usr/lib/modules/7.3.4+deb13-amd64/vmlinuz.unsigned"),
            Some((Part::Vmlinuz, "7.3.4+deb13-amd64"))
        );
        assert_eq!(
            classify("./usr/lib/modules/7.3.4+deb13-amd64/config"),
            Some((Part::Config, "7.3.4+deb13-amd64"))
        );
        assert_eq!(
            classify("./usr/lib/modules/7.3.4+deb13-amd64/System.map"),
            None
        );
        assert_eq!(classify("./boot/System.map-6.1.0-40-amd64"), None);
    }

    /// Builds a .deb (ar with a gzipped data.tar) holding the given files.
    fn fake_deb(dir: &Path, files: &[(&str, &[u8])]) -> PathBuf {
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::fast(),
        ));
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            tar.append_data(&mut header, path, *data).unwrap();
        }
        let data = tar.into_inner().unwrap().finish().unwrap();
        let path = dir.join("test.deb");
        let mut builder = ar::Builder::new(File::create(&path).unwrap());
        builder
            .append(
                &ar::Header::new(b"debian-binary".to_vec(), 4),
                &b"2.0\n"[..],
            )
            .unwrap();
        builder
            .append(
                &ar::Header::new(b"data.tar.gz".to_vec(), data.len() as u64),
                &data[..],
            )
            .unwrap();
        path
    }

    #[test]
    fn unpacks_what_is_wanted() {
        let dir = tempfile::tempdir().unwrap();
        let deb = fake_deb(
            dir.path(),
            &[
                ("./boot/vmlinuz-6.1.0-40-amd64", b"image"),
                ("./boot/config-6.1.0-40-amd64", b"CONFIG_X=y\n"),
            ],
        );
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let unpacked = unpack(&deb, &[Part::Vmlinuz, Part::Config], &out).unwrap();
        assert_eq!(unpacked.release.as_deref(), Some("6.1.0-40-amd64"));
        assert_eq!(std::fs::read(out.join("vmlinuz")).unwrap(), b"image");
        assert_eq!(std::fs::read(out.join("config")).unwrap(), b"CONFIG_X=y\n");
    }

    #[test]
    fn a_missing_part_or_a_non_deb_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let deb = fake_deb(dir.path(), &[("./boot/config-6.1.0-40-amd64", b"x")]);
        let error = unpack(&deb, &[Part::Vmlinuz], dir.path()).unwrap_err();
        assert!(error.to_string().contains("has no vmlinuz"), "{error}");
        let junk = dir.path().join("junk.deb");
        std::fs::write(&junk, b"not an archive at all").unwrap();
        let error = unpack(&junk, &[Part::Vmlinuz], dir.path()).unwrap_err();
        assert!(error.to_string().contains("junk.deb"), "{error}");
    }
}
