//! The typed AST of a SystemTap script or tapset file.
//!
//! Every node carries a [`Span`]. Spans never make nodes unequal (see
//! [`Span`]), so `==` on ASTs compares structure and values only.
//!
//! String values are kept as SystemTap keeps them: C escapes such as `\n`
//! stay as written (see [`crate::lexer::string_value`]).

use crate::span::Span;

/// One parsed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Top-level items in source order.
    pub items: Vec<Item>,
}

/// A top-level item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// `probe POINTS { ... }`.
    Probe(Probe),
    /// `probe NAME = POINTS { ... }` or `probe NAME += POINTS { ... }`.
    Alias(ProbeAlias),
    /// `function NAME(...) { ... }`.
    Function(Function),
    /// One variable of a `global` (or `private`) declaration.
    Global(Global),
    /// A top-level `%{ ... %}` block.
    Embedded(Embedded),
}

/// A probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The probe points (brace expansion already applied).
    pub points: Vec<ProbePoint>,
    /// The handler.
    pub body: Block,
    /// The `probe` keyword.
    pub span: Span,
}

/// Whether an alias's body runs before (`=`) or after (`+=`) the user's handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasKind {
    /// `=`: the body is a prologue.
    Prologue,
    /// `+=`: the body is an epilogue.
    Epilogue,
}

/// A probe alias.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeAlias {
    /// The names being defined (`probe a = b = POINTS` defines two).
    pub names: Vec<ProbePoint>,
    /// `=` or `+=`.
    pub kind: AliasKind,
    /// What the alias expands to.
    pub points: Vec<ProbePoint>,
    /// The prologue (for `=`) or epilogue (for `+=`).
    pub body: Block,
    /// The epilogue of a two-body alias `probe a = b { prologue }, { epilogue }`.
    pub epilogue: Option<Block>,
    /// The `probe` keyword.
    pub span: Span,
}

/// A probe point: `kernel.function("x").return?`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbePoint {
    /// The dotted components.
    pub components: Vec<Component>,
    /// `?` (or `!`): no error when it resolves to nothing.
    pub optional: bool,
    /// `!`: stop at the first alternative that resolves.
    pub sufficient: bool,
    /// `if (cond)`.
    pub condition: Option<Expr>,
    /// The first component.
    pub span: Span,
}

/// One component of a probe point: a name (possibly with `*` wildcards) and
/// an optional literal argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// The name, e.g. `function`, `sys_*`, `*`.
    pub name: String,
    /// The argument, e.g. `"vfs_read"` or `100`.
    pub arg: Option<Literal>,
    /// Where.
    pub span: Span,
}

/// A literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Literal {
    /// A number.
    Number(i64),
    /// A string (adjacent literals already joined).
    String(String),
}

/// A value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// `long`.
    Long,
    /// `string`.
    String,
}

/// A function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// Declared `private`.
    pub private: bool,
    /// `:long` or `:string` after the name.
    pub return_type: Option<Type>,
    /// Parameters.
    pub params: Vec<Param>,
    /// `: N` overload priority.
    pub priority: Option<i64>,
    /// The body.
    pub body: FunctionBody,
    /// The name.
    pub span: Span,
}

/// A function parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// `:long` or `:string`.
    pub ty: Option<Type>,
    /// Where.
    pub span: Span,
}

/// A function body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FunctionBody {
    /// Script statements.
    Block(Block),
    /// Embedded C.
    Embedded(Embedded),
}

/// A global variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Global {
    /// Its name.
    pub name: String,
    /// Declared `private`.
    pub private: bool,
    /// `%`: a wrapping array.
    pub wrap: bool,
    /// `[N]`: the array's maximum size.
    pub size: Option<i64>,
    /// `= literal`.
    pub init: Option<Literal>,
    /// The name.
    pub span: Span,
}

/// Embedded C: `%{ ... %}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedded {
    /// The code between `%{` and `%}`.
    pub code: String,
    /// Where.
    pub span: Span,
}

/// `{ statements }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The statements.
    pub stmts: Vec<Stmt>,
    /// The `{`.
    pub span: Span,
}

/// A statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    /// What it is.
    pub kind: StmtKind,
    /// Its first token.
    pub span: Span,
}

