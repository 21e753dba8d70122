//! The canonical pretty-printer. Its output parses back to an equal AST
//! (parentheses are added exactly where precedence needs them).

use std::fmt::Write;

use crate::ast::*;

/// Prints a file in canonical form.
pub fn print_file(file: &File) -> String {
    let mut p = Printer::default();
    for (i, item) in file.items.iter().enumerate() {
        if i > 0 {
            p.out.push('\n');
        }
        p.item(item);
    }
    p.out
}

/// Prints one expression in canonical form.
pub fn print_expr(expr: &Expr) -> String {
    let mut p = Printer::default();
    p.expr(expr, 0);
    p.out
}

#[derive(Default)]
struct Printer {
    out: String,
    indent: usize,
}

/// Precedence levels, loosest first (see the parser's grammar).
const ASSIGN: u8 = 0;
const TERNARY: u8 = 1;
const OROR: u8 = 2;
const ANDAND: u8 = 3;
const BITOR: u8 = 4;
const BITXOR: u8 = 5;
const BITAND: u8 = 6;
const IN: u8 = 7;
const COMPARE: u8 = 8;
const SHIFT: u8 = 9;
const CONCAT: u8 = 10;
const ADD: u8 = 11;
const MUL: u8 = 12;
const UNARY: u8 = 13;
const CREMENT: u8 = 14;
const VALUE: u8 = 15;

fn bin_level(op: BinOp) -> u8 {
    match op {
        BinOp::OrOr => OROR,
        BinOp::AndAnd => ANDAND,
        BinOp::BitOr => BITOR,
        BinOp::BitXor => BITXOR,
        BinOp::BitAnd => BITAND,
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => COMPARE,
        BinOp::Shl | BinOp::Shr | BinOp::UShr => SHIFT,
        BinOp::Concat => CONCAT,
        BinOp::Add | BinOp::Sub => ADD,
        BinOp::Mul | BinOp::Div | BinOp::Mod => MUL,
    }
}

fn level(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Assign { .. } => ASSIGN,
        ExprKind::Ternary { .. } => TERNARY,
        ExprKind::Binary { op, .. } => bin_level(*op),
        ExprKind::In { .. } => IN,
        ExprKind::Regex { .. } => COMPARE,
        ExprKind::Unary { .. } => UNARY,
        ExprKind::Crement { .. } => CREMENT,
        ExprKind::Target(t) if t.address_of => UNARY,
        _ => VALUE,
    }
}

fn string_lit(value: &str) -> String {
    let mut s = String::with_capacity(value.len() + 2);
    s.push('"');
    for c in value.chars() {
        if c == '"' {
            s.push('\\');
        }
        s.push(c);
    }
    s.push('"');
    s
}

fn literal(l: &Literal) -> String {
    match l {
        Literal::Number(n) => n.to_string(),
        Literal::String(s) => string_lit(s),
    }
}

fn type_name(t: Type) -> &'static str {
    match t {
        Type::Long => "long",
        Type::String => "string",
    }
}

