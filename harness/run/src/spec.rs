//! Test specs: `tests/scripts/NAME.stp` with `NAME.yaml` beside it.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use tapmatrix_facts::KernelFacts;

use crate::Error;
use crate::redact::{Redaction, Redactions};

/// A script and what is expected of it on the matrix.
#[derive(Debug, Clone)]
pub struct Spec {
    /// The script's name: its file stem.
    pub name: String,
    /// The script: its file, or the name diagnostics give `text`.
    pub script: PathBuf,
    /// The script's text when it came from the command line (`-e`): it is
    /// compiled from here, never written to disk.
    pub text: Option<String>,
    /// The spec file (`NAME.yaml`), when the script has one. A script
    /// without one is run and its output shown, not judged: its snapshot
    /// scope is [`SnapshotScope::Unchecked`].
    pub spec_file: Option<PathBuf>,
    /// What the script shows, for the reader of a report.
    pub description: String,
    /// The command run while the script's events are enabled.
    pub workload: String,
    /// Kernel modules the workload needs loaded (a block driver, a
    /// filesystem), besides those whose functions the script probes;
    /// `NAME?` where the kernel builds NAME as a module.
    pub modules: Vec<String>,
    /// A command run to its end before the script's events are installed
    /// (making and mounting a filesystem): its work is not traced.
    pub setup: String,
    /// The size in MiB of an empty virtio disk (`/dev/vda`) the setup and
    /// workload use (its drivers, `virtio_pci` and `virtio_blk`, named in
    /// `modules`); 0: none.
    pub disk_mib: u32,
    /// Stop after this many seconds.
    pub timeout_s: u64,
    /// Where the script applies.
    pub kernels: Applies,
    /// One snapshot for all kernels, or one per kernel series.
    pub snapshot: SnapshotScope,
    /// Applied to the output before it is compared.
    pub redactions: Redactions,
    /// The script is expected to end in a run-time error.
    pub expect_error: bool,
    /// On the BPF back ends that run handlers in the kernel where they can
    /// (`bpf`, `bpf-kprobes`), its handlers must run there: a cell whose
    /// artefact forwards its hits is an error.
    pub in_kernel: bool,
    /// How the script is invoked beyond its name: what `stap`'s command
    /// line gives it (arguments, `-g`, `-u`, `-w`/`-W`, `-G`, `-D`, `-T`,
    /// `-x`), from the command line or the spec.
    pub invocation: Invocation,
}

/// What `stap`'s command line says about one script besides its name: its
/// arguments and the options that change how it compiles and runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Invocation {
    /// The script's arguments: `$1`, `@1`... and `$#`.
    pub args: Vec<String>,
    /// Guru mode (`-g`): the script may hold embedded C (each function it
    /// calls must still have an implementation: no module runs here).
    pub guru: bool,
    /// Unoptimized (`-u`): no elision of unread stores, so their values
    /// must type-check and resolve.
    pub unoptimized: bool,
    /// `--skip-badvars`: a target variable that resolves at none of its
    /// probe's attach points reads as 0, without an error.
    pub skip_badvars: bool,
    /// What becomes of compile warnings (`-w`, `-W`).
    pub warnings: Warnings,
    /// Scalar globals set before `begin` (`-G NAME=VALUE`), in order.
    pub globals: Vec<GlobalSetting>,
    /// Run-time limits (`-D MAXACTION=N`...), in order.
    pub defines: Vec<Define>,
    /// `-s MB`: the transport buffer's size in megabytes.
    pub buffer_mb: Option<u32>,
    /// `-T SECS`: the run ends after the spec's timeout as `exit()` ends
    /// it (`end` probes run, and it is no failure).
    pub time_limit: bool,
    /// `-x PID`: `target()` is this process of the guest, not the
    /// workload's. The script runs independently of its lifespan.
    pub target_pid: Option<u32>,
}

/// What becomes of compile warnings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Warnings {
    /// Shown on standard error (`WARNING: ...`), as `stap` does.
    #[default]
    Show,
    /// Not shown (`-w`).
    Suppress,
    /// Each one is an error (`-W`).
    Error,
}

/// `-G NAME=VALUE`: a scalar global's value before `begin`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalSetting {
    /// The global's name.
    pub name: String,
    /// Its value as written: a number for a long global, the text for a
    /// string global.
    pub value: String,
}

impl std::str::FromStr for GlobalSetting {
    type Err = String;

