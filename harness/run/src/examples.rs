//! SystemTap's examples as a conformance test: each example's `.meta` file
//! (Debian's `systemtap-doc` ships them) says how SystemTap itself tests
//! it (`test_installcheck: stap X.stp -T 1 ARGS`). This module reads the
//! `.meta` files, splits those shell lines into `stap` words (or says why
//! a line needs more than `stap`: the test machine's shell, user-space
//! programs the guest does not have), evaluates `test_support` probe
//! checks, and sorts every (example, kernel) cell of a run into runs
//! clean, unsupported by design, untested on that kernel, or fails (with
//! the first error); then the summary a README shows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;
use tapmatrix_report::{Cell, Status};

/// One example: its `.meta` file and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// `CATEGORY/NAME` (`general/helloworld`): its `.meta` file's path
    /// under the examples directory, without the extension.
    pub id: String,
    /// The directory it runs in (its `.meta` file's).
    pub dir: PathBuf,
    /// `name:`, the script's file name.
    pub script: String,
    /// `test_support:`, a shell line that fails where the example does
    /// not apply.
    pub support: Option<String>,
    /// `test_installcheck:`, the shell line that runs it.
    pub installcheck: Option<String>,
}

impl Example {
    /// The name results use for it: its id with `/` as `.`
    /// (`general.helloworld`), a file name.
    pub fn result_name(&self) -> String {
        self.id.replace('/', ".")
    }

    /// Reads one `.meta` file (`TAG: value` lines; the first of a tag
    /// counts), `id` being its path under the examples directory.
    pub fn parse(id: &str, dir: &Path, text: &str) -> Example {
        let tag = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        Example {
            id: id.to_owned(),
            dir: dir.to_owned(),
            script: tag("name").unwrap_or_default(),
            support: tag("test_support"),
            installcheck: tag("test_installcheck"),
        }
    }

    /// Every example under `root` (every `*.meta` file, at any depth), by id.
    pub fn find(root: &Path) -> Result<Vec<Example>, Error> {
        let mut found = Vec::new();
        let mut dirs = vec![root.to_owned()];
        while let Some(dir) = dirs.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|error| Error::io(&dir, error))?;
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|ext| ext == "meta") {
                    let text =
                        std::fs::read_to_string(&path).map_err(|error| Error::io(&path, error))?;
                    let id = path
                        .strip_prefix(root)
                        .unwrap_or(&path)
                        .with_extension("")
                        .to_string_lossy()
                        .into_owned();
                    found.push(Example::parse(&id, &dir, &text));
                }
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(found)
    }
}

/// One word of a shell line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// The word with its quotes removed, nothing expanded.
    pub text: String,
    /// It holds `$...` or a backquote the shell would expand.
    pub expands: bool,
    /// It is an operator: `|`, `||`, `&&`, `;`, `&`, `(`, `)`.
    pub operator: bool,
}

