//! Parse throughput over a large generated tapset-like input (about
//! 120,000 lines): prints MB/s and the time for the whole input.

use std::time::Instant;

use criterion::{Criterion, Throughput};
use tapmatrix_syntax::{FileKind, Profile, Session};

/// One block of tapset-like code (about 60 lines) with every common
/// construct: aliases with conditionals, macros, embedded C, functions,
/// globals, foreach, printf, target symbols.
fn chunk(i: usize) -> String {
    format!(
        r#"# sys_read{i} tapset
global reads{i}[1024], total{i} = 0
@define __gate{i}(name) %( %( arch == "x86_64" %? @name %: 0 %) %)

probe syscall.read{i} = dw_syscall.read{i} !, nd_syscall.read{i} ? {{ }}
probe dw_syscall.read{i} = kernel.function("sys_read{i}").call ?,
        kernel.function("ksys_read{i}").call ?
{{
%( kernel_v >= "2.6.30" %?
	@__syscall_gate(@const("__NR_read"))
%)
	name = "read{i}"
	fd = __int32($fd)
	buf_uaddr = $buf
	count = __ulong($count)
	argstr = sprintf("%d, %p, %u", fd, buf_uaddr, count)
}}
probe dw_syscall.read{i}.return = kernel.function("sys_read{i}").return ?
{{
	name = "read{i}"
	retstr = return_str(1, $return)
}}

function __read_helper{i}:long (task:long, flags:long)
{{
	if (flags & 0x{i:x} || task == 0)
		return -1
	else if (@defined($task->mm))
		return @cast(task, "struct task_struct", "kernel")->mm->total_vm
	for (i = 0; i < 10; i++) {{
		total{i} += i * 2 + (i << 1) % 7
	}}
	foreach ([pid, comm] in reads{i}- limit 10)
		printf("%5d %-16s %d\n", pid, comm, reads{i}[pid, comm])
	return total{i} ? total{i} : @count(reads{i}[0, ""])
}}

function __read_c{i}:long (addr:long) %{{ /* pure */
	STAP_RETVALUE = kread((long *) (uintptr_t) STAP_ARG_addr);
	CATCH_DEREF_FAULT();
%}}

probe kernel.function("vfs_read{i}").return if (total{i} > 0)
{{
	reads{i}[pid(), execname()] <<< $return
	if ($return < 0 && !($return in reads{i}))
		delete reads{i}[pid(), execname()]
	s = execname() . ":" . sprint(pid())
	if (s =~ "^ksoftirqd" || s !~ "x") next
	try {{ x = $file->f_path->dentry->d_name->name$ }} catch (e) {{ println(e) }}
	while (count-- > 0) {{ if (count == 5) break; continue }}
}}
"#
    )
}

fn input(lines: usize) -> String {
    let mut text = String::from(
        "@define __syscall_gate(syscall_nr) %( if (_stp_syscall_nr() != @syscall_nr) next %)\n",
    );
    let mut i = 0;
    while text.lines().count() < lines {
        for _ in 0..200 {
            text.push_str(&chunk(i));
            i += 1;
        }
    }
    text
}

fn parse(text: &str) -> tapmatrix_syntax::File {
    let mut session = Session::new(Profile::default(), &[]);
    let file = session.add_source("bench.stp", text);
    let parsed = session.parse(
        file,
        FileKind {
            privileged: true,
            user_file: false,
        },
    );
    assert!(
        parsed.diagnostics.is_empty(),
        "{:?}",
        parsed.diagnostics.first()
    );
    parsed.file
}

/// SystemTap's tapset directory: `$TAPMATRIX_SYSTEMTAP_TAPSETS` (`cargo
/// xtask systemtap` prints the newest one the private apt state reaches),
/// else the one the `real_tapsets` test fetched into the target directory.
fn tapset_dir() -> std::path::PathBuf {
    std::env::var_os("TAPMATRIX_SYSTEMTAP_TAPSETS").map_or_else(
        || {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../target/tmp/systemtap-common/root/usr/share/systemtap/tapset")
        },
        std::path::PathBuf::from,
    )
}

