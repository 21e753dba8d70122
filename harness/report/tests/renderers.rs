//! The renderers on a fixed results file (`fixtures/results.json`: every
//! status, a flaky cell, logs, and an availability matrix): insta
//! snapshots of each, and checks that each is what its consumers read:
//! KTAP through a KTAP parser written here, JUnit against an XML schema
//! (`xmllint --schema`), KCIDB against KernelCI's JSON schema, the mail's
//! 72 columns.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test: a panic is how it reports a failure"
)]

use std::path::{Path, PathBuf};

use tapmatrix_report::{Format, KcidbOptions, RenderOptions, Results, render};

fn fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/results.json")
}

fn fixture() -> Results {
    let path = fixture_path();
    Results::from_json("results.json", &std::fs::read_to_string(path).unwrap()).unwrap()
}

fn rendered(format: Format) -> String {
    render(&fixture(), format, &RenderOptions::default())
}

#[test]
fn snapshots() {
    for (name, format) in Format::NAMES {
        if format == Format::Json {
            continue;
        }
        insta::assert_snapshot!(name, rendered(format));
    }
}

#[test]
fn json_round_trips() {
    let results = fixture();
    let again = Results::from_json("again", &results.to_json()).unwrap();
    assert_eq!(again, results);
}

/// One KTAP test result, with its subtests and diagnostics.
#[derive(Debug)]
struct KtapTest {
    ok: bool,
    name: String,
    directive: Option<String>,
    diagnostics: Vec<String>,
    subtests: Vec<KtapTest>,
}

/// A strict KTAP version 1 parser: a version line, a plan, then results
/// numbered from 1, a nested block (indented two spaces more, starting
/// with its own version line and plan) before the result it belongs to.
struct Ktap<'a> {
    lines: Vec<&'a str>,
    at: usize,
}

impl<'a> Ktap<'a> {
    fn parse(text: &'a str) -> Vec<KtapTest> {
        let mut parser = Ktap {
            lines: text.lines().collect(),
            at: 0,
        };
        let tests = parser.block(0);
        assert_eq!(
            parser.at,
            parser.lines.len(),
            "trailing lines after the top-level results"
        );
        tests
    }

    fn line_at(&self, depth: usize) -> Option<&'a str> {
        let line = self.lines.get(self.at)?;
        let indent = "  ".repeat(depth);
        line.strip_prefix(&indent)
            .filter(|rest| !rest.starts_with(' '))
    }

    fn block(&mut self, depth: usize) -> Vec<KtapTest> {
        assert_eq!(
            self.line_at(depth),
            Some("KTAP version 1"),
            "line {}: a version line at depth {depth}",
            self.at + 1
        );
        self.at += 1;
        let mut diagnostics = Vec::new();
        let mut plan = None;
        let mut tests: Vec<KtapTest> = Vec::new();
        let mut pending: Vec<KtapTest> = Vec::new();
        while self.at < self.lines.len() {
            if self.line_at(depth + 1) == Some("KTAP version 1") {
                assert!(
                    pending.is_empty(),
                    "line {}: two nested blocks for one test",
                    self.at + 1
                );
                pending = self.block(depth + 1);
                continue;
            }
            let Some(line) = self.line_at(depth) else {
                break;
            };
            if let Some(count) = line.strip_prefix("1..") {
                assert!(
                    plan.is_none() && tests.is_empty(),
                    "line {}: a late plan",
                    self.at + 1
                );
                plan = Some(count.parse::<usize>().unwrap());
            } else if let Some(text) = line.strip_prefix('#') {
                diagnostics.push(text.trim().to_owned());
            } else {
                let (ok, rest) = if let Some(rest) = line.strip_prefix("ok ") {
                    (true, rest)
                } else if let Some(rest) = line.strip_prefix("not ok ") {
                    (false, rest)
                } else {
                    panic!("line {}: not a KTAP line: {line:?}", self.at + 1);
                };
                let (number, rest) = rest.split_once(' ').unwrap_or((rest, ""));
                assert_eq!(
                    number.parse::<usize>().unwrap(),
                    tests.len() + 1,
                    "line {}: results are numbered from 1",
                    self.at + 1
                );
                let (name, directive) = match rest.split_once(" # ") {
                    Some((name, directive)) => (name, Some(directive.to_owned())),
                    None => (rest, None),
                };
                assert!(!name.contains('#'), "a description holds no #");
                let subtests = std::mem::take(&mut pending);
                if !subtests.is_empty() && !subtests.iter().all(|t| t.ok) {
                    assert!(!ok, "line {}: a parent of a failed test fails", self.at + 1);
                }
                tests.push(KtapTest {
                    ok,
                    name: name.to_owned(),
                    directive,
                    diagnostics: std::mem::take(&mut diagnostics),
                    subtests,
                });
            }
            self.at += 1;
            if depth > 0 && plan == Some(tests.len()) {
                break;
            }
        }
        assert_eq!(plan, Some(tests.len()), "the plan counts the results");
        tests
    }
}

