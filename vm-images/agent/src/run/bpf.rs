//! The BPF path of a run item: the artefact's object loaded with aya, every
//! program attached, the ring buffer's records turned into output and
//! hits, `begin`/`end`/`error`/timer probes run in the runtime with the
//! globals the kernel keeps read from its maps before and written back
//! after; everything detached and unloaded when the item ends (aya does
//! that when the loaded object is dropped).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use aya::maps::{MapData, RingBuf};
use aya::programs::perf_event::{
    HardwareEvent, PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent,
};
use aya::programs::{FEntry, FExit, KProbe, PerfEvent, RawTracePoint, TracePoint};
use aya::{Btf, Ebpf, EbpfLoader, VerifierLogLevel};
use tapmatrix_ir::bpf::{
    BpfArtefact, BpfAttach, Field, GlobalPlace, HIT_HEADER, LOST_OFFSET, MapKind, MapRole,
    PerfSample, REALTIME_OFFSET, RECORD_HEADER, RecordTag, SKIPPED_OFFSET, STATE_OFFSET,
    STATE_STOPPED, StatLayout, TARGET_OFFSET,
};
use tapmatrix_ir::{RunEnd, RunMessage, ScalarType, Value};
use tapmatrix_runtime::{Control, Element, GlobalValue, Hit, HitContext, Runtime, StatValue};
use tapmatrix_wire::RunItem;

use super::maps::{self, Table};
use super::{ItemRun, Timers, send, stopped};
use tapmatrix_ir::SlotFault;

/// The maps the agent reads, by the artefact's map index.
struct Maps {
    tables: Vec<Option<Box<dyn Table>>>,
    scalars: usize,
}