/// Splits a shell line into words and operators, as `sh` would before
/// expanding anything. `None`: unbalanced quotes.
pub fn shell_words(line: &str) -> Option<Vec<Word>> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    let mut current: Option<Word> = None;
    let push = |words: &mut Vec<Word>, current: &mut Option<Word>| {
        if let Some(word) = current.take() {
            words.push(word);
        }
    };
    fn word(current: &mut Option<Word>) -> &mut Word {
        current.get_or_insert_with(|| Word {
            text: String::new(),
            expands: false,
            operator: false,
        })
    }
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => push(&mut words, &mut current),
            '\'' => loop {
                match chars.next()? {
                    '\'' => {
                        word(&mut current);
                        break;
                    }
                    other => word(&mut current).text.push(other),
                }
            },
            '"' => loop {
                match chars.next()? {
                    '"' => {
                        word(&mut current);
                        break;
                    }
                    '\\' => {
                        let next = chars.next()?;
                        if !matches!(next, '"' | '\\' | '$' | '`') {
                            word(&mut current).text.push('\\');
                        }
                        word(&mut current).text.push(next);
                    }
                    other => {
                        let w = word(&mut current);
                        w.expands |= matches!(other, '$' | '`');
                        w.text.push(other);
                    }
                }
            },
            '\\' => {
                if let Some(next) = chars.next() {
                    word(&mut current).text.push(next);
                }
            }
            // `2>&1`, `<&3`: a redirection, not a background `&`.
            '&' if current
                .as_ref()
                .is_some_and(|w| w.text.ends_with(['>', '<'])) =>
            {
                word(&mut current).text.push(c);
            }
            '|' | '&' | ';' | '(' | ')' => {
                push(&mut words, &mut current);
                let mut op = c.to_string();
                if matches!(c, '|' | '&') && chars.peek() == Some(&c) {
                    chars.next();
                    op.push(c);
                }
                words.push(Word {
                    text: op,
                    expands: false,
                    operator: true,
                });
            }
            '`' => {
                // A command substitution, kept whole in its word.
                let w = word(&mut current);
                w.expands = true;
                w.text.push('`');
                loop {
                    let next = chars.next()?;
                    w.text.push(next);
                    if next == '`' {
                        break;
                    }
                }
            }
            other => {
                let w = word(&mut current);
                w.expands |= other == '$';
                w.text.push(other);
            }
        }
    }
    push(&mut words, &mut current);
    Some(words)
}

/// How an example's `test_installcheck` line is run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `stap` with these words (the script and its arguments and
    /// options, `stap` itself left out).
    Stap(Vec<String>),
    /// It cannot be, by design: why.
    Unsupported(String),
}

/// The `stap` words of a `test_installcheck` line: its first command
/// (what follows `||` is a fallback for SystemTap's test harness), which
/// must be `stap` itself, and whose words the test machine's shell need
/// not expand (the `-c` command is left to the guest's shell).
pub fn stap_invocation(line: &str) -> Invocation {
    let Some(words) = shell_words(line) else {
        return Invocation::Unsupported(format!("its line does not split as a shell line: {line}"));
    };
    let end = words
        .iter()
        .position(|w| w.operator && w.text != "||")
        .unwrap_or(words.len());
    let first_end = words.iter().position(|w| w.operator).unwrap_or(words.len());
    if end < words.len() && words[end].text == "|" {
        return Invocation::Unsupported(
            "its line pipes into stap: the script reads its standard input, which the guest does not feed".to_owned(),
        );
    }
    let command = &words[..first_end];
    match command.first() {
        None => return Invocation::Unsupported("its line is empty".to_owned()),
        Some(word) if word.text.contains('=') && !word.text.starts_with('-') => {
            return Invocation::Unsupported(format!(
                "its line sets `{}` in the test machine's environment first",
                word.text
            ));
        }
        Some(word) if word.text != "stap" => {
            return Invocation::Unsupported(format!(
                "it runs `{}`, the example's own wrapper around stap, not stap",
                word.text
            ));
        }
        Some(_) => {}
    }
    let mut out = Vec::new();
    let mut after_c = false;
    for word in &command[1..] {
        if word.expands && !after_c {
            return Invocation::Unsupported(format!(
                "its line needs the test machine's shell to expand `{}`",
                word.text
            ));
        }
        after_c = word.text == "-c";
        out.push(word.text.clone());
    }
    Invocation::Stap(out)
}

/// Shell builtins a `-c` command may use besides the guest's programs.
const SHELL_BUILTINS: &[&str] = &[
    ":", ".", "cd", "echo", "eval", "exec", "exit", "export", "false", "kill", "read", "set",
    "test", "[", "true", "wait", "for", "do", "done", "if", "then", "else", "fi", "while",
];

