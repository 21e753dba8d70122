//! Lowering an elaborated script to a bundle for one kernel: one event per
//! attach point, its fetch arguments, its filter.

use std::collections::BTreeMap;

use tapmatrix_elaborate::{Elaborated, FetchRequest, ResolvedAttach};
use tapmatrix_facts::{KernelFacts, TracingFeatures};
use tapmatrix_ir::{Builtin, Bundle, Event, Expr, Probe, ProbeKind, ScalarType, TaskEvent};
use tapmatrix_resolve::{AttachKind, AttachPoint, TargetAccess, TargetBase, TargetError};

use crate::event::{EventKind, Fetch, field, finish};
use crate::fetch::{ReadAs, Site, fetch_arg};
use crate::filter::pushdown;

/// The instances a kretprobe event keeps for calls in flight
/// (`r64:`). The kernel's default is `num_possible_cpus()` on kernels
/// built without preemption up to 5.10 (1 in a one-CPU guest): one other
/// task asleep in the function then takes the only instance and every
/// return of the workload's calls in the meantime is missed (measured on
/// 5.10: a `cat` blocked in `vfs_read` hid all of `dd`'s reads).
/// SystemTap keeps at least 15.
pub const KRETPROBE_MAXACTIVE: u32 = 64;

/// Why a script cannot run through tracefs on a kernel.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct LowerError {
    /// `file:line:col`, or the probe point when no place is known.
    pub location: String,
    /// What, where it attaches, and why.
    pub message: String,
}

/// Which events serve function probes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FunctionEvents {
    /// kprobes and kretprobes (`p:`/`r:`), on every kernel. The default:
    /// measured under TCG, a 7.3 guest sets up and tears down a kprobe
    /// event about five times faster than an fprobe event (160 ms against
    /// 1000 ms for one `do_sys_openat2` probe and its workload).
    #[default]
    Kprobes,
    /// fprobes (`f:`) where the kernel has them (6.12 on), else kprobes.
    Fprobes,
}

/// Lowers `elaborated` for the kernel `facts` describes, serving function
/// probes with `events`. Every error is collected, not just the first.
pub fn lower(
    elaborated: Elaborated,
    facts: &KernelFacts,
    events: FunctionEvents,
) -> Result<Bundle, Vec<LowerError>> {
    let Elaborated { mut program, sites } = elaborated;
    let mut features = facts.features.clone().unwrap_or_default();
    features.fprobe &= events == FunctionEvents::Fprobes;
    let mut errors = Vec::new();
    let mut probes = Vec::new();
    let mut events = Vec::new();
    for (probe, site) in std::mem::take(&mut program.probes).into_iter().zip(sites) {
        if probe.kind != ProbeKind::Event {
            probes.push(probe);
            continue;
        }
        // `@defined` is decided per attach point: attach points that agree
        // on every `@defined` share one copy of the probe.
        for (defined, attach) in site.defined_groups() {
            let (probe, requests, attach) = site.specialize(&probe, &defined, attach);
            let index = u32::try_from(probes.len()).unwrap_or(u32::MAX);
            match events_of(index, &probe, &requests, &attach, &features) {
                Ok((probe, mut more)) => {
                    probes.push(probe);
                    events.append(&mut more);
                }
                Err(mut more) => {
                    probes.push(probe);
                    errors.append(&mut more);
                }
            }
        }
    }
    program.probes = probes;
    share_tracepoint_filters(&mut events);
    let tasks = if !events.is_empty() && needs_task_state(&program) {
        TaskEvent::ALL.to_vec()
    } else {
        Vec::new()
    };
    let events = events
        .into_iter()
        .enumerate()
        .map(|(index, pending)| {
            let (install, slots) = finish(index, &pending.kind, &pending.fetches);
            Event {
                probe: pending.probe,
                pp: pending.pp,
                function: pending.function,
                is_return: pending.kind.is_return(),
                install,
                slots,
                comm: pending.comm,
                filter: pending.filter,
            }
        })
        .collect();
    if errors.is_empty() {
        Ok(Bundle {
            program,
            events,
            tasks,
        })
    } else {
        errors.dedup();
        Err(errors)
    }
}

/// An event being built: its kind and fetches, before it is finished
/// into the definition the agent installs.
struct Pending {
    probe: u32,
    pp: String,
    function: String,
    kind: EventKind,
    fetches: Vec<Fetch>,
    comm: Option<u32>,
    filter: Option<String>,
}

/// Whether a handler reads the task's state that ftrace events do not
/// record (`pid()`, `ppid()`, and `execname()` where `$comm` is not
/// fetched): the agent then follows the scheduler's task events.
fn needs_task_state(program: &tapmatrix_ir::Program) -> bool {
    let mut needs = false;
    tapmatrix_ir::visit::each_expr(program, &mut |e| {
        needs |= matches!(
            e,
            Expr::Builtin {
                builtin: Builtin::Pid | Builtin::Ppid | Builtin::Execname,
                ..
            }
        );
    });
    needs
}

