//! The command line as a user meets it: configuration errors (`file:line: key`), accounts and
//! accounts files, `pipe demo`, and the deployment examples under `deploy/`.
//!
//! One test binary; a new file `cli/<name>.rs` joins it with `mod <name>;` below.

mod accounts;
mod config;
mod demo;
mod deploy_files;
