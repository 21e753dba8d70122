//! Maps and where globals live: the ring buffer, the scalars map (session
//! state, `target()`, scalar globals), the per-CPU scratch memory, and one
//! map per array or statistic that kernel code touches.

use tapmatrix_ir::bpf::{BpfMap, Field, GlobalPlace, MapKind, MapRole, StatLayout};
use tapmatrix_ir::{Expr, GlobalType, HistSpec, LValue, Limits, Program, ScalarType, Stmt};

use crate::error::BpfError;

/// The ring buffer's size in bytes for `stap -s MB` (a power of two,
/// whole pages; at most 1 GiB). The kernel allocates and zeroes all of it
/// when the object loads: 4 MiB cost a TCG guest about 12 ms more per
/// script than 512 KiB did (6.1, 60 scripts: 1.46 s against 0.71 s).
fn ringbuf_bytes(limits: &tapmatrix_ir::Limits) -> u32 {
    limits
        .buffer_mb
        .clamp(1, 1024)
        .next_power_of_two()
        .saturating_mul(1 << 20)
}

/// Per-CPU scratch memory for strings, keys and records: the largest
/// per-CPU value the kernel allocates (`PCPU_MIN_UNIT_SIZE`) with room
/// for the 16-bit offsets of loads and stores.
pub(crate) const SCRATCH_BYTES: u32 = 32 * 1024 - 8;

/// Slots of scratch memory per CPU: one for each context a handler can
/// run in over another's on that CPU (a task, a softirq, a hard interrupt,
/// an NMI), as the kernel's own recursion guards count them.
pub(crate) const SCRATCH_SLOTS: u32 = 4;

/// The largest key of a hash map (`MAX_BPF_STACK`).
const MAX_KEY: u32 = 512;

/// Offset of the session state word in the scalars map's value.
pub(crate) const STATE_OFFSET: i16 = bpf::STATE_OFFSET as i16;
/// Offset of `target()` in the scalars map's value.
pub(crate) const TARGET_OFFSET: i16 = bpf::TARGET_OFFSET as i16;
/// Offset of the count of records the ring buffer refused.
pub(crate) const LOST_OFFSET: i16 = bpf::LOST_OFFSET as i16;
/// Offset of the wall clock's offset from the monotonic clock.
pub(crate) const REALTIME_OFFSET: i16 = bpf::REALTIME_OFFSET as i16;
/// Offset of the count of hits skipped for want of a scratch slot.
pub(crate) const SKIPPED_OFFSET: i16 = bpf::SKIPPED_OFFSET as i16;
use tapmatrix_ir::bpf::{
    self, ARRAY_VALUE_SIZES, HASH_VALUE_SIZES, KEY_SIZES, SCALARS_START, size_class,
};

/// `n` padded to a size class, or too large.
fn class(n: u32, classes: &[u32], what: &'static str) -> Result<u32, BpfError> {
    size_class(n, classes).ok_or(BpfError::TooLarge {
        what,
        limit: "the map sizes the agent reads",
    })
}

/// The maps of an artefact and the place of every global.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    pub(crate) maps: Vec<BpfMap>,
    pub(crate) globals: Vec<GlobalPlace>,
    pub(crate) events: usize,
    pub(crate) scalars: usize,
    pub(crate) scratch: usize,
    /// The `@entry` values' map, when handlers in the kernel save some.
    pub(crate) entries: Option<EntryLayout>,
}

/// The map of `@entry` values (`MapRole::Entries`): an LRU hash keyed by
/// `u32 tid, u32 entry key`, whose value is a `u32` count of the calls in
/// flight whose values it holds (at most `depth`), a `u32` top (the next
/// slot to push, modulo `depth`), and a ring of `depth` slots of `slot`
/// bytes, each holding one call's values at the offsets of its key: a
/// stack that drops its oldest call when full, as the runtime's does.
#[derive(Debug, Clone)]
pub(crate) struct EntryLayout {
    /// The map's index.
    pub(crate) map: usize,
    /// Slots in the ring (a power of two).
    pub(crate) depth: u32,
    /// Bytes of one slot.
    pub(crate) slot: u32,
    /// Per entry key: each value's field in a slot.
    pub(crate) keys: Vec<(u32, Vec<Field>)>,
}

/// Offset of the count of calls in an entries value.
pub(crate) const ENTRY_COUNT: i16 = 0;
/// Offset of the top of the ring in an entries value.
pub(crate) const ENTRY_TOP: i16 = 4;
/// Offset of the ring in an entries value (after count and top).
pub(crate) const ENTRY_RING: u32 = 8;

/// Bytes an entries value takes at most: the ring's depth shrinks for
/// large slots (strings: 8 calls of one 512-byte string) to stay within
/// it, and within the scratch memory a new element is built in.
const ENTRY_VALUE_MAX: u32 = 8192 + ENTRY_RING;