/// The programs a workload command runs that the guest does not have
/// (`guest` holds the guest's commands), in order of first use.
pub fn missing_programs(command: &str, guest: &BTreeSet<String>) -> Vec<String> {
    let Some(words) = shell_words(command) else {
        return Vec::new();
    };
    let mut missing = Vec::new();
    let mut at_start = true;
    for word in &words {
        if word.operator {
            at_start = true;
            continue;
        }
        if !at_start {
            continue;
        }
        // Assignments and redirections before the command name.
        if (word.text.contains('=') && !word.text.starts_with('='))
            || word.text.starts_with(['>', '<'])
            || word.text.chars().next().is_some_and(|c| c.is_ascii_digit())
                && word.text.contains('>')
        {
            continue;
        }
        at_start = false;
        let name = word.text.rsplit('/').next().unwrap_or(&word.text);
        if word.expands
            || SHELL_BUILTINS.contains(&name)
            || guest.contains(name)
            || missing.iter().any(|m| m == name)
        {
            continue;
        }
        missing.push(name.to_owned());
    }
    missing
}

/// A `test_support` line as a condition on the kernel: probe points that
/// `stap -l` must list, joined by `&&` and `||`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// `stap -l 'POINT'` (or `-L`): the point lists something.
    Lists(String),
    /// Both hold.
    All(Vec<Support>),
    /// One holds.
    Any(Vec<Support>),
    /// Another command (`stap -p4 X.stp`, which the run itself checks,
    /// counts as true).
    Always,
    /// A command this tool does not run: what it is.
    Other(String),
}

impl Support {
    /// Reads a `test_support` line.
    pub fn parse(line: &str) -> Support {
        let Some(words) = shell_words(line) else {
            return Support::Other(line.to_owned());
        };
        let mut pos = 0;
        Support::or(&words, &mut pos)
    }

    fn or(words: &[Word], pos: &mut usize) -> Support {
        let mut any = vec![Support::and(words, pos)];
        while words
            .get(*pos)
            .is_some_and(|w| w.operator && w.text == "||")
        {
            *pos += 1;
            any.push(Support::and(words, pos));
        }
        if any.len() == 1 {
            any.pop().unwrap_or(Support::Always)
        } else {
            Support::Any(any)
        }
    }

    fn and(words: &[Word], pos: &mut usize) -> Support {
        let mut all = vec![Support::command(words, pos)];
        while words
            .get(*pos)
            .is_some_and(|w| w.operator && w.text == "&&")
        {
            *pos += 1;
            all.push(Support::command(words, pos));
        }
        if all.len() == 1 {
            all.pop().unwrap_or(Support::Always)
        } else {
            Support::All(all)
        }
    }

    fn command(words: &[Word], pos: &mut usize) -> Support {
        if words.get(*pos).is_some_and(|w| w.operator && w.text == "(") {
            *pos += 1;
            let inner = Support::or(words, pos);
            if words.get(*pos).is_some_and(|w| w.operator && w.text == ")") {
                *pos += 1;
            }
            return inner;
        }
        let start = *pos;
        while words.get(*pos).is_some_and(|w| !w.operator) {
            *pos += 1;
        }
        let command = &words[start..*pos];
        let texts: Vec<&str> = command.iter().map(|w| w.text.as_str()).collect();
        match texts.as_slice() {
            ["stap", "-l" | "-L", point] => Support::Lists((*point).to_owned()),
            ["stap", option, ..] if option.starts_with("-p") => Support::Always,
            _ => Support::Other(texts.join(" ")),
        }
    }