impl ItemRun<'_> {
    /// Runs an item compiled to BPF.
    pub(super) fn drive_bpf(&mut self, item: &RunItem, artefact: &BpfArtefact) -> Result<RunEnd> {
        // `stap -x PID` names target() itself; else it is the workload.
        let spawned = self.spawn_workload(&item.workload.command)?;
        let target = item.workload.target.unwrap_or(spawned);
        self.phases.mark("spawn");
        let loader = self.boot.loader.get_or_insert_with(loader);
        let mut ebpf = match loader.load(&artefact.object) {
            Ok(ebpf) => ebpf,
            Err(error) => {
                return self.refused(0, "the BPF object".to_owned(), format!("{error:#}"));
            }
        };
        self.phases.mark("load");
        let mut maps = open_maps(&mut ebpf, artefact)?;
        let mut events = RingBuf::try_from(
            ebpf.take_map("events")
                .context("the object has no events map")?,
        )?;
        let mut runtime = super::runtime_for(&artefact.program, target, &mut self.boot.symbols);
        let mut stop = stopped(runtime.begin());
        self.flush(&mut runtime)?;
        maps.export(artefact, &runtime)?;
        maps.set_word(TARGET_OFFSET, u64::from(target))?;
        maps.set_word(REALTIME_OFFSET, realtime_offset())?;
        // Programs do nothing until every one is attached: a probe and its
        // partner (entry and exit) see the same hits.
        maps.set_word(STATE_OFFSET, STATE_STOPPED)?;
        self.phases.mark("begin");
        let attaching = Instant::now();
        let mut verifying = Duration::ZERO;
        for (index, program) in artefact.programs.iter().enumerate() {
            if stop.is_some() {
                break;
            }
            let took = match attach(&mut ebpf, &program.name, &program.attach) {
                Ok(took) => took,
                Err(error) => {
                    crate::log(&format!(
                        "BPF program {} ({}) refused: {error:#}",
                        program.name, program.pp
                    ));
                    return self.refused(
                        index,
                        format!("BPF program {} for {}", program.name, program.pp),
                        format!("{error:#}"),
                    );
                }
            };
            verifying += took;
            // The programs the verifier took long over, with the
            // instructions it walked (the kernel's count, 5.16 and later):
            // where a script's setup time goes.
            if took >= SLOW_VERIFY {
                let walked = ebpf
                    .program(&program.name)
                    .and_then(|p| p.info().ok())
                    .and_then(|info| info.verified_instruction_count())
                    .map_or_else(String::new, |n| format!(", {n} instructions walked"));
                crate::log(&format!(
                    "BPF program {} ({}) verified in {} ms{walked}",
                    program.name,
                    program.pp,
                    took.as_millis()
                ));
            }
        }
        crate::log(&format!(
            "loaded and attached {} BPF programs ({:?} mode) in {} ms (loading {} ms)",
            artefact.programs.len(),
            artefact.mode,
            attaching.elapsed().as_millis(),
            verifying.as_millis()
        ));
        self.phases.mark("attach");
        // The kernel's count of hits it skipped starts with the run: those
        // while the programs were still stopped did not matter.
        let misses_before = recursion_misses(&ebpf, artefact);
        if stop.is_none() {
            maps.set_word(STATE_OFFSET, 0)?;
        }
        let mut timers = Timers::new(&runtime);
        let started = Instant::now();
        let timeout = Duration::from_millis(item.workload.timeout_ms);
        if stop.is_none() {
            self.release_workload()?;
        }
        while stop.is_none() {
            stop = self.drain(&mut events, artefact, &mut runtime)?;
            self.flush(&mut runtime)?;
            if stop.is_some() {
                break;
            }
            stop = timers.run_due(&mut runtime, &mut |runtime, before| {
                let done = if before {
                    maps.import(artefact, runtime)
                } else {
                    maps.export(artefact, runtime)
                };
                if let Err(error) = done {
                    crate::log(&format!("syncing globals around a timer: {error:#}"));
                }
            });
            self.flush(&mut runtime)?;
            if stop.is_some() {
                break;
            }
            stop = self.wait_a_poll(artefact.programs.is_empty(), &timers, started, timeout)?;
        }
        self.phases.mark("run");
        // Later hits do nothing; what the kernel sent before is handled
        // unless the script itself stopped.
        maps.set_word(STATE_OFFSET, STATE_STOPPED)?;
        let mut end = stop.unwrap_or(RunEnd::WorkloadDone);
        if matches!(end, RunEnd::WorkloadDone | RunEnd::Timeout)
            && let Some(stopped) = self.drain(&mut events, artefact, &mut runtime)?
        {
            end = stopped;
        } else {
            // Records of handlers that ran before the stop.
            let _ = self.drain(&mut events, artefact, &mut runtime)?;
        }
        self.lost = maps.word(LOST_OFFSET).unwrap_or(0);
        let misses = recursion_misses(&ebpf, artefact).saturating_sub(misses_before);
        self.skipped = maps.word(SKIPPED_OFFSET).unwrap_or(0) + misses;
        if self.skipped > 0 {
            crate::log(&format!(
                "{} hits skipped ({misses} by the kernel's recursion guard)",
                self.skipped
            ));
        }
        if let Some(workload) = &mut self.workload {
            workload.kill();
            self.status = workload.poll();
        }
        maps.import(artefact, &mut runtime)?;
        if let Control::Error(message) = runtime.end()
            && !matches!(end, RunEnd::RuntimeError { .. })
        {
            end = RunEnd::RuntimeError { message };
        }
        self.flush(&mut runtime)?;
        self.phases.mark("end");
        drop(maps);
        let periodic = artefact
            .programs
            .iter()
            .any(|program| matches!(program.attach, BpfAttach::PerfEvent { .. }));
        self.boot.put_away(ebpf, periodic);
        self.phases.mark("unload");
        Ok(end)
    }

    /// Reports a refused object or program; the item ends as rejected.
    fn refused(&mut self, index: usize, definition: String, error: String) -> Result<RunEnd> {
        send(
            self.channel,
            &RunMessage::EventRejected {
                item: self.item,
                event: u32::try_from(index).unwrap_or(u32::MAX),
                definition,
                error,
            },
        )?;
        Ok(RunEnd::Rejected)
    }

    /// Handles every record the ring buffer holds; `Some` when the script
    /// stopped (records after the stop are still printed, as SystemTap
    /// prints what a handler printed before its `exit()`).
    fn drain(
        &mut self,
        events: &mut RingBuf<MapData>,
        artefact: &BpfArtefact,
        runtime: &mut Runtime,
    ) -> Result<Option<RunEnd>> {
        let mut stop = None;
        while let Some(record) = events.next() {
            let record: &[u8] = &record;
            let tag = RecordTag::of(word32(record, 0));
            let id = word32(record, 4) as usize;
            let control = match tag {
                Some(RecordTag::Hit) => {
                    self.hits += 1;
                    match hit(artefact, id, record) {
                        Some(hit) if stop.is_none() => runtime.hit(&hit),
                        _ => Control::Continue,
                    }
                }
                Some(RecordTag::Printf) => match artefact.formats.get(id) {
                    Some(format) => {
                        let args: Vec<Value> =
                            format.args.iter().map(|f| value_at(record, f)).collect();
                        runtime.printf(&format.format, &args)
                    }
                    None => Control::Continue,
                },
                Some(RecordTag::Exit) => runtime.request_exit(),
                Some(RecordTag::Error) => match artefact.errors.get(id) {
                    Some(site) if site.dynamic => {
                        let text = string_at(record, RECORD_HEADER as usize, record.len());
                        runtime.raise(&site.render(&text, 0))
                    }
                    Some(site) => {
                        runtime.raise(&site.render("", word64(record, RECORD_HEADER as usize)))
                    }
                    None => Control::Continue,
                },
                None => Control::Continue,
            };
            if stop.is_none() {
                stop = stopped(control);
            }
        }
        Ok(stop)
    }
}

