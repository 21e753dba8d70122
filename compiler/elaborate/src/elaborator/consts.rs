//! `@const("NAME")`: a C constant of the kernel being compiled for, as
//! SystemTap's library names them (`@const("__NR_open")`,
//! `@const("AF_INET")`, `@const("ITER_IOVEC")`). SystemTap pastes the name
//! into generated C; tapmatrix has no compiler in the loop, so a name is a
//! value it knows: a system call number of the x86_64 table (-1 for a call
//! x86_64 lacks), an enumerator
//! of the kernel's BTF (values that move between kernels, `ITER_IOVEC`
//! among them), or the x86_64 ABI's value of a `#define` below (UAPI
//! values, stable across the matrix). Anything else (`current->pid`, a
//! name this table lacks) is C that tapmatrix cannot run: the elaborator
//! reports it, and a library function built on it gives way to one of the
//! same name in an earlier layer (`find_functions`).

use tapmatrix_facts::btf::Btf;
use tapmatrix_ir as ir;

/// The value of `@const(name)` on this kernel, if tapmatrix knows it.
pub(super) fn value(name: &str, btf: Option<&Btf>, cache: &mut Cache) -> Option<i64> {
    if let Some(call) = name.strip_prefix("__NR_") {
        // A call x86_64 does not have (`__NR_mmap2`, `__NR_compat_*`, which
        // SystemTap's aliases gate on for other architectures and 32-bit
        // tasks) is -1, a number no system call has: a gate comparing the
        // current call's number with it never passes.
        return Some(
            ir::syscalls::NAMES
                .iter()
                .position(|n| !n.is_empty() && *n == call)
                .and_then(|nr| i64::try_from(nr).ok())
                .unwrap_or(-1),
        );
    }
    if !is_identifier(name) {
        return None;
    }
    if let Some(&known) = cache.get(name) {
        return known;
    }
    let found = btf
        .and_then(|btf| btf.enumerator(name))
        .and_then(|v| i64::try_from(v).ok())
        .or_else(|| defined(name));
    cache.insert(name.to_owned(), found);
    found
}

/// What one elaboration learned of enumerators (a BTF walk each).
pub(super) type Cache = std::collections::HashMap<String, Option<i64>>;

