//! A small typed reader of raw BTF (`/sys/kernel/btf/vmlinux`).
//!
//! The blob is kept as bytes; loading walks the type section once to record
//! where each type starts (a `Vec<u32>`), and the name index is built on the
//! first lookup by name. Every access is bounds-checked: corrupt input gives
//! a [`BtfError`], never a panic. Format: the kernel's
//! `Documentation/bpf/btf.rst`.

use std::hash::Hasher;
use std::sync::{Arc, OnceLock};

mod subset;

pub use subset::{SubsetOptions, SubsetRoot};

/// A BTF type id (0 is `void`).
pub type TypeId = u32;

/// What is wrong with a BTF blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BtfError {
    /// The blob is shorter than its header or a section it declares.
    #[error("BTF truncated: {0}")]
    Truncated(&'static str),
    /// The magic number is not 0xeB9F (little-endian).
    #[error("not little-endian BTF (magic {0:#06x}, expected 0xeb9f)")]
    BadMagic(u16),
    /// A type record has a kind this reader does not know.
    #[error("BTF type {id} has unknown kind {kind}")]
    UnknownKind {
        /// The type's id.
        id: TypeId,
        /// The kind number found.
        kind: u32,
    },
    /// A type id points past the last type.
    #[error("BTF type id {0} out of range")]
    BadTypeId(TypeId),
    /// A name offset points outside the string section or lacks a NUL.
    #[error("BTF string offset {0} invalid")]
    BadString(u32),
    /// Typedef/modifier chains loop or nest too deep.
    #[error("BTF type {0} nests too deep (a cycle?)")]
    TooDeep(TypeId),
    /// The operation needs a different kind of type.
    #[error("BTF type {id} is {found}, not {expected}")]
    WrongKind {
        /// The type's id.
        id: TypeId,
        /// What the operation needed.
        expected: &'static str,
        /// What the type is.
        found: &'static str,
    },
    /// [`Btf::with_split`] on a BTF that is itself split.
    #[error("a module's BTF cannot be the base of another split BTF")]
    SplitOfSplit,
    /// A [`Btf::subset`] root names nothing in the blob.
    #[error("BTF has no {0}")]
    NoSuchRoot(SubsetRoot),
}

/// The kinds of BTF type, as numbered by the format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// `void` (id 0 only).
    Void = 0,
    /// An integer.
    Int = 1,
    /// A pointer.
    Ptr = 2,
    /// An array.
    Array = 3,
    /// A struct.
    Struct = 4,
    /// A union.
    Union = 5,
    /// An enum with 32-bit values.
    Enum = 6,
    /// A forward declaration.
    Fwd = 7,
    /// A typedef.
    Typedef = 8,
    /// `volatile`.
    Volatile = 9,
    /// `const`.
    Const = 10,
    /// `restrict`.
    Restrict = 11,
    /// A function (name and prototype).
    Func = 12,
    /// A function prototype.
    FuncProto = 13,
    /// A variable.
    Var = 14,
    /// A data section.
    Datasec = 15,
    /// A floating-point type.
    Float = 16,
    /// A declaration tag.
    DeclTag = 17,
    /// A type tag.
    TypeTag = 18,
    /// An enum with 64-bit values.
    Enum64 = 19,
}

impl Kind {
    fn from_u32(kind: u32) -> Option<Kind> {
        use Kind::*;
        Some(match kind {
            1 => Int,
            2 => Ptr,
            3 => Array,
            4 => Struct,
            5 => Union,
            6 => Enum,
            7 => Fwd,
            8 => Typedef,
            9 => Volatile,
            10 => Const,
            11 => Restrict,
            12 => Func,
            13 => FuncProto,
            14 => Var,
            15 => Datasec,
            16 => Float,
            17 => DeclTag,
            18 => TypeTag,
            19 => Enum64,
            _ => return None,
        })
    }

    /// The kind's name as the format documents it (`BTF_KIND_x` without prefix).
    pub fn name(self) -> &'static str {
        use Kind::*;
        match self {
            Void => "void",
            Int => "int",
            Ptr => "ptr",
            Array => "array",
            Struct => "struct",
            Union => "union",
            Enum => "enum",
            Fwd => "fwd",
            Typedef => "typedef",
            Volatile => "volatile",
            Const => "const",
            Restrict => "restrict",
            Func => "func",
            FuncProto => "func_proto",
            Var => "var",
            Datasec => "datasec",
            Float => "float",
            DeclTag => "decl_tag",
            TypeTag => "type_tag",
            Enum64 => "enum64",
        }
    }

    /// Bytes that follow the 12-byte common record, per `vlen`.
    fn extra_len(self, vlen: u32) -> u64 {
        use Kind::*;
        let vlen = u64::from(vlen);
        match self {
            Void | Ptr | Fwd | Typedef | Volatile | Const | Restrict | Func | Float | TypeTag => 0,
            Int | Var | DeclTag => 4,
            Array => 12,
            Struct | Union | Datasec | Enum64 => 12 * vlen,
            Enum | FuncProto => 8 * vlen,
        }
    }
}

const HEADER_LEN: usize = 24;

/// The slots of the name index for `types` types (at most half full).
fn name_capacity(types: usize) -> usize {
    (types * 2).next_power_of_two().max(16)
}
const MAX_DEPTH: usize = 64;

/// One blob's bytes and their index: a kernel's whole BTF, or a module's
/// split BTF (its own types and strings only).
struct Blob {
    data: Box<[u8]>,
    strings: (usize, usize),
    /// Offset (absolute, into `data`) of each of this blob's type records.
    offsets: Vec<u32>,
    /// The name index of this blob's types (ids as the whole `Btf` numbers
    /// them), built on first use.
    names: OnceLock<Vec<TypeId>>,
    /// The enumerators of this blob's enums by name (the first type's
    /// value where several declare one), built on first use.
    enumerators: OnceLock<std::collections::HashMap<Box<str>, i128>>,
}

/// A parsed BTF blob with an index of where each type starts: a kernel's
/// whole BTF, or a module's split BTF over it ([`Btf::with_split`]), which
/// shares the kernel's bytes and indexes instead of copying them.
pub struct Btf {
    /// This blob: the whole BTF, or the module's split part.
    own: Arc<Blob>,
    /// The base a split BTF continues (the kernel's blob, shared): its
    /// type ids come first, its strings at offsets below its string
    /// section's length.
    base: Option<Arc<Blob>>,
}