/// Parses SystemTap's own tapsets (x86_64, kernel 6.1.0) from
/// [`tapset_dir`]: macro files, then every script, as `tapmatrix parse`
/// does. Returns the number of files, lines and bytes, the best time of
/// five (ASTs dropped after timing), and the process's peak memory in MB
/// while the first run's ASTs were alive (the high-water mark is reset
/// before it) with the resident memory before it.
fn real_tapsets() -> Option<(usize, usize, usize, std::time::Duration, f64, f64)> {
    let dir = tapset_dir();
    let profile = Profile::default();
    let files = tapmatrix_syntax::tapset_files(&dir, &profile).ok()?;
    let texts: Vec<(String, String)> = files
        .macros
        .iter()
        .chain(&files.scripts)
        .filter_map(|p| Some((p.display().to_string(), std::fs::read_to_string(p).ok()?)))
        .collect();
    let lines = texts.iter().map(|(_, t)| t.lines().count()).sum();
    let bytes = texts.iter().map(|(_, t)| t.len()).sum();
    let mut best = None;
    let (mut peak, mut before) = (0.0, 0.0);
    for run in 0..5 {
        if run == 0 {
            before = status_mb("VmRSS");
            // Resets the high-water mark (VmHWM) to the current resident size.
            let _ = std::fs::write("/proc/self/clear_refs", "5");
        }
        let mut session = Session::new(profile.clone(), &[]);
        let ids: Vec<_> = texts
            .iter()
            .map(|(n, t)| session.add_source(n.as_str(), t.as_str()))
            .collect();
        let start = Instant::now();
        let (macro_ids, script_ids) = ids.split_at(files.macros.len());
        for id in macro_ids {
            assert!(session.define_library_macros(*id).is_empty());
        }
        let kind = FileKind {
            privileged: true,
            user_file: false,
        };
        let asts: Vec<_> = script_ids
            .iter()
            .map(|id| session.parse(*id, kind))
            .collect();
        let elapsed = start.elapsed();
        assert!(asts.iter().all(|p| p.diagnostics.is_empty()));
        if run == 0 {
            peak = status_mb("VmHWM");
        }
        drop(asts);
        best = Some(best.map_or(elapsed, |b: std::time::Duration| b.min(elapsed)));
    }
    Some((texts.len(), lines, bytes, best?, peak, before))
}

/// A line of `/proc/self/status` in MB (`VmHWM`, `VmRSS`; 0 where unknown).
fn status_mb(field: &str) -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn main() {
    // SystemTap's tapsets first, so that their peak memory is not hidden
    // under what the generated input's parses left to the allocator.
    let real = real_tapsets();
    let text = input(120_000);
    let lines = text.lines().count();
    let mb = text.len() as f64 / 1e6;

    // A plain measurement first, so the figure is printed even without
    // criterion's report: the best of five runs (dropping the AST is not
    // timed, as with criterion's `iter_with_large_drop` below).
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            let ast = std::hint::black_box(parse(&text));
            let elapsed = start.elapsed();
            drop(ast);
            elapsed
        })
        .min()
        .unwrap_or_default();
    println!(
        "generated input: {lines} lines, {mb:.2} MB parsed in {:.1} ms: {:.1} MB/s",
        best.as_secs_f64() * 1e3,
        mb / best.as_secs_f64()
    );
    match real {
        Some((files, lines, bytes, time, peak, before)) => println!(
            "SystemTap's tapsets ({}): {files} files, {lines} lines, {:.2} MB parsed in {:.1} ms: {:.1} MB/s; \
             peak memory {peak:.0} MB ({before:.0} MB before)",
            tapset_dir().display(),
            bytes as f64 / 1e6,
            time.as_secs_f64() * 1e3,
            bytes as f64 / 1e6 / time.as_secs_f64()
        ),
        None => println!(
            "SystemTap tapsets: not fetched (set TAPMATRIX_SYSTEMTAP_TAPSETS=$(cargo xtask systemtap), \
             or run `cargo test -p tapmatrix-syntax --test real_tapsets`)"
        ),
    }

    let mut criterion = Criterion::default().sample_size(10).configure_from_args();
    let mut group = criterion.benchmark_group("parse");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function(format!("{lines}_lines"), |b| {
        b.iter_with_large_drop(|| parse(&text))
    });
    group.finish();
    criterion.final_summary();
}