    /// Whether it holds on a kernel where `lists(point)` says whether
    /// `stap -l point` lists something; `Err` names a command it cannot
    /// decide.
    pub fn holds(&self, lists: &mut dyn FnMut(&str) -> bool) -> Result<bool, String> {
        match self {
            Support::Lists(point) => Ok(lists(point)),
            Support::Always => Ok(true),
            Support::Other(command) => Err(command.clone()),
            Support::All(all) => {
                for support in all {
                    if !support.holds(lists)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Support::Any(any) => {
                let mut undecided = None;
                for support in any {
                    match support.holds(lists) {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(command) => undecided = Some(command),
                    }
                }
                undecided.map_or(Ok(false), Err)
            }
        }
    }
}

/// Where one example stands on one kernel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", content = "why", rename_all = "snake_case")]
pub enum Verdict {
    /// It ran and ended well (its output is not compared: the examples
    /// print what the kernel does).
    Clean,
    /// It cannot run here, by design: why (guru mode's embedded C, user
    /// space, debuginfo, the test machine's shell).
    Unsupported(String),
    /// SystemTap's own harness would not run it on this kernel: its
    /// `test_support` check fails here, or it has no `test_installcheck`.
    Untested(String),
    /// It does not compile or run: the first error.
    Fails(String),
    /// The guest could not run it (boot, agent): not the example's fault.
    Infra(String),
}

impl Verdict {
    /// Its category's word: `clean`, `unsupported`, `untested`, `fails`,
    /// `infra`.
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Unsupported(_) => "unsupported",
            Verdict::Untested(_) => "untested",
            Verdict::Fails(_) => "fails",
            Verdict::Infra(_) => "infra",
        }
    }

    /// The verdict of an error that stopped an example (compiled
    /// offline): `Unsupported` when its cause is one refused by design.
    pub fn of_error(detail: &str) -> Verdict {
        match by_design(detail) {
            Some(why) => Verdict::Unsupported(why.to_owned()),
            None => Verdict::Fails(detail.trim().to_owned()),
        }
    }

    /// The verdict of a cell of the run: an error whose cause is one this
    /// tool refuses by design is `Unsupported`.
    pub fn of_cell(cell: &Cell) -> Verdict {
        let detail = cell.detail.trim();
        match cell.status {
            Status::Pass => Verdict::Clean,
            Status::Infra => Verdict::Infra(detail.to_owned()),
            _ => match by_design(detail) {
                Some(why) => Verdict::Unsupported(why.to_owned()),
                None if cell.status == Status::Flaky => Verdict::Fails(format!("flaky: {detail}")),
                None => Verdict::Fails(
                    detail
                        .strip_prefix("availability differs from the spec: ")
                        .unwrap_or(detail)
                        .to_owned(),
                ),
            },
        }
    }
}

/// The reason by design behind an error, if it is one.
fn by_design(detail: &str) -> Option<&'static str> {
    [
        (
            "procfs probes are not resolved offline",
            "procfs probes (and input.*, which SystemTap feeds through one): a /proc file that the script's kernel module serves; no module runs here",
        ),
        (
            "unknown operator or macro '@prometheus_",
            "SystemTap's Prometheus exporter (@prometheus_* in a procfs read probe): a /proc file that the script's kernel module serves; no module runs here",
        ),
        (
            "prometheus: no probe alias or provider by this name",
            "SystemTap's Prometheus exporter (probe prometheus, a procfs read probe): a /proc file that the script's kernel module serves; no module runs here",
        ),
        (
            "unknown operator or macro '@json_output_",
            "SystemTap's JSON exporter (@json_output_* in procfs probes): /proc files that the script's kernel module serves; no module runs here",
        ),
        (
            "process probes are not resolved offline",
            "user-space probes (process, uprobes, marks): tapmatrix probes kernels",
        ),
        (
            "needs DWARF debuginfo",
            "needs DWARF debuginfo (statements, inlines, source lines): tapmatrix reads BTF",
        ),
        // The script's own C (a tapset's unimplemented C is a failure:
        // "unimplemented embedded-C function").
        (
            "embedded C is not supported",
            "guru mode's embedded C with no implementation here: no kernel module runs C code",
        ),
        // tapsets/ has no input.* (they would resolve nowhere);
        // SystemTap's library maps them to procfs("__stdin"), above.
        (
            "input.char: no probe alias",
            "input.* reads stap's standard input through procfs(\"__stdin\"), a file of SystemTap's kernel module, and no module runs here",
        ),
        (
            "input.line: no probe alias",
            "input.* reads stap's standard input through procfs(\"__stdin\"), a file of SystemTap's kernel module, and no module runs here",
        ),
        (
            "stap.pass",
            "stap.pass* probes are marks in the stap translator, and no stap runs in the guest",
        ),
        (
            "embedded code in an unprivileged script",
            "guru mode's embedded C: no kernel module runs C code",
        ),
        (
            "writing a target variable",
            "guru mode's writes to kernel memory ($var = ...): tapmatrix writes no kernel memory",
        ),
    ]
    .into_iter()
    .find(|(needle, _)| detail.contains(needle))
    .map(|(_, why)| why)
}