/// The statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StmtKind {
    /// `{ ... }`.
    Block(Block),
    /// `;`.
    Empty,
    /// An expression.
    Expr(Expr),
    /// `if (cond) then else otherwise`.
    If {
        /// The condition.
        cond: Expr,
        /// Taken when true.
        then: Box<Stmt>,
        /// Taken when false.
        otherwise: Option<Box<Stmt>>,
    },
    /// `for (init; cond; step) body`.
    For(Box<For>),
    /// `while (cond) body`.
    While {
        /// Tested before each iteration.
        cond: Expr,
        /// The body.
        body: Box<Stmt>,
    },
    /// `foreach (...)`.
    Foreach(Box<Foreach>),
    /// `return` or `return expr`.
    Return(Option<Expr>),
    /// `delete expr`.
    Delete(Expr),
    /// `break`.
    Break,
    /// `continue`.
    Continue,
    /// `next`.
    Next,
    /// `try { } catch (var) { }`.
    Try(Box<Try>),
}

/// `for (init; cond; step) body`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct For {
    /// Run once first.
    pub init: Option<Expr>,
    /// Tested before each iteration (none: always true).
    pub cond: Option<Expr>,
    /// Run after each iteration.
    pub step: Option<Expr>,
    /// The body.
    pub body: Stmt,
}

/// `try { body } catch (var) { catch }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Try {
    /// The guarded block.
    pub body: Block,
    /// The variable receiving the error message.
    pub catch_var: Option<Ident>,
    /// The handler.
    pub catch: Block,
}

/// A plain name with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// The name.
    pub name: String,
    /// Where.
    pub span: Span,
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortDir {
    /// `+`.
    Ascending,
    /// `-`.
    Descending,
}

/// A statistics operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatOp {
    /// `@count`.
    Count,
    /// `@sum`.
    Sum,
    /// `@min`.
    Min,
    /// `@max`.
    Max,
    /// `@avg`.
    Avg,
    /// `@variance`.
    Variance,
}

impl StatOp {
    /// The operator's text, `@` included.
    pub fn as_str(self) -> &'static str {
        match self {
            StatOp::Count => "@count",
            StatOp::Sum => "@sum",
            StatOp::Min => "@min",
            StatOp::Max => "@max",
            StatOp::Avg => "@avg",
            StatOp::Variance => "@variance",
        }
    }

    /// The operator named by `@word`.
    pub fn from_word(word: &str) -> Option<StatOp> {
        Some(match word {
            "@count" => StatOp::Count,
            "@sum" => StatOp::Sum,
            "@min" => StatOp::Min,
            "@max" => StatOp::Max,
            "@avg" => StatOp::Avg,
            "@variance" => StatOp::Variance,
            _ => return None,
        })
    }
}

/// How `foreach` sorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// 0: by value; N: by the Nth key.
    pub column: usize,
    /// Direction.
    pub dir: SortDir,
    /// `arr @sum+`: sort by an aggregate of a statistics value.
    pub aggregate: Option<StatOp>,
}

/// `foreach ([keys] in array[slice] sort limit n) body`, or with `value =`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Foreach {
    /// `v = [k] in arr`: the value variable.
    pub value: Option<Ident>,
    /// The key variables.
    pub keys: Vec<Ident>,
    /// The array (or histogram).
    pub array: Indexable,
    /// `arr[k1, *]`: an array slice (`None` entries are `*`).
    pub slice: Option<Vec<Option<Expr>>>,
    /// Sorting.
    pub sort: Option<Sort>,
    /// `limit expr`.
    pub limit: Option<Expr>,
    /// The body.
    pub body: Stmt,
}

/// What can be indexed or iterated: a name or a histogram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Indexable {
    /// A variable.
    Name(Ident),
    /// `@hist_linear(...)` or `@hist_log(...)`.
    Hist(Hist),
}

/// A histogram operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hist {
    /// Linear (with start, stop, interval) or logarithmic.
    pub kind: HistKind,
    /// The statistic.
    pub stat: Box<Expr>,
    /// The `@hist_...` word.
    pub span: Span,
}

