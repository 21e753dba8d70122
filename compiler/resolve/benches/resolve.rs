//! Resolving the tapset library against every cached kernel (see below).
fn main() {}
