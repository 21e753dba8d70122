//! Preprocessor conditionals and macros against target profiles.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

mod common;

use common::{TAPSET, parse_with};
use tapmatrix_syntax::ast::Item;
use tapmatrix_syntax::profile::parse_kernel_config;
use tapmatrix_syntax::{Profile, print_file};

/// Which branch `%( cond %? ... %: ... %)` takes under `profile`.
fn holds(cond: &str, profile: &Profile) -> bool {
    let src = format!("%( {cond} %? probe yes {{}} %: probe no {{}} %)");
    let out = parse_with(&src, profile.clone(), &[], TAPSET);
    assert!(out.errors.is_empty(), "{cond}: {:?}", out.errors);
    let printed = print_file(&out.file);
    match printed.trim() {
        "probe yes {\n}" => true,
        "probe no {\n}" => false,
        other => panic!("{cond}: unexpected {other}"),
    }
}

fn profile() -> Profile {
    Profile {
        arch: "x86_64".to_string(),
        kernel_release: "6.1.0-13-amd64".to_string(),
        kernel_config: parse_kernel_config(
            "CONFIG_Y=y\nCONFIG_M=m\nCONFIG_NR_CPUS=64\nCONFIG_HZ=250\nCONFIG_OTHER_HZ=250\nCONFIG_STR=\"abc\"\n",
        ),
        ..Profile::default()
    }
}

#[test]
fn kernel_versions() {
    let p = profile();
    assert!(holds(r#"kernel_v >= "2.6.30""#, &p));
    assert!(holds(r#"kernel_v > "5.19""#, &p));
    assert!(!holds(r#"kernel_v < "5.10""#, &p));
    assert!(holds(r#"kernel_v == "6.1.0""#, &p));
    assert!(holds(r#"kernel_v <= "6.1.0""#, &p));
    assert!(holds(r#"kernel_v != "6.1""#, &p));
    assert!(holds(r#"kernel_vr == "6.1.0-13-*""#, &p));
    assert!(holds(r#"kernel_vr != "5.*""#, &p));
    assert!(holds(r#"kernel_v == "6.1*""#, &p));
    assert!(holds(r#"kernel_vr > "6.1.0-9-amd64""#, &p));
}

#[test]
fn arch_runtime_privilege_guru_and_systemtap_version() {
    let p = profile();
    assert!(holds(r#"arch == "x86_64""#, &p));
    assert!(holds(r#"arch != "i?86""#, &p));
    assert!(holds(r#"arch == "x86_*""#, &p));
    assert!(!holds(r#"arch == "arm64""#, &p));
    let arm = Profile {
        arch: "arm64".to_string(),
        ..profile()
    };
    assert!(holds(r#"arch == "arm64""#, &arm));
    assert!(holds(r#"runtime == "kernel""#, &p));
    assert!(!holds(r#"runtime == "bpf""#, &p));
    assert!(holds(r#"systemtap_privilege == "stapdev""#, &p));
    assert!(holds(r#"systemtap_privilege != "stapusr""#, &p));
    assert!(holds("guru_mode == 0", &p));
    let guru = Profile {
        guru_mode: true,
        ..profile()
    };
    assert!(holds("guru_mode == 1", &guru));
    assert!(holds(r#"systemtap_v >= "2.0""#, &p));
    assert!(holds(r#"systemtap_v < "4.10""#, &p));
}

#[test]
fn kernel_config() {
    let p = profile();
    assert!(holds(r#"CONFIG_Y == "y""#, &p));
    assert!(holds(r#"CONFIG_M == "m""#, &p));
    assert!(holds(r#"CONFIG_M == "[ym]""#, &p));
    assert!(holds(r#"CONFIG_UNSET == """#, &p));
    assert!(holds(r#"CONFIG_UNSET != "y""#, &p));
    assert!(holds("CONFIG_NR_CPUS >= 64", &p));
    assert!(holds("CONFIG_NR_CPUS < 0x100", &p));
    assert!(holds("CONFIG_HZ == CONFIG_OTHER_HZ", &p));
    assert!(holds("CONFIG_Y != CONFIG_M", &p));
    assert!(holds(r#"CONFIG_STR == "abc""#, &p));
}

#[test]
fn literals_and_boolean_joins() {
    let p = profile();
    assert!(holds("1 < 2", &p));
    assert!(holds("0x10 == 16", &p));
    assert!(holds(r#""a" < "b""#, &p));
    assert!(!holds("1 == 2", &p));
    // && binds tighter than ||.
    assert!(holds("1 == 2 && 1 == 1 || 1 == 1", &p));
    assert!(holds("1 == 1 || 1 == 2 && 1 == 2", &p));
    assert!(!holds("1 == 2 || 1 == 1 && 1 == 2", &p));
    assert!(holds(
        r#"arch == "x86_64" && kernel_v >= "5.0" && CONFIG_Y == "y""#,
        &p
    ));
}

#[test]
fn branches_hold_any_fragment() {
    let src = r#"
probe a = kernel.function("x") ?, %( kernel_v >= "5.0" %? kernel.function("new") ?, %) kernel.function("z")
{ y = %( arch == "x86_64" %? 1 %: 2 %) }
probe b { f(1, %( 1 == 2 %? 2, %) 3) }
global g %( CONFIG_Y == "y" %? = 5 %: = 6 %)
%( 1 == 1 %? %( 1 == 2 %? probe no {} %: probe nested {} %) %)
%( 1 == 2 %? probe skipped { $9 "junk is fine here }
%)
"#;
    let out = parse_with(src, profile(), &[], TAPSET);
    assert!(out.errors.is_empty(), "{:?}", out.rendered);
    insta::assert_snapshot!(print_file(&out.file));
}

#[test]
fn macros() {
    let src = r#"
@define add(a, b) %( (@a + @b) %)
@define twice(x) %( @add(@x, @x) %)
@define noargs %( 42 %)
@define pick(x) %( %( arch == "x86_64" %? @x %: 0 %) %)
%( 1 == 2 %? @define skipped %( oops %) %)
probe begin {
  a = @twice(f(1, 2))
  b = @noargs
  c = @pick([1, 2] in arr)
  d = @add(x[1, 2], (3, 4))
}
"#;
    let out = parse_with(src, profile(), &[], TAPSET);
    // `(3, 4)` is one argument, but not an expression.
    assert_eq!(out.errors.len(), 1, "{:?}", out.rendered);
    assert!(out.errors[0].contains("expected ')'"), "{:?}", out.errors);
    let ok = parse_with(&src.replace(", (3, 4))", ", 3)"), profile(), &[], TAPSET);
    assert!(ok.errors.is_empty(), "{:?}", ok.rendered);
    let printed = print_file(&ok.file);
    insta::assert_snapshot!(printed);
    assert!(matches!(ok.file.items[0], Item::Probe(_)));
}