    /// `NAME=VALUE` as `stap -G` takes it: NAME an identifier, VALUE
    /// letters, digits, `_`, `.` and `-`.
    fn from_str(text: &str) -> Result<GlobalSetting, String> {
        let (name, value) = text
            .split_once('=')
            .ok_or_else(|| format!("`{text}` is not NAME=VALUE (like -G count=10)"))?;
        let ident = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident {
            return Err(format!("`{name}` in `{text}` is not a global's name"));
        }
        if value.is_empty()
            || !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(format!(
                "the value in `{text}` may hold only letters, digits, `_`, `.` and `-` (as stap's -G)"
            ));
        }
        Ok(GlobalSetting {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// `-D NAME=VALUE`: one of SystemTap's run-time limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Define {
    /// Which limit.
    pub limit: Limit,
    /// Its value.
    pub value: u64,
}

/// The `-D` settings tapmatrix's runtime has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `MAXACTION`: statements one probe hit may execute.
    MaxAction,
    /// `MAXSTRINGLEN`: the string buffer size.
    MaxStringLen,
    /// `MAXMAPENTRIES`: the default size of an array.
    MaxMapEntries,
    /// `MAXNESTING`: the deepest chain of function calls.
    MaxNesting,
    /// `MAXERRORS`: run-time errors tolerated before the script stops.
    MaxErrors,
    /// A setting of SystemTap's kernel module with no meaning here
    /// (`MAXSKIPPED`, `STP_NO_OVERLOAD`, `KRETACTIVE`...): accepted, no
    /// effect.
    Ignored,
}

impl std::str::FromStr for Define {
    type Err = String;

    /// `NAME=VALUE` or `NAME` (as `stap -D` takes it).
    fn from_str(text: &str) -> Result<Define, String> {
        let (name, value) = text.split_once('=').unwrap_or((text, "1"));
        let limit = match name {
            "MAXACTION" | "MAXACTION_INTERRUPTIBLE" => Limit::MaxAction,
            "MAXSTRINGLEN" => Limit::MaxStringLen,
            "MAXMAPENTRIES" => Limit::MaxMapEntries,
            "MAXNESTING" => Limit::MaxNesting,
            "MAXERRORS" => Limit::MaxErrors,
            _ if name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
            {
                Limit::Ignored
            }
            _ => return Err(format!("`{name}` in `{text}` is not a macro name")),
        };
        let value = match limit {
            Limit::Ignored => 0,
            _ => value.parse().map_err(|_| {
                format!("the value of {name} in `{text}` is not a non-negative number")
            })?,
        };
        Ok(Define { limit, value })
    }
}

impl Invocation {
    /// The run-time limits with the `-D` settings applied.
    pub fn limits(&self, mut limits: tapmatrix_ir::Limits) -> tapmatrix_ir::Limits {
        let narrow = |value: u64| u32::try_from(value).unwrap_or(u32::MAX);
        for define in &self.defines {
            match define.limit {
                Limit::MaxAction => limits.max_action = define.value,
                Limit::MaxStringLen => limits.max_string_len = narrow(define.value).max(1),
                Limit::MaxMapEntries => limits.max_map_entries = narrow(define.value),
                Limit::MaxNesting => limits.max_nesting = narrow(define.value),
                Limit::MaxErrors => limits.max_errors = narrow(define.value),
                Limit::Ignored => {}
            }
        }
        if let Some(mb) = self.buffer_mb {
            limits.buffer_mb = mb;
        }
        limits
    }
}

/// Which kernels a script applies to; elsewhere its probes are expected not
/// to resolve ("not available").
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Applies {
    /// The first kernel series (`"6.12"`).
    #[serde(default)]
    pub since: Option<String>,
    /// The last kernel series.
    #[serde(default)]
    pub until: Option<String>,
    /// Tracing features the kernel must have (names as in `kernels facts`:
    /// `fprobe`, `eprobe`, `btf_args`...).
    #[serde(default)]
    pub features: Vec<String>,
    /// The back ends that can serve the script (`tracefs`, `bpf`); empty:
    /// every one. A back end that cannot refuses to compile it.
    #[serde(default)]
    pub backends: Vec<String>,
    /// Why, for the report.
    #[serde(default)]
    pub reason: Option<String>,
}

/// Whether output may differ between kernel series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotScope {
    /// Every kernel must print the same.
    #[default]
    Shared,
    /// Each series has its own snapshot.
    PerSeries,
    /// Not compared (`tapmatrix run -e`, a script without a spec): the
    /// output is shown.
    Unchecked,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    #[serde(default)]
    description: String,
    #[serde(default)]
    workload: String,
    /// Kernel modules the workload needs (loaded with their dependencies
    /// before the events are installed).
    #[serde(default)]
    modules: Vec<String>,
    /// A command run before the events are installed.
    #[serde(default)]
    setup: String,
    /// An empty virtio disk of this many MiB (`/dev/vda`).
    #[serde(default)]
    disk: u32,
    #[serde(default = "default_timeout")]
    timeout: u64,
    #[serde(default)]
    kernels: Applies,
    #[serde(default)]
    snapshot: SnapshotScope,
    #[serde(default)]
    redact: Vec<Redaction>,
    #[serde(default)]
    expect_error: bool,
    /// The handlers run in the kernel on `bpf` (see [`Spec::in_kernel`]).
    #[serde(default)]
    in_kernel: bool,
    /// The script's arguments (`$1`, `@1`...), as after `stap SCRIPT`.
    #[serde(default)]
    args: Vec<String>,
    /// Scalar globals set before `begin`, as `-G NAME=VALUE` sets them.
    #[serde(default)]
    globals: Vec<String>,
    /// The run ends after `timeout` seconds as `exit()` ends it (`stap
    /// -T`), instead of failing.
    #[serde(default)]
    time_limit: bool,
}

