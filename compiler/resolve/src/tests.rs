//! Resolution on the committed fixtures cut from real 5.10, 6.1, 6.12 and
//! 7.3 harvests (BTF cut to what they reach), and on the full cached matrix when
//! `TAPMATRIX_RESOLVE_FACTS` names a facts directory (`<dir>/<id>/`).

use std::path::{Path, PathBuf};

use tapmatrix_facts::KernelFacts;
use tapmatrix_syntax::{FileKind, Profile, Session};

use crate::*;

pub(crate) fn fixture(id: &str) -> KernelFacts {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../facts/fixtures/linux-{id}"));
    let config = dir.join("config");
    KernelFacts::from_raw(&dir, config.exists().then_some(config.as_path())).unwrap()
}

/// The alias matrix of one library over `kernels`.
fn matrix_of(kernels: &[(impl AsRef<str>, KernelFacts)], library: &Library) -> Matrix {
    let inputs: Vec<KernelInput<'_>> = kernels
        .iter()
        .map(|(id, facts)| KernelInput {
            id: id.as_ref(),
            facts,
            library,
        })
        .collect();
    Matrix::build(&inputs, RowsOf::Aliases)
}

pub(crate) fn library(text: &str) -> Library {
    let mut session = Session::new(Profile::default(), &[]);
    let id = session.add_source("t.stp", text);
    let parsed = session.parse(
        id,
        FileKind {
            privileged: true,
            user_file: true,
        },
    );
    assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
    let mut library = Library::default();
    library.add_file(
        &parsed.file,
        session.sources(),
        true,
        crate::library::SCRIPT_LAYER,
    );
    library
}

fn outcome(facts: &KernelFacts, lib: &Library, point: &str) -> Outcome {
    Resolver::new(lib, facts).resolve_point(&ProbePoint::parse(point).unwrap())
}

fn reason(facts: &KernelFacts, lib: &Library, point: &str) -> Reason {
    match outcome(facts, lib, point) {
        Outcome::Unresolved(misses) => misses[0].reason.clone(),
        other => panic!("{point} resolved: {other:?}"),
    }
}

fn attach(facts: &KernelFacts, lib: &Library, point: &str) -> Vec<String> {
    match outcome(facts, lib, point) {
        Outcome::Resolved(found) => found
            .attach
            .iter()
            .map(|a| format!("{:?} {}", a.kind, a.target))
            .collect(),
        other => panic!("{point} did not resolve: {other:?}"),
    }
}

