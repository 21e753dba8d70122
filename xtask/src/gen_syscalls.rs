//! `cargo xtask gen-syscalls`: writes `tapsets/syscalls.stp`, the
//! `syscall.NAME` and `syscall.NAME.return` aliases of every x86_64 system
//! call that has `syscalls:sys_enter_NAME` on some kernel of the matrix,
//! from the harvested facts of those kernels.
//!
//! It lives in xtask (not in a library crate) because it is a chore run by
//! maintainers after a new kernel joins the matrix: its output is committed
//! and reviewed like any source, and no other crate needs it at run time.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use tapmatrix_facts::{Field, KernelFacts};

/// The first kernel on which, lacking the kernel's own copies, a syscall
/// tracepoint's probe reads user strings through its pointer fields
/// (`user_string($filename)`, an eprobe). Eprobes appeared in 5.15, but
/// such strings read back empty on 6.1 and 7.0 (measured on the matrix:
/// `tests/scripts/tapset_syscall_openat`) while 6.12, 7.1, 7.2 and 7.3 read
/// them; where the kernel copies the strings itself (`__NAME_val` fields),
/// those are read instead.
const EPROBE_STRINGS_SINCE: (u32, u32) = (6, 12);

/// x86_64 syscall argument registers, in order, as `struct pt_regs` names them.
const ARG_REGISTERS: [&str; 6] = ["di", "si", "dx", "r10", "r8", "r9"];

/// `char *` arguments that are buffers or outputs, not NUL-terminated input
/// strings: their addresses are reported, not their contents.
const NOT_STRINGS: [&str; 8] = [
    "buf",
    "list",
    "shmaddr",
    "u_msg_ptr",
    "value",
    "cmdline_ptr",
    "optval",
    "vec",
];

/// Syscalls that never return: no `.return` alias.
const NO_RETURN: [&str; 2] = ["exit", "exit_group"];

/// Syscalls whose return value is an address, printed in hex.
const RETURNS_ADDRESS: [&str; 5] = ["mmap", "brk", "mremap", "shmat", "map_shadow_stack"];

/// Words of the script language an argument may not be named.
const KEYWORDS: [&str; 19] = [
    "probe", "global", "function", "if", "else", "for", "foreach", "in", "limit", "return",
    "delete", "while", "break", "continue", "next", "string", "long", "try", "catch",
];

/// One kernel of the matrix: its id and `major.minor`.
struct Kernel {
    id: String,
    version: (u32, u32),
    facts: KernelFacts,
}

/// How an argument is read and printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgKind {
    /// A NUL-terminated user string (a path, a name).
    UserString,
    /// Any other user pointer.
    Pointer,
    /// A signed integer.
    Signed,
    /// An unsigned integer.
    Unsigned,
}

/// How an argument is decoded into `argstr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decoder {
    /// As its kind prints.
    Plain,
    /// Open flags (`O_RDONLY|O_CLOEXEC`), with a `NAME_str` variable.
    OpenFlags,
    /// A file mode, in octal.
    FileMode,
    /// A directory fd (`AT_FDCWD`), with a `NAME_str` variable.
    DirFd,
    /// A signal number (`SIGTERM`), with a `NAME_str` variable.
    Signal,
    /// An access(2) mode (`R_OK|W_OK`), with a `NAME_str` variable.
    AccessMode,
}

/// One argument of a syscall.
struct Arg {
    /// The tracepoint field's name (`filename`).
    field: String,
    /// The script variable's name (`filename`, `buf_uaddr`, `status`).
    var: String,
    kind: ArgKind,
    decoder: Decoder,
}

/// One syscall over the matrix.
struct Syscall {
    name: String,
    args: Vec<Arg>,
    /// Indexes (into the kernels) of the kernels that have `sys_enter_NAME`.
    present: Vec<usize>,
    has_exit: bool,
    /// How its user strings are read, if it has any.
    strings: Option<StringPlan>,
}

