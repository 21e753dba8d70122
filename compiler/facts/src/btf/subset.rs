//! Cutting a small, valid BTF blob out of a big one: the types some roots
//! (functions, named types, tracepoints) reach, renumbered densely, with
//! only the strings they use. Test fixtures carry such subsets instead of
//! the kernel's 3 to 6 MB blob.

use std::collections::{HashMap, VecDeque};

use super::{Btf, BtfError, HEADER_LEN, Kind, TypeId};

/// Where a [`Btf::subset`] starts: it keeps each root and every type the
/// root reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubsetRoot {
    /// Every function (`FUNC`) of this name, with its prototype.
    Function(String),
    /// Every struct, union, enum and typedef of this name.
    Type(String),
    /// A tracepoint by event name (`sched_switch`): the
    /// `__bpf_trace_<event>`, `trace_event_raw_event_<event>` and
    /// `__traceiter_<event>` functions and the `btf_trace_<event>` typedef, those the blob has (what
    /// [`Btf::tracepoint_args`] reads).
    Tracepoint(String),
}

impl std::fmt::Display for SubsetRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubsetRoot::Function(name) => write!(f, "function `{name}`"),
            SubsetRoot::Type(name) => write!(f, "struct, union, enum or typedef `{name}`"),
            SubsetRoot::Tracepoint(event) => write!(
                f,
                "tracepoint `{event}` (no __bpf_trace_{event}, trace_event_raw_event_{event}, __traceiter_{event} or btf_trace_{event})"
            ),
        }
    }
}

/// How far [`Btf::subset`] follows pointers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SubsetOptions {
    /// A named struct or union that is reached only through more than this
    /// many pointers from every root becomes a forward declaration (`FWD`)
    /// of the same name, and nothing beyond it is kept. Roots are at depth
    /// 0: with `Some(1)`, `vfs_read`'s `struct file` is whole (one pointer
    /// away), and so is the `struct path` it embeds, but the `struct
    /// dentry` that path points to is a `FWD` (unless a root reaches it
    /// through fewer pointers). Types embedded by value, anonymous structs and
    /// everything but structs and unions are always kept whole. `None`
    /// follows every pointer.
    pub max_pointer_depth: Option<u32>,
}

/// A reference inside a type record, by 32-bit word index from the
/// record's start.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// A string offset.
    Name(usize),
    /// A type id.
    Type(usize),
}

/// The strings and type ids a record of this kind and `vlen` holds.
fn slots(kind: Kind, vlen: u32) -> Vec<Slot> {
    use Kind::*;
    let mut slots = vec![Slot::Name(0)];
    if matches!(
        kind,
        Ptr | Typedef | Volatile | Const | Restrict | Func | FuncProto | Var | DeclTag | TypeTag
    ) {
        slots.push(Slot::Type(2));
    }
    let vlen = vlen as usize;
    match kind {
        Array => slots.extend([Slot::Type(3), Slot::Type(4)]),
        Struct | Union => {
            for i in 0..vlen {
                slots.extend([Slot::Name(3 + 3 * i), Slot::Type(4 + 3 * i)]);
            }
        }
        Enum => slots.extend((0..vlen).map(|i| Slot::Name(3 + 2 * i))),
        Enum64 => slots.extend((0..vlen).map(|i| Slot::Name(3 + 3 * i))),
        FuncProto => {
            for i in 0..vlen {
                slots.extend([Slot::Name(3 + 2 * i), Slot::Type(4 + 2 * i)]);
            }
        }
        Datasec => slots.extend((0..vlen).map(|i| Slot::Type(3 + 3 * i))),
        Void | Int | Ptr | Fwd | Typedef | Volatile | Const | Restrict | Func | Var | Float
        | DeclTag | TypeTag => {}
    }
    slots
}

/// The string section being written: each string once, in first-use order.
struct Strings<'a> {
    bytes: Vec<u8>,
    offsets: HashMap<&'a [u8], u32>,
}

