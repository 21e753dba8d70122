//! Judging one cell: what was compiled and what ran, against the spec and
//! the snapshot.

use crate::Error;
use crate::compile::Compiled;
use crate::snapshot::{matches, read_snapshot, snapshot_path};
use crate::spec::{SnapshotScope, Spec};
use tapmatrix_ir::{ItemEnd, RunEnd};
use tapmatrix_report::{Cell, STDERR_LINE, Status, WorkloadOutput};

/// What running one script in a guest gave: the agent's own end of the
/// item (`tapmatrix_ir::ItemEnd`, as it sent it), or why the guest never
/// got there; and the outputs the agent sent on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRun {
    /// Standard output, in order.
    pub stdout: String,
    /// Standard error (`WARNING:`/`ERROR:` lines).
    pub stderr: String,
    /// What the workload wrote (never part of the output compared).
    pub workload: WorkloadOutput,
    /// The agent's end of the item, or the infrastructure failure (the
    /// guest died, the image could not be built) that kept it from one.
    pub end: Result<ItemEnd, String>,
    /// What the kernel refused, when the item ended rejected: what was
    /// written and the kernel's words.
    pub rejected: Vec<String>,
}

impl ItemRun {
    /// A run that the infrastructure failed under (`why`).
    pub fn infra(why: impl Into<String>) -> ItemRun {
        ItemRun {
            stdout: String::new(),
            stderr: String::new(),
            workload: WorkloadOutput::default(),
            end: Err(why.into()),
            rejected: Vec::new(),
        }
    }

    /// Why the infrastructure failed this run (the guest, the image, or
    /// the agent itself), if it did.
    pub fn infra_failure(&self) -> Option<String> {
        match &self.end {
            Err(why) => Some(why.clone()),
            Ok(ItemEnd {
                reason: RunEnd::AgentError { message },
                ..
            }) => Some(format!("the agent failed: {message}")),
            Ok(_) => None,
        }
    }

    /// The output as snapshots hold it: standard output, then standard
    /// error after a `--- stderr ---` line when there is any.
    pub fn combined(&self) -> String {
        if self.stderr.is_empty() {
            self.stdout.clone()
        } else {
            format!("{}{STDERR_LINE}{}", self.stdout, self.stderr)
        }
    }
}

/// The cell of `spec` on kernel `kernel` (of `series`), where the spec says
/// the script `applies` or not, given its compilation and, if it ran, its run.
pub fn judge(
    spec: &Spec,
    kernel: &str,
    series: &str,
    applies: bool,
    compiled: &Compiled,
    run: Option<&ItemRun>,
) -> Result<Cell, Error> {
    let mut cell = Cell::new(&spec.name, kernel, Status::Pass, "");
    let unavailable_reason = || {
        spec.kernels
            .reason
            .clone()
            .unwrap_or_else(|| "the spec excludes this kernel".to_owned())
    };
    let first_line = |text: &str| text.lines().next().unwrap_or("").to_owned();
    match (compiled, applies) {
        (Compiled::NotAvailable(reasons), true) => {
            cell.status = Status::Fail;
            cell.detail = format!(
                "availability differs from the spec: its probes do not resolve here: {}",
                first_line(reasons)
            );
            return Ok(cell);
        }
        (Compiled::NotAvailable(_) | Compiled::Error(_), false) => {
            cell.status = Status::NotAvailable;
            cell.detail = unavailable_reason();
            return Ok(cell);
        }
        (Compiled::Error(message), true) => {
            cell.status = Status::Error;
            cell.detail = format!("compile error: {}", first_line(message));
            return Ok(cell);
        }
        (Compiled::Ready(_), false) => {
            cell.status = Status::Fail;
            cell.detail = format!(
                "availability differs from the spec: it compiles here, but the spec says not ({})",
                unavailable_reason()
            );
            return Ok(cell);
        }
        (Compiled::Ready(artefact), true) => cell.backend = Some(artefact.backend().to_owned()),
        (Compiled::Stopped { pass, .. }, _) => {
            cell.status = Status::Error;
            cell.detail = format!("not run: compiling stopped after pass {}", *pass as u8);
            return Ok(cell);
        }
    }
    let Some(run) = run else {
        cell.status = Status::Infra;
        cell.detail = "not run: the guest ended before this script".to_owned();
        return Ok(cell);
    };
    cell.workload = Some(run.workload.clone()).filter(|workload| !workload.is_empty());
    let output = spec.redactions.apply(&run.combined());
    cell.output = Some(output.clone());
    if let Ok(end) = &run.end {
        cell.hits = end.hits;
        cell.lost = end.lost;
        cell.skipped = end.skipped;
        cell.elapsed_ms = end.elapsed_ms;
    }
    let end = match (&run.end, run.infra_failure()) {
        (Ok(end), None) => end,
        (_, why) => {
            cell.status = Status::Infra;
            cell.detail = why.unwrap_or_default();
            return Ok(cell);
        }
    };
    let mut problems: Vec<String> = Vec::new();
    match &end.reason {
        RunEnd::Rejected => {
            cell.status = Status::Error;
            cell.detail = format!("the kernel refused an event: {}", run.rejected.join("; "));
            return Ok(cell);
        }
        // `-T SECS`: the time is up, as the script asked.
        RunEnd::Timeout if spec.invocation.time_limit => {}
        RunEnd::Timeout => problems.push(format!("timed out after {} s", spec.timeout_s)),
        RunEnd::RuntimeError { message } if !spec.expect_error => {
            problems.push(format!("run-time error: {message}"));
        }
        RunEnd::Exit | RunEnd::WorkloadDone if spec.expect_error => {
            problems.push("expected a run-time error, the run ended without one".to_owned());
        }
        RunEnd::RuntimeError { .. }
        | RunEnd::Exit
        | RunEnd::WorkloadDone
        | RunEnd::AgentError { .. } => {}
    }
    if !end.leftover_events.is_empty() {
        problems.push(format!(
            "events left behind: {}",
            end.leftover_events.join(", ")
        ));
    }
    let path = snapshot_path(spec, series);
    let expected = match spec.snapshot {
        SnapshotScope::Unchecked => Some(output.clone()),
        _ => read_snapshot(&path)?,
    };
    match expected {
        None => problems.push(format!(
            "no snapshot {} yet (run `cargo test -p tapmatrix-e2e --test matrix`, then review it with `cargo insta review`)",
            path.display()
        )),
        Some(expected) => {
            if !matches(&expected, &output) {
                problems.push(format!("output differs from {}", path.display()));
            }
            cell.expected = Some(expected);
        }
    }
    if !problems.is_empty() {
        cell.status = Status::Fail;
    }
    // Lost events are always said, also on a pass.
    if end.lost > 0 {
        problems.push(format!("{} events lost in the ring buffer", end.lost));
    }
    if end.skipped > 0 {
        problems.push(skipped_hits(end.skipped));
    }
    cell.detail = problems.join("; ");
    Ok(cell)
}