/// How a syscall with user-string arguments reads them: from `since` on
/// through the tracepoint (`new`), before it as `old` says.
struct StringPlan {
    /// The first kernel (id, as `kernel_v` compares it) of the tracepoint way.
    since: String,
    /// How the tracepoint reads the strings.
    new: NewStrings,
    /// How the older kernels that have the syscall read them.
    old: OldStrings,
}

/// How a syscall tracepoint's probe reads user strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NewStrings {
    /// The event records them itself: `__NAME_val` (`__data_loc char[]`)
    /// fields, read with kernel_string().
    KernelCopies,
    /// Through the pointer fields, with an eprobe (`user_string($NAME)`).
    Eprobe,
}

/// How kernels before [`StringPlan::since`] read the user strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OldStrings {
    /// No older kernel has the syscall.
    NotNeeded,
    /// At `__x64_sys_NAME`, the arguments in its `struct pt_regs *regs`.
    Registers,
    /// `__x64_sys_NAME` has no BTF `regs` parameter there (a
    /// `COND_SYSCALL` stub's prototype): the strings are their addresses,
    /// as SystemTap prints a string it cannot read.
    Addresses,
}

/// `cargo xtask gen-syscalls [--facts DIR] [--kernels ID,...] [--out FILE]`.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut facts_dir = default_facts_dir();
    let mut out = root.join("tapsets/syscalls.stp");
    let mut kernel_ids: Option<Vec<String>> = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let mut value = || {
            rest.next()
                .cloned()
                .with_context(|| format!("{arg} needs a value"))
        };
        match arg.as_str() {
            "--facts" => facts_dir = Some(PathBuf::from(value()?)),
            "--out" => out = PathBuf::from(value()?),
            "--kernels" => kernel_ids = Some(value()?.split(',').map(str::to_owned).collect()),
            _ => bail!(
                "unknown argument {arg}: usage: cargo xtask gen-syscalls [--facts DIR] [--kernels ID,...] [--out FILE]"
            ),
        }
    }
    let facts_dir = facts_dir.context(
        "no facts directory: pass --facts DIR or set TAPMATRIX_CACHE (the facts are under <cache>/facts)",
    )?;
    let text = generate(&facts_dir, kernel_ids)?;
    std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// The text of `syscalls.stp` for the kernels `ids` (default: every
/// harvested one) of the facts directory.
fn generate(facts_dir: &Path, ids: Option<Vec<String>>) -> Result<String> {
    let kernels = load_kernels(facts_dir, ids)?;
    let syscalls = syscalls(&kernels)?;
    Ok(render(&kernels, &syscalls))
}