/// The histogram kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistKind {
    /// `@hist_linear(stat, start, stop, interval)`.
    Linear {
        /// Low bound.
        start: i64,
        /// High bound.
        stop: i64,
        /// Bucket width.
        interval: i64,
    },
    /// `@hist_log(stat)`.
    Log,
}

/// An expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Its operator or first token.
    pub span: Span,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `+`.
    Plus,
    /// `-`.
    Neg,
    /// `!`.
    Not,
    /// `~`.
    BitNot,
}

/// Binary operators, from `||` down to `%`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is the operator its `as_str` returns
pub enum BinOp {
    OrOr,
    AndAnd,
    BitOr,
    BitXor,
    BitAnd,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Shl,
    Shr,
    /// `>>>`.
    UShr,
    /// `.`: string concatenation.
    Concat,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}

impl BinOp {
    /// The operator's text.
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::OrOr => "||",
            BinOp::AndAnd => "&&",
            BinOp::BitOr => "|",
            BinOp::BitXor => "^",
            BinOp::BitAnd => "&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Shl => "<<",
            BinOp::Shr => ">>",
            BinOp::UShr => ">>>",
            BinOp::Concat => ".",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Mod => "%",
        }
    }
}

/// Assignment operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)] // each variant is the operator its `as_str` returns
pub enum AssignOp {
    Assign,
    /// `<<<`: add a value to a statistic.
    Aggregate,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Shl,
    Shr,
    And,
    Xor,
    Or,
    /// `.=`.
    Concat,
}

impl AssignOp {
    /// The operator's text.
    pub fn as_str(self) -> &'static str {
        match self {
            AssignOp::Assign => "=",
            AssignOp::Aggregate => "<<<",
            AssignOp::Add => "+=",
            AssignOp::Sub => "-=",
            AssignOp::Mul => "*=",
            AssignOp::Div => "/=",
            AssignOp::Mod => "%=",
            AssignOp::Shl => "<<=",
            AssignOp::Shr => ">>=",
            AssignOp::And => "&=",
            AssignOp::Xor => "^=",
            AssignOp::Or => "|=",
            AssignOp::Concat => ".=",
        }
    }
}

/// The base of a target-symbol expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetBase {
    /// `$name`, `$$vars`, `$$parms`, `$$locals`, `$$return`.
    Var(String),
    /// `@cast(expr, "type", "module")`.
    Cast {
        /// The address.
        operand: Box<Expr>,
        /// The type, e.g. `"struct task_struct"`.
        type_name: String,
        /// Where the type is defined, e.g. `"kernel"`.
        module: Option<String>,
    },
    /// `@var("name@file", "module")`.
    AtVar {
        /// `name` or `name@cu`.
        name: String,
        /// The module.
        module: Option<String>,
    },
    /// `expr->field` on a plain expression (an autocast).
    Autocast(Box<Expr>),
}

/// One step after a target-symbol base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetComponent {
    /// `->name`.
    Member(String),
    /// `[index]`.
    Index(Expr),
    /// `$` or `$$`: pretty-print.
    Pretty(String),
}

/// A target-symbol expression: `&$p->f[i]$`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `&`: take the address.
    pub address_of: bool,
    /// The base.
    pub base: TargetBase,
    /// Members, indexes, pretty-print.
    pub components: Vec<TargetComponent>,
}

/// Expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprKind {
    /// A number.
    Number(i64),
    /// A string (adjacent literals joined).
    String(String),
    /// A variable.
    Ident(String),
    /// Embedded C in an expression: `%{ ... %}`.
    Embedded(String),
    /// A target symbol (`$x`, `@cast`, `@var`, autocast).
    Target(Box<Target>),
    /// `name(args)`, including `printf` and friends.
    Call {
        /// The function.
        name: String,
        /// The arguments (a histogram only as the argument of `print`).
        args: Vec<Expr>,
    },
    /// A histogram as the argument of `print`/`println`/`sprint`/`sprintln`.
    Hist(Hist),
    /// `array[k1, k2]` (`None` is a `*` wildcard).
    Index {
        /// The array.
        base: Indexable,
        /// The keys.
        keys: Vec<Option<Expr>>,
    },
    /// `op operand`.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        operand: Box<Expr>,
    },
    /// `++x`, `x--`.
    Crement {
        /// `++` (true) or `--`.
        increment: bool,
        /// Before (true) or after.
        prefix: bool,
        /// The operand.
        operand: Box<Expr>,
    },
    /// `lhs op rhs`.
    Binary {
        /// The operator.
        op: BinOp,
        /// Left.
        lhs: Box<Expr>,
        /// Right.
        rhs: Box<Expr>,
    },
    /// `lhs =~ "re"` or `lhs !~ "re"`.
    Regex {
        /// `!~`.
        negated: bool,
        /// The string tested.
        lhs: Box<Expr>,
        /// The pattern.
        pattern: String,
    },
    /// `[k1, k2] in array`.
    In {
        /// The keys (`None` is `*`).
        keys: Vec<Option<Expr>>,
        /// The array.
        array: Indexable,
    },
    /// `cond ? then : otherwise`.
    Ternary {
        /// Condition.
        cond: Box<Expr>,
        /// When true.
        then: Box<Expr>,
        /// When false.
        otherwise: Box<Expr>,
    },
    /// `lhs op= rhs`.
    Assign {
        /// The operator.
        op: AssignOp,
        /// Target.
        lhs: Box<Expr>,
        /// Value.
        rhs: Box<Expr>,
    },
    /// `@count(s)`, `@variance(s, 1)`...
    Stat {
        /// The operator.
        op: StatOp,
        /// The statistic.
        operand: Box<Expr>,
        /// Extra numeric parameters.
        params: Vec<i64>,
    },
    /// `@defined(expr)`.
    Defined(Box<Expr>),
    /// `@entry(expr)`.
    Entry(Box<Expr>),
    /// `@const("NAME")`.
    Const(String),
    /// `@probewrite(var)`.
    Probewrite(String),
    /// `@perf("name")`.
    Perf(String),
    /// `@kregister(n)` / `@uregister(n)`.
    Register {
        /// `@uregister`.
        user: bool,
        /// Register number.
        regno: i64,
    },
    /// `@kderef(size, addr)` / `@uderef(size, addr)`.
    Deref {
        /// `@uderef`.
        user: bool,
        /// Bytes.
        size: i64,
        /// Address.
        addr: Box<Expr>,
    },
}

impl Expr {
    /// Calls `f` on each direct sub-expression, the operands inside a
    /// target expression (`@cast` addresses, `[i]` indexes) included.
    pub fn for_each_child<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        let e = self;
        let indexable = |i: &'a Indexable, f: &mut dyn FnMut(&'a Expr)| {
            if let Indexable::Hist(h) = i {
                f(&h.stat);
            }
        };
        match &e.kind {
            ExprKind::Number(_)
            | ExprKind::String(_)
            | ExprKind::Ident(_)
            | ExprKind::Embedded(_)
            | ExprKind::Const(_)
            | ExprKind::Probewrite(_)
            | ExprKind::Perf(_)
            | ExprKind::Register { .. } => {}
            ExprKind::Target(target) => {
                if let TargetBase::Cast { operand, .. } | TargetBase::Autocast(operand) =
                    &target.base
                {
                    f(operand);
                }
                for component in &target.components {
                    if let TargetComponent::Index(index) = component {
                        f(index);
                    }
                }
            }
            ExprKind::Call { args, .. } => args.iter().for_each(f),
            ExprKind::Hist(h) => f(&h.stat),
            ExprKind::Index { base, keys } => {
                indexable(base, f);
                keys.iter().flatten().for_each(f);
            }
            ExprKind::In { keys, array } => {
                keys.iter().flatten().for_each(&mut *f);
                indexable(array, f);
            }
            ExprKind::Unary { operand, .. }
            | ExprKind::Crement { operand, .. }
            | ExprKind::Stat { operand, .. } => f(operand),
            ExprKind::Binary { lhs, rhs, .. } | ExprKind::Assign { lhs, rhs, .. } => {
                f(lhs);
                f(rhs);
            }
            ExprKind::Regex { lhs, .. } => f(lhs),
            ExprKind::Ternary {
                cond,
                then,
                otherwise,
            } => {
                f(cond);
                f(then);
                f(otherwise);
            }
            ExprKind::Defined(inner) | ExprKind::Entry(inner) => f(inner),
            ExprKind::Deref { addr, .. } => f(addr),
        }
    }
}
