//! The run job: each item's events created and enabled, its workload
//! started, the ring buffer's records decoded and fed to the handler
//! runtime in timestamp order, timers run, and everything removed again;
//! every step reported as a [`RunMessage`] on the data channel.

use std::collections::HashMap;
use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use tapmatrix_ir::{
    Artefact, Bundle, Event, ItemEnd, RunEnd, RunMessage, ScalarType, TaskEvent, Value,
};
use tapmatrix_runtime::{Control, Hit, HitContext, Runtime};
use tapmatrix_wire::{
    BUFFER_KB_PARAM, ECHO_HITS_PARAM, HIT_ECHO_LIMIT, HIT_RECORD, HitEcho, RUN_RECORD, RecordKind,
    RunItem,
};

use crate::Channel;
use crate::modules;
use crate::ringbuf::{Field, Format, PageLayout, decode_page};
use crate::tasks::{TaskDecoder, Tasks};
use crate::tracefs::{self, Installed, Refusal};
use crate::workload::{self, Workload};

mod bpf;
mod maps;

/// How often the ring buffer is read, timers checked and output sent.
const POLL: Duration = Duration::from_millis(10);

/// Pages read from one CPU's buffer per poll at most (so a storm of
/// events cannot starve the timeout and the timers).
const PAGES_PER_POLL: usize = 256;

/// How long the processes killed after an item may take to die.
const REAP_PATIENCE: Duration = Duration::from_secs(2);

/// The per-CPU ring buffer size asked for, in KiB, unless the kernel
/// command line says otherwise ([`BUFFER_KB_PARAM`]).
const BUFFER_KB: u32 = 4096;

/// Runs every item in order and reports each; an item's failure never stops
/// the ones after it.
pub fn run(channel: &Channel, items: &[RunItem]) -> Result<()> {
    let cmdline = tracefs::read_text("/proc/cmdline").unwrap_or_default();
    let echo = cmdline
        .split_whitespace()
        .any(|word| word == ECHO_HITS_PARAM);
    let buffer_kb = cmdline
        .split_whitespace()
        .find_map(|word| word.strip_prefix(BUFFER_KB_PARAM)?.strip_prefix('='))
        .and_then(|kb| kb.parse::<u32>().ok())
        .unwrap_or(BUFFER_KB);
    let layout = prepare_tracing(buffer_kb);
    crate::log("tracing prepared");
    let mut boot = Boot::default();
    for (index, item) in items.iter().enumerate() {
        // The task tracepoints the next item follows stay enabled when
        // this one ends.
        boot.keep = items
            .get(index + 1)
            .map(|next| match &next.artefact {
                Artefact::Tracefs(bundle) => {
                    bundle.tasks.iter().map(|&event| task_dir(event)).collect()
                }
                Artefact::Bpf(_) => Vec::new(),
            })
            .unwrap_or_default();
        let index = u32::try_from(index).context("too many items")?;
        crate::log(&format!("run item {index}: {}", item.name));
        let started = Instant::now();
        let mut state = ItemRun {
            channel,
            item: index,
            echo,
            echoed: 0,
            hits: 0,
            lost: 0,
            skipped: 0,
            installed: Vec::new(),
            workload: None,
            status: None,
            started,
            setup_ms: 0,
            phases: Phases::new(),
            boot: &mut boot,
            attached: false,
        };
        // The modules it probes or its workload needs, then its setup:
        // before anything is installed, and outside the item's phases.
        let prepared = modules::load(&item.modules).and_then(|_| modules::setup(&item.setup));
        let end = match (&layout, prepared) {
            (_, Err(error)) => Ok(RunEnd::AgentError {
                message: format!("{error:#}"),
            }),
            (Err(error), _) => Ok(RunEnd::AgentError {
                message: format!("{error:#}"),
            }),
            (Ok(layout), Ok(())) => catch_unwind(AssertUnwindSafe(|| match &item.artefact {
                Artefact::Bpf(artefact) => state.drive_bpf(item, artefact),
                Artefact::Tracefs(bundle) => state.drive(item, bundle, layout),
            }))
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the agent panicked running this item"))),
        };
        let end = match end {
            Ok(end) => end,
            Err(error) => RunEnd::AgentError {
                message: format!("{error:#}"),
            },
        };
        let leftover_events = state.clean_up();
        state.send_workload_output(true)?;
        state.phases.mark("output");
        crate::log(&format!("run item {index} phases: {}", state.phases));
        let finished = RunMessage::Finished {
            item: index,
            end: ItemEnd {
                reason: end,
                hits: state.hits,
                lost: state.lost,
                skipped: state.skipped,
                workload_status: state.status,
                elapsed_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                setup_ms: state.setup_ms,
                leftover_events,
            },
        };
        crate::log(&format!("run item {index} done: {finished:?}"));
        send(channel, &finished)?;
    }
    // Unloading them now would only wait for grace periods before the
    // power-off.
    std::mem::forget(std::mem::take(&mut boot.stopped));
    Ok(())
}

