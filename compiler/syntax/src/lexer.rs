//! The lexer: source text to tokens, exactly as SystemTap's `lexer::scan`
//! splits them (identifiers may hold `$`, `@word`s are operators, numbers are
//! any run of letters and digits that starts with a digit, `#`, `//` and
//! `/* */` comments, `%{ %}` embedded code, the preprocessor's `%( %? %: %)`).
//!
//! Command-line arguments are substituted here, as in SystemTap: `$N` becomes
//! the tokens of argument N, `@N` a string literal of it, `$#` and `@#` the
//! number of arguments. Each argument is its own file in the [`SourceMap`], so
//! tokens that came from one point there.

use std::collections::VecDeque;

use crate::span::{FileId, SourceMap, Span};
use crate::token::{Junk, Keyword, Op, Token, TokenKind};

/// The command-line arguments of a session, each added to the source map
/// twice: as raw text (for `$N`) and as a quoted string literal (for `@N`).
#[derive(Debug, Clone, Default)]
pub struct Args {
    raw: Vec<FileId>,
    quoted: Vec<FileId>,
    count_raw: Option<FileId>,
    count_quoted: Option<FileId>,
}

impl Args {
    /// Adds `args` to `sources` and returns their handles.
    pub fn new(sources: &mut SourceMap, args: &[String]) -> Args {
        let mut out = Args::default();
        for (i, arg) in args.iter().enumerate() {
            out.raw
                .push(sources.add(format!("<argument ${}>", i + 1), arg.clone()));
            out.quoted
                .push(sources.add(format!("<argument @{}>", i + 1), quote(arg)));
        }
        out.count_raw = Some(sources.add("<argument $#>", args.len().to_string()));
        out.count_quoted = Some(sources.add("<argument @#>", format!("\"{}\"", args.len())));
        out
    }

    /// How many arguments there are.
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }
}

/// A string literal whose value is `text` (SystemTap's `lex_cast_qstring`).
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Lexes one file of `sources` into tokens (no end-of-file token).
pub fn lex(sources: &SourceMap, file: FileId, args: &Args) -> Vec<Token> {
    Tokens::new(sources, file, args).collect()
}

/// The tokens of one file, lexed on demand.
pub struct Tokens<'a> {
    lexer: Lexer<'a>,
    sources: &'a SourceMap,
    args: &'a Args,
    /// Tokens of a substituted argument not handed out yet.
    pending: VecDeque<Token>,
    /// Whether any token was handed out.
    yielded: bool,
}

impl<'a> Tokens<'a> {
    /// The tokens of `file`.
    pub fn new(sources: &'a SourceMap, file: FileId, args: &'a Args) -> Tokens<'a> {
        let src = sources.file(file).map_or(&b""[..], |f| f.text.as_bytes());
        Tokens {
            lexer: Lexer {
                src,
                file,
                pos: 0,
                line: 1,
                line_start: 0,
                nested: false,
            },
            sources,
            args,
            pending: VecDeque::new(),
            yielded: false,
        }
    }
}

impl Tokens<'_> {
    /// The size of the file in bytes.
    pub fn source_len(&self) -> usize {
        self.lexer.src.len()
    }

    /// Hands tokens to `take` while it takes them (returns true); returns
    /// the first it does not take (`None` at the end of the file). The same
    /// tokens as [`Iterator::next`], in one tight loop.
    pub fn next_while(&mut self, mut take: impl FnMut(Token) -> bool) -> Option<Token> {
        loop {
            let t = match self.pending.pop_front() {
                Some(t) => t,
                None => self
                    .lexer
                    .next_token(self.sources, self.args, &mut self.pending)?,
            };
            self.yielded = true;
            if !take(t) {
                return Some(t);
            }
        }
    }

    /// Whether any token was handed out yet.
    pub fn yielded(&self) -> bool {
        self.yielded
    }
}

impl Iterator for Tokens<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        let t = match self.pending.pop_front() {
            Some(t) => Some(t),
            None => self
                .lexer
                .next_token(self.sources, self.args, &mut self.pending),
        };
        self.yielded |= t.is_some();
        t
    }
}

struct Lexer<'a> {
    src: &'a [u8],
    file: FileId,
    pos: usize,
    line: u32,
    line_start: usize,
    /// Lexing the text of a command-line argument: `$N` there is junk.
    nested: bool,
}

