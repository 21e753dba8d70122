//! Choosing exact packages for a Debian matrix entry from a suite's
//! `Packages` index.
//!
//! The rule: the newest `linux-image-ABI-FLAVOUR` whose ABI starts with the
//! series. Its dependencies say the layout: from 7.0 on it is a small
//! package depending on `linux-binary-*` (the vmlinuz) and `linux-base-*`
//! (config); before, it holds `/boot/vmlinuz-*` and `/boot/config-*` itself.
//! Where an `-unsigned` twin of the vmlinuz package exists at the same
//! version (`linux-image-*-unsigned`, `linux-binary-unsigned-*`), it is
//! taken instead: same kernel, no Secure Boot signature, as measured to
//! boot in QEMU.

use std::collections::HashMap;

use debversion::Version;

use crate::Error;
use crate::deb822::Paragraph;
use crate::lock::{LockedKernel, LockedPackage, Part};
use crate::matrix::{DebianSpec, KernelId};

/// The fields of one `Packages` paragraph that resolution needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageRecord {
    /// `Package`.
    pub name: String,
    /// `Version`.
    pub version: String,
    /// `Depends` (empty when absent).
    pub depends: String,
    /// `Filename`.
    pub filename: String,
    /// `Size`.
    pub size: u64,
    /// `SHA256`.
    pub sha256: String,
}

impl PackageRecord {
    /// Takes the record out of a paragraph; `None` when a needed field is
    /// missing or malformed.
    pub fn from_paragraph(paragraph: &Paragraph) -> Option<PackageRecord> {
        Some(PackageRecord {
            name: paragraph.get("Package")?.to_owned(),
            version: paragraph.get("Version")?.to_owned(),
            depends: paragraph.get("Depends").unwrap_or("").to_owned(),
            filename: paragraph.get("Filename")?.to_owned(),
            size: paragraph.get("Size")?.parse().ok()?,
            sha256: paragraph.get("SHA256")?.to_ascii_lowercase(),
        })
    }
}

/// One suite's packages by name.
#[derive(Debug, Default)]
pub struct SuiteIndex {
    suite: String,
    packages: HashMap<String, Vec<PackageRecord>>,
}

impl SuiteIndex {
    /// An empty index for a suite.
    pub fn new(suite: &str) -> SuiteIndex {
        SuiteIndex {
            suite: suite.to_owned(),
            packages: HashMap::new(),
        }
    }

    /// Adds a record.
    pub fn insert(&mut self, record: PackageRecord) {
        self.packages
            .entry(record.name.clone())
            .or_default()
            .push(record);
    }

    /// The number of distinct package names.
    #[allow(clippy::len_without_is_empty)] // only counted for messages
    pub fn len(&self) -> usize {
        self.packages.len()
    }

    fn exact(&self, name: &str, version: &str) -> Option<&PackageRecord> {
        self.packages
            .get(name)?
            .iter()
            .find(|record| record.version == version)
    }
}

/// Whether `name` is `linux-image-ABI-FLAVOUR` with an ABI of this series
/// (`5.10.0-32`, `6.12.117+deb13`, `6.1.0-0.deb11.13`): every `-`-separated
/// part of the ABI after the first starts with a digit, so `-cloud`/`-rt`
/// flavours and `-dbg`/`-unsigned` packages do not match.
fn is_series_image(name: &str, series: &str, flavour: &str) -> bool {
    let Some(abi) = name
        .strip_prefix("linux-image-")
        .and_then(|rest| rest.strip_suffix(flavour))
        .and_then(|rest| rest.strip_suffix('-'))
    else {
        return false;
    };
    let Some(after) = abi
        .strip_prefix(series)
        .and_then(|rest| rest.strip_prefix('.'))
    else {
        return false;
    };
    let starts_with_digit = |part: &str| part.starts_with(|c: char| c.is_ascii_digit());
    starts_with_digit(after) && abi.split('-').skip(1).all(starts_with_digit)
}