impl super::Boot {
    /// Puts an item's object away once the item is over. Its programs are
    /// stopped (they return at once). Detaching them waits for grace
    /// periods with the locks held that the next item's attaching needs
    /// (under TCG about 40 ms a kprobe program on 6.1, and more for
    /// trampolines), and the guest powers off after the batch anyway: so
    /// the object stays loaded and attached, unless its programs fire on
    /// their own (perf events sample whatever runs) or memory runs short
    /// (each object holds a ring buffer of 4 MiB), when a thread of its own
    /// unloads it while the next item runs.
    fn put_away(&mut self, ebpf: Ebpf, periodic: bool) {
        let available = available_memory();
        if !periodic && available.is_some_and(|bytes| bytes >= KEEP_LOADED_ABOVE) {
            self.stopped.push(ebpf);
        } else {
            if !periodic {
                crate::log(&format!(
                    "unloading a BPF object: {} MiB available, {} objects kept loaded",
                    available.unwrap_or(0) >> 20,
                    self.stopped.len()
                ));
            }
            self.unloading.push(std::thread::spawn(move || drop(ebpf)));
        }
    }
}

/// The hits the kernel did not run the object's programs for, summed over
/// them: `recursion_misses` of each program's `/proc/self/fdinfo` (5.12
/// and later; kprobe and tracepoint programs skipped because another BPF
/// program was running on that CPU are counted from 6.7). 0 where the
/// kernel does not say.
fn recursion_misses(ebpf: &Ebpf, artefact: &BpfArtefact) -> u64 {
    use std::os::fd::{AsFd as _, AsRawFd as _};
    artefact
        .programs
        .iter()
        .filter_map(|program| {
            let fd = ebpf.program(&program.name)?.fd().ok()?;
            let info =
                crate::tracefs::read_text(format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd()))
                    .ok()?;
            fdinfo_field(&info, "recursion_misses")
        })
        .sum()
}

/// A number field of an fdinfo file (`name:\tvalue` lines).
fn fdinfo_field(info: &str, name: &str) -> Option<u64> {
    info.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim().parse().ok())?
    })
}

/// A program whose loading took this long is logged with what the verifier
/// walked.
const SLOW_VERIFY: Duration = Duration::from_millis(100);

/// Memory the guest must have available for an item's object to stay
/// loaded after the item (a quarter of the guest's 512 MiB).
const KEEP_LOADED_ABOVE: u64 = 128 << 20;

