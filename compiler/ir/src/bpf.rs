//! The BPF back end's artefact: one script compiled for one kernel to BPF
//! programs in an ELF object, with what the agent needs to attach them and
//! to turn their ring buffer records into output.
//!
//! The agent loads [`BpfArtefact::object`] with aya, attaches each
//! [`BpfProgram`] as its [`BpfAttach`] says, reads the ring buffer map
//! ([`MapRole::Events`]) and decodes each record by its first word
//! ([`RecordTag`]). `begin`, `end`, `error` and timer probes run in the
//! handler runtime on the host side of the guest, with the globals the
//! kernel keeps ([`GlobalPlace`]) read from the maps before and written
//! back after.

use serde::{Deserialize, Serialize};

use crate::program::{FormatSpec, HistSpec, Program, ScalarType};

/// One script compiled to BPF for one kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpfArtefact {
    /// The EM_BPF relocatable ELF object (programs, maps, license).
    #[serde(with = "hex")]
    pub object: Vec<u8>,
    /// Where event handlers run.
    pub mode: BpfMode,
    /// The programs, each attached as it says.
    pub programs: Vec<BpfProgram>,
    /// The maps of the object, with their roles.
    pub maps: Vec<BpfMap>,
    /// The script for the runtime: every probe in forwarded mode; `begin`,
    /// `end`, `error` and timers (event probes are not run) in-kernel.
    pub program: Program,
    /// `printf` records: the format of record `id` is `formats[id]`.
    pub formats: Vec<PrintfRecord>,
    /// Run-time errors raised in the kernel: error record `id` is
    /// `errors[id]`.
    pub errors: Vec<ErrorSite>,
    /// Per global of `program.globals` (same index): where the kernel keeps
    /// it.
    pub globals: Vec<GlobalPlace>,
}

/// Where event handlers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BpfMode {
    /// Compiled to BPF: aggregation, filtering and formatting records in the
    /// kernel.
    InKernel,
    /// The programs only gather each hit's fetch slots and context and send
    /// them as one [`RecordTag::Hit`] record; the runtime runs the handler.
    Forwarded,
}

/// One BPF program of the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpfProgram {
    /// Its function symbol in the object (what aya calls it).
    pub name: String,
    /// The probe of [`BpfArtefact::program`] it serves.
    pub probe: u32,
    /// How it attaches.
    pub attach: BpfAttach,
    /// The concrete probe point (`pp()`).
    pub pp: String,
    /// The function attached to (`probefunc()`), "" for tracepoints.
    pub function: String,
    /// Instructions (for the dump and the logs).
    pub insns: u32,
    /// Forwarded mode: the layout of its hit records' fetch slots.
    pub slots: Vec<Field>,
    /// Forwarded mode: the slots the kernel computes itself (reads at
    /// computed addresses, the current task, backtraces), each with the
    /// word that says whether computing it faulted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<FaultWord>,
}

/// Where a forwarded hit record says that computing a slot faulted: a
/// `u32` at `offset` holding 0 (the value is good) or the
/// [`ErrorSite`] index plus one, then (at `offset + 8`) the `u64`
/// address the fault was at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultWord {
    /// The fetch slot.
    pub slot: u32,
    /// The word's offset in the record.
    pub offset: u32,
}

/// The bytes of a [`FaultWord`] (the word, padding, the address).
pub const FAULT_WORD_BYTES: u32 = 16;

/// How a program attaches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BpfAttach {
    /// A kprobe on a function's entry.
    Kprobe {
        /// The function (`module:function` for a module's).
        function: String,
    },
    /// An `fentry` program (a BPF trampoline) on a function's entry: the
    /// context is its arguments as 64-bit words.
    Fentry {
        /// The function (in the kernel image).
        function: String,
    },
    /// A kretprobe on a function's return.
    Kretprobe {
        /// The function.
        function: String,
        /// `.maxactive(N)`. Not applied: aya 0.14 attaches a kretprobe
        /// through perf's kprobe PMU, whose `perf_event_attr` has no field
        /// for it (the kernel's default pool then). A return the kernel
        /// can serve with an `fexit` program has no pool at all.
        maxactive: Option<u32>,
    },
    /// An `fexit` program (a BPF trampoline) on a function's return: the
    /// context is its arguments then its return value, as 64-bit words.
    Fexit {
        /// The function (in the kernel image).
        function: String,
    },
    /// A trace event: the context is its record (format fields at their
    /// offsets).
    Tracepoint {
        /// Its system.
        system: String,
        /// Its name.
        event: String,
    },
    /// A raw tracepoint: the context is the `TP_PROTO` argument array.
    RawTracepoint {
        /// The tracepoint's name (without system).
        event: String,
    },
    /// A perf event on every CPU (`timer.profile`, `perf.*`).
    PerfEvent {
        /// `perf_event_attr.type` (1: software).
        perf_type: u32,
        /// `perf_event_attr.config` (0: `PERF_COUNT_SW_CPU_CLOCK`).
        config: u64,
        /// A sample every this many events, or at this frequency (Hz).
        sample: PerfSample,
    },
}

