//! Scripts that must not elaborate: the message and where (SystemTap's
//! semko cases, and what the tracefs back end cannot do).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;
use common::*;

#[test]
fn type_mismatch_of_a_local() {
    assert_error(
        "probe begin {\n  x = 1\n  x = \"a\"\n  println(x)\n}\n",
        "type mismatch (long vs. string): identifier 'x'",
        "3:3",
    );
}

#[test]
fn type_mismatch_of_a_global_across_probes() {
    assert_error(
        "global g\nprobe begin { g = 1 }\nprobe end { g = \"s\" }\n",
        "type mismatch (long vs. string): identifier 'g'",
        "3:13",
    );
}

#[test]
fn unresolved_type_of_a_local_never_given_one() {
    assert_error(
        "probe begin { println(y) }\n",
        "unresolved type: identifier 'y'",
        "1:23",
    );
}

#[test]
fn unresolved_function() {
    assert_error(
        "probe begin {\n  no_such_function(1)\n}\n",
        "unresolved function: identifier 'no_such_function'",
        "2:3",
    );
}

#[test]
fn wrong_arity_of_a_user_function() {
    assert_error(
        "function f(a) { return a + 1 }\nprobe begin { println(f(1, 2)) }\n",
        "unresolved arity-2 function: identifier 'f'",
        "2:23",
    );
}

#[test]
fn wrong_arity_of_a_builtin() {
    assert_error(
        "probe begin { println(strlen()) }\n",
        "unresolved arity-0 function: identifier 'strlen'",
        "1:23",
    );
}

#[test]
fn statistic_used_as_a_value() {
    assert_error(
        "global s\nprobe begin { s <<< 1; x = s; println(x) }\n",
        "invalid use of statistic 's'",
        "2:28",
    );
}

#[test]
fn aggregate_of_a_non_statistic() {
    assert_error(
        "global n\nprobe begin { n = 1; println(@count(n)) }\n",
        "type mismatch (stats vs. long): identifier 'n'",
        "2:37",
    );
}

#[test]
fn statistics_must_be_global() {
    assert_error(
        "probe begin { s <<< 1 }\n",
        "statistics must be global: local 's'",
        "1:15",
    );
}

#[test]
fn assignment_to_a_non_lvalue() {
    assert_error(
        "probe begin { x = 1; (x + 1) = 2 }\n",
        "assignment to a non-lvalue",
        "1:25",
    );
}

#[test]
fn foreach_key_count_mismatch() {
    assert_error(
        "global a\nprobe begin { a[1, 2] = 3; foreach (k in a) println(k) }\n",
        "inconsistent arity (2 vs 1): identifier 'a'",
        "2:42",
    );
}

#[test]
fn array_used_as_a_scalar() {
    assert_error(
        "global a\nprobe begin { a[1] = 3; println(a) }\n",
        "inconsistent arity (1 vs 0)",
        "2:33",
    );
}

#[test]
fn arrays_must_be_global() {
    assert_error(
        "probe begin { a[1] = 3 }\n",
        "unresolved array: identifier 'a'",
        "1:15",
    );
}

#[test]
fn void_function_used_as_a_value() {
    assert_error(
        "function f() { println(1) }\nprobe begin { x = f(); println(x) }\n",
        "function 'f' returns no value",
        "2:19",
    );
}

#[test]
fn printf_argument_types_and_count() {
    assert_error(
        "probe begin { printf(\"%d\\n\", \"s\") }\n",
        "type mismatch (long vs. string)",
        "1:30",
    );
    assert_error(
        "probe begin { printf(\"%s %s\\n\", \"s\") }\n",
        "wrong number of arguments to printf: the format takes 2, 1 given",
        "1:15",
    );
    assert_error(
        "probe begin { printf(\"%q\\n\", 1) }\n",
        "invalid conversion specifier '%q'",
        "1:22",
    );
}

#[test]
fn string_reads_need_a_target_expression() {
    assert_error(
        "probe kernel.function(\"vfs_read\") {\n  p = $buf\n  println(kernel_string(p))\n}\n",
        "reading kernel memory at a computed address (kernel_string(p)) is not supported by the tracefs back end on 6.1",
        "3:11",
    );
}

