//! Runtime tests: programs built with small helpers, exact output.

use tapmatrix_ir::{
    BinaryOp, Block, Builtin, CompareOp, Expr, FormatSpec, Function, Global, GlobalType, HistSpec,
    LValue, Limits, Loc, Probe, ProbeKind, Program, ScalarType, Sort, SortKey, StatOp, Stmt, Value,
};

use super::*;

// ---- builders ----------------------------------------------------------

fn at(line: u32, col: u32) -> Loc {
    Loc { file: 0, line, col }
}

fn program(globals: Vec<Global>, functions: Vec<Function>, probes: Vec<Probe>) -> Program {
    Program {
        files: vec!["t.stp".to_owned()],
        globals,
        functions,
        probes,
        limits: Limits::default(),
    }
}

fn global(name: &str, ty: GlobalType) -> Global {
    Global {
        name: name.to_owned(),
        ty,
        init: None,
        max_entries: None,
        wrap: false,
    }
}

fn long_global(name: &str) -> Global {
    global(
        name,
        GlobalType::Scalar {
            ty: ScalarType::Long,
        },
    )
}

fn array(name: &str, keys: &[ScalarType], value: Option<ScalarType>) -> Global {
    global(
        name,
        GlobalType::Array {
            keys: keys.to_vec(),
            value,
        },
    )
}

fn stats(name: &str) -> Global {
    global(name, GlobalType::Stats)
}

fn probe(kind: ProbeKind, locals: &[ScalarType], body: Block) -> Probe {
    Probe {
        kind,
        name: "p".to_owned(),
        locals: locals.to_vec(),
        fetches: Vec::new(),
        body,
        entry: None,
    }
}

fn begin(body: Block) -> Probe {
    probe(ProbeKind::Begin { seq: 0 }, &[], body)
}

fn end(body: Block) -> Probe {
    probe(ProbeKind::End { seq: 0 }, &[], body)
}

fn event(fetches: &[ScalarType], body: Block) -> Probe {
    Probe {
        fetches: fetches.to_vec(),
        ..probe(ProbeKind::Event, &[], body)
    }
}

fn n(v: i64) -> Expr {
    Expr::Long(v)
}

fn s(v: &str) -> Expr {
    Expr::Str(v.to_owned())
}

fn call(builtin: Builtin, args: Vec<Expr>) -> Expr {
    Expr::Builtin {
        builtin,
        args,
        loc: at(1, 1),
    }
}

fn println(args: Vec<Expr>) -> Stmt {
    Stmt::Expr(call(Builtin::Println, args))
}

fn exit() -> Stmt {
    Stmt::Expr(call(Builtin::Exit, vec![]))
}

/// A `printf` format, parsed by the elaborator.
fn fmt(text: &str) -> Vec<FormatSpec> {
    tapmatrix_elaborate::parse_format(text).unwrap().specs
}

fn printf(format: &str, args: Vec<Expr>) -> Stmt {
    Stmt::Expr(Expr::Printf {
        to_string: false,
        format: fmt(format),
        args,
    })
}

fn index(array: u32, keys: Vec<Expr>) -> Expr {
    Expr::Index { array, keys }
}

fn element(array: u32, keys: Vec<Expr>, loc: Loc) -> LValue {
    LValue::Index {
        array,
        keys: keys.into_iter().map(Some).collect(),
        loc,
    }
}

fn assign(target: LValue, value: Expr) -> Stmt {
    Stmt::Expr(Expr::Assign {
        target: Box::new(target),
        op: None,
        concat: false,
        value: Box::new(value),
        loc: at(1, 1),
    })
}

fn incr(target: LValue) -> Stmt {
    Stmt::Expr(Expr::Crement {
        target: Box::new(target),
        increment: true,
        prefix: false,
        loc: at(1, 1),
    })
}

fn binary(op: BinaryOp, lhs: Expr, rhs: Expr, loc: Loc) -> Expr {
    Expr::Binary {
        op,
        lhs: Box::new(lhs),
        rhs: Box::new(rhs),
        loc,
    }
}

fn stat(op: StatOp, lv: LValue) -> Expr {
    Expr::Stat {
        op,
        stat: Box::new(lv),
        param: 0,
        loc: at(9, 5),
    }
}

fn foreach(array: u32, keys: Vec<u32>, sort: Option<Sort>, body: Block) -> Stmt {
    Stmt::Foreach {
        array,
        keys,
        value: None,
        slice: Vec::new(),
        sort,
        limit: None,
        body,
    }
}

fn by_value_desc() -> Option<Sort> {
    Some(Sort {
        key: SortKey::Value { aggregate: None },
        descending: true,
    })
}

fn hit(probe: u32, values: Vec<Value>, comm: &str) -> Hit {
    Hit {
        probe,
        values,
        context: HitContext {
            pid: 100,
            tid: 101,
            comm: comm.to_owned(),
            ..HitContext::default()
        },
        faults: Vec::new(),
    }
}

/// Runs begin, the hits, and end; returns (stdout, stderr, end control).
fn run(program: Program, hits: &[Hit]) -> (String, String, Control) {
    let mut rt = Runtime::new(program, 0);
    rt.begin();
    for h in hits {
        rt.hit(h);
    }
    let control = rt.end();
    (rt.take_stdout(), rt.take_stderr(), control)
}

fn stdout_of(program: Program) -> String {
    let (out, err, _) = run(program, &[]);
    assert_eq!(err, "", "unexpected errors");
    out
}

// ---- tests -------------------------------------------------------------

