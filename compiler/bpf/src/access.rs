//! Globals and arrays in maps: scalar globals in the scalars map's value,
//! array elements in hash maps (`u64` insertion stamp, then the element),
//! and assignment to locals, globals and elements.

use tapmatrix_ir::bpf::{Field, GlobalPlace};
use tapmatrix_ir::{BinaryOp, Expr, LValue, Loc, ScalarType};

use crate::codegen::{ELEM, Gen, SCALARS, SCRATCH, Slot, StrPlace};
use crate::error::BpfError;
use crate::expr::place;
use crate::helpers::Helper;
use crate::insn::{Alu, Cond, Reg, Size};

/// `BPF_NOEXIST`.
const NOEXIST: i32 = 1;
/// `-EEXIST`.
const EEXIST: i32 = -17;

/// Where a built key is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyPlace {
    pub(crate) base: Reg,
    pub(crate) off: i32,
}

impl Gen<'_> {
    fn place_of(&self, g: u32) -> Result<GlobalPlace, BpfError> {
        self.site
            .layout
            .globals
            .get(g as usize)
            .cloned()
            .ok_or(BpfError::Internal("a global without a place"))
    }

    fn map_of(&self, g: u32) -> Result<(usize, Vec<Field>, u32), BpfError> {
        let (map, keys) = match self.place_of(g)? {
            GlobalPlace::Array { map, keys, .. } | GlobalPlace::StatArray { map, keys, .. } => {
                (map as usize, keys)
            }
            _ => return Err(BpfError::Internal("an array without a map")),
        };
        let key_size = self.site.layout.maps.get(map).map_or(8, |m| m.key_size);
        Ok((map, keys, key_size))
    }

    /// `r0` = scalar global `g` (a long).
    pub(crate) fn load_global(&mut self, g: u32) -> Result<(), BpfError> {
        match self.place_of(g)? {
            GlobalPlace::Scalar { field } => {
                self.asm
                    .load(Size::DW, Reg::R0, SCALARS, field.offset as i16);
                Ok(())
            }
            _ => Err(BpfError::Internal("a scalar global without a place")),
        }
    }

    /// Builds the key of `array[keys]`.
    pub(crate) fn key(&mut self, array: u32, keys: &[Expr]) -> Result<KeyPlace, BpfError> {
        let (_, fields, key_size) = self.map_of(array)?;
        let on_stack = fields.iter().all(|f| f.ty == ScalarType::Long);
        let key = if on_stack {
            let off = self.stack_alloc(key_size)?;
            let used: u32 = fields.iter().map(|f| f.len).sum();
            let mut at = used;
            while at < key_size {
                self.asm.store_imm(Size::DW, Reg::FP, off + at as i16, 0);
                at += 8;
            }
            KeyPlace {
                base: Reg::FP,
                off: i32::from(off),
            }
        } else {
            let off = self.scratch_alloc(key_size)?;
            let mut at = 0;
            while at < key_size {
                self.asm
                    .store_imm(Size::DW, SCRATCH, (off + at as i32) as i16, 0);
                at += 8;
            }
            KeyPlace { base: SCRATCH, off }
        };
        for (field, expr) in fields.iter().zip(keys) {
            let at = key.off + field.offset as i32;
            match field.ty {
                ScalarType::Long => {
                    self.long(expr)?;
                    self.asm.store(Size::DW, key.base, at as i16, Reg::R0);
                }
                ScalarType::String => {
                    let mark = self.mark();
                    let s = self.string(expr)?;
                    self.copy_string(
                        StrPlace {
                            base: key.base,
                            off: at,
                            cap: field.len,
                        },
                        s,
                    );
                    self.release(mark);
                }
            }
        }
        Ok(key)
    }

    /// `r0` = `array[keys]` (0 when absent).
    pub(crate) fn index_long(&mut self, array: u32, keys: &[Expr]) -> Result<(), BpfError> {
        let mark = self.mark();
        let (map, _, _) = self.map_of(array)?;
        let key = self.key(array, keys)?;
        self.lookup(map, key.base, key.off);
        let absent = self.asm.label();
        self.asm.jump_imm(Cond::Eq, Reg::R0, 0, absent);
        self.asm.load(Size::DW, Reg::R0, Reg::R0, 8);
        self.asm.bind(absent);
        self.release(mark);
        Ok(())
    }

    /// `dst` = `array[keys]` ("" when absent).
    pub(crate) fn index_string(
        &mut self,
        array: u32,
        keys: &[Expr],
        dst: StrPlace,
    ) -> Result<(), BpfError> {
        let mark = self.mark();
        let (map, _, _) = self.map_of(array)?;
        let key = self.key(array, keys)?;
        self.lookup(map, key.base, key.off);
        let absent = self.asm.label();
        let done = self.asm.label();
        self.asm.jump_imm(Cond::Eq, Reg::R0, 0, absent);
        self.asm.mov(Reg::R3, Reg::R0);
        self.asm.alu_imm(Alu::Add, Reg::R3, 8);
        self.addr(Reg::R1, dst.base, dst.off);
        self.asm.mov_imm(Reg::R2, i64::from(dst.cap));
        self.asm.call(Helper::ProbeReadKernelStr);
        self.asm.goto(done);
        self.asm.bind(absent);
        self.asm.store_imm(Size::B, dst.base, dst.off as i16, 0);
        self.asm.bind(done);
        self.release(mark);
        Ok(())
    }

    /// `r0` = whether `[keys] in array`.
    pub(crate) fn in_array(&mut self, array: u32, keys: &[Option<Expr>]) -> Result<(), BpfError> {
        let keys: Option<Vec<Expr>> = keys.iter().cloned().collect();
        let Some(keys) = keys else {
            return Err(BpfError::Unsupported {
                location: self.site.pp.clone(),
                what: "`in` with `*`".to_owned(),
                why: None,
            });
        };
        let mark = self.mark();
        let (map, _, _) = self.map_of(array)?;
        let key = self.key(array, &keys)?;
        self.lookup(map, key.base, key.off);
        self.asm.mov(Reg::R1, Reg::R0);
        self.asm.mov_imm(Reg::R0, 1);
        let done = self.asm.label();
        self.asm.jump_imm(Cond::Ne, Reg::R1, 0, done);
        self.asm.mov_imm(Reg::R0, 0);
        self.asm.bind(done);
        self.release(mark);
        Ok(())
    }

    /// `r8` = the element of `array` at `key`, created (zero, stamped with
    /// the time: insertion order for `foreach`) when absent; a full array
    /// raises SystemTap's overflow error.
    pub(crate) fn element(&mut self, array: u32, key: KeyPlace, loc: Loc) -> Result<(), BpfError> {
        let (map, _, _) = self.map_of(array)?;
        let value_size = self.site.layout.maps.get(map).map_or(16, |m| m.value_size);
        let have = self.asm.label();
        self.lookup(map, key.base, key.off);
        self.asm.jump_imm(Cond::Ne, Reg::R0, 0, have);
        let mark = self.mark();
        let value = self.scratch_alloc(value_size)?;
        let mut at = 8;
        while at < value_size {
            self.asm
                .store_imm(Size::DW, SCRATCH, (value + at as i32) as i16, 0);
            at += 8;
        }
        self.asm.call(Helper::KtimeGetNs);
        self.asm.store(Size::DW, SCRATCH, value as i16, Reg::R0);
        self.asm.load_map(Reg::R1, map);
        self.addr(Reg::R2, key.base, key.off);
        self.addr(Reg::R3, SCRATCH, value);
        self.asm.mov_imm(Reg::R4, i64::from(NOEXIST));
        self.asm.call(Helper::MapUpdateElem);
        self.release(mark);
        let again = self.asm.label();
        self.asm.jump_imm(Cond::Sge, Reg::R0, 0, again);
        self.asm.jump_imm(Cond::Eq, Reg::R0, EEXIST, again);
        let global = self.site.program.globals.get(array as usize);
        let name = global.map_or("?", |g| g.name.as_str()).to_owned();
        let check = match global.and_then(|g| g.max_entries) {
            Some(n) => format!("size limit ({n})"),
            None => "MAXMAPENTRIES".to_owned(),
        };
        self.raise(format!(
            "Array overflow, check {check} near identifier '{name}' at {}",
            place(self.site.program, loc)
        ))?;
        self.asm.bind(again);
        self.lookup(map, key.base, key.off);
        let out = self.out;
        self.asm.jump_imm(Cond::Eq, Reg::R0, 0, out);
        self.asm.bind(have);
        self.asm.mov(ELEM, Reg::R0);
        Ok(())
    }

    /// An assignment or `++`/`--` of a long (its value in `r0` when
    /// `want`); string assignments go through [`Gen::assign_string`].
    pub(crate) fn assign(&mut self, e: &Expr, want: bool) -> Result<(), BpfError> {
        let (target, op, value, loc, crement) = match e {
            Expr::Assign {
                target,
                op,
                concat: false,
                value,
                loc,
            } => (target.as_ref(), *op, Some(value.as_ref()), *loc, None),
            Expr::Crement {
                target,
                increment,
                prefix,
                loc,
            } => (
                target.as_ref(),
                None,
                None,
                *loc,
                Some((*increment, *prefix)),
            ),
            _ => {
                self.assign_string(e)?;
                return Ok(());
            }
        };
        if self.lvalue_type(target) == ScalarType::String {
            self.assign_string(e)?;
            return Ok(());
        }
        let mark = self.mark();
        // The right-hand side first, spilled.
        let rhs = match value {
            Some(value) => {
                self.long(value)?;
                Some(self.spill()?)
            }
            None => None,
        };
        // Where the long is: base register and offset.
        let (base, off) = match target {
            LValue::Local(i) => match self.local_slot(*i)? {
                Slot::Long(off) => (Reg::FP, off),
                Slot::Str(_) => return Err(BpfError::Internal("a string local assigned a long")),
            },
            LValue::Global(g) => match self.place_of(*g)? {
                GlobalPlace::Scalar { field } => (SCALARS, field.offset as i16),
                _ => return Err(BpfError::Internal("a scalar global without a place")),
            },
            LValue::Index { array, keys, loc } => {
                let keys: Option<Vec<Expr>> = keys.iter().cloned().collect();
                let keys = keys.ok_or(BpfError::Internal("`*` in an assignment"))?;
                let key = self.key(*array, &keys)?;
                self.element(*array, key, *loc)?;
                (ELEM, 8)
            }
        };
        let atomic = !want && base != Reg::FP;
        match (crement, op, rhs) {
            (Some((increment, prefix)), _, _) => {
                let step = if increment { 1 } else { -1 };
                if atomic {
                    self.asm.mov_imm(Reg::R1, step);
                    self.emit(crate::insn::Insn::atomic_add(Size::DW, base, off, Reg::R1));
                } else {
                    self.asm.load(Size::DW, Reg::R0, base, off);
                    self.asm.mov(Reg::R1, Reg::R0);
                    self.asm.alu_imm(Alu::Add, Reg::R1, step as i32);
                    self.asm.store(Size::DW, base, off, Reg::R1);
                    if prefix {
                        self.asm.mov(Reg::R0, Reg::R1);
                    }
                }
            }
            (None, None, Some(rhs)) => {
                self.unspill(Reg::R0, rhs);
                self.asm.store(Size::DW, base, off, Reg::R0);
            }
            (None, Some(op), Some(rhs)) => {
                if atomic && matches!(op, BinaryOp::Add) {
                    self.unspill(Reg::R1, rhs);
                    self.emit(crate::insn::Insn::atomic_add(Size::DW, base, off, Reg::R1));
                } else {
                    // The element pointer must survive a division's error
                    // path only as far as the store.
                    self.asm.load(Size::DW, Reg::R0, base, off);
                    self.unspill(Reg::R1, rhs);
                    if base == ELEM {
                        let keep = self.stack_alloc(8)?;
                        self.asm.store(Size::DW, Reg::FP, keep, ELEM);
                        self.arith(op, loc)?;
                        self.asm.load(Size::DW, ELEM, Reg::FP, keep);
                    } else {
                        self.arith(op, loc)?;
                    }
                    self.asm.store(Size::DW, base, off, Reg::R0);
                }
            }
            _ => return Err(BpfError::Internal("an assignment without a value")),
        }
        self.release(mark);
        Ok(())
    }

    /// A string assignment (`=`, `.=`); where the target is now.
    pub(crate) fn assign_string(&mut self, e: &Expr) -> Result<StrPlace, BpfError> {
        let Expr::Assign {
            target,
            op: None,
            concat,
            value,
            loc,
        } = e
        else {
            return Err(BpfError::Unsupported {
                location: self.site.pp.clone(),
                what: "this string assignment".to_owned(),
                why: None,
            });
        };
        let mark = self.mark();
        let value = if *concat {
            let current = lvalue_expr(target);
            self.string(&Expr::Concat(Box::new(current), value.clone()))?
        } else {
            self.string(value)?
        };
        let place = match target.as_ref() {
            LValue::Local(i) => match self.local_slot(*i)? {
                Slot::Str(place) => place,
                Slot::Long(_) => return Err(BpfError::Internal("a long local assigned a string")),
            },
            LValue::Global(g) => match self.place_of(*g)? {
                GlobalPlace::Scalar { field } => StrPlace {
                    base: SCALARS,
                    off: field.offset as i32,
                    cap: field.len,
                },
                _ => return Err(BpfError::Internal("a string global without a place")),
            },
            LValue::Index { array, keys, .. } => {
                let keys: Option<Vec<Expr>> = keys.iter().cloned().collect();
                let keys = keys.ok_or(BpfError::Internal("`*` in an assignment"))?;
                let key = self.key(*array, &keys)?;
                self.element(*array, key, *loc)?;
                let cap = self.max_string();
                self.addr(Reg::R1, ELEM, 8);
                self.asm.mov_imm(Reg::R2, i64::from(cap));
                self.addr(Reg::R3, value.base, value.off);
                self.asm.call(Helper::ProbeReadKernelStr);
                self.release(mark);
                // The element is not addressable after this statement.
                let copy = self.str_temp(cap)?;
                self.copy_string(copy, value);
                return Ok(copy);
            }
        };
        self.copy_string(place, value);
        self.release(mark);
        Ok(place)
    }

    /// `delete` of an element, a local or a scalar global.
    pub(crate) fn delete(&mut self, lv: &LValue) -> Result<(), BpfError> {
        match lv {
            LValue::Index { array, keys, .. } => {
                let keys: Option<Vec<Expr>> = keys.iter().cloned().collect();
                let Some(keys) = keys else {
                    return Err(BpfError::Unsupported {
                        location: self.site.pp.clone(),
                        what: "delete with `*`".to_owned(),
                        why: None,
                    });
                };
                let mark = self.mark();
                let (map, _, _) = self.map_of(*array)?;
                let key = self.key(*array, &keys)?;
                self.asm.load_map(Reg::R1, map);
                self.addr(Reg::R2, key.base, key.off);
                self.asm.call(Helper::MapDeleteElem);
                self.release(mark);
            }
            LValue::Local(i) => match self.local_slot(*i)? {
                Slot::Long(off) => self.asm.store_imm(Size::DW, Reg::FP, off, 0),
                Slot::Str(place) => self.asm.store_imm(Size::B, place.base, place.off as i16, 0),
            },
            LValue::Global(g) => match self.place_of(*g)? {
                GlobalPlace::Scalar { field } => match field.ty {
                    ScalarType::Long => {
                        self.asm
                            .store_imm(Size::DW, SCALARS, field.offset as i16, 0)
                    }
                    ScalarType::String => {
                        self.asm.store_imm(Size::B, SCALARS, field.offset as i16, 0)
                    }
                },
                _ => {
                    return Err(BpfError::Unsupported {
                        location: self.site.pp.clone(),
                        what: "delete of a whole array or statistic".to_owned(),
                        why: None,
                    });
                }
            },
        }
        Ok(())
    }
}

/// The expression that reads an lvalue.
fn lvalue_expr(lv: &LValue) -> Expr {
    match lv {
        LValue::Local(i) => Expr::Local(*i),
        LValue::Global(g) => Expr::Global(*g),
        LValue::Index { array, keys, .. } => Expr::Index {
            array: *array,
            keys: keys.iter().flatten().cloned().collect(),
        },
    }
}