/// `$TAPMATRIX_CACHE/facts`, else `$XDG_CACHE_HOME/tapmatrix/facts`, else
/// `~/.cache/tapmatrix/facts` (the CLI's cache).
fn default_facts_dir() -> Option<PathBuf> {
    if let Some(cache) = std::env::var_os("TAPMATRIX_CACHE") {
        return Some(PathBuf::from(cache).join("facts"));
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(xdg).join("tapmatrix/facts"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/tapmatrix/facts"))
}

/// The kernels' facts, oldest first: the ids given, or every harvested one.
fn load_kernels(facts_dir: &Path, ids: Option<Vec<String>>) -> Result<Vec<Kernel>> {
    let ids = match ids {
        Some(ids) => ids,
        None => {
            let mut ids = Vec::new();
            let entries = std::fs::read_dir(facts_dir).with_context(|| {
                format!(
                    "reading {} (harvest the matrix first: tapmatrix kernels harvest)",
                    facts_dir.display()
                )
            })?;
            for entry in entries {
                let entry = entry?;
                if entry.path().join("facts.json").is_file() {
                    ids.push(entry.file_name().to_string_lossy().into_owned());
                }
            }
            ids
        }
    };
    let mut kernels = Vec::new();
    for id in ids {
        let facts = KernelFacts::load(&facts_dir.join(&id))
            .with_context(|| format!("loading the facts of kernel {id}"))?;
        let release = facts.release.clone().unwrap_or_else(|| id.clone());
        let version = major_minor(&release)
            .with_context(|| format!("kernel {id}: release {release:?} has no major.minor"))?;
        kernels.push(Kernel { id, version, facts });
    }
    if kernels.is_empty() {
        bail!("no harvested kernels in {}", facts_dir.display());
    }
    kernels.sort_by_key(|kernel| kernel.version);
    Ok(kernels)
}

/// `5.10.0-32-amd64` -> (5, 10).
fn major_minor(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// Every syscall of any kernel, with the arguments every kernel that has it
/// agrees on (by field name, in the newest kernel's order).
fn syscalls(kernels: &[Kernel]) -> Result<Vec<Syscall>> {
    let mut names = BTreeSet::new();
    for kernel in kernels {
        let list = kernel
            .facts
            .syscalls
            .as_deref()
            .with_context(|| format!("kernel {}: the facts have no syscalls", kernel.id))?;
        names.extend(list.iter().map(|syscall| syscall.name.clone()));
    }
    let mut out = Vec::new();
    for name in names {
        let present: Vec<usize> = (0..kernels.len())
            .filter(|&index| kernels[index].facts.syscall(&name).is_some())
            .collect();
        let Some(&newest) = present.last() else {
            continue;
        };
        let Some(newest_syscall) = kernels[newest].facts.syscall(&name) else {
            continue;
        };
        let args: Vec<Arg> = newest_syscall
            .args
            .iter()
            .filter(|field| !field.c_type.starts_with("__data_loc"))
            .filter(|field| {
                present.iter().all(|&index| {
                    kernels[index].facts.syscall(&name).is_some_and(|syscall| {
                        syscall.args.iter().any(|arg| arg.name == field.name)
                    })
                })
            })
            .map(|field| arg(&name, field))
            .collect();
        let has_exit = present.iter().all(|&index| {
            kernels[index]
                .facts
                .syscall(&name)
                .is_some_and(|syscall| syscall.has_exit)
        }) && !NO_RETURN.contains(&name.as_str());
        let strings = string_plan(kernels, &name, &args, &present);
        out.push(Syscall {
            name,
            args,
            present,
            has_exit,
            strings,
        });
    }
    Ok(out)
}

/// How the user strings of a syscall are read on the kernels that have it
/// (`None` without user-string arguments).
fn string_plan(
    kernels: &[Kernel],
    name: &str,
    args: &[Arg],
    present: &[usize],
) -> Option<StringPlan> {
    let strings: Vec<&Arg> = args
        .iter()
        .filter(|arg| arg.kind == ArgKind::UserString)
        .collect();
    if strings.is_empty() {
        return None;
    }
    let copies = |index: usize| {
        kernels[index].facts.syscall(name).is_some_and(|syscall| {
            strings.iter().all(|arg| {
                let field = format!("__{}_val", arg.field);
                syscall.args.iter().any(|other| other.name == field)
            })
        })
    };
    // The first kernel from which every later one records its own copies.
    let copies_from = present
        .iter()
        .rposition(|&index| !copies(index))
        .map_or(0, |last_without| last_without + 1);
    let (first_new, new) = match present.get(copies_from) {
        Some(_) => (copies_from, NewStrings::KernelCopies),
        None => (
            present
                .iter()
                .position(|&index| kernels[index].version >= EPROBE_STRINGS_SINCE)
                .unwrap_or(present.len()),
            NewStrings::Eprobe,
        ),
    };
    let since = present
        .get(first_new)
        .map_or_else(|| "99.0".to_owned(), |&index| kernels[index].id.clone());
    let old_kernels = &present[..first_new];
    let function = format!("__x64_sys_{name}");
    let old = if old_kernels.is_empty() {
        OldStrings::NotNeeded
    } else if old_kernels
        .iter()
        .all(|&index| has_regs_parameter(&kernels[index].facts, &function))
    {
        OldStrings::Registers
    } else {
        eprintln!(
            "note: {function} has no BTF `regs` parameter on some kernel before {since}: its strings print as addresses there"
        );
        OldStrings::Addresses
    };
    if new == NewStrings::Eprobe {
        eprintln!(
            "note: {name}: no __NAME_val fields: its strings are read through eprobes from {since}"
        );
    }
    Some(StringPlan { since, new, old })
}

/// Whether `function` is attachable and its BTF prototype's first
/// parameter is `regs` (the syscall wrapper's `struct pt_regs *`).
fn has_regs_parameter(facts: &KernelFacts, function: &str) -> bool {
    if !facts.is_attachable(function) {
        return false;
    }
    let Some(Ok(found)) = facts.btf.as_ref().and_then(|btf| btf.function(function)) else {
        return false;
    };
    found
        .proto
        .params()
        .next()
        .is_some_and(|param| param.is_ok_and(|param| param.name == "regs"))
}

/// An argument's kind, variable name and decoder.
fn arg(syscall: &str, field: &Field) -> Arg {
    let c_type = field.c_type.as_str();
    let pointer = c_type.contains('*') || c_type.ends_with("_t") && c_type.starts_with("cap_user");
    let kind = if pointer {
        let char_pointer = matches!(c_type, "char *" | "const char *" | "unsigned char *");
        if char_pointer && !NOT_STRINGS.contains(&field.name.as_str()) {
            ArgKind::UserString
        } else {
            ArgKind::Pointer
        }
    } else if field.signed
        || matches!(
            c_type,
            "int"
                | "long"
                | "const int"
                | "pid_t"
                | "off_t"
                | "loff_t"
                | "key_serial_t"
                | "__s32"
                | "mqd_t"
                | "timer_t"
                | "clockid_t"
                | "const clockid_t"
                | "key_t"
        )
    {
        ArgKind::Signed
    } else {
        ArgKind::Unsigned
    };
    let base = field.name.trim_start_matches('_');
    let var = match (syscall, base, kind) {
        ("exit" | "exit_group", "error_code", _) => "status".to_owned(),
        (_, "name", ArgKind::UserString) => "name_str".to_owned(),
        (_, _, ArgKind::Pointer) => format!("{base}_uaddr"),
        (_, _, _) if KEYWORDS.contains(&base) => format!("{base}_arg"),
        _ => base.to_owned(),
    };
    let decoder = match (syscall, field.name.as_str()) {
        ("open" | "openat", "flags") => Decoder::OpenFlags,
        ("mq_open", "oflag") => Decoder::OpenFlags,
        (
            "open" | "openat" | "creat" | "mkdir" | "mkdirat" | "chmod" | "fchmod" | "fchmodat"
            | "fchmodat2" | "mknod" | "mknodat" | "mq_open",
            "mode",
        ) => Decoder::FileMode,
        ("access" | "faccessat" | "faccessat2", "mode") => Decoder::AccessMode,
        (_, "dfd" | "olddfd" | "newdfd" | "from_dfd" | "to_dfd") => Decoder::DirFd,
        (
            "kill" | "tkill" | "tgkill" | "rt_sigqueueinfo" | "rt_tgsigqueueinfo"
            | "pidfd_send_signal" | "rt_sigaction" | "sigaltstack",
            "sig",
        ) => Decoder::Signal,
        _ => Decoder::Plain,
    };
    Arg {
        field: field.name.clone(),
        var,
        kind,
        decoder,
    }
}

/// The whole file.
fn render(kernels: &[Kernel], syscalls: &[Syscall]) -> String {
    let ids: Vec<&str> = kernels.iter().map(|kernel| kernel.id.as_str()).collect();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "// GENERATED by `cargo xtask gen-syscalls` from the harvested facts of\n\
         // kernels {}: do not edit. Regenerate after the matrix changes:\n\
         //   TAPMATRIX_CACHE=<cache> cargo xtask gen-syscalls\n\
         // (the generator is xtask/src/gen_syscalls.rs; hand-written aliases\n\
         // that need more than the generator knows live in other tapset files).\n\
         //\n\
         // One `syscall.NAME` and one `syscall.NAME.return` per x86_64 system call\n\
         // that has the `syscalls:sys_enter_NAME` (`sys_exit_NAME`) tracepoint on\n\
         // some kernel of the matrix, with the variables SystemTap's syscall\n\
         // tapset documents: `name`, `argstr` (the arguments as SystemTap prints\n\
         // them), one variable per argument (user strings quoted, with a\n\
         // `_unquoted` twin; other user pointers as `NAME_uaddr`), and on return\n\
         // `retval` and `retstr`. A syscall that some kernels lack is optional\n\
         // (`?`): its alias attaches nowhere there, and its comment names them.\n\
         // Each has its `nd_syscall.` twin (SystemTap's names for the syscall\n\
         // probes that need no debuginfo): none here does.\n\
         //\n\
         // User strings: from 7.0 in the matrix the syscall events record them\n\
         // (`__NAME_val` fields), read with kernel_string(). Eprobes (5.15) can\n\
         // fetch them through a pointer field, but read them back empty on 6.1\n\
         // and 7.0; so before the kernel's own copies, the syscalls with a string\n\
         // argument are probed at `__x64_sys_NAME`, whose `struct pt_regs *regs`\n\
         // holds the arguments (di, si, dx, r10, r8, r9).",
        ids.join(", ")
    );
    for syscall in syscalls {
        render_entry(&mut out, kernels, syscall);
        render_nd(&mut out, kernels, syscall, "");
        if syscall.has_exit {
            render_return(&mut out, kernels, syscall);
            render_nd(&mut out, kernels, syscall, ".return");
        }
    }
    out
}

/// `nd_syscall.NAME` (`suffix` "") or `nd_syscall.NAME.return` (".return"):
/// SystemTap's names for the syscall probes that need no debuginfo, which
/// here are the `syscall.` ones.
fn render_nd(out: &mut String, kernels: &[Kernel], syscall: &Syscall, suffix: &str) {
    let name = &syscall.name;
    let optional = if syscall.present.len() == kernels.len() {
        ""
    } else {
        " ?"
    };
    let what = if suffix.is_empty() {
        "is entered"
    } else {
        "returns"
    };
    let _ = writeln!(
        out,
        "\n/**\n * probe nd_syscall.{name}{suffix} - The {name} system call {what} (no debuginfo needed)"
    );
    let _ = writeln!(
        out,
        " *\n * Description: SystemTap's non-debuginfo variant of syscall.{name}{suffix}: the same probe, with the same variables.\n */"
    );
    let _ = writeln!(
        out,
        "probe nd_syscall.{name}{suffix} = syscall.{name}{suffix}{optional} {{ }}"
    );
}

/// The comment line naming the kernels a partial syscall is missing on, if any.
fn presence_note(kernels: &[Kernel], present: &[usize]) -> Option<String> {
    if present.len() == kernels.len() {
        return None;
    }
    let absent: Vec<&str> = (0..kernels.len())
        .filter(|index| !present.contains(index))
        .map(|index| kernels[index].id.as_str())
        .collect();
    let first = present.first().copied().unwrap_or(0);
    let last = present.last().copied().unwrap_or(0);
    let contiguous = last + 1 - first == present.len();
    Some(if contiguous && last + 1 == kernels.len() {
        format!(
            "Optional: the tracepoint appeared in {} in the matrix (absent on {}).",
            kernels[first].id,
            absent.join(", ")
        )
    } else if contiguous && first == 0 {
        format!(
            "Optional: the tracepoint is gone after {} in the matrix (absent on {}).",
            kernels[last].id,
            absent.join(", ")
        )
    } else {
        format!(
            "Optional: the tracepoint is absent on {}.",
            absent.join(", ")
        )
    })
}

/// `syscall.NAME`.
fn render_entry(out: &mut String, kernels: &[Kernel], syscall: &Syscall) {
    let name = &syscall.name;
    let optional = if syscall.present.len() == kernels.len() {
        ""
    } else {
        " ?"
    };
    let _ = writeln!(
        out,
        "\n/**\n * probe syscall.{name} - The {name} system call is entered"
    );
    let _ = writeln!(out, " * @name: The syscall's name, \"{name}\"");
    for arg in &syscall.args {
        let _ = writeln!(out, " * @{}: {}", arg.var, describe(arg));
        if arg.kind == ArgKind::UserString {
            let _ = writeln!(
                out,
                " * @{}_unquoted: The string `{}` points to, unquoted",
                arg.var, arg.field
            );
        }
        if let Some(suffix) = str_var(arg) {
            let _ = writeln!(out, " * @{}{suffix}: `{}` decoded", arg.var, arg.var);
        }
    }
    let _ = writeln!(
        out,
        " * @argstr: The arguments, formatted as SystemTap prints them"
    );
    if let Some(note) = presence_note(kernels, &syscall.present) {
        let _ = writeln!(out, " *\n * {note}");
    }
    let _ = writeln!(out, " */");
    let tracepoint = format!("kernel.trace(\"syscalls:sys_enter_{name}\"){optional}");
    let tracepoint_reads = |out: &mut String, new: NewStrings| {
        let mode = match new {
            NewStrings::KernelCopies => Reads::KernelCopies,
            NewStrings::Eprobe => Reads::UserStrings,
        };
        render_reads(out, &syscall.args, |_, arg| format!("${}", arg.field), mode);
    };
    match &syscall.strings {
        None => {
            let _ = writeln!(
                out,
                "probe syscall.{name} = {tracepoint}\n{{\n\tname = \"{name}\""
            );
            tracepoint_reads(out, NewStrings::Eprobe);
        }
        Some(plan) => {
            let since = plan.since.as_str();
            let why = match plan.new {
                NewStrings::KernelCopies => format!(
                    "\t// From {since} the event records its user strings itself (__NAME_val\n\
                     \t// fields); before, eprobes read them back empty on some kernels:\n"
                ),
                NewStrings::Eprobe => format!(
                    "\t// From {since} an eprobe reads the user strings through the event's\n\
                     \t// pointer fields (they read back empty on 6.1); before:\n"
                ),
            };
            match plan.old {
                OldStrings::NotNeeded => {
                    let _ = writeln!(
                        out,
                        "probe syscall.{name} = {tracepoint}\n{{\n\tname = \"{name}\""
                    );
                    tracepoint_reads(out, plan.new);
                }
                OldStrings::Registers => {
                    let _ = write!(
                        out,
                        "probe syscall.{name} =\n%( kernel_v >= \"{since}\" %?\n\t{tracepoint}\n%:\n{why}\
                         \t// the syscall's entry function, its arguments in the registers.\n\
                         \tkernel.function(\"__x64_sys_{name}\"){optional}\n%)\n{{\n\tname = \"{name}\"\n"
                    );
                    let _ = writeln!(out, "%( kernel_v >= \"{since}\" %?");
                    tracepoint_reads(out, plan.new);
                    let _ = writeln!(out, "%:");
                    render_reads(
                        out,
                        &syscall.args,
                        |index, _| format!("$regs->{}", ARG_REGISTERS.get(index).unwrap_or(&"di")),
                        Reads::UserStrings,
                    );
                    let _ = writeln!(out, "%)");
                }
                OldStrings::Addresses => {
                    let _ = writeln!(
                        out,
                        "probe syscall.{name} = {tracepoint}\n{{\n\tname = \"{name}\""
                    );
                    let _ = writeln!(out, "%( kernel_v >= \"{since}\" %?");
                    tracepoint_reads(out, plan.new);
                    let _ = write!(
                        out,
                        "%:\n{why}\t// __x64_sys_{name} has no BTF `regs` there: the strings' addresses.\n"
                    );
                    render_reads(
                        out,
                        &syscall.args,
                        |_, arg| format!("${}", arg.field),
                        Reads::Addresses,
                    );
                    let _ = writeln!(out, "%)");
                }
            }
        }
    }
    let mut formats = Vec::new();
    let mut values = Vec::new();
    for arg in &syscall.args {
        if let Some(suffix) = str_var(arg) {
            let function = match arg.decoder {
                Decoder::OpenFlags => "_sys_open_flag_str",
                Decoder::DirFd => "_dfd_str",
                Decoder::Signal => "_signal_name",
                _ => "_access_mode_str",
            };
            let _ = writeln!(out, "\t{}{suffix} = {function}({})", arg.var, arg.var);
            formats.push("%s");
            values.push(format!("{}{suffix}", arg.var));
            continue;
        }
        formats.push(match (arg.decoder, arg.kind) {
            (Decoder::FileMode, _) => "%#o",
            (_, ArgKind::UserString) => "%s",
            (_, ArgKind::Pointer) => "%p",
            (_, ArgKind::Signed) => "%d",
            (_, ArgKind::Unsigned) => "%u",
        });
        values.push(arg.var.clone());
    }
    let mode = syscall
        .args
        .iter()
        .position(|arg| arg.decoder == Decoder::FileMode);
    let flags = syscall
        .args
        .iter()
        .find(|arg| arg.decoder == Decoder::OpenFlags);
    if let (Some(mode), Some(flags)) = (mode, flags) {
        // SystemTap prints an open's mode only when O_CREAT (0100) asks for one.
        let mut short_formats = formats.clone();
        let mut short_values = values.clone();
        short_formats.remove(mode);
        short_values.remove(mode);
        let _ = writeln!(
            out,
            "\tif ({} & 64)\n\t\targstr = sprintf(\"{}\", {})\n\telse\n\t\targstr = sprintf(\"{}\", {})\n}}",
            flags.var,
            formats.join(", "),
            values.join(", "),
            short_formats.join(", "),
            short_values.join(", ")
        );
    } else if values.is_empty() {
        let _ = writeln!(out, "\targstr = \"\"\n}}");
    } else {
        let _ = writeln!(
            out,
            "\targstr = sprintf(\"{}\", {})\n}}",
            formats.join(", "),
            values.join(", ")
        );
    }
}

/// The suffix of the decoded twin variable (`_str`), for decoded arguments.
fn str_var(arg: &Arg) -> Option<&'static str> {
    match arg.decoder {
        Decoder::OpenFlags | Decoder::DirFd | Decoder::Signal | Decoder::AccessMode => Some("_str"),
        Decoder::Plain | Decoder::FileMode => None,
    }
}

/// How [`render_reads`] reads user strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reads {
    /// `user_string(TARGET)`.
    UserStrings,
    /// The event's own copy: `kernel_string($__NAME_val)`.
    KernelCopies,
    /// Their addresses, as SystemTap prints a string it cannot read.
    Addresses,
}

