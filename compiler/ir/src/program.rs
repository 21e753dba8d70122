//! The handler program: globals, functions and probes, typed and resolved.

use serde::{Deserialize, Serialize};

/// A whole script, elaborated: everything the runtime needs to run it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    /// Source file names, indexed by [`Loc::file`].
    pub files: Vec<String>,
    /// The global variables, indexed by `Expr::Global` and [`ArrayRef`].
    pub globals: Vec<Global>,
    /// The functions, indexed by `Expr::Call`.
    pub functions: Vec<Function>,
    /// The probes. `begin`, `end` and `error` probes run in their sequence
    /// order, then in this order.
    pub probes: Vec<Probe>,
    /// Run-time limits.
    pub limits: Limits,
}

/// A place in the script, for run-time error messages
/// (`division by zero near operator '/' at f.stp:3:9`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loc {
    /// Index into [`Program::files`].
    pub file: u32,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
}

/// SystemTap's run-time limits (its `-D` settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// `MAXSTRINGLEN`: the string buffer size, terminator included (as in
    /// SystemTap): strings hold at most this minus one bytes.
    pub max_string_len: u32,
    /// `MAXMAPENTRIES`: default size of an array.
    pub max_map_entries: u32,
    /// `MAXNESTING`: deepest chain of function calls.
    pub max_nesting: u32,
    /// `MAXACTION`: statements one probe hit may execute.
    pub max_action: u64,
    /// `MAXERRORS`: run-time errors tolerated before the script stops
    /// (SystemTap's default is 0: the first error ends the run).
    pub max_errors: u32,
    /// `stap -s MB`: the transport buffer from the kernel to the guest's
    /// runtime, in megabytes (the BPF ring buffer, rounded up to a power
    /// of two). A script that prints faster than the runtime drains it
    /// loses records, counted as lost.
    #[serde(default = "default_buffer_mb")]
    pub buffer_mb: u32,
}

fn default_buffer_mb() -> u32 {
    Limits::default().buffer_mb
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_string_len: 512,
            max_map_entries: 2048,
            max_nesting: 10,
            max_action: 1000,
            max_errors: 0,
            buffer_mb: 1,
        }
    }
}

/// A scalar type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalarType {
    /// 64-bit signed, wrapping.
    Long,
    /// A string of at most `MAXSTRINGLEN` bytes.
    String,
}

/// A value at run time (and the initial value of a global).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A long.
    Long(i64),
    /// A string.
    Str(String),
}

/// What a global holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum GlobalType {
    /// A long or a string.
    Scalar {
        /// Its type.
        ty: ScalarType,
    },
    /// A statistic (`x <<< v`).
    Stats,
    /// An associative array.
    Array {
        /// The key types, in order.
        keys: Vec<ScalarType>,
        /// The value: a scalar, or `None` for statistics.
        value: Option<ScalarType>,
    },
}

/// A global variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Global {
    /// Its name, for messages and for printing globals left at the end.
    pub name: String,
    /// Its type.
    pub ty: GlobalType,
    /// The initial value of a scalar.
    pub init: Option<Value>,
    /// The array's size limit (`global a[100]`); `None`: `MAXMAPENTRIES`.
    pub max_entries: Option<u32>,
    /// `global a%[N]`: a full array drops its oldest entry instead of failing.
    pub wrap: bool,
}

/// A user function (script or tapset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// Parameter types: locals `0..params.len()` hold the arguments.
    pub params: Vec<ScalarType>,
    /// The return type; `None` for a function that returns nothing.
    pub ret: Option<ScalarType>,
    /// Types of all locals, parameters first.
    pub locals: Vec<ScalarType>,
    /// The body.
    pub body: Block,
}