#[test]
fn printf_directives_match_systemtap() {
    let out = stdout_of(program(
        vec![],
        vec![],
        vec![begin(vec![
            printf(
                "[%d|%5d|%-5d|%05d|%+d|% d]\n",
                vec![n(-7), n(42), n(42), n(-42), n(3), n(3)],
            ),
            printf(
                "[%x|%X|%#x|%#o|%o|%u]\n",
                vec![n(255), n(255), n(255), n(8), n(8), n(-1)],
            ),
            printf(
                "[%p|%c|%3c|%-3c|%#c]\n",
                vec![n(4096), n(65), n(66), n(67), n(10)],
            ),
            printf(
                "[%s|%10s|%-10s|%.3s|%*d|%-*d|%.*s]\n",
                vec![
                    s("str"),
                    s("right"),
                    s("left"),
                    s("truncate"),
                    n(4),
                    n(9),
                    n(4),
                    n(9),
                    n(2),
                    s("abc"),
                ],
            ),
            printf("100%%\n", vec![]),
            Stmt::Expr(Expr::Printf {
                to_string: false,
                format: vec![
                    FormatSpec::Directive {
                        flags: String::new(),
                        width: None,
                        precision: None,
                        conversion: '%',
                    },
                    FormatSpec::Directive {
                        flags: String::new(),
                        width: None,
                        precision: None,
                        conversion: 'd',
                    },
                    FormatSpec::Literal {
                        text: "\n".to_owned(),
                    },
                ],
                args: vec![n(5)],
            }),
        ])],
    ));
    assert_eq!(
        out,
        "[-7|   42|42   |-0042|+3| 3]\n\
         [ff|FF|0xff|010|10|18446744073709551615]\n\
         [0x1000|A|  B|C  |\\n]\n\
         [str|     right|left      |tru|   9|9   |ab]\n\
         100%\n\
         %5\n"
    );
}

#[test]
fn sprintf_and_print_of_longs_and_strings() {
    let out = stdout_of(program(
        vec![],
        vec![],
        vec![probe(
            ProbeKind::Begin { seq: 0 },
            &[ScalarType::String],
            vec![
                assign(
                    LValue::Local(0),
                    Expr::Printf {
                        to_string: true,
                        format: fmt("%d-%s"),
                        args: vec![n(1), s("a")],
                    },
                ),
                Stmt::Expr(call(Builtin::Print, vec![Expr::Local(0), n(2), s("\n")])),
                println(vec![call(Builtin::Sprint, vec![n(-5), s("x")])]),
            ],
        )],
    ));
    assert_eq!(out, "1-a2\n-5x\n");
}

#[test]
fn counts_per_execname_sorted_by_value_descending() {
    let counts = 0;
    let prog = program(
        vec![array(
            "counts",
            &[ScalarType::String],
            Some(ScalarType::Long),
        )],
        vec![],
        vec![
            event(
                &[],
                vec![incr(element(
                    counts,
                    vec![call(Builtin::Execname, vec![])],
                    at(2, 3),
                ))],
            ),
            probe(
                ProbeKind::End { seq: 0 },
                &[ScalarType::String],
                vec![foreach(
                    counts,
                    vec![0],
                    by_value_desc(),
                    vec![printf(
                        "%-8s %d\n",
                        vec![Expr::Local(0), index(counts, vec![Expr::Local(0)])],
                    )],
                )],
            ),
        ],
    );
    let hits: Vec<Hit> = ["sh", "cat", "cat", "ls", "cat", "sh"]
        .iter()
        .map(|comm| hit(0, vec![], comm))
        .collect();
    let (out, err, control) = run(prog, &hits);
    assert_eq!(err, "");
    // No exit(): the run stopped because the workload did.
    assert_eq!(control, Control::Continue);
    assert_eq!(out, "cat      3\nsh       2\nls       1\n");
}

#[test]
fn foreach_sorts_by_key_limits_and_slices() {
    let a = 0;
    let set = |k1: i64, k2: &str, v: i64| assign(element(a, vec![n(k1), s(k2)], at(1, 1)), n(v));
    let show = vec![printf("%d,%s ", vec![Expr::Local(0), Expr::Local(1)])];
    let prog = program(
        vec![array(
            "a",
            &[ScalarType::Long, ScalarType::String],
            Some(ScalarType::Long),
        )],
        vec![],
        vec![probe(
            ProbeKind::Begin { seq: 0 },
            &[ScalarType::Long, ScalarType::String],
            vec![
                set(3, "c", 30),
                set(1, "b", 10),
                set(2, "a", 20),
                set(1, "a", 40),
                // Ascending on the second key; ties keep insertion order.
                foreach(
                    a,
                    vec![0, 1],
                    Some(Sort {
                        key: SortKey::Key { index: 1 },
                        descending: false,
                    }),
                    show.clone(),
                ),
                println(vec![]),
                Stmt::Foreach {
                    array: a,
                    keys: vec![0, 1],
                    value: None,
                    slice: Vec::new(),
                    sort: by_value_desc(),
                    limit: Some(n(2)),
                    body: show.clone(),
                },
                println(vec![]),
                Stmt::Foreach {
                    array: a,
                    keys: vec![0, 1],
                    value: None,
                    slice: vec![Some(n(1)), None],
                    sort: None,
                    limit: None,
                    body: show,
                },
                println(vec![]),
            ],
        )],
    );
    assert_eq!(stdout_of(prog), "2,a 1,a 1,b 3,c \n1,a 3,c \n1,b 1,a \n");
}