/// Sets the ring buffer up once: its size, and its page layout.
fn prepare_tracing(buffer_kb: u32) -> Result<PageLayout> {
    let header = tracefs::path("events/header_page");
    let text = tracefs::read_text(&header)
        .with_context(|| format!("reading {} (is tracefs mounted?)", header.display()))?;
    let layout = PageLayout::parse(&text)?;
    for (file, value) in [
        ("buffer_size_kb", buffer_kb.to_string()),
        ("tracing_on", "1".to_owned()),
    ] {
        if let Err(error) = tracefs::write_file(&tracefs::path(file), &value) {
            crate::log(&format!("setting {file}: {error}"));
        }
    }
    Ok(layout)
}

impl ItemRun<'_> {
    /// Lets the workload go (every probe is on): the setup is over.
    fn release_workload(&mut self) -> Result<()> {
        self.setup_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.attached = true;
        match &mut self.workload {
            Some(workload) => workload.release(),
            None => Ok(()),
        }
    }
}

/// Starts a `system()` command with `/bin/sh -c` in the background, in a
/// process group of its own (killed with the item's other processes when
/// it ends), its output discarded: SystemTap's goes to the terminal stap
/// runs in, which a guest does not have. A command that cannot start is
/// logged.
fn start_command(command: &str) {
    let started = std::process::Command::new("/bin/sh")
        .args(["-c", command])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn();
    if let Err(error) = started {
        crate::log(&format!("system(\"{command}\") could not start: {error}"));
    }
}

/// The runtime for an item's `program`, with the workload's pid as
/// `target()`, and the kernel's symbols when the program names symbols.
fn runtime_for(
    program: &tapmatrix_ir::Program,
    target: u32,
    symbols: &mut KernelSymbols,
) -> Runtime {
    let mut runtime = Runtime::new(program.clone(), i64::from(target));
    runtime.set_target(i64::from(target));
    if Runtime::needs_symbols(program)
        && let Some(symbols) = symbols.current()
    {
        runtime.set_symbols(symbols);
    }
    runtime
}

/// The kernel's symbols as an earlier item of the boot read them, with
/// the module list they were read under: `/proc/kallsyms` is read again
/// only when modules came or went (reading and parsing its 200,000 lines
/// takes a TCG guest 0.5 s or more).
#[derive(Default)]
struct KernelSymbols {
    read: Option<(String, std::sync::Arc<tapmatrix_runtime::Symbols>)>,
}

impl KernelSymbols {
    /// The symbols now, read again if the loaded modules changed.
    fn current(&mut self) -> Option<std::sync::Arc<tapmatrix_runtime::Symbols>> {
        let modules = tracefs::read_text("/proc/modules").unwrap_or_default();
        if let Some((under, symbols)) = &self.read
            && *under == modules
        {
            return Some(symbols.clone());
        }
        let started = Instant::now();
        match fs::read_to_string("/proc/kallsyms") {
            Ok(text) => {
                let symbols = std::sync::Arc::new(tapmatrix_runtime::Symbols::from_kallsyms(&text));
                crate::log(&format!(
                    "{} kernel symbols read in {} ms",
                    symbols.len(),
                    started.elapsed().as_millis()
                ));
                self.read = Some((modules, symbols.clone()));
                Some(symbols)
            }
            Err(error) => {
                crate::log(&format!("reading /proc/kallsyms: {error}"));
                None
            }
        }
    }
}

/// Sends one run message as a JSON line.
fn send(channel: &Channel, message: &RunMessage) -> Result<()> {
    let json = serde_json::to_vec(message).context("encoding a run message")?;
    channel.send(RecordKind::Line, RUN_RECORD, json)?;
    channel.flush()
}

/// One item being run, and what has to be undone after it.
struct ItemRun<'a> {
    channel: &'a Channel,
    item: u32,
    echo: bool,
    echoed: usize,
    hits: u64,
    lost: u64,
    /// Hits whose BPF handler did not run (see `ItemEnd::skipped`).
    skipped: u64,
    installed: Vec<Installed>,
    workload: Option<Workload>,
    status: Option<i32>,
    /// When the item started.
    started: Instant,
    /// Until its probes were all on and the workload let go.
    setup_ms: u64,
    phases: Phases,
    boot: &'a mut Boot,
    /// Whether the probes are attached: `system()` commands start from
    /// then on (a `begin` probe's too, as SystemTap's probes are
    /// registered before `begin` runs).
    attached: bool,
}

