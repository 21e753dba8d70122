//! Events as the back end builds them, and their finished form: the
//! definition line the agent writes, and the record fields it decodes.

use tapmatrix_ir::{Install, ScalarType, Slot};

/// The group every dynamic event of a run is created in.
pub const GROUP: &str = "tapmatrix";

/// The kind of tracefs event serving an attach point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// `p:` on a function entry.
    Kprobe {
        /// The function (`module:function` for a module's).
        function: String,
    },
    /// `r[MAXACTIVE]:` on a function return.
    Kretprobe {
        /// The function.
        function: String,
        /// `.maxactive(N)`.
        maxactive: Option<u32>,
    },
    /// `f:` (fprobe) on a function entry, or its return with `%return`.
    Fprobe {
        /// The function.
        function: String,
        /// On return.
        ret: bool,
    },
    /// `e:` (eprobe): an event on an existing tracepoint that can
    /// dereference its fields (`+0(filename):ustring`).
    Eprobe {
        /// The tracepoint's system.
        system: String,
        /// The tracepoint's name.
        event: String,
    },
    /// An existing tracepoint, enabled as it is; fetches are its fields.
    Tracepoint {
        /// The system.
        system: String,
        /// The event.
        event: String,
    },
}

impl EventKind {
    /// A function's return.
    pub fn is_return(&self) -> bool {
        matches!(
            self,
            EventKind::Kretprobe { .. } | EventKind::Fprobe { ret: true, .. }
        )
    }
}

/// One value an event gathers per hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// For dynamic events, the fetch argument with its type
    /// (`+0(%si):string`, `$arg2:s32`, `$retval:s64`, `$comm:string`);
    /// for a tracepoint, the name of its field.
    pub arg: String,
    /// The type the handler sees.
    pub ty: ScalarType,
}

/// A bundle as text, for review: each event's definition (or tracepoint),
/// its filter and the probe it feeds, then the task events followed.
pub fn dump(bundle: &tapmatrix_ir::Bundle) -> String {
    let mut out = String::from("back end: tracefs\n");
    for (index, event) in bundle.events.iter().enumerate() {
        let install = match &event.install {
            Install::Dynamic {
                control,
                definition,
                ..
            } => format!("{control}: {definition}"),
            Install::Tracepoint { system, event } => format!("tracepoint {system}:{event}"),
        };
        out.push_str(&format!(
            "event {index} -> probe {}: {install}\n",
            event.probe
        ));
        let fields: Vec<&str> = event.slots.iter().map(|slot| slot.field.as_str()).collect();
        if !fields.is_empty() {
            out.push_str(&format!("  slots: {}\n", fields.join(" ")));
        }
        if let Some(filter) = &event.filter {
            out.push_str(&format!("  filter: {filter}\n"));
        }
    }
    for task in &bundle.tasks {
        let (system, event) = task.tracepoint();
        out.push_str(&format!("task event: {system}:{event}\n"));
    }
    out
}

/// The field name of fetch `index` in a dynamic event: `f<index>`.
pub fn field(index: usize) -> String {
    format!("f{index}")
}

/// Event `index` of a bundle, finished: how the agent installs it and
/// where each fetch is in its records. Dynamic events are named
/// `tapmatrix/e<index>` and name their fetches `f<slot>`.
pub fn finish(index: usize, kind: &EventKind, fetches: &[Fetch]) -> (Install, Vec<Slot>) {
    let name = format!("{GROUP}/e{index}");
    let (control, head) = match kind {
        EventKind::Kprobe { function } => ("kprobe_events", format!("p:{name} {function}")),
        EventKind::Kretprobe {
            function,
            maxactive,
        } => {
            let maxactive = maxactive.map(|n| n.to_string()).unwrap_or_default();
            ("kprobe_events", format!("r{maxactive}:{name} {function}"))
        }
        EventKind::Fprobe { function, ret } => {
            let suffix = if *ret { "%return" } else { "" };
            ("dynamic_events", format!("f:{name} {function}{suffix}"))
        }
        EventKind::Eprobe { system, event } => {
            ("dynamic_events", format!("e:{name} {system}.{event}"))
        }
        EventKind::Tracepoint { system, event } => {
            let slots = fetches
                .iter()
                .map(|fetch| Slot {
                    field: fetch.arg.clone(),
                    ty: fetch.ty,
                })
                .collect();
            return (
                Install::Tracepoint {
                    system: system.clone(),
                    event: event.clone(),
                },
                slots,
            );
        }
    };
    let mut definition = head;
    let mut slots = Vec::new();
    for (slot, fetch) in fetches.iter().enumerate() {
        definition.push_str(&format!(" {}={}", field(slot), fetch.arg));
        slots.push(Slot {
            field: field(slot),
            ty: fetch.ty,
        });
    }
    (
        Install::Dynamic {
            control: control.to_owned(),
            definition,
            name,
        },
        slots,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetches(args: &[&str]) -> Vec<Fetch> {
        args.iter()
            .map(|arg| Fetch {
                arg: (*arg).to_owned(),
                ty: ScalarType::Long,
            })
            .collect()
    }

    fn definition(index: usize, kind: EventKind, args: &[&str]) -> Option<(String, String)> {
        match finish(index, &kind, &fetches(args)).0 {
            Install::Dynamic {
                control,
                definition,
                ..
            } => Some((control, definition)),
            Install::Tracepoint { .. } => None,
        }
    }

    #[test]
    fn definitions_name_each_fetch_by_its_slot() {
        assert_eq!(
            definition(
                3,
                EventKind::Kprobe {
                    function: "do_sys_open".into()
                },
                &["+0(%si):string", "$comm:string"]
            ),
            Some((
                "kprobe_events".to_owned(),
                "p:tapmatrix/e3 do_sys_open f0=+0(%si):string f1=$comm:string".to_owned()
            ))
        );
        assert_eq!(
            definition(
                0,
                EventKind::Kretprobe {
                    function: "vfs_read".into(),
                    maxactive: Some(64)
                },
                &["$retval:s64"]
            )
            .unwrap()
            .1,
            "r64:tapmatrix/e0 vfs_read f0=$retval:s64"
        );
        assert_eq!(
            definition(
                1,
                EventKind::Fprobe {
                    function: "vfs_read".into(),
                    ret: true
                },
                &[]
            ),
            Some((
                "dynamic_events".to_owned(),
                "f:tapmatrix/e1 vfs_read%return".to_owned()
            ))
        );
        assert_eq!(
            definition(
                2,
                EventKind::Eprobe {
                    system: "syscalls".into(),
                    event: "sys_enter_openat".into()
                },
                &["+0($filename):ustring"]
            )
            .unwrap()
            .1,
            "e:tapmatrix/e2 syscalls.sys_enter_openat f0=+0($filename):ustring"
        );
        let (install, slots) = finish(
            0,
            &EventKind::Tracepoint {
                system: "sched".into(),
                event: "sched_switch".into(),
            },
            &fetches(&["prev_pid"]),
        );
        assert_eq!(
            install,
            Install::Tracepoint {
                system: "sched".into(),
                event: "sched_switch".into()
            }
        );
        assert_eq!(slots[0].field, "prev_pid");
    }
}