impl std::fmt::Debug for Btf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Btf")
            .field("bytes", &self.own.data.len())
            .field("types", &self.type_count())
            .field("split", &self.base.is_some())
            .finish()
    }
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Records where each type of `data[start..end]` starts; the first is
/// type `first_id + 1` (for errors).
fn index_types(
    data: &[u8],
    start: usize,
    end: usize,
    first_id: usize,
    offsets: &mut Vec<u32>,
) -> Result<(), BtfError> {
    let mut at = start;
    while at < end {
        let id = (first_id + offsets.len()) as TypeId + 1;
        let info = u32_at(data, at + 4).ok_or(BtfError::Truncated("type record"))?;
        let kind_number = (info >> 24) & 0x1f;
        let kind = Kind::from_u32(kind_number).ok_or(BtfError::UnknownKind {
            id,
            kind: kind_number,
        })?;
        let len = 12 + kind.extra_len(info & 0xffff);
        let next = (at as u64 + len) as usize;
        if next > end {
            return Err(BtfError::Truncated("type record"));
        }
        offsets.push(at as u32);
        at = next;
    }
    Ok(())
}

/// The common part of one type record.
#[derive(Clone, Copy)]
struct Record {
    at: usize,
    /// In a split BTF's own blob (else in the base, or the whole blob).
    split: bool,
    name_off: u32,
    kind: Kind,
    vlen: u32,
    kind_flag: bool,
    size_or_type: u32,
}

/// Where the sections of a blob lie: (types start, types end, strings
/// start, strings length), checked against its length.
fn sections(data: &[u8]) -> Result<(usize, usize, usize, usize), BtfError> {
    let header = data
        .get(..HEADER_LEN)
        .ok_or(BtfError::Truncated("header"))?;
    let magic = u16::from_le_bytes([header[0], header[1]]);
    if magic != 0xeb9f {
        return Err(BtfError::BadMagic(magic));
    }
    let field = |i: usize| u32_at(data, 4 + 4 * i).unwrap_or(0) as usize;
    let hdr_len = field(0);
    let (type_off, type_len, str_off, str_len) = (field(1), field(2), field(3), field(4));
    let types_start = hdr_len
        .checked_add(type_off)
        .ok_or(BtfError::Truncated("type section"))?;
    let types_end = types_start
        .checked_add(type_len)
        .filter(|&end| end <= data.len())
        .ok_or(BtfError::Truncated("type section"))?;
    let strings_start = hdr_len
        .checked_add(str_off)
        .ok_or(BtfError::Truncated("string section"))?;
    strings_start
        .checked_add(str_len)
        .filter(|&end| end <= data.len())
        .ok_or(BtfError::Truncated("string section"))?;
    if u32::try_from(data.len()).is_err() {
        return Err(BtfError::Truncated("blob larger than 4 GiB"));
    }
    Ok((types_start, types_end, strings_start, str_len))
}

impl Blob {
    /// Parses a blob and indexes its types, numbered after `first_id`.
    fn parse(data: Box<[u8]>, first_id: usize) -> Result<Blob, BtfError> {
        let (types_start, types_end, strings_start, str_len) = sections(&data)?;
        let mut offsets = Vec::with_capacity((types_end - types_start) / 20);
        index_types(&data, types_start, types_end, first_id, &mut offsets)?;
        Ok(Blob {
            data,
            strings: (strings_start, str_len),
            offsets,
            names: OnceLock::new(),
            enumerators: OnceLock::new(),
        })
    }

    /// The raw bytes of a string of this blob's section (no UTF-8 check).
    fn name_bytes(&self, offset: u32) -> Option<&[u8]> {
        let (start, len) = self.strings;
        let rest = self.data.get(start..start + len)?.get(offset as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(&rest[..end])
    }

    /// An open-addressing hash table of this blob's named types (ids from
    /// `first_id + 1`; 0 = empty slot), built on first use: one pass, no
    /// allocation per name. `name` reads a name offset (a split blob's
    /// types may name strings of the base).
    fn name_index<'a>(&self, first_id: usize, name: impl Fn(u32) -> Option<&'a [u8]>) -> &[TypeId] {
        self.names.get_or_init(|| {
            let mut slots = vec![0; name_capacity(self.offsets.len())];
            let mask = slots.len() - 1;
            for (index, &at) in self.offsets.iter().enumerate() {
                let name_off = u32_at(&self.data, at as usize).unwrap_or(0);
                if name_off == 0 {
                    continue;
                }
                let Some(name) = name(name_off) else {
                    continue;
                };
                let mut slot = hash_name(name) as usize & mask;
                while slots[slot] != 0 {
                    slot = (slot + 1) & mask;
                }
                slots[slot] = (first_id + index) as TypeId + 1;
            }
            slots
        })
    }
}

impl Btf {
    /// Parses a raw BTF blob and indexes its types.
    pub fn parse(data: Vec<u8>) -> Result<Btf, BtfError> {
        Ok(Btf {
            own: Arc::new(Blob::parse(data.into_boxed_slice(), 0)?),
            base: None,
        })
    }

    /// A module's split BTF (its `.BTF` section: type ids continue after
    /// this blob's last type, string offsets after this blob's strings)
    /// over this base: the module's types and strings are read through one
    /// [`Btf`] with the kernel's, whose bytes and indexes are shared, not
    /// copied (a module costs what its own `.BTF` does). This must be a
    /// whole BTF, not itself a split one.
    pub fn with_split(&self, split: &[u8]) -> Result<Btf, BtfError> {
        if self.base.is_some() {
            return Err(BtfError::SplitOfSplit);
        }
        if let Some(&[a, b]) = split.get(..2)
            && u16::from_le_bytes([a, b]) != 0xeb9f
        {
            return Err(BtfError::BadMagic(u16::from_le_bytes([a, b])));
        }
        let base = Arc::clone(&self.own);
        let own = Blob::parse(split.into(), base.offsets.len())?;
        Ok(Btf {
            own: Arc::new(own),
            base: Some(base),
        })
    }