/// What one item leaves ready for the next in a boot, because making it
/// again would cost time under TCG.
#[derive(Default)]
struct Boot {
    /// The BPF loader, made for the first BPF item (see `bpf::loader`).
    loader: Option<aya::EbpfLoader<'static>>,
    /// Every CPU's ring buffer, opened by the first tracefs item.
    buffers: Option<Vec<CpuBuffer>>,
    /// Threads unloading earlier items' BPF objects.
    unloading: Vec<std::thread::JoinHandle<()>>,
    /// Earlier items' BPF objects left loaded, their programs stopped
    /// (see `Boot::put_away`); never unloaded: the guest powers off.
    stopped: Vec<aya::Ebpf>,
    /// The directories of the task tracepoints the next item follows: the
    /// item that ends leaves them enabled (enabling and disabling a
    /// tracepoint costs a kernel text update each under TCG, and most
    /// items follow the same four).
    keep: Vec<std::path::PathBuf>,
    /// The tracepoints an earlier item left enabled for the next.
    kept: Vec<Installed>,
    /// The kernel's symbols, for the items whose programs name symbols.
    symbols: KernelSymbols,
}

impl Boot {
    /// Whether `installed` is a tracepoint the next item follows (left
    /// enabled when this item ends).
    fn keeps(&self, installed: &Installed) -> bool {
        installed.dynamic.is_none() && self.keep.contains(&installed.dir)
    }
}

/// The directory of a task event's tracepoint.
fn task_dir(event: TaskEvent) -> std::path::PathBuf {
    let (system, name) = event.tracepoint();
    tracefs::path(&format!("events/{system}/{name}"))
}

/// Where an item's time went, phase by phase (logged on the console once
/// per item: the profile of the guest side of a run).
pub(crate) struct Phases {
    last: Instant,
    parts: Vec<(&'static str, Duration)>,
}

impl Phases {
    fn new() -> Self {
        Self {
            last: Instant::now(),
            parts: Vec::new(),
        }
    }

    /// Ends the phase called `name`.
    pub(crate) fn mark(&mut self, name: &'static str) {
        let now = Instant::now();
        self.parts.push((name, now - self.last));
        self.last = now;
    }
}

impl std::fmt::Display for Phases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (index, (name, took)) in self.parts.iter().enumerate() {
            let sep = if index == 0 { "" } else { ", " };
            write!(f, "{sep}{name} {:.1} ms", took.as_secs_f64() * 1000.0)?;
        }
        Ok(())
    }
}

/// How an event's records become hits.
struct Decoder {
    event: u32,
    probe: u32,
    /// Per fetch slot: the field and the type the handler sees.
    slots: Vec<(Field, ScalarType)>,
    comm_slot: Option<usize>,
    common_pid: Option<Field>,
    pp: String,
    function: String,
    is_return: bool,
}

/// One CPU's ring buffer, opened for consuming reads.
struct CpuBuffer {
    cpu: i64,
    pipe: OwnedFd,
    stats: std::path::PathBuf,
    lost_at_start: u64,
}

/// A record read from a buffer, not yet handled.
struct Pending {
    timestamp_ns: u64,
    cpu: i64,
    data: Vec<u8>,
}

