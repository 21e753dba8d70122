//! BPF instructions: the encoding of the kernel's instruction set
//! (Documentation/bpf/standardization/instruction-set.rst), as constructors
//! that build each form and [`Insn::encode`] that writes the 8 bytes.
//!
//! An instruction is `opcode:8 dst:4 src:4 offset:16 imm:32`, little-endian
//! on x86_64 (dst in the low nibble). The 64-bit immediate load takes two
//! slots: the second holds the upper 32 bits of the constant in its `imm`.

/// A register, `r0` to `r10` (`r10` is the read-only frame pointer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reg(pub u8);

impl Reg {
    /// Return value, and helper results.
    pub const R0: Reg = Reg(0);
    /// First helper argument; the context on entry.
    pub const R1: Reg = Reg(1);
    /// Second helper argument.
    pub const R2: Reg = Reg(2);
    /// Third helper argument.
    pub const R3: Reg = Reg(3);
    /// Fourth helper argument.
    pub const R4: Reg = Reg(4);
    /// Fifth helper argument.
    pub const R5: Reg = Reg(5);
    /// Callee-saved.
    pub const R6: Reg = Reg(6);
    /// Callee-saved.
    pub const R7: Reg = Reg(7);
    /// Callee-saved.
    pub const R8: Reg = Reg(8);
    /// Callee-saved.
    pub const R9: Reg = Reg(9);
    /// The frame pointer (read only).
    pub const FP: Reg = Reg(10);
}

/// Instruction classes (the low three bits of the opcode).
pub mod class {
    /// Non-standard loads (`ld_imm64`).
    pub const LD: u8 = 0x00;
    /// Loads into a register.
    pub const LDX: u8 = 0x01;
    /// Stores of an immediate.
    pub const ST: u8 = 0x02;
    /// Stores of a register.
    pub const STX: u8 = 0x03;
    /// 32-bit arithmetic.
    pub const ALU: u8 = 0x04;
    /// 64-bit jumps.
    pub const JMP: u8 = 0x05;
    /// 32-bit jumps.
    pub const JMP32: u8 = 0x06;
    /// 64-bit arithmetic.
    pub const ALU64: u8 = 0x07;
}

/// Operand source bit of arithmetic and jumps.
pub mod source {
    /// The immediate.
    pub const K: u8 = 0x00;
    /// The source register.
    pub const X: u8 = 0x08;
}

/// Sizes of loads and stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Size {
    /// 1 byte.
    B,
    /// 2 bytes.
    H,
    /// 4 bytes.
    W,
    /// 8 bytes.
    DW,
}

impl Size {
    /// The size bits of the opcode.
    pub fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }

    /// Bytes moved.
    pub fn bytes(self) -> u32 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::DW => 8,
        }
    }

    /// The size of `bytes` (1, 2, 4 or 8).
    pub fn of(bytes: u64) -> Option<Size> {
        match bytes {
            1 => Some(Size::B),
            2 => Some(Size::H),
            4 => Some(Size::W),
            8 => Some(Size::DW),
            _ => None,
        }
    }

    fn from_bits(bits: u8) -> Size {
        match bits & 0x18 {
            0x00 => Size::W,
            0x08 => Size::H,
            0x10 => Size::B,
            _ => Size::DW,
        }
    }

    /// C's name of the unsigned type (`u64`).
    pub fn c_name(self) -> &'static str {
        match self {
            Size::B => "u8",
            Size::H => "u16",
            Size::W => "u32",
            Size::DW => "u64",
        }
    }
}

/// Load and store modes.
pub mod mode {
    /// `ld_imm64`.
    pub const IMM: u8 = 0x00;
    /// Memory.
    pub const MEM: u8 = 0x60;
    /// Atomic operations (`lock *(u64 *)(r1 + 0) += r2`).
    pub const ATOMIC: u8 = 0xc0;
}

/// Arithmetic operations (the high four bits of an ALU opcode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Alu {
    /// `+=`.
    Add,
    /// `-=`.
    Sub,
    /// `*=`.
    Mul,
    /// `/=` (unsigned).
    Div,
    /// `|=`.
    Or,
    /// `&=`.
    And,
    /// `<<=`.
    Lsh,
    /// `>>=` (logical).
    Rsh,
    /// `= -dst`.
    Neg,
    /// `%=` (unsigned).
    Mod,
    /// `^=`.
    Xor,
    /// `=`.
    Mov,
    /// `s>>=` (arithmetic).
    Arsh,
}