pub(super) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The `#define`s SystemTap's library names, with their x86_64 values
/// (include/uapi/linux/*.h, arch/x86/include/uapi/asm/*.h; a few of the
/// kernel's own headers where noted; SystemTap's own `SA_*`).
fn defined(name: &str) -> Option<i64> {
    let value = match name {
        // Sizes.
        "PAGE_SIZE" | "_STP_PAGE_SIZE" => 4096,
        "BITS_PER_LONG" => 64,
        "MAXSTRINGLEN" => i64::from(ir::Limits::default().max_string_len),
        // Files (fcntl.h, stat.h) and the uaccess directions SystemTap's
        // runtime keeps defining for kernels that dropped them (5.0).
        "O_CREAT" => 0o100,
        "AT_FDCWD" => -100,
        "VERIFY_READ" => 0,
        "VERIFY_WRITE" => 1,
        "S_IFMT" => 0o170_000,
        "S_IFSOCK" => 0o140_000,
        "S_IFREG" => 0o100_000,
        "S_IFBLK" => 0o60_000,
        "S_IFCHR" => 0o20_000,
        "S_IFIFO" => 0o10_000,
        "S_IRWXU" => 0o700,
        "S_IRUSR" => 0o400,
        "S_IWUSR" => 0o200,
        "S_IXUSR" => 0o100,
        "S_IRWXG" => 0o70,
        "S_IRGRP" => 0o40,
        "S_IWGRP" => 0o20,
        "S_IXGRP" => 0o10,
        "S_IRWXO" => 0o7,
        "S_IROTH" => 0o4,
        "S_IWOTH" => 0o2,
        "S_IXOTH" => 0o1,
        // Filesystem magics (magic.h).
        "SOCKFS_MAGIC" => 0x534F_434B,
        "PIPEFS_MAGIC" => 0x5049_5045,
        "ANON_INODE_FS_MAGIC" => 0x0904_1934,
        "NSFS_MAGIC" => 0x6e73_6673,
        // Tasks (linux/sched.h) and memory (gfp_types.h: IO|FS|RECLAIM).
        "__TASK_STOPPED" => 0x4,
        "__TASK_TRACED" => 0x8,
        "TASK_WAKEKILL" => 0x100,
        "GFP_KERNEL" => 0xcc0,
        "SIGTRAP" => 5,
        "ENETUNREACH" => 101,
        "EHOSTUNREACH" => 113,
        // Sockets (socket.h, net.h's socketcall numbers).
        "AF_LOCAL" => 1,
        "AF_INET" | "PF_INET" => 2,
        "AF_INET6" | "PF_INET6" => 10,
        "SYS_SOCKET" => 1,
        "SYS_BIND" => 2,
        "SYS_CONNECT" => 3,
        "SYS_LISTEN" => 4,
        "SYS_ACCEPT" => 5,
        "SYS_GETSOCKNAME" => 6,
        "SYS_GETPEERNAME" => 7,
        "SYS_SOCKETPAIR" => 8,
        "SYS_SEND" => 9,
        "SYS_RECV" => 10,
        "SYS_SENDTO" => 11,
        "SYS_RECVFROM" => 12,
        "SYS_SHUTDOWN" => 13,
        "SYS_SETSOCKOPT" => 14,
        "SYS_GETSOCKOPT" => 15,
        "SYS_SENDMSG" => 16,
        "SYS_RECVMSG" => 17,
        "SYS_ACCEPT4" => 18,
        "SYS_RECVMMSG" => 19,
        "SYS_SENDMMSG" => 20,
        // SystemTap's own `_struct_sockaddr_u` selectors (aux_syscalls.stp).
        "SA_PRETTY" => 1,
        "SA_IP_ADDR" => 2,
        "SA_TCP_PORT" => 4,
        "SA_FAMILY" => 8,
        "SA_IPV6_FLOWINFO" => 16,
        "SA_IPV6_SCOPE_ID" => 32,
        // The ipc(2) calls (linux/ipc.h).
        "IPC_PRIVATE" => 0,
        "SEMOP" => 1,
        "SEMGET" => 2,
        "SEMCTL" => 3,
        "SEMTIMEDOP" => 4,
        "MSGSND" => 11,
        "MSGRCV" => 12,
        "MSGGET" => 13,
        "MSGCTL" => 14,
        "SHMAT" => 21,
        "SHMDT" => 22,
        "SHMGET" => 23,
        "SHMCTL" => 24,
        // Protocols (in.h) and their options (tcp.h, in6.h).
        "IPPROTO_IP" => 0,
        "IPPROTO_ICMP" => 1,
        "IPPROTO_IGMP" => 2,
        "IPPROTO_IPIP" => 4,
        "IPPROTO_TCP" => 6,
        "IPPROTO_EGP" => 8,
        "IPPROTO_PUP" => 12,
        "IPPROTO_UDP" => 17,
        "IPPROTO_IDP" => 22,
        "IPPROTO_TP" => 29,
        "IPPROTO_DCCP" => 33,
        "IPPROTO_IPV6" => 41,
        "IPPROTO_RSVP" => 46,
        "IPPROTO_GRE" => 47,
        "IPPROTO_ESP" => 50,
        "IPPROTO_AH" => 51,
        "IPPROTO_MTP" => 92,
        "IPPROTO_ENCAP" => 98,
        "IPPROTO_PIM" => 103,
        "IPPROTO_COMP" => 108,
        "IPPROTO_SCTP" => 132,
        "IPPROTO_UDPLITE" => 136,
        "IPPROTO_RAW" => 255,
        "TCP_NODELAY" => 1,
        "TCP_MAXSEG" => 2,
        "TCP_CORK" => 3,
        "TCP_KEEPIDLE" => 4,
        "TCP_KEEPINTVL" => 5,
        "TCP_KEEPCNT" => 6,
        "TCP_SYNCNT" => 7,
        "TCP_LINGER2" => 8,
        "TCP_DEFER_ACCEPT" => 9,
        "TCP_WINDOW_CLAMP" => 10,
        "TCP_INFO" => 11,
        "TCP_QUICKACK" => 12,
        "TCP_CONGESTION" => 13,
        "TCP_MD5SIG" => 14,
        // Gone from the kernel's headers; SystemTap defines it as 0.
        "TCP_COOKIE_TRANSACTIONS" => 0,
        "TCP_THIN_LINEAR_TIMEOUTS" => 16,
        "TCP_THIN_DUPACK" => 17,
        "TCP_USER_TIMEOUT" => 18,
        "IPV6_ADDRFORM" => 1,
        "IPV6_2292PKTINFO" => 2,
        "IPV6_2292HOPOPTS" => 3,
        "IPV6_2292DSTOPTS" => 4,
        "IPV6_2292RTHDR" => 5,
        "IPV6_2292PKTOPTIONS" => 6,
        "IPV6_CHECKSUM" => 7,
        "IPV6_2292HOPLIMIT" => 8,
        "IPV6_NEXTHOP" => 9,
        "IPV6_AUTHHDR" => 10,
        "IPV6_FLOWINFO" => 11,
        "IPV6_UNICAST_HOPS" => 16,
        "IPV6_MULTICAST_IF" => 17,
        "IPV6_MULTICAST_HOPS" => 18,
        "IPV6_MULTICAST_LOOP" => 19,
        "IPV6_ADD_MEMBERSHIP" => 20,
        "IPV6_DROP_MEMBERSHIP" => 21,
        "IPV6_ROUTER_ALERT" => 22,
        "IPV6_MTU_DISCOVER" => 23,
        "IPV6_MTU" => 24,
        "IPV6_RECVERR" => 25,
        "IPV6_V6ONLY" => 26,
        "IPV6_JOIN_ANYCAST" => 27,
        "IPV6_LEAVE_ANYCAST" => 28,
        "IPV6_FLOWLABEL_MGR" => 32,
        "IPV6_FLOWINFO_SEND" => 33,
        "IPV6_IPSEC_POLICY" => 34,
        "IPV6_XFRM_POLICY" => 35,
        "MCAST_JOIN_GROUP" => 42,
        "MCAST_BLOCK_SOURCE" => 43,
        "MCAST_UNBLOCK_SOURCE" => 44,
        "MCAST_LEAVE_GROUP" => 45,
        "MCAST_JOIN_SOURCE_GROUP" => 46,
        "MCAST_LEAVE_SOURCE_GROUP" => 47,
        "MCAST_MSFILTER" => 48,
        "IPV6_RECVPKTINFO" => 49,
        "IPV6_PKTINFO" => 50,
        "IPV6_RECVHOPLIMIT" => 51,
        "IPV6_HOPLIMIT" => 52,
        "IPV6_RECVHOPOPTS" => 53,
        "IPV6_HOPOPTS" => 54,
        "IPV6_RTHDRDSTOPTS" => 55,
        "IPV6_RECVRTHDR" => 56,
        "IPV6_RTHDR" => 57,
        "IPV6_RECVDSTOPTS" => 58,
        "IPV6_DSTOPTS" => 59,
        "IPV6_RECVPATHMTU" => 60,
        "IPV6_PATHMTU" => 61,
        "IPV6_DONTFRAG" => 62,
        "IPV6_RECVTCLASS" => 66,
        "IPV6_TCLASS" => 67,
        "IPV6_ADDR_PREFERENCES" => 72,
        "IPV6_MINHOPCOUNT" => 73,
        "IPV6_RECVORIGDSTADDR" => 74,
        "IPV6_TRANSPARENT" => 75,
        "ICMP_EXC_FRAGTIME" => 1,
        "ICMP_PROT_UNREACH" => 2,
        "ICMP_DEST_UNREACH" => 3,
        "ICMP_TIME_EXCEEDED" => 11,
        "NET_RX_DROP" => 1,
        "NF_ARP" => 0,
        "LLC_SAP_BSPAN" => 0x42,
        // ptrace (linux/ptrace.h, arch/x86/include/uapi/asm/ptrace-abi.h).
        "PTRACE_TRACEME" => 0,
        "PTRACE_PEEKTEXT" => 1,
        "PTRACE_PEEKDATA" => 2,
        "PTRACE_PEEKUSR" => 3,
        "PTRACE_POKETEXT" => 4,
        "PTRACE_POKEDATA" => 5,
        "PTRACE_POKEUSR" => 6,
        "PTRACE_CONT" => 7,
        "PTRACE_KILL" => 8,
        "PTRACE_SINGLESTEP" => 9,
        "PTRACE_GETREGS" => 12,
        "PTRACE_SETREGS" => 13,
        "PTRACE_GETFPREGS" => 14,
        "PTRACE_SETFPREGS" => 15,
        "PTRACE_ATTACH" => 16,
        "PTRACE_DETACH" => 17,
        "PTRACE_GETFPXREGS" => 18,
        "PTRACE_SETFPXREGS" => 19,
        "PTRACE_OLDSETOPTIONS" => 21,
        "PTRACE_SYSCALL" => 24,
        "PTRACE_GET_THREAD_AREA" => 25,
        "PTRACE_SET_THREAD_AREA" => 26,
        "PTRACE_ARCH_PRCTL" => 30,
        "PTRACE_SYSEMU" => 31,
        "PTRACE_SYSEMU_SINGLESTEP" => 32,
        "PTRACE_SINGLEBLOCK" => 33,
        "PTRACE_SETOPTIONS" => 0x4200,
        "PTRACE_GETEVENTMSG" => 0x4201,
        "PTRACE_GETSIGINFO" => 0x4202,
        "PTRACE_SETSIGINFO" => 0x4203,
        "PTRACE_GETREGSET" => 0x4204,
        "PTRACE_SETREGSET" => 0x4205,
        "PTRACE_SEIZE" => 0x4206,
        "PTRACE_INTERRUPT" => 0x4207,
        "PTRACE_LISTEN" => 0x4208,
        "PTRACE_PEEKSIGINFO" => 0x4209,
        "PTRACE_GETSIGMASK" => 0x420a,
        "PTRACE_SETSIGMASK" => 0x420b,
        "PTRACE_EVENT_FORK" => 1,
        "PTRACE_EVENT_VFORK" => 2,
        "PTRACE_EVENT_CLONE" => 3,
        "PTRACE_EVENT_EXEC" => 4,
        "PTRACE_EVENT_VFORK_DONE" => 5,
        "PTRACE_EVENT_EXIT" => 6,
        "ARCH_SET_GS" => 0x1001,
        "ARCH_SET_FS" => 0x1002,
        "ARCH_GET_FS" => 0x1003,
        "ARCH_GET_GS" => 0x1004,
        // Resource limits (asm-generic/resource.h).
        "RLIMIT_CPU" => 0,
        "RLIMIT_FSIZE" => 1,
        "RLIMIT_DATA" => 2,
        "RLIMIT_STACK" => 3,
        "RLIMIT_CORE" => 4,
        "RLIMIT_RSS" => 5,
        "RLIMIT_NPROC" => 6,
        "RLIMIT_NOFILE" => 7,
        "RLIMIT_MEMLOCK" => 8,
        "RLIMIT_AS" => 9,
        "RLIMIT_LOCKS" => 10,
        "RLIMIT_SIGPENDING" => 11,
        "RLIMIT_MSGQUEUE" => 12,
        "RLIMIT_NICE" => 13,
        "RLIMIT_RTPRIO" => 14,
        "RLIMIT_RTTIME" => 15,
        "RLIM_NLIMITS" => 16,
        // Quotas (quota.h).
        "Q_SYNC" => 0x80_0001,
        "Q_QUOTAON" => 0x80_0002,
        "Q_QUOTAOFF" => 0x80_0003,
        "Q_GETFMT" => 0x80_0004,
        "Q_GETINFO" => 0x80_0005,
        "Q_SETINFO" => 0x80_0006,
        "Q_GETQUOTA" => 0x80_0007,
        "Q_SETQUOTA" => 0x80_0008,
        // Keys (keyctl.h).
        "KEYCTL_GET_KEYRING_ID" => 0,
        "KEYCTL_JOIN_SESSION_KEYRING" => 1,
        "KEYCTL_UPDATE" => 2,
        "KEYCTL_REVOKE" => 3,
        "KEYCTL_CHOWN" => 4,
        "KEYCTL_SETPERM" => 5,
        "KEYCTL_DESCRIBE" => 6,
        "KEYCTL_CLEAR" => 7,
        "KEYCTL_LINK" => 8,
        "KEYCTL_UNLINK" => 9,
        "KEYCTL_SEARCH" => 10,
        "KEYCTL_READ" => 11,
        "KEYCTL_INSTANTIATE" => 12,
        "KEYCTL_NEGATE" => 13,
        "KEYCTL_SET_REQKEY_KEYRING" => 14,
        "KEYCTL_SET_TIMEOUT" => 15,
        "KEYCTL_ASSUME_AUTHORITY" => 16,
        "KEYCTL_GET_SECURITY" => 17,
        "KEYCTL_SESSION_TO_PARENT" => 18,
        "KEYCTL_REJECT" => 19,
        "KEYCTL_INSTANTIATE_IOV" => 20,
        "KEYCTL_INVALIDATE" => 21,
        "KEYCTL_GET_PERSISTENT" => 22,
        // Futexes (futex.h).
        "FUTEX_WAIT" => 0,
        "FUTEX_WAKE" => 1,
        "FUTEX_FD" => 2,
        "FUTEX_REQUEUE" => 3,
        "FUTEX_CMP_REQUEUE" => 4,
        "FUTEX_WAKE_OP" => 5,
        "FUTEX_LOCK_PI" => 6,
        "FUTEX_UNLOCK_PI" => 7,
        "FUTEX_TRYLOCK_PI" => 8,
        "FUTEX_WAIT_BITSET" => 9,
        "FUTEX_WAKE_BITSET" => 10,
        "FUTEX_WAIT_REQUEUE_PI" => 11,
        "FUTEX_CMP_REQUEUE_PI" => 12,
        _ => return None,
    };
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_call_numbers_and_abi_values_are_known_and_c_is_not() {
        let mut cache = Cache::new();
        assert_eq!(value("__NR_read", None, &mut cache), Some(0));
        assert_eq!(value("__NR_openat", None, &mut cache), Some(257));
        assert_eq!(value("__NR_mmap2", None, &mut cache), Some(-1));
        assert_eq!(value("AF_INET6", None, &mut cache), Some(10));
        assert_eq!(value("AT_FDCWD", None, &mut cache), Some(-100));
        assert_eq!(value("current->pid", None, &mut cache), None);
        assert_eq!(value("PPC_PTRACE_GETREGS", None, &mut cache), None);
    }
}
