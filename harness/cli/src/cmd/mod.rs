//! One module per subcommand.

pub mod bench;
pub mod doctor;
pub mod kernels;
pub mod parse;
