//! The tracefs side of a run: a bundle's events created (dynamic events)
//! or enabled (tracepoints), filtered, and disabled again; the kernel's own
//! words when it refuses one.
//!
//! Dynamic events are retired, not removed: removing a kprobe event costs
//! the kernel a grace period (measured under TCG on 6.1: about 60 ms per
//! event, and clearing a filter about 50 ms), while a disabled event is
//! disarmed and costs nothing. Each item's events carry the item's number
//! in their names (`tapmatrix/i3_e0`), so that no two items' events clash;
//! the guest powers off after the batch.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tapmatrix_ir::Install;

/// The tracefs mount point.
pub const TRACING: &str = "/sys/kernel/tracing";

/// The group every dynamic event of a run is created in.
const GROUP: &str = "tapmatrix";

/// An event as the agent set it up.
#[derive(Debug, Clone)]
pub struct Installed {
    /// Its directory under `events/`.
    pub dir: PathBuf,
    /// The dynamic event's name in its control file (`tapmatrix/e0`), or
    /// `None` for a tracepoint (only enabled and filtered).
    pub dynamic: Option<(String, &'static str)>,
}

/// Why an event could not be set up.
#[derive(Debug)]
pub struct Refusal {
    /// What the agent wrote.
    pub definition: String,
    /// The kernel's words.
    pub error: String,
}

/// The tracefs path of `relative`.
pub fn path(relative: &str) -> PathBuf {
    Path::new(TRACING).join(relative)
}

/// Creates (or for a tracepoint, finds) an event as the host finished it,
/// a dynamic event named for `item`.
pub fn create(install: &Install, item: u32) -> Result<Installed, Refusal> {
    match install {
        Install::Dynamic {
            control,
            definition,
            name,
        } => {
            let control: &'static str = match control.as_str() {
                "kprobe_events" => "kprobe_events",
                "dynamic_events" => "dynamic_events",
                other => {
                    return Err(Refusal {
                        definition: definition.clone(),
                        error: format!("`{other}` is not a dynamic event control file"),
                    });
                }
            };
            let refuse = |error: String| Refusal {
                definition: definition.clone(),
                error,
            };
            let Some(own) = name.strip_prefix(&format!("{GROUP}/")) else {
                return Err(refuse(format!(
                    "the event `{name}` is not in the `{GROUP}` group"
                )));
            };
            let unique = format!("{GROUP}/i{item}_{own}");
            // `p:NAME ...`, `r16:NAME ...`: the name follows the first colon.
            let renamed = match definition.split_once(':') {
                Some((kind, rest)) if rest.starts_with(&format!("{name} ")) => {
                    format!("{kind}:{unique}{}", &rest[name.len()..])
                }
                _ => {
                    return Err(refuse(format!(
                        "the definition does not define the event `{name}`"
                    )));
                }
            };
            clear_error_log();
            append(control, &renamed).map_err(|error| refuse(kernel_words(&error)))?;
            Ok(Installed {
                dir: path(&format!("events/{unique}")),
                dynamic: Some((unique, control)),
            })
        }
        Install::Tracepoint { system, event } => tracepoint(system, event),
    }
}

/// Finds an existing tracepoint.
pub fn tracepoint(system: &str, event: &str) -> Result<Installed, Refusal> {
    let dir = path(&format!("events/{system}/{event}"));
    if !dir.join("format").is_file() {
        return Err(Refusal {
            definition: format!("{system}:{event}"),
            error: format!("no tracepoint {system}:{event} in this kernel"),
        });
    }
    Ok(Installed { dir, dynamic: None })
}

impl Installed {
    /// Sets the event's filter, unless it is already the one set (an
    /// earlier item's on the same tracepoint: replacing a filter costs a
    /// grace period, about 50 ms under TCG).
    pub fn set_filter(&self, filter: &str) -> Result<(), Refusal> {
        if read_text(self.dir.join("filter")).is_ok_and(|now| now.trim() == filter.trim()) {
            return Ok(());
        }
        clear_error_log();
        write_file(&self.dir.join("filter"), filter).map_err(|error| Refusal {
            definition: format!("filter on {}: {filter}", self.label()),
            error: kernel_words(&error),
        })
    }

    /// Enables or disables the event.
    pub fn enable(&self, on: bool) -> Result<(), Refusal> {
        clear_error_log();
        write_file(&self.dir.join("enable"), if on { "1" } else { "0" }).map_err(|error| Refusal {
            definition: format!("enable {}", self.label()),
            error: kernel_words(&error),
        })
    }

    /// Disables the event (it stays defined, filter and all: the next
    /// filter set on a tracepoint replaces its filter).
    pub fn retire(&self) -> io::Result<()> {
        write_file(&self.dir.join("enable"), "0")
    }

    /// Whether the event is still enabled.
    pub fn left_over(&self) -> bool {
        read_text(self.dir.join("enable")).is_ok_and(|state| state.trim() != "0")
    }

    /// `tapmatrix/e0`, or `sched/sched_switch`.
    pub fn label(&self) -> String {
        match &self.dynamic {
            Some((name, _)) => name.clone(),
            None => {
                let mut parts = self.dir.iter().rev().take(2).collect::<Vec<_>>();
                parts.reverse();
                parts
                    .iter()
                    .map(|part| part.to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/")
            }
        }
    }
}

/// Reads a tracefs (or proc) file as text. (`fs::read_to_string` trusts
/// the size the file reports, and tracefs' `header_page` then reads short.)
pub fn read_text(file: impl AsRef<Path>) -> io::Result<String> {
    let mut bytes = Vec::with_capacity(8192);
    File::open(file)?.read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Writes `text` to a tracefs file in one write, replacing (truncating).
pub fn write_file(file: &Path, text: &str) -> io::Result<()> {
    let mut handle = File::options().write(true).truncate(true).open(file)?;
    handle.write_all(text.as_bytes())
}

/// Appends `text` to a tracefs control file in one write (opening these
/// without `O_APPEND` would clear every event in them).
fn append(file: &str, text: &str) -> io::Result<()> {
    let mut handle = File::options().append(true).open(path(file))?;
    handle.write_all(text.as_bytes())
}

/// Empties `error_log` (where the kernel has one).
fn clear_error_log() {
    let _ = File::options()
        .write(true)
        .truncate(true)
        .open(path("error_log"));
}

/// The kernel's words about a failed write: `error_log`'s lines (without
/// their time stamps) where it has any, else the error number.
fn kernel_words(error: &io::Error) -> String {
    let log = read_text(path("error_log")).unwrap_or_default();
    let lines: Vec<&str> = log
        .lines()
        .map(|line| {
            line.strip_prefix('[')
                .and_then(|rest| rest.split_once("] "))
                .map_or(line, |(_, text)| text)
        })
        .filter(|line| !line.trim().is_empty())
        .collect();
    if lines.is_empty() {
        error.to_string()
    } else {
        format!("{} ({error})", lines.join("\n"))
    }
}