/// When a probe's handler runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ProbeKind {
    /// `begin(seq)`: before the workload starts.
    Begin {
        /// Sequence: lower first.
        seq: i64,
    },
    /// `end(seq)`: after the run stops.
    End {
        /// Sequence: lower first.
        seq: i64,
    },
    /// `error(seq)`: after a run-time error, before `end`.
    Error {
        /// Sequence: lower first.
        seq: i64,
    },
    /// `timer.ms(N)` and friends: every `period_ns`, plus up to
    /// `randomize_ns` of random jitter.
    Timer {
        /// The period.
        period_ns: u64,
        /// `.randomize(N)` in nanoseconds; 0 for none.
        randomize_ns: u64,
    },
    /// Fed by kernel events: every event or program of the back end whose
    /// `probe` is this probe's index (function entries and returns,
    /// tracepoints, perf events: `perf.*` probes and `timer.profile`).
    Event,
}

/// A probe: its trigger and its handler (alias prologues and epilogues
/// already composed in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// When it runs.
    pub kind: ProbeKind,
    /// The probe point as the script wrote it (for messages).
    pub name: String,
    /// Types of its locals.
    pub locals: Vec<ScalarType>,
    /// Types of its fetch slots (`Expr::Fetch`), filled per hit by the event.
    pub fetches: Vec<ScalarType>,
    /// The handler.
    pub body: Block,
    /// A return probe that reads `@entry(...)` values: the key its entry
    /// half saved them under (see [`Stmt::EntrySave`]) and their types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry: Option<EntryValues>,
}

/// The `@entry(...)` values a return probe reads ([`Expr::EntryValue`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryValues {
    /// The key the entry half saves them under ([`Stmt::EntrySave`]).
    pub key: u32,
    /// Their types, in order.
    pub types: Vec<ScalarType>,
}

/// How to read a value through memory from an address computed at run
/// time (`@cast(ptr, "task_struct")->real_parent->tgid`): from the
/// address, read a pointer at (current + offset) for every offset of
/// `loads` but the last, then the value at (current + last offset);
/// with `address` set, the result is (current + that offset), not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// Byte offsets of the memory reads, in order.
    pub loads: Vec<u64>,
    /// The final value's size in bytes (1, 2, 4 or 8).
    pub size: u8,
    /// Sign-extend it.
    pub signed: bool,
    /// `(bit offset, bits)` within the value read, for a bitfield.
    pub bitfield: Option<(u32, u32)>,
    /// The result is an address: (current value + this offset).
    pub address: Option<u64>,
    /// From user memory (`@cast(p, "type", "user")`... ) rather than the kernel's.
    pub user: bool,
}

/// A block of statements.
pub type Block = Vec<Stmt>;

/// A statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stmt {
    /// Evaluate and drop.
    Expr(Expr),
    /// A nested block.
    Block(Block),
    /// `if`.
    If {
        /// The condition (a long: non-zero is true).
        cond: Expr,
        /// Taken when true.
        then: Block,
        /// Taken when false.
        otherwise: Block,
    },
    /// `while` and `for` (init is lowered before it).
    Loop {
        /// Tested before each iteration; `None` is always true.
        cond: Option<Expr>,
        /// The body.
        body: Block,
        /// Run after each iteration and on `continue`.
        step: Option<Expr>,
    },
    /// `foreach ([k1, k2] in a[slice] sort limit n)`.
    Foreach {
        /// The array.
        array: ArrayRef,
        /// Locals receiving the keys.
        keys: Vec<u32>,
        /// Local receiving the value (`v = [k] in a`).
        value: Option<u32>,
        /// `a[k1, *]`: keys that must match (`None` is `*`).
        slice: Vec<Option<Expr>>,
        /// Sorting, if any.
        sort: Option<Sort>,
        /// `limit n`.
        limit: Option<Expr>,
        /// The body.
        body: Block,
    },
    /// `foreach (bucket in @hist_log(s))`: iterate over a histogram's buckets.
    ForeachHist {
        /// The histogram.
        hist: HistSpec,
        /// The statistic.
        stat: Expr,
        /// Local receiving each bucket's index.
        bucket: u32,
        /// The body.
        body: Block,
    },
    /// `break`.
    Break,
    /// `continue`.
    Continue,
    /// `next`: leave the probe handler.
    Next,
    /// `return` from a function.
    Return(Option<Expr>),
    /// `delete a`, `delete a[k]`, `delete a[k, *]`, `delete scalar`.
    Delete(LValue),
    /// `s <<< value`.
    Aggregate {
        /// The statistic: a global or an array element.
        target: LValue,
        /// The value added.
        value: Expr,
    },
    /// The entry half of a return probe that reads `@entry(...)`: saves
    /// `values` for the next return of the same thread through the probe
    /// whose [`EntryValues::key`] is `key` (a stack per thread: calls nest).
    EntrySave {
        /// The key.
        key: u32,
        /// The values, in the order [`Expr::EntryValue`] numbers them.
        values: Vec<Expr>,
    },
    /// `try { } catch (msg) { }`.
    Try {
        /// The guarded block.
        body: Block,
        /// Local receiving the error message.
        catch_var: Option<u32>,
        /// The handler.
        catch: Block,
    },
}

