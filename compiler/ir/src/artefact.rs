//! What one back end made of one script for one kernel: the finished
//! artefact the agent installs.

use serde::{Deserialize, Serialize};

use crate::bpf::BpfArtefact;
use crate::bundle::Bundle;
use crate::program::Program;

/// A script compiled for one kernel by one back end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case")]
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
}
