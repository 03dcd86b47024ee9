//! `pipe-tests`: API-faithful vendor simulators and the end-to-end tests of the real `pipe`
//! binary.
//!
//! The simulators are a library so that `pipe demo` can start them in-process on a loopback
//! port, and so that the end-to-end tests (in `tests/tests/`) can run the built `pipe` binary
//! against them and compare its output with the simulator's ground truth.

#![warn(missing_docs)]

pub mod alli;
pub mod aimylogic;
pub mod giosg;
