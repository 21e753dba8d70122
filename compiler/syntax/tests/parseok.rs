//! Every construct of the language parses, prints canonically (snapshot),
//! and the print parses back to an equal AST.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::round_trip;
use insta::assert_snapshot;

macro_rules! parseok {
    ($name:ident, $src:expr) => {
        #[test]
        fn $name() {
            assert_snapshot!(round_trip($src));
        }
    };
}

parseok!(
    probe_points,
    r#"probe begin, end, timer.ms(100), kernel.function("vfs_*").return ?,
      module("ext4").statement("*@fs/ext4/inode.c:100")!, process("/bin/ls").function("main").call,
      kernel.trace("sched_switch") if (x > 1), syscall.*, kernel.fun*tion("a"), perf.type(1).config(-2)
{ }"#
);
parseok!(
    brace_expansion,
    r#"probe {kernel,module("ext4")}.function("x").{call,return}? { }"#
);
parseok!(
    aliases,
    r#"probe syscall.read = kernel.function("sys_read").call ?, kernel.function("ksys_read") { name = "read" }
probe tp.read += kernel.trace("sys_enter") { printf("%s\n", name) }
probe a = b = begin { x = 1 }
probe two = end { pro = 1 }, { epi = 2 }"#
);
parseok!(
    functions,
    r#"function f() { }
function g:long (a:long, b:string, c) { return a + 1 }
function h:string () %{ /* pure */ STAP_RETURN("x"); %}
private function p(x) : 5 { return }
function long:long () { return 0 }"#
);
parseok!(
    globals,
    r#"global a, b[100], c = 5, d = "str", e = -1; global f%, g%[10]
private h
private global i = 0x10"#
);
parseok!(
    embedded_top_level,
    "%{\n#include <linux/sched.h>\n%}\nprobe begin { x = %{ 1 + 2 %} }"
);
parseok!(
    statements,
    r#"probe begin {
  ;
  { x = 1; ; }
  if (x) y = 1 else if (z) y = 2 else { y = 3 }
  while (x < 10) x++
  for (i = 0; i < 10; i++) continue
  for (;;) break
  delete a[1, "x"]
  delete a
  try { error("e") } catch (msg) { println(msg) }
  try { x = 1 } catch { next }
  x = 1 y = 2
}"#
);
parseok!(
    foreach_forms,
    r#"probe end {
  foreach (k in a) print(k)
  foreach ([k1, k2] in a- limit 10) print(k1)
  foreach ([k1+, k2] in a) print(k1)
  foreach (v = [k] in a+) print(v)
  foreach (v- = [k, j] in a) print(v)
  foreach ([k, j] in a[*, 2]) print(k)
  foreach (k in s @sum-) print(k)
  foreach (x in @hist_log(s)) print(x)
}"#
);
parseok!(
    precedence,
    r#"probe begin {
  x = a ? b : c ? d : e
  x = a || b && c | d ^ e & f == g < h << i . j + k * -l
  x = (a + b) * c
  x = a - (b - c)
  x = (a = b) + 1
  x = a = b = c
  x += 1; x -= 1; x *= 2; x /= 2; x %= 2; x <<= 1; x >>= 1; x &= 1; x ^= 1; x |= 1; s .= "x"
  x = ~a + !b + -(-c) + +d
  x = - -c
  x = ! ~a
  x = ++a + b-- + --c
  x = a >>> 2
  x = (a ? b : c) ? d : e
  x = a < b < c
  x = (s =~ "x") == 1
  x = s !~ "^y"
  x = [a, b] in arr && !(c in arr)
  x = ([a, *] in arr) + 1
  x = (a . b) + c
}"#
);
parseok!(
    literals,
    r#"probe begin {
  x = 0x7fffffffffffffff + 0777 + 0 + 18446744073709551615
  x = 9223372036854775808
  s = "a" "b"
  "c"
  s = "tab\t nl\n quote\" back\\ oct\101 hex\x41 other\q"
}"#
);
parseok!(
    statistics,
    r#"global s
probe begin {
  s <<< 1
  x = @count(s) + @sum(s) + @min(s) + @max(s) + @avg(s) + @variance(s) + @variance(s, 2)
  print(@hist_linear(s, 0, 100, 10))
  println(@hist_log(s))
  x = @hist_log(s)[3]
  print(@hist_log(s)[2], 1)
}"#
);
parseok!(
    target_symbols,
    r#"probe kernel.function("f") {
  x = $p->f->g
  x = $a[i]
  x = $p$
  x = $p$$
  x = $p->f$
  x = $a[1]$
  x = &$x
  x = &$p->f
  x = $$vars . $$parms . $$locals . $$return . $$vars$
  x = @cast(p, "struct task_struct", "kernel")->mm->total_vm
  x = @cast(p, "struct file")
  x = &@cast(p, "struct file")->f_path
  x = @var("jiffies@kernel/time.c", "kernel")
  x = @var("x")->y
  x = f(1)->y
  x = a[1]->b
  x = (a + 1)->b
  x = ($x)->y
  x = &(a)
  x = @defined($x) ? $x : 0
  x = @entry($x)
  x = @const("PAGE_SIZE")
  x = @probewrite(v)
  x = @perf("cycles")
  x = @kregister(0) + @uregister(1)
  x = @kderef(8, a) + @uderef(4, b)
}"#
);
parseok!(
    print_family,
    r#"probe begin {
  print(1)
  print(1, "a")
  printf("%d %s\n", 1, "a")
  x = sprintf("%d", 1)
  println()
  println("a", 1)
  printd(",", 1, 2)
  printdln(",", 1, 2)
  x = sprint(1)
  x = sprintln()
  x = sprintd(",", 1, 2)
  x = sprintdln(",", 1, 2)
  exit()
}"#
);
parseok!(
    preprocessor_resolved,
    r#"%( kernel_v >= "2.6.30" %? probe new {} %: probe old {} %)
probe a = %( arch == "x86_64" %? kernel.function("x86"), %) kernel.function("all") {}
global g %( CONFIG_X == "" %? = 1 %)
@define twice(x) %( (@x + @x) %)
probe begin { y = @twice(2) * %( systemtap_v >= "4.0" %? 4 %: 3 %) }"#
);