    /// The raw blob, as parsed (for a split BTF, the module's own `.BTF`).
    pub fn bytes(&self) -> &[u8] {
        &self.own.data
    }

    /// Whether this is a module's split BTF over a kernel's.
    pub fn is_split(&self) -> bool {
        self.base.is_some()
    }

    /// How many types the blob holds (not counting `void`; a split BTF
    /// counts its base's).
    pub fn type_count(&self) -> usize {
        self.base_count() + self.own.offsets.len()
    }

    /// How many types the base holds (0 without one).
    fn base_count(&self) -> usize {
        self.base.as_ref().map_or(0, |base| base.offsets.len())
    }

    /// The blob a record lies in.
    fn blob(&self, split: bool) -> &Blob {
        match &self.base {
            Some(base) if !split => base,
            _ => &self.own,
        }
    }

    fn string(&self, offset: u32) -> Result<&str, BtfError> {
        let bytes = self.name_bytes(offset).ok_or(BtfError::BadString(offset))?;
        std::str::from_utf8(bytes).map_err(|_| BtfError::BadString(offset))
    }

    fn record(&self, id: TypeId) -> Result<Record, BtfError> {
        if id == 0 {
            return Ok(Record {
                at: 0,
                split: false,
                name_off: 0,
                kind: Kind::Void,
                vlen: 0,
                kind_flag: false,
                size_or_type: 0,
            });
        }
        let index = id as usize - 1;
        let (blob, index, split) = match &self.base {
            Some(base) if index < base.offsets.len() => (&**base, index, false),
            Some(base) => (&*self.own, index - base.offsets.len(), true),
            None => (&*self.own, index, false),
        };
        let at = *blob.offsets.get(index).ok_or(BtfError::BadTypeId(id))? as usize;
        let word = |i: usize| u32_at(&blob.data, at + 4 * i).ok_or(BtfError::Truncated("type"));
        let info = word(1)?;
        Ok(Record {
            at,
            split,
            name_off: word(0)?,
            kind: Kind::from_u32((info >> 24) & 0x1f).ok_or(BtfError::UnknownKind {
                id,
                kind: (info >> 24) & 0x1f,
            })?,
            vlen: info & 0xffff,
            kind_flag: info >> 31 == 1,
            size_or_type: word(2)?,
        })
    }

    /// Word `index` of a record (0: name, 1: info, 2: size or type, 3..: the rest).
    fn word(&self, record: &Record, index: usize) -> Result<u32, BtfError> {
        u32_at(&self.blob(record.split).data, record.at + 4 * index)
            .ok_or(BtfError::Truncated("type"))
    }

    fn extra(&self, record: &Record, index: usize) -> Result<u32, BtfError> {
        self.word(record, 3 + index)
    }

    /// The kind of a type.
    pub fn kind(&self, id: TypeId) -> Result<Kind, BtfError> {
        Ok(self.record(id)?.kind)
    }

    /// The name of a type (empty for anonymous types).
    pub fn name(&self, id: TypeId) -> Result<&str, BtfError> {
        self.string(self.record(id)?.name_off)
    }