impl Alu {
    /// The operation bits.
    pub fn bits(self) -> u8 {
        match self {
            Alu::Add => 0x00,
            Alu::Sub => 0x10,
            Alu::Mul => 0x20,
            Alu::Div => 0x30,
            Alu::Or => 0x40,
            Alu::And => 0x50,
            Alu::Lsh => 0x60,
            Alu::Rsh => 0x70,
            Alu::Neg => 0x80,
            Alu::Mod => 0x90,
            Alu::Xor => 0xa0,
            Alu::Mov => 0xb0,
            Alu::Arsh => 0xc0,
        }
    }

    fn from_bits(bits: u8) -> Option<Alu> {
        Some(match bits & 0xf0 {
            0x00 => Alu::Add,
            0x10 => Alu::Sub,
            0x20 => Alu::Mul,
            0x30 => Alu::Div,
            0x40 => Alu::Or,
            0x50 => Alu::And,
            0x60 => Alu::Lsh,
            0x70 => Alu::Rsh,
            0x80 => Alu::Neg,
            0x90 => Alu::Mod,
            0xa0 => Alu::Xor,
            0xb0 => Alu::Mov,
            0xc0 => Alu::Arsh,
            _ => return None,
        })
    }

    /// The operator as the kernel's disassembler writes it (`+=`).
    pub fn symbol(self) -> &'static str {
        match self {
            Alu::Add => "+=",
            Alu::Sub => "-=",
            Alu::Mul => "*=",
            Alu::Div => "/=",
            Alu::Or => "|=",
            Alu::And => "&=",
            Alu::Lsh => "<<=",
            Alu::Rsh => ">>=",
            Alu::Neg => "neg",
            Alu::Mod => "%=",
            Alu::Xor => "^=",
            Alu::Mov => "=",
            Alu::Arsh => "s>>=",
        }
    }
}

/// Jump conditions (the high four bits of a JMP opcode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cond {
    /// `==`.
    Eq,
    /// `>` unsigned.
    Gt,
    /// `>=` unsigned.
    Ge,
    /// `&` non-zero.
    Set,
    /// `!=`.
    Ne,
    /// `>` signed.
    Sgt,
    /// `>=` signed.
    Sge,
    /// `<` unsigned.
    Lt,
    /// `<=` unsigned.
    Le,
    /// `<` signed.
    Slt,
    /// `<=` signed.
    Sle,
}

impl Cond {
    /// The operation bits.
    pub fn bits(self) -> u8 {
        match self {
            Cond::Eq => 0x10,
            Cond::Gt => 0x20,
            Cond::Ge => 0x30,
            Cond::Set => 0x40,
            Cond::Ne => 0x50,
            Cond::Sgt => 0x60,
            Cond::Sge => 0x70,
            Cond::Lt => 0xa0,
            Cond::Le => 0xb0,
            Cond::Slt => 0xc0,
            Cond::Sle => 0xd0,
        }
    }

    fn from_bits(bits: u8) -> Option<Cond> {
        Some(match bits & 0xf0 {
            0x10 => Cond::Eq,
            0x20 => Cond::Gt,
            0x30 => Cond::Ge,
            0x40 => Cond::Set,
            0x50 => Cond::Ne,
            0x60 => Cond::Sgt,
            0x70 => Cond::Sge,
            0xa0 => Cond::Lt,
            0xb0 => Cond::Le,
            0xc0 => Cond::Slt,
            0xd0 => Cond::Sle,
            _ => return None,
        })
    }

    /// The condition that holds when this one does not.
    pub fn negate(self) -> Cond {
        match self {
            Cond::Eq => Cond::Ne,
            Cond::Ne => Cond::Eq,
            Cond::Gt => Cond::Le,
            Cond::Le => Cond::Gt,
            Cond::Ge => Cond::Lt,
            Cond::Lt => Cond::Ge,
            Cond::Sgt => Cond::Sle,
            Cond::Sle => Cond::Sgt,
            Cond::Sge => Cond::Slt,
            Cond::Slt => Cond::Sge,
            // No negation as one jump: callers do not negate `&`.
            Cond::Set => Cond::Set,
        }
    }

    /// The operator as the kernel's disassembler writes it.
    pub fn symbol(self) -> &'static str {
        match self {
            Cond::Eq => "==",
            Cond::Gt => ">",
            Cond::Ge => ">=",
            Cond::Set => "&",
            Cond::Ne => "!=",
            Cond::Sgt => "s>",
            Cond::Sge => "s>=",
            Cond::Lt => "<",
            Cond::Le => "<=",
            Cond::Slt => "s<",
            Cond::Sle => "s<=",
        }
    }
}

