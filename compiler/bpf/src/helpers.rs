//! The kernel's helper functions we call, by their stable numbers
//! (`enum bpf_func_id` in `include/uapi/linux/bpf.h`; the numbers never
//! change, and a kernel's BTF lists the ones it has).

/// A helper function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Helper {
    /// `void *bpf_map_lookup_elem(map, key)`.
    MapLookupElem = 1,
    /// `long bpf_map_update_elem(map, key, value, flags)`.
    MapUpdateElem = 2,
    /// `long bpf_map_delete_elem(map, key)`.
    MapDeleteElem = 3,
    /// `u64 bpf_ktime_get_ns(void)`.
    KtimeGetNs = 5,
    /// `u32 bpf_get_prandom_u32(void)`.
    GetPrandomU32 = 7,
    /// `u32 bpf_get_smp_processor_id(void)`.
    GetSmpProcessorId = 8,
    /// `u64 bpf_get_current_pid_tgid(void)`.
    GetCurrentPidTgid = 14,
    /// `u64 bpf_get_current_uid_gid(void)`.
    GetCurrentUidGid = 15,
    /// `long bpf_get_current_comm(buf, size)`.
    GetCurrentComm = 16,
    /// `long bpf_get_stackid(ctx, map, flags)`.
    GetStackid = 27,
    /// `u64 bpf_get_current_task(void)`.
    GetCurrentTask = 35,
    /// `long bpf_get_stack(ctx, buf, size, flags)` (4.18).
    GetStack = 67,
    /// `long bpf_probe_read_user(dst, size, unsafe_ptr)` (5.5).
    ProbeReadUser = 112,
    /// `long bpf_probe_read_kernel(dst, size, unsafe_ptr)` (5.5).
    ProbeReadKernel = 113,
    /// `long bpf_probe_read_user_str(dst, size, unsafe_ptr)` (5.5).
    ProbeReadUserStr = 114,
    /// `long bpf_probe_read_kernel_str(dst, size, unsafe_ptr)` (5.5).
    ProbeReadKernelStr = 115,
    /// `long bpf_ringbuf_output(ringbuf, data, size, flags)` (5.8).
    RingbufOutput = 130,
    /// `void *bpf_ringbuf_reserve(ringbuf, size, flags)` (5.8).
    RingbufReserve = 131,
    /// `void bpf_ringbuf_submit(data, flags)` (5.8).
    RingbufSubmit = 132,
    /// `void bpf_ringbuf_discard(data, flags)` (5.8).
    RingbufDiscard = 133,
}

impl Helper {
    /// Its number.
    pub fn id(self) -> i32 {
        self as i32
    }

    /// Its name in `enum bpf_func_id` without `BPF_FUNC_`.
    pub fn name(self) -> &'static str {
        match self {
            Helper::MapLookupElem => "map_lookup_elem",
            Helper::MapUpdateElem => "map_update_elem",
            Helper::MapDeleteElem => "map_delete_elem",
            Helper::KtimeGetNs => "ktime_get_ns",
            Helper::GetPrandomU32 => "get_prandom_u32",
            Helper::GetSmpProcessorId => "get_smp_processor_id",
            Helper::GetCurrentPidTgid => "get_current_pid_tgid",
            Helper::GetCurrentUidGid => "get_current_uid_gid",
            Helper::GetCurrentComm => "get_current_comm",
            Helper::GetStackid => "get_stackid",
            Helper::GetCurrentTask => "get_current_task",
            Helper::GetStack => "get_stack",
            Helper::ProbeReadUser => "probe_read_user",
            Helper::ProbeReadKernel => "probe_read_kernel",
            Helper::ProbeReadUserStr => "probe_read_user_str",
            Helper::ProbeReadKernelStr => "probe_read_kernel_str",
            Helper::RingbufOutput => "ringbuf_output",
            Helper::RingbufReserve => "ringbuf_reserve",
            Helper::RingbufSubmit => "ringbuf_submit",
            Helper::RingbufDiscard => "ringbuf_discard",
        }
    }

    /// Every helper we call.
    pub const ALL: [Helper; 20] = [
        Helper::MapLookupElem,
        Helper::MapUpdateElem,
        Helper::MapDeleteElem,
        Helper::KtimeGetNs,
        Helper::GetPrandomU32,
        Helper::GetSmpProcessorId,
        Helper::GetCurrentPidTgid,
        Helper::GetCurrentUidGid,
        Helper::GetCurrentComm,
        Helper::GetStackid,
        Helper::GetCurrentTask,
        Helper::GetStack,
        Helper::ProbeReadUser,
        Helper::ProbeReadKernel,
        Helper::ProbeReadUserStr,
        Helper::ProbeReadKernelStr,
        Helper::RingbufOutput,
        Helper::RingbufReserve,
        Helper::RingbufSubmit,
        Helper::RingbufDiscard,
    ];
}

/// The name of helper `id`, if it is one we call.
pub fn helper_name(id: i32) -> Option<&'static str> {
    Helper::ALL.iter().find(|h| h.id() == id).map(|h| h.name())
}
