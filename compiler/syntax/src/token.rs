//! Tokens of the SystemTap language.

use crate::span::Span;

/// A reserved word (SystemTap's `keywords` set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the keyword of its name
pub enum Keyword {
    Probe,
    Global,
    Private,
    Function,
    If,
    Else,
    For,
    Foreach,
    In,
    Limit,
    Return,
    Delete,
    While,
    Break,
    Continue,
    Next,
    String,
    Long,
    Try,
    Catch,
}

impl Keyword {
    /// The keyword for an identifier's text, if it is one.
    pub fn from_word(text: &[u8]) -> Option<Keyword> {
        Some(match text {
            b"probe" => Keyword::Probe,
            b"global" => Keyword::Global,
            b"private" => Keyword::Private,
            b"function" => Keyword::Function,
            b"if" => Keyword::If,
            b"else" => Keyword::Else,
            b"for" => Keyword::For,
            b"foreach" => Keyword::Foreach,
            b"in" => Keyword::In,
            b"limit" => Keyword::Limit,
            b"return" => Keyword::Return,
            b"delete" => Keyword::Delete,
            b"while" => Keyword::While,
            b"break" => Keyword::Break,
            b"continue" => Keyword::Continue,
            b"next" => Keyword::Next,
            b"string" => Keyword::String,
            b"long" => Keyword::Long,
            b"try" => Keyword::Try,
            b"catch" => Keyword::Catch,
            _ => return None,
        })
    }

    /// The keyword's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::Probe => "probe",
            Keyword::Global => "global",
            Keyword::Private => "private",
            Keyword::Function => "function",
            Keyword::If => "if",
            Keyword::Else => "else",
            Keyword::For => "for",
            Keyword::Foreach => "foreach",
            Keyword::In => "in",
            Keyword::Limit => "limit",
            Keyword::Return => "return",
            Keyword::Delete => "delete",
            Keyword::While => "while",
            Keyword::Break => "break",
            Keyword::Continue => "continue",
            Keyword::Next => "next",
            Keyword::String => "string",
            Keyword::Long => "long",
            Keyword::Try => "try",
            Keyword::Catch => "catch",
        }
    }
}

/// Why the lexer produced a junk token (reported only if the parser meets it,
/// as SystemTap does: junk in a skipped preprocessor branch is harmless).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Junk {
    /// A byte that starts no token.
    Unknown,
    /// A string literal with no closing quote on its line.
    UnclosedString,
    /// `%{` with no `%}`.
    UnclosedEmbedded,
    /// `$N`/`@N` with N outside 1..=number of arguments.
    ArgOutOfRange,
    /// `$N` inside the text of a command-line argument.
    NestedArg,
}

impl Junk {
    /// What is wrong, in SystemTap's words.
    pub fn message(self, arg_count: usize) -> String {
        match self {
            Junk::Unknown => "unexpected character".to_string(),
            Junk::UnclosedString => "could not find matching closing quote".to_string(),
            Junk::UnclosedEmbedded => {
                "could not find matching '%}' to close embedded code block".to_string()
            }
            Junk::ArgOutOfRange => {
                format!("command line argument out of range [1-{arg_count}]")
            }
            Junk::NestedArg => "invalid nested substitution of command line arguments".to_string(),
        }
    }
}

