//! What one back end made of one script for one kernel: the finished
//! artefact the agent installs.

use serde::{Deserialize, Serialize};

use crate::bpf::BpfArtefact;
use crate::bundle::Bundle;
use crate::program::Program;

/// A script compiled for one kernel by one back end. Externally tagged
/// (`{"bpf": {...}}`): an internally tagged enum is read into a buffer
/// first, and artefacts are most of a job's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Artefact {
    /// ftrace events feeding the handler runtime.
    Tracefs(Bundle),
    /// BPF programs and maps, loaded with aya.
    Bpf(Box<BpfArtefact>),
}

impl Artefact {
    /// The back end's name, as results record it.
    pub fn backend(&self) -> &'static str {
        match self {
            Artefact::Tracefs(_) => "tracefs",
            Artefact::Bpf(artefact) => match artefact.mode {
                crate::bpf::BpfMode::InKernel => "bpf",
                crate::bpf::BpfMode::Forwarded => "bpf-forward",
            },
        }
    }

    /// The program the runtime in the guest runs (all of it for tracefs;
    /// for BPF, what does not run in the kernel).
    pub fn program(&self) -> &Program {
        match self {
            Artefact::Tracefs(bundle) => &bundle.program,
            Artefact::Bpf(artefact) => &artefact.program,
        }
    }

    /// The kernel modules whose functions it probes, sorted, each once: a
    /// kprobe or kretprobe on `MODULE:FUNCTION` (both back ends name a
    /// module's function so), which the guest must have loaded before the
    /// artefact is installed.
    pub fn modules(&self) -> Vec<String> {
        let mut modules: Vec<String> = match self {
            Artefact::Tracefs(bundle) => bundle
                .events
                .iter()
                .filter_map(|event| match &event.install {
                    crate::bundle::Install::Dynamic { definition, .. }
                        if definition.starts_with(['p', 'r']) =>
                    {
                        definition.split_whitespace().nth(1).and_then(module_of)
                    }
                    _ => None,
                })
                .collect(),
            Artefact::Bpf(artefact) => artefact
                .programs
                .iter()
                .filter_map(|program| match &program.attach {
                    crate::bpf::BpfAttach::Kprobe { function }
                    | crate::bpf::BpfAttach::Kretprobe { function, .. } => module_of(function),
                    _ => None,
                })
                .collect(),
        };
        modules.sort_unstable();
        modules.dedup();
        modules
    }
}

/// The module of a kprobe's place `MODULE:SYMBOL[+OFFSET]`.
fn module_of(place: &str) -> Option<String> {
    place
        .split_once(':')
        .map(|(module, _)| module.to_owned())
        .filter(|module| !module.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{Event, Install};
    use crate::program::Limits;

    fn event(definition: &str) -> Event {
        Event {
            probe: 0,
            pp: String::new(),
            function: String::new(),
            install: Install::Dynamic {
                control: "kprobe_events".into(),
                definition: definition.into(),
                name: "tapmatrix/e0".into(),
            },
            slots: Vec::new(),
            comm: None,
            filter: None,
            is_return: false,
        }
    }

    #[test]
    fn the_modules_are_those_of_kprobes_on_module_functions() {
        let bundle = Bundle {
            program: Program {
                files: Vec::new(),
                globals: Vec::new(),
                functions: Vec::new(),
                probes: Vec::new(),
                limits: Limits::default(),
            },
            events: vec![
                event("p:tapmatrix/e0 vfs_read f0=%si:u64"),
                event("r64:tapmatrix/e1 nfs:nfs_file_read"),
                event("p:tapmatrix/e2 sunrpc:rpc_execute"),
                event("p:tapmatrix/e3 nfs:nfs_file_write"),
                event("e:tapmatrix/e4 sched.sched_switch"),
            ],
            tasks: Vec::new(),
        };
        assert_eq!(Artefact::Tracefs(bundle).modules(), ["nfs", "sunrpc"]);
    }
}