fn default_timeout() -> u64 {
    30
}

impl Spec {
    /// Reads the spec of `script` (`NAME.yaml` beside it; a script without
    /// one runs with no workload and the defaults, and is not judged).
    pub fn load(script: &Path) -> Result<Spec, Error> {
        let yaml = script.with_extension("yaml");
        let mut spec_file = Some(yaml.clone());
        let raw: RawSpec = match std::fs::read_to_string(&yaml) {
            Ok(text) => serde_saphyr::from_str(&text).map_err(|error| {
                let location = error.location();
                Error::Spec {
                    path: yaml.clone(),
                    line: location.map_or(0, |l| l.line()),
                    column: location.map_or(0, |l| l.column()),
                    message: error.to_string().lines().next().unwrap_or("").to_owned(),
                }
            })?,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                spec_file = None;
                serde_saphyr::from_str("{ snapshot: unchecked }").map_err(|error| Error::Spec {
                    path: yaml.clone(),
                    line: 0,
                    column: 0,
                    message: error.to_string(),
                })?
            }
            Err(error) => return Err(Error::io(&yaml, error)),
        };
        let name = script
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let redactions = Redactions::new(raw.redact).map_err(|message| Error::Spec {
            path: yaml.clone(),
            line: 0,
            column: 0,
            message,
        })?;
        for series in [&raw.kernels.since, &raw.kernels.until]
            .into_iter()
            .flatten()
        {
            if parse_series(series).is_none() {
                return Err(Error::Spec {
                    path: yaml,
                    line: 0,
                    column: 0,
                    message: format!("kernel series `{series}` is not MAJOR.MINOR (like \"6.12\")"),
                });
            }
        }
        let globals = raw
            .globals
            .iter()
            .map(|text| text.parse())
            .collect::<Result<Vec<GlobalSetting>, String>>()
            .map_err(|message| Error::Spec {
                path: yaml.clone(),
                line: 0,
                column: 0,
                message: format!("globals: {message}"),
            })?;
        Ok(Spec {
            name,
            script: script.to_owned(),
            text: None,
            spec_file,
            description: raw.description,
            workload: raw.workload,
            modules: raw.modules,
            setup: raw.setup,
            disk_mib: raw.disk,
            timeout_s: raw.timeout,
            kernels: raw.kernels,
            snapshot: raw.snapshot,
            redactions,
            expect_error: raw.expect_error,
            in_kernel: raw.in_kernel,
            invocation: Invocation {
                args: raw.args,
                globals,
                time_limit: raw.time_limit,
                ..Invocation::default()
            },
        })
    }

    /// A spec for script text given on the command line (`-e`), named
    /// `<input>` in diagnostics as stap names it: its output is shown, not
    /// compared; no workload unless `-c` gives one.
    pub fn inline(name: &str, text: String, workload: String, timeout_s: u64) -> Spec {
        Spec {
            name: name.to_owned(),
            script: PathBuf::from("<input>"),
            text: Some(text),
            spec_file: None,
            description: String::new(),
            workload,
            modules: Vec::new(),
            setup: String::new(),
            disk_mib: 0,
            timeout_s,
            kernels: Applies::default(),
            snapshot: SnapshotScope::Unchecked,
            redactions: Redactions::default(),
            expect_error: false,
            in_kernel: false,
            invocation: Invocation::default(),
        }
    }

    /// Every `*.stp` of a directory with its spec, by name.
    pub fn load_dir(dir: &Path) -> Result<Vec<Spec>, Error> {
        let mut scripts: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|error| Error::io(dir, error))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "stp"))
            .collect();
        scripts.sort();
        scripts.iter().map(|script| Spec::load(script)).collect()
    }
}