/// A tracepoint has one filter: where several events of the bundle enable
/// the same tracepoint with different filters, none is filtered (each
/// handler still checks its own guards).
fn share_tracepoint_filters(events: &mut [Pending]) {
    let tracepoint = |event: &Pending| match &event.kind {
        EventKind::Tracepoint { system, event } => Some((system.clone(), event.clone())),
        _ => None,
    };
    let mut filters: BTreeMap<(String, String), Vec<Option<String>>> = BTreeMap::new();
    for event in events.iter() {
        if let Some(key) = tracepoint(event) {
            filters.entry(key).or_default().push(event.filter.clone());
        }
    }
    for event in events.iter_mut() {
        if let Some(key) = tracepoint(event)
            && filters
                .get(&key)
                .is_some_and(|all| all.iter().any(|f| *f != event.filter))
        {
            event.filter = None;
        }
    }
}

/// One attach point's fetch slots, resolved (see `ProbeSite::targets`).
type Targets = Vec<Result<TargetAccess, TargetError>>;

/// The events of one probe, one per attach point.
fn events_of(
    index: u32,
    probe: &Probe,
    requests: &[FetchRequest],
    attach: &[ResolvedAttach],
    features: &TracingFeatures,
) -> Result<(Probe, Vec<Pending>), Vec<LowerError>> {
    let mut probe = probe.clone();
    let mut errors = Vec::new();
    let mut events = Vec::new();
    let kinds: Vec<Result<(EventKind, Site), LowerError>> = attach
        .iter()
        .map(|(at, targets)| event_kind(at, requests, targets, features))
        .collect();
    // execname(): the comm is fetched where every event can fetch it.
    let mut wants_comm = false;
    tapmatrix_ir::visit::walk_block(&probe.body, &mut |_| {}, &mut |e| {
        wants_comm |= matches!(
            e,
            Expr::Builtin {
                builtin: Builtin::Execname,
                ..
            }
        );
    });
    let dynamic = kinds
        .iter()
        .all(|k| !matches!(k, Ok((EventKind::Tracepoint { .. }, _))));
    let comm = (wants_comm && dynamic && features.comm).then(|| {
        probe.fetches.push(ScalarType::String);
        u32::try_from(probe.fetches.len() - 1).unwrap_or(u32::MAX)
    });
    for ((at, targets), kind) in attach.iter().zip(kinds) {
        let (kind, site) = match kind {
            Ok(kind) => kind,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        let mut fetches = Vec::new();
        for (request, access) in requests.iter().zip(targets) {
            match fetch_of(request, access, at, &kind, site, features) {
                Ok(fetch) => fetches.push(fetch),
                Err(error) => errors.push(error),
            }
        }
        if comm.is_some() {
            fetches.push(Fetch {
                arg: "$comm:string".to_owned(),
                ty: ScalarType::String,
            });
        }
        let field = |slot: u32| -> Option<String> {
            match &kind {
                EventKind::Tracepoint { .. } => fetches.get(slot as usize).map(|f| f.arg.clone()),
                _ => Some(field(slot as usize)),
            }
        };
        // A return probe that reads `@entry` values pops what its entry
        // half saved at every return it sees: filtering its returns in the
        // kernel would leave values of other calls behind.
        let filter = if probe.entry.is_some() {
            None
        } else {
            pushdown(&probe.body, &field)
        };
        let function = match at.kind {
            AttachKind::Kprobe | AttachKind::Kretprobe => at.target.clone(),
            _ => String::new(),
        };
        events.push(Pending {
            probe: index,
            pp: at.probe_point(),
            function,
            kind,
            fetches,
            comm,
            filter,
        });
    }
    if errors.is_empty() {
        Ok((probe, events))
    } else {
        Err(errors)
    }
}

/// The event that serves an attach point, and where its fetches read.
fn event_kind(
    at: &AttachPoint,
    requests: &[FetchRequest],
    targets: &Targets,
    features: &TracingFeatures,
) -> Result<(EventKind, Site), LowerError> {
    let error = |message: String| LowerError {
        location: at.probe_point(),
        message,
    };
    let function = match &at.module {
        Some(module) => format!("{module}:{}", at.target),
        None => at.target.clone(),
    };
    match at.kind {
        AttachKind::Kprobe if features.fprobe && at.module.is_none() => Ok((
            EventKind::Fprobe {
                function,
                ret: false,
            },
            Site::Entry,
        )),
        AttachKind::Kprobe => Ok((EventKind::Kprobe { function }, Site::Entry)),
        AttachKind::Kretprobe if features.fprobe && at.module.is_none() => Ok((
            EventKind::Fprobe {
                function,
                ret: true,
            },
            Site::Return,
        )),
        AttachKind::Kretprobe => Ok((
            EventKind::Kretprobe {
                function,
                // `.maxactive(N)` as the script says (the kernel refuses
                // `r0:`: 0 is the default).
                maxactive: Some(
                    at.maxactive
                        .filter(|n| *n > 0)
                        .unwrap_or(KRETPROBE_MAXACTIVE),
                ),
            },
            Site::Return,
        )),
        AttachKind::Tracepoint => {
            let Some((system, event)) = at.target.split_once(':') else {
                return Err(error(format!("tracepoint {} has no system", at.target)));
            };
            let (system, event) = (system.to_owned(), event.to_owned());
            let needs_eprobe = requests
                .iter()
                .zip(targets)
                .any(|(request, access)| needs_memory_read(request, access));
            if !needs_eprobe {
                Ok((EventKind::Tracepoint { system, event }, Site::EventFields))
            } else if features.eprobe {
                Ok((EventKind::Eprobe { system, event }, Site::EventFields))
            } else {
                Err(error(
                    "reading memory through a tracepoint's fields needs event probes (e:), which this kernel lacks"
                        .to_owned(),
                ))
            }
        }
        AttachKind::Timer | AttachKind::Perf => Err(error(format!(
            "{} is not an event the tracefs back end runs",
            at.probe_point()
        ))),
        AttachKind::Begin | AttachKind::End | AttachKind::Error | AttachKind::Never => Err(error(
            "begin, end, error and never are not kernel events".to_owned(),
        )),
    }
}

/// Whether a request on a tracepoint reads memory (so a plain tracepoint
/// event cannot serve it): a string behind a pointer field, or a field
/// followed by `->`.
fn needs_memory_read(request: &FetchRequest, access: &Result<TargetAccess, TargetError>) -> bool {
    let string = match request {
        FetchRequest::Value { .. } => false,
        FetchRequest::String { .. } => true,
        FetchRequest::Defined { .. } => return false,
    };
    match access {
        Ok(access) => !(access.loads.is_empty() && (!string || is_char_field(access))),
        Err(_) => false,
    }
}

/// A tracepoint field holding characters: `char[16]` or `__data_loc char[]`.
fn is_char_field(access: &TargetAccess) -> bool {
    matches!(access.base, TargetBase::Field { .. }) && access.var.c_type.contains("char[")
}

/// One fetch of one event.
fn fetch_of(
    request: &FetchRequest,
    access: &Result<TargetAccess, TargetError>,
    at: &AttachPoint,
    kind: &EventKind,
    site: Site,
    features: &TracingFeatures,
) -> Result<Fetch, LowerError> {
    let (_target, text, location, read_as) = match request {
        FetchRequest::Value {
            target,
            text,
            location,
        } => (target, text, location, ReadAs::Value),
        FetchRequest::String {
            target,
            user,
            text,
            location,
            ..
        } => (
            target,
            text,
            location,
            if *user {
                ReadAs::UserString
            } else {
                ReadAs::KernelString
            },
        ),
        FetchRequest::Defined { text, .. } => {
            return Err(LowerError {
                location: at.probe_point(),
                message: format!("@defined({text}) left unresolved"),
            });
        }
    };
    let error = |message: String| LowerError {
        location: location.clone(),
        message: format!("{text} at {}: {message}", at.probe_point()),
    };
    let access = access.as_ref().map_err(|e| error(e.to_string()))?;
    let ty = request.ty();
    if let EventKind::Tracepoint { .. } = kind {
        let TargetBase::Field { name, .. } = &access.base else {
            return Err(error(
                "a tracepoint's BTF arguments cannot be fetched by a tracefs event; use its format fields".to_owned(),
            ));
        };
        if access.var.name != *name {
            // `$args[2]`: the event delivers fields whole.
            return Err(error(format!(
                "{} is an element of the array field ${name}, which a tracefs event delivers whole",
                access.var.name
            )));
        }
        if read_as == ReadAs::Value && is_char_field(access) {
            return Err(error(format!(
                "${name} is {}: read it with kernel_string(${name})",
                access.var.c_type
            )));
        }
        return Ok(Fetch {
            arg: name.clone(),
            ty,
        });
    }
    let arg = match (&access.base, kind) {
        // An eprobe copies the characters of a char field itself.
        (TargetBase::Field { name, .. }, EventKind::Eprobe { .. }) if is_char_field(access) => {
            format!("${name}:string")
        }
        _ => fetch_arg(access, read_as, site, features).map_err(|e| error(e.to_string()))?,
    };
    Ok(Fetch { arg, ty })
}
