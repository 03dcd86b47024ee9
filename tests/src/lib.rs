//! `pipe-tests`: the end-to-end tests of the real `pipe` binary live in `tests/tests/`; they run
//! it against the vendor simulators of `pipe-sim` and read the output back with independent
//! readers (pyarrow, DuckDB, the `deltalake` package). This library holds nothing yet: the
//! package needs a target of its own for cargo to build its tests.
