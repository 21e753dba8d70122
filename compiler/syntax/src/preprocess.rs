//! The preprocessor, run on the token stream before parsing, as SystemTap's
//! two passes do: macros (`@define NAME(a, b) %( BODY %)`, invoked as
//! `@NAME(x, y)`, parameters used as `@a`), then conditionals
//! (`%( COND %? THEN %: ELSE %)`, where COND compares `kernel_v`,
//! `kernel_vr`, `systemtap_v`, `arch`, `runtime`, `systemtap_privilege`,
//! `guru_mode`, `CONFIG_*` or literals, joined by `&&` and `||`). Branches may
//! hold any token fragment.

use rustc_hash::FxHashMap as HashMap;
use std::cmp::Ordering;
use std::rc::Rc;
use std::sync::Arc;

use crate::diagnostic::Diagnostic;
use crate::lexer::{Tokens, string_value};
use crate::profile::{Profile, fnmatch, version_cmp};
use crate::span::{SourceMap, Span};
use crate::token::{Op, Token, TokenKind};

/// How deep macro invocations may nest before we call it runaway recursion.
const MAX_MACRO_DEPTH: usize = 200;
/// How many tokens macro expansion may produce for one file.
const MAX_EXPANDED_TOKENS: usize = 2_000_000;

/// A macro defined with `@define`.
#[derive(Debug)]
pub struct Macro {
    /// Its name, without `@`.
    pub name: String,
    /// Where it is defined (the name token).
    pub span: Span,
    /// Formal parameter names.
    pub params: Vec<String>,
    body: Vec<Token>,
    /// Defined in a `.stpm` library macro file.
    pub library: bool,
}

/// Macros visible to every file: those of the tapset directories' `.stpm` files.
pub type LibraryMacros = HashMap<String, Arc<Macro>>;

/// The actual parameters of one macro invocation: the tokens of each, one
/// after another, expanded in the context of the invocation (`parent`).
#[derive(Debug)]
struct Params {
    /// The macro invoked (its formal parameter names).
    decl: Arc<Macro>,
    /// Every actual parameter's tokens.
    tokens: Vec<Token>,
    /// Where each actual parameter ends in `tokens`.
    ends: Vec<usize>,
    /// The parameters visible where the invocation was written.
    parent: Option<Rc<Params>>,
}

impl Params {
    /// The index of the parameter named `name` (the last of that name, as
    /// a map filled in order would keep).
    fn find(&self, name: &str) -> Option<usize> {
        self.decl.params.iter().rposition(|p| p == name)
    }

    /// The tokens of parameter `index`.
    fn range(&self, index: usize) -> std::ops::Range<usize> {
        let start = index
            .checked_sub(1)
            .and_then(|i| self.ends.get(i))
            .copied()
            .unwrap_or(0);
        start..self.ends.get(index).copied().unwrap_or(start)
    }
}

/// What an activation reads: a macro's body, or an actual parameter.
enum Body {
    Macro(Arc<Macro>),
    Param(Rc<Params>),
}

struct Activation {
    body: Body,
    cursor: usize,
    end: usize,
    /// The parameters visible in the body.
    params: Option<Rc<Params>>,
    library: bool,
}