/// JMP operations that are not conditions.
pub mod jmp {
    /// `goto`.
    pub const JA: u8 = 0x00;
    /// `call`.
    pub const CALL: u8 = 0x80;
    /// `exit`.
    pub const EXIT: u8 = 0x90;
}

/// `src` of a call: a helper (0), or a BPF-to-BPF call (1).
pub const PSEUDO_CALL: u8 = 1;

/// `src` of `ld_imm64` that loads a map: its fd (set by the loader).
pub const PSEUDO_MAP_FD: u8 = 1;

/// One 8-byte instruction slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Insn {
    /// The opcode.
    pub code: u8,
    /// Destination register.
    pub dst: u8,
    /// Source register.
    pub src: u8,
    /// Signed offset.
    pub off: i16,
    /// Signed immediate.
    pub imm: i32,
}

impl Insn {
    /// The instruction as it is stored.
    pub fn encode(&self) -> [u8; 8] {
        let mut out = [0u8; 8];
        out[0] = self.code;
        out[1] = (self.dst & 0x0f) | ((self.src & 0x0f) << 4);
        out[2..4].copy_from_slice(&self.off.to_le_bytes());
        out[4..8].copy_from_slice(&self.imm.to_le_bytes());
        out
    }

    /// The instruction stored in `bytes`.
    pub fn decode(bytes: [u8; 8]) -> Insn {
        Insn {
            code: bytes[0],
            dst: bytes[1] & 0x0f,
            src: bytes[1] >> 4,
            off: i16::from_le_bytes([bytes[2], bytes[3]]),
            imm: i32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        }
    }

    fn new(code: u8, dst: Reg, src: Reg, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst: dst.0,
            src: src.0,
            off,
            imm,
        }
    }

    /// `dst op= src` (64-bit).
    pub fn alu64_reg(op: Alu, dst: Reg, src: Reg) -> Insn {
        Insn::new(class::ALU64 | source::X | op.bits(), dst, src, 0, 0)
    }

    /// `dst op= imm` (64-bit, the immediate sign-extended).
    pub fn alu64_imm(op: Alu, dst: Reg, imm: i32) -> Insn {
        Insn::new(class::ALU64 | source::K | op.bits(), dst, Reg(0), 0, imm)
    }

    /// `dst op= imm` (32-bit: the upper half of dst is zeroed).
    pub fn alu32_imm(op: Alu, dst: Reg, imm: i32) -> Insn {
        Insn::new(class::ALU | source::K | op.bits(), dst, Reg(0), 0, imm)
    }

    /// `dst = src` (64-bit).
    pub fn mov64(dst: Reg, src: Reg) -> Insn {
        Insn::alu64_reg(Alu::Mov, dst, src)
    }

    /// `dst = imm` (sign-extended to 64 bits).
    pub fn mov64_imm(dst: Reg, imm: i32) -> Insn {
        Insn::alu64_imm(Alu::Mov, dst, imm)
    }

    /// `dst = -dst`.
    pub fn neg64(dst: Reg) -> Insn {
        Insn::new(class::ALU64 | Alu::Neg.bits(), dst, Reg(0), 0, 0)
    }

    /// Byte swap of the low `bits` (16, 32, 64) to big-endian.
    pub fn to_be(dst: Reg, bits: i32) -> Insn {
        Insn::new(class::ALU | 0xd0 | source::X, dst, Reg(0), 0, bits)
    }

    /// `dst = *(size *)(src + off)`.
    pub fn load(size: Size, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(class::LDX | mode::MEM | size.bits(), dst, src, off, 0)
    }

    /// `*(size *)(dst + off) = src`.
    pub fn store(size: Size, dst: Reg, off: i16, src: Reg) -> Insn {
        Insn::new(class::STX | mode::MEM | size.bits(), dst, src, off, 0)
    }

    /// `*(size *)(dst + off) = imm`.
    pub fn store_imm(size: Size, dst: Reg, off: i16, imm: i32) -> Insn {
        Insn::new(class::ST | mode::MEM | size.bits(), dst, Reg(0), off, imm)
    }

    /// `lock *(size *)(dst + off) += src` (size: W or DW).
    pub fn atomic_add(size: Size, dst: Reg, off: i16, src: Reg) -> Insn {
        Insn::new(class::STX | mode::ATOMIC | size.bits(), dst, src, off, 0)
    }

    /// `dst = imm64`: two slots.
    pub fn ld_imm64(dst: Reg, imm: i64) -> [Insn; 2] {
        [
            Insn::new(
                class::LD | mode::IMM | Size::DW.bits(),
                dst,
                Reg(0),
                0,
                imm as i32,
            ),
            Insn::new(0, Reg(0), Reg(0), 0, (imm >> 32) as i32),
        ]
    }

    /// `dst = map` by its fd: two slots, `src` [`PSEUDO_MAP_FD`]; the
    /// loader writes the fd (a relocation names the map).
    pub fn ld_map(dst: Reg) -> [Insn; 2] {
        let [mut first, second] = Insn::ld_imm64(dst, 0);
        first.src = PSEUDO_MAP_FD;
        [first, second]
    }

    /// `if dst cond src goto +off`.
    pub fn jmp_reg(cond: Cond, dst: Reg, src: Reg, off: i16) -> Insn {
        Insn::new(class::JMP | source::X | cond.bits(), dst, src, off, 0)
    }

    /// `if dst cond imm goto +off` (imm sign-extended to 64 bits).
    pub fn jmp_imm(cond: Cond, dst: Reg, imm: i32, off: i16) -> Insn {
        Insn::new(class::JMP | source::K | cond.bits(), dst, Reg(0), off, imm)
    }

    /// `goto +off`.
    pub fn ja(off: i16) -> Insn {
        Insn::new(class::JMP | jmp::JA, Reg(0), Reg(0), off, 0)
    }

    /// `call helper`.
    pub fn call(helper: i32) -> Insn {
        Insn::new(class::JMP | jmp::CALL, Reg(0), Reg(0), 0, helper)
    }

    /// `exit`.
    pub fn exit() -> Insn {
        Insn::new(class::JMP | jmp::EXIT, Reg(0), Reg(0), 0, 0)
    }

    /// Whether this is the first slot of a 64-bit immediate load.
    pub fn is_wide(&self) -> bool {
        self.code == class::LD | mode::IMM | Size::DW.bits()
    }

    /// Whether it jumps by `off` (a conditional or unconditional jump).
    pub fn is_jump(&self) -> bool {
        let class = self.code & 0x07;
        let op = self.code & 0xf0;
        matches!(class, class::JMP | class::JMP32) && op != jmp::CALL && op != jmp::EXIT
    }
}

