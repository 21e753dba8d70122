//! Running scripts on one kernel: one boot with a [`Job::Run`] image, the
//! agent's [`RunMessage`]s collected per item (and streamed to the caller
//! as they arrive), and a boot that dies marking every unfinished item as
//! an infrastructure failure.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tapmatrix_ir::{ItemEnd, OutputStream, RunMessage};
use tapmatrix_wire::{
    BUFFER_KB_PARAM, ECHO_HITS_PARAM, HIT_RECORD, HitEcho, Job, RUN_RECORD, RecordKind, RunItem,
};

use crate::{BootError, BootSpec, Initramfs, InitramfsError, VmOptions, boot_streaming};

/// Boot time allowed per item on top of its own timeout (setting events up
/// and tearing them down under TCG).
const PER_ITEM_ALLOWANCE: Duration = Duration::from_secs(10);

/// Console lines kept with an infrastructure failure.
const CONSOLE_TAIL_LINES: usize = 40;

/// What happened to one run item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemReport {
    /// The item's name.
    pub name: String,
    /// Every message the agent sent about it, in order (`Finished` last).
    pub messages: Vec<RunMessage>,
    /// The hits the agent decoded, when asked to echo them (see
    /// [`run_items`]); at most [`tapmatrix_wire::HIT_ECHO_LIMIT`].
    pub hits: Vec<HitEcho>,
    /// How the agent ended it, or why the boot did not get there.
    pub end: Result<ItemEnd, InfraFailure>,
}

/// Why an item has no result: the boot failed under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InfraFailure {
    /// The boot's error (a [`crate::BootError`]: panic, timeout, QEMU
    /// failure, early exit), or the agent's own failure.
    pub error: String,
    /// The last lines of the guest's console.
    pub console_tail: String,
    /// The whole console log.
    pub console_log: PathBuf,
    /// Whether the boot itself died (QEMU, the kernel, the data channel, a
    /// timeout), where another boot may go better; not when the agent ran
    /// and reported a failure (another boot would do the same).
    pub boot_died: bool,
}

impl ItemReport {
    /// The item's end, if the agent finished it.
    pub fn finished(&self) -> Option<&ItemEnd> {
        self.end.as_ref().ok()
    }

