//! One module per subcommand.

pub mod kernels;
