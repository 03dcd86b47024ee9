//! `pipe demo`: runs the built-in pipeline of each vendor against that vendor's simulator on
//! 127.0.0.1, writing Parquet under `<out>/<vendor>/`. One module per vendor; each starts its
//! simulator, fills the `PIPE_DEMO_*` variables of its pipeline (`pipelines/<vendor>-demo.toml`,
//! built in so the demo works from any directory) and runs it like `pipe run` would.

use std::path::Path;

use crate::commands::{EXIT_CONFIG, EXIT_OK};

mod aimylogic;
mod alli;
mod giosg;

/// The vendors `pipe demo` knows, in the order it runs them.
pub const VENDORS: &[&str] = &["giosg", "alli", "aimylogic"];

/// Runs the demo of `vendor`, or of every vendor when `None`; `size` is the number of
/// conversations each simulated account holds. Returns the exit code of the first vendor
/// whose run did not succeed, else 0.
pub async fn run(out: &Path, size: usize, vendor: Option<&str>, quiet: bool) -> u8 {
    let chosen: Vec<&str> = match vendor {
        None | Some("all") => VENDORS.to_vec(),
        Some(v) if VENDORS.contains(&v) => vec![v],
        Some(v) => {
            eprintln!("error: `pipe demo` has no vendor `{v}` (known: {}, all)", VENDORS.join(", "));
            return EXIT_CONFIG;
        }
    };
    for v in chosen {
        let dir = out.join(v);
        let code = match v {
            "giosg" => giosg::run(&dir, size, quiet).await,
            "alli" => alli::run(&dir, size, quiet).await,
            "aimylogic" => aimylogic::run(&dir, size, quiet).await,
            _ => unreachable!("every name in VENDORS has a demo"),
        };
        if code != EXIT_OK {
            return code;
        }
    }
    EXIT_OK
}