/// An array: a global (arrays are always global in SystemTap).
pub type ArrayRef = u32;

/// How `foreach` orders its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sort {
    /// By value or by a key.
    pub key: SortKey,
    /// Descending (`-`) rather than ascending (`+`).
    pub descending: bool,
}

/// What `foreach` sorts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SortKey {
    /// The value (for statistics, the aggregate named, `@count` by default).
    Value {
        /// For statistics: the aggregate.
        aggregate: Option<StatOp>,
    },
    /// The Nth key, from 0.
    Key {
        /// Index.
        index: u32,
    },
}

/// Something that can be assigned, deleted or aggregated into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LValue {
    /// A local of the current probe or function.
    Local(u32),
    /// A scalar or statistics global, or a whole array (for `delete`).
    Global(u32),
    /// An array element; `None` keys are `*` (only in `delete`).
    Index {
        /// The array.
        array: ArrayRef,
        /// The keys.
        keys: Vec<Option<Expr>>,
        /// Where (for the "array full" error).
        loc: Loc,
    },
}

/// Statistics aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
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
    /// `@variance(s, bit_shift)`.
    Variance,
}

/// A histogram's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistSpec {
    /// `@hist_log`.
    Log,
    /// `@hist_linear(s, start, stop, interval)`.
    Linear {
        /// Low bound.
        start: i64,
        /// High bound.
        stop: i64,
        /// Bucket width.
        interval: i64,
    },
}

/// Unary operators on longs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnaryOp {
    /// `-x`.
    Neg,
    /// `!x`.
    Not,
    /// `~x`.
    BitNot,
}

/// Binary operators on longs (strings only compare and concatenate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryOp {
    /// `+`.
    Add,
    /// `-`.
    Sub,
    /// `*`.
    Mul,
    /// `/`: division by zero is a run-time error.
    Div,
    /// `%`: division by zero is a run-time error.
    Mod,
    /// `<<`.
    Shl,
    /// `>>` (arithmetic).
    Shr,
    /// `>>>` (logical).
    UShr,
    /// `&`.
    BitAnd,
    /// `|`.
    BitOr,
    /// `^`.
    BitXor,
}

impl BinaryOp {
    /// The operator as written (`/`), for messages.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
            BinaryOp::Shl => "<<",
            BinaryOp::Shr => ">>",
            BinaryOp::UShr => ">>>",
            BinaryOp::BitAnd => "&",
            BinaryOp::BitOr => "|",
            BinaryOp::BitXor => "^",
        }
    }
}