impl ItemRun<'_> {
    /// Sets the item up, runs it, and says how it ended; a refused event
    /// ends it as [`RunEnd::Rejected`]. Cleaning up is the caller's.
    fn drive(&mut self, item: &RunItem, bundle: &Bundle, layout: &PageLayout) -> Result<RunEnd> {
        // The buffers stay open from item to item; what an earlier item
        // left in them (nothing, unless it failed midway) is dropped.
        // (Truncating `trace` would empty them too, at the cost of a grace
        // period.)
        let mut buffers = match self.boot.buffers.take() {
            Some(buffers) => buffers,
            None => open_buffers()?,
        };
        let mut page = vec![0u8; layout.page_size];
        // `stap -x PID` names target() itself; else it is the workload.
        let spawned = self.spawn_workload(&item.workload.command)?;
        let target = item.workload.target.unwrap_or(spawned);
        self.phases.mark("spawn");
        // After the spawn (the workload waits at its gate by now): the
        // task tracepoints an earlier item left enabled recorded its
        // start, which no event of this item may see.
        discard(&mut buffers, &mut page)?;
        self.phases.mark("clear");
        let agent_tids = own_threads();
        let mut decoders = Vec::new();
        let mut by_id: HashMap<u16, Vec<usize>> = HashMap::new();
        for (index, event) in bundle.events.iter().enumerate() {
            let decoder = match self.install(index, event, target, &agent_tids) {
                Ok(decoder) => decoder,
                Err(refusal) => return self.rejected(index, refusal),
            };
            by_id.entry(decoder.0).or_default().push(decoders.len());
            decoders.push(decoder.1);
        }
        self.phases.mark("create");
        let mut task_decoders: HashMap<u16, TaskDecoder> = HashMap::new();
        for &event in &bundle.tasks {
            match self.follow(event, &agent_tids) {
                Ok((id, decoder)) => {
                    task_decoders.insert(id, decoder);
                }
                Err(refusal) => return self.rejected(bundle.events.len(), refusal),
            }
        }
        self.phases.mark("tasks");
        for index in 0..self.installed.len() {
            if let Err(refusal) = self.installed[index].enable(true) {
                return self.rejected(index, refusal);
            }
        }
        self.phases.mark("enable");
        let tasks = if bundle.tasks.is_empty() {
            Tasks::unfollowed()
        } else {
            Tasks::snapshot(&[spawned, target])
        };
        self.phases.mark("snapshot");
        let mut runtime = runtime_for(&bundle.program, target, &mut self.boot.symbols);
        self.phases.mark("runtime");
        let mut stop = stopped(runtime.begin());
        self.flush(&mut runtime)?;
        let mut timers = Timers::new(&runtime);
        let started = Instant::now();
        let timeout = Duration::from_millis(item.workload.timeout_ms);
        if stop.is_none() {
            self.release_workload()?;
        }
        let mut ctx = Feed {
            decoders: &decoders,
            by_id: &by_id,
            task_decoders: &task_decoders,
            tasks,
        };
        self.phases.mark("begin");
        while stop.is_none() {
            let pending = self.read_buffers(&mut buffers, layout, &mut page, false)?;
            stop = self.feed(&mut runtime, &mut ctx, pending)?;
            if stop.is_some() {
                break;
            }
            stop = timers.run_due(&mut runtime, &mut |_, _| {});
            self.flush(&mut runtime)?;
            if stop.is_some() {
                break;
            }
            stop = self.wait_a_poll(bundle.events.is_empty(), &timers, started, timeout)?;
        }
        self.phases.mark("run");
        // Stop the events, then hand on what is left in the buffer (unless
        // the script itself stopped).
        for installed in &self.installed {
            if !self.boot.keeps(installed) {
                let _ = installed.enable(false);
            }
        }
        self.phases.mark("disable");
        let mut end = stop.unwrap_or(RunEnd::WorkloadDone);
        let pending = self.read_buffers(&mut buffers, layout, &mut page, true)?;
        if matches!(end, RunEnd::WorkloadDone | RunEnd::Timeout)
            && let Some(stopped) = self.feed(&mut runtime, &mut ctx, pending)?
        {
            end = stopped;
        }
        self.lost = self
            .lost
            .max(buffers.iter().map(CpuBuffer::lost_since_start).sum());
        self.boot.buffers = Some(buffers);
        if let Some(workload) = &mut self.workload {
            workload.kill();
            self.status = workload.poll();
        }
        if let Control::Error(message) = runtime.end()
            && !matches!(end, RunEnd::RuntimeError { .. })
        {
            end = RunEnd::RuntimeError { message };
        }
        self.flush(&mut runtime)?;
        self.phases.mark("end");
        Ok(end)
    }

    /// After a poll's work: sends what the workload wrote meanwhile, then
    /// whether the run ends (the workload finished, or with no workload
    /// nothing is left that could fire, or the timeout passed); otherwise
    /// sleeps until the next poll or timer.
    fn wait_a_poll(
        &mut self,
        no_events: bool,
        timers: &Timers,
        started: Instant,
        timeout: Duration,
    ) -> Result<Option<RunEnd>> {
        self.send_workload_output(false)?;
        let mut stop = None;
        if let Some(workload) = &mut self.workload {
            if let Some(status) = workload.poll() {
                self.status = Some(status);
                stop = Some(RunEnd::WorkloadDone);
            }
        } else if no_events && timers.is_empty() {
            stop = Some(RunEnd::WorkloadDone);
        }
        if stop.is_none() && started.elapsed() >= timeout {
            stop = Some(RunEnd::Timeout);
        }
        if stop.is_none() {
            std::thread::sleep(timers.sleep(POLL));
        }
        Ok(stop)
    }

    /// Starts the workload held at its gate; its pid (`target()`), 0
    /// without one.
    fn spawn_workload(&mut self, command: &str) -> Result<u32> {
        if command.is_empty() {
            return Ok(0);
        }
        let workload = Workload::spawn(command)?;
        let pid = workload.pid();
        self.workload = Some(workload);
        Ok(pid)
    }

    /// Creates event `index`, sets its filter, reads its format.
    fn install(
        &mut self,
        index: usize,
        event: &Event,
        target: u32,
        agent_tids: &[u32],
    ) -> Result<(u16, Decoder), Refusal> {
        let installed = tracefs::create(&event.install, self.item)?;
        self.installed.push(installed.clone());
        let format = read_format(&installed)?;
        let mut slots = Vec::new();
        for slot in &event.slots {
            let field = format.field(&slot.field).ok_or_else(|| Refusal {
                definition: installed.label(),
                error: format!("the event has no field `{}`", slot.field),
            })?;
            slots.push((field.clone(), slot.ty));
        }
        let mut filter = exclude(agent_tids);
        if let Some(own) = &event.filter {
            let own = own.replace("${target}", &target.to_string());
            filter = format!("({own}) && {filter}");
        }
        installed.set_filter(&filter)?;
        let decoder = Decoder {
            event: u32::try_from(index).unwrap_or(u32::MAX),
            probe: event.probe,
            slots,
            comm_slot: event.comm.and_then(|slot| usize::try_from(slot).ok()),
            common_pid: format.field("common_pid").cloned(),
            pp: event.pp.clone(),
            function: event.function.clone(),
            is_return: event.is_return,
        };
        Ok((format.id, decoder))
    }

    /// Enables a scheduler task event the hits' context follows. It sees
    /// every task but the agent's: a tracepoint a probe also enables loses
    /// that probe's filter (the handler still checks its guards).
    fn follow(
        &mut self,
        event: TaskEvent,
        agent_tids: &[u32],
    ) -> Result<(u16, TaskDecoder), Refusal> {
        let (system, name) = event.tracepoint();
        let installed = tracefs::tracepoint(system, name)?;
        let format = read_format(&installed)?;
        installed.set_filter(&exclude(agent_tids))?;
        self.installed.push(installed);
        Ok((format.id, TaskDecoder::new(event, &format)))
    }

    /// Reports a refused event; the item ends as rejected.
    fn rejected(&mut self, index: usize, refusal: Refusal) -> Result<RunEnd> {
        send(
            self.channel,
            &RunMessage::EventRejected {
                item: self.item,
                event: u32::try_from(index).unwrap_or(u32::MAX),
                definition: refusal.definition,
                error: refusal.error,
            },
        )?;
        Ok(RunEnd::Rejected)
    }

    /// Reads what the buffers hold (all of it when `drain`, else a bounded
    /// amount), in timestamp order.
    fn read_buffers(
        &mut self,
        buffers: &mut [CpuBuffer],
        layout: &PageLayout,
        page: &mut [u8],
        drain: bool,
    ) -> Result<Vec<Pending>> {
        let mut pending = Vec::new();
        for buffer in buffers.iter_mut() {
            let mut pages = 0;
            while drain || pages < PAGES_PER_POLL {
                let read = match rustix::io::read(&buffer.pipe, &mut *page) {
                    Ok(0) | Err(Errno::AGAIN) => break,
                    Err(Errno::INTR) => continue,
                    Err(error) => {
                        return Err(error).context(format!("reading cpu{}'s buffer", buffer.cpu));
                    }
                    Ok(read) => read,
                };
                pages += 1;
                let decoded = decode_page(layout, &page[..read])?;
                self.lost += decoded.missed;
                pending.extend(decoded.records.into_iter().map(|record| Pending {
                    timestamp_ns: record.timestamp_ns,
                    cpu: buffer.cpu,
                    data: record.data,
                }));
            }
        }
        pending.sort_by_key(|record| (record.timestamp_ns, record.cpu));
        Ok(pending)
    }

    /// Hands each record to the runtime; `Some` when the script stopped.
    fn feed(
        &mut self,
        runtime: &mut Runtime,
        feed: &mut Feed,
        pending: Vec<Pending>,
    ) -> Result<Option<RunEnd>> {
        for record in pending {
            let id = u16::from_le_bytes([
                record.data.first().copied().unwrap_or(0),
                record.data.get(1).copied().unwrap_or(0),
            ]);
            if let Some(decoder) = feed.task_decoders.get(&id) {
                feed.tasks.apply(decoder, &record.data);
            }
            let Some(decoders) = feed.by_id.get(&id) else {
                continue;
            };
            for &index in decoders {
                let Some(decoder) = feed.decoders.get(index) else {
                    continue;
                };
                let hit = feed.hit(decoder, &record);
                self.hits += 1;
                if self.echo && self.echoed < HIT_ECHO_LIMIT {
                    self.echoed += 1;
                    self.echo_hit(decoder.event, &hit)?;
                }
                if let Some(end) = stopped(runtime.hit(&hit)) {
                    self.flush(runtime)?;
                    return Ok(Some(end));
                }
            }
        }
        self.flush(runtime)?;
        Ok(None)
    }

    /// Sends a decoded hit as a `hit` line.
    fn echo_hit(&self, event: u32, hit: &Hit) -> Result<()> {
        let echo = HitEcho {
            item: self.item,
            event,
            hit: hit.clone(),
        };
        let json = serde_json::to_vec(&echo).context("encoding a hit")?;
        self.channel.send(RecordKind::Line, HIT_RECORD, json)
    }

    /// Sends what the script printed since the last call.
    fn flush(&self, runtime: &mut Runtime) -> Result<()> {
        if self.attached {
            for command in runtime.take_commands() {
                start_command(&command);
            }
        }
        let text = runtime.take_stdout();
        if !text.is_empty() {
            send(
                self.channel,
                &RunMessage::Output {
                    item: self.item,
                    text,
                },
            )?;
        }
        let text = runtime.take_stderr();
        if !text.is_empty() {
            send(
                self.channel,
                &RunMessage::Diagnostic {
                    item: self.item,
                    text,
                },
            )?;
        }
        Ok(())
    }

    /// Sends what the workload wrote since the last call (`last`: all that
    /// is left).
    fn send_workload_output(&mut self, last: bool) -> Result<()> {
        let Some(workload) = &mut self.workload else {
            return Ok(());
        };
        for (stream, text, dropped) in workload.output(last) {
            send(
                self.channel,
                &RunMessage::WorkloadOutput {
                    item: self.item,
                    stream,
                    text,
                    dropped,
                },
            )?;
        }
        Ok(())
    }

    /// Disables every event the item set up (see `tracefs` on why they
    /// stay defined), stops its workload, and lists the events still
    /// enabled.
    fn clean_up(&mut self) -> Vec<String> {
        let earlier = std::mem::take(&mut self.boot.kept);
        let mut kept: Vec<Installed> = Vec::new();
        for installed in self.installed.iter().rev().chain(&earlier) {
            if self.boot.keeps(installed) {
                if !kept.iter().any(|known| known.dir == installed.dir) {
                    kept.push(installed.clone());
                }
            } else if let Err(error) = installed.retire() {
                crate::log(&format!("disabling {}: {error}", installed.label()));
            }
        }
        self.phases.mark("retire");
        if let Some(workload) = &mut self.workload {
            workload.kill();
            self.status = self.status.or(workload.poll());
        }
        let strays = workload::kill_strays();
        if strays > 0 {
            crate::log(&format!("killed {strays} processes the workload left"));
        }
        workload::reap_orphans(REAP_PATIENCE);
        self.phases.mark("reap");
        let mut leftover: Vec<String> = self
            .installed
            .iter()
            .filter(|installed| !self.boot.keeps(installed) && installed.left_over())
            .map(Installed::label)
            .collect();
        leftover.dedup();
        self.boot.kept = kept;
        self.phases.mark("check");
        leftover
    }
}