/// What a cell's detail says of hits whose handler did not run.
fn skipped_hits(skipped: u64) -> String {
    format!(
        "{skipped} hits skipped: their BPF handler did not run, another was running on that CPU \
         (the kernel's recursion guard for kprobe and tracepoint programs)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Applies;
    use tapmatrix_ir::{Bundle, Limits, Program};

    fn spec(dir: &std::path::Path, expect_error: bool) -> Spec {
        let script = dir.join("s.stp");
        std::fs::write(&script, "probe begin { exit() }").unwrap();
        std::fs::write(dir.join("s.yaml"), "description: judged\n").unwrap();
        let mut spec = Spec::load(&script).unwrap();
        spec.expect_error = expect_error;
        spec.kernels = Applies {
            reason: Some("appeared in 6.10".to_owned()),
            ..Applies::default()
        };
        std::fs::create_dir_all(dir.join("snapshots")).unwrap();
        std::fs::write(
            dir.join("snapshots/s.snap"),
            "---\nsource: tests/matrix.rs\n---\nhello\n",
        )
        .unwrap();
        spec
    }

    fn bundle() -> Compiled {
        Compiled::Ready(Box::new(tapmatrix_ir::Artefact::Tracefs(Bundle {
            program: Program {
                files: Vec::new(),
                globals: Vec::new(),
                functions: Vec::new(),
                probes: Vec::new(),
                limits: Limits::default(),
            },
            events: Vec::new(),
            tasks: Vec::new(),
        })))
    }

    fn run(stdout: &str, reason: RunEnd) -> ItemRun {
        ItemRun {
            stdout: stdout.to_owned(),
            end: Ok(ItemEnd {
                reason,
                hits: 0,
                lost: 0,
                skipped: 0,
                workload_status: Some(0),
                elapsed_ms: 0,
                setup_ms: 0,
                leftover_events: Vec::new(),
            }),
            ..ItemRun::infra("")
        }
    }

    #[test]
    fn every_ending_has_its_status() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path(), false);
        let judged = |applies, compiled: &Compiled, r: Option<&ItemRun>| {
            judge(&spec, "6.1", "6.1", applies, compiled, r).unwrap()
        };
        let ok = run("hello\n", RunEnd::WorkloadDone);
        assert_eq!(judged(true, &bundle(), Some(&ok)).status, Status::Pass);
        let other = run("bye\n", RunEnd::Exit);
        let cell = judged(true, &bundle(), Some(&other));
        assert_eq!(cell.status, Status::Fail);
        assert!(cell.detail.contains("output differs"), "{}", cell.detail);
        let rejected = ItemRun {
            rejected: vec!["`p:tapmatrix/e0 f`: No such file".to_owned()],
            ..run("", RunEnd::Rejected)
        };
        let cell = judged(true, &bundle(), Some(&rejected));
        assert_eq!(cell.status, Status::Error);
        assert!(cell.detail.contains("No such file"), "{}", cell.detail);
        let timeout = run("hello\n", RunEnd::Timeout);
        assert_eq!(judged(true, &bundle(), Some(&timeout)).status, Status::Fail);
        let infra = ItemRun::infra("kernel panic");
        assert_eq!(judged(true, &bundle(), Some(&infra)).status, Status::Infra);
        assert_eq!(judged(true, &bundle(), None).status, Status::Infra);
        let agent = run(
            "",
            RunEnd::AgentError {
                message: "no tracefs".to_owned(),
            },
        );
        let cell = judged(true, &bundle(), Some(&agent));
        assert_eq!(
            (cell.status, cell.detail.as_str()),
            (Status::Infra, "the agent failed: no tracefs")
        );
        let error = run(
            "hello\n",
            RunEnd::RuntimeError {
                message: "division by 0".to_owned(),
            },
        );
        assert_eq!(judged(true, &bundle(), Some(&error)).status, Status::Fail);
    }

    #[test]
    fn the_workload_output_is_kept_apart_and_never_compared() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path(), false);
        let ok = ItemRun {
            workload: WorkloadOutput {
                stdout: "from the workload\n".to_owned(),
                stderr: String::new(),
            },
            ..run("hello\n", RunEnd::WorkloadDone)
        };
        let cell = judge(&spec, "6.1", "6.1", true, &bundle(), Some(&ok)).unwrap();
        assert_eq!(cell.status, Status::Pass, "{}", cell.detail);
        assert_eq!(cell.output.as_deref(), Some("hello\n"));
        assert_eq!(
            cell.workload.map(|workload| workload.stdout).as_deref(),
            Some("from the workload\n")
        );
    }

    #[test]
    fn a_script_without_a_spec_is_shown_not_judged() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("mine.stp");
        std::fs::write(&script, "probe begin { exit() }").unwrap();
        let spec = Spec::load(&script).unwrap();
        assert_eq!(spec.spec_file, None);
        assert_eq!(spec.snapshot, crate::SnapshotScope::Unchecked);
        let cell = judge(
            &spec,
            "6.1",
            "6.1",
            true,
            &bundle(),
            Some(&run("anything\n", RunEnd::WorkloadDone)),
        )
        .unwrap();
        assert_eq!(cell.status, Status::Pass, "{}", cell.detail);
        assert_eq!(cell.output.as_deref(), Some("anything\n"));
    }

    #[test]
    fn availability_must_match_the_spec() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path(), false);
        let missing =
            Compiled::NotAvailable("kernel.trace(\"x\"): tracepoint x is absent".to_owned());
        let cell = judge(&spec, "6.1", "6.1", false, &missing, None).unwrap();
        assert_eq!(
            (cell.status, cell.detail.as_str()),
            (Status::NotAvailable, "appeared in 6.10")
        );
        let cell = judge(&spec, "6.1", "6.1", true, &missing, None).unwrap();
        assert_eq!(cell.status, Status::Fail);
        assert!(
            cell.detail.contains("tracepoint x is absent"),
            "{}",
            cell.detail
        );
        let cell = judge(&spec, "6.1", "6.1", false, &bundle(), None).unwrap();
        assert_eq!(cell.status, Status::Fail);
        let error = Compiled::Error("t.stp:1:1: semantic error".to_owned());
        let cell = judge(&spec, "6.1", "6.1", true, &error, None).unwrap();
        assert_eq!(cell.status, Status::Error);
    }

    #[test]
    fn an_expected_error_passes_only_with_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec(dir.path(), true);
        let error = run(
            "hello\n",
            RunEnd::RuntimeError {
                message: "division by 0".to_owned(),
            },
        );
        let cell = judge(&spec, "6.1", "6.1", true, &bundle(), Some(&error)).unwrap();
        assert_eq!(cell.status, Status::Pass, "{}", cell.detail);
        let clean = run("hello\n", RunEnd::WorkloadDone);
        let cell = judge(&spec, "6.1", "6.1", true, &bundle(), Some(&clean)).unwrap();
        assert_eq!(cell.status, Status::Fail);
    }
}
