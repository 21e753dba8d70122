//! Scripts SystemTap rejects at parse time are rejected here, with a
//! diagnostic at the right line and column. (Cases written for this
//! project after SystemTap's testsuite categories.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{SCRIPT, TAPSET, parse_with};
use tapmatrix_syntax::{FileKind, Profile};

/// Asserts that `src` gives an error at `line:col` whose message contains `needle`.
fn rejects(src: &str, kind: FileKind, args: &[&str], at: &str, needle: &str) {
    let out = parse_with(src, Profile::default(), args, kind);
    assert!(
        out.errors
            .iter()
            .any(|e| e.starts_with(&format!("{at}:")) && e.contains(needle)),
        "wanted an error at {at} containing {needle:?}, got {:#?}",
        out.errors
    );
    // Every rendered diagnostic names file:line:col and shows a caret.
    for r in &out.rendered {
        assert!(r.contains("test.stp:") || r.contains("<argument"), "{r}");
        assert!(r.contains('^'), "no caret in {r}");
    }
}

macro_rules! parseko {
    ($name:ident, $src:expr, $at:expr, $needle:expr) => {
        #[test]
        fn $name() {
            rejects($src, TAPSET, &[], $at, $needle);
        }
    };
    ($name:ident, script, $src:expr, $at:expr, $needle:expr) => {
        #[test]
        fn $name() {
            rejects($src, SCRIPT, &[], $at, $needle);
        }
    };
}