impl Activation {
    fn next(&mut self) -> Option<Token> {
        if self.cursor >= self.end {
            return None;
        }
        let tokens = match &self.body {
            Body::Macro(m) => m.body.as_slice(),
            Body::Param(p) => p.tokens.as_slice(),
        };
        let t = tokens.get(self.cursor).copied();
        self.cursor += 1;
        t
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PpState {
    KeepThen,
    SkipThen,
    KeepElse,
    SkipElse,
}

/// The preprocessor over one file's tokens.
pub struct Preprocessor<'a> {
    sources: &'a SourceMap,
    profile: &'a Profile,
    library: &'a LibraryMacros,
    input: Tokens<'a>,
    /// A token of the input read by [`Preprocessor::run`]'s fast path,
    /// for the passes to read next.
    pushed_back: Option<Token>,
    /// The input was abandoned (runaway expansion).
    input_done: bool,
    stack: Vec<Activation>,
    local: HashMap<String, Arc<Macro>>,
    conditionals: Vec<(Token, PpState)>,
    expanded: usize,
    /// Errors found.
    pub diagnostics: Vec<Diagnostic>,
    /// Whether the input held any token at all (before preprocessing).
    pub saw_tokens: bool,
    /// Macros defined here are library macros (a `.stpm` file).
    pub library_file: bool,
}

/// Errors are boxed: the preprocessor's results pass every token through
/// several calls, and a whole `Diagnostic` in each would make them large.
type PpResult<T> = Result<T, Box<Diagnostic>>;

/// An error at `span`.
fn error(span: Span, message: impl Into<String>) -> Box<Diagnostic> {
    Box::new(Diagnostic::new(span, message))
}

impl<'a> Preprocessor<'a> {
    /// A preprocessor over `input`, the tokens of one file.
    pub fn new(
        sources: &'a SourceMap,
        profile: &'a Profile,
        library: &'a LibraryMacros,
        input: Tokens<'a>,
    ) -> Preprocessor<'a> {
        Preprocessor {
            sources,
            profile,
            library,
            saw_tokens: false,
            input,
            pushed_back: None,
            input_done: false,
            stack: Vec::new(),
            local: HashMap::default(),
            conditionals: Vec::new(),
            expanded: 0,
            diagnostics: Vec::new(),
            library_file: false,
        }
    }

    /// Runs both passes to the end and returns the tokens the parser sees.
    pub fn run(&mut self) -> Vec<Token> {
        // Real tapsets average one token per eight or nine bytes.
        let mut out = Vec::with_capacity(self.input.source_len() / 8);
        self.run_into(&mut out);
        out
    }

    /// Runs both passes to the end, appending the tokens the parser sees
    /// to `out` (a buffer reused across files saves allocating one per file).
    pub fn run_into(&mut self, out: &mut Vec<Token>) {
        loop {
            // Outside skipped branches most tokens, of the file or of a
            // macro body, are neither invocations nor conditionals: they
            // pass straight through. The others go back for the passes below.
            if self.pushed_back.is_none()
                && !self.input_done
                && !matches!(
                    self.conditionals.last(),
                    Some((_, PpState::SkipThen | PpState::SkipElse))
                )
            {
                let next = match self.stack.last_mut() {
                    None => self.input.next_while(|t| {
                        let plain = !is_special(&t);
                        if plain {
                            out.push(t);
                        }
                        plain
                    }),
                    Some(act) => {
                        let t = act.next();
                        self.expanded += usize::from(t.is_some());
                        t
                    }
                };
                if let Some(t) = next {
                    if !is_special(&t) && self.expanded <= MAX_EXPANDED_TOKENS {
                        out.push(t);
                        continue;
                    }
                    self.pushed_back = Some(t);
                }
            }
            match self.scan_pp() {
                Ok(Some(t)) => out.push(t),
                Ok(None) => break,
                Err(diagnostic) => {
                    self.diagnostics.push(*diagnostic);
                    if self.expanded > MAX_EXPANDED_TOKENS {
                        break;
                    }
                }
            }
        }
        self.saw_tokens = self.input.yielded();
    }

    /// The macros this file defined (for `.stpm` library files).
    pub fn into_macros(self) -> HashMap<String, Arc<Macro>> {
        self.local
    }