impl Lexer<'_> {
    fn peek(&self, n: usize) -> u8 {
        self.src.get(self.pos + n).copied().unwrap_or(0)
    }

    /// Advances one byte, keeping line and column.
    fn bump(&mut self) {
        if self.src.get(self.pos) == Some(&b'\n') {
            self.line += 1;
            self.line_start = self.pos + 1;
        }
        self.pos += 1;
    }

    /// Advances to `to` (at most the end), keeping line and column: the
    /// bulk form of [`Lexer::bump`] for comments and embedded code.
    fn skip_to(&mut self, to: usize) {
        let to = to.min(self.src.len());
        let skipped = self.src.get(self.pos..to).unwrap_or_default();
        if let Some(last) = memchr::memrchr(b'\n', skipped) {
            let newlines = memchr::memchr_iter(b'\n', skipped).count();
            self.line = self
                .line
                .saturating_add(u32::try_from(newlines).unwrap_or(u32::MAX));
            self.line_start = self.pos + last + 1;
        }
        self.pos = to;
    }

    fn span_from(&self, start: usize, line: u32, col: u32) -> Span {
        Span {
            file: self.file,
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(self.pos).unwrap_or(u32::MAX),
            line,
            col,
        }
    }

    /// Skips whitespace and comments; whether there was any.
    #[inline(always)]
    fn skip_blanks(&mut self) -> bool {
        let src = self.src;
        let begin = self.pos;
        let mut pos = self.pos;
        loop {
            match src.get(pos) {
                Some(b' ' | b'\t' | b'\r' | 0x0b | 0x0c) => pos += 1,
                Some(b'\n') => {
                    pos += 1;
                    self.line += 1;
                    self.line_start = pos;
                }
                Some(b'#') => {
                    let rest = src.get(pos..).unwrap_or_default();
                    pos += memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                }
                Some(b'/') if src.get(pos + 1) == Some(&b'/') => {
                    let rest = src.get(pos..).unwrap_or_default();
                    pos += memchr::memchr(b'\n', rest).unwrap_or(rest.len());
                }
                Some(b'/') if src.get(pos + 1) == Some(&b'*') => {
                    // The closing "*/" is looked for from the comment's
                    // third byte, as SystemTap does: "/*/" does not close
                    // itself.
                    let end = find_pair(src, pos + 2, b'*', b'/').map_or(src.len(), |at| at + 2);
                    self.pos = pos;
                    self.skip_to(end);
                    pos = self.pos;
                }
                _ => break,
            }
        }
        self.pos = pos;
        pos != begin
    }

    /// The next token; the tokens of a substituted argument after the
    /// first go to `pending`.
    #[inline(always)]
    fn next_token(
        &mut self,
        sources: &SourceMap,
        args: &Args,
        pending: &mut VecDeque<Token>,
    ) -> Option<Token> {
        let mut space_before = self.skip_blanks();
        loop {
            let src = self.src;
            let start = self.pos;
            let &c = src.get(start)?;
            let line = self.line;
            let col = u32::try_from(start - self.line_start + 1).unwrap_or(u32::MAX);
            let c2 = self.peek(1);
            let kind = match c {
                b'$' | b'@' if c2 == b'#' || c2.is_ascii_digit() => {
                    match self.argument(sources, args, pending, space_before) {
                        Some(token) => return Some(token),
                        // An argument with no tokens: go on after it.
                        None => {
                            space_before |= self.skip_blanks();
                            continue;
                        }
                    }
                }
                b'a'..=b'z' | b'A'..=b'Z' | b'_' | b'$' | b'@' => {
                    self.pos += 1;
                    while src.get(self.pos).is_some_and(|&b| IDENT[usize::from(b)]) {
                        self.pos += 1;
                    }
                    if c == b'@' {
                        TokenKind::AtWord
                    } else {
                        let text = src.get(start..self.pos).unwrap_or_default();
                        Keyword::from_word(text).map_or(TokenKind::Ident, TokenKind::Keyword)
                    }
                }
                b'0'..=b'9' => {
                    self.pos += 1;
                    while src.get(self.pos).is_some_and(u8::is_ascii_alphanumeric) {
                        self.pos += 1;
                    }
                    TokenKind::Number
                }
                b'"' => {
                    self.pos += 1;
                    let mut closed = false;
                    while let Some(&b) = src.get(self.pos) {
                        match b {
                            b'\n' => break,
                            b'"' => {
                                self.pos += 1;
                                closed = true;
                                break;
                            }
                            // An escaped newline continues the string.
                            b'\\' => self.skip_to(self.pos + 2),
                            _ => self.pos += 1,
                        }
                    }
                    if closed {
                        TokenKind::String
                    } else {
                        TokenKind::Junk(Junk::UnclosedString)
                    }
                }
                b'%' if c2 == b'{' => {
                    let close = find_pair(src, start + 2, b'%', b'}');
                    self.skip_to(close.map_or(src.len(), |at| at + 2));
                    if close.is_some() {
                        TokenKind::Embedded
                    } else {
                        TokenKind::Junk(Junk::UnclosedEmbedded)
                    }
                }
                _ if c.is_ascii_punctuation() => {
                    let (op, len) = operator(c, c2, self.peek(2));
                    self.pos += len;
                    TokenKind::Op(op)
                }
                _ => {
                    // Skip a whole UTF-8 character so spans stay on char boundaries.
                    self.pos += 1;
                    while src.get(self.pos).is_some_and(|&b| (b & 0xc0) == 0x80) {
                        self.pos += 1;
                    }
                    TokenKind::Junk(Junk::Unknown)
                }
            };
            return Some(Token {
                kind,
                span: self.span_from(start, line, col),
                space_before,
            });
        }
    }

    /// `$N`, `@N`, `$#` or `@#` at the current position: the first token of
    /// its substitution (the rest go to `pending`), a junk token when it
    /// cannot be substituted, or `None` when the argument holds no token.
    #[cold]
    #[inline(never)]
    fn argument(
        &mut self,
        sources: &SourceMap,
        args: &Args,
        pending: &mut VecDeque<Token>,
        space_before: bool,
    ) -> Option<Token> {
        let start = self.pos;
        let line = self.line;
        let col = u32::try_from(start - self.line_start + 1).unwrap_or(u32::MAX);
        let c = self.peek(0);
        let c2 = self.peek(1);
        self.bump();
        let substitute = if c2 == b'#' {
            self.bump();
            Some(if c == b'$' {
                args.count_raw
            } else {
                args.count_quoted
            })
        } else {
            let mut index: usize = 0;
            while self.peek(0).is_ascii_digit() && index <= args.len() {
                index = index * 10 + usize::from(self.peek(0) - b'0');
                self.bump();
            }
            if index == 0 || index > args.len() {
                None
            } else if c == b'$' {
                args.raw.get(index - 1).copied().map(Some)
            } else {
                args.quoted.get(index - 1).copied().map(Some)
            }
        };
        let span = self.span_from(start, line, col);
        let junk = |kind| Token {
            kind: TokenKind::Junk(kind),
            span,
            space_before,
        };
        if self.nested {
            return Some(junk(Junk::NestedArg));
        }
        let Some(Some(file)) = substitute else {
            return Some(junk(Junk::ArgOutOfRange));
        };
        if let Some(source) = sources.file(file) {
            let mut inner = Lexer {
                src: source.text.as_bytes(),
                file,
                pos: 0,
                line: 1,
                line_start: 0,
                nested: true,
            };
            let mut nowhere = VecDeque::new();
            while let Some(t) = inner.next_token(sources, args, &mut nowhere) {
                pending.push_back(t);
            }
        }
        let mut first = pending.pop_front()?;
        first.space_before = space_before;
        Some(first)
    }
}

