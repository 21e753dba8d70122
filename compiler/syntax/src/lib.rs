//! The SystemTap language front end: lexer, preprocessor, parser, AST, pretty-printer and diagnostics.
