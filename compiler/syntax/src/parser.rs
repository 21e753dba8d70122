//! The parser: preprocessed tokens to the AST, following SystemTap's
//! recursive-descent grammar (`parse.cxx`) rule for rule, with its operator
//! precedence. Errors are recorded and parsing resumes at the next statement
//! (inside a block) or the next top-level declaration.

use std::collections::HashSet;

use crate::ast::*;
use crate::diagnostic::Diagnostic;
use crate::lexer::string_value;
use crate::preprocess::parse_number;
use crate::span::{SourceMap, Span};
use crate::token::{Keyword, Op, Token, TokenKind};

/// How deep expressions, statements and probe-point braces may nest.
const MAX_DEPTH: usize = 200;
/// How much stack the parser's recursion may use (it also stops at
/// [`MAX_DEPTH`]); frames are much bigger in debug builds, so the depth
/// alone cannot keep a 2 MiB thread stack safe.
const MAX_STACK_BYTES: usize = 1 << 20;

/// An address on the current stack frame.
fn stack_position() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// What the parser knows about the file it parses.
#[derive(Debug, Clone, Copy, Default)]
pub struct FileKind {
    /// Embedded C and the privileged `@`-operators are allowed (tapset
    /// files, or scripts under guru mode).
    pub privileged: bool,
    /// A user script (not a tapset): an empty file is an error.
    pub user_file: bool,
}

/// One component of a probe point as written: a name, or braced alternatives.
enum Piece {
    One(Component),
    Braced(Vec<ProbePoint>),
}

/// The parse failed here; the diagnostic is already recorded.
#[derive(Debug)]
struct Fail;

type PResult<T> = Result<T, Fail>;

/// Parses preprocessed tokens into a file, appending errors to `diagnostics`.
pub fn parse_tokens(
    sources: &SourceMap,
    tokens: &[Token],
    kind: FileKind,
    arg_count: usize,
    diagnostics: &mut Vec<Diagnostic>,
) -> File {
    let mut parser = Parser {
        sources,
        toks: tokens,
        pos: 0,
        diagnostics,
        kind,
        in_function: false,
        depth: 0,
        stack_base: stack_position(),
        arg_count,
        globals: HashSet::new(),
        scratch: Scratch::default(),
    };
    parser.file()
}

struct Parser<'a, 'd> {
    sources: &'a SourceMap,
    toks: &'a [Token],
    pos: usize,
    diagnostics: &'d mut Vec<Diagnostic>,
    kind: FileKind,
    in_function: bool,
    depth: usize,
    stack_base: usize,
    arg_count: usize,
    globals: HashSet<String>,
    scratch: Scratch,
}

/// Stacks that lists being parsed grow on, so that each list, once
/// complete, is allocated once at its exact size: most blocks, argument
/// lists and probe points are short, and a vector grown by pushes would
/// allocate room for four at least. A rule pushes above the length it
/// found and splits off what it pushed (also when it fails), so nested
/// rules share a stack.
#[derive(Default)]
struct Scratch {
    stmts: Vec<Stmt>,
    exprs: Vec<Expr>,
    points: Vec<ProbePoint>,
    components: Vec<Component>,
    keys: Vec<Option<Expr>>,
    parts: Vec<TargetComponent>,
}

const PRINT_FUNCTIONS: &[&str] = &[
    "print",
    "println",
    "printd",
    "printdln",
    "printf",
    "sprint",
    "sprintln",
    "sprintd",
    "sprintdln",
    "sprintf",
];