/// Assignments of the argument variables from target expressions (given
/// the argument's index), user strings read as `mode` says.
fn render_reads(
    out: &mut String,
    args: &[Arg],
    target: impl Fn(usize, &Arg) -> String,
    mode: Reads,
) {
    for (index, arg) in args.iter().enumerate() {
        let target = target(index, arg);
        match (arg.kind, mode) {
            (ArgKind::UserString, Reads::Addresses) => {
                let _ = writeln!(out, "\t{} = sprintf(\"0x%x\", {target})", arg.var);
                let _ = writeln!(out, "\t{}_unquoted = {}", arg.var, arg.var);
            }
            (ArgKind::UserString, Reads::KernelCopies) => {
                let copy = format!("$__{}_val", arg.field);
                let _ = writeln!(out, "\t{} = kernel_string_quoted({copy})", arg.var);
                let _ = writeln!(out, "\t{}_unquoted = kernel_string({copy})", arg.var);
            }
            (ArgKind::UserString, Reads::UserStrings) => {
                let _ = writeln!(out, "\t{} = user_string_quoted({target})", arg.var);
                let _ = writeln!(out, "\t{}_unquoted = user_string({target})", arg.var);
            }
            _ => {
                let _ = writeln!(out, "\t{} = {target}", arg.var);
            }
        }
    }
}