impl Printer {
    fn newline(&mut self) {
        self.out.push('\n');
        for _ in 0..self.indent {
            self.out.push_str("  ");
        }
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Probe(p) => {
                self.out.push_str("probe ");
                self.points(&p.points);
                self.out.push(' ');
                self.block(&p.body);
            }
            Item::Alias(a) => {
                self.out.push_str("probe ");
                let op = match a.kind {
                    AliasKind::Prologue => " = ",
                    AliasKind::Epilogue => " += ",
                };
                for name in &a.names {
                    self.point(name);
                    self.out.push_str(op);
                }
                self.points(&a.points);
                self.out.push(' ');
                self.block(&a.body);
                if let Some(e) = &a.epilogue {
                    self.out.push_str(", ");
                    self.block(e);
                }
            }
            Item::Function(f) => {
                if f.private {
                    self.out.push_str("private ");
                }
                self.out.push_str("function ");
                self.out.push_str(&f.name);
                if let Some(t) = f.return_type {
                    self.out.push(':');
                    self.out.push_str(type_name(t));
                }
                self.out.push_str(" (");
                for (i, p) in f.params.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    self.out.push_str(&p.name);
                    if let Some(t) = p.ty {
                        self.out.push(':');
                        self.out.push_str(type_name(t));
                    }
                }
                self.out.push_str(") ");
                if let Some(n) = f.priority {
                    let _ = write!(self.out, ": {n} ");
                }
                match &f.body {
                    FunctionBody::Block(b) => self.block(b),
                    FunctionBody::Embedded(e) => self.embedded(&e.code),
                }
            }
            Item::Global(g) => {
                self.out
                    .push_str(if g.private { "private " } else { "global " });
                self.out.push_str(&g.name);
                if g.wrap {
                    self.out.push('%');
                }
                if let Some(n) = g.size {
                    let _ = write!(self.out, "[{n}]");
                }
                if let Some(init) = &g.init {
                    self.out.push_str(" = ");
                    self.out.push_str(&literal(init));
                }
            }
            Item::Embedded(e) => self.embedded(&e.code),
        }
        self.out.push('\n');
    }

    fn embedded(&mut self, code: &str) {
        self.out.push_str("%{");
        self.out.push_str(code);
        self.out.push_str("%}");
    }

    fn points(&mut self, points: &[ProbePoint]) {
        for (i, p) in points.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.point(p);
        }
    }

    fn point(&mut self, p: &ProbePoint) {
        for (i, c) in p.components.iter().enumerate() {
            if i > 0 {
                self.out.push('.');
            }
            self.out.push_str(&c.name);
            if let Some(arg) = &c.arg {
                self.out.push('(');
                self.out.push_str(&literal(arg));
                self.out.push(')');
            }
        }
        if p.sufficient {
            self.out.push('!');
        } else if p.optional {
            self.out.push('?');
        }
        if let Some(cond) = &p.condition {
            self.out.push_str(" if (");
            self.expr(cond, 0);
            self.out.push(')');
        }
    }

    fn block(&mut self, b: &Block) {
        self.out.push('{');
        self.indent += 1;
        for s in &b.stmts {
            self.newline();
            self.stmt(s);
        }
        self.indent -= 1;
        self.newline();
        self.out.push('}');
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Block(b) => self.block(b),
            StmtKind::Empty => self.out.push(';'),
            StmtKind::Expr(e) => {
                self.expr(e, 0);
                self.out.push(';');
            }
            StmtKind::If {
                cond,
                then,
                otherwise,
            } => {
                self.out.push_str("if (");
                self.expr(cond, 0);
                self.out.push_str(") ");
                self.stmt(then);
                if let Some(o) = otherwise {
                    self.out.push_str(" else ");
                    self.stmt(o);
                }
            }
            StmtKind::For(f) => {
                let For {
                    init,
                    cond,
                    step,
                    body,
                } = &**f;
                self.out.push_str("for (");
                if let Some(e) = init {
                    self.expr(e, 0);
                }
                self.out.push_str("; ");
                if let Some(e) = cond {
                    self.expr(e, 0);
                }
                self.out.push_str("; ");
                if let Some(e) = step {
                    self.expr(e, 0);
                }
                self.out.push_str(") ");
                self.stmt(body);
            }
            StmtKind::While { cond, body } => {
                self.out.push_str("while (");
                self.expr(cond, 0);
                self.out.push_str(") ");
                self.stmt(body);
            }
            StmtKind::Foreach(f) => self.foreach(f),
            StmtKind::Return(e) => {
                self.out.push_str("return");
                if let Some(e) = e {
                    self.out.push(' ');
                    self.expr(e, 0);
                }
                self.out.push(';');
            }
            StmtKind::Delete(e) => {
                self.out.push_str("delete ");
                self.expr(e, 0);
                self.out.push(';');
            }
            StmtKind::Break => self.out.push_str("break;"),
            StmtKind::Continue => self.out.push_str("continue;"),
            StmtKind::Next => self.out.push_str("next;"),
            StmtKind::Try(t) => {
                self.out.push_str("try ");
                self.block(&t.body);
                self.out.push_str(" catch ");
                if let Some(v) = &t.catch_var {
                    let _ = write!(self.out, "({}) ", v.name);
                }
                self.block(&t.catch);
            }
        }
    }

    fn sort_mark(&mut self, dir: SortDir) {
        self.out.push(match dir {
            SortDir::Ascending => '+',
            SortDir::Descending => '-',
        });
    }

    fn foreach(&mut self, f: &Foreach) {
        self.out.push_str("foreach (");
        if let Some(v) = &f.value {
            self.out.push_str(&v.name);
            self.out.push_str(" = ");
        }
        self.out.push('[');
        for (i, k) in f.keys.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.out.push_str(&k.name);
            if let Some(sort) = f.sort.filter(|s| s.column == i + 1) {
                self.sort_mark(sort.dir);
            }
        }
        self.out.push_str("] in ");
        self.indexable(&f.array);
        if let Some(slice) = &f.slice {
            self.keys(slice);
        }
        if let Some(sort) = f.sort.filter(|s| s.column == 0) {
            if let Some(op) = sort.aggregate {
                self.out.push(' ');
                self.out.push_str(op.as_str());
            }
            self.sort_mark(sort.dir);
        }
        if let Some(limit) = &f.limit {
            self.out.push_str(" limit ");
            self.expr(limit, 0);
        }
        self.out.push_str(") ");
        self.stmt(&f.body);
    }

    fn keys(&mut self, keys: &[Option<Expr>]) {
        self.out.push('[');
        for (i, k) in keys.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            match k {
                Some(e) => self.expr(e, 0),
                None => self.out.push('*'),
            }
        }
        self.out.push(']');
    }

    fn indexable(&mut self, i: &Indexable) {
        match i {
            Indexable::Name(n) => self.out.push_str(&n.name),
            Indexable::Hist(h) => self.hist(h),
        }
    }

    fn hist(&mut self, h: &Hist) {
        match h.kind {
            HistKind::Linear {
                start,
                stop,
                interval,
            } => {
                self.out.push_str("@hist_linear(");
                self.expr(&h.stat, 0);
                let _ = write!(self.out, ", {start}, {stop}, {interval})");
            }
            HistKind::Log => {
                self.out.push_str("@hist_log(");
                self.expr(&h.stat, 0);
                self.out.push(')');
            }
        }
    }

    fn args(&mut self, args: &[Expr]) {
        self.out.push('(');
        for (i, a) in args.iter().enumerate() {
            if i > 0 {
                self.out.push_str(", ");
            }
            self.expr(a, 0);
        }
        self.out.push(')');
    }

    /// Prints `e`, in parentheses when it binds looser than `min`.
    fn expr(&mut self, e: &Expr, min: u8) {
        if level(e) < min {
            self.out.push('(');
            self.expr(e, 0);
            self.out.push(')');
            return;
        }
        match &e.kind {
            ExprKind::Number(n) => {
                // Negative values come from wrapped unsigned literals.
                let _ = write!(self.out, "{}", *n as u64);
            }
            ExprKind::String(s) => self.out.push_str(&string_lit(s)),
            ExprKind::Ident(n) => self.out.push_str(n),
            ExprKind::Embedded(code) => self.embedded(code),
            ExprKind::Target(t) => self.target(t),
            ExprKind::Call { name, args } => {
                self.out.push_str(name);
                self.args(args);
            }
            ExprKind::Hist(h) => self.hist(h),
            ExprKind::Index { base, keys } => {
                self.indexable(base);
                self.keys(keys);
            }
            ExprKind::Unary { op, operand } => {
                self.out.push(match op {
                    UnaryOp::Plus => '+',
                    UnaryOp::Neg => '-',
                    UnaryOp::Not => '!',
                    UnaryOp::BitNot => '~',
                });
                // Keep `- -x` from lexing as `--x` (and `!~` as a regex op).
                let min = if level(operand) <= CREMENT {
                    VALUE
                } else {
                    UNARY
                };
                self.expr(operand, min);
            }
            ExprKind::Crement {
                increment,
                prefix,
                operand,
            } => {
                let op = if *increment { "++" } else { "--" };
                if *prefix {
                    self.out.push_str(op);
                }
                self.expr(operand, VALUE);
                if !*prefix {
                    self.out.push_str(op);
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let l = bin_level(*op);
                // Comparisons chain to the left, but a regex test on the
                // left needs parentheses.
                let lhs_min = if l == COMPARE && matches!(lhs.kind, ExprKind::Regex { .. }) {
                    SHIFT
                } else {
                    l
                };
                self.expr(lhs, lhs_min);
                self.out.push(' ');
                self.out.push_str(op.as_str());
                self.out.push(' ');
                self.expr(rhs, l + 1);
            }
            ExprKind::Regex {
                negated,
                lhs,
                pattern,
            } => {
                self.expr(lhs, SHIFT);
                self.out.push_str(if *negated { " !~ " } else { " =~ " });
                self.out.push_str(&string_lit(pattern));
            }
            ExprKind::In { keys, array } => {
                self.out.push('[');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        self.out.push_str(", ");
                    }
                    match k {
                        Some(k) => self.expr(k, COMPARE),
                        None => self.out.push('*'),
                    }
                }
                self.out.push_str("] in ");
                self.indexable(array);
            }
            ExprKind::Ternary {
                cond,
                then,
                otherwise,
            } => {
                self.expr(cond, OROR);
                self.out.push_str(" ? ");
                self.expr(then, 0);
                self.out.push_str(" : ");
                self.expr(otherwise, TERNARY);
            }
            ExprKind::Assign { op, lhs, rhs } => {
                self.expr(lhs, TERNARY);
                self.out.push(' ');
                self.out.push_str(op.as_str());
                self.out.push(' ');
                self.expr(rhs, 0);
            }
            ExprKind::Stat {
                op,
                operand,
                params,
            } => {
                self.out.push_str(op.as_str());
                self.out.push('(');
                self.expr(operand, 0);
                for p in params {
                    let _ = write!(self.out, ", {p}");
                }
                self.out.push(')');
            }
            ExprKind::Defined(e) => {
                self.out.push_str("@defined(");
                self.expr(e, 0);
                self.out.push(')');
            }
            ExprKind::Entry(e) => {
                self.out.push_str("@entry(");
                self.expr(e, 0);
                self.out.push(')');
            }
            ExprKind::Const(s) => {
                let _ = write!(self.out, "@const({})", string_lit(s));
            }
            ExprKind::Probewrite(v) => {
                let _ = write!(self.out, "@probewrite({v})");
            }
            ExprKind::Perf(s) => {
                let _ = write!(self.out, "@perf({})", string_lit(s));
            }
            ExprKind::Register { user, regno } => {
                let _ = write!(
                    self.out,
                    "@{}register({regno})",
                    if *user { 'u' } else { 'k' }
                );
            }
            ExprKind::Deref { user, size, addr } => {
                let _ = write!(self.out, "@{}deref({size}, ", if *user { 'u' } else { 'k' });
                self.expr(addr, 0);
                self.out.push(')');
            }
        }
    }

    fn target(&mut self, t: &Target) {
        if t.address_of {
            self.out.push('&');
        }
        let mut glued = true;
        match &t.base {
            TargetBase::Var(name) => self.out.push_str(name),
            TargetBase::Cast {
                operand,
                type_name,
                module,
            } => {
                self.out.push_str("@cast(");
                self.expr(operand, 0);
                self.out.push_str(", ");
                self.out.push_str(&string_lit(type_name));
                if let Some(m) = module {
                    self.out.push_str(", ");
                    self.out.push_str(&string_lit(m));
                }
                self.out.push(')');
            }
            TargetBase::AtVar { name, module } => {
                self.out.push_str("@var(");
                self.out.push_str(&string_lit(name));
                if let Some(m) = module {
                    self.out.push_str(", ");
                    self.out.push_str(&string_lit(m));
                }
                self.out.push(')');
            }
            TargetBase::Autocast(operand) => {
                let plain = matches!(
                    operand.kind,
                    ExprKind::Ident(_) | ExprKind::Call { .. } | ExprKind::Index { .. }
                );
                if plain {
                    self.expr(operand, VALUE);
                    // `x$` would lex as one identifier.
                    glued = !matches!(operand.kind, ExprKind::Ident(_));
                } else {
                    self.out.push('(');
                    self.expr(operand, 0);
                    self.out.push(')');
                }
            }
        }
        for c in &t.components {
            match c {
                TargetComponent::Member(m) => {
                    self.out.push_str("->");
                    self.out.push_str(m);
                }
                TargetComponent::Index(e) => {
                    self.out.push('[');
                    self.expr(e, 0);
                    self.out.push(']');
                }
                TargetComponent::Pretty(p) => {
                    if !glued {
                        self.out.push(' ');
                    }
                    self.out.push_str(p);
                }
            }
            glued = true;
        }
    }
}
