//! One module per subcommand.

pub mod bench;
pub mod doc;
pub mod doctor;
pub mod examples;
pub mod kernels;
pub mod list;
pub mod parse;
pub mod report;
pub mod resolve;
pub mod run;