/// The decoded shape of an opcode, for the disassembler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Alu {
        wide: bool,
        op: Alu,
        reg: bool,
    },
    End {
        bits: i32,
        big: bool,
    },
    Load(Size),
    Store(Size),
    StoreImm(Size),
    Atomic(Size),
    Wide,
    Jump {
        wide: bool,
        cond: Option<Cond>,
        reg: bool,
    },
    Call,
    Exit,
    Unknown,
}

impl Shape {
    pub(crate) fn of(insn: &Insn) -> Shape {
        let code = insn.code;
        let class = code & 0x07;
        let reg = code & source::X != 0;
        match class {
            class::ALU | class::ALU64 if code & 0xf0 == 0xd0 => Shape::End {
                bits: insn.imm,
                big: reg,
            },
            class::ALU | class::ALU64 => match Alu::from_bits(code) {
                Some(op) => Shape::Alu {
                    wide: class == class::ALU64,
                    op,
                    reg,
                },
                None => Shape::Unknown,
            },
            class::LDX if code & 0xe0 == mode::MEM => Shape::Load(Size::from_bits(code)),
            class::STX if code & 0xe0 == mode::MEM => Shape::Store(Size::from_bits(code)),
            class::STX if code & 0xe0 == mode::ATOMIC => Shape::Atomic(Size::from_bits(code)),
            class::ST if code & 0xe0 == mode::MEM => Shape::StoreImm(Size::from_bits(code)),
            class::LD if insn.is_wide() => Shape::Wide,
            class::JMP | class::JMP32 => match code & 0xf0 {
                jmp::CALL => Shape::Call,
                jmp::EXIT => Shape::Exit,
                jmp::JA => Shape::Jump {
                    wide: true,
                    cond: None,
                    reg,
                },
                bits => match Cond::from_bits(bits) {
                    Some(cond) => Shape::Jump {
                        wide: class == class::JMP,
                        cond: Some(cond),
                        reg,
                    },
                    None => Shape::Unknown,
                },
            },
            _ => Shape::Unknown,
        }
    }
}

/// The bytes of a sequence of instructions.
pub fn encode_all(insns: &[Insn]) -> Vec<u8> {
    insns.iter().flat_map(Insn::encode).collect()
}

/// Instructions from their bytes (a trailing partial slot is ignored).
pub fn decode_all(bytes: &[u8]) -> Vec<Insn> {
    bytes
        .chunks_exact(8)
        .map(|chunk| {
            let mut slot = [0u8; 8];
            slot.copy_from_slice(chunk);
            Insn::decode(slot)
        })
        .collect()
}