#[test]
fn uninitialized_reads_create_nothing_and_delete_removes() {
    let a = 0;
    let prog = program(
        vec![array("a", &[ScalarType::String], Some(ScalarType::Long))],
        vec![],
        vec![begin(vec![
            printf("%d ", vec![index(a, vec![s("missing")])]),
            printf(
                "%d ",
                vec![Expr::In {
                    array: a,
                    keys: vec![Some(s("missing"))],
                }],
            ),
            assign(element(a, vec![s("x")], at(1, 1)), n(0)),
            printf(
                "%d ",
                vec![Expr::In {
                    array: a,
                    keys: vec![Some(s("x"))],
                }],
            ),
            Stmt::Delete(LValue::Index {
                array: a,
                keys: vec![Some(s("x"))],
                loc: at(1, 1),
            }),
            printf(
                "%d\n",
                vec![Expr::In {
                    array: a,
                    keys: vec![None],
                }],
            ),
        ])],
    );
    assert_eq!(stdout_of(prog), "0 0 1 0\n");
}

#[test]
fn division_by_zero_runs_error_probes_not_end_probes() {
    let prog = program(
        vec![],
        vec![],
        vec![
            begin(vec![println(vec![binary(
                BinaryOp::Div,
                n(1),
                n(0),
                at(3, 14),
            )])]),
            begin(vec![println(vec![s("second begin")])]),
            end(vec![println(vec![s("end")])]),
            probe(
                ProbeKind::Error { seq: 0 },
                &[],
                vec![println(vec![s("error probe")])],
            ),
        ],
    );
    let mut rt = Runtime::new(prog, 0);
    let message = "division by 0 near operator '/' at t.stp:3:14".to_owned();
    assert_eq!(rt.begin(), Control::Error(message.clone()));
    assert_eq!(rt.end(), Control::Error(message));
    assert_eq!(rt.take_stdout(), "error probe\n");
    assert_eq!(
        rt.take_stderr(),
        "ERROR: division by 0 near operator '/' at t.stp:3:14\n\
         WARNING: Number of errors: 1, skipped probes: 0\n"
    );
}

#[test]
fn maxerrors_tolerates_errors_before_failing() {
    let mut prog = program(
        vec![],
        vec![],
        vec![
            event(
                &[],
                vec![println(vec![binary(BinaryOp::Mod, n(1), n(0), at(1, 9))])],
            ),
            end(vec![println(vec![s("end")])]),
        ],
    );
    prog.limits.max_errors = 1;
    let mut rt = Runtime::new(prog, 0);
    rt.begin();
    assert_eq!(rt.hit(&hit(0, vec![], "sh")), Control::Continue);
    assert!(matches!(rt.hit(&hit(0, vec![], "sh")), Control::Error(_)));
    // Hits after the failure are not run.
    rt.hit(&hit(0, vec![], "sh"));
    rt.end();
    assert_eq!(rt.take_stdout(), "");
    assert_eq!(
        rt.take_stderr(),
        "ERROR: division by 0 near operator '%' at t.stp:1:9\n\
         ERROR: division by 0 near operator '%' at t.stp:1:9\n\
         WARNING: Number of errors: 2, skipped probes: 0\n"
    );
}

#[test]
fn exit_finishes_the_handler_skips_later_begins_and_runs_end() {
    let prog = program(
        vec![],
        vec![],
        vec![
            probe(
                ProbeKind::Begin { seq: 1 },
                &[],
                vec![println(vec![s("late begin")])],
            ),
            probe(
                ProbeKind::Begin { seq: -1 },
                &[],
                vec![exit(), println(vec![s("after exit")])],
            ),
            probe(
                ProbeKind::End { seq: 5 },
                &[],
                vec![println(vec![s("end 5")])],
            ),
            end(vec![println(vec![s("end 0")])]),
            event(&[], vec![println(vec![s("hit")])]),
        ],
    );
    let mut rt = Runtime::new(prog, 0);
    assert_eq!(rt.begin(), Control::Exit);
    assert_eq!(rt.hit(&hit(4, vec![], "sh")), Control::Exit);
    assert_eq!(rt.end(), Control::Exit);
    assert_eq!(rt.take_stdout(), "after exit\nend 0\nend 5\n");
}

#[test]
fn array_overflow_errors_name_the_limit() {
    let mut limited = array("small", &[ScalarType::Long], Some(ScalarType::Long));
    limited.max_entries = Some(2);
    let mut prog = program(
        vec![
            limited,
            array("big", &[ScalarType::Long], Some(ScalarType::Long)),
        ],
        vec![],
        vec![
            probe(
                ProbeKind::Begin { seq: 0 },
                &[ScalarType::Long],
                vec![Stmt::Loop {
                    cond: Some(Expr::CompareLong {
                        op: CompareOp::Lt,
                        lhs: Box::new(Expr::Local(0)),
                        rhs: Box::new(n(3)),
                    }),
                    body: vec![assign(element(0, vec![Expr::Local(0)], at(4, 5)), n(1))],
                    step: Some(Expr::Crement {
                        target: Box::new(LValue::Local(0)),
                        increment: true,
                        prefix: false,
                        loc: at(1, 1),
                    }),
                }],
            ),
            event(
                &[ScalarType::Long],
                vec![incr(element(1, vec![Expr::Fetch(0)], at(7, 3)))],
            ),
        ],
    );
    prog.limits.max_errors = 5;
    prog.limits.max_map_entries = 1;
    let (_, err, _) = run(
        prog,
        &[
            hit(1, vec![Value::Long(1)], "sh"),
            hit(1, vec![Value::Long(2)], "sh"),
        ],
    );
    assert_eq!(
        err,
        "ERROR: Array overflow, check size limit (2) near identifier 'small' at t.stp:4:5\n\
         ERROR: Array overflow, check MAXMAPENTRIES near identifier 'big' at t.stp:7:3\n\
         WARNING: Number of errors: 2, skipped probes: 0\n"
    );
}