impl<'a> Parser<'a, '_> {
    // ---- token access -------------------------------------------------

    fn peek(&self) -> Option<Token> {
        self.toks.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.peek();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn text(&self, t: Token) -> &'a str {
        self.sources.slice(t.span)
    }

    fn peek_op(&self, op: Op) -> bool {
        self.peek().is_some_and(|t| t.is_op(op))
    }

    fn peek_kw(&self, kw: Keyword) -> bool {
        self.peek().is_some_and(|t| t.is_kw(kw))
    }

    fn eat_op(&mut self, op: Op) -> bool {
        let yes = self.peek_op(op);
        if yes {
            self.pos += 1;
        }
        yes
    }

    /// Where the end of input is (just past the last token).
    fn eof_span(&self) -> Span {
        self.toks.last().map_or_else(Span::default, |t| {
            let len = t.span.end - t.span.start;
            Span {
                start: t.span.end,
                col: t.span.col + len,
                ..t.span
            }
        })
    }

    fn describe(&self, t: Token) -> String {
        let text = self.text(t);
        match t.kind {
            TokenKind::Ident => format!("identifier '{text}'"),
            TokenKind::Keyword(_) => format!("keyword '{text}'"),
            TokenKind::AtWord => format!("operator '{text}'"),
            TokenKind::Number => format!("number '{text}'"),
            TokenKind::String => format!("string {text}"),
            TokenKind::Embedded => "embedded code '%{ ... %}'".to_string(),
            TokenKind::Op(_) => format!("'{text}'"),
            TokenKind::Junk(_) => format!("'{text}'"),
        }
    }

    // ---- errors ---------------------------------------------------------

    fn error_at<T>(&mut self, span: Span, message: impl Into<String>) -> PResult<T> {
        self.diagnostics.push(Diagnostic::new(span, message));
        Err(Fail)
    }

    /// "expected WHAT, found TOKEN" at the next token.
    fn expected<T>(&mut self, what: &str) -> PResult<T> {
        match self.peek() {
            Some(t) => {
                let message = match t.kind {
                    TokenKind::Junk(junk) => junk.message(self.arg_count),
                    _ => format!("expected {what}, found {}", self.describe(t)),
                };
                self.error_at(t.span, message)
            }
            None => {
                let span = self.eof_span();
                self.error_at(span, format!("expected {what}, found end of file"))
            }
        }
    }

    fn expect_op(&mut self, op: Op) -> PResult<Token> {
        match self.peek() {
            Some(t) if t.is_op(op) => {
                self.pos += 1;
                Ok(t)
            }
            _ => self.expected(&format!("'{}'", op.as_str())),
        }
    }

    fn expect_kw(&mut self, kw: Keyword) -> PResult<Token> {
        match self.peek() {
            Some(t) if t.is_kw(kw) => {
                self.pos += 1;
                Ok(t)
            }
            _ => self.expected(&format!("'{}'", kw.as_str())),
        }
    }

    fn expect_ident(&mut self) -> PResult<Ident> {
        match self.peek() {
            Some(t) if t.kind == TokenKind::Ident => {
                self.pos += 1;
                Ok(Ident {
                    name: self.text(t).to_string(),
                    span: t.span,
                })
            }
            _ => self.expected("an identifier"),
        }
    }

    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        if self.depth >= MAX_DEPTH || self.stack_base.abs_diff(stack_position()) > MAX_STACK_BYTES {
            let span = self.peek().map_or_else(|| self.eof_span(), |t| t.span);
            return self.error_at(span, format!("nested more than {MAX_DEPTH} levels deep"));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    // ---- top level --------------------------------------------------------

    fn file(&mut self) -> File {
        let mut items = Vec::new();
        while let Some(t) = self.peek() {
            let start = self.pos;
            let result = match t.kind {
                TokenKind::Keyword(Keyword::Probe) => self.probe(&mut items),
                TokenKind::Keyword(Keyword::Private) => self.private(&mut items),
                TokenKind::Keyword(Keyword::Global) => {
                    self.pos += 1;
                    self.globals(&mut items, None)
                }
                TokenKind::Keyword(Keyword::Function) => {
                    self.pos += 1;
                    self.function(false).map(|f| items.push(Item::Function(f)))
                }
                TokenKind::Embedded => self.embedded().map(|e| items.push(Item::Embedded(e))),
                _ => self.expected("'probe', 'global', 'private', 'function', or '%{'"),
            };
            if result.is_err() {
                self.recover_top(start);
            }
        }
        File { items }
    }

    /// Skips to the next token that can start a declaration.
    fn recover_top(&mut self, start: usize) {
        if self.pos == start {
            self.pos += 1;
        }
        while let Some(t) = self.peek() {
            if matches!(
                t.kind,
                TokenKind::Keyword(
                    Keyword::Probe | Keyword::Private | Keyword::Global | Keyword::Function
                ) | TokenKind::Embedded
            ) {
                return;
            }
            self.pos += 1;
        }
    }

    fn embedded(&mut self) -> PResult<Embedded> {
        let Some(t) = self.peek().filter(|t| t.kind == TokenKind::Embedded) else {
            return self.expected("'%{'");
        };
        self.pos += 1;
        if !self.kind.privileged {
            return self.error_at(
                t.span,
                "embedded code in an unprivileged script; it needs guru mode (-g)",
            );
        }
        Ok(Embedded {
            code: embedded_code(self.text(t)).to_string(),
            span: t.span,
        })
    }

    fn private(&mut self, items: &mut Vec<Item>) -> PResult<()> {
        self.pos += 1; // private
        match self.peek() {
            Some(t) if t.is_kw(Keyword::Function) => {
                self.pos += 1;
                let f = self.function(true)?;
                items.push(Item::Function(f));
                Ok(())
            }
            Some(t) if t.is_kw(Keyword::Global) => {
                self.pos += 1;
                let first = self.expect_ident()?;
                self.globals(items, Some(first))
            }
            Some(t) if t.kind == TokenKind::Ident => {
                let first = self.expect_ident()?;
                self.globals(items, Some(first))
            }
            _ => self.expected("'function', 'global' or an identifier after 'private'"),
        }
    }

    /// `global a, b[10], c = 1;` (after `global`); `private_first` is the
    /// already-read first name of a `private` declaration.
    fn globals(&mut self, items: &mut Vec<Item>, private_first: Option<Ident>) -> PResult<()> {
        let private = private_first.is_some();
        let mut first = private_first;
        loop {
            let name = match first.take() {
                Some(name) => name,
                None => self.expect_ident()?,
            };
            if !self.globals.insert(name.name.clone()) {
                return self.error_at(name.span, format!("duplicate global name '{}'", name.name));
            }
            let wrap = self.eat_op(Op::Percent);
            let mut size = None;
            if self.eat_op(Op::LBracket) {
                let at = self.peek().map_or(name.span, |t| t.span);
                let n = self.number()?;
                if n <= 0 || n > i64::from(i32::MAX) {
                    return self.error_at(at, "array size out of range (1 to 2147483647)");
                }
                size = Some(n);
                self.expect_op(Op::RBracket)?;
            }
            let at = self.peek().map_or(name.span, |t| t.span);
            let init = if self.eat_op(Op::Assign) {
                // `global a[10] = 42`: as SystemTap's parser says.
                if size.is_some() {
                    return self.error_at(at, "only scalar globals can be initialized");
                }
                Some(self.literal()?)
            } else {
                None
            };
            items.push(Item::Global(Global {
                name: name.name,
                private,
                wrap,
                size,
                init,
                span: name.span,
            }));
            if self.eat_op(Op::Semi) {
                return Ok(());
            }
            if !self.eat_op(Op::Comma) {
                return Ok(());
            }
        }
    }

    fn type_name(&mut self) -> PResult<Type> {
        match self.peek() {
            Some(t) if t.is_kw(Keyword::Long) => {
                self.pos += 1;
                Ok(Type::Long)
            }
            Some(t) if t.is_kw(Keyword::String) => {
                self.pos += 1;
                Ok(Type::String)
            }
            _ => self.expected("'string' or 'long'"),
        }
    }

    /// `NAME[:type](params)[: priority] body` (after `function`).
    fn function(&mut self, private: bool) -> PResult<Function> {
        let name_tok = match self.peek() {
            Some(t)
                if t.kind == TokenKind::Ident
                    || t.is_kw(Keyword::String)
                    || t.is_kw(Keyword::Long) =>
            {
                self.pos += 1;
                t
            }
            _ => return self.expected("a function name"),
        };
        let return_type = if self.eat_op(Op::Colon) {
            Some(self.type_name()?)
        } else {
            None
        };
        self.expect_op(Op::LParen)?;
        let mut params: Vec<Param> = Vec::new();
        if !self.eat_op(Op::RParen) {
            loop {
                let name = self.expect_ident()?;
                if params.iter().any(|p| p.name == name.name) {
                    return self.error_at(
                        name.span,
                        format!("duplicate parameter name '{}'", name.name),
                    );
                }
                let ty = if self.eat_op(Op::Colon) {
                    Some(self.type_name()?)
                } else {
                    None
                };
                params.push(Param {
                    name: name.name,
                    ty,
                    span: name.span,
                });
                if self.eat_op(Op::RParen) {
                    break;
                }
                if !self.eat_op(Op::Comma) {
                    return self.expected("',' or ')'");
                }
            }
        }
        let priority = if self.peek_op(Op::Colon) {
            self.pos += 1;
            let at = self.peek().map_or(name_tok.span, |t| t.span);
            match self.literal()? {
                Literal::Number(n) if n >= 1 => Some(n),
                Literal::Number(_) => return self.error_at(at, "function priority must be > 0"),
                Literal::String(_) => {
                    return self.error_at(at, "expected a number (the function's priority)");
                }
            }
        } else {
            None
        };
        let body = if self.peek().is_some_and(|t| t.kind == TokenKind::Embedded) {
            FunctionBody::Embedded(self.embedded()?)
        } else {
            let outer = std::mem::replace(&mut self.in_function, true);
            let block = self.block();
            self.in_function = outer;
            FunctionBody::Block(block?)
        };
        Ok(Function {
            name: self.text(name_tok).to_string(),
            private,
            return_type,
            params,
            priority,
            body,
            span: name_tok.span,
        })
    }

    // ---- probes -----------------------------------------------------------

    fn probe(&mut self, items: &mut Vec<Item>) -> PResult<()> {
        let probe_tok = self.expect_kw(Keyword::Probe)?;
        // Nearly every alias has one name.
        let mut names = Vec::with_capacity(1);
        let mut epilogue = false;
        let points = loop {
            let points = self.probe_points()?;
            match self.peek() {
                Some(t) if points.len() == 1 && (t.is_op(Op::Assign) || t.is_op(Op::AddAssign)) => {
                    let name = points.into_iter().next();
                    if let Some(name) = name {
                        if name.optional || name.sufficient {
                            return self.error_at(
                                name.span,
                                "a probe alias name cannot be optional ('?') nor sufficient ('!')",
                            );
                        }
                        names.push(name);
                    }
                    epilogue |= t.is_op(Op::AddAssign);
                    self.pos += 1;
                }
                Some(t) if t.is_op(Op::LBrace) => break points,
                _ => return self.expected("a probe point specifier (or '{')"),
            }
        };
        let body = self.block()?;
        if names.is_empty() {
            items.push(Item::Probe(Probe {
                points,
                body,
                span: probe_tok.span,
            }));
            return Ok(());
        }
        let mut second = None;
        if self.peek_op(Op::Comma) {
            if epilogue {
                return self.expected(
                    "no second body: a combined prologue and epilogue cannot be defined with '+='",
                );
            }
            self.pos += 1;
            second = Some(self.block()?);
        }
        items.push(Item::Alias(ProbeAlias {
            names,
            kind: if epilogue {
                AliasKind::Epilogue
            } else {
                AliasKind::Prologue
            },
            points,
            body,
            epilogue: second,
            span: probe_tok.span,
        }));
        Ok(())
    }

    /// `pp, pp, ...` up to `{`, `}`, `=` or `+=`.
    fn probe_points(&mut self) -> PResult<Vec<ProbePoint>> {
        let base = self.scratch.points.len();
        let result = self.nested(|p| {
            loop {
                p.components()?;
                if p.eat_op(Op::Comma) {
                    continue;
                }
                match p.peek() {
                    Some(t)
                        if t.is_op(Op::LBrace)
                            || t.is_op(Op::RBrace)
                            || t.is_op(Op::Assign)
                            || t.is_op(Op::AddAssign) =>
                    {
                        return Ok(());
                    }
                    _ => return p.expected("one of ', { } = +=' after a probe point"),
                }
            }
        });
        let points = self.scratch.points.split_off(base);
        result.map(|()| points)
    }

    /// One dotted probe point, with brace alternatives expanded: its
    /// points go on the scratch stack of points.
    fn components(&mut self) -> PResult<()> {
        let points = self.scratch.points.len();
        let components = self.scratch.components.len();
        let result = self.components_onto(points, components);
        self.scratch.components.truncate(components);
        if result.is_err() {
            self.scratch.points.truncate(points);
        }
        result
    }

    /// [`Parser::components`]: the points so far are those on the stack
    /// above `points`; each continues with the plain components on the
    /// stack above `components` (none of them yet: the first point is made
    /// when braces come or at the end).
    fn components_onto(&mut self, points: usize, components: usize) -> PResult<()> {
        loop {
            let piece = self.component()?;
            if let Some(bad) = self.scratch.points[points..]
                .iter()
                .find(|p| p.optional || p.sufficient || p.condition.is_some())
            {
                let span = bad.span;
                return self.error_at(
                    span,
                    "'?', '!' or a condition may only follow the last component",
                );
            }
            match piece {
                // The common case, a plain name.
                Piece::One(component) => self.scratch.components.push(component),
                Piece::Braced(suffix) => {
                    self.flush_components(points, components);
                    if self.scratch.points.len() == points {
                        self.scratch.points.extend(suffix);
                    } else {
                        let heads = self.scratch.points.split_off(points);
                        for head in &heads {
                            for tail in &suffix {
                                let mut parts = Vec::with_capacity(
                                    head.components.len() + tail.components.len(),
                                );
                                parts.extend(head.components.iter().cloned());
                                parts.extend(tail.components.iter().cloned());
                                self.scratch.points.push(ProbePoint {
                                    components: parts,
                                    optional: tail.optional,
                                    sufficient: tail.sufficient,
                                    condition: tail.condition.clone(),
                                    span: head.span,
                                });
                            }
                        }
                    }
                }
            }
            if self.eat_op(Op::Dot) {
                continue;
            }
            self.flush_components(points, components);
            if let Some(t) = self
                .peek()
                .filter(|t| t.is_op(Op::Question) || t.is_op(Op::Bang))
            {
                for p in &mut self.scratch.points[points..] {
                    if p.optional || p.sufficient {
                        let span = t.span;
                        return self.error_at(span, "'?' or '!' given twice");
                    }
                    p.optional = true;
                    p.sufficient = t.is_op(Op::Bang);
                }
                self.pos += 1;
            }
            if self.peek_kw(Keyword::If) {
                let if_tok = self.bump();
                self.expect_op(Op::LParen)?;
                let cond = self.expression()?;
                for p in &mut self.scratch.points[points..] {
                    if p.condition.is_some() {
                        let span = if_tok.map_or(p.span, |t| t.span);
                        return self.error_at(span, "probe point condition given twice");
                    }
                    p.condition = Some(cond.clone());
                }
                self.expect_op(Op::RParen)?;
            }
            return Ok(());
        }
    }

    /// Appends the plain components stacked above `components` to every
    /// point above `points`, or makes them the first point.
    fn flush_components(&mut self, points: usize, components: usize) {
        let scratch = &mut self.scratch;
        if scratch.components.len() == components {
            return;
        }
        let pending = scratch.components.split_off(components);
        match scratch.points.get_mut(points..) {
            Some([]) | None => scratch.points.push(ProbePoint {
                span: pending.first().map_or_else(Span::default, |c| c.span),
                components: pending,
                optional: false,
                sufficient: false,
                condition: None,
            }),
            Some(heads) => {
                for head in heads {
                    head.components.extend(pending.iter().cloned());
                }
            }
        }
    }

    /// One component: a name with its argument, or `{ alternatives }`.
    fn component(&mut self) -> PResult<Piece> {
        let Some(t) = self.peek() else {
            return self.expected("a probe point component (identifier, '*' or '{')");
        };
        if t.is_op(Op::LBrace) {
            self.pos += 1;
            let points = self.probe_points()?;
            self.expect_op(Op::RBrace)?;
            return Ok(Piece::Braced(points));
        }
        let name_ok = |t: Token| {
            matches!(t.kind, TokenKind::Ident | TokenKind::Keyword(_)) || t.is_op(Op::Star)
        };
        if !name_ok(t) {
            return self.expected("a probe point component (identifier, '*' or '{')");
        }
        self.pos += 1;
        let mut name = self.text(t).to_string();
        // Adjacent identifiers, keywords and '*' form one wildcard name.
        while let Some(u) = self.peek() {
            if u.space_before || !name_ok(u) {
                break;
            }
            name.push_str(self.text(u));
            self.pos += 1;
        }
        let arg = if self.eat_op(Op::LParen) {
            let lit = self.literal()?;
            self.expect_op(Op::RParen)?;
            Some(lit)
        } else {
            None
        };
        Ok(Piece::One(Component {
            name,
            arg,
            span: t.span,
        }))
    }

    // ---- literals -------------------------------------------------------

    /// A string token and the adjacent string tokens after it, joined.
    fn string_literal(&mut self) -> PResult<(String, Span)> {
        let Some(t) = self.peek().filter(|t| t.kind == TokenKind::String) else {
            return self.expected("a string literal");
        };
        self.pos += 1;
        let mut value = string_value(self.text(t));
        while let Some(n) = self.peek().filter(|n| n.kind == TokenKind::String) {
            value.push_str(&string_value(self.text(n)));
            self.pos += 1;
        }
        Ok((value, t.span))
    }

    /// `-`? number, as an i64 (SystemTap's range rules).
    fn number(&mut self) -> PResult<i64> {
        let neg = self.eat_op(Op::Minus);
        let Some(t) = self.peek().filter(|t| t.kind == TokenKind::Number) else {
            return self.expected("a number");
        };
        self.pos += 1;
        let text = self.text(t);
        match parse_number(text) {
            Some(v) if !(neg && (v as u64) > 1u64 << 63) => {
                Ok(if neg { v.wrapping_neg() } else { v })
            }
            _ => self.error_at(t.span, format!("number '{text}' invalid or out of range")),
        }
    }

    fn literal(&mut self) -> PResult<Literal> {
        if self.peek().is_some_and(|t| t.kind == TokenKind::String) {
            return Ok(Literal::String(self.string_literal()?.0));
        }
        if self
            .peek()
            .is_some_and(|t| t.kind == TokenKind::Number || t.is_op(Op::Minus))
        {
            return Ok(Literal::Number(self.number()?));
        }
        self.expected("a string or number literal")
    }

    // ---- statements -------------------------------------------------------

    fn block(&mut self) -> PResult<Block> {
        let open = self.expect_op(Op::LBrace)?;
        let base = self.scratch.stmts.len();
        let result = self.statements(open);
        let stmts = self.scratch.stmts.split_off(base);
        result.map(|()| Block {
            stmts,
            span: open.span,
        })
    }

    /// The statements of a block through its `}`, onto the scratch stack.
    fn statements(&mut self, open: Token) -> PResult<()> {
        loop {
            match self.peek() {
                Some(t) if t.is_op(Op::RBrace) => {
                    self.pos += 1;
                    return Ok(());
                }
                None => {
                    let span = self.eof_span();
                    self.diagnostics.push(
                        Diagnostic::new(span, "expected '}', found end of file")
                            .with_note(open.span, "this block is not closed"),
                    );
                    return Err(Fail);
                }
                Some(_) => {}
            }
            let start = self.pos;
            match self.statement() {
                Ok(s) => self.scratch.stmts.push(s),
                Err(Fail) => self.recover_statement(start)?,
            }
        }
    }

    /// Skips past the broken statement: to after the next `;`, or up to the
    /// `}` closing this block. A declaration keyword ends the block too.
    fn recover_statement(&mut self, start: usize) -> PResult<()> {
        let mut depth = 0usize;
        if self.pos == start && !self.peek_op(Op::RBrace) {
            self.consume_in_recovery(&mut depth);
        }
        loop {
            let Some(t) = self.peek() else {
                return Err(Fail);
            };
            match t.kind {
                TokenKind::Keyword(
                    Keyword::Probe | Keyword::Function | Keyword::Global | Keyword::Private,
                ) => {
                    return Err(Fail);
                }
                TokenKind::Op(Op::Semi) if depth == 0 => {
                    self.pos += 1;
                    return Ok(());
                }
                TokenKind::Op(Op::RBrace) if depth == 0 => return Ok(()),
                _ => self.consume_in_recovery(&mut depth),
            }
        }
    }

    fn consume_in_recovery(&mut self, depth: &mut usize) {
        if let Some(t) = self.bump() {
            if t.is_op(Op::LBrace) {
                *depth += 1;
            } else if t.is_op(Op::RBrace) {
                *depth = depth.saturating_sub(1);
            }
        }
    }

    fn statement(&mut self) -> PResult<Stmt> {
        self.nested(Self::statement_inner)
    }

    fn statement_inner(&mut self) -> PResult<Stmt> {
        let Some(t) = self.peek() else {
            return self.expected("a statement");
        };
        let span = t.span;
        let stmt = |kind| Stmt { kind, span };
        match t.kind {
            TokenKind::Op(Op::Semi) => {
                self.pos += 1;
                return Ok(stmt(StmtKind::Empty));
            }
            TokenKind::Op(Op::LBrace) => return Ok(stmt(StmtKind::Block(self.block()?))),
            TokenKind::Keyword(Keyword::Try) => {
                self.pos += 1;
                let body = self.block()?;
                self.expect_kw(Keyword::Catch)?;
                let mut catch_var = None;
                if self.eat_op(Op::LParen) {
                    catch_var = Some(self.expect_ident()?);
                    self.expect_op(Op::RParen)?;
                }
                let catch = self.block()?;
                return Ok(stmt(StmtKind::Try(Box::new(Try {
                    body,
                    catch_var,
                    catch,
                }))));
            }
            TokenKind::Keyword(Keyword::If) => {
                self.pos += 1;
                self.expect_op(Op::LParen)?;
                let cond = self.expression()?;
                self.expect_op(Op::RParen)?;
                let then = Box::new(self.statement()?);
                let otherwise = if self.peek_kw(Keyword::Else) {
                    self.pos += 1;
                    Some(Box::new(self.statement()?))
                } else {
                    None
                };
                return Ok(stmt(StmtKind::If {
                    cond,
                    then,
                    otherwise,
                }));
            }
            TokenKind::Keyword(Keyword::For) => {
                self.pos += 1;
                self.expect_op(Op::LParen)?;
                let init = if self.eat_op(Op::Semi) {
                    None
                } else {
                    let e = self.expression()?;
                    self.expect_op(Op::Semi)?;
                    Some(e)
                };
                let cond = if self.eat_op(Op::Semi) {
                    None
                } else {
                    let e = self.expression()?;
                    self.expect_op(Op::Semi)?;
                    Some(e)
                };
                let step = if self.eat_op(Op::RParen) {
                    None
                } else {
                    let e = self.expression()?;
                    self.expect_op(Op::RParen)?;
                    Some(e)
                };
                let body = self.statement()?;
                return Ok(stmt(StmtKind::For(Box::new(For {
                    init,
                    cond,
                    step,
                    body,
                }))));
            }
            TokenKind::Keyword(Keyword::While) => {
                self.pos += 1;
                self.expect_op(Op::LParen)?;
                let cond = self.expression()?;
                self.expect_op(Op::RParen)?;
                let body = Box::new(self.statement()?);
                return Ok(stmt(StmtKind::While { cond, body }));
            }
            TokenKind::Keyword(Keyword::Foreach) => {
                self.pos += 1;
                return Ok(stmt(StmtKind::Foreach(Box::new(self.foreach()?))));
            }
            _ => {}
        }
        let kind = match t.kind {
            TokenKind::Keyword(Keyword::Return) => {
                self.pos += 1;
                if !self.in_function {
                    return self.error_at(span, "'return' outside a function");
                }
                match self.peek() {
                    None => return self.expected("';', '}' or an expression"),
                    Some(n) if n.is_op(Op::Semi) || n.is_op(Op::RBrace) => StmtKind::Return(None),
                    Some(_) => StmtKind::Return(Some(self.expression()?)),
                }
            }
            TokenKind::Keyword(Keyword::Delete) => {
                self.pos += 1;
                StmtKind::Delete(self.expression()?)
            }
            TokenKind::Keyword(Keyword::Break) => {
                self.pos += 1;
                StmtKind::Break
            }
            TokenKind::Keyword(Keyword::Continue) => {
                self.pos += 1;
                StmtKind::Continue
            }
            TokenKind::Keyword(Keyword::Next) => {
                self.pos += 1;
                StmtKind::Next
            }
            TokenKind::Op(_)
            | TokenKind::AtWord
            | TokenKind::Ident
            | TokenKind::Number
            | TokenKind::String
            | TokenKind::Embedded => StmtKind::Expr(self.expression()?),
            _ => return self.expected("a statement"),
        };
        self.eat_op(Op::Semi);
        Ok(stmt(kind))
    }

    fn sort_dir(&mut self) -> Option<SortDir> {
        if self.eat_op(Op::Plus) {
            Some(SortDir::Ascending)
        } else if self.eat_op(Op::Minus) {
            Some(SortDir::Descending)
        } else {
            None
        }
    }

    /// `foreach ( ... )` after the keyword.
    fn foreach(&mut self) -> PResult<Foreach> {
        self.expect_op(Op::LParen)?;
        let mut value = None;
        let mut sort: Option<Sort> = None;
        let mut lookahead = None;
        if self.peek().is_some_and(|t| t.kind == TokenKind::Ident) {
            let sym = self.expect_ident()?;
            let dir = self.sort_dir();
            if self.eat_op(Op::Assign) {
                value = Some(sym);
                sort = dir.map(|dir| Sort {
                    column: 0,
                    dir,
                    aggregate: None,
                });
            } else {
                lookahead = Some((sym, dir));
            }
        }
        let mut keys = Vec::new();
        if let Some((sym, dir)) = lookahead {
            keys.push(sym);
            sort = dir.map(|dir| Sort {
                column: 1,
                dir,
                aggregate: None,
            });
        } else {
            let bracketed = self.eat_op(Op::LBracket);
            loop {
                keys.push(self.expect_ident()?);
                let at = self.peek().map_or_else(|| self.eof_span(), |t| t.span);
                if let Some(dir) = self.sort_dir() {
                    if sort.is_some() {
                        return self.error_at(at, "multiple sort directives");
                    }
                    sort = Some(Sort {
                        column: keys.len(),
                        dir,
                        aggregate: None,
                    });
                }
                if !bracketed {
                    break;
                }
                if self.eat_op(Op::Comma) {
                    continue;
                }
                if self.eat_op(Op::RBracket) {
                    break;
                }
                return self.expected("',' or ']'");
            }
        }
        self.expect_kw(Keyword::In)?;
        let array = self.indexable()?;
        let slice = if self.eat_op(Op::LBracket) {
            Some(self.keys(Op::RBracket)?)
        } else {
            None
        };
        let mut aggregate = None;
        if let Some(t) = self.peek().filter(|t| t.kind == TokenKind::AtWord) {
            let Some(op) = StatOp::from_word(self.text(t)) else {
                return self.expected(
                    "a statistical operation (@count, @sum, @min, @max, @avg, @variance)",
                );
            };
            self.pos += 1;
            if !(self.peek_op(Op::Plus) || self.peek_op(Op::Minus)) {
                return self
                    .expected("a sort direction ('+' or '-') after the statistical operation");
            }
            aggregate = Some(op);
        }
        let at = self.peek().map_or_else(|| self.eof_span(), |t| t.span);
        if let Some(dir) = self.sort_dir() {
            if sort.is_some() {
                return self.error_at(at, "multiple sort directives");
            }
            sort = Some(Sort {
                column: 0,
                dir,
                aggregate,
            });
        }
        let limit = if self.peek_kw(Keyword::Limit) {
            self.pos += 1;
            Some(self.expression()?)
        } else {
            None
        };
        self.expect_op(Op::RParen)?;
        let body = self.statement()?;
        Ok(Foreach {
            value,
            keys,
            array,
            slice,
            sort,
            limit,
            body,
        })
    }

    /// Keys of an index or slice, `*` allowed, up to `close` (consumed).
    fn keys(&mut self, close: Op) -> PResult<Vec<Option<Expr>>> {
        let base = self.scratch.keys.len();
        let result = self.keys_onto(close);
        let keys = self.scratch.keys.split_off(base);
        result.map(|()| keys)
    }

    /// [`Parser::keys`] onto the scratch stack.
    fn keys_onto(&mut self, close: Op) -> PResult<()> {
        loop {
            let key = if self.eat_op(Op::Star) {
                None
            } else {
                Some(self.expression()?)
            };
            self.scratch.keys.push(key);
            if self.eat_op(close) {
                return Ok(());
            }
            if !self.eat_op(Op::Comma) {
                return self.expected(&format!("',' or '{}'", close.as_str()));
            }
        }
    }

    // ---- expressions ------------------------------------------------------

    fn expression(&mut self) -> PResult<Expr> {
        self.nested(Self::assignment)
    }

    fn assignment(&mut self) -> PResult<Expr> {
        // Results pass through untouched where no operator follows: an
        // expression is large, and each level copying it costs (here and
        // in the levels below).
        let lhs = self.ternary();
        let Some(t) = self.peek().filter(|_| lhs.is_ok()) else {
            return lhs;
        };
        let op = match t.kind {
            TokenKind::Op(Op::Assign) => AssignOp::Assign,
            TokenKind::Op(Op::LtLtLt) => AssignOp::Aggregate,
            TokenKind::Op(Op::AddAssign) => AssignOp::Add,
            TokenKind::Op(Op::SubAssign) => AssignOp::Sub,
            TokenKind::Op(Op::MulAssign) => AssignOp::Mul,
            TokenKind::Op(Op::DivAssign) => AssignOp::Div,
            TokenKind::Op(Op::ModAssign) => AssignOp::Mod,
            TokenKind::Op(Op::ShlAssign) => AssignOp::Shl,
            TokenKind::Op(Op::ShrAssign) => AssignOp::Shr,
            TokenKind::Op(Op::AndAssign) => AssignOp::And,
            TokenKind::Op(Op::XorAssign) => AssignOp::Xor,
            TokenKind::Op(Op::OrAssign) => AssignOp::Or,
            TokenKind::Op(Op::DotAssign) => AssignOp::Concat,
            _ => return lhs,
        };
        let lhs = lhs?;
        self.pos += 1;
        let rhs = self.expression()?;
        Ok(Expr {
            kind: ExprKind::Assign {
                op,
                lhs: Box::new(lhs),
                rhs: Box::new(rhs),
            },
            span: t.span,
        })
    }

    fn ternary(&mut self) -> PResult<Expr> {
        let cond = self.binary(0);
        let Some(t) = self
            .peek()
            .filter(|t| cond.is_ok() && t.is_op(Op::Question))
        else {
            return cond;
        };
        let cond = cond?;
        self.pos += 1;
        let then = self.expression()?;
        self.expect_op(Op::Colon)?;
        let otherwise = self.nested(Self::ternary)?;
        Ok(Expr {
            kind: ExprKind::Ternary {
                cond: Box::new(cond),
                then: Box::new(then),
                otherwise: Box::new(otherwise),
            },
            span: t.span,
        })
    }

    /// Left-associative binary operators by precedence climbing. Levels:
    /// 0 `||`, 1 `&&`, 2 `|`, 3 `^`, 4 `&` (operands: `in` tests), then
    /// 7 shifts, 8 `.`, 9 additive, 10 multiplicative (operands: unary).
    /// Levels 5 (`in`) and 6 (comparison, regex) sit between, as in
    /// SystemTap's grammar.
    fn binary(&mut self, min: u8) -> PResult<Expr> {
        let first = if min <= 5 {
            self.array_in()
        } else {
            self.unary()
        };
        if first.is_err() || self.binary_op(min).is_none() {
            return first;
        }
        let mut lhs = first?;
        while let Some((t, bin, level)) = self.binary_op(min) {
            self.pos += 1;
            let rhs = self.binary(level + 1)?;
            lhs = Expr {
                kind: ExprKind::Binary {
                    op: bin,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                span: t.span,
            };
        }
        Ok(lhs)
    }

    /// The binary operator next, if [`Parser::binary`] at `min` takes it:
    /// its token, operator and level.
    fn binary_op(&self, min: u8) -> Option<(Token, BinOp, u8)> {
        let t = self.peek()?;
        let TokenKind::Op(op) = t.kind else {
            return None;
        };
        let (level, bin) = match op {
            Op::OrOr => (0, BinOp::OrOr),
            Op::AndAnd => (1, BinOp::AndAnd),
            Op::Pipe => (2, BinOp::BitOr),
            Op::Caret => (3, BinOp::BitXor),
            Op::Amp => (4, BinOp::BitAnd),
            Op::Shl => (7, BinOp::Shl),
            Op::Shr => (7, BinOp::Shr),
            Op::GtGtGt => (7, BinOp::UShr),
            Op::Dot => (8, BinOp::Concat),
            Op::Plus => (9, BinOp::Add),
            Op::Minus => (9, BinOp::Sub),
            Op::Star => (10, BinOp::Mul),
            Op::Slash => (10, BinOp::Div),
            Op::Percent => (10, BinOp::Mod),
            _ => return None,
        };
        // Operators of the other band belong to another rule: `a + b
        // == c` leaves `==` to `comparison`, which called us at 7.
        if level < min || (min <= 5 && level >= 7) {
            return None;
        }
        Some((t, bin, level))
    }

    fn array_in(&mut self) -> PResult<Expr> {
        let Some(bracketed) = self.peek().filter(|t| t.is_op(Op::LBracket)) else {
            // The common case: one key, no brackets, and no key list to
            // allocate unless `in` follows.
            let key = self.comparison();
            return match self.peek().filter(|t| key.is_ok() && t.is_kw(Keyword::In)) {
                Some(t) => {
                    let key = key?;
                    self.pos += 1;
                    let array = self.indexable()?;
                    Ok(Expr {
                        kind: ExprKind::In {
                            keys: vec![Some(key)],
                            array,
                        },
                        span: t.span,
                    })
                }
                None => key,
            };
        };
        self.pos += 1;
        let mut keys = Vec::new();
        loop {
            if self.eat_op(Op::Star) {
                keys.push(None);
            } else {
                keys.push(Some(self.comparison()?));
            }
            if self.eat_op(Op::RBracket) {
                break;
            }
            if !self.eat_op(Op::Comma) {
                return self.expected("',' or ']'");
            }
        }
        if let Some(t) = self.peek().filter(|t| t.is_kw(Keyword::In)) {
            self.pos += 1;
            let array = self.indexable()?;
            return Ok(Expr {
                kind: ExprKind::In { keys, array },
                span: t.span,
            });
        }
        // A single key without `in` is just that expression (even `[x]`, as
        // in SystemTap).
        let span = bracketed.span;
        if keys.len() == 1
            && let Some(Some(e)) = keys.pop()
        {
            return Ok(e);
        }
        self.error_at(span, "a bracketed key list must be followed by 'in ARRAY'")
    }

    fn comparison(&mut self) -> PResult<Expr> {
        let lhs = self.binary(7);
        if lhs.is_err() || self.peek().is_none_or(|t| comparison_op(t).is_none()) {
            return lhs;
        }
        let mut lhs = lhs?;
        if let Some(t) = self
            .peek()
            .filter(|t| t.is_op(Op::Match) || t.is_op(Op::NotMatch))
        {
            self.pos += 1;
            let (pattern, _) = self.string_literal()?;
            return Ok(Expr {
                kind: ExprKind::Regex {
                    negated: t.is_op(Op::NotMatch),
                    lhs: Box::new(lhs),
                    pattern,
                },
                span: t.span,
            });
        }
        while let Some(t) = self.peek() {
            let Some(Some(op)) = comparison_op(t) else {
                break;
            };
            self.pos += 1;
            let rhs = self.binary(7)?;
            lhs = Expr {
                kind: ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                span: t.span,
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> PResult<Expr> {
        let Some(t) = self.peek() else {
            return self.expected("an expression");
        };
        let op = match t.kind {
            TokenKind::Op(Op::Plus) => UnaryOp::Plus,
            TokenKind::Op(Op::Minus) => UnaryOp::Neg,
            TokenKind::Op(Op::Bang) => UnaryOp::Not,
            TokenKind::Op(Op::Tilde) => UnaryOp::BitNot,
            _ => return self.crement(),
        };
        self.pos += 1;
        let operand = self.nested(Self::unary)?;
        Ok(Expr {
            kind: ExprKind::Unary {
                op,
                operand: Box::new(operand),
            },
            span: t.span,
        })
    }

    fn crement(&mut self) -> PResult<Expr> {
        if let Some(t) = self
            .peek()
            .filter(|t| t.is_op(Op::PlusPlus) || t.is_op(Op::MinusMinus))
        {
            self.pos += 1;
            let operand = self.dwarf_value()?;
            return Ok(Expr {
                kind: ExprKind::Crement {
                    increment: t.is_op(Op::PlusPlus),
                    prefix: true,
                    operand: Box::new(operand),
                },
                span: t.span,
            });
        }
        let operand = self.dwarf_value();
        if let Some(t) = self
            .peek()
            .filter(|t| operand.is_ok() && (t.is_op(Op::PlusPlus) || t.is_op(Op::MinusMinus)))
        {
            let operand = operand?;
            self.pos += 1;
            return Ok(Expr {
                kind: ExprKind::Crement {
                    increment: t.is_op(Op::PlusPlus),
                    prefix: false,
                    operand: Box::new(operand),
                },
                span: t.span,
            });
        }
        operand
    }

    /// A value, or a target symbol: `$x`, `@cast`, `@var`, `&...`, and any
    /// value followed by `->` or `[` (an autocast).
    fn dwarf_value(&mut self) -> PResult<Expr> {
        let addr = self.peek().filter(|t| t.is_op(Op::Amp));
        if addr.is_some() {
            self.pos += 1;
        }
        let Some(t) = self.peek() else {
            return self.expected("a value");
        };
        let text = self.text(t);
        let (mut target, span) = if t.kind == TokenKind::Ident && text.starts_with('$') {
            self.pos += 1;
            let mut target = Target {
                address_of: false,
                base: TargetBase::Var(text.to_string()),
                components: Vec::new(),
            };
            // `$foo$`: pretty-print marker glued to the name.
            if let Some(last) = text.rfind(|c| c != '$')
                && last + 1 < text.len()
                && last > 0
            {
                {
                    target.base = TargetBase::Var(text[..=last].to_string());
                    target
                        .components
                        .push(TargetComponent::Pretty(text[last + 1..].to_string()));
                }
            }
            (target, t.span)
        } else if t.kind == TokenKind::AtWord && text == "@cast" {
            self.pos += 1;
            self.expect_op(Op::LParen)?;
            let operand = self.expression()?;
            self.expect_op(Op::Comma)?;
            let (type_name, type_span) = self.string_literal()?;
            if type_name.is_empty() {
                return self.error_at(type_span, "expected a non-empty type name");
            }
            let module = if self.eat_op(Op::Comma) {
                Some(self.string_literal()?.0)
            } else {
                None
            };
            self.expect_op(Op::RParen)?;
            let base = TargetBase::Cast {
                operand: Box::new(operand),
                type_name,
                module,
            };
            (
                Target {
                    address_of: false,
                    base,
                    components: Vec::new(),
                },
                t.span,
            )
        } else if t.kind == TokenKind::AtWord && text == "@var" {
            self.pos += 1;
            self.expect_op(Op::LParen)?;
            let (name, _) = self.string_literal()?;
            let module = if self.eat_op(Op::Comma) {
                Some(self.string_literal()?.0)
            } else {
                None
            };
            self.expect_op(Op::RParen)?;
            (
                Target {
                    address_of: false,
                    base: TargetBase::AtVar { name, module },
                    components: Vec::new(),
                },
                t.span,
            )
        } else {
            let value = self.value();
            if addr.is_none() && (value.is_err() || !self.peek_target_components()) {
                return value;
            }
            let value = value?;
            if let ExprKind::Target(inner) = &value.kind
                && addr.is_some()
                && inner.address_of
            {
                {
                    let span = addr.map_or(value.span, |a| a.span);
                    return self.error_at(span, "cannot take the address more than once");
                }
            }
            // An `&` on a value that already is a target symbol applies to it.
            match value.kind {
                ExprKind::Target(inner) if addr.is_some() => {
                    let span = value.span;
                    (*inner, span)
                }
                _ => {
                    let span = addr.map_or(value.span, |a| a.span);
                    (
                        Target {
                            address_of: false,
                            base: TargetBase::Autocast(Box::new(value)),
                            components: Vec::new(),
                        },
                        span,
                    )
                }
            }
        };
        target.address_of = addr.is_some();
        self.target_components(&mut target)?;
        Ok(Expr {
            kind: ExprKind::Target(Box::new(target)),
            span: addr.map_or(span, |a| a.span),
        })
    }

    fn is_dollars(&self, t: Token) -> bool {
        t.kind == TokenKind::Ident && self.text(t).bytes().all(|b| b == b'$')
    }

    fn peek_target_components(&self) -> bool {
        self.peek()
            .is_some_and(|t| t.is_op(Op::Arrow) || t.is_op(Op::LBracket) || self.is_dollars(t))
    }

    fn target_components(&mut self, target: &mut Target) -> PResult<()> {
        let pretty = matches!(target.components.last(), Some(TargetComponent::Pretty(_)));
        let base = self.scratch.parts.len();
        let result = self.target_components_onto(pretty);
        let parts = self.scratch.parts.split_off(base);
        if target.components.is_empty() {
            target.components = parts;
        } else {
            target.components.extend(parts);
        }
        result
    }

    /// [`Parser::target_components`] onto the scratch stack; `pretty`:
    /// the target already ends with a pretty-printing `$`.
    fn target_components_onto(&mut self, mut pretty: bool) -> PResult<()> {
        while !pretty {
            if self.eat_op(Op::Arrow) {
                let member = match self.peek() {
                    Some(t) if matches!(t.kind, TokenKind::Ident | TokenKind::Keyword(_)) => {
                        self.pos += 1;
                        self.text(t)
                    }
                    _ => return self.expected("a member name after '->'"),
                };
                let split = member.rfind(|c| c != '$').map_or(0, |i| i + 1);
                if split < member.len() {
                    pretty = true;
                }
                if split > 0 {
                    self.scratch
                        .parts
                        .push(TargetComponent::Member(member[..split].to_string()));
                }
                if pretty {
                    self.scratch
                        .parts
                        .push(TargetComponent::Pretty(member[split..].to_string()));
                }
            } else if self.eat_op(Op::LBracket) {
                let index = self.expression()?;
                self.expect_op(Op::RBracket)?;
                self.scratch.parts.push(TargetComponent::Index(index));
            } else {
                break;
            }
        }
        if !pretty && let Some(t) = self.peek().filter(|t| self.is_dollars(*t)) {
            {
                self.pos += 1;
                let text = self.text(t).to_string();
                self.scratch.parts.push(TargetComponent::Pretty(text));
                pretty = true;
            }
        }
        if pretty && (self.peek_op(Op::Arrow) || self.peek_op(Op::LBracket)) {
            return self.expected("no '->' or '[' after a pretty-printing '$'");
        }
        Ok(())
    }

    fn value(&mut self) -> PResult<Expr> {
        let Some(t) = self.peek() else {
            return self.expected("a value");
        };
        match t.kind {
            TokenKind::Embedded => {
                self.pos += 1;
                if !self.kind.privileged {
                    return self.error_at(
                        t.span,
                        "embedded code in an unprivileged script; it needs guru mode (-g)",
                    );
                }
                Ok(Expr {
                    kind: ExprKind::Embedded(embedded_code(self.text(t)).to_string()),
                    span: t.span,
                })
            }
            TokenKind::Op(Op::LParen) => {
                self.pos += 1;
                let e = self.expression()?;
                self.expect_op(Op::RParen)?;
                Ok(e)
            }
            TokenKind::Ident | TokenKind::AtWord => self.symbol(),
            TokenKind::String => {
                let (value, span) = self.string_literal()?;
                Ok(Expr {
                    kind: ExprKind::String(value),
                    span,
                })
            }
            TokenKind::Number => {
                let n = self.number()?;
                Ok(Expr {
                    kind: ExprKind::Number(n),
                    span: t.span,
                })
            }
            _ => self.expected("an expression"),
        }
    }

    /// `@hist_linear(...)`/`@hist_log(...)` at the next token, if it is one.
    fn hist(&mut self) -> PResult<Option<Hist>> {
        let Some(t) = self.peek() else {
            return Ok(None);
        };
        let text = self.text(t);
        if t.kind != TokenKind::AtWord || !(text == "@hist_linear" || text == "@hist_log") {
            return Ok(None);
        }
        self.pos += 1;
        self.expect_op(Op::LParen)?;
        let stat = Box::new(self.expression()?);
        let kind = if text == "@hist_linear" {
            let mut params = [0i64; 3];
            for p in &mut params {
                self.expect_op(Op::Comma)?;
                *p = self.number()?;
            }
            HistKind::Linear {
                start: params[0],
                stop: params[1],
                interval: params[2],
            }
        } else {
            HistKind::Log
        };
        self.expect_op(Op::RParen)?;
        Ok(Some(Hist {
            kind,
            stat,
            span: t.span,
        }))
    }

    fn indexable(&mut self) -> PResult<Indexable> {
        if let Some(h) = self.hist()? {
            return Ok(Indexable::Hist(h));
        }
        match self.peek() {
            Some(t) if t.kind == TokenKind::Ident => Ok(Indexable::Name(self.expect_ident()?)),
            _ => self.expected("an array name or a histogram operator"),
        }
    }

    /// Names, calls, `@`-operators, array indexes.
    fn symbol(&mut self) -> PResult<Expr> {
        let Some(t) = self.peek() else {
            return self.expected("a value");
        };
        let span = t.span;
        let expr = |kind| Expr { kind, span };
        if let Some(h) = self.hist()? {
            if self.eat_op(Op::LBracket) {
                let keys = self.keys(Op::RBracket)?;
                return Ok(expr(ExprKind::Index {
                    base: Indexable::Hist(h),
                    keys,
                }));
            }
            return self.error_at(
                span,
                "a histogram operator is not a value here; index it ([bucket]) or print it",
            );
        }
        let name = self.text(t);
        self.pos += 1;
        if t.kind == TokenKind::AtWord {
            let needs_privilege = |p: &mut Self| -> PResult<()> {
                if p.kind.privileged {
                    Ok(())
                } else {
                    p.error_at(
                        span,
                        format!("'{name}' in an unprivileged script; it needs guru mode (-g)"),
                    )
                }
            };
            match name {
                "@defined" | "@entry" => {
                    self.expect_op(Op::LParen)?;
                    let operand = Box::new(self.expression()?);
                    self.expect_op(Op::RParen)?;
                    return Ok(expr(if name == "@defined" {
                        ExprKind::Defined(operand)
                    } else {
                        ExprKind::Entry(operand)
                    }));
                }
                "@probewrite" => {
                    self.expect_op(Op::LParen)?;
                    let var = self.expect_ident()?;
                    self.expect_op(Op::RParen)?;
                    return Ok(expr(ExprKind::Probewrite(var.name)));
                }
                "@const" | "@perf" => {
                    if name == "@const" {
                        needs_privilege(self)?;
                    }
                    self.expect_op(Op::LParen)?;
                    let (value, at) = self.string_literal()?;
                    if value.is_empty() {
                        return self.error_at(at, "expected a non-empty string");
                    }
                    self.expect_op(Op::RParen)?;
                    return Ok(expr(if name == "@const" {
                        ExprKind::Const(value)
                    } else {
                        ExprKind::Perf(value)
                    }));
                }
                "@kregister" | "@uregister" => {
                    let user = name == "@uregister";
                    if !user {
                        needs_privilege(self)?;
                    }
                    self.expect_op(Op::LParen)?;
                    let regno = self.number()?;
                    self.expect_op(Op::RParen)?;
                    return Ok(expr(ExprKind::Register { user, regno }));
                }
                "@kderef" | "@uderef" => {
                    let user = name == "@uderef";
                    if !user {
                        needs_privilege(self)?;
                    }
                    self.expect_op(Op::LParen)?;
                    let size = self.number()?;
                    self.expect_op(Op::Comma)?;
                    let addr = Box::new(self.expression()?);
                    self.expect_op(Op::RParen)?;
                    return Ok(expr(ExprKind::Deref { user, size, addr }));
                }
                _ => {}
            }
            let Some(op) = StatOp::from_word(name) else {
                return self.error_at(span, format!("unknown operator or macro '{name}'"));
            };
            self.expect_op(Op::LParen)?;
            let operand = Box::new(self.expression()?);
            let max_params = usize::from(op == StatOp::Variance);
            let mut params = Vec::new();
            loop {
                if self.eat_op(Op::RParen) {
                    break;
                }
                let Some(comma) = self.peek().filter(|c| c.is_op(Op::Comma)) else {
                    return self.expected("',' or ')'");
                };
                if params.len() >= max_params {
                    return self.error_at(
                        comma.span,
                        format!("'{name}' takes at most {} parameter(s)", max_params + 1),
                    );
                }
                self.pos += 1;
                params.push(self.number()?);
            }
            return Ok(expr(ExprKind::Stat {
                op,
                operand,
                params,
            }));
        }
        if PRINT_FUNCTIONS.contains(&name) {
            self.expect_op(Op::LParen)?;
            let args = self.print_args(name)?;
            return Ok(expr(ExprKind::Call {
                name: name.to_string(),
                args,
            }));
        }
        if self.eat_op(Op::LParen) {
            let base = self.scratch.exprs.len();
            let result = self.call_args();
            let args = self.scratch.exprs.split_off(base);
            result?;
            return Ok(expr(ExprKind::Call {
                name: name.to_string(),
                args,
            }));
        }
        let ident = Ident {
            name: name.to_string(),
            span,
        };
        if self.eat_op(Op::LBracket) {
            let keys = self.keys(Op::RBracket)?;
            return Ok(expr(ExprKind::Index {
                base: Indexable::Name(ident),
                keys,
            }));
        }
        Ok(expr(ExprKind::Ident(ident.name)))
    }

    /// The arguments of a call after `(`, through `)`, onto the scratch
    /// stack.
    fn call_args(&mut self) -> PResult<()> {
        if self.eat_op(Op::RParen) {
            return Ok(());
        }
        loop {
            let arg = self.expression()?;
            self.scratch.exprs.push(arg);
            if self.eat_op(Op::RParen) {
                return Ok(());
            }
            if !self.eat_op(Op::Comma) {
                return self.expected("',' or ')'");
            }
        }
    }

    /// The arguments of `print` and friends after `(`, through `)`.
    fn print_args(&mut self, name: &str) -> PResult<Vec<Expr>> {
        let base = self.scratch.exprs.len();
        let result = self.print_args_onto(name, base);
        let args = self.scratch.exprs.split_off(base);
        result.map(|()| args)
    }

    /// [`Parser::print_args`] onto the scratch stack above `base`.
    fn print_args_onto(&mut self, name: &str, base: usize) -> PResult<()> {
        let hist_printer = matches!(name, "print" | "println" | "sprint" | "sprintln");
        if hist_printer {
            let start = self.pos;
            if let Some(h) = self.hist()? {
                if self.eat_op(Op::LBracket) {
                    let span = h.span;
                    let key = self.expression()?;
                    self.expect_op(Op::RBracket)?;
                    self.scratch.exprs.push(Expr {
                        kind: ExprKind::Index {
                            base: Indexable::Hist(h),
                            keys: vec![Some(key)],
                        },
                        span,
                    });
                    while !self.peek_op(Op::RParen) {
                        self.expect_op(Op::Comma)?;
                        let arg = self.expression()?;
                        self.scratch.exprs.push(arg);
                    }
                } else {
                    let span = h.span;
                    self.scratch.exprs.push(Expr {
                        kind: ExprKind::Hist(h),
                        span,
                    });
                }
                self.expect_op(Op::RParen)?;
                return Ok(());
            }
            debug_assert_eq!(self.pos, start);
        }
        let with_format = matches!(name, "printf" | "sprintf");
        let with_delim = matches!(name, "printd" | "printdln" | "sprintd" | "sprintdln");
        let with_newline = name.ends_with("ln");
        let mut min_args: usize = 0;
        if with_format || with_delim {
            let (value, span) = self.string_literal()?;
            self.scratch.exprs.push(Expr {
                kind: ExprKind::String(value),
                span,
            });
            if with_delim {
                min_args = 2;
            }
        } else if !with_newline {
            min_args = 1;
        }
        while min_args > 0 || !self.peek_op(Op::RParen) {
            if self.scratch.exprs.len() > base && !self.eat_op(Op::Comma) {
                if min_args > 0 {
                    return self
                        .expected(&format!("',' and {min_args} more argument(s) to '{name}'"));
                }
                return self.expected("',' or ')'");
            }
            let arg = self.expression()?;
            self.scratch.exprs.push(arg);
            min_args = min_args.saturating_sub(1);
        }
        self.expect_op(Op::RParen)?;
        Ok(())
    }
}

/// Whether `t` continues a comparison: `Some(Some(op))` for a comparison
/// operator, `Some(None)` for `=~` or `!~`.
fn comparison_op(t: Token) -> Option<Option<BinOp>> {
    Some(Some(match t.kind {
        TokenKind::Op(Op::Gt) => BinOp::Gt,
        TokenKind::Op(Op::Lt) => BinOp::Lt,
        TokenKind::Op(Op::EqEq) => BinOp::Eq,
        TokenKind::Op(Op::NotEq) => BinOp::Ne,
        TokenKind::Op(Op::LtEq) => BinOp::Le,
        TokenKind::Op(Op::GtEq) => BinOp::Ge,
        TokenKind::Op(Op::Match | Op::NotMatch) => return Some(None),
        _ => return None,
    }))
}

/// The code inside `%{ ... %}`.
fn embedded_code(text: &str) -> &str {
    let inner = text.strip_prefix("%{").unwrap_or(text);
    inner.strip_suffix("%}").unwrap_or(inner)
}