impl HistSpec {
    /// The buckets a statistic's histogram of this shape has (`@hist_log`:
    /// 128; `@hist_linear`: the range's buckets plus under- and overflow),
    /// or SystemTap's complaint about the shape.
    pub fn bucket_count(self) -> Result<usize, String> {
        /// `STP_MAX_BUCKETS`.
        const MAX_LINEAR_BUCKETS: i64 = 128;
        match self {
            HistSpec::Log => Ok(128),
            HistSpec::Linear {
                start,
                stop,
                interval,
            } => {
                if interval <= 0 {
                    return Err("histogram: interval cannot be zero".to_owned());
                }
                let buckets = stop.wrapping_sub(start) / interval + 3;
                if !(3..=MAX_LINEAR_BUCKETS).contains(&buckets) {
                    return Err(format!(
                        "histogram: Number of buckets must be between 1 and {}",
                        MAX_LINEAR_BUCKETS - 2
                    ));
                }
                Ok(usize::try_from(buckets).unwrap_or(3))
            }
        }
    }
}

/// Comparisons, on two longs or two strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompareOp {
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
    /// `<`.
    Lt,
    /// `<=`.
    Le,
    /// `>`.
    Gt,
    /// `>=`.
    Ge,
}

/// A parsed `printf` directive or literal piece.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FormatSpec {
    /// Text copied as is (escapes already decoded).
    Literal {
        /// The text.
        text: String,
    },
    /// One `%` directive consuming an argument (or two with `*` width).
    Directive {
        /// Flags as written: any of `-+ #0`.
        flags: String,
        /// Width: a number, or `-1` for `*` (taken from the arguments).
        width: Option<i64>,
        /// Precision: a number, or `-1` for `*`.
        precision: Option<i64>,
        /// The conversion: one of `d i u o x X c s p b m M`.
        conversion: char,
    },
}

/// The functions the runtime provides itself: context, strings, output,
/// control. The elaborator maps a call to one of these when no script or
/// tapset function body (other than embedded C) defines the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Builtin {
    /// `print(...)`: each argument printed as is, no separator.
    Print,
    /// `println(...)`.
    Println,
    /// `sprint(...)`.
    Sprint,
    /// `sprintln(...)`.
    Sprintln,
    /// `exit()`: stop after this handler; `end` probes run.
    Exit,
    /// `error(msg)`: a run-time error.
    Error,
    /// `warn(msg)`: print `WARNING: msg` to the error stream.
    Warn,
    /// `pid()`: the hit's thread group id.
    Pid,
    /// `tid()`.
    Tid,
    /// `ppid()`.
    Ppid,
    /// `uid()`.
    Uid,
    /// `gid()`.
    Gid,
    /// `execname()`.
    Execname,
    /// `cpu()`.
    Cpu,
    /// `probefunc()`: the function of the attach point.
    Probefunc,
    /// `pp()`: the probe point that fired.
    Pp,
    /// `ppfunc()`.
    Ppfunc,
    /// `target()`: the pid of the workload (`-c`), 0 when none.
    Target,
    /// `is_return()`.
    IsReturn,
    /// `gettimeofday_s()`.
    GettimeofdayS,
    /// `gettimeofday_ms()`.
    GettimeofdayMs,
    /// `gettimeofday_us()`.
    GettimeofdayUs,
    /// `gettimeofday_ns()`.
    GettimeofdayNs,
    /// `local_clock_ns()`, `cpu_clock_ns()`: the trace clock.
    ClockNs,
    /// `strlen(s)`.
    Strlen,
    /// `substr(s, start, length)`.
    Substr,
    /// `stringat(s, pos)`.
    Stringat,
    /// `isinstr(s1, s2)`.
    Isinstr,
    /// `strpos(haystack, needle)`.
    Strpos,
    /// `text_str(s)`: escape non-printable characters.
    TextStr,
    /// `str_replace(s, old, new)`.
    StrReplace,
    /// `strtol(s, base)`.
    Strtol,
    /// `string_quoted(s)`.
    StringQuoted,
    /// `tokenize(s, delim)`.
    Tokenize,
    /// `abs(n)`.
    Abs,
    /// `randint(n)`.
    Randint,
    /// `errno_str(n)`.
    ErrnoStr,
    /// `matched(n)`: the Nth group of the last `=~` match.
    Matched,
    /// `task_current()`: the address of the current task's `task_struct`.
    TaskCurrent,
    /// `backtrace()`: the kernel stack at the hit, as SystemTap gives it:
    /// the return addresses in hex (`0x` and 16 digits), separated by
    /// spaces, innermost first.
    Backtrace,
    /// `symname(addr)`: the kernel function containing `addr`, or `addr`
    /// in hex when none does.
    Symname,
    /// `symdata(addr)`: `name+0xoffset/0xsize [module]` of the kernel
    /// function containing `addr` (`[kernel]` for the kernel's own), or
    /// `addr` in hex.
    Symdata,
    /// `syscall_name(nr)`: the name of x86_64 system call `nr`.
    SyscallName,
    /// `ctime(secs)`: seconds since the epoch as `ctime(3)` prints them
    /// (UTC, without the newline).
    Ctime,
    /// `user_mode()`: 1 when the probe interrupted user-space code (a
    /// perf sample such as `timer.profile` taken in user mode), else 0.
    UserMode,
    /// `addr()`: the instruction pointer of the probe's registers (a
    /// kprobe's, a perf sample's); 0 where the probe has none.
    Addr,
    /// `uaddr()`: the user-space instruction pointer of a perf sample taken
    /// in user mode; 0 otherwise.
    Uaddr,
    /// `ubacktrace()`: the current task's user-space stack at the hit, in
    /// the form of [`Builtin::Backtrace`].
    Ubacktrace,
    /// `cmdline_str()`: the current task's command line (its memory from
    /// `mm->arg_start` to `arg_end`), the arguments separated by spaces, at
    /// most MAXSTRINGLEN; "" for a task without user memory.
    CmdlineStr,
    /// `system(cmd)`: runs `cmd` with `/bin/sh -c` in the background, some
    /// time after the current probe completes (SystemTap's words); the
    /// agent starts it once the script's probes are attached.
    System,
}