    fn text(&self, t: &Token) -> &'a str {
        self.sources.slice(t.span)
    }

    fn next_raw(&mut self) -> Option<Token> {
        if self.input_done {
            return None;
        }
        self.input.next()
    }

    /// The next token of the current source: the file, or the innermost
    /// macro body (`None` at its end).
    fn next_pp1(&mut self) -> Option<Token> {
        if let Some(t) = self.pushed_back.take() {
            return Some(t);
        }
        match self.stack.last_mut() {
            None => self.next_raw(),
            Some(act) => {
                let t = act.next();
                self.expanded += usize::from(t.is_some());
                t
            }
        }
    }

    /// First pass: macro definitions and invocations.
    fn scan_pp1(&mut self, ignore_macros: bool) -> PpResult<Option<Token>> {
        loop {
            let Some(t) = self.next_pp1() else {
                if self.stack.pop().is_none() {
                    return Ok(None);
                }
                continue;
            };
            if self.expanded > MAX_EXPANDED_TOKENS {
                self.stack.clear();
                self.input_done = true;
                return Err(error(t.span, "macro expansion produces too many tokens"));
            }
            if t.kind != TokenKind::AtWord {
                return Ok(Some(t));
            }
            let name = self.text(&t).get(1..).unwrap_or("");
            if name == "define" && !ignore_macros {
                self.define(t)?;
                continue;
            }
            let top = self.stack.last();
            let param = top.and_then(|act| {
                let params = act.params.as_ref()?;
                Some((params, params.find(name)?))
            });
            let found = if let Some((params, index)) = param {
                Some(Invocation::Param(params.clone(), index))
            } else if let Some(m) = self
                .local
                .get(name)
                .filter(|_| !top.is_some_and(|a| a.library))
            {
                Some(Invocation::Macro(m.clone()))
            } else {
                self.library.get(name).map(|m| Invocation::Macro(m.clone()))
            };
            let Some(found) = found else {
                return Ok(Some(t)); // an ordinary @operator
            };
            if self.stack.len() >= MAX_MACRO_DEPTH {
                self.stack.clear();
                return Err(error(
                    t.span,
                    format!(
                        "macro '@{name}' nests deeper than {MAX_MACRO_DEPTH} invocations (runaway recursion?)"
                    ),
                ));
            }
            let activation = match found {
                Invocation::Param(params, index) => {
                    let range = params.range(index);
                    Activation {
                        params: params.parent.clone(),
                        body: Body::Param(params),
                        cursor: range.start,
                        end: range.end,
                        library: false,
                    }
                }
                Invocation::Macro(decl) => {
                    let params = self.invocation_params(&t, &decl)?;
                    Activation {
                        cursor: 0,
                        end: decl.body.len(),
                        params,
                        library: decl.library,
                        body: Body::Macro(decl),
                    }
                }
            };
            self.stack.push(activation);
        }
    }

    /// Reads the actual parameters of an invocation of `decl` at `call`.
    fn invocation_params(
        &mut self,
        call: &Token,
        decl: &Arc<Macro>,
    ) -> PpResult<Option<Rc<Params>>> {
        let count = decl.params.len();
        if count == 0 {
            return Ok(None);
        }
        let mut params = Params {
            decl: decl.clone(),
            tokens: Vec::new(),
            ends: Vec::with_capacity(count),
            parent: self.stack.last().and_then(|act| act.params.clone()),
        };
        let open = self.next_pp1();
        if !open.is_some_and(|t| t.is_op(Op::LParen)) {
            let at = open.map_or(call.span, |t| t.span);
            let plural = if count == 1 { "" } else { "s" };
            return Err(error(
                at,
                format!(
                    "expected '(' in invocation of macro '@{}' taking {count} parameter{plural}",
                    decl.name
                ),
            ));
        }
        for i in 0..count {
            let mut nesting = 0usize;
            let end = loop {
                let Some(t) = self.next_pp1() else {
                    break None;
                };
                if t.is_op(Op::LParen) || t.is_op(Op::LBracket) {
                    nesting += 1;
                } else if nesting > 0 && (t.is_op(Op::RParen) || t.is_op(Op::RBracket)) {
                    nesting -= 1;
                } else if nesting == 0 && (t.is_op(Op::RParen) || t.is_op(Op::Comma)) {
                    break Some(t);
                }
                params.tokens.push(t);
            };
            let Some(end) = end else {
                return Err(error(call.span, "could not find end of macro invocation"));
            };
            if end.is_op(Op::Comma) && i + 1 == count {
                return Err(error(
                    end.span,
                    format!(
                        "too many parameters for macro '@{}' (expected {count})",
                        decl.name
                    ),
                ));
            }
            if end.is_op(Op::RParen) && i + 1 != count {
                return Err(error(
                    end.span,
                    format!(
                        "too few parameters for macro '@{}' (expected {count})",
                        decl.name
                    ),
                ));
            }
            params.ends.push(params.tokens.len());
        }
        Ok(Some(Rc::new(params)))
    }

    /// `@define NAME(a, b) %( BODY %)`, the `@define` token already read.
    fn define(&mut self, at: Token) -> PpResult<()> {
        if !self.stack.is_empty() {
            return Err(error(
                at.span,
                "'@define' is not allowed inside a macro body",
            ));
        }
        let name_tok = self.next_raw();
        let Some(name_tok) = name_tok.filter(|t| t.kind == TokenKind::Ident) else {
            return Err(error(
                name_tok.map_or(at.span, |t| t.span),
                "expected a macro name (identifier) after '@define'",
            ));
        };
        let name = self.text(&name_tok).to_string();
        if let Some(first) = self.local.get(&name) {
            return Err(Box::new(
                Diagnostic::new(
                    name_tok.span,
                    format!("attempt to redefine macro '@{name}' in the same file"),
                )
                .with_note(first.span, format!("macro '@{name}' first defined here")),
            ));
        }
        if name == "define" {
            return Err(error(name_tok.span, "attempt to redefine '@define'"));
        }
        let mut params = Vec::new();
        let mut t = self.next_raw();
        let mut saw_params = false;
        if t.is_some_and(|t| t.is_op(Op::LParen)) {
            saw_params = true;
            loop {
                let p = self.next_raw();
                let Some(p) = p.filter(|p| p.kind == TokenKind::Ident) else {
                    return Err(error(
                        p.map_or(name_tok.span, |p| p.span),
                        "expected a parameter name (identifier)",
                    ));
                };
                params.push(self.text(&p).to_string());
                let sep = self.next_raw();
                match sep {
                    Some(s) if s.is_op(Op::Comma) => continue,
                    Some(s) if s.is_op(Op::RParen) => {
                        t = self.next_raw();
                        break;
                    }
                    _ => {
                        return Err(error(
                            sep.map_or(p.span, |s| s.span),
                            "expected ',' or ')' in macro parameter list",
                        ));
                    }
                }
            }
        }
        if !t.is_some_and(|t| t.is_op(Op::PpOpen)) {
            let expected = if saw_params {
                "expected '%('"
            } else {
                "expected '%(' or '('"
            };
            return Err(error(
                t.map_or(name_tok.span, |t| t.span),
                format!("{expected} to start the body of macro '@{name}'"),
            ));
        }
        let mut body = Vec::new();
        let mut nesting = 0usize;
        loop {
            let Some(t) = self.next_raw() else {
                return Err(error(
                    name_tok.span,
                    format!("incomplete macro definition of '@{name}': missing '%)'"),
                ));
            };
            if t.is_op(Op::PpOpen) {
                nesting += 1;
            } else if t.is_op(Op::PpClose) {
                if nesting == 0 {
                    break;
                }
                nesting -= 1;
            }
            body.push(t);
        }
        self.local.insert(
            name.clone(),
            Arc::new(Macro {
                name,
                span: name_tok.span,
                params,
                body,
                library: self.library_file,
            }),
        );
        Ok(())
    }

    /// Second pass: conditionals.
    fn scan_pp(&mut self) -> PpResult<Option<Token>> {
        loop {
            let state = self.conditionals.last().map(|(_, s)| *s);
            let t = if matches!(state, Some(PpState::SkipThen | PpState::SkipElse)) {
                self.skip_pp()
            } else {
                self.scan_pp1(false)?
            };
            let Some(t) = t else {
                if let Some((open, _)) = self.conditionals.pop() {
                    return Err(error(
                        open.span,
                        "incomplete conditional at end of file: missing '%)'",
                    ));
                }
                return Ok(None);
            };
            match t.kind {
                TokenKind::Op(Op::PpThen) => {
                    return Err(error(t.span, "incomplete conditional: '%?' without '%('"));
                }
                TokenKind::Op(Op::PpElse) => {
                    let Some((_, s)) = self.conditionals.last_mut() else {
                        return Err(error(t.span, "incomplete conditional: '%:' without '%('"));
                    };
                    match *s {
                        PpState::KeepElse | PpState::SkipElse => {
                            return Err(error(t.span, "invalid conditional: duplicate '%:'"));
                        }
                        PpState::KeepThen => *s = PpState::SkipElse,
                        PpState::SkipThen => *s = PpState::KeepElse,
                    }
                }
                TokenKind::Op(Op::PpClose) => {
                    if self.conditionals.pop().is_none() {
                        return Err(error(t.span, "incomplete conditional: '%)' without '%('"));
                    }
                }
                TokenKind::Op(Op::PpOpen) => {
                    let result = match self.condition(&t) {
                        Ok(result) => result,
                        Err(diagnostic) => {
                            // Skip the rest of the condition; take neither branch.
                            while let Ok(Some(n)) = self.scan_pp1(false) {
                                if n.is_op(Op::PpThen) {
                                    break;
                                }
                            }
                            self.conditionals.push((t, PpState::SkipThen));
                            return Err(diagnostic);
                        }
                    };
                    let state = if result {
                        PpState::KeepThen
                    } else {
                        PpState::SkipThen
                    };
                    self.conditionals.push((t, state));
                }
                _ => return Ok(Some(t)),
            }
        }
    }

    /// Skips a branch, heeding only nested `%(` `%)`; returns the `%:`, `%?`
    /// or `%)` that ends it.
    fn skip_pp(&mut self) -> Option<Token> {
        let mut nesting = 0usize;
        loop {
            let t = match self.scan_pp1(true) {
                Ok(Some(t)) => t,
                Ok(None) => return None,
                Err(_) => continue,
            };
            if t.is_op(Op::PpOpen) {
                nesting += 1;
            } else if nesting > 0 && t.is_op(Op::PpClose) {
                nesting -= 1;
            } else if nesting == 0
                && (t.is_op(Op::PpElse) || t.is_op(Op::PpThen) || t.is_op(Op::PpClose))
            {
                return Some(t);
            }
        }
    }

    /// Reads and evaluates `L OP R [&& L OP R]... [|| ...] %?`.
    fn condition(&mut self, open: &Token) -> PpResult<bool> {
        let mut result = false;
        let mut and_result = true;
        loop {
            let l = self.scan_pp1(false)?;
            let op = self.scan_pp1(false)?;
            let r = self.scan_pp1(false)?;
            let (Some(l), Some(op), Some(r)) = (l, op, r) else {
                return Err(error(open.span, "incomplete condition after '%('"));
            };
            and_result &= self.eval(&l, &op, &r)?;
            let n = self.scan_pp1(false)?;
            if n.is_some_and(|n| n.is_op(Op::AndAnd)) {
                continue;
            }
            result |= and_result;
            and_result = true;
            if n.is_some_and(|n| n.is_op(Op::OrOr)) {
                continue;
            }
            if n.is_some_and(|n| n.is_op(Op::PpThen)) {
                return Ok(result);
            }
            return Err(error(
                n.map_or(open.span, |n| n.span),
                "expected '%?' after the condition (or '&&', '||')",
            ));
        }
    }

    fn number(&self, t: &Token) -> PpResult<i64> {
        parse_number(self.text(t)).ok_or_else(|| error(t.span, "number invalid or out of range"))
    }

    fn eval(&self, l: &Token, op: &Token, r: &Token) -> PpResult<bool> {
        let cmp = match op.kind {
            TokenKind::Op(op @ (Op::EqEq | Op::NotEq | Op::Lt | Op::LtEq | Op::Gt | Op::GtEq)) => {
                op
            }
            _ => {
                return Err(error(
                    op.span,
                    "expected a comparison operator (==, !=, <, <=, >, >=)",
                ));
            }
        };
        let equality = matches!(cmp, Op::EqEq | Op::NotEq);
        let test = |ord: Ordering| match cmp {
            Op::EqEq => ord == Ordering::Equal,
            Op::NotEq => ord != Ordering::Equal,
            Op::Lt => ord == Ordering::Less,
            Op::LtEq => ord != Ordering::Greater,
            Op::Gt => ord == Ordering::Greater,
            _ => ord != Ordering::Less,
        };
        let matched = |pattern: &str, target: &str| fnmatch(pattern, target) == (cmp == Op::EqEq);
        let expect_string = |t: &Token| -> PpResult<String> {
            if t.kind == TokenKind::String {
                Ok(string_value(self.text(t)))
            } else {
                Err(error(t.span, "expected a string literal"))
            }
        };
        let expect_equality = || -> PpResult<()> {
            if equality {
                Ok(())
            } else {
                Err(error(op.span, "expected '==' or '!='"))
            }
        };
        let lhs = self.text(l);
        match l.kind {
            TokenKind::Ident if matches!(lhs, "kernel_v" | "kernel_vr" | "systemtap_v") => {
                let query = expect_string(r)?;
                let target = match lhs {
                    "kernel_v" => self.profile.kernel_version(),
                    "kernel_vr" => self.profile.kernel_release.as_str(),
                    _ => self.profile.systemtap_version.as_str(),
                };
                if query.contains(['*', '?', '[']) {
                    if !equality {
                        return Err(error(
                            op.span,
                            "wildcard not allowed with order comparison operators",
                        ));
                    }
                    return Ok(matched(&query, target));
                }
                Ok(test(version_cmp(target, &query)))
            }
            TokenKind::Ident if lhs == "systemtap_privilege" => {
                let query = expect_string(r)?;
                expect_equality()?;
                Ok((self.profile.privilege.name() == query) == (cmp == Op::EqEq))
            }
            TokenKind::Ident if lhs == "guru_mode" => {
                if r.kind != TokenKind::Number {
                    return Err(error(r.span, "expected a number (0 or 1)"));
                }
                let rhs = self.number(r)?;
                if rhs != 0 && rhs != 1 {
                    return Err(error(r.span, "expected 0 or 1"));
                }
                expect_equality()?;
                Ok(test(i64::from(self.profile.guru_mode).cmp(&rhs)))
            }
            TokenKind::Ident if lhs == "arch" => {
                let query = expect_string(r)?;
                expect_equality()?;
                Ok(matched(&query, &self.profile.arch))
            }
            TokenKind::Ident if lhs == "runtime" => {
                let query = expect_string(r)?;
                expect_equality()?;
                Ok(matched(&query, self.profile.runtime.name()))
            }
            TokenKind::Ident if lhs.starts_with("CONFIG_") => {
                let value = self.profile.config(lhs);
                match r.kind {
                    TokenKind::String => {
                        expect_equality()?;
                        Ok(matched(&string_value(self.text(r)), value))
                    }
                    TokenKind::Number => {
                        let lhs = parse_number(value).ok_or_else(|| {
                            error(l.span, format!("{lhs} is '{value}', not a number"))
                        })?;
                        Ok(test(lhs.cmp(&self.number(r)?)))
                    }
                    TokenKind::Ident if self.text(r).starts_with("CONFIG_") => {
                        let other = self.profile.config(self.text(r));
                        match (parse_number(value), parse_number(other)) {
                            (Some(a), Some(b)) => Ok(test(a.cmp(&b))),
                            _ => Ok(test(value.cmp(other))),
                        }
                    }
                    _ => Err(error(
                        r.span,
                        "expected a string, a number or another CONFIG_... as right operand",
                    )),
                }
            }
            TokenKind::String if r.kind == TokenKind::String => {
                Ok(test(string_value(lhs).cmp(&string_value(self.text(r)))))
            }
            TokenKind::Number if r.kind == TokenKind::Number => {
                Ok(test(self.number(l)?.cmp(&self.number(r)?)))
            }
            TokenKind::String => Err(error(r.span, "expected a string literal as right operand")),
            TokenKind::Number => Err(error(r.span, "expected a number literal as right operand")),
            _ => Err(error(
                l.span,
                "expected 'arch', 'kernel_v', 'kernel_vr', 'systemtap_v', 'runtime', \
                 'systemtap_privilege', 'guru_mode', 'CONFIG_...', or a comparison of strings or numbers",
            )),
        }
    }
}

/// Whether the preprocessor must look at a token: a macro invocation or
/// `@`-operator, or a conditional's `%(`, `%?`, `%:`, `%)`.
fn is_special(t: &Token) -> bool {
    matches!(
        t.kind,
        TokenKind::AtWord | TokenKind::Op(Op::PpOpen | Op::PpThen | Op::PpElse | Op::PpClose)
    )
}

enum Invocation {
    Macro(Arc<Macro>),
    /// Parameter `usize` of an invocation.
    Param(Rc<Params>, usize),
}

/// Parses a number as `strtoull(text, 0)` does for a whole token: decimal,
/// `0x` hex or `0` octal, up to 2^64-1 (wrapping into i64 as SystemTap does).
pub fn parse_number(text: &str) -> Option<i64> {
    let value = if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()?
    } else if text.len() > 1 && text.starts_with('0') {
        u64::from_str_radix(&text[1..], 8).ok()?
    } else {
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse::<u64>().ok()?
    };
    if text.contains(['+', '-']) {
        return None;
    }
    Some(value as i64)
}