/// The verdicts of a conformance run: per example, per kernel.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conformance {
    /// The kernels, in matrix order.
    pub kernels: Vec<String>,
    /// The back end asked for (`auto`, `tracefs`, `bpf`).
    pub backend: String,
    /// Per example.
    pub examples: Vec<ExampleResult>,
}

/// One example's verdicts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExampleResult {
    /// `CATEGORY/NAME`.
    pub id: String,
    /// Its `test_installcheck` line, as written.
    pub line: String,
    /// Per kernel (same order as [`Conformance::kernels`]): the verdict,
    /// and the back end that ran it when it ran.
    pub cells: Vec<ExampleCell>,
}

/// One (example, kernel) verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExampleCell {
    /// The kernel.
    pub kernel: String,
    /// Where it stands.
    #[serde(flatten)]
    pub verdict: Verdict,
    /// The back end that ran it (`tracefs`, `bpf`, `bpf-forward`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
}

impl ExampleResult {
    /// Whether no kernel says it is unsupported by design.
    pub fn supported(&self) -> bool {
        !self
            .cells
            .iter()
            .any(|cell| matches!(cell.verdict, Verdict::Unsupported(_)))
    }

    /// Whether it runs clean on every kernel.
    pub fn clean_everywhere(&self) -> bool {
        self.cells.iter().all(|cell| cell.verdict == Verdict::Clean)
    }

    /// Whether it runs clean on every kernel its own support check admits
    /// (and on one at least).
    pub fn clean_where_tested(&self) -> bool {
        self.cells.iter().any(|cell| cell.verdict == Verdict::Clean)
            && self
                .cells
                .iter()
                .all(|cell| matches!(cell.verdict, Verdict::Clean | Verdict::Untested(_)))
    }
}

impl Conformance {
    /// The headline: of the examples SystemTap itself runs (they have a
    /// `test_installcheck` line) that are not unsupported by design, how
    /// many run clean on every kernel, and how many where their support
    /// check admits them.
    pub fn share(&self) -> (usize, usize, usize) {
        let considered: Vec<&ExampleResult> = self
            .examples
            .iter()
            .filter(|e| e.supported() && !e.line.is_empty())
            .collect();
        (
            considered.iter().filter(|e| e.clean_everywhere()).count(),
            considered.iter().filter(|e| e.clean_where_tested()).count(),
            considered.len(),
        )
    }