/// What the feed needs besides the runtime.
struct Feed<'a> {
    decoders: &'a [Decoder],
    by_id: &'a HashMap<u16, Vec<usize>>,
    task_decoders: &'a HashMap<u16, TaskDecoder>,
    /// Every task's state as of the record being fed.
    tasks: Tasks,
}

impl Feed<'_> {
    /// The hit a record of `decoder`'s event makes, in the context of its
    /// task as it was then.
    fn hit(&mut self, decoder: &Decoder, record: &Pending) -> Hit {
        let values: Vec<Value> = decoder
            .slots
            .iter()
            .map(|(field, ty)| coerce(field.decode(&record.data), *ty))
            .collect();
        let tid = match decoder
            .common_pid
            .as_ref()
            .map(|field| field.decode(&record.data))
        {
            Some(Value::Long(tid)) => tid,
            _ => 0,
        };
        let task = self.tasks.get(tid);
        let comm = match decoder.comm_slot.and_then(|slot| values.get(slot)) {
            Some(Value::Str(comm)) => comm.clone(),
            _ => task.comm,
        };
        Hit {
            probe: decoder.probe,
            values,
            context: HitContext {
                pid: task.tgid,
                tid,
                ppid: Some(task.ppid),
                uid: None,
                gid: None,
                cpu: record.cpu,
                comm,
                timestamp_ns: record.timestamp_ns,
                pp: decoder.pp.clone(),
                function: decoder.function.clone(),
                is_return: decoder.is_return,
            },
            faults: Vec::new(),
        }
    }
}

