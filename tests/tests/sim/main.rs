//! The vendor simulators themselves (`pipe-sim`), the ground truth every end-to-end test
//! compares with: generated datasets are consistent and realistic, the served API answers like
//! the vendor's, and the Alli plugin's GraphQL documents validate against the simulator's SDL.
//!
//! One test binary; a new file `sim/<name>.rs` joins it with `mod <name>;` below.

mod alli;
mod giosg;
