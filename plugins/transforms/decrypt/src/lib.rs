//! # pipe-plugin-decrypt
//!
//! Transform plugin `decrypt`: decrypts giosg chat encryption (docs/vendors/giosg.md §5) in the
//! `messages` stream, and encrypted visitor variables (§5.5) in the `conversations` stream
//! ([`variables`]).
//!
//! For each row with `is_encrypted = true` it unwraps the chat key from
//! `attributes["giosg.encrypted_symmetric_key"]` (RSA-OAEP, SHA-1, MGF1-SHA-1), verifies the
//! message's HMAC-SHA1, decrypts AES-256-CBC, and sets `text`, `is_encrypted = false`,
//! `ciphertext = null` and drops the key attribute. A row it cannot decrypt stays in the
//! output unchanged (still encrypted) and is reported as a dead letter with reason
//! `key_unwrap_failed`, `hmac_mismatch`, `bad_ciphertext`, `missing_chat_key` or `bad_utf8`.
//!
//! * One RSA unwrap per chat, cached ([`cache`]); a batch's distinct chat keys are unwrapped on
//!   every core ([`parallel`]), as RSA is the expensive step.
//! * All cryptography is aws-lc-rs (constant-time RSA with blinding, HMAC verification in
//!   constant time). The RustCrypto `pkcs8` crate only opens passphrase-protected PKCS#8
//!   containers ([`private_key`]).

#![warn(missing_docs)]

pub mod batch;
pub mod cache;
pub mod config;
pub mod parallel;
pub mod private_key;
pub mod scheme;
mod transform;
pub mod variables;

use std::sync::Arc;

use pipe_plugin_sdk::{PluginDescriptor, PluginFactory, config as sdk_config};

pub use config::DecryptConfig;
pub use transform::DecryptTransform;

/// The plugin's name in pipeline files.
pub const NAME: &str = "decrypt";

/// The `decrypt` plugin, for the engine's registry.
pub fn descriptor() -> PluginDescriptor {
    PluginDescriptor {
        name: NAME,
        version: env!("CARGO_PKG_VERSION"),
        description: "Decrypts giosg-encrypted messages (RSA-OAEP + AES-256-CBC/HMAC-SHA1) with your private key",
        config_schema: Arc::new(sdk_config::schema_of::<DecryptConfig>),
        // Validation also loads the key (a local file, no network), so `pipe validate` catches a
        // missing or unreadable key before a long run does.
        check_config: PluginDescriptor::check_with(|config| {
            let cfg: DecryptConfig = sdk_config::parse(config.clone())?;
            DecryptTransform::open(cfg).map(|_| ())
        }),
        factory: PluginFactory::transform(|config, _ctx| {
            let cfg: DecryptConfig = sdk_config::parse(config)?;
            Ok(Box::new(DecryptTransform::open(cfg)?))
        }),
    }
}