#[test]
fn ktap_parses_and_says_each_status() {
    let text = rendered(Format::Ktap);
    let kernels = Ktap::parse(&text);
    let names: Vec<&str> = kernels.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["5.10", "6.12", "7.3"]);
    let test = |kernel: usize, name: &str| {
        kernels[kernel]
            .subtests
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no {name} on {}", kernels[kernel].name))
    };
    assert!(test(0, "exec_tracepoint").ok);
    let na = test(0, "prepare_exec_newer");
    assert!(na.ok && na.directive.as_deref() == Some("SKIP prepare_exec appeared in 6.10"));
    let error = test(0, "read_sizes_hist");
    assert!(
        !error.ok
            && error
                .directive
                .as_deref()
                .unwrap()
                .starts_with("ERROR compile error")
    );
    let flaky = test(1, "prepare_exec_newer");
    assert!(!flaky.ok && flaky.directive.as_deref().unwrap().starts_with("FLAKY"));
    let fail = test(2, "openat_names");
    assert!(!fail.ok && fail.directive.is_none());
    assert!(
        fail.diagnostics
            .iter()
            .any(|d| d == "console log: logs/7.3/boot-3.console.log")
    );
    assert!(
        fail.diagnostics
            .iter()
            .any(|d| d.starts_with("+openat /etc/group <truncated>"))
    );
    let infra = test(2, "read_sizes_hist");
    assert!(
        infra.ok
            && infra
                .directive
                .as_deref()
                .unwrap()
                .starts_with("SKIP infra:")
    );
    // The probes, nested per kernel.
    let probes = test(1, "probes");
    assert!(!probes.ok);
    let ftruncate = probes
        .subtests
        .iter()
        .find(|t| t.name == "porting.ftruncate")
        .unwrap();
    assert!(!ftruncate.ok);
    assert!(
        ftruncate
            .diagnostics
            .iter()
            .any(|d| d.contains("sys_enter_ftruncate"))
    );
    assert!(
        kernels[0]
            .subtests
            .iter()
            .all(|t| t.name != "probes" || !t.ok)
    );
    assert!(!kernels[0].ok && !kernels[1].ok && !kernels[2].ok);
}

/// Debian's xmllint, installed by `cargo xtask test` (libxml2-utils).
fn xmllint() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("xmllint"))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("xmllint is missing: `cargo xtask test` installs it (apt-get install libxml2-utils)")
    })
}

#[test]
fn junit_is_valid_against_the_schema() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("junit.xml");
    std::fs::write(&file, rendered(Format::Junit)).unwrap();
    let schema = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/junit.xsd");
    let check = |file: &Path| {
        std::process::Command::new(xmllint())
            .arg("--noout")
            .arg("--schema")
            .arg(&schema)
            .arg(file)
            .output()
            .unwrap()
    };
    let out = check(&file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The schema check can fail: a testcase without a name does not pass.
    let broken = dir.path().join("broken.xml");
    std::fs::write(
        &broken,
        rendered(Format::Junit).replace("<testcase name=\"openat_names\"", "<testcase"),
    )
    .unwrap();
    assert!(!check(&broken).status.success());
}

fn kcidb_validator() -> jsonschema::Validator {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/kcidb-v5.3.json"),
    )
    .unwrap();
    // KCIDB's patterns write NUL as `\0`, which the regex check of the
    // meta-schema refuses; `\x00` is the same character.
    let schema: serde_json::Value =
        serde_json::from_str(&text.replace("\\\\0", "\\\\x00")).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

#[test]
fn kcidb_is_valid_against_kernelcis_schema() {
    let validator = kcidb_validator();
    let check = |options: &RenderOptions| {
        let text = render(&fixture(), Format::Kcidb, options);
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{}", errors.join("\n"));
        json
    };
    let json = check(&RenderOptions::default());
    let statuses: Vec<&str> = json["tests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    for status in ["PASS", "SKIP", "FAIL", "ERROR", "MISS"] {
        assert!(statuses.contains(&status), "{status}");
    }
    let with_urls = check(&RenderOptions {
        kcidb: KcidbOptions {
            origin: "tapmatrix".to_owned(),
            log_base_url: Some("https://ci.example.org/runs/1/".to_owned()),
        },
    });
    assert!(
        with_urls["tests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["log_url"] == "https://ci.example.org/runs/1/logs/7.3/boot-3.console.log")
    );
    // The schema check can fail.
    let mut broken = json.clone();
    broken["tests"][0]["status"] = serde_json::json!("FLAKY");
    assert!(!validator.is_valid(&broken));
}

#[test]
fn the_mail_keeps_to_72_columns_and_tells_each_change_once() {
    let mail = rendered(Format::Mail);
    for line in mail.lines() {
        assert!(line.chars().count() <= 72, "{line:?}");
        let markdown = line.contains("```")
            || line.contains("**")
            || line.starts_with('#')
            || line.starts_with("| ");
        assert!(!markdown, "Markdown in {line:?}");
    }
    assert!(mail.starts_with("Subject: [tapmatrix] 4 scripts on 3 kernels"));
    assert_eq!(
        mail.matches("kernel.function(\"do_sys_ftruncate\")")
            .count(),
        1,
        "{mail}"
    );
    assert!(mail.contains("unresolved since 6.12"), "{mail}");
    assert!(mail.contains("unresolved on 5.10 only"), "{mail}");
    assert!(mail.contains("openat_names: fail since 7.3"), "{mail}");
    assert_eq!(
        mail.matches("+openat /etc/group <truncated>").count(),
        1,
        "{mail}"
    );
    assert!(mail.contains("logs/7.3/boot-3.console.log"), "{mail}");
}

#[test]
fn every_report_links_the_logs_of_every_cell_that_is_not_a_pass() {
    let results = fixture();
    for format in [
        Format::Table,
        Format::Ktap,
        Format::Junit,
        Format::Kcidb,
        Format::Mail,
        Format::Html,
    ] {
        let text = render(&results, format, &RenderOptions::default());
        for cell in &results.cells {
            if let Some(logs) = &cell.logs {
                assert!(
                    text.contains(&logs.console) && text.contains(&logs.agent),
                    "{format:?} lacks the logs of {} on {}",
                    cell.script,
                    cell.kernel
                );
            }
        }
    }
}