    /// The summary as Markdown: counts per category and kernel, per back
    /// end, the headline share, and the failures grouped by cause.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let words = ["clean", "unsupported", "untested", "fails", "infra"];
        let _ = writeln!(out, "| category | {} |", self.kernels.join(" | "));
        let _ = writeln!(out, "| --- |{}", " ---: |".repeat(self.kernels.len()));
        for word in words {
            let counts: Vec<String> = (0..self.kernels.len())
                .map(|k| {
                    self.examples
                        .iter()
                        .filter(|e| e.cells.get(k).is_some_and(|c| c.verdict.word() == word))
                        .count()
                        .to_string()
                })
                .collect();
            if word == "infra" && counts.iter().all(|c| c == "0") {
                continue;
            }
            let _ = writeln!(out, "| {word} | {} |", counts.join(" | "));
        }
        let mut backends: BTreeMap<&str, usize> = BTreeMap::new();
        for cell in self.examples.iter().flat_map(|e| &e.cells) {
            if cell.verdict == Verdict::Clean
                && let Some(backend) = &cell.backend
            {
                *backends.entry(backend).or_default() += 1;
            }
        }
        if !backends.is_empty() {
            let listed: Vec<String> = backends
                .iter()
                .map(|(backend, n)| format!("{backend} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "\nClean cells by the back end that ran them (--backend {}): {}.",
                self.backend,
                listed.join(", ")
            );
        }
        let (everywhere, where_tested, considered) = self.share();
        let percent = |n: usize| {
            if considered == 0 {
                0.0
            } else {
                100.0 * n as f64 / considered as f64
            }
        };
        let _ = writeln!(
            out,
            "\nOf the {considered} examples with a `test_installcheck` line that are not unsupported by design, {everywhere} ({:.0}%) run clean on all {} kernels, {where_tested} ({:.0}%) on every kernel their `test_support` admits.",
            percent(everywhere),
            self.kernels.len(),
            percent(where_tested)
        );
        let mut causes: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for example in &self.examples {
            for cell in &example.cells {
                if let Verdict::Fails(why) = &cell.verdict {
                    causes.entry(cause(why)).or_default().insert(&example.id);
                }
            }
        }
        if !causes.is_empty() {
            let mut causes: Vec<(String, BTreeSet<&str>)> = causes.into_iter().collect();
            causes.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then(a.0.cmp(&b.0)));
            let _ = writeln!(out, "\n| what stops them | examples |\n| --- | --- |");
            for (cause, examples) in causes {
                let names: Vec<&str> = examples
                    .iter()
                    .map(|id| id.rsplit('/').next().unwrap_or(id))
                    .collect();
                let _ = writeln!(out, "| {cause} | {} |", names.join(", "));
            }
        }
        out
    }
}