/// Bytes the entries map's elements take together at most (an LRU hash
/// allocates all of them when it is created).
const ENTRY_MAP_BYTES: u32 = 4 << 20;

/// Threads (times entry keys) with calls in flight the entries map keeps
/// at most and at least; the least recently used go first.
const ENTRY_THREADS: (u32, u32) = (4096, 256);

impl EntryLayout {
    /// The layout for the return probes of `program` that read `@entry`
    /// values, or `None` when there are none.
    fn of(program: &Program) -> Option<(EntryLayout, BpfMap)> {
        let limits = program.limits;
        let mut keys = Vec::new();
        for probe in &program.probes {
            let Some(entry) = &probe.entry else { continue };
            if keys.iter().any(|(k, _)| *k == entry.key) {
                continue;
            }
            let mut offset = 0;
            let mut fields = Vec::new();
            for ty in &entry.types {
                let len = match ty {
                    ScalarType::Long => 8,
                    ScalarType::String => string_bytes(&limits),
                };
                fields.push(Field {
                    offset,
                    ty: *ty,
                    len,
                });
                offset += len;
            }
            keys.push((entry.key, fields));
        }
        if keys.is_empty() {
            return None;
        }
        let slot = keys
            .iter()
            .map(|(_, fields)| fields.iter().map(|f| f.len).sum::<u32>())
            .max()
            .unwrap_or(0)
            .max(8);
        let mut depth = bpf::ENTRY_DEPTH_MAX;
        while depth > 1 && ENTRY_RING + depth * slot > ENTRY_VALUE_MAX {
            depth /= 2;
        }
        let map = BpfMap {
            name: "entries".to_owned(),
            role: MapRole::Entries,
            kind: MapKind::LruHash,
            key_size: 8,
            value_size: ENTRY_RING + depth * slot,
            max_entries: (ENTRY_MAP_BYTES / (ENTRY_RING + depth * slot))
                .clamp(ENTRY_THREADS.1, ENTRY_THREADS.0),
        };
        Some((
            EntryLayout {
                map: 0,
                depth,
                slot,
                keys,
            },
            map,
        ))
    }

    /// The fields of `key`'s values in a slot.
    pub(crate) fn fields(&self, key: u32) -> Option<&[Field]> {
        self.keys
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, fields)| fields.as_slice())
    }
}

/// Bytes a string of `max_string_len` takes in a map (rounded up to 8).
pub(crate) fn string_bytes(limits: &Limits) -> u32 {
    round8(limits.max_string_len.max(1))
}

pub(crate) fn round8(n: u32) -> u32 {
    n.div_ceil(8) * 8
}

/// The key fields of an array with `keys`: longs take 8 bytes, strings
/// share what the 512-byte key limit leaves (a longer string key is
/// truncated there).
fn key_fields(keys: &[ScalarType], limits: &Limits) -> Result<(Vec<Field>, u32), BpfError> {
    let longs = keys.iter().filter(|k| **k == ScalarType::Long).count() as u32;
    let strings = keys.len() as u32 - longs;
    let string_len = MAX_KEY
        .saturating_sub(8 * longs)
        .checked_div(strings)
        .map_or(0, |room| (room / 8 * 8).min(string_bytes(limits)));
    if strings > 0 && string_len < 8 {
        return Err(BpfError::TooLarge {
            what: "an array key",
            limit: "512 bytes",
        });
    }
    let mut offset = 0;
    let mut fields = Vec::new();
    for key in keys {
        let len = match key {
            ScalarType::Long => 8,
            ScalarType::String => string_len,
        };
        fields.push(Field {
            offset,
            ty: *key,
            len,
        });
        offset += len;
    }
    Ok((fields, offset.max(8)))
}

/// The histogram the program prints or reads of global `g`, if any.
fn hist_of(program: &Program, g: u32) -> Option<HistSpec> {
    let found = std::cell::Cell::new(None);
    let global_of = |lv: &LValue| match lv {
        LValue::Global(i) => Some(*i),
        LValue::Index { array, .. } => Some(*array),
        LValue::Local(_) => None,
    };
    tapmatrix_ir::visit::walk_program(
        program,
        &mut |s| {
            if let Stmt::ForeachHist { hist, stat, .. } = s
                && found.get().is_none()
            {
                let g2 = match stat {
                    Expr::Global(i) => Some(*i),
                    Expr::Index { array, .. } => Some(*array),
                    _ => None,
                };
                if g2 == Some(g) {
                    found.set(Some(*hist));
                }
            }
        },
        &mut |e| {
            if let Expr::Hist { spec, stat } | Expr::HistBucket { spec, stat, .. } = e
                && found.get().is_none()
                && global_of(stat) == Some(g)
            {
                found.set(Some(*spec));
            }
        },
    );
    found.get()
}

/// Buckets of a histogram as the runtime keeps them.
pub(crate) fn bucket_count(spec: HistSpec) -> Option<u32> {
    spec.bucket_count().ok().and_then(|n| u32::try_from(n).ok())
}

