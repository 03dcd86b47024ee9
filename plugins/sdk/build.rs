//! Records how the SDK was built, for the `build_info` a plugin library reports to the host
//! (`pipe plugins` shows it; useful in bug reports). Cargo gives build scripts the compiler,
//! the target and the profile, but not the crate being compiled.

use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().nth(1).map(str::to_string))
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=PIPE_SDK_RUSTC_VERSION={version}");
    println!("cargo:rustc-env=PIPE_SDK_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    println!("cargo:rustc-env=PIPE_SDK_PROFILE={}", std::env::var("PROFILE").unwrap_or_default());
    println!("cargo:rerun-if-env-changed=RUSTC");
}
