//! Scripts that must elaborate, and what they become.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;
use tapmatrix_elaborate::FetchRequest;
use tapmatrix_ir::{Builtin, Expr, GlobalType, ScalarType, Stmt};

#[test]
fn types_flow_through_function_parameters_and_returns() {
    let e = run(
        "function twice(x) { return x . x }\nfunction len_of(s) { return strlen(s) }\nprobe begin { y = twice(\"ab\"); println(len_of(y)) }\n",
    )
    .unwrap();
    let names: Vec<&str> = e
        .program
        .functions
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["twice", "len_of"]);
    let twice = &e.program.functions[0];
    assert_eq!(twice.params, [ScalarType::String]);
    assert_eq!(twice.ret, Some(ScalarType::String));
    let len_of = &e.program.functions[1];
    assert_eq!(len_of.params, [ScalarType::String]);
    assert_eq!(len_of.ret, Some(ScalarType::Long));
    assert_eq!(e.program.probes[0].locals, [ScalarType::String]);
}

#[test]
fn types_flow_backwards_from_use_to_declaration() {
    // `v` gets its type only from the later comparison with a string.
    let e = run(
        "global v\nfunction set(x) { v = x }\nprobe begin { set(\"a\") }\nprobe end { if (v == \"a\") println(\"yes\") }\n",
    )
    .unwrap();
    assert_eq!(
        e.program.globals[0].ty,
        GlobalType::Scalar {
            ty: ScalarType::String
        }
    );
    assert_eq!(e.program.functions[0].params, [ScalarType::String]);
    assert_eq!(e.program.functions[0].ret, None);
    let text = format!("{:?}", e.program.probes[1].body);
    assert!(text.contains("CompareStr"), "{text}");
}