impl Layout {
    /// The layout for `program`, the kernel keeping the globals `kernel`
    /// says (by index); the others stay in the runtime.
    /// With `in_kernel`, the handlers run in the kernel: the map of
    /// `@entry` values is added when return probes read some.
    pub(crate) fn new(
        program: &Program,
        kernel: &[bool],
        in_kernel: bool,
    ) -> Result<Layout, BpfError> {
        let limits = program.limits;
        let mut maps = vec![
            BpfMap {
                name: "events".to_owned(),
                role: MapRole::Events,
                kind: MapKind::Ringbuf,
                key_size: 0,
                value_size: 0,
                max_entries: ringbuf_bytes(&limits),
            },
            BpfMap {
                name: "scratch".to_owned(),
                role: MapRole::Scratch,
                kind: MapKind::PercpuArray,
                key_size: 4,
                value_size: SCRATCH_BYTES,
                max_entries: SCRATCH_SLOTS,
            },
        ];
        let mut globals = Vec::new();
        let mut scalars = SCALARS_START;
        for (index, global) in program.globals.iter().enumerate() {
            let g = index as u32;
            if !kernel.get(index).copied().unwrap_or(false) {
                globals.push(GlobalPlace::Host);
                continue;
            }
            let entries = global.max_entries.unwrap_or(limits.max_map_entries).max(1);
            let map_name = format!("g{index}");
            let place = match &global.ty {
                GlobalType::Scalar { ty } => {
                    let len = match ty {
                        ScalarType::Long => 8,
                        ScalarType::String => string_bytes(&limits),
                    };
                    let field = Field {
                        offset: scalars,
                        ty: *ty,
                        len,
                    };
                    scalars += len;
                    GlobalPlace::Scalar { field }
                }
                GlobalType::Stats => {
                    let hist = hist_of(program, g);
                    let buckets = hist.and_then(bucket_count).unwrap_or(0);
                    maps.push(BpfMap {
                        name: map_name,
                        role: MapRole::Global { global: g },
                        kind: MapKind::PercpuArray,
                        key_size: 4,
                        value_size: class(32 + 8 * buckets, &ARRAY_VALUE_SIZES, "a statistic")?,
                        max_entries: 1,
                    });
                    GlobalPlace::Stat {
                        map: maps.len() as u32 - 1,
                        layout: StatLayout {
                            offset: 0,
                            hist,
                            buckets,
                        },
                    }
                }
                GlobalType::Array {
                    keys,
                    value: Some(value),
                } => {
                    let (keys, key_size) = key_fields(keys, &limits)?;
                    let len = match value {
                        ScalarType::Long => 8,
                        ScalarType::String => string_bytes(&limits),
                    };
                    maps.push(BpfMap {
                        name: map_name,
                        role: MapRole::Global { global: g },
                        kind: MapKind::Hash,
                        key_size: class(key_size, &KEY_SIZES, "an array key")?,
                        value_size: class(8 + len, &HASH_VALUE_SIZES, "an array element")?,
                        max_entries: entries,
                    });
                    GlobalPlace::Array {
                        map: maps.len() as u32 - 1,
                        keys,
                        value: Field {
                            offset: 8,
                            ty: *value,
                            len,
                        },
                    }
                }
                GlobalType::Array { keys, value: None } => {
                    let (keys, key_size) = key_fields(keys, &limits)?;
                    let hist = hist_of(program, g);
                    let buckets = hist.and_then(bucket_count).unwrap_or(0);
                    maps.push(BpfMap {
                        name: map_name,
                        role: MapRole::Global { global: g },
                        kind: MapKind::PercpuHash,
                        key_size: class(key_size, &KEY_SIZES, "an array key")?,
                        value_size: class(8 + 32 + 8 * buckets, &HASH_VALUE_SIZES, "a statistic")?,
                        max_entries: entries,
                    });
                    GlobalPlace::StatArray {
                        map: maps.len() as u32 - 1,
                        keys,
                        layout: StatLayout {
                            offset: 8,
                            hist,
                            buckets,
                        },
                    }
                }
            };
            globals.push(place);
        }
        maps.push(BpfMap {
            name: "scalars".to_owned(),
            role: MapRole::Scalars,
            kind: MapKind::Array,
            key_size: 4,
            value_size: class(scalars, &ARRAY_VALUE_SIZES, "the scalar globals")?,
            max_entries: 1,
        });
        let scalars_index = maps.len() - 1;
        let entries = match EntryLayout::of(program).filter(|_| in_kernel) {
            Some((mut entries, map)) => {
                maps.push(map);
                entries.map = maps.len() - 1;
                Some(entries)
            }
            None => None,
        };
        Ok(Layout {
            maps,
            globals,
            events: 0,
            scalars: scalars_index,
            scratch: 1,
            entries,
        })
    }
}
