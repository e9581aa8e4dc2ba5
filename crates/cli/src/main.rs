//! The `replikv` command (placeholder until the CLI lands).
fn main() {}