#[test]
fn arrays_statistics_and_foreach() {
    let e = run(r#"global counts[100], lat, sizes%
probe begin {
  counts["a", 1] = 2
  counts["b", 2]++
  lat <<< 5
  sizes[1] <<< 10
  foreach ([name, n] in counts- limit 5) printf("%s %d %d\n", name, n, counts[name, n])
  foreach (v = [k1, k2] in counts[*, 2]) println(v)
  foreach (b in @hist_log(lat)) println(@hist_log(lat)[b])
  foreach (k in sizes @sum+) println(@sum(sizes[k]))
  print(@hist_linear(lat, 0, 100, 10))
  if (["a", 1] in counts) delete counts["a", *]
  delete counts
  println(@count(lat), @avg(lat), @variance(lat, 2))
}
"#)
    .unwrap();
    let globals = &e.program.globals;
    assert_eq!(
        globals[0].ty,
        GlobalType::Array {
            keys: vec![ScalarType::String, ScalarType::Long],
            value: Some(ScalarType::Long)
        }
    );
    assert_eq!(globals[0].max_entries, Some(100));
    assert_eq!(globals[1].ty, GlobalType::Stats);
    assert_eq!(
        globals[2].ty,
        GlobalType::Array {
            keys: vec![ScalarType::Long],
            value: None
        }
    );
    assert!(globals[2].wrap);
    let body = &e.program.probes[0].body;
    let foreaches: Vec<&Stmt> = body
        .iter()
        .filter(|s| matches!(s, Stmt::Foreach { .. } | Stmt::ForeachHist { .. }))
        .collect();
    assert_eq!(foreaches.len(), 4);
    match foreaches[0] {
        Stmt::Foreach {
            keys, sort, limit, ..
        } => {
            assert_eq!(keys.len(), 2);
            let sort = sort.unwrap();
            assert!(sort.descending);
            assert_eq!(sort.key, tapmatrix_ir::SortKey::Value { aggregate: None });
            assert_eq!(limit, &Some(Expr::Long(5)));
        }
        other => panic!("{other:?}"),
    }
    match foreaches[1] {
        Stmt::Foreach { value, slice, .. } => {
            assert!(value.is_some());
            assert_eq!(slice.len(), 2);
            assert!(slice[0].is_none() && slice[1] == Some(Expr::Long(2)));
        }
        other => panic!("{other:?}"),
    }
    match foreaches[3] {
        Stmt::Foreach { sort, .. } => assert_eq!(
            sort.unwrap().key,
            tapmatrix_ir::SortKey::Value {
                aggregate: Some(tapmatrix_ir::StatOp::Sum)
            }
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tapset_functions_are_pulled_in_transitively_and_only_when_called() {
    let tapset = r#"
function helper(x) { return x * 2 }
function api(x) { return helper(x) + 1 }
function unused() { return nope_never_defined() }
private global hidden = 7
function peek() { return hidden }
"#;
    let e = run_with(
        &[("lib.stp", tapset)],
        &[],
        "probe begin { println(api(peek())) }\n",
        &fixture("6.1"),
    )
    .unwrap();
    let names: Vec<&str> = e
        .program
        .functions
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    assert_eq!(names, ["api", "peek", "helper"]);
    assert_eq!(e.program.functions[2].params, [ScalarType::Long]);
    assert_eq!(e.program.globals.len(), 1);
    assert_eq!(e.program.globals[0].name, "hidden");
    assert_eq!(
        e.program.globals[0].init,
        Some(tapmatrix_ir::Value::Long(7))
    );
    // The script's own definition wins over a tapset's.
    let e = run_with(
        &[("lib.stp", tapset)],
        &[],
        "function helper(x) { return 0 }\nprobe begin { println(helper(1)) }\n",
        &fixture("6.1"),
    )
    .unwrap();
    assert_eq!(e.program.functions.len(), 1);
    assert!(format!("{:?}", e.program.functions[0].body).contains("Long(0)"));
}

#[test]
fn embedded_c_functions_map_to_runtime_builtins_by_name() {
    let tapset = "function execname:string () %{ strlcpy(STAP_RETVALUE, current->comm, MAXSTRINGLEN); %}\nfunction pid:long () { return __pid() }\nfunction __pid:long () %{ STAP_RETVALUE = current->tgid; %}\n";
    let e = run_with(
        &[("context.stp", tapset)],
        &[],
        "probe begin { printf(\"%s %d %d\\n\", execname(), pid(), cpu()) }\n",
        &fixture("6.1"),
    )
    .unwrap();
    let text = format!("{:?}", e.program.probes[0].body);
    for builtin in [Builtin::Execname, Builtin::Pid, Builtin::Cpu] {
        assert!(text.contains(&format!("{builtin:?}")), "{text}");
    }
    assert!(e.program.functions.is_empty());
}

#[test]
fn fetch_requests_are_collected_per_probe_and_shared() {
    let e = run(r#"probe kernel.function("vfs_read") {
  if (@defined($count)) total = $count + $count
  name = kernel_string($file->f_path->dentry->d_name->name)
  u = user_string_n($buf, 16)
  q = user_string_quoted($buf)
  printf("%d %s %s %s\n", total, name, u, q)
}
probe kernel.function("vfs_write") { println($count) }
"#)
    .unwrap();
    let describe = |f: &FetchRequest| match f {
        FetchRequest::Value { text, .. } => format!("value {text}"),
        FetchRequest::String {
            text,
            user,
            max_len,
            ..
        } => format!("string {text} user={user} max={max_len:?}"),
        FetchRequest::Defined { text, .. } => format!("defined {text}"),
    };
    let first: Vec<String> = e.sites[0].fetches.iter().map(describe).collect();
    assert_eq!(
        first,
        [
            "defined $count",
            "value $count",
            "string $file->f_path->dentry->d_name->name user=false max=None",
            "string $buf user=true max=Some(16)",
            "string $buf user=true max=None",
        ]
    );
    assert_eq!(
        e.program.probes[0].fetches,
        [
            ScalarType::Long,
            ScalarType::Long,
            ScalarType::String,
            ScalarType::String,
            ScalarType::String
        ]
    );
    let text = format!("{:?}", e.program.probes[0].body);
    assert!(text.contains("StringQuoted"), "{text}");
    match &e.sites[0].fetches[1] {
        FetchRequest::Value { location, .. } => {
            assert!(location.ends_with("t.stp:2:33"), "{location}")
        }
        other => panic!("{other:?}"),
    }
    let second: Vec<String> = e.sites[1].fetches.iter().map(describe).collect();
    assert_eq!(second, ["value $count"]);
}

#[test]
fn choose_defined_is_defined_or_the_fallback() {
    let macros = "@define choose_defined(a, b) %( @defined(@a) ? @a : @b %)\n";
    let e = run_with(
        &[("defined.stpm", macros)],
        &[],
        "probe kernel.function(\"vfs_read\") { println(@choose_defined($count, 0)) }\n",
        &fixture("6.1"),
    )
    .unwrap();
    assert!(matches!(
        e.sites[0].fetches[0],
        FetchRequest::Defined { .. }
    ));
    assert!(matches!(e.sites[0].fetches[1], FetchRequest::Value { .. }));
    let text = format!("{:?}", e.program.probes[0].body);
    assert!(
        text.contains("Ternary { cond: Fetch(0), then: Fetch(1), otherwise: Long(0) }"),
        "{text}"
    );
}

#[test]
fn char_array_fields_are_strings() {
    let e = run_with(
        &[],
        &[repo_tapsets()],
        "probe scheduler.ctxswitch { printf(\"%s -> %s %d\\n\", prev_task_name, next_task_name, next_tid) }\n",
        &fixture("6.1"),
    )
    .unwrap();
    let strings: Vec<&str> = e.sites[0]
        .fetches
        .iter()
        .filter_map(|f| match f {
            FetchRequest::String { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(strings, ["$prev_comm", "$next_comm"]);
}

#[test]
fn loops_try_catch_and_compound_assignments() {
    let e = run(r#"probe begin {
  for (i = 0; i < 3; i++) { s .= "x"; n += i; if (n > 10) break; else continue }
  while (n > 0) n -= 1
  try { error("boom") } catch (msg) { println(msg) }
  println(s, n, i)
}
"#)
    .unwrap();
    let body = &e.program.probes[0].body;
    assert!(
        matches!(&body[0], Stmt::Block(b) if matches!(b.last(), Some(Stmt::Loop { step: Some(_), .. })))
    );
    assert!(matches!(&body[1], Stmt::Loop { step: None, .. }));
    assert!(matches!(
        &body[2],
        Stmt::Try {
            catch_var: Some(_),
            ..
        }
    ));
}

#[test]
fn global_initializers_and_escapes() {
    let e = run(
        "global greeting = \"hi\\tthere\", most = 3\nprobe begin { printf(\"%s %d\\n\", greeting, most) }\n",
    )
    .unwrap();
    assert_eq!(
        e.program.globals[0].init,
        Some(tapmatrix_ir::Value::Str("hi\tthere".to_owned()))
    );
    assert_eq!(
        e.program.globals[1].init,
        Some(tapmatrix_ir::Value::Long(3))
    );
}

#[test]
fn elaborates_on_an_older_kernel_too() {
    let e = run_with(
        &[],
        &[repo_tapsets()],
        "probe vfs.read { printf(\"%d\\n\", count) }\n",
        &fixture("5.10"),
    )
    .unwrap();
    assert_eq!(e.sites[0].attach[0].target, "vfs_read");
}

#[test]
fn recursion_types_parameters_from_the_recursive_call() {
    // Only the recursive call says what `s` is; it flows on to `u`.
    let e = run(
        "function g(s, d) { if (d > 0) return g(\"x\", d - 1); t = s; return d }\nprobe begin { println(g(u, 3)) }\n",
    )
    .unwrap();
    assert_eq!(
        e.program.functions[0].params,
        [ScalarType::String, ScalarType::Long]
    );
    assert_eq!(e.program.probes[0].locals, [ScalarType::String]);
    let text = format!("{:?}", e.program.functions[0].body);
    assert!(text.contains("Call { function: 0"), "{text}");
}

#[test]
fn the_scripts_own_definition_of_a_builtin_name_wins() {
    let e = run("function pid() { return 42 }\nprobe begin { println(pid()) }\n").unwrap();
    assert_eq!(e.program.functions.len(), 1);
    assert_eq!(e.program.functions[0].name, "pid");
}

#[test]
fn addresses_of_cast_members_and_elements_read_no_memory() {
    // Served by tracefs (which refuses computed reads): plain arithmetic.
    let e = run(concat!(
        "probe begin { p = 1000; i = 2\n",
        "  printf(\"%d %d %d %d\\n\", &@cast(0, \"list_head\")[1], &@cast(p, \"list_head\")->prev,\n",
        "         &@cast(p, \"list_head\")[i], &@cast(p, \"list_head\")[i]->prev) }\n",
    ))
    .unwrap();
    let text = format!("{:?}", e.program.probes[0].body);
    assert!(text.contains("Long(16)"), "sizeof(list_head) folds: {text}");
    assert!(!text.contains("Read"), "no memory read: {text}");
    assert!(text.contains("Mul"), "index times stride: {text}");
}

#[test]
fn kernel_version_functions_are_constants_of_the_kernel() {
    let e = run("probe begin { println(kernel_v(), \" \", kernel_vr()) }\n").unwrap();
    let strings = strings_in(&e.program.probes[0].body);
    let release = fixture("6.1").release.unwrap();
    let version = release.split('-').next().unwrap().to_owned();
    assert!(strings.contains(&release), "{strings:?}");
    assert!(strings.contains(&version), "{strings:?}");
}

#[test]
fn exit_and_void_functions_are_longs_where_a_long_is_wanted() {
    let e = run(
        "global n\nfunction report() { println(n) }\nprobe begin { n++; n > 0 && (report() || exit()) }\n",
    )
    .unwrap();
    assert_eq!(e.program.functions[0].ret, Some(ScalarType::Long));
}

#[test]
fn printd_families_interleave_the_delimiter() {
    let e = run("probe begin { printdln(\",\", 1, \"a\", 2); x = sprintd(\"-\", \"b\", \"c\"); print(x) }\n")
        .unwrap();
    let strings = strings_in(&e.program.probes[0].body);
    assert_eq!(
        strings.iter().filter(|s| *s == ",").count(),
        2,
        "{strings:?}"
    );
    assert_eq!(
        strings.iter().filter(|s| *s == "-").count(),
        1,
        "{strings:?}"
    );
}
