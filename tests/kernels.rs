//! The whole default matrix, for real: every kernel of `kernels/matrix.lock`
//! fetched from Debian, booted in QEMU and harvested, then its facts checked
//! against what each of these kernels is known to have.

// An integration test binary: a panic is how it reports a failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeSet;

use std::path::Path;

use tapmatrix_e2e::{fetched_kernels, harvested_kernels, test_cache};
use tapmatrix_facts::{FactsDiff, KernelFacts};
use tapmatrix_harvest::{Harvested, harvest_kernels};
use tapmatrix_kernels::{Cache, KernelId};
use tapmatrix_vm::VmOptions;

/// The default matrix, oldest first.
const MATRIX: [&str; 7] = ["5.10", "6.1", "6.12", "7.0", "7.1", "7.2", "7.3"];

fn facts(id: &str) -> KernelFacts {
    let id = KernelId::try_from(id.to_owned()).unwrap();
    KernelFacts::load(&test_cache().facts_dir(&id)).unwrap()
}

#[test]
fn the_default_matrix_harvests_and_its_facts_are_real() {
    let first = harvested_kernels(&MATRIX);
    assert_eq!(
        first.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        MATRIX
    );

    for id in MATRIX {
        let facts = facts(id);
        let release = facts.release.as_deref().unwrap();
        let series = release.split('-').next().unwrap();
        assert!(
            series.starts_with(&format!("{id}.")),
            "kernel {id} reports release {release}"
        );
        assert!(
            facts.attachable_count().unwrap() > 20_000,
            "{id}: attachable functions"
        );
        assert!(facts.is_attachable("vfs_read"), "{id}: vfs_read");
        let switch = facts.tracepoint("sched", "sched_switch").unwrap();
        for field in [
            "prev_comm",
            "prev_pid",
            "prev_state",
            "next_comm",
            "next_pid",
        ] {
            assert!(switch.field(field).is_some(), "{id}: sched_switch.{field}");
        }
        let openat = facts.syscall("openat").unwrap();
        assert!(openat.has_exit, "{id}: sys_exit_openat");
        let args: Vec<&str> = openat.args.iter().map(|arg| arg.name.as_str()).collect();
        assert_eq!(args[..4], ["dfd", "filename", "flags", "mode"], "{id}");
        // From 7.0 the syscall events also carry the user string itself.
        let with_string = id.starts_with("7.");
        assert_eq!(
            args[4..] == ["__filename_val"],
            with_string,
            "{id}: {args:?}"
        );

        let btf = facts.btf.as_ref().unwrap();
        assert!(btf.type_count() > 50_000, "{id}: BTF types");
        let vfs_read = btf.function("vfs_read").unwrap().unwrap();
        let params: Vec<String> = vfs_read
            .proto
            .params()
            .map(|param| param.unwrap().name.to_owned())
            .collect();
        assert_eq!(params, ["file", "buf", "count", "pos"], "{id}: vfs_read");

        let features = facts.features.as_ref().unwrap();
        assert!(features.kprobe_events, "{id}: kprobe events");
        // fprobe events and BTF argument names came with 6.x; 5.10 has neither.
        let new = id != "5.10" && id != "6.1";
        assert_eq!(features.fprobe, new, "{id}: fprobe events");
        assert_eq!(features.btf_args, new, "{id}: BTF args");
    }

    // Harvested facts are reused: no kernel boots the second time.
    let second = harvested_kernels(&MATRIX);
    assert!(
        second
            .iter()
            .all(|(_, harvested)| *harvested == Harvested::Cached),
        "{second:?}"
    );
}

#[test]
fn five_years_of_kernels_differ_in_real_ways() {
    harvested_kernels(&["5.10", "7.3"]);
    let diff = FactsDiff::between(&facts("5.10"), &facts("7.3"));
    // Syscalls added since 5.10 (cachestat: 6.5, fchmodat2: 6.6,
    // map_shadow_stack: 6.6, mseal: 6.10), none removed that 7.3 lacks.
    let added: BTreeSet<&str> = diff.syscalls.added.iter().map(String::as_str).collect();
    for syscall in ["cachestat", "fchmodat2", "map_shadow_stack", "mseal"] {
        assert!(added.contains(syscall), "{syscall} added: {added:?}");
    }
    // Functions and tracepoints come and go in both directions.
    assert!(diff.functions.added.len() > 1000);
    assert!(diff.functions.removed.len() > 1000);
    assert!(!diff.tracepoints.added.is_empty());
    assert!(!diff.tracepoints.removed.is_empty());
    assert!(!diff.prototypes.is_empty());
}

