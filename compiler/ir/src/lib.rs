//! The lowered form of a script: what the compiler hands to the guest.
//!
//! An [`Artefact`] is one script compiled for one kernel by one back end:
//! a tracefs [`Bundle`] (the [`Event`]s to create, and the [`Program`]
//! whose handlers run in the agent's runtime on every hit) or a BPF object
//! ([`bpf::BpfArtefact`]). The program is typed and name-resolved:
//! variables are slots, calls name a function by index or a [`Builtin`],
//! and every value a handler reads from the kernel is a [`Fetch`] that the
//! event gathers in the kernel (`Expr::Fetch(slot)`), so the runtime never
//! touches kernel memory.
//!
//! This crate has no logic beyond small helpers: it is the contract between
//! the compiler (`tapmatrix-elaborate`, the tracefs back end), the runtime
//! (`tapmatrix-runtime`) and the agent. It is built into the static agent,
//! so it depends on serde only.

mod artefact;
pub mod bpf;
mod bundle;
mod hit;
mod program;
mod report;
pub mod syscalls;
pub mod visit;

pub use artefact::Artefact;
pub use bundle::{Bundle, Event, Install, Slot, TaskEvent, Workload};
pub use hit::{Hit, HitContext, SlotFault};
pub use program::{
    Access, ArrayRef, BinaryOp, Block, Builtin, CompareOp, EntryValues, Expr, FormatSpec, Function,
    Global, GlobalType, HistSpec, LValue, Limits, Loc, Probe, ProbeKind, Program, ScalarType, Sort,
    SortKey, StatOp, Stmt, UnaryOp, Value,
};
pub use report::{ItemEnd, OutputStream, RunEnd, RunMessage, WORKLOAD_HEAD, WORKLOAD_TAIL};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_message_reads_as_the_agent_writes_it() {
        let message = RunMessage::Finished {
            item: 2,
            end: ItemEnd {
                reason: RunEnd::RuntimeError {
                    message: "division by 0".to_owned(),
                },
                hits: 3,
                lost: 0,
                skipped: 0,
                workload_status: Some(0),
                elapsed_ms: 12,
                setup_ms: 5,
                leftover_events: Vec::new(),
            },
        };
        let json = serde_json::to_string(&message).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"finished","item":2,"end":{"kind":"runtime_error","message":"division by 0"},"hits":3,"lost":0,"workload_status":0,"elapsed_ms":12,"setup_ms":5,"leftover_events":[]}"#
        );
        assert_eq!(serde_json::from_str::<RunMessage>(&json).unwrap(), message);
    }

    #[test]
    fn a_bundle_survives_json() {
        let bundle = Bundle {
            program: Program {
                files: vec!["t.stp".to_owned()],
                globals: vec![Global {
                    name: "n".to_owned(),
                    ty: GlobalType::Array {
                        keys: vec![ScalarType::String],
                        value: Some(ScalarType::Long),
                    },
                    init: None,
                    max_entries: Some(10),
                    wrap: false,
                }],
                functions: Vec::new(),
                probes: vec![Probe {
                    kind: ProbeKind::Event,
                    name: "kernel.function(\"vfs_read\")".to_owned(),
                    locals: Vec::new(),
                    fetches: vec![ScalarType::String],
                    entry: None,
                    body: vec![Stmt::Expr(Expr::Crement {
                        target: Box::new(LValue::Index {
                            array: 0,
                            keys: vec![Some(Expr::Fetch(0))],
                            loc: Loc {
                                file: 0,
                                line: 1,
                                col: 40,
                            },
                        }),
                        increment: true,
                        prefix: false,
                        loc: Loc {
                            file: 0,
                            line: 1,
                            col: 40,
                        },
                    })],
                }],
                limits: Limits::default(),
            },
            events: vec![Event {
                probe: 0,
                pp: "kernel.function(\"vfs_read\")".to_owned(),
                function: "vfs_read".to_owned(),
                install: Install::Dynamic {
                    control: "kprobe_events".to_owned(),
                    definition: "p:tapmatrix/e0 vfs_read f0=$comm:string".to_owned(),
                    name: "tapmatrix/e0".to_owned(),
                },
                slots: vec![Slot {
                    field: "f0".to_owned(),
                    ty: ScalarType::String,
                }],
                comm: Some(0),
                filter: Some("f0 != \"sh\"".to_owned()),
                is_return: false,
            }],
            tasks: vec![TaskEvent::Exec],
        };
        let json = serde_json::to_string(&bundle).unwrap();
        assert_eq!(serde_json::from_str::<Bundle>(&json).unwrap(), bundle);
    }
}