/// Bytes that continue an identifier: letters, digits, `_` and `$`.
const IDENT: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = matches!(b as u8, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'$');
        b += 1;
    }
    table
};

/// Where the first `first` `second` pair of `src` at or after `from` starts.
fn find_pair(src: &[u8], from: usize, first: u8, second: u8) -> Option<usize> {
    let rest = src.get(from..)?;
    memchr::memchr_iter(second, rest)
        .find(|&at| at > 0 && rest.get(at - 1) == Some(&first))
        .map(|at| from + at - 1)
}

/// The operator starting with `c`, then `c2` and `c3`, and its length.
fn operator(c: u8, c2: u8, c3: u8) -> (Op, usize) {
    match (c, c2, c3) {
        (b'<', b'<', b'<') => (Op::LtLtLt, 3),
        (b'>', b'>', b'>') => (Op::GtGtGt, 3),
        (b'<', b'<', b'=') => (Op::ShlAssign, 3),
        (b'>', b'>', b'=') => (Op::ShrAssign, 3),
        (b'=', b'=', _) => (Op::EqEq, 2),
        (b'!', b'=', _) => (Op::NotEq, 2),
        (b'<', b'=', _) => (Op::LtEq, 2),
        (b'>', b'=', _) => (Op::GtEq, 2),
        (b'=', b'~', _) => (Op::Match, 2),
        (b'!', b'~', _) => (Op::NotMatch, 2),
        (b'+', b'=', _) => (Op::AddAssign, 2),
        (b'-', b'=', _) => (Op::SubAssign, 2),
        (b'*', b'=', _) => (Op::MulAssign, 2),
        (b'/', b'=', _) => (Op::DivAssign, 2),
        (b'%', b'=', _) => (Op::ModAssign, 2),
        (b'&', b'=', _) => (Op::AndAssign, 2),
        (b'^', b'=', _) => (Op::XorAssign, 2),
        (b'|', b'=', _) => (Op::OrAssign, 2),
        (b'.', b'=', _) => (Op::DotAssign, 2),
        (b'&', b'&', _) => (Op::AndAnd, 2),
        (b'|', b'|', _) => (Op::OrOr, 2),
        (b'+', b'+', _) => (Op::PlusPlus, 2),
        (b'-', b'-', _) => (Op::MinusMinus, 2),
        (b'-', b'>', _) => (Op::Arrow, 2),
        (b'<', b'<', _) => (Op::Shl, 2),
        (b'>', b'>', _) => (Op::Shr, 2),
        (b'%', b'(', _) => (Op::PpOpen, 2),
        (b'%', b'?', _) => (Op::PpThen, 2),
        (b'%', b':', _) => (Op::PpElse, 2),
        (b'%', b')', _) => (Op::PpClose, 2),
        (b'!', ..) => (Op::Bang, 1),
        (b'%', ..) => (Op::Percent, 1),
        (b'&', ..) => (Op::Amp, 1),
        (b'(', ..) => (Op::LParen, 1),
        (b')', ..) => (Op::RParen, 1),
        (b'*', ..) => (Op::Star, 1),
        (b'+', ..) => (Op::Plus, 1),
        (b',', ..) => (Op::Comma, 1),
        (b'-', ..) => (Op::Minus, 1),
        (b'.', ..) => (Op::Dot, 1),
        (b'/', ..) => (Op::Slash, 1),
        (b':', ..) => (Op::Colon, 1),
        (b';', ..) => (Op::Semi, 1),
        (b'<', ..) => (Op::Lt, 1),
        (b'=', ..) => (Op::Assign, 1),
        (b'>', ..) => (Op::Gt, 1),
        (b'?', ..) => (Op::Question, 1),
        (b'[', ..) => (Op::LBracket, 1),
        (b']', ..) => (Op::RBracket, 1),
        (b'^', ..) => (Op::Caret, 1),
        (b'{', ..) => (Op::LBrace, 1),
        (b'|', ..) => (Op::Pipe, 1),
        (b'}', ..) => (Op::RBrace, 1),
        (b'~', ..) => (Op::Tilde, 1),
        (other, ..) => (Op::Other(other), 1),
    }
}