/// How often a perf event samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PerfSample {
    /// Every N events.
    Period {
        /// N.
        n: u64,
    },
    /// N times a second.
    Frequency {
        /// N.
        hz: u64,
    },
}

/// The kind of a map, as `bpf_map_type` numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapKind {
    /// `BPF_MAP_TYPE_HASH`.
    Hash,
    /// `BPF_MAP_TYPE_ARRAY`.
    Array,
    /// `BPF_MAP_TYPE_PERCPU_HASH`.
    PercpuHash,
    /// `BPF_MAP_TYPE_PERCPU_ARRAY`.
    PercpuArray,
    /// `BPF_MAP_TYPE_STACK_TRACE`.
    StackTrace,
    /// `BPF_MAP_TYPE_LRU_HASH`.
    LruHash,
    /// `BPF_MAP_TYPE_RINGBUF`.
    Ringbuf,
}

impl MapKind {
    /// Its `bpf_map_type` number.
    pub fn number(self) -> u32 {
        match self {
            MapKind::Hash => 1,
            MapKind::Array => 2,
            MapKind::PercpuHash => 5,
            MapKind::PercpuArray => 6,
            MapKind::StackTrace => 7,
            MapKind::LruHash => 9,
            MapKind::Ringbuf => 27,
        }
    }
}

/// One map of the object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BpfMap {
    /// Its symbol in the object (what aya calls it).
    pub name: String,
    /// What it holds.
    pub role: MapRole,
    /// Its kind.
    pub kind: MapKind,
    /// Key size in bytes.
    pub key_size: u32,
    /// Value size in bytes.
    pub value_size: u32,
    /// Entries (bytes for a ring buffer).
    pub max_entries: u32,
}

/// Key sizes of the hash maps the agent reads: a key is padded with zeros
/// to the first that holds it (the agent reads maps through types of
/// fixed size).
pub const KEY_SIZES: [u32; 4] = [8, 32, 128, 512];

/// Value sizes of the hash maps the agent reads (padded likewise).
pub const HASH_VALUE_SIZES: [u32; 4] = [16, 64, 1024, 2048];

/// Value sizes of the one-entry arrays the agent reads (the scalars, a
/// statistic).
pub const ARRAY_VALUE_SIZES: [u32; 10] = [64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768];

/// The first of `classes` that holds `n` bytes.
pub fn size_class(n: u32, classes: &[u32]) -> Option<u32> {
    classes.iter().copied().find(|c| *c >= n)
}

/// Offset of the session state word in the scalars map's value.
pub const STATE_OFFSET: u32 = 0;
/// Offset of `target()` (written by the agent) in the scalars map's value.
pub const TARGET_OFFSET: u32 = 8;
/// Offset of the count of records the ring buffer refused (full) in the
/// scalars map's value.
pub const LOST_OFFSET: u32 = 16;
/// Offset of the wall clock's offset from the monotonic clock
/// (`CLOCK_REALTIME - CLOCK_MONOTONIC` in nanoseconds, written by the agent
/// before the programs attach): `gettimeofday_ns()` in the kernel is
/// `bpf_ktime_get_ns()` plus it.
pub const REALTIME_OFFSET: u32 = 24;
/// Offset of the count of hits a handler skipped because every slot of
/// its CPU's scratch memory was taken (handlers nested deeper than the
/// slots) in the scalars map's value.
pub const SKIPPED_OFFSET: u32 = 32;
/// Where the scalar globals start in the scalars map's value.
pub const SCALARS_START: u32 = 40;

