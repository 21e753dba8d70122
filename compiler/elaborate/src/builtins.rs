//! The functions the runtime provides (`tapmatrix_ir::Builtin`), by name,
//! with their signatures.

use tapmatrix_ir::{Builtin, ScalarType};

use ScalarType::{Long, String as Str};

/// A builtin's signature: parameter types and return type (`None`: void).
#[derive(Debug, Clone, Copy)]
pub struct Signature {
    /// Which builtin.
    pub builtin: Builtin,
    /// Parameter types.
    pub params: &'static [ScalarType],
    /// Return type.
    pub ret: Option<ScalarType>,
}

const fn sig(
    builtin: Builtin,
    params: &'static [ScalarType],
    ret: Option<ScalarType>,
) -> Signature {
    Signature {
        builtin,
        params,
        ret,
    }
}

/// The builtin named `name` (print and printf families excepted: they are
/// variadic and handled by the caller).
pub fn builtin(name: &str) -> Option<Signature> {
    Some(match name {
        "exit" => sig(Builtin::Exit, &[], None),
        "error" => sig(Builtin::Error, &[Str], None),
        "warn" => sig(Builtin::Warn, &[Str], None),
        "pid" => sig(Builtin::Pid, &[], Some(Long)),
        "tid" => sig(Builtin::Tid, &[], Some(Long)),
        "ppid" => sig(Builtin::Ppid, &[], Some(Long)),
        "uid" => sig(Builtin::Uid, &[], Some(Long)),
        "gid" => sig(Builtin::Gid, &[], Some(Long)),
        "execname" => sig(Builtin::Execname, &[], Some(Str)),
        "cpu" => sig(Builtin::Cpu, &[], Some(Long)),
        "probefunc" => sig(Builtin::Probefunc, &[], Some(Str)),
        "pp" => sig(Builtin::Pp, &[], Some(Str)),
        "ppfunc" => sig(Builtin::Ppfunc, &[], Some(Str)),
        "target" => sig(Builtin::Target, &[], Some(Long)),
        "is_return" => sig(Builtin::IsReturn, &[], Some(Long)),
        "gettimeofday_s" => sig(Builtin::GettimeofdayS, &[], Some(Long)),
        "gettimeofday_ms" => sig(Builtin::GettimeofdayMs, &[], Some(Long)),
        "gettimeofday_us" => sig(Builtin::GettimeofdayUs, &[], Some(Long)),
        "gettimeofday_ns" => sig(Builtin::GettimeofdayNs, &[], Some(Long)),
        "local_clock_ns" => sig(Builtin::ClockNs, &[], Some(Long)),
        "strlen" => sig(Builtin::Strlen, &[Str], Some(Long)),
        "substr" => sig(Builtin::Substr, &[Str, Long, Long], Some(Str)),
        "stringat" => sig(Builtin::Stringat, &[Str, Long], Some(Long)),
        "isinstr" => sig(Builtin::Isinstr, &[Str, Str], Some(Long)),
        "strpos" => sig(Builtin::Strpos, &[Str, Str], Some(Long)),
        "text_str" => sig(Builtin::TextStr, &[Str], Some(Str)),
        "str_replace" => sig(Builtin::StrReplace, &[Str, Str, Str], Some(Str)),
        "strtol" => sig(Builtin::Strtol, &[Str, Long], Some(Long)),
        "string_quoted" => sig(Builtin::StringQuoted, &[Str], Some(Str)),
        "tokenize" => sig(Builtin::Tokenize, &[Str, Str], Some(Str)),
        "abs" => sig(Builtin::Abs, &[Long], Some(Long)),
        "randint" => sig(Builtin::Randint, &[Long], Some(Long)),
        "errno_str" => sig(Builtin::ErrnoStr, &[Long], Some(Str)),
        "matched" => sig(Builtin::Matched, &[Long], Some(Str)),
        "task_current" => sig(Builtin::TaskCurrent, &[], Some(Long)),
        "backtrace" => sig(Builtin::Backtrace, &[], Some(Str)),
        "symname" => sig(Builtin::Symname, &[Long], Some(Str)),
        "symdata" => sig(Builtin::Symdata, &[Long], Some(Str)),
        "syscall_name" => sig(Builtin::SyscallName, &[Long], Some(Str)),
        "ctime" => sig(Builtin::Ctime, &[Long], Some(Str)),
        "user_mode" => sig(Builtin::UserMode, &[], Some(Long)),
        "addr" => sig(Builtin::Addr, &[], Some(Long)),
        "uaddr" => sig(Builtin::Uaddr, &[], Some(Long)),
        "ubacktrace" => sig(Builtin::Ubacktrace, &[], Some(Str)),
        "cmdline_str" => sig(Builtin::CmdlineStr, &[], Some(Str)),
        "system" => sig(Builtin::System, &[Str], None),
        _ => return None,
    })
}

/// The functions that read a string from kernel or user memory at the
/// address a target expression gives: `(user, takes a length, quoted)`.
pub fn string_fetch(name: &str) -> Option<(bool, bool, bool)> {
    Some(match name {
        "kernel_string" => (false, false, false),
        "kernel_string_n" => (false, true, false),
        "kernel_string_quoted" => (false, false, true),
        "user_string" => (true, false, false),
        "user_string_n" => (true, true, false),
        "user_string_quoted" => (true, false, true),
        _ => return None,
    })
}