/// The value of a string literal token (quotes included in `raw`), as
/// SystemTap stores it: C escapes the translator passes on to C (`\n`, `\t`,
/// `\\`, octal, `\x`...) stay as written, any other escaped character stands
/// for itself (`\"` is `"`).
pub fn string_value(raw: &str) -> String {
    let inner = raw.strip_prefix('"').unwrap_or(raw);
    let inner = inner.strip_suffix('"').unwrap_or(inner);
    if memchr::memchr(b'\\', inner.as_bytes()).is_none() {
        return inner.to_owned();
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(e @ ('a' | 'b' | 't' | 'n' | 'v' | 'f' | 'r' | '0'..='7' | 'x' | '\\')) => {
                out.push('\\');
                out.push(e);
            }
            Some(e) => out.push(e),
            None => out.push('\\'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str, args: &[&str]) -> Vec<(TokenKind, String)> {
        let mut sources = SourceMap::new();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let args = Args::new(&mut sources, &args);
        let file = sources.add("t.stp", text);
        lex(&sources, file, &args)
            .into_iter()
            .map(|t| (t.kind, sources.slice(t.span).to_string()))
            .collect()
    }

    #[test]
    fn identifiers_keep_dollars() {
        let toks = kinds("$var $var$ $$vars $$parms$$ @var @count x_1", &[]);
        let texts: Vec<&str> = toks.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(
            texts,
            [
                "$var",
                "$var$",
                "$$vars",
                "$$parms$$",
                "@var",
                "@count",
                "x_1"
            ]
        );
        assert_eq!(toks[4].0, TokenKind::AtWord);
        assert_eq!(toks[0].0, TokenKind::Ident);
    }

    #[test]
    fn comments_and_operators() {
        let toks = kinds("a <<< b # c\n// d\n/* e\n*/ x >>= %( %? %: %) .= !~", &[]);
        let texts: Vec<&str> = toks.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(
            texts,
            [
                "a", "<<<", "b", "x", ">>=", "%(", "%?", "%:", "%)", ".=", "!~"
            ]
        );
    }

    #[test]
    fn spans_have_line_and_column() {
        let mut sources = SourceMap::new();
        let args = Args::new(&mut sources, &[]);
        let file = sources.add("t.stp", "probe\n  begin /* x\n */ { }");
        let toks = lex(&sources, file, &args);
        let places: Vec<(u32, u32)> = toks.iter().map(|t| (t.span.line, t.span.col)).collect();
        assert_eq!(places, [(1, 1), (2, 3), (3, 5), (3, 7)]);
    }

    #[test]
    fn comment_and_embedded_edges() {
        // "/*/" does not close itself; "/**/" does; unclosed ones run to the end.
        let texts =
            |text| -> Vec<String> { kinds(text, &[]).into_iter().map(|(_, s)| s).collect() };
        assert_eq!(texts("a /*/ b */ c"), ["a", "c"]);
        assert_eq!(texts("a /**/ c"), ["a", "c"]);
        assert_eq!(texts("a /*/"), ["a"]);
        assert_eq!(texts("a /*"), ["a"]);
        assert_eq!(texts("a # b"), ["a"]);
        assert_eq!(texts("%{%} %{ x %"), ["%{%}", "%{ x %"]);
        // Lines and columns after multi-line comments and embedded code.
        let mut sources = SourceMap::new();
        let args = Args::new(&mut sources, &[]);
        let file = sources.add("t.stp", "%{\n\n x %} a /* \n\n\n */ b # c\n  d\n%{\n");
        let toks = lex(&sources, file, &args);
        let places: Vec<(u32, u32)> = toks.iter().map(|t| (t.span.line, t.span.col)).collect();
        assert_eq!(places, [(1, 1), (3, 7), (6, 5), (7, 3), (8, 1)]);
        assert_eq!(toks[4].kind, TokenKind::Junk(Junk::UnclosedEmbedded));
    }

    #[test]
    fn strings_embedded_and_junk() {
        let toks = kinds("\"a\\\"b\" %{ int x; %} \"open\n", &[]);
        assert_eq!(toks[0], (TokenKind::String, "\"a\\\"b\"".to_string()));
        assert_eq!(toks[1].0, TokenKind::Embedded);
        assert_eq!(toks[2].0, TokenKind::Junk(Junk::UnclosedString));
    }

    #[test]
    fn arguments_are_substituted() {
        let toks = kinds("$1 @1 $# @# $3", &["x + 1", "b"]);
        let texts: Vec<&str> = toks.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(texts, ["x", "+", "1", "\"x + 1\"", "2", "\"2\"", "$3"]);
        assert_eq!(toks[6].0, TokenKind::Junk(Junk::ArgOutOfRange));
    }

    #[test]
    fn numbers_are_alphanumeric_runs() {
        let toks = kinds("0x1F 077 12abc", &[]);
        assert!(toks.iter().all(|(k, _)| *k == TokenKind::Number));
        assert_eq!(toks[2].1, "12abc");
    }
}