/// A failure's cause, for grouping: the first line, with what varies
/// between examples (locations, counts) taken out.
pub fn cause(why: &str) -> String {
    let first = why.lines().next().unwrap_or_default();
    let first = first.strip_prefix("compile error: ").unwrap_or(first);
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let first = first.strip_prefix("semantic error: ").unwrap_or(first);
    // `FILE:LINE:COL: ` first (parse errors, back ends' errors).
    let first = match first.split_once(": ") {
        Some((place, rest)) if is_location(place) => rest,
        _ => first,
    };
    // ` at FILE:LINE:COL` last (semantic errors).
    let first = match first.rsplit_once(" at ") {
        Some((message, place)) if is_location(place) => message,
        _ => first,
    };
    const UNRESOLVED: &str = "its probes do not resolve here: ";
    let first = match first.find(UNRESOLVED) {
        Some(at) => &first[at + UNRESOLVED.len()..],
        None => first,
    };
    // A back end's refusal names the kernel's release (`... back end on
    // 6.1.0-40-amd64`): the same cause on every kernel.
    let first = match first.split_once(" back end on ") {
        Some((before, after)) => {
            let rest = after.find(' ').map_or("", |end| &after[end..]);
            format!("{before} back end{rest}")
        }
        None => first.to_owned(),
    };
    // Numbers that stand alone (counts, times, kernel releases) vary;
    // digits in names (`@this1`, `autofs4`) do not.
    let mut out = String::new();
    let mut in_word = false;
    let mut in_number = false;
    for c in first.replace('|', "\\|").chars() {
        if c.is_ascii_digit() && !in_word {
            if !in_number {
                out.push('#');
            }
            in_number = true;
        } else {
            // A name goes on through its digits (`amd64`, `autofs4`).
            in_word = c.is_ascii_alphabetic() || c == '_' || (in_word && c.is_ascii_digit());
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// `FILE:LINE:COL`, a place in a file.
fn is_location(text: &str) -> bool {
    let mut fields = text.rsplitn(3, ':');
    let numbers = fields
        .by_ref()
        .take(2)
        .all(|field| !field.is_empty() && field.chars().all(|c| c.is_ascii_digit()));
    numbers
        && fields
            .next()
            .is_some_and(|file| !file.is_empty() && !file.contains(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_refused_by_design_are_unsupported_and_a_tapsets_missing_c_fails() {
        let unsupported = |detail: &str| match Verdict::of_error(detail) {
            Verdict::Unsupported(why) => why,
            other => panic!("{detail}: {other:?}"),
        };
        assert!(
            unsupported(r#"its probes do not resolve here: procfs("__stdin").write: procfs probes are not resolved offline"#)
                .contains("input.*")
        );
        assert!(
            unsupported("its probes resolve to nothing here:\ninput.line: no probe alias or provider by this name")
                .contains("standard input")
        );
        assert!(
            unsupported("its probes resolve to nothing here:\nstap.pass0: no probe alias or provider by this name")
                .contains("no stap runs in the guest")
        );
        assert!(
            unsupported("semantic error: embedded C is not supported: function 'f' (defined at x.stp:1:10) has a C body")
                .contains("guru mode")
        );
        let detail = "semantic error: unimplemented embedded-C function: function '_is_reset' (defined at tcpmib.stp:246:23) has a C body and tapmatrix has no implementation of it";
        assert_eq!(Verdict::of_error(detail), Verdict::Fails(detail.to_owned()));
    }

    #[test]
    fn meta_files_read_their_tags() {
        let example = Example::parse(
            "general/helloworld",
            Path::new("/x"),
            "title: Hello\nname: helloworld.stp\ntest_check: stap -p4 helloworld.stp\ntest_installcheck: stap helloworld.stp\ntest_installcheck_bpf: stap --bpf helloworld.stp\n",
        );
        assert_eq!(example.script, "helloworld.stp");
        assert_eq!(example.installcheck.as_deref(), Some("stap helloworld.stp"));
        assert_eq!(example.support, None);
        assert_eq!(example.result_name(), "general.helloworld");
    }

    #[test]
    fn installcheck_lines_become_stap_words_or_say_why_not() {
        let stap =
            |words: &[&str]| Invocation::Stap(words.iter().map(|w| (*w).to_owned()).collect());
        assert_eq!(
            stap_invocation("stap func_time_stats.stp 'syscall.read' -T 1"),
            stap(&["func_time_stats.stp", "syscall.read", "-T", "1"])
        );
        assert_eq!(
            stap_invocation(
                r#"stap callgraph.stp 'kernel.function("*@fs/proc*.c")' -c "cat /proc/sys/vm/* || true""#
            ),
            stap(&[
                "callgraph.stp",
                r#"kernel.function("*@fs/proc*.c")"#,
                "-c",
                "cat /proc/sys/vm/* || true"
            ])
        );
        assert_eq!(
            stap_invocation("stap ltrace.stp -c ls || echo PR14738"),
            stap(&["ltrace.stp", "-c", "ls"])
        );
        // The -c command is the guest shell's to expand.
        assert_eq!(
            stap_invocation(r#"stap mbrwatch.stp -c "dd if=/dev/`ls /sys/block | head -1`""#),
            stap(&["mbrwatch.stp", "-c", "dd if=/dev/`ls /sys/block | head -1`"])
        );
        for (line, needle) in [
            ("stap -g pfiles.stp -x $$", "expand `$$`"),
            ("stap hw.stp 0x`grep x /proc/kallsyms` -T 5", "expand `0x`"),
            (
                "echo \"FILE\" | stap sizeof_interactive.stp -T 1",
                "pipes into stap",
            ),
            ("./kmalloc-top -c \"sleep 1\"", "`./kmalloc-top`"),
            ("PYTHONPATH=$X stap -c 'x' pyexample.stp", "environment"),
            ("stap 'unbalanced", "does not split"),
        ] {
            match stap_invocation(line) {
                Invocation::Unsupported(why) => assert!(why.contains(needle), "{line}: {why}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn procfs_exporters_are_unsupported_by_design() {
        for detail in [
            "unknown operator or macro '@prometheus_dump_array2_map' at x.stp:3:5",
            "semantic error: prometheus: no probe alias or provider by this name",
            "unknown operator or macro '@json_output_data_start' at y.stp:9:1",
            "procfs(\"x\").read: procfs probes are not resolved offline",
        ] {
            match Verdict::of_error(detail) {
                Verdict::Unsupported(why) => assert!(why.contains("/proc file"), "{why}"),
                other => panic!("{detail}: {other:?}"),
            }
        }
        assert!(matches!(
            Verdict::of_error("unknown operator or macro '@this9'"),
            Verdict::Fails(_)
        ));
    }

    #[test]
    fn workloads_name_the_programs_the_guest_lacks() {
        let guest: BTreeSet<String> = ["cat", "sleep", "ls", "dd", "grep", "head", "find"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert!(missing_programs("cat /proc/sys/vm/* || true", &guest).is_empty());
        assert!(missing_programs("find /proc >/dev/null || true", &guest).is_empty());
        assert_eq!(missing_programs("strace ls || true", &guest), ["strace"]);
        assert_eq!(
            missing_programs("/usr/bin/python3 -m HelperSDT x.py; stap -V", &guest),
            ["python3", "stap"]
        );
        assert!(missing_programs("X=1 sleep 2 2>&1 | grep y", &guest).is_empty());
    }

    #[test]
    fn support_lines_are_conditions_on_probe_points() {
        let support = Support::parse(
            "(stap -l 'kernel.trace(\"a\")' || stap -l 'kernel.trace(\"b\")') && stap -l 'kernel.trace(\"c\")'",
        );
        let have =
            |set: &'static [&'static str]| move |point: &str| set.iter().any(|p| point.contains(p));
        assert_eq!(support.holds(&mut have(&["\"b\"", "\"c\""])), Ok(true));
        assert_eq!(support.holds(&mut have(&["\"a\""])), Ok(false));
        assert_eq!(
            Support::parse("rpm -q findutils-debuginfo").holds(&mut have(&[])),
            Err("rpm -q findutils-debuginfo".to_owned())
        );
        assert_eq!(
            Support::parse("stap -p4 2048.stp").holds(&mut have(&[])),
            Ok(true)
        );
    }

    #[test]
    fn a_target_write_is_unsupported_by_design() {
        let detail = "semantic error: writing a target variable ($return) is not supported by the tracefs back end on 6.1.0-50-amd64 at /x/t.stp:4:3\n(and by bpf: semantic error: writing a target variable ($return) is not supported by the bpf back end on 6.1.0-50-amd64 at /x/t.stp:4:3)";
        assert!(
            matches!(Verdict::of_error(detail), Verdict::Unsupported(why) if why.contains("writes no kernel memory"))
        );
        assert!(matches!(
            Verdict::of_error(
                "semantic error: unresolved function: identifier 'x' at /x/t.stp:1:1"
            ),
            Verdict::Fails(_)
        ));
    }

    #[test]
    fn causes_group_failures_without_their_places() {
        assert_eq!(
            cause(
                "compile error: semantic error: unresolved function: identifier 'ctime' at /x/y.stp:12:5"
            ),
            "unresolved function: identifier 'ctime'"
        );
        assert_eq!(
            cause(
                "its probes do not resolve here: syscall_any: no probe alias or provider by this name"
            ),
            "syscall_any: no probe alias or provider by this name"
        );
        assert_eq!(cause("timed out after 30 s"), "timed out after # s");
        assert_eq!(
            cause(
                "compile error: error: /x/also_ran.stp:5:3: unknown operator or macro '@prometheus_dump_array2'"
            ),
            "unknown operator or macro '@prometheus_dump_array2'"
        );
        assert_eq!(
            cause(
                "compile error: the task's credentials at an event hit (uid()) are not supported by the tracefs back end on 6.1.0-40-amd64 at /x/t.stp:3:9"
            ),
            "the task's credentials at an event hit (uid()) are not supported by the tracefs back end"
        );
        assert_eq!(
            cause(
                "compile error: semantic error: timer.profile is not supported by the tracefs back end on 7.3.4+deb13-amd64 at /x/t.stp:3:9\nmore"
            ),
            cause(
                "compile error: semantic error: timer.profile is not supported by the tracefs back end on 5.10.0-32-amd64 at /x/t.stp:3:9"
            ),
        );
    }
}