/// `MemAvailable` from `/proc/meminfo`, in bytes.
fn available_memory() -> Option<u64> {
    let text = crate::tracefs::read_text("/proc/meminfo").ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix("MemAvailable:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|kb| kb.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Loads and attaches one program; the time its loading (the kernel's
/// verifier) took.
fn attach(ebpf: &mut Ebpf, name: &str, how: &BpfAttach) -> Result<Duration> {
    let mut loading = Duration::ZERO;
    let program = ebpf
        .program_mut(name)
        .with_context(|| format!("the object has no program {name}"))?;
    let mut timed = |load: &mut dyn FnMut() -> Result<(), aya::programs::ProgramError>| {
        let started = Instant::now();
        let loaded = load();
        loading += started.elapsed();
        loaded
    };
    match how {
        BpfAttach::Kprobe { function } | BpfAttach::Kretprobe { function, .. } => {
            let program: &mut KProbe = program.try_into()?;
            timed(&mut || program.load())?;
            program.attach(function, 0)?;
        }
        BpfAttach::Fentry { function } => {
            let program: &mut FEntry = program.try_into()?;
            let btf = kernel_btf()?;
            timed(&mut || program.load(function, btf))?;
            program.attach()?;
        }
        BpfAttach::Fexit { function } => {
            let program: &mut FExit = program.try_into()?;
            let btf = kernel_btf()?;
            timed(&mut || program.load(function, btf))?;
            program.attach()?;
        }
        BpfAttach::Tracepoint { system, event } => {
            let program: &mut TracePoint = program.try_into()?;
            timed(&mut || program.load())?;
            program.attach(system, event)?;
        }
        BpfAttach::RawTracepoint { event } => {
            let program: &mut RawTracePoint = program.try_into()?;
            timed(&mut || program.load())?;
            program.attach(event)?;
        }
        BpfAttach::PerfEvent {
            perf_type,
            config,
            sample,
        } => {
            let program: &mut PerfEvent = program.try_into()?;
            timed(&mut || program.load())?;
            let config = perf_config(*perf_type, *config)?;
            let sample = match sample {
                PerfSample::Period { n } => SamplePolicy::Period(*n),
                PerfSample::Frequency { hz } => SamplePolicy::Frequency(*hz),
            };
            let cpus = aya::util::online_cpus()
                .map_err(|(what, error)| anyhow::anyhow!("{what}: {error}"))?;
            for cpu in cpus {
                program.attach(
                    config,
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    sample,
                    false,
                )?;
            }
        }
    }
    Ok(loading)
}

/// The boot's BPF loader: no BTF relocations (the objects have none), the
/// verifier's verdict and statistics for a log.
///
/// aya 0.14's `EbpfLoader::new` reads and parses the kernel's BTF before
/// `btf(None)` can drop it (aya-rs/aya#1172): 175 ms of a TCG guest on 6.1
/// and 7.3, every boot with a BPF item. The file is hidden behind
/// `/dev/null` for that call (a bind mount, taken away at once; nothing else
/// reads it meanwhile), so the parse fails at once; [`kernel_btf`] reads
/// the real file afterwards for the `fentry` programs.
fn loader() -> EbpfLoader<'static> {
    const BTF: &str = "/sys/kernel/btf/vmlinux";
    let made = Instant::now();
    let hidden = match rustix::mount::mount_bind("/dev/null", BTF) {
        Ok(()) => true,
        Err(error) => {
            crate::log(&format!("hiding {BTF} from aya's loader: {error}"));
            false
        }
    };
    let mut loader = EbpfLoader::new();
    if hidden && let Err(error) = rustix::mount::unmount(BTF, rustix::mount::UnmountFlags::empty())
    {
        crate::log(&format!("unhiding {BTF}: {error}"));
    }
    crate::log(&format!(
        "BPF loader made in {} ms",
        made.elapsed().as_millis()
    ));
    loader.btf(None);
    // The verifier's verdict and its statistics, not every instruction it
    // walked: aya loads once without a log and, when the kernel refuses,
    // again with one, growing it while the kernel says it is full. A
    // per-instruction log (aya's default) of a program the verifier walks a
    // million times never fits: ten walks of it took 187 s on 7.3 under TCG
    // and ended in ENOSPC, hiding the real reason.
    loader.verifier_log_level(VerifierLogLevel::STATS);
    loader
}

/// The kernel's BTF, which `fentry` and `fexit` programs name their
/// function in:
/// read once per boot (it does not change; parsing it costs a TCG guest
/// a noticeable time per item otherwise).
fn kernel_btf() -> Result<&'static Btf> {
    static BTF: std::sync::OnceLock<Result<Btf, String>> = std::sync::OnceLock::new();
    BTF.get_or_init(|| {
        let started = Instant::now();
        let btf = Btf::from_sys_fs().map_err(|error| format!("{error:#}"));
        crate::log(&format!(
            "the kernel's BTF read in {} ms",
            started.elapsed().as_millis()
        ));
        btf
    })
    .as_ref()
    .map_err(|error| anyhow::anyhow!("reading /sys/kernel/btf/vmlinux: {error}"))
}