#[test]
fn recursion_hits_maxnesting() {
    // function f(n) { return f(n + 1) }
    let f = Function {
        name: "f".to_owned(),
        params: vec![ScalarType::Long],
        ret: Some(ScalarType::Long),
        locals: vec![ScalarType::Long],
        body: vec![Stmt::Return(Some(Expr::Call {
            function: 0,
            args: vec![binary(BinaryOp::Add, Expr::Local(0), n(1), at(1, 1))],
            loc: at(2, 10),
        }))],
    };
    let prog = program(
        vec![],
        vec![f],
        vec![begin(vec![Stmt::Expr(Expr::Call {
            function: 0,
            args: vec![n(0)],
            loc: at(5, 3),
        })])],
    );
    let (_, err, control) = run(prog, &[]);
    assert_eq!(
        err.lines().next(),
        Some("ERROR: MAXNESTING exceeded near identifier 'f' at t.stp:2:10")
    );
    assert!(matches!(control, Control::Error(_)));
}

#[test]
fn nesting_up_to_the_limit_works() {
    // function fact(n) { if (n <= 1) return 1; return n * fact(n - 1) }
    let fact = Function {
        name: "fact".to_owned(),
        params: vec![ScalarType::Long],
        ret: Some(ScalarType::Long),
        locals: vec![ScalarType::Long],
        body: vec![
            Stmt::If {
                cond: Expr::CompareLong {
                    op: CompareOp::Le,
                    lhs: Box::new(Expr::Local(0)),
                    rhs: Box::new(n(1)),
                },
                then: vec![Stmt::Return(Some(n(1)))],
                otherwise: vec![],
            },
            Stmt::Return(Some(binary(
                BinaryOp::Mul,
                Expr::Local(0),
                Expr::Call {
                    function: 0,
                    args: vec![binary(BinaryOp::Sub, Expr::Local(0), n(1), at(1, 1))],
                    loc: at(1, 1),
                },
                at(1, 1),
            ))),
        ],
    };
    let out = stdout_of(program(
        vec![],
        vec![fact],
        vec![begin(vec![println(vec![Expr::Call {
            function: 0,
            args: vec![n(10)],
            loc: at(1, 1),
        }])])],
    ));
    assert_eq!(out, "3628800\n");
}

#[test]
fn an_endless_loop_hits_maxaction() {
    let prog = program(
        vec![],
        vec![],
        vec![begin(vec![Stmt::Loop {
            cond: None,
            body: vec![],
            step: None,
        }])],
    );
    let (_, err, _) = run(prog, &[]);
    assert!(err.starts_with("ERROR: MAXACTION exceeded\n"), "{err}");
}

#[test]
fn begin_and_end_probes_allow_ten_times_maxaction() {
    // 2,000 iterations of two statements: over MAXACTION (1,000) for an
    // event, under SystemTap's MAXACTION_INTERRUPTIBLE (10,000) in begin.
    let count_to_2000 = || {
        vec![Stmt::Loop {
            cond: None,
            body: vec![
                incr(LValue::Global(0)),
                Stmt::If {
                    cond: Expr::CompareLong {
                        op: CompareOp::Ge,
                        lhs: Box::new(Expr::Global(0)),
                        rhs: Box::new(n(2000)),
                    },
                    then: vec![Stmt::Break],
                    otherwise: vec![],
                },
            ],
            step: None,
        }]
    };
    let mut body = count_to_2000();
    body.push(println(vec![Expr::LongToStr(Box::new(Expr::Global(0)))]));
    let prog = program(vec![long_global("n")], vec![], vec![begin(body)]);
    assert_eq!(stdout_of(prog), "2000\n");
    let prog = program(
        vec![long_global("n")],
        vec![],
        vec![event(&[], count_to_2000())],
    );
    let (_, err, _) = run(prog, &[hit(0, vec![], "x")]);
    assert!(err.starts_with("ERROR: MAXACTION exceeded"), "{err}");
}

#[test]
fn statistics_and_empty_aggregates() {
    let t = 0;
    let st = || LValue::Global(t);
    let prog = program(
        vec![stats("t")],
        vec![],
        vec![begin(vec![
            printf(
                "%d %d\n",
                vec![stat(StatOp::Count, st()), stat(StatOp::Sum, st())],
            ),
            Stmt::Aggregate {
                target: st(),
                value: n(4),
            },
            Stmt::Aggregate {
                target: st(),
                value: n(7),
            },
            Stmt::Aggregate {
                target: st(),
                value: n(-2),
            },
            printf(
                "%d %d %d %d %d\n",
                vec![
                    stat(StatOp::Count, st()),
                    stat(StatOp::Sum, st()),
                    stat(StatOp::Min, st()),
                    stat(StatOp::Max, st()),
                    stat(StatOp::Avg, st()),
                ],
            ),
            Stmt::Delete(st()),
            println(vec![stat(StatOp::Avg, st())]),
        ])],
    );
    let (out, err, _) = run(prog, &[]);
    assert_eq!(out, "0 0\n3 9 -2 7 3\n");
    assert_eq!(
        err.lines().next(),
        Some("ERROR: empty aggregate near operator '@avg' at t.stp:9:5")
    );
}

#[test]
fn hist_log_prints_as_systemtap() {
    let prog = program(
        vec![stats("lat")],
        vec![],
        vec![
            event(
                &[ScalarType::Long],
                vec![Stmt::Aggregate {
                    target: LValue::Global(0),
                    value: Expr::Fetch(0),
                }],
            ),
            end(vec![Stmt::Expr(call(
                Builtin::Print,
                vec![Expr::Hist {
                    spec: HistSpec::Log,
                    stat: Box::new(LValue::Global(0)),
                }],
            ))]),
        ],
    );
    let hits: Vec<Hit> = [3, 5, 6, 7, 12, 100, 100]
        .iter()
        .map(|v| hit(0, vec![Value::Long(*v)], "sh"))
        .collect();
    let (out, err, _) = run(prog, &hits);
    assert_eq!(err, "");
    let expected = [
        "value |-------------------------------------------------- count",
        "    0 |                                                   0",
        "    1 |                                                   0",
        "    2 |@                                                  1",
        "    4 |@@@                                                3",
        "    8 |@                                                  1",
        "   16 |                                                   0",
        "   32 |                                                   0",
        "   64 |@@                                                 2",
        "  128 |                                                   0",
        "  256 |                                                   0",
        "",
        "",
    ]
    .join("\n");
    assert_eq!(out, expected);
}