#[test]
fn target_variables_outside_probes() {
    assert_error(
        "function f() { return $count }\nprobe kernel.function(\"vfs_read\") { println(f()) }\n",
        "target variable '$count' in function 'f': target variables are only available in probe handlers",
        "1:23",
    );
}

#[test]
fn writing_a_target_variable() {
    assert_error(
        "probe kernel.function(\"vfs_read\") { $count = 1 }\n",
        "writing a target variable ($count) is not supported by the tracefs back end on 6.1",
        "1:37",
    );
}

#[test]
fn entry_only_in_return_probes_and_pretty_printing_not_yet() {
    assert_error(
        "probe kernel.function(\"vfs_read\") { println(@entry($count)) }\n",
        "@entry is only allowed in return probes",
        "1:45",
    );
    assert_error(
        "probe kernel.function(\"vfs_read\") { println($$parms) }\n",
        "'$$parms' pretty-printing is not supported yet",
        "1:45",
    );
    assert_error(
        "probe kernel.function(\"vfs_read\") { println($file$) }\n",
        "pretty-printing is not supported yet",
        "1:45",
    );
}

#[test]
fn unresolved_probe_point() {
    assert_error(
        "probe kernel.function(\"no_such_function_anywhere\") { println(1) }\n",
        "probe point mismatch: 'kernel.function(\"no_such_function_anywhere\")' resolves to nothing",
        "1:1",
    );
}

#[test]
fn timer_profile_is_not_supported() {
    assert_error(
        "probe timer.profile { println(1) }\n",
        "timer.profile is not supported by the tracefs back end on 6.1",
        "1:1",
    );
}

#[test]
fn return_in_a_probe() {
    assert_error(
        "probe begin { return }\n",
        "'return' outside a function",
        "1:15",
    );
}

#[test]
fn parse_errors_of_the_script_are_reported() {
    let errors = errors("probe begin { x = }\n");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("parse error") && e.contains("t.stp:1:")),
        "{errors:?}"
    );
}

#[test]
fn embedded_c_functions_without_a_builtin() {
    let tapset = "function secret:long () %{ STAP_RETVALUE = 42; %}\n";
    let errors = run_with(
        &[("c.stp", tapset)],
        &[],
        "probe begin { println(secret()) }\n",
        &fixture("6.1"),
    )
    .unwrap_err();
    assert!(
        errors.iter().any(
            |e| e.contains("unimplemented embedded-C function: function 'secret' (defined at tapsets/c.stp:1:10) has a C body and tapmatrix has no implementation of it")
                && e.contains("at t.stp:1:23")
        ),
        "{errors:?}"
    );
}