/// Package names in a `Depends` field (first alternative of each, no
/// version or architecture qualifier).
fn dependency_names(depends: &str) -> Vec<&str> {
    depends
        .split(',')
        .filter_map(|clause| {
            let first = clause.split('|').next()?.trim();
            let name = first.split([' ', '(', ':']).next()?.trim();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

fn newest<'a>(records: impl Iterator<Item = &'a PackageRecord>) -> Option<&'a PackageRecord> {
    records
        .filter_map(|record| Some((record.version.parse::<Version>().ok()?, record)))
        .max_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, record)| record)
}

/// Resolves one Debian entry against its suite's index.
pub fn resolve(
    id: &KernelId,
    spec: &DebianSpec,
    index: &SuiteIndex,
) -> Result<LockedKernel, Error> {
    let no_package = |detail: String| Error::Resolve {
        id: id.clone(),
        suite: spec.suite.clone(),
        detail,
    };
    let candidates = index
        .packages
        .iter()
        .filter(|(name, _)| is_series_image(name, &spec.series, &spec.flavour))
        .flat_map(|(_, records)| records);
    let image = newest(candidates).ok_or_else(|| {
        no_package(format!(
            "no linux-image-{}.*-{} package in suite `{}` ({} packages indexed)",
            spec.series,
            spec.flavour,
            index.suite,
            index.len()
        ))
    })?;
    let version = image.version.as_str();
    let pinned = |name: &str| -> Result<&PackageRecord, Error> {
        index.exact(name, version).ok_or_else(|| {
            no_package(format!(
                "{} {version} depends on {name} {version}, which the suite does not have",
                image.name
            ))
        })
    };
    let prefer_unsigned = |signed: &str, unsigned: String| -> Result<&PackageRecord, Error> {
        match index.exact(&unsigned, version) {
            Some(record) => Ok(record),
            None => pinned(signed),
        }
    };
    let depends = dependency_names(&image.depends);
    let binary = depends
        .iter()
        .find(|name| name.starts_with("linux-binary-"));
    let base = depends.iter().find(|name| name.starts_with("linux-base-"));
    let modules_dependency = depends
        .iter()
        .find(|name| name.starts_with("linux-modules-"));
    let vmlinuz = match binary {
        Some(binary) => {
            let unsigned = binary.replacen("linux-binary-", "linux-binary-unsigned-", 1);
            prefer_unsigned(binary, unsigned)?
        }
        None => prefer_unsigned(&image.name, format!("{}-unsigned", image.name))?,
    };
    let locked = |record: &PackageRecord, holds: Vec<Part>| LockedPackage {
        name: record.name.clone(),
        version: record.version.clone(),
        filename: record.filename.clone(),
        size: record.size,
        sha256: record.sha256.clone(),
        holds,
    };
    let mut missing = Vec::new();
    let modules = match (binary, modules_dependency) {
        // Up to 6.x the image package holds /lib/modules/RELEASE itself.
        (None, _) => Some(Box::new(locked(vmlinuz, vec![Part::Modules]))),
        (Some(_), Some(name)) => match index.exact(name, version) {
            Some(record) => Some(Box::new(locked(record, vec![Part::Modules]))),
            // Seen in trixie-backports for 7.0 and 7.1, like linux-base.
            None => {
                missing.push(format!(
                    "{name} {version} (the modules): not in suite {}",
                    index.suite
                ));
                None
            }
        },
        (Some(_), None) => {
            missing.push(format!(
                "the modules: {} {version} depends on no linux-modules-* package",
                image.name
            ));
            None
        }
    };
    let packages = match base {
        Some(base) => match index.exact(base, version) {
            Some(record) => vec![
                locked(vmlinuz, vec![Part::Vmlinuz]),
                locked(record, vec![Part::Config]),
            ],
            // Seen in trixie-backports for 7.0 and 7.1: the suite kept the
            // signed linux-binary-* but no longer has the linux-base-* it
            // depends on. The kernel still boots; it just has no config.
            None => {
                missing.push(format!(
                    "{base} {version} (the config): not in suite {}",
                    index.suite
                ));
                vec![locked(vmlinuz, vec![Part::Vmlinuz])]
            }
        },
        None => vec![locked(vmlinuz, vec![Part::Vmlinuz, Part::Config])],
    };
    Ok(LockedKernel {
        id: id.clone(),
        debian: spec.clone(),
        image: image.name.clone(),
        version: version.to_owned(),
        packages,
        modules,
        missing,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, version: &str, depends: &str) -> PackageRecord {
        PackageRecord {
            name: name.into(),
            version: version.into(),
            depends: depends.into(),
            filename: format!("pool/main/l/linux/{name}_{version}_amd64.deb"),
            size: 1,
            sha256: "ab".repeat(32),
        }
    }

    fn spec(suite: &str, series: &str) -> DebianSpec {
        DebianSpec {
            suite: suite.into(),
            series: series.into(),
            flavour: "amd64".into(),
        }
    }

    fn id(text: &str) -> KernelId {
        KernelId::try_from(text.to_owned()).unwrap()
    }

    #[test]
    fn series_image_names() {
        assert!(is_series_image(
            "linux-image-5.10.0-32-amd64",
            "5.10",
            "amd64"
        ));
        assert!(is_series_image(
            "linux-image-6.12.117+deb13-amd64",
            "6.12",
            "amd64"
        ));
        assert!(is_series_image(
            "linux-image-6.1.0-0.deb11.13-amd64",
            "6.1",
            "amd64"
        ));
        assert!(!is_series_image(
            "linux-image-6.12.117+deb13-amd64",
            "6.1",
            "amd64"
        ));
        assert!(!is_series_image(
            "linux-image-5.10.0-32-amd64-unsigned",
            "5.10",
            "amd64"
        ));
        assert!(!is_series_image(
            "linux-image-5.10.0-32-cloud-amd64",
            "5.10",
            "amd64"
        ));
        assert!(!is_series_image(
            "linux-image-7.3.4+deb13-amd64-dbg",
            "7.3",
            "amd64"
        ));
        assert!(!is_series_image("linux-image-amd64", "7.3", "amd64"));
        assert!(is_series_image(
            "linux-image-5.10.0-32-cloud-amd64",
            "5.10",
            "cloud-amd64"
        ));
    }

    #[test]
    fn version_ordering_is_debians() {
        let ascending = [
            "7.0.4-1~bpo13+1",
            "7.0.4-1",
            "7.0.13-1~bpo13+1",
            "7.0.13-1",
            "1:0.1",
        ];
        let versions: Vec<Version> = ascending.iter().map(|text| text.parse().unwrap()).collect();
        for pair in versions.windows(2) {
            assert!(pair[0] < pair[1], "{} < {}", pair[0], pair[1]);
        }
        let records: Vec<PackageRecord> = ascending.iter().map(|v| record("p", v, "")).collect();
        assert_eq!(newest(records.iter()).unwrap().version, "1:0.1");
    }

    #[test]
    fn old_layout_takes_the_unsigned_image() {
        let mut index = SuiteIndex::new("bullseye");
        for abi in ["30", "32"] {
            let version = if abi == "30" {
                "5.10.218-1"
            } else {
                "5.10.223-1"
            };
            index.insert(record(
                &format!("linux-image-5.10.0-{abi}-amd64"),
                version,
                "kmod",
            ));
            index.insert(record(
                &format!("linux-image-5.10.0-{abi}-amd64-unsigned"),
                version,
                "kmod",
            ));
            index.insert(record(
                &format!("linux-image-5.10.0-{abi}-cloud-amd64"),
                "5.10.999-1",
                "kmod",
            ));
        }
        let locked = resolve(&id("5.10"), &spec("bullseye", "5.10"), &index).unwrap();
        assert_eq!(locked.image, "linux-image-5.10.0-32-amd64");
        assert_eq!(locked.version, "5.10.223-1");
        assert_eq!(locked.packages.len(), 1);
        assert_eq!(
            locked.packages[0].name,
            "linux-image-5.10.0-32-amd64-unsigned"
        );
        assert_eq!(locked.packages[0].holds, [Part::Vmlinuz, Part::Config]);
        // The same package holds the modules.
        let modules = locked.modules.as_ref().unwrap();
        assert_eq!(modules.name, "linux-image-5.10.0-32-amd64-unsigned");
        assert_eq!(modules.holds, [Part::Modules]);
        assert!(locked.missing.is_empty());
    }

    #[test]
    fn split_layout_follows_depends() {
        let mut index = SuiteIndex::new("trixie-backports");
        let v = "7.0.13-1~bpo13+1";
        index.insert(record(
            "linux-image-7.0.13+deb13-amd64",
            v,
            &format!("dracut | initramfs-tools (>= 0.120+deb8u2), linux-base-7.0.13+deb13-amd64 (= {v}), linux-binary-7.0.13+deb13-amd64 (= {v}), linux-modules-7.0.13+deb13-amd64 (= {v})"),
        ));
        index.insert(record(
            "linux-image-7.0.9+deb13-amd64",
            "7.0.9-1~bpo13+1",
            "",
        ));
        index.insert(record("linux-binary-7.0.13+deb13-amd64", v, ""));
        index.insert(record("linux-base-7.0.13+deb13-amd64", v, ""));
        let locked = resolve(&id("7.0"), &spec("trixie-backports", "7.0"), &index).unwrap();
        let names: Vec<&str> = locked.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "linux-binary-7.0.13+deb13-amd64",
                "linux-base-7.0.13+deb13-amd64"
            ]
        );
        assert_eq!(locked.packages[1].holds, [Part::Config]);
        // No linux-modules-* in the suite (as for 7.0 and 7.1 in
        // trixie-backports): no modules, and said so.
        assert_eq!(locked.modules, None);
        assert_eq!(
            locked.missing,
            [format!(
                "linux-modules-7.0.13+deb13-amd64 {v} (the modules): not in suite trixie-backports"
            )]
        );
        index.insert(record("linux-modules-7.0.13+deb13-amd64", v, ""));
        let locked = resolve(&id("7.0"), &spec("trixie-backports", "7.0"), &index).unwrap();
        assert_eq!(
            locked
                .modules
                .as_ref()
                .map(|p| (p.name.as_str(), p.holds.clone())),
            Some(("linux-modules-7.0.13+deb13-amd64", vec![Part::Modules]))
        );
        assert!(locked.missing.is_empty(), "{:?}", locked.missing);

        index.insert(record("linux-binary-unsigned-7.0.13+deb13-amd64", v, ""));
        let locked = resolve(&id("7.0"), &spec("trixie-backports", "7.0"), &index).unwrap();
        assert_eq!(
            locked.packages[0].name,
            "linux-binary-unsigned-7.0.13+deb13-amd64"
        );
    }

    #[test]
    fn missing_series_or_dependency_is_a_clear_error() {
        let index = SuiteIndex::new("sid");
        let error = resolve(&id("7.9"), &spec("sid", "7.9"), &index).unwrap_err();
        assert!(
            error.to_string().contains("no linux-image-7.9.*-amd64"),
            "{error}"
        );

        let mut index = SuiteIndex::new("sid");
        index.insert(record(
            "linux-image-7.2.13+deb14-amd64",
            "7.2.13-1",
            "linux-base-7.2.13+deb14-amd64 (= 7.2.13-1), linux-binary-7.2.13+deb14-amd64 (= 7.2.13-1)",
        ));
        let error = resolve(&id("7.2"), &spec("sid", "7.2"), &index).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("linux-binary-7.2.13+deb14-amd64 7.2.13-1"),
            "{error}"
        );

        // The binary is there but its linux-base is gone: locked without a config, and said so.
        index.insert(record("linux-binary-7.2.13+deb14-amd64", "7.2.13-1", ""));
        let locked = resolve(&id("7.2"), &spec("sid", "7.2"), &index).unwrap();
        assert_eq!(locked.packages.len(), 1);
        assert_eq!(locked.packages[0].holds, [Part::Vmlinuz]);
        assert_eq!(
            locked.missing,
            [
                "the modules: linux-image-7.2.13+deb14-amd64 7.2.13-1 depends on no linux-modules-* package",
                "linux-base-7.2.13+deb14-amd64 7.2.13-1 (the config): not in suite sid"
            ]
        );
    }
}