#[test]
fn printing_an_empty_histogram_is_an_error() {
    let prog = program(
        vec![stats("lat")],
        vec![],
        vec![end(vec![Stmt::Expr(call(
            Builtin::Print,
            vec![Expr::Hist {
                spec: HistSpec::Log,
                stat: Box::new(LValue::Global(0)),
            }],
        ))])],
    );
    let (_, err, _) = run(prog, &[]);
    assert_eq!(err.lines().next(), Some("ERROR: empty aggregate"));
}

#[test]
fn stat_arrays_sort_by_count_and_by_named_aggregate() {
    let a = 0;
    let add = |k: &str, v: i64| Stmt::Aggregate {
        target: element(a, vec![s(k)], at(1, 1)),
        value: n(v),
    };
    let show = |sort| foreach(a, vec![0], sort, vec![printf("%s ", vec![Expr::Local(0)])]);
    let prog = program(
        vec![array("a", &[ScalarType::String], None)],
        vec![],
        vec![probe(
            ProbeKind::Begin { seq: 0 },
            &[ScalarType::String],
            vec![
                add("few-big", 1000),
                add("many-small", 1),
                add("many-small", 1),
                add("many-small", 1),
                show(by_value_desc()),
                show(Some(Sort {
                    key: SortKey::Value {
                        aggregate: Some(StatOp::Sum),
                    },
                    descending: true,
                })),
                println(vec![stat(
                    StatOp::Count,
                    element(a, vec![s("absent")], at(1, 1)),
                )]),
            ],
        )],
    );
    assert_eq!(stdout_of(prog), "many-small few-big few-big many-small 0\n");
}

#[test]
fn written_but_unread_globals_are_displayed_at_the_end() {
    let prog = program(
        vec![
            long_global("count"),
            global(
                "name",
                GlobalType::Scalar {
                    ty: ScalarType::String,
                },
            ),
            array(
                "per",
                &[ScalarType::String, ScalarType::Long],
                Some(ScalarType::Long),
            ),
            stats("st"),
            long_global("printed"),
            long_global("__tapset_state"),
        ],
        vec![],
        vec![
            begin(vec![
                assign(LValue::Global(0), n(26)),
                assign(LValue::Global(1), s("x")),
                assign(element(2, vec![s("a"), n(1)], at(1, 1)), n(1)),
                assign(element(2, vec![s("b"), n(2)], at(1, 1)), n(5)),
                Stmt::Aggregate {
                    target: LValue::Global(3),
                    value: n(3),
                },
                assign(LValue::Global(4), n(1)),
                assign(LValue::Global(5), n(1)),
            ]),
            end(vec![println(vec![s("end"), Expr::Global(4)])]),
        ],
    );
    assert_eq!(
        stdout_of(prog),
        "end1\ncount=0x1a\nname=\"x\"\nper[\"b\",2]=0x5\nper[\"a\",1]=0x1\n\
         st @count=1 @min=3 @max=3 @sum=3 @avg=3\n"
    );
}

#[test]
fn try_catch_receives_the_message() {
    let prog = program(
        vec![],
        vec![],
        vec![probe(
            ProbeKind::Begin { seq: 0 },
            &[ScalarType::String],
            vec![Stmt::Try {
                body: vec![
                    Stmt::Expr(call(Builtin::Error, vec![s("boom")])),
                    println(vec![s("not reached")]),
                ],
                catch_var: Some(0),
                catch: vec![println(vec![s("caught: "), Expr::Local(0)])],
            }],
        )],
    );
    assert_eq!(stdout_of(prog), "caught: boom\n");
}

#[test]
fn strings_are_truncated_and_compared_bytewise() {
    let mut prog = program(
        vec![],
        vec![],
        vec![probe(
            ProbeKind::Begin { seq: 0 },
            &[ScalarType::String],
            vec![
                assign(
                    LValue::Local(0),
                    Expr::Concat(Box::new(s("abcdef")), Box::new(s("ghijkl"))),
                ),
                println(vec![Expr::Local(0)]),
                println(vec![Expr::CompareStr {
                    op: CompareOp::Lt,
                    lhs: Box::new(s("B")),
                    rhs: Box::new(s("a")),
                }]),
            ],
        )],
    );
    // MAXSTRINGLEN counts the terminator: 8 leaves 7 bytes.
    prog.limits.max_string_len = 8;
    assert_eq!(stdout_of(prog), "abcdefg\n1\n");
}

#[test]
fn arithmetic_wraps_and_shifts_clamp() {
    let b = |op, x, y| binary(op, n(x), n(y), at(1, 1));
    let out = stdout_of(program(
        vec![],
        vec![],
        vec![begin(vec![printf(
            "%d %d %d %d %d %d %d %d\n",
            vec![
                b(BinaryOp::Add, i64::MAX, 1),
                b(BinaryOp::Div, i64::MIN, -1),
                b(BinaryOp::Mod, -7, 3),
                b(BinaryOp::Shl, 1, 63),
                b(BinaryOp::Shl, 1, 64),
                b(BinaryOp::Shl, 3, -1),
                b(BinaryOp::Shr, -16, 2),
                b(BinaryOp::UShr, -1, 60),
            ],
        )])],
    ));
    assert_eq!(
        out,
        "-9223372036854775808 -9223372036854775808 -1 -9223372036854775808 1 3 -4 15\n"
    );
}

