//! The results of a run on the kernel matrix and everything derived from
//! them, without booting anything: the model (`results.json`, schema 2,
//! documented in [`model`]), its renderers (a terminal table, KTAP, JUnit
//! XML, KCIDB JSON, a 72-column plain-text mail, a static HTML page), the
//! comparison of a run with a baseline ([`compare()`]), and the plan that
//! shards a run over CI jobs and the merge of their results
//! ([`plan()`], [`merge()`]).

mod compare;
mod html;
mod junit;
mod kcidb;
mod ktap;
mod mail;
mod merge;
pub mod model;
mod plan;
mod table;
mod text;

pub use compare::{CellChange, Change, Comparison, compare};
pub use kcidb::KcidbOptions;
pub use merge::{MergeError, merge};
pub use model::{
    Attempt, Cell, KernelRun, Logs, ReadError, Results, Retry, RunInfo, SCHEMA, STDERR_LINE,
    ScriptInfo, ShardId, Status, WorkloadOutput,
};
pub use plan::{Costs, Shard, github_matrix, plan};
pub use text::{kernel_ranges, unified_diff};

/// The formats a results file renders to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The terminal table: scripts (or probes) down, kernels across.
    Table,
    /// `results.json` itself.
    Json,
    /// KTAP, as kselftest writes it: one nested test per kernel.
    Ktap,
    /// JUnit XML: one testsuite per kernel, one testcase per script.
    Junit,
    /// A KCIDB submission (schema 5.3): checkouts, builds, tests.
    Kcidb,
    /// A plain-text mail, 72 columns, for a mailing list.
    Mail,
    /// A static HTML page (one file; logs linked by relative path).
    Html,
}

impl Format {
    /// Every format with its name on the command line.
    pub const NAMES: [(&'static str, Format); 7] = [
        ("table", Format::Table),
        ("json", Format::Json),
        ("ktap", Format::Ktap),
        ("junit", Format::Junit),
        ("kcidb", Format::Kcidb),
        ("mail", Format::Mail),
        ("html", Format::Html),
    ];

    /// The file name a report of this format is written to in a run's
    /// output directory.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Table => "results.txt",
            Format::Json => "results.json",
            Format::Ktap => "results.ktap",
            Format::Junit => "junit.xml",
            Format::Kcidb => "kcidb.json",
            Format::Mail => "mail.txt",
            Format::Html => "index.html",
        }
    }
}

impl std::str::FromStr for Format {
    type Err = String;

    fn from_str(text: &str) -> Result<Format, String> {
        Format::NAMES
            .iter()
            .find(|(name, _)| *name == text)
            .map(|(_, format)| *format)
            .ok_or_else(|| {
                let names: Vec<&str> = Format::NAMES.iter().map(|(name, _)| *name).collect();
                format!("unknown format `{text}`: one of {}", names.join(", "))
            })
    }
}

/// What some renderers need besides the results.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// KCIDB settings.
    pub kcidb: KcidbOptions,
}

/// Renders `results` as `format`.
pub fn render(results: &Results, format: Format, options: &RenderOptions) -> String {
    match format {
        Format::Table => table::render(results),
        Format::Json => results.to_json(),
        Format::Ktap => ktap::render(results),
        Format::Junit => junit::render(results),
        Format::Kcidb => kcidb::render(results, &options.kcidb),
        Format::Mail => mail::render(results),
        Format::Html => html::render(results),
    }
}