#[test]
fn every_error_is_reported_once() {
    let errors = errors(
        "probe begin {\n  x = 1\n  x = \"a\"\n  nope()\n  println(x)\n}\nprobe end { nope() }\n",
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
}

#[test]
fn target_variables_in_begin_probes() {
    assert_error(
        "probe begin { println($count) }\n",
        "target variables are only available in probes on kernel events",
        "1:23",
    );
}

#[test]
fn casts_in_functions_need_a_computed_address() {
    assert_error(
        "function comm(t) { return @cast(t, \"task_struct\")->pid }\nprobe kernel.function(\"vfs_read\") { println(comm(0)) }\n",
        "reading kernel memory at a computed address (@cast(t, \"task_struct\")->pid) is not supported by the tracefs back end on 6.1",
        "1:27",
    );
}

#[test]
fn stores_nothing_reads_are_elided_before_typing() {
    // As in SystemTap (pass 2 elides before types are resolved): neither
    // store survives, so the mismatch is no error.
    let e = run("probe begin {\n  x = 1\n  x = \"a\"\n  println(1)\n}\n").unwrap();
    assert_eq!(e.program.probes[0].body.len(), 1);
    // A store with an effect stays, and so does its type check.
    assert_error(
        "probe begin {\n  x = 1\n  x = sprintf(\"%d\", printf(\"a\"))\n}\n",
        "function 'printf' returns no value",
        "3:21",
    );
}

#[test]
fn unresolved_types_do_not_echo_earlier_errors() {
    let errors = errors("probe begin { x = nope(); println(x) }\n");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(errors[0].contains("unresolved function: identifier 'nope'"));
}

#[test]
fn a_script_function_defined_twice() {
    assert_error(
        "function f(x) { return x }\nfunction f(y) { return y + 1 }\nprobe begin { println(f(1)) }\n",
        "function 'f' is defined twice",
        "2:10",
    );
}

#[test]
fn probe_point_conditions_only_read_globals() {
    for (script, message, at) in [
        (
            "global x\nprobe begin if (x = 1) { println(1) }\n",
            "probe condition must not modify any variables",
            "2:19",
        ),
        (
            "global x\nprobe begin if (x++ > 0) { println(1) }\n",
            "probe condition must not modify any variables",
            "2:18",
        ),
        (
            "function f(n) { return n }\nprobe begin if (f(2)) { println(1) }\n",
            "probe condition must not reference function",
            "2:17",
        ),
        (
            "probe begin if (nowhere > 1) { println(1) }\n",
            "probe condition must not reference undeclared global",
            "1:17",
        ),
    ] {
        assert_error(script, message, at);
    }
    // Reading globals is what a condition is for.
    run("global on\nprobe begin if (on > 0 && on < 3) { println(1) }\nprobe end { on = 1 }\n")
        .unwrap();
}

#[test]
fn timers_are_checked_as_systemtap_checks_them() {
    for (script, message) in [
        (
            "probe timer.hz(100).randomize(5) { exit() }\n",
            "timer.hz takes no .randomize",
        ),
        (
            "probe timer.ms(-4) { exit() }\n",
            "a timer needs a positive number",
        ),
        (
            "probe timer.us(10) { exit() }\n",
            "interval value out of range",
        ),
        (
            "probe timer.ms(10).randomize(20) { exit() }\n",
            "randomization value out of range",
        ),
        (
            "probe timer.jiffies(2000000) { exit() }\n",
            "invalid interval for jiffies timer",
        ),
        (
            "probe timer.hz(0) { exit() }\n",
            "a timer needs a positive number",
        ),
    ] {
        let errors = errors(script);
        assert!(
            errors.iter().any(|e| e.contains(message)),
            "{script}: expected '{message}', got:\n{}",
            errors.join("\n")
        );
    }
    run("probe timer.ms(10).randomize(5) { exit() }\n").unwrap();
}

#[test]
fn kretprobe_instances_are_in_range() {
    let errors = errors("probe kernel.function(\"vfs_read\").return.maxactive(-4) { exit() }\n");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("maxactive value out of range [0,65535]: -4")),
        "{}",
        errors.join("\n")
    );
}

#[test]
fn a_bad_regular_expression_is_a_pass_2_error() {
    assert_error(
        "probe begin { if (\"abc\" =~ \"a(b\") println(1) }\n",
        "regex compilation error: unclosed group in \"a(b\"",
        "1:25",
    );
}

#[test]
fn an_arity_error_names_every_overload() {
    assert_error(
        "function f(a) { return a }\nfunction f(a, b, c) { return a + b + c }\nprobe begin { println(f(1, 2)) }\n",
        "unresolved arity-2 function: identifier 'f' takes 1 or 3 argument(s)",
        "3:23",
    );
}

#[test]
fn string_readers_take_an_err_msg_but_the_quoted_ones_do_not() {
    assert_error(
        "probe begin { println(user_string(1, \"a\", \"b\")) }\n",
        "unresolved arity-3 function: identifier 'user_string' takes 1 or 2 argument(s)",
        "1:23",
    );
    assert_error(
        "probe begin { println(user_string_quoted(1, \"a\")) }\n",
        "unresolved arity-2 function: identifier 'user_string_quoted' takes 1 argument(s)",
        "1:23",
    );
}