parseko!(
    unterminated_string,
    "probe begin {\n  x = \"abc\n}\n",
    "2:7",
    "closing quote"
);
parseko!(
    unterminated_comment_eats_the_brace,
    "probe begin { x = 1 /* no end\n}\n",
    "1:20",
    "expected '}'"
);
parseko!(
    unterminated_embedded,
    "%{ int x;\nprobe begin {}\n",
    "1:1",
    "'%}'"
);
parseko!(
    bad_character,
    "probe begin { x = 1 \u{00e9} 2 }",
    "1:21",
    "unexpected character"
);
parseko!(
    backtick,
    "probe begin { x = `y` }",
    "1:19",
    "expected an expression"
);
parseko!(
    missing_close_brace,
    "probe begin {\n  x = 1\n",
    "2:8",
    "expected '}', found end of file"
);
parseko!(
    missing_open_brace,
    "probe begin x = 1 }",
    "1:13",
    "one of ', { } = +='"
);
parseko!(
    stray_top_level,
    "x = 1\n",
    "1:1",
    "expected 'probe', 'global', 'private', 'function'"
);
parseko!(
    empty_component,
    "probe kernel..function(\"x\") {}",
    "1:14",
    "probe point component"
);
parseko!(
    component_bad_arg,
    "probe kernel.function(x) {}",
    "1:23",
    "string or number literal"
);
parseko!(
    component_unclosed_arg,
    "probe kernel.function(\"x\" {}",
    "1:27",
    "expected ')'"
);
parseko!(
    optional_twice,
    "probe kernel.function(\"x\")?? {}",
    "1:28",
    "one of ', { } = +='"
);
parseko!(
    mark_after_component,
    "probe kernel?.function(\"x\") {}",
    "1:14",
    "one of ', { } = +='"
);
parseko!(
    mark_in_prefix,
    "probe {kernel?}.function(\"x\") {}",
    "1:8",
    "last component"
);
parseko!(
    optional_alias_name,
    "probe foo? = begin {}",
    "1:7",
    "cannot be optional"
);
parseko!(
    two_bodies_with_epilogue,
    "probe foo += begin {}, {}",
    "1:22",
    "'+='"
);
parseko!(
    number_out_of_range,
    "probe begin { x = 18446744073709551616 }",
    "1:19",
    "out of range"
);
parseko!(bad_octal, "probe begin { x = 09 }", "1:19", "invalid");
parseko!(bad_hex, "probe begin { x = 0xZ }", "1:19", "invalid");
parseko!(
    array_size_zero,
    "global a[0]",
    "1:10",
    "array size out of range"
);
parseko!(
    duplicate_global,
    "global a\nglobal b, a",
    "2:11",
    "duplicate global"
);
parseko!(
    duplicate_param,
    "function f(a, a) {}",
    "1:15",
    "duplicate parameter"
);
parseko!(
    bad_return_type,
    "function f:int () {}",
    "1:12",
    "'string' or 'long'"
);
parseko!(
    bad_priority,
    "function f () : 0 {}",
    "1:17",
    "priority must be > 0"
);
parseko!(
    return_outside_function,
    "probe begin { return 1 }",
    "1:15",
    "'return' outside a function"
);
parseko!(
    missing_paren_if,
    "probe begin { if x > 1 {} }",
    "1:18",
    "expected '('"
);
parseko!(
    else_without_if,
    "probe begin { else { } }",
    "1:15",
    "expected a statement"
);
parseko!(
    foreach_without_in,
    "probe begin { foreach (k a) {} }",
    "1:26",
    "expected 'in'"
);
parseko!(
    foreach_two_sorts,
    "probe begin { foreach ([a+, b-] in x) {} }",
    "1:30",
    "multiple sort"
);
parseko!(
    unknown_at_operator,
    "probe begin { x = @nosuch(1) }",
    "1:19",
    "unknown operator or macro"
);
parseko!(
    printf_needs_literal_format,
    "probe begin { printf(fmt, 1) }",
    "1:22",
    "string literal"
);
parseko!(
    printd_needs_two_args,
    "probe begin { printd(\",\", 1) }",
    "1:28",
    "more argument"
);
parseko!(
    variance_too_many,
    "probe begin { x = @variance(s, 1, 2) }",
    "1:33",
    "at most 2"
);
parseko!(
    hist_alone,
    "probe begin { x = @hist_log(s) }",
    "1:19",
    "histogram"
);
parseko!(
    pretty_then_member,
    "probe begin { x = $p$->f }",
    "1:22",
    "pretty-printing"
);
parseko!(
    cast_empty_type,
    "probe begin { x = @cast(p, \"\") }",
    "1:28",
    "non-empty"
);
parseko!(
    regex_needs_literal,
    "probe begin { x = s =~ r }",
    "1:24",
    "string literal"
);
parseko!(
    ternary_missing_colon,
    "probe begin { x = a ? b }",
    "1:25",
    "expected ':'"
);
parseko!(
    unclosed_call,
    "probe begin { f(1, 2 }",
    "1:22",
    "expected ',' or ')'"
);
parseko!(
    keys_without_in,
    "probe begin { x = [a, b] + 1 }",
    "1:19",
    "'in ARRAY'"
);
parseko!(
    embedded_in_script,
    script,
    "%{ int x; %}\nprobe begin {}",
    "1:1",
    "guru mode"
);
parseko!(
    embedded_function_in_script,
    script,
    "function f() %{ %}",
    "1:14",
    "guru mode"
);
parseko!(
    const_in_script,
    script,
    "probe begin { x = @const(\"X\") }",
    "1:19",
    "guru mode"
);
parseko!(empty_script, script, "# nothing\n", "1:1", "is empty");
parseko!(
    empty_after_preprocessing,
    script,
    "%( arch == \"nope\" %? probe begin {} %)",
    "1:1",
    "empty after preprocessing"
);

// The preprocessor.
parseko!(
    pp_missing_close,
    "%( arch == \"x86_64\" %? probe begin {}\n",
    "1:1",
    "missing '%)'"
);
parseko!(
    pp_stray_close,
    "probe begin {} %)",
    "1:16",
    "'%)' without '%('"
);
parseko!(
    pp_stray_then,
    "%? probe begin {}",
    "1:1",
    "'%?' without '%('"
);
parseko!(
    pp_duplicate_else,
    "%( arch == \"x\" %? a %: b %: c %)",
    "1:26",
    "duplicate '%:'"
);
parseko!(
    pp_missing_then,
    "%( arch == \"x86_64\" probe begin {} %)",
    "1:21",
    "expected '%?'"
);
parseko!(
    pp_bad_operator,
    "%( arch + \"x86_64\" %? probe begin {} %)",
    "1:9",
    "comparison operator"
);
parseko!(
    pp_arch_order,
    "%( arch < \"x86_64\" %? probe begin {} %)",
    "1:9",
    "'==' or '!='"
);
parseko!(
    pp_unknown_name,
    "%( foo == \"x\" %? probe begin {} %)",
    "1:4",
    "expected 'arch'"
);
parseko!(
    pp_kernel_v_number,
    "%( kernel_v >= 5 %? probe begin {} %)",
    "1:16",
    "string literal"
);
parseko!(
    pp_wildcard_order,
    "%( kernel_v >= \"5.*\" %? probe begin {} %)",
    "1:13",
    "wildcard"
);
parseko!(
    pp_mixed_literals,
    "%( 1 == \"1\" %? probe begin {} %)",
    "1:9",
    "number literal"
);
parseko!(
    pp_guru_mode_value,
    "%( guru_mode == 2 %? probe begin {} %)",
    "1:17",
    "0 or 1"
);
parseko!(
    pp_incomplete_condition,
    "%( arch ==",
    "1:1",
    "incomplete condition"
);