/// What a map is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MapRole {
    /// The ring buffer of records.
    Events,
    /// The scalar globals and the session state (one entry, key 0: the
    /// state word at offset 0, see [`STATE_STOPPED`]).
    Scalars,
    /// Per-CPU scratch memory for strings and record building.
    Scratch,
    /// A global array or statistic (see [`GlobalPlace`]).
    Global {
        /// The global's index.
        global: u32,
    },
    /// The `@entry` values of calls in flight, kept by the kernel alone (an
    /// LRU hash keyed by thread id and entry key, see [`ENTRY_DEPTH_MAX`]):
    /// the entry half pushes, its return probe pops.
    Entries,
}

/// Calls of one thread through one entry/return pair whose `@entry` values
/// the kernel keeps at most (a ring: a deeper call overwrites the oldest,
/// as the runtime drops its oldest past the same depth).
pub const ENTRY_DEPTH_MAX: u32 = 64;

/// The session state word (offset 0 of the scalars map's value) once a
/// handler called `exit()` or raised an error: every later hit does
/// nothing, as in SystemTap's session states.
pub const STATE_STOPPED: u64 = 1;

/// One value laid out in a record, a key or a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Field {
    /// Byte offset.
    pub offset: u32,
    /// Its type: a long is 8 bytes, a string `len` bytes NUL-terminated.
    pub ty: ScalarType,
    /// Bytes it occupies.
    pub len: u32,
}

/// The first 32-bit word of every ring buffer record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordTag {
    /// A forwarded hit: [`HIT_HEADER`], then the program's slots.
    Hit = 1,
    /// `printf`: `u32 tag, u32 format id`, then the format's fields.
    Printf = 2,
    /// `exit()`: `u32 tag, u32 0`.
    Exit = 3,
    /// A run-time error: `u32 tag, u32 error id`, then for `error(msg)`
    /// the message (NUL-terminated), for a fault its address (`u64`).
    Error = 4,
}

impl RecordTag {
    /// The tag of a record's first word.
    pub fn of(word: u32) -> Option<RecordTag> {
        Some(match word {
            1 => RecordTag::Hit,
            2 => RecordTag::Printf,
            3 => RecordTag::Exit,
            4 => RecordTag::Error,
            _ => return None,
        })
    }
}

/// A forwarded hit record's header: `u32 tag, u32 program index, u64
/// pid_tgid, u64 ktime ns, u32 cpu, u32 uid, u32 gid, u32 0, char
/// comm[16]`; the slots follow.
pub const HIT_HEADER: u32 = 56;

/// The bytes every record starts with (tag and id).
pub const RECORD_HEADER: u32 = 8;

/// A `printf` (or `print`) the kernel sends: the format, and where its
/// arguments are in the record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintfRecord {
    /// The parsed format.
    pub format: Vec<FormatSpec>,
    /// The arguments, in order.
    pub args: Vec<Field>,
    /// The record's size.
    pub size: u32,
}

/// A run-time error the kernel raises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSite {
    /// The message as SystemTap prints it after `ERROR: ` (`division by
    /// 0 near operator '/' at t.stp:3:9`); for `error(msg)`, what follows
    /// the message from the record (`near identifier 'error' at ...`, or
    /// "").
    pub message: String,
    /// The record carries the message (`error(msg)`): it comes first.
    pub dynamic: bool,
    /// The record carries an address (a `u64` after its header, or in a
    /// [`FaultWord`]), written into `message` where [`ADDRESS_MARK`] is,
    /// as `0x` and 16 hex digits.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub address: bool,
}

/// Where an [`ErrorSite`]'s message takes its address.
pub const ADDRESS_MARK: &str = "{address}";

impl ErrorSite {
    /// The message of this error raised at `address` (when it carries
    /// one), after `dynamic` text (an `error()` message).
    pub fn render(&self, dynamic: &str, address: u64) -> String {
        let message = if self.address {
            self.message
                .replace(ADDRESS_MARK, &format!("0x{address:016x}"))
        } else {
            self.message.clone()
        };
        format!("{dynamic}{message}")
    }
}