/// Links (or, across file systems, copies) every file of `from` into `to`.
fn link_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            link_tree(&entry.path(), &target);
        } else if std::fs::hard_link(entry.path(), &target).is_err() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn all_seven_kernels_harvest_at_once_on_an_empty_cache() {
    // The downloads are the test cache's (linked, not fetched again);
    // everything the harvest writes (unpacked vmlinux, images, boots,
    // facts) starts empty, and all kernels boot at once: the first run of
    // a new user. One kernel has what an interrupted harvest leaves.
    let fetched = fetched_kernels(&MATRIX);
    let scratch = tempfile::tempdir().unwrap();
    let cache = Cache::open(scratch.path()).unwrap();
    for kernel in &fetched {
        link_tree(
            &test_cache().kernel_dir(&kernel.id),
            &cache.kernel_dir(&kernel.id),
        );
    }
    let id = KernelId::try_from("6.1".to_owned()).unwrap();
    let interrupted = cache.boots_dir(&id).join("harvest");
    std::fs::create_dir_all(&interrupted).unwrap();
    std::fs::write(interrupted.join("console.log"), "SeaBIOS").unwrap();
    std::fs::write(interrupted.join("data.bin"), "").unwrap();

    let kernels: Vec<_> = fetched
        .iter()
        .map(|kernel| cache.fetched(&kernel.id).unwrap())
        .collect();
    let guard = cache.share().unwrap();
    let options = VmOptions::new(cache.root());
    // At least two at once, as a user on any machine runs it.
    let jobs = tapmatrix_vm::default_jobs().max(2);
    let harvests = harvest_kernels(&guard, &kernels, &options, jobs, false);
    for harvest in &harvests {
        match &harvest.outcome {
            Ok(Harvested::Booted { .. }) => {}
            other => panic!("kernel {}: {other:?}", harvest.id),
        }
        assert!(cache.harvested(&harvest.id), "{}", harvest.id);
    }
    assert!(interrupted.join("manifest.json").is_file());
    let images = std::fs::read_dir(cache.root().join("initramfs"))
        .unwrap()
        .count();
    // The base every image shares and the harvest's (the base with the
    // job appended), one for all kernels.
    assert_eq!(
        images, 2,
        "one shared base and one harvest image, no temporary files left"
    );
    let work_left = std::fs::read_dir(cache.root().join("tmp"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(work_left, 0);
}

/// Module probes resolve offline, from the `.ko` files fetched with each
/// kernel: ext4's and xfs's file operations on every kernel whose suite
/// has its modules (with their parameters from the module's BTF where the
/// module has BTF: not 5.10's), and a reason on the two that do not.
#[test]
fn module_probes_resolve_offline_on_the_whole_matrix() {
    use tapmatrix_resolve::{Library, Outcome, ProbePoint, Reason, Resolver, target_vars};

    harvested_kernels(&MATRIX);
    let library = Library::default();
    for id in MATRIX {
        let facts = facts(id);
        let resolve = |text: &str| {
            Resolver::new(&library, &facts).resolve_point(&ProbePoint::parse(text).unwrap())
        };
        for (module, function, param) in [
            ("ext4", "ext4_file_write_iter", "iocb"),
            ("xfs", "xfs_file_read_iter", "iocb"),
        ] {
            let point = format!("module(\"{module}\").function(\"{function}\").return");
            match (id, resolve(&point)) {
                ("7.0" | "7.1", Outcome::Unresolved(misses)) => {
                    let reason = &misses[0].reason;
                    assert_eq!(reason.class(), "facts_missing", "{id}: {reason}");
                    assert!(
                        reason.to_string().contains(&format!("linux-modules-{id}.")),
                        "{id}: {reason}"
                    );
                }
                (_, Outcome::Resolved(found)) => {
                    assert_eq!(found.attach.len(), 1, "{id}: {point}");
                    let attach = &found.attach[0];
                    assert_eq!(attach.module.as_deref(), Some(module), "{id}");
                    assert_eq!(attach.target, function, "{id}");
                    let vars: Vec<String> = target_vars(&facts, attach)
                        .into_iter()
                        .map(|var| var.name)
                        .collect();
                    if id == "5.10" {
                        assert!(vars.is_empty(), "{id}: 5.10's modules have no BTF");
                    } else {
                        assert!(vars.iter().any(|v| v == param), "{id}: {function} {vars:?}");
                        assert!(vars.iter().any(|v| v == "return"), "{id}: {vars:?}");
                    }
                }
                (_, other) => panic!("{id}: {point}: {other:?}"),
            }
        }
        if matches!(id, "7.0" | "7.1") {
            continue;
        }
        // Wildcards over modules and functions.
        let Outcome::Resolved(found) = resolve("module(\"ext*\").function(\"ext4_file_*\")") else {
            panic!("{id}: ext4_file_* in ext*");
        };
        assert!(found.attach.len() >= 5, "{id}: {:?}", found.attach);
        // Not built: a module no kernel has, and one built into the kernel.
        let miss = |text: &str| match resolve(text) {
            Outcome::Unresolved(misses) => misses[0].reason.clone(),
            other => panic!("{id}: {text} resolved: {other:?}"),
        };
        assert!(
            matches!(
                miss("module(\"nosuchmod\").function(\"f\")"),
                Reason::ModuleNotBuilt { .. }
            ),
            "{id}"
        );
        assert!(
            matches!(
                miss("module(\"ext4\").function(\"no_such_function_here\")"),
                Reason::FunctionAbsent { .. }
            ),
            "{id}"
        );
        // Init code is freed after loading: not traceable.
        assert!(
            matches!(
                miss("module(\"ext4\").function(\"ext4_init_fs\")"),
                Reason::SymbolOnly { .. }
            ),
            "{id}"
        );
        let summary = tapmatrix_facts::FactsSummary::of(&facts);
        let (built, builtin) = summary.modules.unwrap();
        assert!(
            built > 3000 && builtin > 100,
            "{id}: {built} modules, {builtin} built in"
        );
    }
}

/// SystemTap's own tapset library (Debian's `systemtap-common`) on the
/// matrix: its module probes (nfs, sunrpc, scsi...) are resolved from the
/// modules' facts, each miss classified by its cause (`function_absent`,
/// `module_not_built`...); "no module facts" remains only on the kernels
/// whose suite has no modules package.
#[test]
fn systemtap_module_probes_are_classified_by_their_real_cause() {
    use tapmatrix_resolve::{Outcome, Reason, Resolver, Sources, kernel_profile};

    harvested_kernels(&MATRIX);
    let tapsets = {
        let cache = test_cache();
        let guard = cache.lock().unwrap();
        tapmatrix_kernels::fetch_package(
            &guard,
            "systemtap-common",
            &tapmatrix_kernels::HostApt::default(),
        )
        .unwrap()
        .join("usr/share/systemtap/tapset")
    };
    let sources = Sources {
        tapset_dirs: vec![tapsets],
        script: None,
        script_text: None,
    };
    for id in MATRIX {
        let facts = facts(id);
        let library = sources.load(kernel_profile(&facts)).unwrap().library;
        let resolver = Resolver::new(&library, &facts);
        let mut names: Vec<String> = library
            .aliases()
            .iter()
            .filter(|alias| {
                alias
                    .points
                    .iter()
                    .any(|p| p.to_string().starts_with("module("))
            })
            .map(|alias| alias.name.to_string())
            .collect();
        names.sort();
        names.dedup();
        assert!(
            names.len() > 50,
            "{id}: {} aliases on module probes",
            names.len()
        );
        let (mut resolved, mut no_facts) = (0, Vec::new());
        for name in &names {
            match resolver.resolve_alias(name) {
                Outcome::Resolved(_) => resolved += 1,
                Outcome::Unresolved(misses) | Outcome::OptionalMissing(misses) => {
                    no_facts.extend(misses.into_iter().filter(|miss| {
                        matches!(&miss.reason, Reason::FactsMissing { what } if what.contains("module facts"))
                    }));
                }
            }
        }
        if matches!(id, "7.0" | "7.1") {
            // Aliases with a kernel.function alternative still resolve.
            assert!(!no_facts.is_empty(), "{id}");
        } else {
            assert!(no_facts.is_empty(), "{id}: {no_facts:?}");
            assert!(
                resolved > names.len() / 2,
                "{id}: {resolved} of {} resolved",
                names.len()
            );
        }
    }
}