/// An event's format, read from tracefs.
fn read_format(installed: &Installed) -> Result<Format, Refusal> {
    let refusal = |error: String| Refusal {
        definition: installed.label(),
        error,
    };
    tracefs::read_text(installed.dir.join("format"))
        .map_err(|error| refusal(format!("reading its format: {error}")))
        .and_then(|text| Format::parse(&text).map_err(|error| refusal(format!("{error:#}"))))
}

/// The filter that keeps the agent's own threads out of an event, but not
/// the interrupts that land on them: an interrupt runs in whatever task
/// it interrupted, so a block I/O completion that arrives while the agent
/// reads the buffers carries the agent's pid (about one completion in
/// three on 6.12 and 7.3 was lost that way). `common_flags` says hard
/// interrupt, soft interrupt or NMI (`TRACE_FLAG_HARDIRQ` 0x08,
/// `TRACE_FLAG_SOFTIRQ` 0x10, `TRACE_FLAG_NMI` 0x40 on every kernel of
/// the matrix). For the same reason the agent does not name its threads
/// in `set_event_notrace_pid`, which cannot tell the two apart.
fn exclude(agent_tids: &[u32]) -> String {
    let own = agent_tids
        .iter()
        .map(|tid| format!("common_pid != {tid}"))
        .collect::<Vec<_>>()
        .join(" && ");
    format!("(({own}) || common_flags & {IN_INTERRUPT:#x})")
}