/// A variable's doc line.
fn describe(arg: &Arg) -> String {
    match arg.kind {
        ArgKind::UserString => format!("The string argument `{}`, quoted", arg.field),
        ArgKind::Pointer => format!("The user address `{}`", arg.field),
        ArgKind::Signed | ArgKind::Unsigned => match arg.decoder {
            Decoder::FileMode => format!("The file mode `{}` (printed in octal)", arg.field),
            _ => format!("The argument `{}`", arg.field),
        },
    }
}

/// `syscall.NAME.return`.
fn render_return(out: &mut String, kernels: &[Kernel], syscall: &Syscall) {
    let name = &syscall.name;
    let optional = if syscall.present.len() == kernels.len() {
        ""
    } else {
        " ?"
    };
    let format = if RETURNS_ADDRESS.contains(&name.as_str()) {
        2
    } else {
        1
    };
    let _ = writeln!(
        out,
        "\n/**\n * probe syscall.{name}.return - The {name} system call returns"
    );
    let _ = writeln!(out, " * @name: The syscall's name, \"{name}\"");
    let _ = writeln!(
        out,
        " * @retval: The return value (a negative errno on failure)"
    );
    let _ = writeln!(
        out,
        " * @retstr: The return value as SystemTap prints it (with the errno's name)"
    );
    if let Some(note) = presence_note(kernels, &syscall.present) {
        let _ = writeln!(out, " *\n * {note}");
    }
    let _ = writeln!(
        out,
        " */\nprobe syscall.{name}.return = kernel.trace(\"syscalls:sys_exit_{name}\"){optional}\n\
         {{\n\tname = \"{name}\"\n\tretval = $ret\n\tretstr = return_str({format}, $ret)\n}}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, c_type: &str, signed: bool) -> Field {
        Field {
            name: name.to_owned(),
            c_type: c_type.to_owned(),
            offset: 16,
            size: 8,
            signed,
        }
    }

    #[test]
    fn arguments_get_systemtap_names_kinds_and_decoders() {
        let filename = arg("openat", &field("filename", "const char *", false));
        assert_eq!(
            (filename.var.as_str(), filename.kind),
            ("filename", ArgKind::UserString)
        );
        let flags = arg("openat", &field("flags", "int", false));
        assert_eq!(
            (flags.kind, flags.decoder),
            (ArgKind::Signed, Decoder::OpenFlags)
        );
        let buf = arg("write", &field("buf", "const char *", false));
        assert_eq!(
            (buf.var.as_str(), buf.kind),
            ("buf_uaddr", ArgKind::Pointer)
        );
        let status = arg("exit_group", &field("error_code", "int", false));
        assert_eq!(status.var, "status");
        let name = arg("acct", &field("name", "const char *", false));
        assert_eq!(name.var, "name_str");
        let sig = arg("kill", &field("sig", "int", false));
        assert_eq!(sig.decoder, Decoder::Signal);
        let count = arg("read", &field("count", "size_t", false));
        assert_eq!(count.kind, ArgKind::Unsigned);
    }

    /// With the matrix's real facts (`TAPMATRIX_RESOLVE_FACTS`, as `cargo
    /// xtask test` sets it), the committed tapsets/syscalls.stp is what the
    /// generator writes: regenerate it when this fails.
    #[test]
    fn the_committed_syscalls_tapset_is_current() {
        let Some(facts) = std::env::var_os("TAPMATRIX_RESOLVE_FACTS") else {
            eprintln!("skipped: TAPMATRIX_RESOLVE_FACTS is not set");
            return;
        };
        let generated = generate(Path::new(&facts), None).unwrap();
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let committed = std::fs::read_to_string(root.join("tapsets/syscalls.stp")).unwrap();
        assert!(
            generated == committed,
            "tapsets/syscalls.stp is stale: run `TAPMATRIX_CACHE=<cache> cargo xtask gen-syscalls`"
        );
    }

    #[test]
    fn releases_give_major_minor() {
        assert_eq!(major_minor("5.10.0-32-amd64"), Some((5, 10)));
        assert_eq!(major_minor("7.3"), Some((7, 3)));
        assert_eq!(major_minor("next"), None);
    }
}