#[test]
fn context_builtins_and_regex() {
    let prog = program(
        vec![],
        vec![],
        vec![event(
            &[ScalarType::String],
            vec![
                printf(
                    "%d %d %s %s %d\n",
                    vec![
                        call(Builtin::Pid, vec![]),
                        call(Builtin::Tid, vec![]),
                        call(Builtin::Execname, vec![]),
                        call(Builtin::Ppfunc, vec![]),
                        call(Builtin::Target, vec![]),
                    ],
                ),
                Stmt::If {
                    cond: Expr::Regex {
                        negated: false,
                        operand: Box::new(Expr::Fetch(0)),
                        pattern: "^/etc/([a-z]+)$".to_owned(),
                    },
                    then: vec![println(vec![call(Builtin::Matched, vec![n(1)])])],
                    otherwise: vec![],
                },
                println(vec![call(Builtin::ErrnoStr, vec![n(-2)])]),
            ],
        )],
    );
    let mut rt = Runtime::new(prog, 7);
    rt.begin();
    let mut h = hit(0, vec![Value::Str("/etc/passwd".to_owned())], "cat");
    h.context.pp = "kernel.function(\"do_sys_openat2\")".to_owned();
    rt.hit(&h);
    assert_eq!(
        rt.take_stdout(),
        "100 101 cat do_sys_openat2 7\npasswd\nENOENT\n"
    );
}

#[test]
fn wrap_arrays_keep_the_newest_entries() {
    let mut a = array("a", &[ScalarType::Long], Some(ScalarType::Long));
    a.max_entries = Some(2);
    a.wrap = true;
    let prog = program(
        vec![a],
        vec![],
        vec![probe(
            ProbeKind::Begin { seq: 0 },
            &[ScalarType::Long],
            vec![
                assign(element(0, vec![n(1)], at(1, 1)), n(1)),
                assign(element(0, vec![n(2)], at(1, 1)), n(2)),
                assign(element(0, vec![n(3)], at(1, 1)), n(3)),
                foreach(0, vec![0], None, vec![printf("%d ", vec![Expr::Local(0)])]),
            ],
        )],
    );
    assert_eq!(stdout_of(prog), "2 3 ");
}

#[test]
fn compound_division_by_zero_names_the_operator() {
    let prog = program(
        vec![long_global("x")],
        vec![],
        vec![begin(vec![Stmt::Expr(Expr::Assign {
            target: Box::new(LValue::Global(0)),
            op: Some(BinaryOp::Div),
            concat: false,
            value: Box::new(n(0)),
            loc: at(2, 7),
        })])],
    );
    let (_, err, _) = run(prog, &[]);
    assert_eq!(
        err.lines().next(),
        Some("ERROR: division by 0 near operator '/=' at t.stp:2:7")
    );
}

#[test]
fn loops_break_continue_and_next() {
    let i = || Expr::Local(0);
    let lt = |e: Expr, v: i64| Expr::CompareLong {
        op: CompareOp::Lt,
        lhs: Box::new(e),
        rhs: Box::new(n(v)),
    };
    let eq = |e: Expr, v: i64| Expr::CompareLong {
        op: CompareOp::Eq,
        lhs: Box::new(e),
        rhs: Box::new(n(v)),
    };
    let prog = program(
        vec![],
        vec![],
        vec![probe(
            ProbeKind::Begin { seq: 0 },
            &[ScalarType::Long],
            vec![
                Stmt::Loop {
                    cond: Some(lt(i(), 10)),
                    body: vec![
                        Stmt::If {
                            cond: eq(i(), 2),
                            then: vec![Stmt::Continue],
                            otherwise: vec![],
                        },
                        Stmt::If {
                            cond: eq(i(), 5),
                            then: vec![Stmt::Break],
                            otherwise: vec![],
                        },
                        printf("%d ", vec![i()]),
                    ],
                    step: Some(Expr::Crement {
                        target: Box::new(LValue::Local(0)),
                        increment: true,
                        prefix: true,
                        loc: at(1, 1),
                    }),
                },
                println(vec![s("|")]),
                Stmt::Next,
                println(vec![s("not reached")]),
            ],
        )],
    );
    assert_eq!(stdout_of(prog), "0 1 3 4 |\n");
}

#[test]
fn linear_histograms_buckets_and_iteration() {
    let spec = HistSpec::Linear {
        start: 0,
        stop: 30,
        interval: 10,
    };
    let st = || Box::new(LValue::Global(0));
    let prog = program(
        vec![stats("s")],
        vec![],
        vec![probe(
            ProbeKind::Begin { seq: 0 },
            &[ScalarType::Long],
            vec![
                Stmt::Aggregate {
                    target: LValue::Global(0),
                    value: n(15),
                },
                Stmt::Aggregate {
                    target: LValue::Global(0),
                    value: n(17),
                },
                Stmt::Aggregate {
                    target: LValue::Global(0),
                    value: n(99),
                },
                Stmt::ForeachHist {
                    hist: spec,
                    stat: Expr::Global(0),
                    bucket: 0,
                    body: vec![printf(
                        "%d:%d ",
                        vec![
                            Expr::Local(0),
                            Expr::HistBucket {
                                spec,
                                stat: st(),
                                bucket: Box::new(Expr::Local(0)),
                            },
                        ],
                    )],
                },
                println(vec![]),
                Stmt::Expr(call(Builtin::Print, vec![Expr::Hist { spec, stat: st() }])),
            ],
        )],
    );
    assert_eq!(
        stdout_of(prog),
        "0:0 1:0 2:2 3:0 4:0 5:1 \n\
         value |-------------------------------------------------- count\n\
         \x20   0 |                                                   0\n\
         \x20  10 |@@                                                 2\n\
         \x20  20 |                                                   0\n\
         \x20  30 |                                                   0\n\
         \x20 >30 |@                                                  1\n\
         \n"
    );
}

