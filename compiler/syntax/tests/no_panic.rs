//! Property tests: random bytes and random token streams never panic the
//! front end and always terminate; whatever parses without errors prints
//! to text that parses back to the same AST.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use proptest::prelude::*;
use tapmatrix_syntax::{FileKind, Profile, Session, print_file};

fn parse(text: &str, args: &[String]) -> (tapmatrix_syntax::File, usize) {
    let mut session = Session::new(Profile::default(), args);
    let lib = session.add_source(
        "lib.stpm",
        "@define m(a) %( (@a + 1) %)\n@define n %( x %)\n",
    );
    let _ = session.define_library_macros(lib);
    let id = session.add_source("fuzz.stp", text);
    let parsed = session.parse(
        id,
        FileKind {
            privileged: true,
            user_file: true,
        },
    );
    for d in &parsed.diagnostics {
        // Rendering must not panic either.
        let _ = d.render(session.sources());
    }
    (parsed.file, parsed.diagnostics.len())
}

const VOCABULARY: &[&str] = &[
    "probe",
    "global",
    "private",
    "function",
    "if",
    "else",
    "for",
    "foreach",
    "in",
    "limit",
    "return",
    "delete",
    "while",
    "break",
    "continue",
    "next",
    "string",
    "long",
    "try",
    "catch",
    "begin",
    "kernel",
    "function",
    "x",
    "y",
    "a",
    "$x",
    "$p$",
    "$$vars",
    "@1",
    "$1",
    "$#",
    "@count",
    "@sum",
    "@hist_log",
    "@hist_linear",
    "@cast",
    "@var",
    "@defined",
    "@entry",
    "@define",
    "@m",
    "@n",
    "@a",
    "printf",
    "print",
    "println",
    "printd",
    "0",
    "1",
    "0x10",
    "077",
    "\"s\"",
    "\"%d\\n\"",
    "%{ c %}",
    "%(",
    "%?",
    "%:",
    "%)",
    "arch",
    "kernel_v",
    "CONFIG_X",
    "\"x86_64\"",
    "\"6.1\"",
    "==",
    "!=",
    "<",
    ">=",
    "&&",
    "||",
    "(",
    ")",
    "{",
    "}",
    "[",
    "]",
    ",",
    ";",
    ":",
    ".",
    "?",
    "!",
    "=",
    "+=",
    ".=",
    "<<<",
    "+",
    "-",
    "*",
    "/",
    "%",
    "&",
    "|",
    "^",
    "~",
    "<<",
    ">>",
    "->",
    "++",
    "--",
    "=~",
    "!~",
    "#c\n",
    "/* c */",
    "'",
    "`",
];

fn token_stream() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(VOCABULARY), 0..80).prop_map(|toks| toks.join(" "))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let _ = parse(&text, &[]);
    }

    #[test]
    fn random_token_streams_never_panic_and_round_trip(text in token_stream()) {
        let args = vec!["1 + 2".to_string()];
        let (file, errors) = parse(&text, &args);
        let printed = print_file(&file);
        if errors == 0 {
            let (again, errors_again) = parse(&printed, &args);
            prop_assert_eq!(errors_again, 0, "print of {:?} does not parse:\n{}", text, printed);
            prop_assert!(again == file, "print of {:?} parses differently:\n{}", text, printed);
        }
    }
}

/// Deep nesting is an error, not a stack overflow.
#[test]
fn deep_nesting_is_reported() {
    for text in [
        format!(
            "probe begin {{ x = {}1{} }}",
            "(".repeat(5000),
            ")".repeat(5000)
        ),
        format!("probe begin {}", "{".repeat(5000)),
        format!("probe begin {{ x = {}1 }}", "-".repeat(5000)),
        format!("probe {}a{} {{}}", "{".repeat(5000), "}".repeat(5000)),
        format!("probe begin {{ {} }}", "if (1) ".repeat(5000)),
    ] {
        let (_, errors) = parse(&text, &[]);
        assert!(errors > 0);
    }
}

/// Exponential macro expansion stops with an error instead of hanging.
#[test]
fn macro_bomb_is_stopped() {
    let mut text = String::from("@define m0 %( x %)\n");
    for i in 1..40 {
        text.push_str(&format!("@define m{i} %( @m{} @m{} %)\n", i - 1, i - 1));
    }
    text.push_str("probe begin { @m39 }\n");
    let (_, errors) = parse(&text, &[]);
    assert!(errors > 0);
}