/// An operator or punctuation token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)] // each variant is the operator its comment shows
pub enum Op {
    LtLtLt,    // <<<
    GtGtGt,    // >>>
    ShlAssign, // <<=
    ShrAssign, // >>=
    EqEq,      // ==
    NotEq,     // !=
    LtEq,      // <=
    GtEq,      // >=
    Match,     // =~
    NotMatch,  // !~
    AddAssign,
    SubAssign,
    MulAssign,
    DivAssign,
    ModAssign,
    AndAssign,
    XorAssign,
    OrAssign,
    DotAssign, // .=
    AndAnd,
    OrOr,
    PlusPlus,
    MinusMinus,
    Arrow,   // ->
    Shl,     // <<
    Shr,     // >>
    PpOpen,  // %(
    PpThen,  // %?
    PpElse,  // %:
    PpClose, // %)
    Bang,
    Percent,
    Amp,
    LParen,
    RParen,
    Star,
    Plus,
    Comma,
    Minus,
    Dot,
    Slash,
    Colon,
    Semi,
    Lt,
    Assign,
    Gt,
    Question,
    LBracket,
    RBracket,
    Caret,
    LBrace,
    Pipe,
    RBrace,
    Tilde,
    /// Any other ASCII punctuation (`'`, `\`, `` ` ``): a token no rule accepts.
    Other(u8),
}

impl Op {
    /// The operator's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::LtLtLt => "<<<",
            Op::GtGtGt => ">>>",
            Op::ShlAssign => "<<=",
            Op::ShrAssign => ">>=",
            Op::EqEq => "==",
            Op::NotEq => "!=",
            Op::LtEq => "<=",
            Op::GtEq => ">=",
            Op::Match => "=~",
            Op::NotMatch => "!~",
            Op::AddAssign => "+=",
            Op::SubAssign => "-=",
            Op::MulAssign => "*=",
            Op::DivAssign => "/=",
            Op::ModAssign => "%=",
            Op::AndAssign => "&=",
            Op::XorAssign => "^=",
            Op::OrAssign => "|=",
            Op::DotAssign => ".=",
            Op::AndAnd => "&&",
            Op::OrOr => "||",
            Op::PlusPlus => "++",
            Op::MinusMinus => "--",
            Op::Arrow => "->",
            Op::Shl => "<<",
            Op::Shr => ">>",
            Op::PpOpen => "%(",
            Op::PpThen => "%?",
            Op::PpElse => "%:",
            Op::PpClose => "%)",
            Op::Bang => "!",
            Op::Percent => "%",
            Op::Amp => "&",
            Op::LParen => "(",
            Op::RParen => ")",
            Op::Star => "*",
            Op::Plus => "+",
            Op::Comma => ",",
            Op::Minus => "-",
            Op::Dot => ".",
            Op::Slash => "/",
            Op::Colon => ":",
            Op::Semi => ";",
            Op::Lt => "<",
            Op::Assign => "=",
            Op::Gt => ">",
            Op::Question => "?",
            Op::LBracket => "[",
            Op::RBracket => "]",
            Op::Caret => "^",
            Op::LBrace => "{",
            Op::Pipe => "|",
            Op::RBrace => "}",
            Op::Tilde => "~",
            Op::Other(b'\'') => "'",
            Op::Other(b'\\') => "\\",
            Op::Other(b'`') => "`",
            Op::Other(_) => "?",
        }
    }
}

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// A name: `x`, `$var`, `$var$`, `$$vars`, `kernel`.
    Ident,
    /// A reserved word.
    Keyword(Keyword),
    /// `@word`: a macro invocation, a macro parameter, or an `@`-operator.
    AtWord,
    /// Digits and letters starting with a digit (validated by the parser).
    Number,
    /// A string literal, quotes included in the span.
    String,
    /// `%{ ... %}`, delimiters included in the span.
    Embedded,
    /// An operator or punctuation.
    Op(Op),
    /// Something that is no token; an error if the parser reaches it.
    Junk(Junk),
}

/// A token: kind and place; its text is the span's text in the source map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Where it is.
    pub span: Span,
    /// Whether whitespace or a comment came right before it.
    pub space_before: bool,
}

impl Token {
    /// Whether this is the operator `op`.
    pub fn is_op(&self, op: Op) -> bool {
        self.kind == TokenKind::Op(op)
    }

    /// Whether this is the keyword `kw`.
    pub fn is_kw(&self, kw: Keyword) -> bool {
        self.kind == TokenKind::Keyword(kw)
    }
}