    /// A type, decoded.
    pub fn get(&self, id: TypeId) -> Result<Type<'_>, BtfError> {
        let r = self.record(id)?;
        let name = self.string(r.name_off)?;
        Ok(match r.kind {
            Kind::Void => Type::Void,
            Kind::Int => {
                let word = self.extra(&r, 0)?;
                Type::Int(IntType {
                    name,
                    size: r.size_or_type,
                    signed: (word >> 24) & 1 == 1,
                    char: (word >> 24) & 2 == 2,
                    bool: (word >> 24) & 4 == 4,
                    bit_offset: (word >> 16) & 0xff,
                    bits: word & 0xff,
                })
            }
            Kind::Ptr => Type::Ptr(r.size_or_type),
            Kind::Array => Type::Array {
                elem: self.extra(&r, 0)?,
                index: self.extra(&r, 1)?,
                len: self.extra(&r, 2)?,
            },
            Kind::Struct | Kind::Union => Type::Composite(Composite {
                btf: self,
                id,
                name,
                union: r.kind == Kind::Union,
                size: r.size_or_type,
                record: r,
            }),
            Kind::Enum | Kind::Enum64 => Type::Enum(EnumType {
                btf: self,
                name,
                size: r.size_or_type,
                signed: r.kind_flag,
                record: r,
            }),
            Kind::Fwd => Type::Fwd {
                name,
                union: r.kind_flag,
            },
            Kind::Typedef => Type::Typedef {
                name,
                target: r.size_or_type,
            },
            Kind::Volatile => Type::Volatile(r.size_or_type),
            Kind::Const => Type::Const(r.size_or_type),
            Kind::Restrict => Type::Restrict(r.size_or_type),
            Kind::Func => Type::Func {
                name,
                proto: r.size_or_type,
                linkage: r.vlen,
            },
            Kind::FuncProto => Type::FuncProto(FuncProto {
                btf: self,
                ret: r.size_or_type,
                record: r,
            }),
            Kind::Var => Type::Var {
                name,
                ty: r.size_or_type,
            },
            Kind::Datasec => Type::Datasec {
                name,
                size: r.size_or_type,
            },
            Kind::Float => Type::Float {
                name,
                size: r.size_or_type,
            },
            Kind::DeclTag => Type::DeclTag {
                name,
                target: r.size_or_type,
                component: self.extra(&r, 0)? as i32,
            },
            Kind::TypeTag => Type::TypeTag {
                name,
                target: r.size_or_type,
            },
        })
    }

    /// The raw bytes of a name (no UTF-8 check): a split BTF's offsets
    /// past its base's strings are its own.
    fn name_bytes(&self, offset: u32) -> Option<&[u8]> {
        match &self.base {
            Some(base) => match offset.checked_sub(base.strings.1 as u32) {
                Some(own) => self.own.name_bytes(own),
                None => base.name_bytes(offset),
            },
            None => self.own.name_bytes(offset),
        }
    }

    /// Every type with this name, in increasing id order (the base's
    /// first).
    pub fn ids_by_name<'a>(&'a self, name: &'a str) -> impl Iterator<Item = TypeId> + 'a {
        let base = self
            .base
            .as_deref()
            .map(|base| base.name_index(0, |off| base.name_bytes(off)));
        let own = self
            .own
            .name_index(self.base_count(), |off| self.name_bytes(off));
        let lookup = move |slots: &'a [TypeId]| {
            let mask = slots.len().wrapping_sub(1);
            let mut slot = hash_name(name.as_bytes()) as usize & mask;
            std::iter::from_fn(move || {
                loop {
                    let id = *slots.get(slot)?;
                    if id == 0 {
                        return None;
                    }
                    slot = (slot + 1) & mask;
                    let off = self.record(id).map(|r| r.name_off).unwrap_or(0);
                    if self.name_bytes(off) == Some(name.as_bytes()) {
                        return Some(id);
                    }
                }
            })
        };
        base.into_iter().chain([own]).flat_map(lookup)
    }

    /// The value of the enumerator `name` of any enum (the first type that
    /// declares it, in id order): what `@const("ITER_IOVEC")` means on
    /// this kernel. The first lookup indexes every enumerator of the blob
    /// (shared by every user of it).
    pub fn enumerator(&self, name: &str) -> Option<i128> {
        let base = self.base_count();
        if let Some(blob) = &self.base
            && let Some(&value) = self.enumerators_of(blob, 1..=base).get(name)
        {
            return Some(value);
        }
        self.enumerators_of(&self.own, base + 1..=self.type_count())
            .get(name)
            .copied()
    }

    /// The enumerator index of `blob`, whose types are `ids`.
    fn enumerators_of<'b>(
        &self,
        blob: &'b Blob,
        ids: std::ops::RangeInclusive<usize>,
    ) -> &'b std::collections::HashMap<Box<str>, i128> {
        blob.enumerators.get_or_init(|| {
            let mut map = std::collections::HashMap::new();
            for id in ids {
                let Ok(id) = TypeId::try_from(id) else { break };
                if let Ok(Type::Enum(e)) = self.get(id) {
                    for (n, value) in e.values().filter_map(Result::ok) {
                        map.entry(n.into()).or_insert(value);
                    }
                }
            }
            map
        })
    }

    /// The first type of this kind and name.
    pub fn find(&self, kind: Kind, name: &str) -> Option<TypeId> {
        self.ids_by_name(name)
            .find(|&id| self.kind(id).is_ok_and(|k| k == kind))
    }

    /// A function's prototype by the function's name.
    pub fn function(&self, name: &str) -> Option<Result<Function<'_>, BtfError>> {
        let id = self.find(Kind::Func, name)?;
        Some(self.function_by_id(id))
    }

    /// A function's prototype by the `FUNC` type's id.
    pub fn function_by_id(&self, id: TypeId) -> Result<Function<'_>, BtfError> {
        match self.get(id)? {
            Type::Func { name, proto, .. } => match self.get(proto)? {
                Type::FuncProto(proto) => Ok(Function { name, proto }),
                other => Err(BtfError::WrongKind {
                    id: proto,
                    expected: "func_proto",
                    found: other.kind().name(),
                }),
            },
            other => Err(BtfError::WrongKind {
                id,
                expected: "func",
                found: other.kind().name(),
            }),
        }
    }

    /// A tracepoint's own arguments (`preempt`, `prev`, `next` of
    /// `sched_switch`), from the functions the kernel generates per event
    /// (`__bpf_trace_<event>`, `trace_event_raw_event_<event>` or
    /// `__traceiter_<event>`: they carry parameter names), else the
    /// `btf_trace_<event>` typedef (types only, names empty). The leading
    /// `void *__data` is left out.
    pub fn tracepoint_args(&self, event: &str) -> Option<Result<Vec<Param<'_>>, BtfError>> {
        // Functions whose prototype is the tracepoint's TP_PROTO after a
        // `void *__data`, with its names: `__traceiter_*` (5.10 on) is
        // traceable, so even kernels whose BTF has only traceable
        // functions (5.10's) have it.
        for prefix in ["__bpf_trace_", "trace_event_raw_event_", "__traceiter_"] {
            if let Some(function) = self.function(&format!("{prefix}{event}")) {
                return Some(function.and_then(|f| f.proto.params().skip(1).collect()));
            }
        }
        let typedef = self.find(Kind::Typedef, &format!("btf_trace_{event}"))?;
        let args = || -> Result<Vec<Param<'_>>, BtfError> {
            let pointer = self.resolve(typedef)?;
            let Type::Ptr(target) = self.get(pointer)? else {
                return Err(BtfError::WrongKind {
                    id: pointer,
                    expected: "ptr",
                    found: self.kind(pointer)?.name(),
                });
            };
            let Type::FuncProto(proto) = self.get(target)? else {
                return Err(BtfError::WrongKind {
                    id: target,
                    expected: "func_proto",
                    found: self.kind(target)?.name(),
                });
            };
            proto.params().skip(1).collect()
        };
        Some(args())
    }

    /// Follows typedefs, `const`, `volatile`, `restrict` and type tags to
    /// the type they name.
    pub fn resolve(&self, mut id: TypeId) -> Result<TypeId, BtfError> {
        for _ in 0..MAX_DEPTH {
            let r = self.record(id)?;
            match r.kind {
                Kind::Typedef | Kind::Const | Kind::Volatile | Kind::Restrict | Kind::TypeTag => {
                    id = r.size_or_type;
                }
                _ => return Ok(id),
            }
        }
        Err(BtfError::TooDeep(id))
    }

    /// The size of a type in bytes (`None` for `void`, functions and forward declarations).
    pub fn size_of(&self, id: TypeId) -> Result<Option<u64>, BtfError> {
        self.size_of_depth(id, 0)
    }

    fn size_of_depth(&self, id: TypeId, depth: usize) -> Result<Option<u64>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep(id));
        }
        let id = self.resolve(id)?;
        let r = self.record(id)?;
        Ok(match r.kind {
            Kind::Int | Kind::Struct | Kind::Union | Kind::Enum | Kind::Enum64 | Kind::Float => {
                Some(u64::from(r.size_or_type))
            }
            Kind::Datasec => Some(u64::from(r.size_or_type)),
            Kind::Ptr => Some(8),
            Kind::Array => {
                let elem = self.extra(&r, 0)?;
                let len = u64::from(self.extra(&r, 2)?);
                self.size_of_depth(elem, depth + 1)?
                    .map(|size| size.saturating_mul(len))
            }
            Kind::Var => self.size_of_depth(r.size_or_type, depth + 1)?,
            _ => None,
        })
    }

    /// A struct or union member by name, looking into anonymous members;
    /// the offset is from the start of `id`.
    pub fn member(&self, id: TypeId, name: &str) -> Result<Option<MemberLocation>, BtfError> {
        self.member_depth(id, name, 0)
    }

    fn member_depth(
        &self,
        id: TypeId,
        name: &str,
        depth: usize,
    ) -> Result<Option<MemberLocation>, BtfError> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep(id));
        }
        let resolved = self.resolve(id)?;
        let Type::Composite(composite) = self.get(resolved)? else {
            return Err(BtfError::WrongKind {
                id: resolved,
                expected: "struct or union",
                found: self.kind(resolved)?.name(),
            });
        };
        for member in composite.members() {
            let member = member?;
            if member.name == name {
                return Ok(Some(MemberLocation {
                    bit_offset: member.bit_offset,
                    bitfield_size: member.bitfield_size,
                    ty: member.ty,
                }));
            }
            if member.name.is_empty()
                && matches!(
                    self.kind(self.resolve(member.ty)?)?,
                    Kind::Struct | Kind::Union
                )
                && let Some(inner) = self.member_depth(member.ty, name, depth + 1)?
            {
                return Ok(Some(MemberLocation {
                    bit_offset: inner.bit_offset + member.bit_offset,
                    ..inner
                }));
            }
        }
        Ok(None)
    }

    /// A type as C text, e.g. `struct file *`, `const char *`, `unsigned int`.
    pub fn render(&self, id: TypeId) -> Result<String, BtfError> {
        self.declare(id, String::new(), 0)
    }

    /// C's inside-out declarations: `declarator` is what already wraps the
    /// type (`*`, `[16]`, `(*)(int)`); the result is the whole declaration.
    fn declare(&self, id: TypeId, declarator: String, depth: usize) -> Result<String, BtfError> {
        if depth > MAX_DEPTH {
            return Err(BtfError::TooDeep(id));
        }
        let base = |base: String| {
            if declarator.is_empty() {
                base
            } else {
                format!("{base} {declarator}")
            }
        };
        let named = |keyword: &str, name: &str| {
            if name.is_empty() {
                format!("{keyword} (anon)")
            } else {
                format!("{keyword} {name}")
            }
        };
        Ok(match self.get(id)? {
            Type::Void => base("void".to_owned()),
            Type::Int(int) => base(int.name.to_owned()),
            Type::Float { name, .. } | Type::Typedef { name, .. } => base(name.to_owned()),
            Type::Composite(c) => base(named(if c.union { "union" } else { "struct" }, c.name)),
            Type::Enum(e) => base(named("enum", e.name)),
            Type::Fwd { name, union } => base(named(if union { "union" } else { "struct" }, name)),
            Type::Ptr(target) => self.declare(target, format!("*{declarator}"), depth + 1)?,
            Type::Const(target) | Type::Volatile(target) | Type::Restrict(target) => {
                let word = self.kind(id)?.name();
                if self.kind(target)? == Kind::Ptr {
                    let declarator = if declarator.is_empty() {
                        word.to_owned()
                    } else {
                        format!("{word} {declarator}")
                    };
                    self.declare(target, declarator, depth + 1)?
                } else {
                    format!("{word} {}", self.declare(target, declarator, depth + 1)?)
                }
            }
            Type::TypeTag { target, .. } => self.declare(target, declarator, depth + 1)?,
            Type::Array { elem, len, .. } => {
                let declarator = if declarator.starts_with('*') {
                    format!("({declarator})[{len}]")
                } else {
                    format!("{declarator}[{len}]")
                };
                self.declare(elem, declarator, depth + 1)?
            }
            Type::FuncProto(proto) => {
                let mut params = Vec::new();
                for param in proto.params() {
                    let param = param?;
                    if param.ty == 0 && param.name.is_empty() {
                        params.push("...".to_owned());
                    } else {
                        params.push(self.declare(param.ty, String::new(), depth + 1)?);
                    }
                }
                let params = if params.is_empty() {
                    "void".to_owned()
                } else {
                    params.join(", ")
                };
                let declarator = if declarator.is_empty() {
                    format!("({params})")
                } else {
                    format!("({declarator})({params})")
                };
                self.declare(proto.ret, declarator, depth + 1)?
            }
            Type::Func { name, .. }
            | Type::Var { name, .. }
            | Type::Datasec { name, .. }
            | Type::DeclTag { name, .. } => name.to_owned(),
        })
    }
}