/// `TRACE_FLAG_HARDIRQ | TRACE_FLAG_SOFTIRQ | TRACE_FLAG_NMI`.
const IN_INTERRUPT: u32 = 0x08 | 0x10 | 0x40;

/// A decoded value as the type the handler expects.
fn coerce(value: Value, ty: ScalarType) -> Value {
    match (value, ty) {
        (Value::Str(text), ScalarType::Long) => Value::Long(text.trim().parse().unwrap_or(0)),
        (Value::Long(number), ScalarType::String) => Value::Str(number.to_string()),
        (value, _) => value,
    }
}

/// The ids of the agent's own threads.
fn own_threads() -> Vec<u32> {
    let mut tids: Vec<u32> = fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
        .collect();
    if tids.is_empty() {
        tids.push(std::process::id());
    }
    tids.sort_unstable();
    tids
}

/// How the run ends after a handler, if it does.
fn stopped(control: Control) -> Option<RunEnd> {
    match control {
        Control::Continue => None,
        Control::Exit => Some(RunEnd::Exit),
        Control::Error(message) => Some(RunEnd::RuntimeError { message }),
    }
}

/// Reads and drops whatever the buffers hold, and counts their losses from
/// now on.
fn discard(buffers: &mut [CpuBuffer], page: &mut [u8]) -> Result<()> {
    for buffer in buffers {
        loop {
            match rustix::io::read(&buffer.pipe, &mut *page) {
                Ok(0) | Err(Errno::AGAIN) => break,
                Err(Errno::INTR) | Ok(_) => {}
                Err(error) => {
                    return Err(error).context(format!("reading cpu{}'s buffer", buffer.cpu));
                }
            }
        }
        buffer.lost_at_start = lost_in(&buffer.stats);
    }
    Ok(())
}

/// Opens every CPU's `trace_pipe_raw` for non-blocking reads.
fn open_buffers() -> Result<Vec<CpuBuffer>> {
    let dir = tracefs::path("per_cpu");
    let mut buffers = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry?;
        let Some(cpu) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.strip_prefix("cpu"))
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        let path = entry.path().join("trace_pipe_raw");
        let pipe = rustix::fs::open(
            &path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("opening {}", path.display()))?;
        let stats = entry.path().join("stats");
        let lost_at_start = lost_in(&stats);
        buffers.push(CpuBuffer {
            cpu,
            pipe,
            stats,
            lost_at_start,
        });
    }
    buffers.sort_by_key(|buffer| buffer.cpu);
    Ok(buffers)
}

impl CpuBuffer {
    /// Events this CPU's buffer lost since it was opened.
    fn lost_since_start(&self) -> u64 {
        lost_in(&self.stats).saturating_sub(self.lost_at_start)
    }
}