/// `@choose_defined` is a library macro (SystemTap's `choose_defined.stpm`):
/// with a `.stpm` file defining it, it expands before parsing.
#[test]
fn library_macro_from_stpm() {
    let stpm = "@define choose_defined(value_if_defined, alternate) %(\n  (@defined(@value_if_defined) ? @value_if_defined : @alternate)\n%)\n";
    let out = common::parse_with_macros(
        "probe begin { x = @choose_defined($x, 0) }",
        tapmatrix_syntax::Profile::default(),
        &[],
        common::TAPSET,
        &[("choose_defined.stpm", stpm)],
    );
    assert!(out.errors.is_empty(), "{:?}", out.rendered);
    assert_snapshot!(tapmatrix_syntax::print_file(&out.file));
}

/// `$1` is substituted as tokens, `@1` as a string, `$#`/`@#` as the count.
#[test]
fn command_line_arguments() {
    let out = common::parse_with(
        "probe begin { s = @1 . \"!\"; x = $1 + $# ; n = @# ; y = $2 }",
        tapmatrix_syntax::Profile::default(),
        &["40 + 2", "f(3)"],
        common::SCRIPT,
    );
    assert!(out.errors.is_empty(), "{:?}", out.rendered);
    assert_snapshot!(tapmatrix_syntax::print_file(&out.file));
}

/// ASTs compare by structure and values, not by where they came from.
#[test]
fn equality_ignores_spans_only() {
    let a = common::parse_ok("probe begin { x = 1 + 2 }");
    let b = common::parse_ok("\n\n  probe   begin{x=1+\n2;}");
    let c = common::parse_ok("probe begin { x = 1 + 3 }");
    let d = common::parse_ok("probe begin { x = (1 + 2) }");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a, d, "parentheses leave no trace, as in SystemTap");
    let first = |f: &tapmatrix_syntax::File| match &f.items[0] {
        tapmatrix_syntax::ast::Item::Probe(p) => p.span,
        _ => panic!("not a probe"),
    };
    assert!(!first(&a).same_place(&first(&b)));
    assert_eq!((first(&b).line, first(&b).col), (3, 3));
}