// Macros.
parseko!(
    macro_too_few,
    "@define m(a, b) %( @a + @b %)\nprobe begin { x = @m(1) }",
    "2:23",
    "too few parameters"
);
parseko!(
    macro_too_many,
    "@define m(a) %( @a %)\nprobe begin { x = @m(1, 2) }",
    "2:23",
    "too many parameters"
);
parseko!(
    macro_no_parens,
    "@define m(a) %( @a %)\nprobe begin { x = @m }",
    "2:22",
    "expected '('"
);
parseko!(
    macro_redefined,
    "@define m %( 1 %)\n@define m %( 2 %)",
    "2:9",
    "redefine macro"
);
parseko!(
    macro_unclosed_body,
    "@define m %( 1 + 2\nprobe begin {}",
    "1:9",
    "missing '%)'"
);
parseko!(macro_no_body, "@define m 1", "1:11", "expected '%(' or '('");
parseko!(macro_bad_name, "@define 1 %( %)", "1:9", "macro name");
parseko!(
    macro_define_inside,
    "@define m %( @define n %( 1 %) %)\nprobe begin { x = @m }",
    "1:14",
    "inside a macro body"
);
parseko!(
    macro_runaway,
    "@define m %( @m %)\nprobe begin { x = @m }",
    "1:14",
    "runaway"
);
parseko!(
    macro_unclosed_call,
    "@define m(a) %( @a %)\nprobe begin { x = @m(1 ",
    "2:19",
    "end of macro invocation"
);

// Command-line arguments.
#[test]
fn argument_out_of_range() {
    rejects(
        "probe begin { x = $2 }",
        SCRIPT,
        &["a"],
        "1:19",
        "out of range [1-1]",
    );
}

#[test]
fn nested_argument() {
    rejects(
        "probe begin { x = $1 }",
        SCRIPT,
        &["$1"],
        "1:1",
        "nested substitution",
    );
}

/// Errors are collected across a file: each broken statement and
/// declaration is reported, and parsing goes on after each.
#[test]
fn recovers_and_reports_every_error() {
    let src = "probe begin {\n  x = ;\n  y = 1\n  z = )\n}\nglobal 1\nfunction f() { return 1 }\nprobe end { }}\n";
    let out = parse_with(src, Profile::default(), &[], TAPSET);
    assert_eq!(
        out.errors,
        [
            "2:7: expected an expression, found ';'",
            "4:7: expected an expression, found ')'",
            "6:8: expected an identifier, found number '1'",
            "8:14: expected 'probe', 'global', 'private', 'function', or '%{', found '}'",
        ]
    );
    // What could be parsed is kept.
    assert_eq!(out.file.items.len(), 3);
}

#[test]
fn rendered_diagnostic_shows_line_and_caret() {
    let out = parse_with(
        "probe begin {\n  x = = 2\n}\n",
        Profile::default(),
        &[],
        TAPSET,
    );
    insta::assert_snapshot!(out.rendered.join(""));
}
parseko!(
    an_array_with_a_size_takes_no_initializer,
    script,
    "global counts[10] = 42\n",
    "1:19",
    "only scalar globals can be initialized"
);
parseko!(
    an_array_takes_no_string_initializer_either,
    script,
    "global names[4] = \"none\"\n",
    "1:17",
    "only scalar globals can be initialized"
);