fn hash_name(name: &[u8]) -> u64 {
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(name);
    hasher.finish()
}

/// One decoded BTF type.
#[derive(Debug, Clone, Copy)]
pub enum Type<'a> {
    /// `void`.
    Void,
    /// An integer.
    Int(IntType<'a>),
    /// A pointer to the type.
    Ptr(TypeId),
    /// An array.
    Array {
        /// Element type.
        elem: TypeId,
        /// Index type.
        index: TypeId,
        /// Number of elements.
        len: u32,
    },
    /// A struct or union.
    Composite(Composite<'a>),
    /// An enum (32 or 64-bit values).
    Enum(EnumType<'a>),
    /// A forward declaration.
    Fwd {
        /// Its name.
        name: &'a str,
        /// A union rather than a struct.
        union: bool,
    },
    /// A typedef.
    Typedef {
        /// Its name.
        name: &'a str,
        /// The type it names.
        target: TypeId,
    },
    /// `volatile T`.
    Volatile(TypeId),
    /// `const T`.
    Const(TypeId),
    /// `restrict T`.
    Restrict(TypeId),
    /// A function.
    Func {
        /// Its name.
        name: &'a str,
        /// Its `FUNC_PROTO`.
        proto: TypeId,
        /// 0 static, 1 global, 2 extern.
        linkage: u32,
    },
    /// A function prototype.
    FuncProto(FuncProto<'a>),
    /// A variable.
    Var {
        /// Its name.
        name: &'a str,
        /// Its type.
        ty: TypeId,
    },
    /// A data section.
    Datasec {
        /// Its name.
        name: &'a str,
        /// Its size.
        size: u32,
    },
    /// A floating-point type.
    Float {
        /// Its name.
        name: &'a str,
        /// Its size.
        size: u32,
    },
    /// A declaration tag.
    DeclTag {
        /// The tag.
        name: &'a str,
        /// The tagged type.
        target: TypeId,
        /// -1 for the type itself, else a member or parameter index.
        component: i32,
    },
    /// A type tag.
    TypeTag {
        /// The tag.
        name: &'a str,
        /// The tagged type.
        target: TypeId,
    },
}

impl Type<'_> {
    /// The type's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Type::Void => Kind::Void,
            Type::Int(_) => Kind::Int,
            Type::Ptr(_) => Kind::Ptr,
            Type::Array { .. } => Kind::Array,
            Type::Composite(c) if c.union => Kind::Union,
            Type::Composite(_) => Kind::Struct,
            Type::Enum(e) if e.record.kind == Kind::Enum64 => Kind::Enum64,
            Type::Enum(_) => Kind::Enum,
            Type::Fwd { .. } => Kind::Fwd,
            Type::Typedef { .. } => Kind::Typedef,
            Type::Volatile(_) => Kind::Volatile,
            Type::Const(_) => Kind::Const,
            Type::Restrict(_) => Kind::Restrict,
            Type::Func { .. } => Kind::Func,
            Type::FuncProto(_) => Kind::FuncProto,
            Type::Var { .. } => Kind::Var,
            Type::Datasec { .. } => Kind::Datasec,
            Type::Float { .. } => Kind::Float,
            Type::DeclTag { .. } => Kind::DeclTag,
            Type::TypeTag { .. } => Kind::TypeTag,
        }
    }
}

