//! Records to the host side: `printf` (formats kept in the artefact),
//! `exit()` and `error()`.

use tapmatrix_ir::bpf::{ErrorSite, Field, RECORD_HEADER, RecordTag};
use tapmatrix_ir::{Expr, FormatSpec, ScalarType};

use crate::codegen::{Gen, SCRATCH, StrPlace};
use crate::error::BpfError;
use crate::helpers::Helper;
use crate::insn::{Reg, Size};
use crate::layout::round8;

/// An argument evaluated before the record is built.
enum Arg {
    Long(i16),
    Str(StrPlace),
}

impl Gen<'_> {
    /// `printf(format, args...)` as a record.
    pub(crate) fn printf(
        &mut self,
        format: Vec<FormatSpec>,
        args: &[Expr],
    ) -> Result<(), BpfError> {
        let mark = self.mark();
        let mut values = Vec::with_capacity(args.len());
        for arg in args {
            values.push(match self.ty(arg) {
                ScalarType::Long => {
                    self.long(arg)?;
                    Arg::Long(self.spill()?)
                }
                ScalarType::String => Arg::Str(self.string(arg)?),
            });
        }
        let mut fields = Vec::with_capacity(values.len());
        let mut size = RECORD_HEADER;
        for value in &values {
            let (ty, len) = match value {
                Arg::Long(_) => (ScalarType::Long, 8),
                Arg::Str(place) => (ScalarType::String, round8(place.cap)),
            };
            fields.push(Field {
                offset: size,
                ty,
                len,
            });
            size += len;
        }
        let id = self.add_format(format, fields.clone(), size);
        let rec = self.scratch_alloc(size)?;
        self.header(rec, RecordTag::Printf, id);
        for (value, field) in values.iter().zip(&fields) {
            let at = rec + field.offset as i32;
            match value {
                Arg::Long(off) => {
                    self.unspill(Reg::R1, *off);
                    self.asm.store(Size::DW, SCRATCH, at as i16, Reg::R1);
                }
                Arg::Str(place) => {
                    let dst = StrPlace {
                        base: SCRATCH,
                        off: at,
                        cap: field.len,
                    };
                    self.copy_string(dst, *place);
                }
            }
        }
        self.send(rec, size);
        self.release(mark);
        Ok(())
    }

    /// `print(...)`/`println(...)`: each argument as it is.
    pub(crate) fn print(&mut self, newline: bool, args: &[Expr]) -> Result<(), BpfError> {
        let mut format = Vec::new();
        let mut values = Vec::new();
        for arg in args {
            let (arg, conversion) = match arg {
                Expr::LongToStr(inner) => (inner.as_ref(), 'd'),
                other if self.ty(other) == ScalarType::Long => (other, 'd'),
                other => (other, 's'),
            };
            format.push(FormatSpec::Directive {
                flags: String::new(),
                width: None,
                precision: None,
                conversion,
            });
            values.push(arg.clone());
        }
        if newline {
            format.push(FormatSpec::Literal {
                text: "\n".to_owned(),
            });
        }
        self.printf(format, &values)
    }

    /// `exit()`: the record, and the session stopped (this handler goes on).
    pub(crate) fn exit_record(&mut self) -> Result<(), BpfError> {
        let mark = self.mark();
        let rec = self.scratch_alloc(RECORD_HEADER)?;
        self.header(rec, RecordTag::Exit, 0);
        self.send(rec, RECORD_HEADER);
        self.release(mark);
        self.stop_session();
        Ok(())
    }

    /// `error(msg)`: the record with its message; the handler ends.
    pub(crate) fn error_record(&mut self, message: &Expr) -> Result<(), BpfError> {
        let mark = self.mark();
        let text = self.string(message)?;
        let id = self.tables.errors.len() as u32;
        self.tables.errors.push(ErrorSite {
            message: String::new(),
            dynamic: true,
            address: false,
        });
        let size = RECORD_HEADER + round8(text.cap);
        let rec = self.scratch_alloc(size)?;
        self.header(rec, RecordTag::Error, id);
        self.copy_string(
            StrPlace {
                base: SCRATCH,
                off: rec + RECORD_HEADER as i32,
                cap: round8(text.cap),
            },
            text,
        );
        self.send(rec, size);
        self.release(mark);
        self.stop_session();
        let out = self.out;
        self.asm.goto(out);
        let _ = Helper::RingbufOutput;
        Ok(())
    }
}