impl Spec {
    /// `sha256:HEX` of the script, its spec and its snapshots: what a
    /// baseline compares to tell a changed test from a kernel regression.
    /// Files that cannot be read count as empty.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        let mut add = |path: &Path| {
            hash.update(path.file_name().map_or(&[][..], |n| n.as_encoded_bytes()));
            hash.update([0]);
            hash.update(std::fs::read(path).unwrap_or_default());
            hash.update([0]);
        };
        add(&self.script);
        add(&self.script.with_extension("yaml"));
        let snapshots = self
            .script
            .parent()
            .unwrap_or(Path::new("."))
            .join("snapshots");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&snapshots)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|path| {
                        path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                            n == format!("{}.snap", self.name)
                                || (n.starts_with(&format!("{}@", self.name))
                                    && n.ends_with(".snap"))
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        for file in &files {
            add(file);
        }
        let digest = hash.finalize();
        let mut out = String::from("sha256:");
        for byte in digest {
            out.push_str(&format!("{byte:02x}"));
        }
        out
    }
}

impl Applies {
    /// Whether a kernel of `series` with these facts is one the script
    /// applies to.
    pub fn covers(&self, series: &str, facts: &KernelFacts) -> bool {
        let version = parse_series(series);
        let in_range = |bound: &Option<String>, ok: fn((u32, u32), (u32, u32)) -> bool| match (
            bound.as_deref().and_then(parse_series),
            version,
        ) {
            (Some(bound), Some(version)) => ok(version, bound),
            (Some(_), None) => false,
            (None, _) => true,
        };
        let features = facts
            .features
            .as_ref()
            .and_then(|f| serde_json::to_value(f).ok());
        let has = |name: &String| {
            features
                .as_ref()
                .and_then(|f| f.get(name))
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false)
        };
        in_range(&self.since, |v, b| v >= b)
            && in_range(&self.until, |v, b| v <= b)
            && self.features.iter().all(has)
    }

    /// Whether the script is for `backend` (`auto` chooses among all).
    pub fn serves(&self, backend: crate::Backend) -> bool {
        let named = |name: &str| self.backends.iter().any(|b| b == name);
        match backend {
            _ if self.backends.is_empty() => true,
            crate::Backend::Tracefs => named("tracefs"),
            crate::Backend::Bpf | crate::Backend::BpfForwarded | crate::Backend::BpfKprobes => {
                named("bpf")
            }
            crate::Backend::Auto => true,
        }
    }
}

/// `"6.12"` (or a release such as `"6.12.4-amd64"`) as (6, 12).
pub fn parse_series(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.split(['.', '-', '+']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(id: &str) -> KernelFacts {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../../compiler/facts/fixtures/linux-{id}"));
        KernelFacts::from_raw(&dir, None).unwrap()
    }

    #[test]
    fn a_spec_reads_with_defaults_and_says_where_it_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fprobe_only.stp");
        std::fs::write(&script, "probe begin { exit() }").unwrap();
        std::fs::write(
            script.with_extension("yaml"),
            "workload: cat /etc/passwd\nkernels:\n  since: \"6.12\"\n  features: [fprobe]\nsnapshot: per-series\nredact: [pids]\n",
        )
        .unwrap();
        let spec = Spec::load(&script).unwrap();
        assert_eq!(spec.name, "fprobe_only");
        assert_eq!(spec.timeout_s, 30);
        assert_eq!(spec.snapshot, SnapshotScope::PerSeries);
        assert!(!spec.kernels.covers("6.1", &facts("6.1")));
        assert!(spec.kernels.covers("7.3", &facts("7.3")));
        assert_eq!(spec.disk_mib, 0);
        std::fs::write(
            script.with_extension("yaml"),
            "modules: [virtio_pci?, virtio_blk]\ndisk: 32\nsetup: mke2fs /dev/vda\n",
        )
        .unwrap();
        let spec = Spec::load(&script).unwrap();
        assert_eq!(spec.disk_mib, 32);
        assert_eq!(spec.modules, ["virtio_pci?", "virtio_blk"]);
        std::fs::write(script.with_extension("yaml"), "disk: big\n").unwrap();
        let error = Spec::load(&script).unwrap_err().to_string();
        assert!(error.contains("fprobe_only.yaml:1:"), "{error}");
        std::fs::write(
            script.with_extension("yaml"),
            "workload: x\ntimeout: soon\n",
        )
        .unwrap();
        let error = Spec::load(&script).unwrap_err().to_string();
        assert!(error.contains("fprobe_only.yaml:2:"), "{error}");
        std::fs::write(script.with_extension("yaml"), "kernels: {since: six}\n").unwrap();
        let error = Spec::load(&script).unwrap_err().to_string();
        assert!(error.contains("`six` is not MAJOR.MINOR"), "{error}");
    }
}