/// An integer type's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntType<'a> {
    /// Its name (`unsigned int`).
    pub name: &'a str,
    /// Size in bytes.
    pub size: u32,
    /// Signed.
    pub signed: bool,
    /// A `char`.
    pub char: bool,
    /// A `_Bool`.
    pub bool: bool,
    /// Bit offset of the value inside its storage (normally 0).
    pub bit_offset: u32,
    /// Number of value bits.
    pub bits: u32,
}

/// A struct or union.
#[derive(Debug, Clone, Copy)]
pub struct Composite<'a> {
    btf: &'a Btf,
    record: Record,
    /// Its id.
    pub id: TypeId,
    /// Its name (empty when anonymous).
    pub name: &'a str,
    /// A union rather than a struct.
    pub union: bool,
    /// Size in bytes.
    pub size: u32,
}

impl std::fmt::Debug for Record {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}@{}", self.kind.name(), self.at)
    }
}

/// A member of a struct or union.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member<'a> {
    /// Its name (empty for an anonymous struct or union member).
    pub name: &'a str,
    /// Its type.
    pub ty: TypeId,
    /// Offset from the start of the struct, in bits.
    pub bit_offset: u32,
    /// Width in bits when a bitfield.
    pub bitfield_size: Option<u32>,
}

/// Where a member lies, as [`Btf::member`] finds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberLocation {
    /// Offset from the start of the outer struct, in bits.
    pub bit_offset: u32,
    /// Width in bits when a bitfield.
    pub bitfield_size: Option<u32>,
    /// The member's type.
    pub ty: TypeId,
}

impl<'a> Composite<'a> {
    /// The members, in declaration order.
    pub fn members(&self) -> impl Iterator<Item = Result<Member<'a>, BtfError>> + 'a {
        let (btf, record) = (self.btf, self.record);
        (0..record.vlen as usize).map(move |i| {
            let name_off = btf.extra(&record, 3 * i)?;
            let ty = btf.extra(&record, 3 * i + 1)?;
            let offset = btf.extra(&record, 3 * i + 2)?;
            let (bit_offset, bitfield_size) = if record.kind_flag {
                let size = offset >> 24;
                (offset & 0xff_ffff, (size != 0).then_some(size))
            } else {
                (offset, None)
            };
            Ok(Member {
                name: btf.string(name_off)?,
                ty,
                bit_offset,
                bitfield_size,
            })
        })
    }
}

/// An enum.
#[derive(Debug, Clone, Copy)]
pub struct EnumType<'a> {
    btf: &'a Btf,
    record: Record,
    /// Its name (empty when anonymous).
    pub name: &'a str,
    /// Size in bytes.
    pub size: u32,
    /// Values are signed.
    pub signed: bool,
}

impl<'a> EnumType<'a> {
    /// The enumerators: name and value (sign-extended when signed).
    pub fn values(&self) -> impl Iterator<Item = Result<(&'a str, i128), BtfError>> + 'a {
        let (btf, record, signed) = (self.btf, self.record, self.signed);
        let wide = record.kind == Kind::Enum64;
        (0..record.vlen as usize).map(move |i| {
            let stride = if wide { 3 } else { 2 };
            let name = btf.string(btf.extra(&record, stride * i)?)?;
            let lo = btf.extra(&record, stride * i + 1)?;
            let value = if wide {
                let hi = btf.extra(&record, stride * i + 2)?;
                let raw = (u64::from(hi) << 32) | u64::from(lo);
                if signed {
                    i128::from(raw as i64)
                } else {
                    i128::from(raw)
                }
            } else if signed {
                i128::from(lo as i32)
            } else {
                i128::from(lo)
            };
            Ok((name, value))
        })
    }
}

/// A function prototype.
#[derive(Debug, Clone, Copy)]
pub struct FuncProto<'a> {
    btf: &'a Btf,
    record: Record,
    /// The return type (0 for `void`).
    pub ret: TypeId,
}

/// A function parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param<'a> {
    /// Its name (empty when BTF has none).
    pub name: &'a str,
    /// Its type (0 with an empty name: the `...` of a variadic function).
    pub ty: TypeId,
}