/// The events a CPU's buffer lost so far, from its `stats` file.
fn lost_in(stats: &std::path::Path) -> u64 {
    lost_events(&tracefs::read_text(stats).unwrap_or_default())
}

/// `overrun` (overwritten before they were read) plus `dropped events`
/// (refused by a full buffer not in overwrite mode) from a `stats` text.
fn lost_events(stats: &str) -> u64 {
    stats
        .lines()
        .filter_map(|line| {
            line.strip_prefix("overrun:")
                .or_else(|| line.strip_prefix("dropped events:"))
        })
        .filter_map(|count| count.trim().parse::<u64>().ok())
        .sum()
}

/// The timer probes and when each is next due.
struct Timers {
    /// (probe, period, jitter, next due).
    due: Vec<(u32, Duration, u64, Instant)>,
    seed: u64,
}

impl Timers {
    /// The program's timer probes, each first due one period from now.
    fn new(runtime: &Runtime) -> Self {
        let now = Instant::now();
        let mut timers = Self {
            due: Vec::new(),
            seed: u64::from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |since| since.subsec_nanos()),
            ) | 1,
        };
        for timer in runtime.timers() {
            let period = Duration::from_nanos(timer.period_ns.max(1));
            let first = now + period + timers.jitter(timer.randomize_ns);
            timers
                .due
                .push((timer.probe, period, timer.randomize_ns, first));
        }
        timers
    }

    /// Whether there are none.
    fn is_empty(&self) -> bool {
        self.due.is_empty()
    }

    /// Up to `randomize_ns` of pseudo-random delay (xorshift).
    fn jitter(&mut self, randomize_ns: u64) -> Duration {
        if randomize_ns == 0 {
            return Duration::ZERO;
        }
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        Duration::from_nanos(self.seed % (randomize_ns + 1))
    }

    /// Runs every timer that is due; `Some` when the script stopped.
    fn run_due(
        &mut self,
        runtime: &mut Runtime,
        sync: &mut dyn FnMut(&mut Runtime, bool),
    ) -> Option<RunEnd> {
        let now = Instant::now();
        for index in 0..self.due.len() {
            let (probe, period, randomize, due) = self.due[index];
            if due > now {
                continue;
            }
            let next = (due + period).max(now) + self.jitter(randomize);
            self.due[index].3 = next;
            let context = HitContext {
                pp: runtime
                    .program()
                    .probes
                    .get(probe as usize)
                    .map(|probe| probe.name.clone())
                    .unwrap_or_default(),
                ..HitContext::default()
            };
            sync(runtime, true);
            let control = runtime.timer(probe, &context);
            sync(runtime, false);
            if let Some(end) = stopped(control) {
                return Some(end);
            }
        }
        None
    }

    /// How long to sleep: `poll`, or less when a timer is due sooner.
    fn sleep(&self, poll: Duration) -> Duration {
        let now = Instant::now();
        self.due
            .iter()
            .map(|(_, _, _, due)| due.saturating_duration_since(now))
            .fold(poll, Duration::min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_filter_keeps_interrupts_that_land_on_its_threads() {
        // Parenthesized whole: an event's own filter is joined with `&&`.
        assert_eq!(
            exclude(&[7, 9]),
            "((common_pid != 7 && common_pid != 9) || common_flags & 0x58)"
        );
    }

    #[test]
    fn lost_events_are_overruns_and_drops() {
        let stats = "entries: 12\noverrun: 7\ncommit overrun: 0\nbytes: 4096\n\
oldest event ts:  1.0\nnow ts:  2.0\ndropped events: 5\nread events: 3\n";
        assert_eq!(lost_events(stats), 12);
        assert_eq!(lost_events("entries: 1\n"), 0);
    }

    #[test]
    fn values_take_the_type_the_handler_expects() {
        assert_eq!(
            coerce(Value::Long(-3), ScalarType::String),
            Value::Str("-3".into())
        );
        assert_eq!(
            coerce(Value::Str("42".into()), ScalarType::Long),
            Value::Long(42)
        );
        assert_eq!(
            coerce(Value::Str("x".into()), ScalarType::String),
            Value::Str("x".into())
        );
    }

    #[test]
    fn timers_jitter_within_their_bound() {
        let mut timers = Timers {
            due: Vec::new(),
            seed: 12345,
        };
        assert_eq!(timers.jitter(0), Duration::ZERO);
        for _ in 0..100 {
            assert!(timers.jitter(1000) <= Duration::from_nanos(1000));
        }
    }
}