#[test]
fn string_builtins() {
    let prog = program(
        vec![],
        vec![],
        vec![begin(vec![
            printf(
                "%s|%s|%d|%d|%s|%s|%d|%d\n",
                vec![
                    call(Builtin::Substr, vec![s("hello world"), n(6), n(3)]),
                    call(Builtin::StrReplace, vec![s("a-b-c"), s("-"), s("+")]),
                    call(Builtin::Strlen, vec![s("four")]),
                    call(Builtin::Isinstr, vec![s("haystack"), s("st")]),
                    call(Builtin::TextStr, vec![s("a\tb")]),
                    call(Builtin::StringQuoted, vec![s("q\"")]),
                    call(Builtin::Strtol, vec![s("ff"), n(16)]),
                    call(Builtin::Stringat, vec![s("AB"), n(1)]),
                ],
            ),
            printf(
                "%s,%s,%s,%s\n",
                vec![
                    call(Builtin::Tokenize, vec![s("a,,b c"), s(", ")]),
                    call(Builtin::Tokenize, vec![s(""), s(", ")]),
                    call(Builtin::Tokenize, vec![s(""), s(", ")]),
                    call(Builtin::Tokenize, vec![s(""), s(", ")]),
                ],
            ),
        ])],
    );
    assert_eq!(
        stdout_of(prog),
        "wor|a+b+c|4|1|a\\tb|\"q\\\"\"|255|66\na,b,c,\n"
    );
}

#[test]
fn warn_goes_to_stderr_and_error_is_a_run_time_error() {
    let prog = program(
        vec![],
        vec![],
        vec![
            begin(vec![
                Stmt::Expr(call(Builtin::Warn, vec![s("careful")])),
                Stmt::Expr(call(Builtin::Error, vec![s("bad thing")])),
            ]),
            end(vec![println(vec![s("end")])]),
        ],
    );
    let (out, err, control) = run(prog, &[]);
    assert_eq!(out, "");
    assert_eq!(
        err,
        "WARNING: careful\nERROR: bad thing\nWARNING: Number of errors: 1, skipped probes: 0\n"
    );
    assert_eq!(control, Control::Error("bad thing".to_owned()));
}

#[test]
fn variance_uses_the_scripts_bit_shift() {
    let st = || LValue::Global(0);
    let mut variance = stat(StatOp::Variance, st());
    if let Expr::Stat { param, .. } = &mut variance {
        *param = 8;
    }
    let mut body: Block = [1, 2, 3, 4]
        .iter()
        .map(|v| Stmt::Aggregate {
            target: st(),
            value: n(*v),
        })
        .collect();
    body.push(println(vec![variance]));
    // With 8 bits of scaling the integer Welford gets close to 1.67.
    assert_eq!(
        stdout_of(program(vec![stats("s")], vec![], vec![begin(body)])),
        "1\n"
    );
}

#[test]
fn timers_run_only_while_running() {
    let prog = program(
        vec![],
        vec![],
        vec![probe(
            ProbeKind::Timer {
                period_ns: 1_000_000,
                randomize_ns: 0,
            },
            &[],
            vec![println(vec![s("tick")])],
        )],
    );
    let mut rt = Runtime::new(prog, 0);
    assert_eq!(
        rt.timers(),
        [TimerProbe {
            probe: 0,
            period_ns: 1_000_000,
            randomize_ns: 0,
        }]
    );
    assert_eq!(rt.timer(0, &HitContext::default()), Control::Continue);
    rt.begin();
    rt.timer(0, &HitContext::default());
    // Not a timer probe index: ignored.
    rt.timer(5, &HitContext::default());
    rt.end();
    rt.timer(0, &HitContext::default());
    assert_eq!(rt.take_stdout(), "tick\n");
}

#[test]
fn the_runtime_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Runtime>();
}

#[test]
fn begin_probes_run_as_the_agent_process() {
    let out = stdout_of(program(
        vec![],
        vec![],
        vec![begin(vec![println(vec![call(Builtin::Pid, vec![])])])],
    ));
    assert_eq!(out, format!("{}\n", std::process::id()));
}

#[test]
fn globals_kept_elsewhere_come_in_and_go_out_in_insertion_order() {
    let prog = program(
        vec![
            long_global("n"),
            array("a", &[ScalarType::String], Some(ScalarType::Long)),
            stats("s"),
        ],
        Vec::new(),
        vec![end(vec![
            Stmt::Foreach {
                array: 1,
                keys: vec![0],
                value: None,
                slice: Vec::new(),
                sort: None,
                limit: None,
                body: vec![printf(
                    "%s=%d\n",
                    vec![Expr::Local(0), index(1, vec![Expr::Local(0)])],
                )],
            },
            printf(
                "n=%d count=%d max=%d\n",
                vec![
                    Expr::Global(0),
                    Expr::Stat {
                        op: StatOp::Count,
                        stat: Box::new(LValue::Global(2)),
                        param: 0,
                        loc: at(1, 1),
                    },
                    Expr::Stat {
                        op: StatOp::Max,
                        stat: Box::new(LValue::Global(2)),
                        param: 0,
                        loc: at(1, 1),
                    },
                ],
            ),
        ])],
    );
    let mut prog = prog;
    prog.probes[0].locals = vec![ScalarType::String];
    let mut rt = Runtime::new(prog, 0);
    rt.begin();
    rt.set_global(0, GlobalValue::Scalar(Value::Long(7)));
    rt.set_global(
        1,
        GlobalValue::Array(vec![
            (vec![Value::Str("z".into())], Element::Value(Value::Long(1))),
            (vec![Value::Str("a".into())], Element::Value(Value::Long(2))),
        ]),
    );
    let mut cpu0 = StatValue {
        count: 2,
        sum: 10,
        min: 3,
        max: 7,
        buckets: Vec::new(),
    };
    cpu0.merge(&StatValue {
        count: 1,
        sum: 9,
        min: 9,
        max: 9,
        buckets: Vec::new(),
    });
    rt.set_global(2, GlobalValue::Stat(cpu0.clone()));
    assert_eq!(rt.global(2), Some(GlobalValue::Stat(cpu0)));
    assert_eq!(rt.global(0), Some(GlobalValue::Scalar(Value::Long(7))));
    rt.end();
    assert_eq!(rt.take_stdout(), "z=1\na=2\nn=7 count=3 max=9\n");
}