impl<'a> FuncProto<'a> {
    /// The parameters, in order.
    pub fn params(&self) -> impl Iterator<Item = Result<Param<'a>, BtfError>> + 'a {
        let (btf, record) = (self.btf, self.record);
        (0..record.vlen as usize).map(move |i| {
            Ok(Param {
                name: btf.string(btf.extra(&record, 2 * i)?)?,
                ty: btf.extra(&record, 2 * i + 1)?,
            })
        })
    }
}

/// A function: its name and prototype.
#[derive(Debug, Clone, Copy)]
pub struct Function<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its prototype.
    pub proto: FuncProto<'a>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds BTF bytes from type records and a string table, per the spec.
    pub(crate) struct Builder {
        types: Vec<u8>,
        strings: Vec<u8>,
    }

    impl Builder {
        pub(crate) fn new() -> Self {
            Builder {
                types: Vec::new(),
                strings: vec![0],
            }
        }
        pub(crate) fn str(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let at = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            at
        }
        pub(crate) fn ty(
            &mut self,
            name: &str,
            kind: u32,
            vlen: u32,
            flag: bool,
            st: u32,
            extra: &[u32],
        ) {
            let name = self.str(name);
            let info = (u32::from(flag) << 31) | (kind << 24) | vlen;
            for w in [name, info, st].iter().chain(extra) {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
        }
        pub(crate) fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&0xeb9fu16.to_le_bytes());
            out.extend_from_slice(&[1, 0]);
            for w in [
                24u32,
                0,
                self.types.len() as u32,
                self.types.len() as u32,
                self.strings.len() as u32,
            ] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }

    /// A small BTF: ints, a struct with a bitfield and an anonymous union,
    /// typedefs, const char *, an array, an enum and `vfs_read`.
    pub(crate) fn sample() -> Vec<u8> {
        let mut b = Builder::new();
        b.ty("int", 1, 0, false, 4, &[(1 << 24) | 32]); // 1
        b.ty("unsigned int", 1, 0, false, 4, &[32]); // 2
        b.ty("char", 1, 0, false, 1, &[(3 << 24) | 8]); // 3: signed char
        b.ty("", 10, 0, false, 3, &[]); // 4: const char
        b.ty("", 2, 0, false, 4, &[]); // 5: const char *
        b.ty("pid_t", 8, 0, false, 1, &[]); // 6: typedef int pid_t
        let (a, f, c, name, pid) = (
            b.str("a"),
            b.str("flags"),
            b.str("comm"),
            b.str("name"),
            b.str("pid"),
        );
        // 7: union { int a; unsigned int flags; } (anonymous)
        b.ty("", 5, 2, false, 4, &[a, 1, 0, f, 2, 0]);
        b.ty("", 3, 0, false, 0, &[3, 1, 16]); // 8: char[16]
        // 9: struct task { pid_t pid; union {...}; char comm[16]; unsigned int b:3 (kind_flag) }
        let bits = b.str("bits");
        b.ty(
            "task",
            4,
            4,
            true,
            28,
            &[pid, 6, 0, 0, 7, 32, c, 8, 64, bits, 2, (3 << 24) | 192],
        );
        b.ty("", 2, 0, false, 9, &[]); // 10: struct task *
        let (file, buf) = (b.str("file"), b.str("buf"));
        // 11: proto int (struct task *file, const char *buf)
        b.ty("", 13, 2, false, 1, &[file, 10, buf, 5]);
        b.ty("vfs_read", 12, 1, false, 11, &[]); // 12
        let (red, neg) = (b.str("RED"), b.str("NEG"));
        b.ty("color", 6, 2, true, 4, &[red, 1, neg, (-2i32) as u32]); // 13
        let _ = name;
        b.build()
    }

    /// A module's split BTF over [`sample`]: its type ids continue at 14,
    /// its string offsets after the base's strings.
    pub(crate) fn sample_split(base: &Btf) -> Vec<u8> {
        let base_strings = u32_at(base.bytes(), 4 + 4 * 4).unwrap();
        let strings = b"mod_fn\0m\0";
        let mut types = Vec::new();
        // 14: int (struct task *m); 15: mod_fn, its function.
        for word in [0, (13 << 24) | 1, 1, base_strings + 7, 10] {
            types.extend_from_slice(&u32::to_le_bytes(word));
        }
        for word in [base_strings, 12 << 24 | 1, 14] {
            types.extend_from_slice(&u32::to_le_bytes(word));
        }
        let mut split = Vec::new();
        split.extend_from_slice(&0xeb9fu16.to_le_bytes());
        split.extend_from_slice(&[1, 0]);
        let (types_len, strings_len) = (types.len() as u32, strings.len() as u32);
        for word in [24, 0, types_len, types_len, strings_len] {
            split.extend_from_slice(&u32::to_le_bytes(word));
        }
        split.extend_from_slice(&types);
        split.extend_from_slice(strings);
        split
    }

    #[test]
    fn split_btf_merges_onto_its_base() {
        let base = Btf::parse(sample()).unwrap();
        let split = sample_split(&base);
        let strings = b"mod_fn\0m\0";
        let types_len = split.len() - 24 - strings.len();
        let merged = base.with_split(&split).unwrap();
        assert_eq!(merged.type_count(), 15);
        assert!(merged.is_split() && !base.is_split());
        // The base's bytes are shared, not copied.
        assert!(Arc::ptr_eq(merged.base.as_ref().unwrap(), &base.own));
        assert_eq!(merged.bytes(), &split[..]);
        // The same answers as one standalone blob holding the base's
        // types and strings, then the module's.
        let (types, strings) = (&split[24..24 + types_len], &split[24 + types_len..]);
        let base_bytes = base.bytes();
        let base_types = &base_bytes[24..24 + u32_at(base_bytes, 12).unwrap() as usize];
        let base_strs = &base_bytes[24 + base_types.len()..];
        let mut whole = split[..4].to_vec();
        let all_types = (base_types.len() + types.len()) as u32;
        let all_strings = (base_strs.len() + strings.len()) as u32;
        for word in [24, 0, all_types, all_types, all_strings] {
            whole.extend_from_slice(&u32::to_le_bytes(word));
        }
        for part in [base_types, types, base_strs, strings] {
            whole.extend_from_slice(part);
        }
        let rebuilt = Btf::parse(whole).unwrap();
        assert_eq!(rebuilt.type_count(), 15);
        for id in 0..=15 {
            assert_eq!(merged.render(id), rebuilt.render(id), "type {id}");
        }
        assert!(matches!(
            merged.with_split(&split).unwrap_err(),
            BtfError::SplitOfSplit
        ));
        for name in ["mod_fn", "vfs_read", "task", "int"] {
            assert_eq!(
                merged.ids_by_name(name).collect::<Vec<_>>(),
                rebuilt.ids_by_name(name).collect::<Vec<_>>(),
                "{name}"
            );
        }
        let function = merged.function("mod_fn").unwrap().unwrap();
        let params: Vec<_> = function.proto.params().map(Result::unwrap).collect();
        assert_eq!(params[0].name, "m");
        assert_eq!(merged.render(params[0].ty).unwrap(), "struct task *");
        // The base's own types are still there.
        assert!(merged.function("vfs_read").is_some());
        assert!(matches!(
            base.with_split(b"junk").unwrap_err(),
            BtfError::BadMagic(_)
        ));
        let mut short = split.clone();
        short.truncate(30);
        assert!(base.with_split(&short).is_err());
    }

    #[test]
    fn reads_the_sample() {
        let btf = Btf::parse(sample()).unwrap();
        assert_eq!(btf.type_count(), 13);
        assert_eq!(btf.render(5).unwrap(), "const char *");
        assert_eq!(btf.render(10).unwrap(), "struct task *");
        assert_eq!(btf.render(8).unwrap(), "char [16]");
        assert_eq!(btf.render(2).unwrap(), "unsigned int");
        assert_eq!(btf.render(11).unwrap(), "int (struct task *, const char *)");
        let f = btf.function("vfs_read").unwrap().unwrap();
        let params: Vec<_> = f.proto.params().map(Result::unwrap).collect();
        assert_eq!(params[0].name, "file");
        assert_eq!(btf.render(params[1].ty).unwrap(), "const char *");
        assert_eq!(btf.render(f.proto.ret).unwrap(), "int");
        assert!(btf.function("vfs_write").is_none());
        let task = btf.find(Kind::Struct, "task").unwrap();
        assert_eq!(btf.size_of(task).unwrap(), Some(28));
        assert_eq!(btf.size_of(8).unwrap(), Some(16));
        let flags = btf.member(task, "flags").unwrap().unwrap();
        assert_eq!((flags.bit_offset, flags.ty), (32, 2));
        let bits = btf.member(task, "bits").unwrap().unwrap();
        assert_eq!((bits.bit_offset, bits.bitfield_size), (192, Some(3)));
        assert_eq!(btf.member(task, "nope").unwrap(), None);
        assert_eq!(btf.resolve(6).unwrap(), 1);
        let Type::Int(int) = btf.get(btf.resolve(4).unwrap()).unwrap() else {
            panic!()
        };
        assert!(int.signed && int.char);
        let Type::Enum(e) = btf.get(13).unwrap() else {
            panic!()
        };
        let values: Vec<_> = e.values().map(Result::unwrap).collect();
        assert_eq!(values, vec![("RED", 1), ("NEG", -2)]);
    }

    #[test]
    fn renders_declarators() {
        let mut b = Builder::new();
        b.ty("char", 1, 0, false, 1, &[(1 << 24) | 8]); // 1
        b.ty("", 2, 0, false, 1, &[]); // 2: char *
        b.ty("", 10, 0, false, 2, &[]); // 3: char *const
        b.ty("", 3, 0, false, 0, &[2, 1, 4]); // 4: char *[4]
        b.ty("", 2, 0, false, 4, &[]); // 5: char *(*)[4]
        let x = b.str("x");
        b.ty("", 13, 2, false, 2, &[x, 1, 0, 0]); // 6: char *(char, ...)
        b.ty("", 2, 0, false, 6, &[]); // 7: pointer to it
        b.ty("", 9, 0, false, 1, &[]); // 8: volatile char
        b.ty("", 2, 0, false, 8, &[]); // 9: volatile char *
        let btf = Btf::parse(b.build()).unwrap();
        assert_eq!(btf.render(3).unwrap(), "char *const");
        assert_eq!(btf.render(4).unwrap(), "char *[4]");
        assert_eq!(btf.render(5).unwrap(), "char *(*)[4]");
        assert_eq!(btf.render(7).unwrap(), "char *(*)(char, ...)");
        assert_eq!(btf.render(9).unwrap(), "volatile char *");
        assert_eq!(btf.size_of(4).unwrap(), Some(32));
        assert_eq!(btf.size_of(6).unwrap(), None);
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(
            Btf::parse(vec![1, 2]).unwrap_err(),
            BtfError::Truncated("header")
        );
        let mut bytes = sample();
        bytes[0] = 0;
        assert!(matches!(
            Btf::parse(bytes).unwrap_err(),
            BtfError::BadMagic(_)
        ));
    }

    /// Exercises every accessor on every type; must not panic.
    pub(crate) fn walk(btf: &Btf) {
        for id in 0..=btf.type_count() as TypeId + 1 {
            let _ = btf.render(id);
            let _ = btf.size_of(id);
            let _ = btf.resolve(id);
            let _ = btf.member(id, "pid");
            if let Ok(Type::Composite(c)) = btf.get(id) {
                c.members().for_each(drop);
            }
            if let Ok(Type::FuncProto(p)) = btf.get(id) {
                p.params().for_each(drop);
            }
            if let Ok(Type::Enum(e)) = btf.get(id) {
                e.values().for_each(drop);
            }
        }
        let _ = btf.function("vfs_read");
        let root = SubsetRoot::Function("vfs_read".to_owned());
        let options = SubsetOptions {
            max_pointer_depth: Some(1),
        };
        if let Ok(bytes) = btf.subset(&[root], options) {
            Btf::parse(bytes).unwrap();
        }
    }

    #[test]
    fn corrupt_input_never_panics() {
        let good = sample();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut bytes = good.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % bytes.len();
                bytes[at] = next() as u8;
            }
            if next() % 8 == 0 {
                bytes.truncate((next() as usize) % bytes.len());
            }
            if let Ok(btf) = Btf::parse(bytes) {
                walk(&btf);
            }
        }
    }
}
