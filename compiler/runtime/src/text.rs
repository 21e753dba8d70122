//! String builtins with the semantics of SystemTap's tapset functions.

/// `text_str` / `string_quoted`: escape what is not printable ASCII
/// (`_stp_text_str`), optionally in double quotes.
pub(crate) fn escape(s: &str, quoted: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    if quoted {
        out.push('"');
    }
    for &byte in s.as_bytes() {
        match byte {
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x0b => out.push_str("\\v"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b if b == b' ' || b.is_ascii_graphic() => out.push(char::from(b)),
            b => out.push_str(&format!("\\{b:03o}")),
        }
    }
    if quoted {
        out.push('"');
    }
    out
}

/// `substr(s, start, length)`: bytes `start..start+length`, "" when
/// `start` is outside the string.
pub(crate) fn substr(s: &str, start: i64, length: i64) -> String {
    let bytes = s.as_bytes();
    let Ok(start) = usize::try_from(start) else {
        return String::new();
    };
    if start >= bytes.len() || length <= 0 {
        return String::new();
    }
    let end = usize::try_from(length)
        .map_or(bytes.len(), |len| start.saturating_add(len))
        .min(bytes.len());
    String::from_utf8_lossy(&bytes[start..end]).into_owned()
}

/// `strtol(s, base)`: C's `strtol`: leading blanks, a sign, `0x` for base
/// 16 (or 0), digits up to the first invalid one; 0 when none.
pub(crate) fn strtol(s: &str, base: i64) -> i64 {
    let s = s.trim_start();
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let has_hex_prefix = rest.len() > 2
        && (rest.starts_with("0x") || rest.starts_with("0X"))
        && rest.as_bytes()[2].is_ascii_hexdigit();
    let (base, digits) = match base {
        0 if has_hex_prefix => (16, &rest[2..]),
        0 if rest.starts_with('0') => (8, rest),
        0 => (10, rest),
        16 if has_hex_prefix => (16, &rest[2..]),
        b if (2..=36).contains(&b) => (b as u32, rest),
        _ => return 0,
    };
    let mut value: i64 = 0;
    for c in digits.chars() {
        let Some(d) = c.to_digit(base) else { break };
        value = value
            .wrapping_mul(i64::from(base))
            .wrapping_add(i64::from(d));
    }
    if negative {
        value.wrapping_neg()
    } else {
        value
    }
}

/// `ppfunc()`: the function named in a probe point
/// (`kernel.function("vfs_read@fs/read_write.c:450")` gives `vfs_read`).
pub(crate) fn ppfunc(pp: &str) -> String {
    let start = pp
        .find("function(\"")
        .map(|i| i + "function(\"".len())
        .or_else(|| pp.find("statement(\"").map(|i| i + "statement(\"".len()));
    let Some(start) = start else {
        return String::new();
    };
    pp[start..]
        .chars()
        .take_while(|&c| c != '@' && c != '"')
        .collect()
}

/// `syscall_name(nr)`: the name of x86_64 system call `nr`, or
/// `sys_<nr>` for a number the table does not know (a call newer than it,
/// or -1 outside a system call), as SystemTap prints unknown ones.
pub(crate) fn syscall_name(nr: i64) -> String {
    tapmatrix_ir::syscalls::name(nr).map_or_else(|| format!("sys_{nr}"), str::to_owned)
}

/// `ctime(secs)`: seconds since the epoch as `ctime(3)` prints them in UTC
/// (`Thu Jan  1 00:00:00 1970`), without the newline; SystemTap's
/// `"<invalid time>"` when the year does not fit in four digits.
pub(crate) fn ctime(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(1900..=9999).contains(&year) {
        return "<invalid time>".to_owned();
    }
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[days.rem_euclid(7) as usize],
        MONTHS[(month - 1) as usize],
        day,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        year
    )
}