/// aya's name of `perf_event_attr`'s type and config (software and
/// hardware events; `PERF_TYPE_SOFTWARE` is 1, `PERF_TYPE_HARDWARE` 0).
fn perf_config(perf_type: u32, config: u64) -> Result<PerfEventConfig> {
    Ok(match (perf_type, config) {
        (1, 0) => PerfEventConfig::Software(SoftwareEvent::CpuClock),
        (1, 1) => PerfEventConfig::Software(SoftwareEvent::TaskClock),
        (1, 2) => PerfEventConfig::Software(SoftwareEvent::PageFaults),
        (1, 3) => PerfEventConfig::Software(SoftwareEvent::ContextSwitches),
        (1, 4) => PerfEventConfig::Software(SoftwareEvent::CpuMigrations),
        (1, 5) => PerfEventConfig::Software(SoftwareEvent::PageFaultsMin),
        (1, 6) => PerfEventConfig::Software(SoftwareEvent::PageFaultsMaj),
        (0, 0) => PerfEventConfig::Hardware(HardwareEvent::CpuCycles),
        (0, 1) => PerfEventConfig::Hardware(HardwareEvent::Instructions),
        (0, 2) => PerfEventConfig::Hardware(HardwareEvent::CacheReferences),
        (0, 3) => PerfEventConfig::Hardware(HardwareEvent::CacheMisses),
        (0, 4) => PerfEventConfig::Hardware(HardwareEvent::BranchInstructions),
        (0, 5) => PerfEventConfig::Hardware(HardwareEvent::BranchMisses),
        (4, event_id) => PerfEventConfig::Raw { event_id },
        (other_type, other) => {
            anyhow::bail!("perf event type {other_type} config {other} is not one aya 0.14 opens")
        }
    })
}

fn word32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