#[test]
fn errors_and_exits_from_elsewhere_stop_the_session() {
    let mut rt = Runtime::new(
        program(
            Vec::new(),
            Vec::new(),
            vec![end(vec![println(vec![s("end")])])],
        ),
        0,
    );
    rt.begin();
    assert_eq!(
        rt.printf(&fmt("%d!\n"), &[Value::Long(4)]),
        Control::Continue
    );
    assert_eq!(
        rt.raise("division by 0 near operator '/' at t.stp:1:2"),
        Control::Error("division by 0 near operator '/' at t.stp:1:2".into())
    );
    assert!(!rt.is_running());
    rt.end();
    assert_eq!(rt.take_stdout(), "4!\n");
    assert!(rt.take_stderr().starts_with("ERROR: division by 0"));
    let mut rt = Runtime::new(
        program(
            Vec::new(),
            Vec::new(),
            vec![end(vec![println(vec![s("end")])])],
        ),
        0,
    );
    rt.begin();
    assert_eq!(rt.request_exit(), Control::Exit);
    rt.end();
    assert_eq!(rt.take_stdout(), "end\n");
}

#[test]
fn a_slot_that_faulted_at_the_hit_raises_where_the_handler_uses_it() {
    let fault = "kernel read fault at 0x0000000000000008 near t.stp:3:9";
    // Used inside try: caught; used outside: the run-time error.
    let body = vec![
        Stmt::Try {
            body: vec![println(vec![Expr::Fetch(0)])],
            catch_var: Some(0),
            catch: vec![println(vec![s("caught: "), Expr::Local(0)])],
        },
        println(vec![s("fine "), Expr::LongToStr(Box::new(Expr::Fetch(1)))]),
        println(vec![Expr::Fetch(0)]),
        println(vec![s("not reached")]),
    ];
    let mut probe = event(&[ScalarType::String, ScalarType::Long], body);
    probe.locals = vec![ScalarType::String];
    let mut faulted = hit(0, vec![s_value(""), Value::Long(7)], "sh");
    faulted.faults.push(SlotFault {
        slot: 0,
        message: fault.to_owned(),
    });
    let (stdout, stderr, control) = run(program(vec![], vec![], vec![probe]), &[faulted]);
    assert_eq!(stdout, format!("caught: {fault}\nfine 7\n"));
    assert_eq!(
        stderr,
        format!("ERROR: {fault}\nWARNING: Number of errors: 1, skipped probes: 0\n")
    );
    assert_eq!(control, Control::Error(fault.to_owned()));
}

#[test]
fn symname_and_symdata_name_functions_from_the_symbols_given() {
    let program = program(
        vec![],
        vec![],
        vec![begin(vec![
            println(vec![call(
                Builtin::Symname,
                vec![n(0xffffffff812c4f40_u64 as i64)],
            )]),
            println(vec![call(
                Builtin::Symdata,
                vec![n(0xffffffff812c4f40_u64 as i64)],
            )]),
            println(vec![call(Builtin::Symname, vec![n(16)])]),
        ])],
    );
    let mut runtime = Runtime::new(program.clone(), 0);
    runtime.set_symbols(std::sync::Arc::new(Symbols::from_kallsyms(
        "ffffffff812c4f30 T vfs_read\nffffffff812c5100 T vfs_write\n",
    )));
    runtime.begin();
    runtime.end();
    assert_eq!(
        runtime.take_stdout(),
        "vfs_read\nvfs_read+0x10/0x1d0 [kernel]\n0x0000000000000010\n"
    );
    // Without symbols, addresses read as hex.
    assert_eq!(
        stdout_of(program),
        "0xffffffff812c4f40\n0xffffffff812c4f40\n0x0000000000000010\n"
    );
}

fn s_value(text: &str) -> Value {
    Value::Str(text.to_owned())
}

#[test]
fn entry_values_nest_per_thread_and_a_return_without_its_entry_does_not_run() {
    // Probe 0 saves its fetch at each entry; probe 1, the return, prints
    // the innermost saved value.
    let entry_half = Probe {
        body: vec![Stmt::EntrySave {
            key: 1,
            values: vec![Expr::Fetch(0)],
        }],
        ..event(&[ScalarType::Long], vec![])
    };
    let ret = Probe {
        entry: Some(tapmatrix_ir::EntryValues {
            key: 1,
            types: vec![ScalarType::Long],
        }),
        ..event(&[], vec![println(vec![Expr::EntryValue(0)])])
    };
    let (out, err, _) = run(
        program(vec![], vec![], vec![entry_half, ret]),
        &[
            // A return whose call began before the probes: not run.
            hit(1, vec![], "dd"),
            hit(0, vec![Value::Long(7)], "dd"),
            hit(0, vec![Value::Long(8)], "dd"),
            hit(1, vec![], "dd"),
            hit(1, vec![], "dd"),
            hit(1, vec![], "dd"),
        ],
    );
    assert_eq!(err, "");
    assert_eq!(out, "8\n7\n");
}
