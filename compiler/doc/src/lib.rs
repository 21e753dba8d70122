//! The tapset reference: the `/** ... */` doc comments of a tapset
//! directory, turned into typed entries (probe aliases with their
//! variables, functions with their parameters) and rendered as Markdown or
//! as a man page, like SystemTap's tapset reference manual. Given an
//! availability matrix (`tapmatrix_resolve::availability`), each alias also
//! says on which kernels it resolves and through which alternative.
//!
//! A doc comment documents the `probe` or `function` declaration that
//! follows it:
//!
//! ```text
//! /**
//!  * probe vfs.read - A read from a file is starting
//!  * @file: Address of the struct file being read
//!  *
//!  * Free paragraphs (Description:, Context:, Optional: ...).
//!  */
//! probe vfs.read = kernel.function("vfs_read") { ... }
//! ```
//!
//! The first line is `probe NAME - summary` or `sfunction NAME - summary`
//! (`function` is accepted too); `@name: text` lines document variables or
//! parameters (continued by the lines up to the next `@` or blank line);
//! the rest is description. A name that differs from the declaration's is
//! an error, so the reference cannot drift from the code.

mod extract;
mod render;

pub use extract::{DocError, Entry, EntryKind, FileDoc, Param, extract, load_dir};
pub use render::{Format, render};