fn word64(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// The NUL-terminated string in `bytes[at..end]`.
fn string_at(bytes: &[u8], at: usize, end: usize) -> String {
    let slice = bytes.get(at..end.min(bytes.len())).unwrap_or(&[]);
    let len = slice.iter().position(|b| *b == 0).unwrap_or(slice.len());
    String::from_utf8_lossy(&slice[..len]).into_owned()
}

/// The value a field lays out.
fn value_at(bytes: &[u8], field: &Field) -> Value {
    let at = field.offset as usize;
    match field.ty {
        ScalarType::Long => Value::Long(word64(bytes, at) as i64),
        ScalarType::String => Value::Str(string_at(bytes, at, at + field.len as usize)),
    }
}

/// The hit a forwarded record carries.
fn hit(artefact: &BpfArtefact, program: usize, record: &[u8]) -> Option<Hit> {
    let p = artefact.programs.get(program)?;
    let pid_tgid = word64(record, 8);
    let values = p.slots.iter().map(|f| value_at(record, f)).collect();
    // Slots the kernel computed and could not: their errors.
    let faults = p
        .faults
        .iter()
        .filter_map(|word| {
            let id = word32(record, word.offset as usize);
            let site = artefact.errors.get(id.checked_sub(1)? as usize)?;
            Some(SlotFault {
                slot: word.slot,
                message: site.render("", word64(record, word.offset as usize + 8)),
            })
        })
        .collect();
    Some(Hit {
        probe: p.probe,
        values,
        faults,
        context: HitContext {
            pid: (pid_tgid >> 32) as i64,
            tid: (pid_tgid & 0xffff_ffff) as i64,
            cpu: i64::from(word32(record, 24)),
            uid: Some(i64::from(word32(record, 28))),
            gid: Some(i64::from(word32(record, 32))),
            // -1: the kernel's BTF gave no offsets to read it.
            ppid: Some(i64::from(word32(record, 36) as i32)).filter(|ppid| *ppid >= 0),
            comm: string_at(record, 40, HIT_HEADER as usize),
            timestamp_ns: word64(record, 16),
            pp: p.pp.clone(),
            function: p.function.clone(),
            is_return: matches!(
                p.attach,
                BpfAttach::Kretprobe { .. } | BpfAttach::Fexit { .. }
            ),
        },
    })
}

fn open_maps(ebpf: &mut Ebpf, artefact: &BpfArtefact) -> Result<Maps> {
    let mut tables = Vec::new();
    let mut scalars = 0;
    for (index, map) in artefact.maps.iter().enumerate() {
        let table = match map.role {
            MapRole::Events | MapRole::Scratch | MapRole::Entries => None,
            MapRole::Scalars | MapRole::Global { .. } => {
                let taken = ebpf
                    .take_map(&map.name)
                    .with_context(|| format!("the object has no map {}", map.name))?;
                if map.role == MapRole::Scalars {
                    scalars = index;
                }
                Some(match map.kind {
                    MapKind::Array => maps::array(taken, map.value_size, false)?,
                    MapKind::PercpuArray => maps::array(taken, map.value_size, true)?,
                    MapKind::Hash | MapKind::LruHash => {
                        maps::hash(taken, map.key_size, map.value_size, false)?
                    }
                    MapKind::PercpuHash => maps::hash(taken, map.key_size, map.value_size, true)?,
                    other => anyhow::bail!("map {} of kind {other:?} is not read", map.name),
                })
            }
        };
        tables.push(table);
    }
    Ok(Maps { tables, scalars })
}

fn stat_of(bytes: &[u8], layout: &StatLayout) -> StatValue {
    let at = layout.offset as usize;
    StatValue {
        count: word64(bytes, at) as i64,
        sum: word64(bytes, at + 8) as i64,
        min: word64(bytes, at + 16) as i64,
        max: word64(bytes, at + 24) as i64,
        buckets: (0..layout.buckets as usize)
            .map(|b| word64(bytes, at + 32 + 8 * b) as i64)
            .collect(),
    }
}

fn put_stat(bytes: &mut [u8], layout: &StatLayout, stat: &StatValue) {
    let at = layout.offset as usize;
    let mut put = |off: usize, v: i64| {
        if let Some(slot) = bytes.get_mut(off..off + 8) {
            slot.copy_from_slice(&v.to_le_bytes());
        }
    };
    put(at, stat.count);
    put(at + 8, stat.sum);
    put(at + 16, stat.min);
    put(at + 24, stat.max);
    for (b, count) in stat
        .buckets
        .iter()
        .take(layout.buckets as usize)
        .enumerate()
    {
        put(at + 32 + 8 * b, *count);
    }
}

fn put_value(bytes: &mut [u8], field: &Field, value: &Value) {
    let at = field.offset as usize;
    let len = field.len as usize;
    let Some(slot) = bytes.get_mut(at..at + len) else {
        return;
    };
    slot.fill(0);
    match value {
        Value::Long(n) => {
            if let Some(word) = slot.get_mut(..8) {
                word.copy_from_slice(&n.to_le_bytes());
            }
        }
        Value::Str(s) => {
            let n = s.len().min(len.saturating_sub(1));
            slot[..n].copy_from_slice(&s.as_bytes()[..n]);
        }
    }
}

impl Maps {
    fn scalars(&mut self) -> Result<&mut Box<dyn Table>> {
        self.tables
            .get_mut(self.scalars)
            .and_then(Option::as_mut)
            .context("the object has no scalars map")
    }

    fn scalar_bytes(&mut self) -> Result<Vec<u8>> {
        let entries = self.scalars()?.entries()?;
        Ok(entries
            .into_iter()
            .next()
            .and_then(|(_, mut values)| values.pop())
            .unwrap_or_default())
    }

    fn word(&mut self, at: u32) -> Result<u64> {
        Ok(word64(&self.scalar_bytes()?, at as usize))
    }

    fn set_word(&mut self, at: u32, value: u64) -> Result<()> {
        let mut bytes = self.scalar_bytes()?;
        if let Some(slot) = bytes.get_mut(at as usize..at as usize + 8) {
            slot.copy_from_slice(&value.to_le_bytes());
        }
        self.scalars()?.put(&0u32.to_le_bytes(), &bytes)
    }

    /// Reads every global the kernel keeps into the runtime.
    fn import(&mut self, artefact: &BpfArtefact, runtime: &mut Runtime) -> Result<()> {
        let scalars = self.scalar_bytes()?;
        for (g, place) in artefact.globals.iter().enumerate() {
            let g = g as u32;
            let value = match place {
                GlobalPlace::Host => continue,
                GlobalPlace::Scalar { field } => GlobalValue::Scalar(value_at(&scalars, field)),
                GlobalPlace::Stat { map, layout } => {
                    let mut stat = StatValue::default();
                    for (_, values) in self.table(*map)?.entries()? {
                        for cpu in values {
                            stat.merge(&stat_of(&cpu, layout));
                        }
                    }
                    GlobalValue::Stat(stat)
                }
                GlobalPlace::Array { map, keys, value } => {
                    let mut entries: Vec<(u64, Vec<Value>, Element)> = self
                        .table(*map)?
                        .entries()?
                        .into_iter()
                        .filter_map(|(key, mut values)| {
                            let bytes = values.pop()?;
                            Some((
                                word64(&bytes, 0),
                                keys.iter().map(|k| value_at(&key, k)).collect(),
                                Element::Value(value_at(&bytes, value)),
                            ))
                        })
                        .collect();
                    entries.sort_by_key(|(stamp, _, _)| *stamp);
                    GlobalValue::Array(entries.into_iter().map(|(_, k, e)| (k, e)).collect())
                }
                GlobalPlace::StatArray { map, keys, layout } => {
                    let mut entries: Vec<(u64, Vec<Value>, Element)> = self
                        .table(*map)?
                        .entries()?
                        .into_iter()
                        .map(|(key, values)| {
                            let mut stat = StatValue::default();
                            let mut stamp = u64::MAX;
                            for cpu in &values {
                                let s = word64(cpu, 0);
                                if s != 0 {
                                    stamp = stamp.min(s);
                                }
                                stat.merge(&stat_of(cpu, layout));
                            }
                            (
                                stamp,
                                keys.iter().map(|k| value_at(&key, k)).collect(),
                                Element::Stat(stat),
                            )
                        })
                        .collect();
                    entries.sort_by_key(|(stamp, _, _)| *stamp);
                    GlobalValue::Array(entries.into_iter().map(|(_, k, e)| (k, e)).collect())
                }
            };
            runtime.set_global(g, value);
        }
        Ok(())
    }

    /// Writes every global the kernel keeps from the runtime.
    fn export(&mut self, artefact: &BpfArtefact, runtime: &Runtime) -> Result<()> {
        let mut scalars = self.scalar_bytes()?;
        let mut scalars_changed = false;
        for (g, place) in artefact.globals.iter().enumerate() {
            let Some(value) = runtime.global(g as u32) else {
                continue;
            };
            match (place, value) {
                (GlobalPlace::Scalar { field }, GlobalValue::Scalar(value)) => {
                    put_value(&mut scalars, field, &value);
                    scalars_changed = true;
                }
                (GlobalPlace::Stat { map, layout }, GlobalValue::Stat(stat)) => {
                    let size = artefact.maps.get(*map as usize).map_or(0, |m| m.value_size);
                    let mut bytes = vec![0u8; size as usize];
                    put_stat(&mut bytes, layout, &stat);
                    self.table(*map)?.put(&0u32.to_le_bytes(), &bytes)?;
                }
                (GlobalPlace::Array { map, keys, value }, GlobalValue::Array(entries)) => {
                    let sizes = sizes(artefact, *map);
                    put_entries(
                        self.table(*map)?,
                        sizes,
                        keys,
                        &entries,
                        |v, element| match element {
                            Element::Value(element) => put_value(v, value, element),
                            Element::Stat(_) => {}
                        },
                    )?;
                }
                (GlobalPlace::StatArray { map, keys, layout }, GlobalValue::Array(entries)) => {
                    let sizes = sizes(artefact, *map);
                    put_entries(self.table(*map)?, sizes, keys, &entries, |v, element| {
                        if let Element::Stat(stat) = element {
                            put_stat(v, layout, stat);
                        }
                    })?;
                }
                _ => {}
            }
        }
        if scalars_changed {
            self.scalars()?.put(&0u32.to_le_bytes(), &scalars)?;
        }
        Ok(())
    }

    fn table(&mut self, map: u32) -> Result<&mut Box<dyn Table>> {
        self.tables
            .get_mut(map as usize)
            .and_then(Option::as_mut)
            .with_context(|| format!("no table for map {map}"))
    }
}

/// Replaces a hash map's entries: each key laid out as `keys` says, each
/// value stamped with its position (insertion order) and filled by `fill`.
fn put_entries(
    table: &mut Box<dyn Table>,
    (key_size, value_size): (usize, usize),
    keys: &[Field],
    entries: &[(Vec<Value>, Element)],
    fill: impl Fn(&mut [u8], &Element),
) -> Result<()> {
    table.clear()?;
    for (stamp, (key, element)) in entries.iter().enumerate() {
        let mut k = vec![0u8; key_size];
        for (field, v) in keys.iter().zip(key) {
            put_value(&mut k, field, v);
        }
        let mut v = vec![0u8; value_size];
        if let Some(word) = v.get_mut(..8) {
            word.copy_from_slice(&(stamp as u64 + 1).to_le_bytes());
        }
        fill(&mut v, element);
        table.put(&k, &v)?;
    }
    Ok(())
}

fn sizes(artefact: &BpfArtefact, map: u32) -> (usize, usize) {
    artefact
        .maps
        .get(map as usize)
        .map_or((8, 16), |m| (m.key_size as usize, m.value_size as usize))
}

/// `CLOCK_REALTIME - CLOCK_MONOTONIC` in nanoseconds (two's complement):
/// what `gettimeofday_ns()` in the kernel adds to `bpf_ktime_get_ns()`.
fn realtime_offset() -> u64 {
    use rustix::time::{ClockId, Timespec, clock_gettime};
    let ns = |t: Timespec| i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec);
    let monotonic = ns(clock_gettime(ClockId::Monotonic));
    let realtime = ns(clock_gettime(ClockId::Realtime));
    (realtime - monotonic) as u64
}

#[cfg(test)]
mod tests {
    use super::fdinfo_field;

    #[test]
    fn recursion_misses_are_read_from_a_programs_fdinfo() {
        let info = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t2085\nprog_type:\t5\n\
                    prog_jited:\t1\nprog_tag:\t3b185187f1855c4c\nmemlock:\t4096\nprog_id:\t12\n\
                    run_time_ns:\t0\nrun_cnt:\t0\nrecursion_misses:\t3\nverified_insns:\t10\n";
        assert_eq!(fdinfo_field(info, "recursion_misses"), Some(3));
        assert_eq!(fdinfo_field(info, "run_cnt"), Some(0));
        // Before 5.12 the line is not there.
        assert_eq!(fdinfo_field("prog_id:\t12\n", "recursion_misses"), None);
        assert_eq!(
            fdinfo_field("recursion_misses:\tlots\n", "recursion_misses"),
            None
        );
    }
}