/// `errno_str(n)`: the Linux name of errno `|n|`.
pub(crate) fn errno_name(n: i64) -> String {
    const NAMES: [&str; 134] = [
        "",
        "EPERM",
        "ENOENT",
        "ESRCH",
        "EINTR",
        "EIO",
        "ENXIO",
        "E2BIG",
        "ENOEXEC",
        "EBADF",
        "ECHILD",
        "EAGAIN",
        "ENOMEM",
        "EACCES",
        "EFAULT",
        "ENOTBLK",
        "EBUSY",
        "EEXIST",
        "EXDEV",
        "ENODEV",
        "ENOTDIR",
        "EISDIR",
        "EINVAL",
        "ENFILE",
        "EMFILE",
        "ENOTTY",
        "ETXTBSY",
        "EFBIG",
        "ENOSPC",
        "ESPIPE",
        "EROFS",
        "EMLINK",
        "EPIPE",
        "EDOM",
        "ERANGE",
        "EDEADLK",
        "ENAMETOOLONG",
        "ENOLCK",
        "ENOSYS",
        "ENOTEMPTY",
        "ELOOP",
        "",
        "ENOMSG",
        "EIDRM",
        "ECHRNG",
        "EL2NSYNC",
        "EL3HLT",
        "EL3RST",
        "ELNRNG",
        "EUNATCH",
        "ENOCSI",
        "EL2HLT",
        "EBADE",
        "EBADR",
        "EXFULL",
        "ENOANO",
        "EBADRQC",
        "EBADSLT",
        "",
        "EBFONT",
        "ENOSTR",
        "ENODATA",
        "ETIME",
        "ENOSR",
        "ENONET",
        "ENOPKG",
        "EREMOTE",
        "ENOLINK",
        "EADV",
        "ESRMNT",
        "ECOMM",
        "EPROTO",
        "EMULTIHOP",
        "EDOTDOT",
        "EBADMSG",
        "EOVERFLOW",
        "ENOTUNIQ",
        "EBADFD",
        "EREMCHG",
        "ELIBACC",
        "ELIBBAD",
        "ELIBSCN",
        "ELIBMAX",
        "ELIBEXEC",
        "EILSEQ",
        "ERESTART",
        "ESTRPIPE",
        "EUSERS",
        "ENOTSOCK",
        "EDESTADDRREQ",
        "EMSGSIZE",
        "EPROTOTYPE",
        "ENOPROTOOPT",
        "EPROTONOSUPPORT",
        "ESOCKTNOSUPPORT",
        "EOPNOTSUPP",
        "EPFNOSUPPORT",
        "EAFNOSUPPORT",
        "EADDRINUSE",
        "EADDRNOTAVAIL",
        "ENETDOWN",
        "ENETUNREACH",
        "ENETRESET",
        "ECONNABORTED",
        "ECONNRESET",
        "ENOBUFS",
        "EISCONN",
        "ENOTCONN",
        "ESHUTDOWN",
        "ETOOMANYREFS",
        "ETIMEDOUT",
        "ECONNREFUSED",
        "EHOSTDOWN",
        "EHOSTUNREACH",
        "EALREADY",
        "EINPROGRESS",
        "ESTALE",
        "EUCLEAN",
        "ENOTNAM",
        "ENAVAIL",
        "EISNAM",
        "EREMOTEIO",
        "EDQUOT",
        "ENOMEDIUM",
        "EMEDIUMTYPE",
        "ECANCELED",
        "ENOKEY",
        "EKEYEXPIRED",
        "EKEYREVOKED",
        "EKEYREJECTED",
        "EOWNERDEAD",
        "ENOTRECOVERABLE",
        "ERFKILL",
        "EHWPOISON",
    ];
    let e = n.unsigned_abs();
    usize::try_from(e)
        .ok()
        .and_then(|i| NAMES.get(i))
        .filter(|name| !name.is_empty())
        .map_or_else(|| format!("E#{e}"), |name| (*name).to_owned())
}

/// A field of `/proc/PID/status` (`PPid`, `Uid`, `Gid`): its first
/// number, 0 when the task is gone.
pub(crate) fn proc_status_field(pid: i64, field: &str) -> i64 {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_text_str() {
        assert_eq!(escape("a\tb\"c\\\u{1}", false), "a\\tb\\\"c\\\\\\001");
        assert_eq!(escape("hi\n", true), "\"hi\\n\"");
    }

    #[test]
    fn substr_and_strtol() {
        assert_eq!(substr("hello", 1, 3), "ell");
        assert_eq!(substr("hello", 3, 100), "lo");
        assert_eq!(substr("hello", 5, 1), "");
        assert_eq!(substr("hello", -1, 1), "");
        assert_eq!(strtol("  -42x", 10), -42);
        assert_eq!(strtol("0x1f", 16), 31);
        assert_eq!(strtol("ff", 16), 255);
        assert_eq!(strtol("017", 0), 15);
        assert_eq!(strtol("zz", 10), 0);
    }

    #[test]
    fn names() {
        assert_eq!(errno_name(-2), "ENOENT");
        assert_eq!(errno_name(13), "EACCES");
        assert_eq!(errno_name(133), "EHWPOISON");
        assert_eq!(errno_name(999), "E#999");
        assert_eq!(
            ppfunc("kernel.function(\"vfs_read@fs/read_write.c:450\")"),
            "vfs_read"
        );
        assert_eq!(ppfunc("kernel.trace(\"sched_switch\")"), "");
    }

    #[test]
    fn syscall_names_by_number() {
        assert_eq!(syscall_name(0), "read");
        assert_eq!(syscall_name(1), "write");
        assert_eq!(syscall_name(59), "execve");
        assert_eq!(syscall_name(257), "openat");
        assert_eq!(syscall_name(-1), "sys_-1");
        assert_eq!(syscall_name(100_000), "sys_100000");
    }

    #[test]
    fn ctime_as_libc_prints_utc() {
        assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
        // date -u -d @1000000000
        assert_eq!(ctime(1_000_000_000), "Sun Sep  9 01:46:40 2001");
        // date -u -d @1709210096: a leap day
        assert_eq!(ctime(1_709_210_096), "Thu Feb 29 12:34:56 2024");
        assert_eq!(ctime(-86_400), "Wed Dec 31 00:00:00 1969");
        assert_eq!(ctime(i64::MAX), "<invalid time>");
    }
}