impl Builtin {
    /// Whether the builtin, called with no arguments, answers what the
    /// current task is (its ids, CPU, name, or `target()`): a value every
    /// back end can test before it reads anything of the event.
    pub fn is_current_task_scalar(self) -> bool {
        matches!(
            self,
            Builtin::Pid
                | Builtin::Tid
                | Builtin::Uid
                | Builtin::Gid
                | Builtin::Cpu
                | Builtin::Target
                | Builtin::Execname
        )
    }
}

/// An expression, typed: every node's type is known from its shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expr {
    /// A long constant.
    Long(i64),
    /// A string constant (escapes decoded).
    Str(String),
    /// A local of the current probe or function.
    Local(u32),
    /// A scalar global.
    Global(u32),
    /// A value the event fetched for this hit.
    Fetch(u32),
    /// `a[k1, k2]`: an array element (0 or "" when absent).
    Index {
        /// The array.
        array: ArrayRef,
        /// The keys.
        keys: Vec<Expr>,
    },
    /// `[k1, k2] in a` (`None` keys are `*`).
    In {
        /// The array.
        array: ArrayRef,
        /// The keys.
        keys: Vec<Option<Expr>>,
    },
    /// A unary operator on a long.
    Unary {
        /// The operator.
        op: UnaryOp,
        /// The operand.
        operand: Box<Expr>,
    },
    /// A binary operator on longs.
    Binary {
        /// The operator.
        op: BinaryOp,
        /// Left.
        lhs: Box<Expr>,
        /// Right.
        rhs: Box<Expr>,
        /// Where the operator is (for division by zero).
        loc: Loc,
    },
    /// A comparison of two longs.
    CompareLong {
        /// The operator.
        op: CompareOp,
        /// Left.
        lhs: Box<Expr>,
        /// Right.
        rhs: Box<Expr>,
    },
    /// A comparison of two strings (byte order).
    CompareStr {
        /// The operator.
        op: CompareOp,
        /// Left.
        lhs: Box<Expr>,
        /// Right.
        rhs: Box<Expr>,
    },
    /// `a . b`.
    Concat(Box<Expr>, Box<Expr>),
    /// `a && b`.
    And(Box<Expr>, Box<Expr>),
    /// `a || b`.
    Or(Box<Expr>, Box<Expr>),
    /// `c ? a : b`.
    Ternary {
        /// Condition.
        cond: Box<Expr>,
        /// When true.
        then: Box<Expr>,
        /// When false.
        otherwise: Box<Expr>,
    },
    /// `s =~ "re"` (sets `matched()`), or `!~`.
    Regex {
        /// `!~`.
        negated: bool,
        /// The string.
        operand: Box<Expr>,
        /// The pattern (POSIX ERE).
        pattern: String,
    },
    /// `lv = e`, `lv += e`, ... (value: the new value). `op` is `None` for
    /// `=`; `Some(Concat)` is written as `concat: true`.
    Assign {
        /// The target.
        target: Box<LValue>,
        /// The operator of a compound assignment.
        op: Option<BinaryOp>,
        /// `.=`.
        concat: bool,
        /// The value.
        value: Box<Expr>,
        /// Where (for errors of `/=`, `%=` and array limits).
        loc: Loc,
    },
    /// `++x`, `x--` on a long.
    Crement {
        /// The target.
        target: Box<LValue>,
        /// `++` (true) or `--`.
        increment: bool,
        /// Before (true) or after.
        prefix: bool,
        /// Where (for array limits).
        loc: Loc,
    },
    /// A call of a user function.
    Call {
        /// Index into [`Program::functions`].
        function: u32,
        /// The arguments.
        args: Vec<Expr>,
        /// Where (for the nesting limit).
        loc: Loc,
    },
    /// A call of a runtime builtin.
    Builtin {
        /// Which.
        builtin: Builtin,
        /// The arguments.
        args: Vec<Expr>,
        /// Where (for `error()` and friends).
        loc: Loc,
    },
    /// `printf(fmt, ...)` (`to_string`: `sprintf`).
    Printf {
        /// `sprintf` rather than `printf`.
        to_string: bool,
        /// The parsed format.
        format: Vec<FormatSpec>,
        /// The arguments.
        args: Vec<Expr>,
    },
    /// `@count(s)`, `@avg(a[k])`... on a statistic.
    Stat {
        /// The aggregate.
        op: StatOp,
        /// The statistic: a stats global or an element of a stats array.
        stat: Box<LValue>,
        /// `@variance`'s bit shift.
        param: i64,
        /// Where (for "aggregate of an empty statistic").
        loc: Loc,
    },
    /// A histogram rendered as SystemTap prints it (for `print`).
    Hist {
        /// The shape.
        spec: HistSpec,
        /// The statistic.
        stat: Box<LValue>,
    },
    /// `@hist_log(s)[bucket]`: the count in one bucket.
    HistBucket {
        /// The shape.
        spec: HistSpec,
        /// The statistic.
        stat: Box<LValue>,
        /// The bucket.
        bucket: Box<Expr>,
    },
    /// Convert a long to its decimal string (implicit in `print` only).
    LongToStr(Box<Expr>),
    /// A value read through memory from an address computed at run time.
    Read {
        /// The address.
        addr: Box<Expr>,
        /// The reads.
        access: Access,
        /// Where (for a read that faults).
        loc: Loc,
    },
    /// A NUL-terminated string read at an address computed at run time
    /// (`kernel_string(ptr)`, `user_string_n(ptr, n)`).
    ReadString {
        /// The address.
        addr: Box<Expr>,
        /// At most this many bytes (`_n` variants); `None`: `MAXSTRINGLEN`.
        max_len: Option<Box<Expr>>,
        /// From user memory.
        user: bool,
        /// The string when the read faults (`user_string(ptr, err_msg)`);
        /// `None`: a fault is SystemTap's run-time error.
        fallback: Option<Box<Expr>>,
        /// Where (for a read that faults).
        loc: Loc,
    },
    /// The `index`th `@entry(...)` value of this return probe's hit
    /// ([`Probe::entry`]).
    EntryValue(u32),
}
