//! The `casegate` command line.
fn main() {}