/// Where a global lives while the kernel runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GlobalPlace {
    /// Only in the runtime: no kernel code touches it.
    Host,
    /// A long or string in the scalars map's value.
    Scalar {
        /// Where in the value.
        field: Field,
    },
    /// An array: a hash map keyed by the keys laid out in `keys`; the value
    /// is `u64 insertion stamp` then the element.
    Array {
        /// The map's index in [`BpfArtefact::maps`].
        map: u32,
        /// The keys in the key.
        keys: Vec<Field>,
        /// The element in the value.
        value: Field,
    },
    /// A statistic: a per-CPU array of one [`StatLayout`] entry.
    Stat {
        /// The map.
        map: u32,
        /// Its aggregates.
        layout: StatLayout,
    },
    /// An array of statistics: a per-CPU hash keyed as `keys`; the value
    /// is `u64 insertion stamp` then a [`StatLayout`].
    StatArray {
        /// The map.
        map: u32,
        /// The keys in the key.
        keys: Vec<Field>,
        /// Its aggregates (offsets from the value's start).
        layout: StatLayout,
    },
}

/// A statistic's aggregates in the kernel, per CPU: `count`, `sum`,
/// `min`, `max` (longs at `offset`, +8, +16, +24), then the histogram's
/// buckets (longs) when it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatLayout {
    /// Where the count is.
    pub offset: u32,
    /// The histogram the script prints, if any.
    pub hist: Option<HistSpec>,
    /// Buckets after the four aggregates.
    pub buckets: u32,
}

/// The object as a hex string: JSON arrays of numbers are four times the
/// size.
mod hex {
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = String::with_capacity(bytes.len() * 2);
        for byte in bytes {
            text.push(char::from(DIGITS[usize::from(byte >> 4)]));
            text.push(char::from(DIGITS[usize::from(byte & 15)]));
        }
        serializer.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_str(Hex)
    }

    /// Decodes the string where the deserializer has it (a job's objects
    /// are most of its bytes, decoded in a TCG guest: no copy first).
    struct Hex;

    impl serde::de::Visitor<'_> for Hex {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("the object as a lowercase hex string")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
            let (pairs, rest) = text.as_bytes().as_chunks::<2>();
            if !rest.is_empty() {
                return Err(E::custom("the object's hex has an odd length"));
            }
            let mut bytes = Vec::with_capacity(pairs.len());
            for &[high, low] in pairs {
                let (high, low) = (VALUES[usize::from(high)], VALUES[usize::from(low)]);
                if (high | low) == INVALID {
                    return Err(E::custom("the object is not a hex string"));
                }
                bytes.push(high << 4 | low);
            }
            Ok(bytes)
        }
    }

    /// A byte that is no lowercase hex digit.
    const INVALID: u8 = 0xff;

    /// Each byte's digit value, [`INVALID`] for the others.
    const VALUES: [u8; 256] = {
        let mut values = [INVALID; 256];
        let mut byte = 0;
        while byte < 256 {
            values[byte] = match byte as u8 {
                c @ b'0'..=b'9' => c - b'0',
                c @ b'a'..=b'f' => c - b'a' + 10,
                _ => INVALID,
            };
            byte += 1;
        }
        values
    };
}

#[cfg(test)]
mod hex_tests {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Object(#[serde(with = "super::hex")] Vec<u8>);

    #[test]
    fn objects_round_trip_as_lowercase_hex() {
        let object = Object((0..=255).collect());
        let json = serde_json::to_string(&object).unwrap();
        assert!(json.starts_with(r#""000102"#) && json.ends_with(r#"feff""#));
        assert_eq!(serde_json::from_str::<Object>(&json).unwrap(), object);
        // Escaped text (not what the host writes) decodes too.
        assert_eq!(
            serde_json::from_str::<Object>(r#""\u0030a""#).unwrap(),
            Object(vec![0x0a])
        );
    }

    #[test]
    fn what_is_not_lowercase_hex_is_an_error() {
        for (json, error) in [
            (r#""abc""#, "odd length"),
            (r#""0G""#, "not a hex string"),
            (r#""AB""#, "not a hex string"),
            (r#""0 ""#, "not a hex string"),
            ("[1, 2]", "hex string"),
        ] {
            let found = serde_json::from_str::<Object>(json)
                .unwrap_err()
                .to_string();
            assert!(found.contains(error), "{json}: {found}");
        }
    }
}
