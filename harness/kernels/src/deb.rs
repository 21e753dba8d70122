//! Taking the kernel image and config out of a .deb: an `ar` archive whose
//! `data.tar.{xz,zst,gz}` holds `/boot/vmlinuz-REL` and `/boot/config-REL`
//! (up to 6.x) or `/usr/lib/modules/REL/vmlinuz[.unsigned]` and
//! `/usr/lib/modules/REL/config` (split packages from 7.0 on); and the
//! modules tree `[/usr]/lib/modules/REL/` (`kernel/**.ko[.xz|.zst]` and the
//! `modules.*` lists) into `modules/`.

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
    /// The modules directory (`modules/`) and how many `.ko` files it got.
    pub modules: Option<(PathBuf, usize)>,
}

/// The directory [`unpack`] writes the modules tree into.
pub const MODULES_DIR: &str = "modules";

/// Whether a path inside `lib/modules/RELEASE/` is part of the modules
/// tree tapmatrix keeps: the module files and the lists beside them.
fn is_module_file(rest: &str) -> bool {
    let safe = Path::new(rest)
        .components()
        .all(|part| matches!(part, std::path::Component::Normal(_)));
    let module = rest.starts_with("kernel/")
        && [".ko", ".ko.xz", ".ko.zst", ".ko.gz"]
            .iter()
            .any(|suffix| rest.ends_with(suffix));
    let list = matches!(
        rest,
        "modules.builtin" | "modules.builtin.modinfo" | "modules.order" | "modules.dep"
    );
    safe && (module || list)
}

/// Which part a path inside the data tarball is, the release it names and,
/// for a file of the modules tree, its path inside `lib/modules/RELEASE/`.
fn classify(path: &str) -> Option<(Part, &str, Option<&str>)> {
    let path = path.trim_start_matches("./").trim_start_matches('/');
    if let Some(release) = path.strip_prefix("boot/vmlinuz-") {
        return Some((Part::Vmlinuz, release, None));
    }
    if let Some(release) = path.strip_prefix("boot/config-") {
        return Some((Part::Config, release, None));
    }
    let rest = path
        .strip_prefix("usr/lib/modules/")
        .or_else(|| path.strip_prefix("lib/modules/"))?;
    let (release, file) = rest.split_once('/')?;
    match file {
        "vmlinuz" | "vmlinuz.unsigned" => Some((Part::Vmlinuz, release, None)),
        "config" => Some((Part::Config, release, None)),
        _ if is_module_file(file) => Some((Part::Modules, release, Some(file))),
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
        let Some((part, release, module_file)) = classify(&path) else {
            continue;
        };
        // The lists beside the modules (`modules.builtin`...) come with the
        // config from 7.0 on (in `linux-base-*`): taken with either.
        let list = module_file.is_some_and(|file| !file.starts_with("kernel/"));
        if !(wanted.contains(&part) || list && wanted.contains(&Part::Config)) {
            continue;
        }
        let target = match (part, module_file) {
            (Part::Modules, Some(file)) => {
                let dir = into.join(MODULES_DIR);
                let target = dir.join(file);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent).map_err(|error| Error::io(parent, error))?;
                }
                let (_, count) = unpacked.modules.get_or_insert((dir, 0));
                *count += usize::from(file.starts_with("kernel/"));
                target
            }
            _ => {
                let (name, slot) = match part {
                    Part::Config => ("config", &mut unpacked.config),
                    _ => ("vmlinuz", &mut unpacked.vmlinuz),
                };
                if slot.is_some() {
                    return Err(bad(deb, format!("holds more than one {name}")));
                }
                let target = into.join(name);
                *slot = Some(target.clone());
                target
            }
        };
        let mut out = File::create(&target).map_err(|error| Error::io(&target, error))?;
        io::copy(&mut entry, &mut out).map_err(|error| bad(deb, format!("{path}: {error}")))?;
        if module_file.is_none() {
            out.sync_all().map_err(|error| Error::io(&target, error))?;
        }
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
            Part::Modules => unpacked
                .modules
                .as_ref()
                .is_none_or(|(_, count)| *count == 0)
                .then_some("modules (lib/modules/RELEASE/kernel/**.ko)"),
        };
        if let Some(missing) = missing {
            return Err(bad(
                deb,
                format!("has no {missing} (looked in /boot and [/usr]/lib/modules/RELEASE)"),
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
            Some((Part::Vmlinuz, "5.10.0-32-amd64", None))
        );
        assert_eq!(
            classify("./boot/config-6.1.0-40-amd64"),
            Some((Part::Config, "6.1.0-40-amd64", None))
        );
        assert_eq!(
            classify("./usr/lib/modules/7.3.4+deb13-amd64/vmlinuz.unsigned"),
            Some((Part::Vmlinuz, "7.3.4+deb13-amd64", None))
        );
        assert_eq!(
            classify("./usr/lib/modules/7.3.4+deb13-amd64/config"),
            Some((Part::Config, "7.3.4+deb13-amd64", None))
        );
        assert_eq!(
            classify("./lib/modules/5.10.0-32-amd64/kernel/fs/ext4/ext4.ko"),
            Some((
                Part::Modules,
                "5.10.0-32-amd64",
                Some("kernel/fs/ext4/ext4.ko")
            ))
        );
        assert_eq!(
            classify("./usr/lib/modules/6.12.117+deb13-amd64/kernel/fs/xfs/xfs.ko.xz"),
            Some((
                Part::Modules,
                "6.12.117+deb13-amd64",
                Some("kernel/fs/xfs/xfs.ko.xz")
            ))
        );
        assert_eq!(
            classify("./usr/lib/modules/6.12.117+deb13-amd64/modules.builtin"),
            Some((
                Part::Modules,
                "6.12.117+deb13-amd64",
                Some("modules.builtin")
            ))
        );
        assert_eq!(
            classify("./lib/modules/6.1.0-40-amd64/kernel/../../../etc/x.ko"),
            None
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
        assert_eq!(unpacked.modules, None);
    }

    #[test]
    fn unpacks_the_modules_tree() {
        let dir = tempfile::tempdir().unwrap();
        let deb = fake_deb(
            dir.path(),
            &[
                ("./boot/vmlinuz-6.1.0-40-amd64", b"image"),
                (
                    "./lib/modules/6.1.0-40-amd64/kernel/fs/ext4/ext4.ko",
                    b"elf",
                ),
                (
                    "./lib/modules/6.1.0-40-amd64/modules.builtin",
                    b"kernel/x.ko\n",
                ),
                (
                    "./lib/modules/6.1.0-40-amd64/kernel/README",
                    b"not a module",
                ),
            ],
        );
        let out = dir.path().join("out");
        std::fs::create_dir(&out).unwrap();
        let unpacked = unpack(&deb, &[Part::Vmlinuz, Part::Modules], &out).unwrap();
        assert_eq!(unpacked.modules, Some((out.join(MODULES_DIR), 1)));
        let modules = out.join(MODULES_DIR);
        assert_eq!(
            std::fs::read(modules.join("kernel/fs/ext4/ext4.ko")).unwrap(),
            b"elf"
        );
        assert!(modules.join("modules.builtin").is_file());
        assert!(!modules.join("kernel/README").exists());
        // Asked for modules, a package without any is an error.
        let bare = fake_deb(dir.path(), &[("./boot/vmlinuz-6.1.0-40-amd64", b"image")]);
        let error = unpack(&bare, &[Part::Modules], &out).unwrap_err();
        assert!(error.to_string().contains("has no modules"), "{error}");
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