    /// The script's standard output, concatenated.
    pub fn stdout(&self) -> String {
        self.messages
            .iter()
            .filter_map(|message| match message {
                RunMessage::Output { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The script's standard error, concatenated.
    pub fn stderr(&self) -> String {
        self.messages
            .iter()
            .filter_map(|message| match message {
                RunMessage::Diagnostic { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// What the workload wrote on `stream`, concatenated; where the agent
    /// left bytes out (a workload that wrote more than it keeps), a line
    /// says how many.
    pub fn workload_output(&self, stream: OutputStream) -> String {
        let mut out = String::new();
        for message in &self.messages {
            if let RunMessage::WorkloadOutput {
                stream: of,
                text,
                dropped,
                ..
            } = message
                && *of == stream
            {
                if *dropped > 0 {
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str(&dropped_line(*dropped));
                }
                out.push_str(text);
            }
        }
        out
    }
}

/// How [`run_items`] runs the batch besides the VM options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSettings {
    /// Have the agent echo every decoded hit (values and context), so that
    /// the decoding can be checked without a runtime.
    pub echo_hits: bool,
    /// The per-CPU ring buffer size in KiB (`None`: the agent's default,
    /// 4096).
    pub buffer_kb: Option<u32>,
}

/// Boots `kernel` once and runs `items` in it, in order; returns one
/// report per item. `on_message` sees every message as it arrives. A boot
/// that fails (kernel panic, timeout, QEMU failure, the agent stopping
/// early) marks every item without a `Finished` message with an
/// [`InfraFailure`]; only an image that cannot be built is an error.
/// The boot may take `options.timeout` (the boot allowance) plus every
/// item's timeout plus a little per item.
pub fn run_items(
    kernel: &Path,
    items: &[RunItem],
    work_dir: &Path,
    options: &VmOptions,
    settings: RunSettings,
    on_message: &mut dyn FnMut(&RunMessage),
) -> Result<Vec<ItemReport>, InitramfsError> {
    run_items_with_modules(kernel, items, &[], work_dir, options, settings, on_message)
}

/// A kernel module the image carries for the items that load it
/// ([`RunItem::modules`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestModule {
    /// Its name.
    pub name: String,
    /// Its ELF image, decompressed (the guest's `finit_module` reads it as
    /// it is, whatever decompression the kernel was built with).
    pub image: Vec<u8>,
}

/// [`run_items`] with the kernel modules the items load: each at
/// [`tapmatrix_wire::module_path`] in the image. Without modules the image
/// is the one [`run_items`] boots, byte for byte.
pub fn run_items_with_modules(
    kernel: &Path,
    items: &[RunItem],
    modules: &[GuestModule],
    work_dir: &Path,
    options: &VmOptions,
    settings: RunSettings,
    on_message: &mut dyn FnMut(&RunMessage),
) -> Result<Vec<ItemReport>, InitramfsError> {
    let image = run_image(items, modules).build(&options.cache_dir)?;
    let mut spec = BootSpec::new(kernel, &image, work_dir, options);
    spec.vm.timeout = boot_timeout(items, options.timeout);
    spec.disk_mib = items.iter().map(|item| item.disk_mib).max().unwrap_or(0);
    if settings.echo_hits {
        spec.append.push(ECHO_HITS_PARAM.to_owned());
    }
    if let Some(kb) = settings.buffer_kb {
        spec.append.push(format!("{BUFFER_KB_PARAM}={kb}"));
    }
    let mut reports: Vec<ItemReport> = items
        .iter()
        .map(|item| ItemReport {
            name: item.name.clone(),
            messages: Vec::new(),
            hits: Vec::new(),
            end: Err(InfraFailure {
                error: String::new(),
                console_tail: String::new(),
                console_log: work_dir.join("console.log"),
                boot_died: false,
            }),
        })
        .collect();
    let mut on_record = |record: tapmatrix_wire::Record| -> Result<(), String> {
        if record.kind != RecordKind::Line {
            return Ok(());
        }
        match record.name.as_str() {
            RUN_RECORD => {
                let message: RunMessage = serde_json::from_slice(&record.payload)
                    .map_err(|error| format!("the agent sent a bad run message: {error}"))?;
                on_message(&message);
                let report = reports
                    .get_mut(item_of(&message) as usize)
                    .ok_or_else(|| format!("the agent reported an unknown item: {message:?}"))?;
                if let RunMessage::Finished { end, .. } = &message {
                    report.end = Ok(end.clone());
                }
                report.messages.push(message);
            }
            HIT_RECORD => {
                let hit: HitEcho = serde_json::from_slice(&record.payload)
                    .map_err(|error| format!("the agent sent a bad hit: {error}"))?;
                if let Some(report) = reports.get_mut(hit.item as usize) {
                    report.hits.push(hit);
                }
            }
            _ => {}
        }
        Ok(())
    };
    let (error, boot_died) = match boot_streaming(&spec, &mut on_record) {
        Ok(outcome) => match outcome.done {
            Some(done) if !done.ok => (format!("the agent failed: {}", done.message), false),
            _ => (
                "the agent ended without finishing this item".to_owned(),
                false,
            ),
        },
        // QEMU missing or the work directory unwritable: the same again.
        Err(error @ (BootError::Spawn { .. } | BootError::WorkDir { .. })) => {
            (error.to_string(), false)
        }
        Err(error) => (error.to_string(), true),
    };
    let console_log = work_dir.join("console.log");
    let console_tail = console_tail(&console_log);
    for report in &mut reports {
        if let Err(infra) = &mut report.end {
            infra.error = error.clone();
            infra.console_tail = console_tail.clone();
            infra.boot_died = boot_died;
        }
    }
    Ok(reports)
}

/// The image of a run: the job and, only when there are some, the modules.
fn run_image(items: &[RunItem], modules: &[GuestModule]) -> Initramfs {
    let mut image = Initramfs::with_job(Job::Run {
        items: items.to_vec(),
    });
    image.extra = modules
        .iter()
        .map(|module| crate::ExtraFile {
            path: tapmatrix_wire::module_path(&module.name),
            data: module.image.clone(),
            mode: 0o644,
        })
        .collect();
    image
}

/// The line standing for bytes of a workload stream the agent left out.
pub fn dropped_line(bytes: u64) -> String {
    format!("[... {bytes} bytes left out ...]\n")
}

/// The boot timeout: the boot allowance plus each item's timeout and setup.
fn boot_timeout(items: &[RunItem], allowance: Duration) -> Duration {
    items.iter().fold(allowance, |total, item| {
        total + Duration::from_millis(item.workload.timeout_ms) + PER_ITEM_ALLOWANCE
    })
}

/// The item a message is about.
fn item_of(message: &RunMessage) -> u32 {
    match message {
        RunMessage::Output { item, .. }
        | RunMessage::Diagnostic { item, .. }
        | RunMessage::WorkloadOutput { item, .. }
        | RunMessage::EventRejected { item, .. }
        | RunMessage::Finished { item, .. } => *item,
    }
}

/// The last lines of the console log.
fn console_tail(console_log: &Path) -> String {
    let text = std::fs::read(console_log).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(CONSOLE_TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tapmatrix_ir::{Artefact, Bundle, Limits, Program, RunEnd, Workload};

    fn item(timeout_ms: u64) -> RunItem {
        RunItem {
            name: "t".into(),
            artefact: Artefact::Tracefs(Bundle {
                program: Program {
                    files: Vec::new(),
                    globals: Vec::new(),
                    functions: Vec::new(),
                    probes: Vec::new(),
                    limits: Limits::default(),
                },
                events: Vec::new(),
                tasks: Vec::new(),
            }),
            workload: Workload {
                command: String::new(),
                timeout_ms,
                target: None,
            },
            modules: Vec::new(),
            setup: String::new(),
            disk_mib: 0,
        }
    }

    #[test]
    fn the_boot_may_take_every_items_timeout_and_an_allowance() {
        let items = [item(1000), item(30_000)];
        assert_eq!(
            boot_timeout(&items, Duration::from_secs(120)),
            Duration::from_secs(120 + 1 + 30) + 2 * PER_ITEM_ALLOWANCE
        );
    }

    #[test]
    fn messages_name_their_item() {
        let message = RunMessage::Finished {
            item: 3,
            end: ItemEnd {
                reason: RunEnd::Timeout,
                hits: 1,
                lost: 2,
                skipped: 0,
                workload_status: None,
                elapsed_ms: 4,
                setup_ms: 2,
                leftover_events: Vec::new(),
            },
        };
        assert_eq!(item_of(&message), 3);
        assert_eq!(
            item_of(&RunMessage::Output {
                item: 5,
                text: String::new()
            }),
            5
        );
    }

    #[test]
    fn an_image_without_modules_does_not_grow() {
        // The run image of items that load no module is the image of the
        // job alone, as it was before modules: same members, same bytes.
        let items = [item(1000)];
        let job_json = serde_json::to_string(&Job::Run {
            items: items.to_vec(),
        })
        .unwrap();
        assert!(!job_json.contains("modules"), "{job_json}");
        assert!(!job_json.contains("disk"), "{job_json}");
        let busybox = Path::new("/bin/busybox");
        let plain = Initramfs::with_job(Job::Run {
            items: items.to_vec(),
        });
        let without = run_image(&items, &[]);
        assert_eq!(
            without.members(busybox).unwrap(),
            plain.members(busybox).unwrap()
        );
        let cache = tempfile::tempdir().unwrap();
        let plain_path = plain.build(cache.path()).unwrap();
        assert_eq!(without.build(cache.path()).unwrap(), plain_path);

        // With modules: the job names them, and the image holds exactly
        // those files (and their directories), nothing else.
        let mut loading = item(1000);
        loading.modules = vec!["jbd2".into(), "ext4".into()];
        let modules = [
            GuestModule {
                name: "jbd2".into(),
                image: vec![1; 4096],
            },
            GuestModule {
                name: "ext4".into(),
                image: vec![2; 8192],
            },
        ];
        let with = run_image(std::slice::from_ref(&loading), &modules);
        let members = with.members(busybox).unwrap();
        let base = Initramfs::with_job(Job::Run {
            items: vec![loading.clone()],
        })
        .members(busybox)
        .unwrap();
        let added: Vec<&String> = members.keys().filter(|k| !base.contains_key(*k)).collect();
        assert_eq!(
            added,
            [
                "lib",
                "lib/modules",
                "lib/modules/tapmatrix",
                "lib/modules/tapmatrix/ext4.ko",
                "lib/modules/tapmatrix/jbd2.ko"
            ]
        );
        let with_path = with.build(cache.path()).unwrap();
        assert!(
            std::fs::metadata(&with_path).unwrap().len()
                > std::fs::metadata(&plain_path).unwrap().len()
        );
    }
}