#[test]
fn function_providers_and_classifications() {
    let k61 = fixture("6.1");
    let k510 = fixture("5.10");
    let lib = Library::default();
    assert_eq!(
        attach(&k61, &lib, r#"kernel.function("vfs_read")"#),
        ["Kprobe vfs_read"]
    );
    assert_eq!(
        attach(&k61, &lib, r#"kernel.function("vfs_read").call.return"#),
        ["Kretprobe vfs_read"]
    );
    assert_eq!(
        attach(
            &k61,
            &lib,
            r#"kprobe.function("vfs_read").return.maxactive(4)"#
        ),
        ["Kretprobe vfs_read"]
    );
    assert_eq!(
        attach(&k61, &lib, r#"kernel.function("vfs_read@fs/read_write.c")"#),
        ["Kprobe vfs_read"]
    );
    // vfs_read is a global symbol; exported is approximated by that.
    assert_eq!(
        attach(&k61, &lib, r#"kernel.function("vfs_read").exported"#).len(),
        1
    );
    assert_eq!(
        reason(&k510, &lib, r#"kernel.function("__alloc_pages")"#),
        Reason::FunctionAbsent {
            function: "__alloc_pages".to_owned()
        }
    );
    assert_eq!(
        reason(&k61, &lib, r#"kernel.function("path_openat")"#),
        Reason::SymbolOnly {
            function: "path_openat".to_owned()
        }
    );
    assert_eq!(
        reason(&k61, &lib, r#"kernel.function("do_int3")"#),
        Reason::Blacklisted {
            function: "do_int3".to_owned()
        }
    );
    assert_eq!(
        reason(&k61, &lib, r#"kernel.function("perf_iommu_stop")"#),
        Reason::ClonesOnly {
            function: "perf_iommu_stop".to_owned(),
            clones: vec!["perf_iommu_stop.part.0".to_owned()]
        }
    );
    // The clone itself attaches by its own name.
    assert_eq!(
        attach(&k61, &lib, r#"kprobe.function("perf_iommu_stop.part.0")"#),
        ["Kprobe perf_iommu_stop.part.0"]
    );
    for dwarf in [
        r#"kernel.function("vfs_read@fs/read_write.c:450")"#,
        r#"kernel.function("vfs_read").inline"#,
        r#"kernel.function("vfs_read").label("out")"#,
        r#"kernel.statement("vfs_read@fs/read_write.c:450")"#,
        r#"kernel.function("*@fs/read_write.c")"#,
    ] {
        assert!(
            matches!(reason(&k61, &lib, dwarf), Reason::NeedsDwarf { .. }),
            "{dwarf}"
        );
    }
    assert!(matches!(
        reason(&k61, &lib, r#"kernel.function("vfs_read").bogus"#),
        Reason::BadPoint { .. }
    ));
    assert!(matches!(
        reason(&k61, &lib, r#"module("nosuchmod").function("f")"#),
        // The fixture records no modules tree.
        Reason::FactsMissing { what } if what.contains("module facts")
    ));
    assert_eq!(reason(&k61, &lib, "nosuch.probe"), Reason::NoSuchProbe);
    assert!(matches!(
        reason(&k61, &lib, r#"process("/bin/ls").function("main")"#),
        Reason::Unsupported { .. }
    ));
}

#[test]
fn wildcards_match_clones_and_skip_the_blacklist() {
    let k61 = fixture("6.1");
    let lib = Library::default();
    let vfs = attach(&k61, &lib, r#"kernel.function("vfs_*")"#);
    assert!(vfs.contains(&"Kprobe vfs_read".to_owned()), "{vfs:?}");
    assert!(vfs.contains(&"Kprobe vfs_write".to_owned()), "{vfs:?}");
    let perf = attach(&k61, &lib, r#"kernel.function("perf_iommu_*")"#);
    assert_eq!(perf, ["Kprobe perf_iommu_stop.part.0"]);
    match outcome(&k61, &lib, r#"kernel.function("perf_iommu_*")"#) {
        Outcome::Resolved(found) => {
            assert_eq!(found.attach[0].clone_of.as_deref(), Some("perf_iommu_stop"));
        }
        other => panic!("{other:?}"),
    }
    // do_int3 is blacklisted: a wildcard leaves it out silently.
    let int3 = outcome(&k61, &lib, r#"kernel.function("do_int*")"#);
    assert!(matches!(int3, Outcome::Unresolved(_)), "{int3:?}");
    assert!(matches!(
        reason(&k61, &lib, r#"kernel.function("zzz_*")"#),
        Reason::NothingMatched { .. }
    ));
}

#[test]
fn tracepoints_with_and_without_system() {
    let k61 = fixture("6.1");
    let lib = Library::default();
    assert_eq!(
        attach(&k61, &lib, r#"kernel.trace("sched:sched_switch")"#),
        ["Tracepoint sched:sched_switch"]
    );
    assert_eq!(
        attach(&k61, &lib, r#"kernel.trace("sched_switch")"#),
        ["Tracepoint sched:sched_switch"]
    );
    assert_eq!(attach(&k61, &lib, r#"kernel.trace("sched:*")"#).len(), 4);
    assert_eq!(
        attach(&k61, &lib, r#"kernel.trace("*:irq_handler_*")"#).len(),
        2
    );
    assert_eq!(
        reason(&k61, &lib, r#"kernel.trace("sched:sched_gone")"#),
        Reason::TracepointAbsent {
            event: "sched:sched_gone".to_owned()
        }
    );
    // cachestat appeared in 6.5: absent on 6.1.
    assert!(matches!(
        reason(
            &k61,
            &lib,
            r#"kernel.trace("syscalls:sys_enter_cachestat")"#
        ),
        Reason::TracepointAbsent { .. }
    ));
}

#[test]
fn begin_end_timers_and_perf() {
    let k61 = fixture("6.1");
    let lib = Library::default();
    for point in [
        "begin",
        "end",
        "error",
        "never",
        "timer.s(1)",
        "timer.ms(100)",
        "timer.us(5)",
        "timer.ns(100000)",
        "timer.hz(100)",
        "timer.jiffies(3)",
        "timer.ms(100).randomize(10)",
        "timer.profile",
        "timer.profile.tick",
    ] {
        assert_eq!(attach(&k61, &lib, point).len(), 1, "{point}");
    }
    for bad in [
        "timer.ms(0)",
        "timer.ms",
        "timer.ms(1).bogus",
        "timer.weeks(1)",
    ] {
        assert!(
            matches!(reason(&k61, &lib, bad), Reason::BadPoint { .. }),
            "{bad}"
        );
    }
    let mut perf = fixture("6.1");
    perf.config = Some(tapmatrix_facts::KernelConfig::parse("CONFIG_PERF_EVENTS=y\n").unwrap());
    assert_eq!(
        attach(&perf, &lib, "perf.type(0).config(0).sample(1000)").len(),
        1
    );
    perf.config =
        Some(tapmatrix_facts::KernelConfig::parse("# CONFIG_PERF_EVENTS is not set\n").unwrap());
    assert!(matches!(
        reason(&perf, &lib, "perf.type(0).config(0)"),
        Reason::FeatureMissing { .. }
    ));
    perf.config = None;
    perf.syscalls = None;
    assert!(matches!(
        reason(&perf, &lib, "perf.type(0).config(0)"),
        Reason::FactsMissing { .. }
    ));
    assert!(matches!(
        reason(&k61, &lib, "perf.type(0)"),
        Reason::BadPoint { .. }
    ));
}

#[test]
fn aliases_optional_sufficient_and_suffixes() {
    let k61 = fixture("6.1");
    let lib = library(
        r#"
probe fork.any = kernel.function("_do_fork") !, kernel.function("kernel_clone") {}
probe alloc = kernel.function("__alloc_pages") ?, kernel.function("__folio_alloc") ? {}
probe gone = kernel.function("no_such_fn") ? {}
probe strict = kernel.function("vfs_read"), kernel.function("no_such_fn") {}
probe nested = fork.any {}
probe s.read = kernel.function("vfs_read") {}
probe s.write = kernel.function("vfs_write") {}
probe s.broken = kernel.function("no_such_fn") {}
probe two = kernel.function("vfs_read") { a = 1 }, { b = 2 }
probe epi += kernel.function("vfs_write") { c = 3 }
"#,
    );
    let resolver = Resolver::new(&lib, &k61);
    // _do_fork is gone on 6.1; `!` makes it optional, kernel_clone resolves.
    match resolver.resolve_alias("fork.any") {
        Outcome::Resolved(found) => {
            assert_eq!(found.alternatives, [r#"kernel.function("kernel_clone")"#]);
            assert_eq!(found.optional_misses.len(), 1);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(attach(&k61, &lib, "nested"), ["Kprobe kernel_clone"]);
    assert_eq!(attach(&k61, &lib, "alloc").len(), 2);
    assert!(matches!(
        resolver.resolve_alias("gone"),
        Outcome::OptionalMissing(_)
    ));
    // Used as a required point, an alias that attaches nowhere is an error.
    assert!(matches!(
        outcome(&k61, &lib, "gone"),
        Outcome::Unresolved(_)
    ));
    assert!(matches!(
        outcome(&k61, &lib, "gone?"),
        Outcome::OptionalMissing(_)
    ));
    assert!(matches!(
        resolver.resolve_alias("strict"),
        Outcome::Unresolved(_)
    ));
    // A wildcard resolves through the members that resolve.
    assert_eq!(attach(&k61, &lib, "s.*").len(), 2);
    assert!(matches!(
        outcome(&k61, &lib, "s.broken"),
        Outcome::Unresolved(_)
    ));
    // Alias suffix: `.return` is appended to the expansion.
    assert_eq!(attach(&k61, &lib, "s.read.return"), ["Kretprobe vfs_read"]);
    assert_eq!(attach(&k61, &lib, "two"), ["Kprobe vfs_read"]);
    assert_eq!(attach(&k61, &lib, "epi"), ["Kprobe vfs_write"]);
    // A `!` that resolves stops the list.
    let sufficient =
        library(r#"probe x = kernel.function("vfs_read") !, kernel.function("vfs_write") {}"#);
    assert_eq!(attach(&k61, &sufficient, "x"), ["Kprobe vfs_read"]);
    let cycle = library("probe a = b {}\nprobe b = a {}\n");
    assert!(matches!(reason(&k61, &cycle, "a"), Reason::TooDeep));
    // A provider's own longer name beats an alias suffix: SystemTap's
    // library has `timer.profile = timer.profile.tick !, perf...`, which
    // as a suffix would expand to itself again.
    let profile =
        library(r#"probe timer.profile = timer.profile.tick !, kernel.function("vfs_read") {}"#);
    let plain = library("probe other = begin {}");
    assert_eq!(
        attach(&k61, &profile, "timer.profile"),
        attach(&k61, &plain, "timer.profile.tick")
    );
    assert_ne!(attach(&k61, &profile, "timer.profile"), ["Kprobe vfs_read"]);
}

#[test]
fn matrix_over_three_fixture_kernels() {
    let kernels = [
        ("5.10", fixture("5.10")),
        ("6.1", fixture("6.1")),
        ("6.12", fixture("6.12")),
    ];
    let lib = library(
        r#"
probe vfs.read = kernel.function("vfs_read") {}
probe fork = kernel.function("_do_fork") !, kernel.function("kernel_clone") {}
probe alloc = kernel.function("__alloc_pages") {}
probe open.wrapper = kernel.function("__ia32_sys_openat") {}
probe maybe = kernel.function("no_such_fn") ? {}
probe ctx = kernel.trace("sched:sched_switch") {}
probe cache = kernel.trace("syscalls:sys_enter_cachestat") {}
probe clones = kernel.function("perf_iommu_stop") {}
probe inline = kernel.function("vfs_read").inline {}
"#,
    );
    let matrix = matrix_of(&kernels, &lib);
    assert!(matrix.has_unresolved());
    insta::assert_snapshot!("fixture_matrix_table", matrix.render_table());
    insta::assert_snapshot!("fixture_matrix_markdown", matrix.render_markdown());
    insta::assert_json_snapshot!("fixture_matrix_json", matrix.diff(0, 2));
}

/// The cached facts of every harvested kernel, when the env var is set.
fn cached_matrix() -> Option<Vec<(String, KernelFacts)>> {
    let Some(dir) = std::env::var_os("TAPMATRIX_RESOLVE_FACTS") else {
        eprintln!("skipped: set TAPMATRIX_RESOLVE_FACTS=/path/to/cache/facts to test on real BTF");
        return None;
    };
    let dir = PathBuf::from(dir);
    let mut kernels: Vec<(String, KernelFacts)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join(tapmatrix_facts::FACTS_FILE).exists())
        .map(|p| {
            let id = p.file_name().unwrap().to_string_lossy().into_owned();
            (id, KernelFacts::load(&p).unwrap())
        })
        .collect();
    kernels.sort_by(|a, b| tapmatrix_syntax::profile::version_cmp(&a.0, &b.0));
    Some(kernels)
}

#[test]
fn real_matrix_renamed_function_and_starter_tapsets() {
    let Some(kernels) = cached_matrix() else {
        return;
    };
    let tapsets = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tapsets");
    let sources = Sources {
        tapset_dirs: vec![tapsets],
        script: None,
        script_text: None,
    };
    let libs: Vec<Library> = kernels
        .iter()
        .map(|(_, facts)| sources.load(kernel_profile(facts)).unwrap().library)
        .collect();
    let inputs: Vec<KernelInput<'_>> = kernels
        .iter()
        .zip(&libs)
        .map(|((id, facts), library)| KernelInput { id, facts, library })
        .collect();
    let matrix = Matrix::build(&inputs, RowsOf::Aliases);
    assert!(!matrix.has_unresolved(), "{}", matrix.render_table());

    // __alloc_pages became __alloc_pages_noprof (6.10): same prototype.
    let lib = library(r#"probe alloc = kernel.function("__alloc_pages") {}"#);
    let matrix = matrix_of(&kernels, &lib);
    let column = |id: &str| matrix.kernels.iter().position(|k| k == id).unwrap();
    let cell = &matrix.rows[0].cells[column("6.12")];
    let Cell::Unresolved { misses, .. } = cell else {
        panic!("{cell:?}");
    };
    assert_eq!(
        misses[0].reason,
        Reason::Renamed {
            function: "__alloc_pages".to_owned(),
            to: "__alloc_pages_noprof".to_owned()
        }
    );
    // scheduler_tick became sched_tick (6.10): `void (void)` and a shorter
    // name that the old one contains (`schedule`) are no evidence...
    let tick = library(r#"probe tick = kernel.function("scheduler_tick") {}"#);
    let ticks = matrix_of(&kernels, &tick);
    let Cell::Unresolved {
        misses,
        suggestions,
    } = ticks.rows[0].cells.last().unwrap()
    else {
        panic!("{}", ticks.render_table());
    };
    assert_eq!(misses[0].reason.class(), "function_absent");
    assert!(
        suggestions
            .iter()
            .all(|s| !s.probe_point.contains("\"schedule\"")),
        "{suggestions:?}"
    );
    // ... but sched_tick appeared where scheduler_tick went.
    assert_eq!(
        suggestions[0].probe_point,
        r#"kernel.function("sched_tick")?"#
    );
    // 7.3 added a parameter: still suggested, as a near name.
    let last = matrix.rows[0].cells.last().unwrap();
    let Cell::Unresolved { suggestions, .. } = last else {
        panic!("{last:?}");
    };
    assert_eq!(
        suggestions[0].probe_point,
        r#"kernel.function("__alloc_pages_noprof")?"#
    );
    // Pasting each column's first suggestion makes it resolve everywhere
    // (5.10 gets __alloc_pages_nodemask).
    let mut fixes: Vec<String> = Vec::new();
    for cell in &matrix.rows[0].cells {
        if let Cell::Unresolved { suggestions, .. } = cell
            && !fixes.contains(&suggestions[0].probe_point)
        {
            fixes.push(suggestions[0].probe_point.clone());
        }
    }
    assert_eq!(fixes.len(), 2, "{fixes:?}");
    let fixed = library(&format!(
        "probe alloc = kernel.function(\"__alloc_pages\") ?, {} {{}}",
        fixes.join(", ")
    ));
    let matrix = matrix_of(&kernels, &fixed);
    assert!(
        matrix.rows[0]
            .cells
            .iter()
            .all(|c| matches!(c, Cell::Resolved { .. })),
        "{}",
        matrix.render_table()
    );
}

#[test]
fn real_btf_target_vars() {
    let Some(kernels) = cached_matrix() else {
        return;
    };
    for (id, facts) in &kernels {
        let render = |point: AttachPoint| -> Vec<String> {
            target_vars(facts, &point)
                .iter()
                .map(TargetVar::render)
                .collect()
        };
        let read = render(AttachPoint::new(AttachKind::Kretprobe, "vfs_read"));
        assert_eq!(
            read,
            [
                "$file:struct file*",
                "$buf:char*",
                "$count:size_t",
                "$pos:loff_t*",
                "$return:ssize_t"
            ],
            "{id}"
        );
        let switch = render(AttachPoint::new(
            AttachKind::Tracepoint,
            "sched:sched_switch",
        ));
        // 5.10's BTF has only the btf_trace_ typedef: argument types, no names.
        if id != "5.10" {
            assert!(
                switch.contains(&"$prev:struct task_struct*".to_owned()),
                "{id}: {switch:?}"
            );
        }
        assert!(
            switch.contains(&"$prev_pid:pid_t".to_owned()),
            "{id}: {switch:?}"
        );
    }
}

/// The first target expression in `probe begin { x = EXPR }`.
fn parse_target(expr: &str) -> tapmatrix_syntax::ast::Target {
    use tapmatrix_syntax::ast::{ExprKind, Item, StmtKind};
    let mut session = Session::new(Profile::default(), &[]);
    let id = session.add_source("t.stp", format!("probe begin {{ x = {expr} }}"));
    let parsed = session.parse(
        id,
        FileKind {
            privileged: false,
            user_file: true,
        },
    );
    let Item::Probe(probe) = &parsed.file.items[0] else {
        panic!("{parsed:?}")
    };
    let StmtKind::Expr(assign) = &probe.body.stmts[0].kind else {
        panic!()
    };
    let ExprKind::Assign { rhs, .. } = &assign.kind else {
        panic!()
    };
    let ExprKind::Target(target) = &rhs.kind else {
        panic!("{rhs:?}")
    };
    (**target).clone()
}

#[test]
fn tracepoint_field_and_btf_targets() {
    let facts = fixture("6.1");
    let at = AttachPoint::new(AttachKind::Tracepoint, "sched:sched_switch");
    let access = resolve_target(&facts, &at, &parse_target("$prev_pid")).unwrap();
    assert_eq!(
        access.base,
        TargetBase::Field {
            name: "prev_pid".to_owned(),
            offset: 24
        }
    );
    assert_eq!((access.var.size, access.var.signed), (Some(4), Some(true)));
    assert!(matches!(
        resolve_target(&facts, &at, &parse_target("$nosuch")),
        Err(TargetError::NoVariable { .. })
    ));
    // A syscall exit event's `ret` is `$return`, as at the syscall's return.
    let exit = AttachPoint::new(AttachKind::Tracepoint, "syscalls:sys_exit_openat");
    let ret = resolve_target(&facts, &exit, &parse_target("$return")).unwrap();
    assert!(
        matches!(&ret.base, TargetBase::Field { name, .. } if name == "ret"),
        "{ret:?}"
    );
    let enter = AttachPoint::new(AttachKind::Tracepoint, "syscalls:sys_enter_openat");
    assert!(resolve_target(&facts, &enter, &parse_target("$return")).is_err());
    let function = AttachPoint::new(AttachKind::Kprobe, "vfs_read");
    let file = resolve_target(&facts, &function, &parse_target("$file")).unwrap();
    assert_eq!(file.var.size, Some(8), "a pointer: {file:?}");
    let mut without_btf = facts;
    without_btf.btf = None;
    assert!(matches!(
        resolve_target(&without_btf, &function, &parse_target("$file")),
        Err(TargetError::NoBtf { .. })
    ));
}

#[test]
fn real_btf_target_access_paths() {
    let Some(kernels) = cached_matrix() else {
        return;
    };
    for (id, facts) in &kernels {
        let btf = facts.btf.as_ref().unwrap();
        let offset = |st: &str, member: &str| {
            let ty = btf.find(tapmatrix_facts::btf::Kind::Struct, st).unwrap();
            u64::from(btf.member(ty, member).unwrap().unwrap().bit_offset / 8)
        };
        let read = AttachPoint::new(AttachKind::Kretprobe, "vfs_read");
        let access = |expr: &str| resolve_target(facts, &read, &parse_target(expr));
        let ino = access("$file->f_inode->i_ino").unwrap();
        assert_eq!(
            ino.base,
            TargetBase::Param {
                name: "file".to_owned(),
                index: 0
            },
            "{id}"
        );
        assert_eq!(
            ino.loads,
            [offset("file", "f_inode"), offset("inode", "i_ino")],
            "{id}"
        );
        // i_ino became u64 in 7.1.
        let ino_type = if matches!(id.as_str(), "7.1" | "7.2" | "7.3") {
            "u64"
        } else {
            "long unsigned int"
        };
        assert_eq!(ino.var.c_type, ino_type, "{id}");
        assert_eq!((ino.var.size, ino.var.signed), (Some(8), Some(false)));
        // f_path is embedded: its dentry is read in one load.
        let dentry = access("$file->f_path->dentry").unwrap();
        assert_eq!(
            dentry.loads,
            [offset("file", "f_path") + offset("path", "dentry")],
            "{id}"
        );
        assert_eq!(dentry.var.c_type, "struct dentry*");
        assert_eq!(access("$count").unwrap().loads, Vec::<u64>::new());
        assert_eq!(access("$return").unwrap().var.c_type, "ssize_t");
        assert_eq!(access("$file$").unwrap().var.c_type, "string");
        let comm = resolve_target(
            facts,
            &read,
            &parse_target(r#"@cast(0, "struct task_struct")->comm"#),
        )
        .unwrap();
        assert_eq!(comm.address, Some(offset("task_struct", "comm")), "{id}");
        let pid = resolve_target(
            facts,
            &read,
            &parse_target(r#"@cast(0, "struct task_struct")->pid"#),
        )
        .unwrap();
        assert_eq!(pid.loads, [offset("task_struct", "pid")]);
        let second =
            resolve_target(facts, &read, &parse_target(r#"@cast(0, "ulong")[2]"#)).unwrap();
        assert_eq!(
            (second.loads.as_slice(), second.var.size),
            (&[16][..], Some(8)),
            "{id}"
        );
        assert!(matches!(
            access("$file->f_pos[1]"),
            Err(TargetError::BadAccess { .. })
        ));
        assert_eq!(
            (pid.var.c_type.as_str(), pid.var.signed),
            ("pid_t", Some(true))
        );
        assert!(matches!(
            access("$file->no_such_member"),
            Err(TargetError::NoMember { .. })
        ));
        match access("$nosuch") {
            Err(TargetError::NoVariable { available, .. }) => {
                assert_eq!(available, ["file", "buf", "count", "pos"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            access("$count->x"),
            Err(TargetError::BadAccess { .. })
        ));
        assert!(is_defined(facts, &read, &parse_target("$buf")));
        assert!(!is_defined(facts, &read, &parse_target("$buffer")));
    }
}

#[test]
fn real_target_classifications() {
    let Some(kernels) = cached_matrix() else {
        return;
    };
    let lib = library(
        r#"
probe ok = kernel.function("vfs_read") { a = $file->f_inode->i_ino; b = $count }
probe guarded = kernel.function("vfs_read") { a = @defined($nosuch) ? $nosuch : 0; if (@defined($gone)) b = $gone }
probe param = kernel.function("vfs_read") { a = $nosuch }
probe member = kernel.function("vfs_read") { a = $file->f_nosuch }
probe state = kernel.trace("sched:sched_switch") { s = @cast($prev, "struct task_struct")->state }
probe field = kernel.trace("sched:sched_switch") { s = $prev_nosuch }
"#,
    );
    let matrix = matrix_of(&kernels, &lib);
    let row = |name: &str| matrix.rows.iter().find(|r| r.probe == name).unwrap();
    let class = |name: &str, kernel: usize| row(name).cells[kernel].short();
    let last = matrix.kernels.len() - 1;
    assert_eq!(class("ok", last), "ok 1");
    assert_eq!(class("guarded", last), "ok 1");
    assert_eq!(class("param", last), "target_var_missing");
    assert_eq!(class("member", last), "member_missing");
    assert_eq!(class("field", last), "tracepoint_field_missing");
    // task_struct.state became __state in 5.14: fine on 5.10, gone after.
    // (5.10's BTF does not name sched_switch's arguments: $prev cannot be
    // checked there, which is no evidence either way.)
    assert_eq!(
        class("state", last),
        "member_missing",
        "{}",
        matrix.render_table()
    );
    assert_eq!(matrix.kernels[0], "5.10");
    assert_eq!(class("state", 0), "ok 1");
}

/// The four committed fixture kernels, oldest first.
fn fixture_kernels() -> Vec<(&'static str, KernelFacts)> {
    ["5.10", "6.1", "6.12", "7.3"]
        .into_iter()
        .map(|id| (id, fixture(id)))
        .collect()
}

#[test]
fn providers_on_the_oldest_and_newest_fixtures() {
    let lib = Library::default();
    for id in ["5.10", "7.3"] {
        let facts = fixture(id);
        assert_eq!(
            attach(&facts, &lib, r#"kprobe.function("vfs_read")"#),
            ["Kprobe vfs_read"],
            "{id}"
        );
        assert_eq!(
            attach(&facts, &lib, r#"kernel.function("vfs_write").return"#),
            ["Kretprobe vfs_write"],
            "{id}"
        );
        assert_eq!(
            attach(&facts, &lib, r#"kernel.trace("sched_switch")"#),
            ["Tracepoint sched:sched_switch"],
            "{id}"
        );
        // Both configs have CONFIG_PERF_EVENTS=y.
        assert_eq!(
            attach(&facts, &lib, "perf.type(1).config(0).sample(100)"),
            ["Perf perf.type(1).config(0).sample(100)"],
            "{id}"
        );
        assert!(
            matches!(
                reason(&facts, &lib, r#"kernel.function("vfs_read").inline"#),
                Reason::NeedsDwarf { .. }
            ),
            "{id}"
        );
    }
}

#[test]
fn module_functions_from_module_symbols() {
    // The harvests loaded no module: add one module's symbols as kallsyms
    // and available_filter_functions list them.
    let mut facts = fixture("6.1");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../facts/fixtures/linux-6.1");
    let mut functions =
        std::fs::read_to_string(dir.join("tracing/available_filter_functions")).unwrap();
    functions.push_str("ext4_file_read_iter [ext4]\next4_file_write_iter [ext4]\n");
    facts.functions = Some(tapmatrix_facts::FilterFunctions::parse(&functions).unwrap());
    let symbols = facts.kallsyms.as_mut().unwrap();
    for name in [
        "ext4_file_read_iter",
        "ext4_file_write_iter",
        "ext4_notrace",
    ] {
        symbols.modules.push(tapmatrix_facts::ModuleSymbol {
            name: name.to_owned(),
            module: "ext4".to_owned(),
            local: true,
        });
    }
    let lib = Library::default();
    match outcome(
        &facts,
        &lib,
        r#"module("ext4").function("ext4_file_read_iter").return"#,
    ) {
        Outcome::Resolved(found) => {
            assert_eq!(found.attach.len(), 1);
            assert_eq!(found.attach[0].module.as_deref(), Some("ext4"));
            assert_eq!(
                found.attach[0].probe_point(),
                r#"module("ext4").function("ext4_file_read_iter").return"#
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        attach(&facts, &lib, r#"module("ext*").function("ext4_file_*")"#).len(),
        2
    );
    assert_eq!(
        attach(
            &facts,
            &lib,
            r#"kprobe.module("ext4").function("ext4_file_read_iter")"#
        ),
        ["Kprobe ext4_file_read_iter"]
    );
    assert_eq!(
        reason(&facts, &lib, r#"module("ext4").function("ext4_notrace")"#),
        Reason::FunctionAbsent {
            function: "ext4_notrace".to_owned()
        }
    );
    assert!(matches!(
        reason(
            &facts,
            &lib,
            r#"module("ext4").statement("ext4_file_read_iter@fs/ext4/file.c:1")"#
        ),
        Reason::NeedsDwarf { .. }
    ));
    assert!(matches!(
        reason(&facts, &lib, r#"module("ext4").function("zz*")"#),
        Reason::NothingMatched { .. }
    ));
}

#[test]
fn every_classification_on_the_fixtures() {
    let kernels = fixture_kernels();
    let lib = library(
        r#"
probe alloc = kernel.function("__alloc_pages") {}
probe tick = kernel.function("scheduler_tick") {}
probe inlined = kernel.function("path_openat") {}
probe clones = kernel.function("perf_iommu_stop") {}
probe blacklisted = kernel.function("do_int3") {}
probe param = kernel.function("vfs_read") { x = $nosuch }
probe retyped = kernel.function("vfs_read") { x = $count->x }
probe member = kernel.function("vfs_read") { x = @cast(0, "struct task_struct")->state }
probe field = kernel.trace("timer:timer_start") { x = $bucket_expiry }
probe event = kernel.trace("io_uring:io_uring_submit_sqe") {}
probe inline = kernel.function("vfs_read").inline {}
probe line = kernel.function("vfs_read@fs/read_write.c:450") {}
probe statement = kernel.statement("vfs_read@fs/read_write.c:450") {}
"#,
    );
    let matrix = matrix_of(&kernels, &lib);
    let classes: Vec<(String, Vec<String>)> = matrix
        .rows
        .iter()
        .map(|row| {
            (
                row.probe.clone(),
                row.cells.iter().map(Cell::short).collect(),
            )
        })
        .collect();
    let expected = [
        // __alloc_pages_nodemask (5.10) and __alloc_pages_noprof (6.12)
        // have the prototype __alloc_pages has on 6.1; 7.3 added a parameter.
        ("alloc", ["renamed", "ok 1", "renamed", "function_absent"]),
        (
            "tick",
            ["ok 1", "ok 1", "function_absent", "function_absent"],
        ),
        ("inlined", ["symbol_only"; 4]),
        ("clones", ["clones_only"; 4]),
        ("blacklisted", ["blacklisted"; 4]),
        ("param", ["target_var_missing"; 4]),
        ("retyped", ["target_retyped"; 4]),
        // task_struct.state became __state in 5.14.
        (
            "member",
            ["ok 1", "member_missing", "member_missing", "member_missing"],
        ),
        // timer_start gained `bucket_expiry` in 6.2: a script written for
        // it fails on 6.1. (5.10's BTF does not name the event's
        // arguments: a name not in the format may be one, no evidence.)
        (
            "field",
            ["ok 1", "tracepoint_field_missing", "ok 1", "ok 1"],
        ),
        (
            "event",
            ["ok 1", "ok 1", "tracepoint_absent", "tracepoint_absent"],
        ),
        ("inline", ["needs_dwarf"; 4]),
        ("line", ["needs_dwarf"; 4]),
        ("statement", ["needs_dwarf"; 4]),
    ];
    let expected: Vec<(String, Vec<String>)> = expected
        .iter()
        .map(|(probe, cells)| {
            (
                (*probe).to_owned(),
                cells.iter().map(|c| (*c).to_owned()).collect(),
            )
        })
        .collect();
    assert_eq!(classes, expected, "{}", matrix.render_table());
    let cell = |probe: &str, kernel: usize| {
        matrix
            .rows
            .iter()
            .find(|r| r.probe == probe)
            .map(|r| r.cells[kernel].clone())
            .unwrap()
    };
    let Cell::Unresolved { misses, .. } = cell("field", 1) else {
        panic!()
    };
    assert_eq!(
        misses[0].reason,
        Reason::TracepointFieldMissing {
            expr: "$bucket_expiry".to_owned(),
            event: "timer:timer_start".to_owned(),
            available: ["timer", "expires", "flags", "function", "now"]
                .map(str::to_owned)
                .to_vec(),
        }
    );
    // The event that replaced io_uring_submit_sqe carries its fields.
    let Cell::Unresolved { suggestions, .. } = cell("event", 2) else {
        panic!()
    };
    assert_eq!(
        suggestions[0].probe_point,
        r#"kernel.trace("io_uring:io_uring_submit_req")?"#
    );
    // Debuginfo is not needed to probe the function by name.
    let Cell::Unresolved { suggestions, .. } = cell("line", 0) else {
        panic!()
    };
    assert_eq!(
        suggestions[0].probe_point,
        r#"kernel.function("vfs_read")?"#
    );
}

/// Pastes, into `source`, each unresolved cell's first suggestion as an
/// alternative after the point it replaces, which becomes optional:
/// `P` becomes `P?, S1, S2`.
fn paste_first_suggestions(source: &str, matrix: &Matrix) -> String {
    let mut fixes: Vec<(String, Vec<String>)> = Vec::new();
    for row in &matrix.rows {
        for cell in &row.cells {
            let Cell::Unresolved {
                misses,
                suggestions,
            } = cell
            else {
                continue;
            };
            let suggestion = suggestions.first().expect("a suggestion");
            let point = misses[0].point.clone();
            match fixes.iter_mut().find(|(p, _)| *p == point) {
                Some((_, added)) if added.contains(&suggestion.probe_point) => {}
                Some((_, added)) => added.push(suggestion.probe_point.clone()),
                None => fixes.push((point, vec![suggestion.probe_point.clone()])),
            }
        }
    }
    let mut pasted = source.to_owned();
    for (point, added) in fixes {
        assert!(pasted.contains(&point), "{point} not in {pasted}");
        pasted = pasted.replacen(&point, &format!("{point}?, {}", added.join(", ")), 1);
    }
    pasted
}

#[test]
fn an_alias_gone_on_newer_kernels_resolves_with_its_suggestion_pasted() {
    let kernels = fixture_kernels();
    // scheduler_tick became sched_tick in 6.10: `void (void)` is no
    // evidence, but sched_tick appeared where scheduler_tick went.
    let source = "probe tick = kernel.function(\"scheduler_tick\") { }\n";
    let matrix = matrix_of(&kernels, &library(source));
    let Cell::Unresolved {
        misses,
        suggestions,
    } = &matrix.rows[0].cells[2]
    else {
        panic!("{}", matrix.render_table());
    };
    assert_eq!(
        misses[0].reason,
        Reason::FunctionAbsent {
            function: "scheduler_tick".to_owned()
        }
    );
    assert_eq!(
        (suggestions[0].probe_point.as_str(), suggestions[0].strength),
        (r#"kernel.function("sched_tick")?"#, 2)
    );
    let pasted = paste_first_suggestions(source, &matrix);
    assert_eq!(
        pasted,
        "probe tick = kernel.function(\"scheduler_tick\")?, kernel.function(\"sched_tick\")? { }\n"
    );
    let fixed = matrix_of(&kernels, &library(&pasted));
    assert!(
        fixed.rows[0]
            .cells
            .iter()
            .all(|c| matches!(c, Cell::Resolved { .. })),
        "{}",
        fixed.render_table()
    );

    // __alloc_pages: __alloc_pages_nodemask before 5.13, __alloc_pages_noprof
    // since 6.10 (the same prototype in 6.12; 7.3 added a parameter).
    let source = "probe alloc = kernel.function(\"__alloc_pages\").return { }\n";
    let matrix = matrix_of(&kernels, &library(source));
    let Cell::Unresolved { misses, .. } = &matrix.rows[0].cells[2] else {
        panic!("{}", matrix.render_table());
    };
    assert_eq!(
        misses[0].reason,
        Reason::Renamed {
            function: "__alloc_pages".to_owned(),
            to: "__alloc_pages_noprof".to_owned()
        }
    );
    let pasted = paste_first_suggestions(source, &matrix);
    assert_eq!(
        pasted,
        "probe alloc = kernel.function(\"__alloc_pages\").return?, \
         kernel.function(\"__alloc_pages_nodemask\").return?, \
         kernel.function(\"__alloc_pages_noprof\").return? { }\n"
    );
    let fixed = matrix_of(&kernels, &library(&pasted));
    assert!(
        fixed.rows[0]
            .cells
            .iter()
            .all(|c| matches!(c, Cell::Resolved { .. })),
        "{}",
        fixed.render_table()
    );
}

#[test]
fn a_return_points_entry_is_the_function_or_the_syscalls_entry() {
    let entry = |kind, target: &str| {
        AttachPoint::new(kind, target)
            .entry()
            .map(|at| at.probe_point())
    };
    assert_eq!(
        entry(AttachKind::Kretprobe, "vfs_read").as_deref(),
        Some("kernel.function(\"vfs_read\")")
    );
    assert_eq!(
        entry(AttachKind::Tracepoint, "syscalls:sys_exit_read").as_deref(),
        Some("kernel.trace(\"syscalls:sys_enter_read\")")
    );
    assert_eq!(
        entry(AttachKind::Tracepoint, "raw_syscalls:sys_exit").as_deref(),
        Some("kernel.trace(\"raw_syscalls:sys_enter\")")
    );
    assert_eq!(entry(AttachKind::Tracepoint, "sched:sched_switch"), None);
    assert_eq!(entry(AttachKind::Kprobe, "vfs_read"), None);
}