impl<'a> Strings<'a> {
    fn new() -> Self {
        Strings {
            bytes: vec![0],
            offsets: HashMap::from([(&b""[..], 0)]),
        }
    }

    fn add(&mut self, name: &'a [u8]) -> u32 {
        *self.offsets.entry(name).or_insert_with(|| {
            let at = self.bytes.len() as u32;
            self.bytes.extend_from_slice(name);
            self.bytes.push(0);
            at
        })
    }
}

impl Btf {
    /// A new BTF blob holding the roots and every type they reach through
    /// pointers, arrays, members, parameters, typedef and modifier chains,
    /// function prototypes and type tags, plus the declaration tags on the
    /// kept types: type ids renumbered densely in their original order, all
    /// references rewritten, only the strings in use, the header's version
    /// and flags kept. [`SubsetOptions::max_pointer_depth`] may turn structs
    /// far from every root into forward declarations.
    ///
    /// On the kept types the subset answers as the whole blob does: the
    /// same [`render`](Btf::render) of every type, members and offsets,
    /// prototypes and [`tracepoint_args`](Btf::tracepoint_args), and the
    /// same lookups by name for the roots. A root that names nothing is
    /// [`BtfError::NoSuchRoot`].
    pub fn subset(
        &self,
        roots: &[SubsetRoot],
        options: SubsetOptions,
    ) -> Result<Vec<u8>, BtfError> {
        let cap = options.max_pointer_depth.unwrap_or(u32::MAX);
        let count = self.type_count();
        // Fewest pointers between a root and each type (u32::MAX: unreached),
        // by breadth-first search with 0/1 weights: only pointers count.
        let mut depth = vec![u32::MAX; count + 1];
        let mut queue = VecDeque::new();
        for root in roots {
            let ids = self.root_ids(root);
            if ids.is_empty() {
                return Err(BtfError::NoSuchRoot(root.clone()));
            }
            for id in ids {
                depth[id as usize] = 0;
                queue.push_back((id, 0));
            }
        }
        let mut forward = vec![false; count + 1];
        while let Some((id, at_depth)) = queue.pop_front() {
            if at_depth > depth[id as usize] {
                continue;
            }
            let record = self.record(id)?;
            if at_depth > cap
                && matches!(record.kind, Kind::Struct | Kind::Union)
                && record.name_off != 0
            {
                forward[id as usize] = true;
                continue;
            }
            let step = u32::from(record.kind == Kind::Ptr);
            for slot in slots(record.kind, record.vlen) {
                let Slot::Type(word) = slot else { continue };
                let target = self.word(&record, word)?;
                let slot_depth = depth
                    .get_mut(target as usize)
                    .ok_or(BtfError::BadTypeId(target))?;
                let next = at_depth.saturating_add(step);
                if target != 0 && next < *slot_depth {
                    *slot_depth = next;
                    if step == 0 {
                        queue.push_front((target, next));
                    } else {
                        queue.push_back((target, next));
                    }
                }
            }
        }
        // Types leave the queue in order of depth, so a type made a FWD is
        // never reached through fewer pointers later.
        let mut kept: Vec<bool> = depth.iter().map(|&d| d != u32::MAX).collect();
        kept[0] = false;
        // Declaration tags point at what they tag: keep those on kept, whole types.
        for id in 1..=count as TypeId {
            let record = self.record(id)?;
            if record.kind == Kind::DeclTag {
                let target = record.size_or_type as usize;
                if target != 0 && kept.get(target) == Some(&true) && !forward[target] {
                    kept[id as usize] = true;
                }
            }
        }
        let kept: Vec<usize> = kept
            .iter()
            .enumerate()
            .filter_map(|(id, &keep)| keep.then_some(id))
            .collect();
        let mut new_ids = vec![0; count + 1];
        for (new, &old) in kept.iter().enumerate() {
            new_ids[old] = new as TypeId + 1;
        }
        let mut strings = Strings::new();
        let mut types = Vec::new();
        for id in kept {
            let record = self.record(id as TypeId)?;
            let name = strings.add(self.raw_string(record.name_off)?);
            if forward[id] {
                let info =
                    (u32::from(record.kind == Kind::Union) << 31) | ((Kind::Fwd as u32) << 24);
                for word in [name, info, 0] {
                    types.extend_from_slice(&word.to_le_bytes());
                }
                continue;
            }
            let len = 12 + record.kind.extra_len(record.vlen) as usize;
            let start = types.len();
            types.extend_from_slice(
                self.blob(record.split)
                    .data
                    .get(record.at..record.at + len)
                    .ok_or(BtfError::Truncated("type record"))?,
            );
            for slot in slots(record.kind, record.vlen) {
                let (word, value) = match slot {
                    Slot::Name(word) => (
                        word,
                        strings.add(self.raw_string(self.word(&record, word)?)?),
                    ),
                    Slot::Type(word) => {
                        let old = self.word(&record, word)?;
                        let new = new_ids.get(old as usize).copied();
                        (word, new.ok_or(BtfError::BadTypeId(old))?)
                    }
                };
                types[start + 4 * word..start + 4 * word + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        let mut out = Vec::with_capacity(HEADER_LEN + types.len() + strings.bytes.len());
        out.extend_from_slice(self.bytes().get(..4).ok_or(BtfError::Truncated("header"))?);
        let (types_len, strings_len) = (types.len() as u32, strings.bytes.len() as u32);
        for word in [HEADER_LEN as u32, 0, types_len, types_len, strings_len] {
            out.extend_from_slice(&word.to_le_bytes());
        }
        out.extend_from_slice(&types);
        out.extend_from_slice(&strings.bytes);
        Ok(out)
    }

    /// The ids a root names (empty when it names nothing).
    fn root_ids(&self, root: &SubsetRoot) -> Vec<TypeId> {
        let named = |name: &str, kinds: &[Kind]| -> Vec<TypeId> {
            self.ids_by_name(name)
                .filter(|&id| self.kind(id).is_ok_and(|kind| kinds.contains(&kind)))
                .collect()
        };
        match root {
            SubsetRoot::Function(name) => named(name, &[Kind::Func]),
            SubsetRoot::Type(name) => named(
                name,
                &[
                    Kind::Struct,
                    Kind::Union,
                    Kind::Enum,
                    Kind::Enum64,
                    Kind::Typedef,
                ],
            ),
            SubsetRoot::Tracepoint(event) => {
                let mut ids = named(&format!("__bpf_trace_{event}"), &[Kind::Func]);
                ids.extend(named(
                    &format!("trace_event_raw_event_{event}"),
                    &[Kind::Func],
                ));
                // 5.10 has neither function for most events: its
                // `__traceiter_<event>` carries the argument names.
                ids.extend(named(&format!("__traceiter_{event}"), &[Kind::Func]));
                ids.extend(named(&format!("btf_trace_{event}"), &[Kind::Typedef]));
                ids
            }
        }
    }

    /// A string's bytes as stored (no UTF-8 check).
    fn raw_string(&self, offset: u32) -> Result<&[u8], BtfError> {
        self.name_bytes(offset).ok_or(BtfError::BadString(offset))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use super::*;
    use crate::btf::Type;
    use crate::btf::tests::{Builder, sample};

    /// Checks that `sub` holds the same types as `full` from the given
    /// pairs on, member by member and parameter by parameter, and that a
    /// struct or union is a FWD in `sub` only where it lies more than
    /// `cap` pointers from the pairs.
    struct SameTypes<'a> {
        full: &'a Btf,
        sub: &'a Btf,
        cap: Option<u32>,
        /// The fewest pointers each pair was compared at.
        seen: HashMap<(TypeId, TypeId), u32>,
        /// Pairs where `sub` has a FWD for a whole type of `full`.
        truncated: usize,
    }

    impl<'a> SameTypes<'a> {
        fn new(full: &'a Btf, sub: &'a Btf, cap: Option<u32>) -> Self {
            SameTypes {
                full,
                sub,
                cap,
                seen: HashMap::new(),
                truncated: 0,
            }
        }

        fn check(&mut self, a: TypeId, b: TypeId) {
            let mut stack = vec![(a, b, 0u32)];
            while let Some((a, b, depth)) = stack.pop() {
                // Beyond the cap, depth no longer matters.
                let depth = depth.min(self.cap.map_or(0, |cap| cap + 1));
                if self.seen.get(&(a, b)).is_some_and(|&seen| seen <= depth) {
                    continue;
                }
                self.seen.insert((a, b), depth);
                self.pair(a, b, depth, &mut stack);
            }
        }

        fn pair(
            &mut self,
            a: TypeId,
            b: TypeId,
            depth: u32,
            stack: &mut Vec<(TypeId, TypeId, u32)>,
        ) {
            let (ta, tb) = (self.full.get(a).unwrap(), self.sub.get(b).unwrap());
            let at = || format!("full {a} / subset {b} at pointer depth {depth}");
            if let (Type::Composite(c), Type::Fwd { name, union }) = (ta, tb) {
                assert_eq!((c.name, c.union), (name, union), "{}", at());
                assert!(
                    self.cap.is_some_and(|cap| depth > cap),
                    "a FWD within the cap: {}",
                    at()
                );
                self.truncated += 1;
                return;
            }
            assert_eq!(ta.kind(), tb.kind(), "{}", at());
            assert_eq!(
                self.full.name(a).unwrap(),
                self.sub.name(b).unwrap(),
                "{}",
                at()
            );
            let mut push = |x: TypeId, y: TypeId, d: u32| {
                assert_eq!(x == 0, y == 0, "void in one only: {}", at());
                if x != 0 {
                    stack.push((x, y, d));
                }
            };
            match (ta, tb) {
                (Type::Int(x), Type::Int(y)) => assert_eq!(x, y),
                (Type::Ptr(x), Type::Ptr(y)) => push(x, y, depth + 1),
                (
                    Type::Array { elem, index, len },
                    Type::Array {
                        elem: e,
                        index: i,
                        len: l,
                    },
                ) => {
                    assert_eq!(len, l, "{}", at());
                    push(elem, e, depth);
                    push(index, i, depth);
                }
                (Type::Composite(x), Type::Composite(y)) => {
                    assert_eq!((x.union, x.size), (y.union, y.size), "{}", at());
                    let xs: Vec<_> = x.members().map(Result::unwrap).collect();
                    let ys: Vec<_> = y.members().map(Result::unwrap).collect();
                    assert_eq!(xs.len(), ys.len(), "{}", at());
                    for (m, n) in xs.iter().zip(&ys) {
                        assert_eq!(
                            (m.name, m.bit_offset, m.bitfield_size),
                            (n.name, n.bit_offset, n.bitfield_size),
                            "{}",
                            at()
                        );
                        push(m.ty, n.ty, depth);
                    }
                }
                (Type::Enum(x), Type::Enum(y)) => {
                    assert_eq!((x.size, x.signed), (y.size, y.signed), "{}", at());
                    let xs: Vec<_> = x.values().map(Result::unwrap).collect();
                    let ys: Vec<_> = y.values().map(Result::unwrap).collect();
                    assert_eq!(xs, ys, "{}", at());
                }
                (Type::Fwd { union: x, .. }, Type::Fwd { union: y, .. }) => assert_eq!(x, y),
                (Type::Typedef { target: x, .. }, Type::Typedef { target: y, .. })
                | (Type::Volatile(x), Type::Volatile(y))
                | (Type::Const(x), Type::Const(y))
                | (Type::Restrict(x), Type::Restrict(y))
                | (Type::TypeTag { target: x, .. }, Type::TypeTag { target: y, .. }) => {
                    push(x, y, depth);
                }
                (
                    Type::Func {
                        proto: x,
                        linkage: k,
                        ..
                    },
                    Type::Func {
                        proto: y,
                        linkage: l,
                        ..
                    },
                ) => {
                    assert_eq!(k, l, "{}", at());
                    push(x, y, depth);
                }
                (Type::FuncProto(x), Type::FuncProto(y)) => {
                    push(x.ret, y.ret, depth);
                    let xs: Vec<_> = x.params().map(Result::unwrap).collect();
                    let ys: Vec<_> = y.params().map(Result::unwrap).collect();
                    assert_eq!(xs.len(), ys.len(), "{}", at());
                    for (p, q) in xs.iter().zip(&ys) {
                        assert_eq!(p.name, q.name, "{}", at());
                        push(p.ty, q.ty, depth);
                    }
                }
                (Type::Float { size: x, .. }, Type::Float { size: y, .. }) => assert_eq!(x, y),
                (x, y) => panic!("unexpected pair {x:?} / {y:?}: {}", at()),
            }
        }
    }

    /// The queries a root answers, on both blobs, must agree; the types
    /// behind them must be the same (see [`SameTypes`]).
    fn assert_root_answers_match(full: &Btf, sub: &Btf, root: &SubsetRoot, same: &mut SameTypes) {
        match root {
            SubsetRoot::Function(name) => {
                assert_eq!(
                    full.render_function(name).unwrap().unwrap(),
                    sub.render_function(name).unwrap().unwrap()
                );
                same.check(
                    full.find(Kind::Func, name).unwrap(),
                    sub.find(Kind::Func, name).unwrap(),
                );
            }
            SubsetRoot::Type(name) => {
                for kind in [
                    Kind::Struct,
                    Kind::Union,
                    Kind::Enum,
                    Kind::Enum64,
                    Kind::Typedef,
                ] {
                    let (a, b) = (full.find(kind, name), sub.find(kind, name));
                    assert_eq!(a.is_some(), b.is_some(), "{root}: {}", kind.name());
                    let (Some(a), Some(b)) = (a, b) else { continue };
                    same.check(a, b);
                    assert_eq!(full.render(a).unwrap(), sub.render(b).unwrap());
                    assert_eq!(full.size_of(a).unwrap(), sub.size_of(b).unwrap());
                    let Type::Composite(composite) = full.get(a).unwrap() else {
                        continue;
                    };
                    for member in composite.members() {
                        let member = member.unwrap();
                        let (x, y) = (
                            full.member(a, member.name).unwrap().unwrap(),
                            sub.member(b, member.name).unwrap().unwrap(),
                        );
                        assert_eq!(
                            (x.bit_offset, x.bitfield_size),
                            (y.bit_offset, y.bitfield_size)
                        );
                        assert_eq!(full.render(x.ty).unwrap(), sub.render(y.ty).unwrap());
                    }
                }
            }
            SubsetRoot::Tracepoint(event) => {
                let args = |btf: &Btf| -> Vec<(String, String)> {
                    let params = btf.tracepoint_args(event).unwrap().unwrap();
                    params
                        .iter()
                        .map(|p| (p.name.to_owned(), btf.render(p.ty).unwrap()))
                        .collect()
                };
                assert_eq!(args(full), args(sub), "{root}");
                for prefix in ["__bpf_trace_", "trace_event_raw_event_", "__traceiter_"] {
                    let name = format!("{prefix}{event}");
                    let (a, b) = (full.find(Kind::Func, &name), sub.find(Kind::Func, &name));
                    assert_eq!(a.is_some(), b.is_some(), "{name}");
                    if let (Some(a), Some(b)) = (a, b) {
                        same.check(a, b);
                    }
                }
                let name = format!("btf_trace_{event}");
                let (a, b) = (
                    full.find(Kind::Typedef, &name),
                    sub.find(Kind::Typedef, &name),
                );
                assert_eq!(a.is_some(), b.is_some(), "{name}");
                if let (Some(a), Some(b)) = (a, b) {
                    same.check(a, b);
                }
            }
        }
    }

    /// Cuts, re-parses and compares; returns the subset and how many
    /// types it cut to a FWD.
    fn cut_and_compare(full: &Btf, roots: &[SubsetRoot], cap: Option<u32>) -> (Btf, usize) {
        let options = SubsetOptions {
            max_pointer_depth: cap,
        };
        let bytes = full.subset(roots, options).unwrap();
        assert_eq!(&bytes[..4], &full.bytes()[..4], "magic, version and flags");
        let sub = Btf::parse(bytes.clone()).unwrap();
        for id in 1..=sub.type_count() as TypeId {
            sub.render(id).unwrap();
        }
        let mut same = SameTypes::new(full, &sub, cap);
        for root in roots {
            assert_root_answers_match(full, &sub, root, &mut same);
        }
        // Every kept type and string is needed: cutting again changes nothing.
        assert_eq!(sub.subset(roots, options).unwrap(), bytes, "idempotent");
        let truncated = same.truncated;
        (sub, truncated)
    }

    fn function(name: &str) -> SubsetRoot {
        SubsetRoot::Function(name.to_owned())
    }

    fn ty(name: &str) -> SubsetRoot {
        SubsetRoot::Type(name.to_owned())
    }

    fn tracepoint(event: &str) -> SubsetRoot {
        SubsetRoot::Tracepoint(event.to_owned())
    }

    #[test]
    fn keeps_a_function_and_what_it_reaches() {
        let full = Btf::parse(sample()).unwrap();
        let (sub, truncated) = cut_and_compare(&full, &[function("vfs_read")], None);
        assert_eq!(truncated, 0);
        // Everything but the enum `color`, which nothing reaches.
        assert_eq!(sub.type_count(), 12);
        assert!(sub.find(Kind::Enum, "color").is_none());
        let text = String::from_utf8_lossy(sub.bytes());
        assert!(
            !text.contains("RED") && !text.contains("color"),
            "unused strings"
        );
        assert!(!text.contains("name\0"), "a string no type used");
        let task = sub.find(Kind::Struct, "task").unwrap();
        let bits = sub.member(task, "bits").unwrap().unwrap();
        assert_eq!((bits.bit_offset, bits.bitfield_size), (192, Some(3)));
        assert_eq!(sub.member(task, "flags").unwrap().unwrap().bit_offset, 32);

        let (enum_only, _) = cut_and_compare(&full, &[ty("color")], None);
        assert_eq!(enum_only.type_count(), 1);
        let (typedef, _) = cut_and_compare(&full, &[ty("pid_t")], None);
        assert_eq!(typedef.render(typedef.resolve(1).unwrap()).unwrap(), "int");
    }

    #[test]
    fn a_pointer_depth_cap_leaves_forward_declarations() {
        let full = Btf::parse(sample()).unwrap();
        let (sub, truncated) = cut_and_compare(&full, &[function("vfs_read")], Some(0));
        assert_eq!(truncated, 1);
        // vfs_read, its prototype, int, char, const char, const char *,
        // struct task * and `struct task` as a FWD.
        assert_eq!(sub.type_count(), 8);
        assert!(sub.find(Kind::Struct, "task").is_none());
        let fwd = sub.find(Kind::Fwd, "task").unwrap();
        assert_eq!(sub.render(fwd).unwrap(), "struct task");
        assert_eq!(
            sub.render_function("vfs_read").unwrap().unwrap(),
            "int vfs_read(struct task *file, const char *buf)"
        );
        // A root itself is whole whatever the cap.
        let (whole, truncated) =
            cut_and_compare(&full, &[function("vfs_read"), ty("task")], Some(0));
        assert_eq!((whole.type_count(), truncated), (12, 0));
    }

    /// `task_struct` and `mm`, a union, a type tag, declaration tags and
    /// the two shapes of tracepoint prototype.
    fn tracepoint_sample() -> Vec<u8> {
        let mut b = Builder::new();
        b.ty("int", 1, 0, false, 4, &[(1 << 24) | 32]); // 1
        b.ty("_Bool", 1, 0, false, 1, &[(4 << 24) | 8]); // 2
        let (pid, parent, mm, rcu) = (
            b.str("pid"),
            b.str("parent"),
            b.str("mm"),
            b.str("rcu_parent"),
        );
        b.ty(
            "task_struct",
            4,
            4,
            false,
            32,
            &[pid, 1, 0, parent, 4, 64, mm, 6, 128, rcu, 17, 192],
        ); // 3
        b.ty("", 2, 0, false, 3, &[]); // 4: struct task_struct *
        let (users, pages, up) = (b.str("users"), b.str("pages"), b.str("up"));
        b.ty(
            "mm",
            4,
            3,
            false,
            24,
            &[users, 1, 0, pages, 8, 64, up, 15, 128],
        ); // 5
        b.ty("", 2, 0, false, 5, &[]); // 6: struct mm *
        let flags = b.str("flags");
        b.ty("page", 4, 1, false, 4, &[flags, 1, 0]); // 7
        b.ty("", 2, 0, false, 7, &[]); // 8: struct page *
        b.ty("", 2, 0, false, 0, &[]); // 9: void *
        let (data, preempt, prev) = (b.str("__data"), b.str("preempt"), b.str("prev"));
        b.ty("", 13, 3, false, 0, &[data, 9, preempt, 2, prev, 4]); // 10
        b.ty("__bpf_trace_sched_switch", 12, 0, false, 10, &[]); // 11
        b.ty("", 2, 0, false, 10, &[]); // 12
        b.ty("btf_trace_sched_switch", 8, 0, false, 12, &[]); // 13
        let a = b.str("a");
        b.ty("u", 5, 1, false, 4, &[a, 1, 0]); // 14: union u
        b.ty("", 2, 0, false, 14, &[]); // 15: union u *
        b.ty("rcu", 18, 0, false, 3, &[]); // 16: type tag on task_struct
        b.ty("", 2, 0, false, 16, &[]); // 17: struct task_struct __rcu *
        b.ty("tag", 17, 0, false, 3, &[0]); // 18: on task_struct's pid
        b.ty("mmtag", 17, 0, false, 5, &[u32::MAX]); // 19: on struct mm
        // A tracepoint with only the typedef (as on 5.10): btf_trace_sched_wakeup.
        b.ty("", 13, 2, false, 0, &[data, 9, 0, 4]); // 20
        b.ty("", 2, 0, false, 20, &[]); // 21
        b.ty("btf_trace_sched_wakeup", 8, 0, false, 21, &[]); // 22
        b.build()
    }

    #[test]
    fn tracepoints_tags_and_unions() {
        let full = Btf::parse(tracepoint_sample()).unwrap();
        let roots = [tracepoint("sched_switch"), tracepoint("sched_wakeup")];
        let (sub, truncated) = cut_and_compare(&full, &roots, None);
        assert_eq!((sub.type_count(), truncated), (22, 0));
        let (sub, truncated) = cut_and_compare(&full, &roots, Some(1));
        // `mm` (two pointers away) is a FWD, and its tag is gone; `page`
        // and `union u` (behind it) are not kept at all.
        assert_eq!(truncated, 1);
        assert!(sub.find(Kind::Fwd, "mm").is_some() && sub.find(Kind::Struct, "mm").is_none());
        assert!(sub.find(Kind::DeclTag, "mmtag").is_none());
        assert!(sub.find(Kind::DeclTag, "tag").is_some());
        assert!(sub.find(Kind::Struct, "page").is_none() && sub.find(Kind::Fwd, "page").is_none());
        assert!(sub.find(Kind::Union, "u").is_none());
        let task = sub.find(Kind::Struct, "task_struct").unwrap();
        let rcu = sub.member(task, "rcu_parent").unwrap().unwrap();
        assert_eq!(sub.render(rcu.ty).unwrap(), "struct task_struct *");
        // All 22 but `page`, `union u`, the pointers to them and `mmtag`.
        assert_eq!(sub.type_count(), 17);
        // A union beyond the cap is a FWD of a union.
        let (sub, truncated) = cut_and_compare(&full, &[ty("mm")], Some(0));
        assert_eq!(truncated, 2);
        let Type::Fwd { union: true, .. } = sub.get(sub.find(Kind::Fwd, "u").unwrap()).unwrap()
        else {
            panic!("union u is not a union FWD");
        };
        assert!(sub.find(Kind::DeclTag, "mmtag").is_some());
    }

    #[test]
    fn a_root_that_names_nothing_is_an_error() {
        let full = Btf::parse(sample()).unwrap();
        for root in [
            function("vfs_write"),
            ty("vfs_read"),
            tracepoint("sched_switch"),
        ] {
            let error = full
                .subset(std::slice::from_ref(&root), SubsetOptions::default())
                .unwrap_err();
            assert_eq!(error, BtfError::NoSuchRoot(root));
        }
        let error = full
            .subset(&[tracepoint("x")], SubsetOptions::default())
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "BTF has no tracepoint `x` (no __bpf_trace_x, trace_event_raw_event_x, __traceiter_x or btf_trace_x)"
        );
    }

    /// Every 1/n-th name of the given kinds, by id.
    fn every_nth(btf: &Btf, kinds: &[Kind], prefix: &str, n: usize) -> Vec<String> {
        let names: Vec<String> = (1..=btf.type_count() as TypeId)
            .filter(|&id| kinds.contains(&btf.kind(id).unwrap()))
            .map(|id| btf.name(id).unwrap())
            .filter(|name| !name.is_empty())
            .filter_map(|name| name.strip_prefix(prefix).map(str::to_owned))
            .collect();
        names
            .iter()
            .step_by((names.len() / n).max(1))
            .cloned()
            .collect()
    }

    /// The real blobs of a facts cache (`TAPMATRIX_FACTS_CACHE=<cache>/facts`):
    /// a few hundred roots of every kind, whole and capped at one pointer.
    #[test]
    fn real_kernels_answer_the_same_from_a_subset() {
        let Some(cache) = std::env::var_os("TAPMATRIX_FACTS_CACHE") else {
            eprintln!("TAPMATRIX_FACTS_CACHE unset: skipping the BTF subset test on real kernels");
            return;
        };
        let mut kernels = 0;
        for entry in std::fs::read_dir(Path::new(&cache)).unwrap() {
            let path = entry.unwrap().path().join(crate::BTF_FILE);
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let full = Btf::parse(bytes).unwrap();
            let mut roots: Vec<SubsetRoot> = every_nth(&full, &[Kind::Func], "", 200)
                .into_iter()
                .map(SubsetRoot::Function)
                .collect();
            let types = every_nth(
                &full,
                &[Kind::Struct, Kind::Union, Kind::Typedef, Kind::Enum],
                "",
                60,
            );
            roots.extend(types.into_iter().map(SubsetRoot::Type));
            for name in [
                "task_struct",
                "file",
                "dentry",
                "sk_buff",
                "sock",
                "mm_struct",
                "pid_t",
            ] {
                roots.push(ty(name));
            }
            let events = every_nth(&full, &[Kind::Typedef], "btf_trace_", 40);
            roots.extend(events.into_iter().map(SubsetRoot::Tracepoint));
            roots.extend(["sched_switch", "sched_process_fork", "sys_enter"].map(tracepoint));
            let (whole, truncated) = cut_and_compare(&full, &roots, None);
            assert_eq!(truncated, 0);
            let (capped, truncated) = cut_and_compare(&full, &roots, Some(1));
            assert!(truncated > 0 && capped.type_count() < whole.type_count());
            eprintln!(
                "{}: {} roots, {} types -> {} whole, {} capped at 1 pointer ({truncated} FWD pairs)",
                path.display(),
                roots.len(),
                full.type_count(),
                whole.type_count(),
                capped.type_count()
            );
            kernels += 1;
        }
        assert!(kernels > 0, "no {} under {cache:?}", crate::BTF_FILE);
    }
}
