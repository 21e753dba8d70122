//! Maps and where globals live: the ring buffer, the scalars map (session
//! state, `target()`, scalar globals), the per-CPU scratch memory, and one
//! map per array or statistic that kernel code touches.

use tapmatrix_ir::bpf::{BpfMap, Field, GlobalPlace, MapKind, MapRole, StatLayout};
use tapmatrix_ir::{Expr, GlobalType, HistSpec, LValue, Limits, Program, ScalarType, Stmt};

use crate::error::BpfError;

/// The ring buffer's size in bytes (a power of two, whole pages).
pub(crate) const RINGBUF_BYTES: u32 = 1 << 22;

/// Per-CPU scratch memory for strings, keys and records: the largest
/// per-CPU value the kernel allocates (`PCPU_MIN_UNIT_SIZE`) with room
/// for the 16-bit offsets of loads and stores.
pub(crate) const SCRATCH_BYTES: u32 = 32 * 1024 - 8;

/// The largest key of a hash map (`MAX_BPF_STACK`).
const MAX_KEY: u32 = 512;

/// Offset of the session state word in the scalars map's value.
pub(crate) const STATE_OFFSET: i16 = bpf::STATE_OFFSET as i16;
/// Offset of `target()` in the scalars map's value.
pub(crate) const TARGET_OFFSET: i16 = bpf::TARGET_OFFSET as i16;
/// Offset of the count of records the ring buffer refused.
pub(crate) const LOST_OFFSET: i16 = bpf::LOST_OFFSET as i16;
/// Offset of the wall clock's lead over the monotonic clock.
pub(crate) const REALTIME_OFFSET: i16 = bpf::REALTIME_OFFSET as i16;
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
    pub(crate) fn new(program: &Program, kernel: &[bool]) -> Result<Layout, BpfError> {
        let limits = program.limits;
        let mut maps = vec![
            BpfMap {
                name: "events".to_owned(),
                role: MapRole::Events,
                kind: MapKind::Ringbuf,
                key_size: 0,
                value_size: 0,
                max_entries: RINGBUF_BYTES,
            },
            BpfMap {
                name: "scratch".to_owned(),
                role: MapRole::Scratch,
                kind: MapKind::PercpuArray,
                key_size: 4,
                value_size: SCRATCH_BYTES,
                max_entries: 1,
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
        Ok(Layout {
            maps,
            globals,
            events: 0,
            scalars: scalars_index,
            scratch: 1,
        })
    }
}
