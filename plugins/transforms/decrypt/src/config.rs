//! The `decrypt` transform's configuration (a `[[transforms]]` table with `plugin = "decrypt"`).

use pipe_plugin_sdk::config::Secret;
use schemars::JsonSchema;
use serde::Deserialize;

/// Keys of the decrypt transform.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DecryptConfig {
    /// Path of the RSA private key whose public half was uploaded to giosg: PKCS#8 PEM
    /// (`BEGIN PRIVATE KEY`), PKCS#1 PEM (`BEGIN RSA PRIVATE KEY`), encrypted PKCS#8 PEM
    /// (`BEGIN ENCRYPTED PRIVATE KEY`, with `passphrase`) or DER. Legacy OpenSSL encrypted PEM
    /// (`Proc-Type: 4,ENCRYPTED`) must be converted first:
    /// `openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.pem -out new.pem`. RSA 2048 to 8192 bits.
    /// Relative paths are relative to the working directory. Read when the run starts; a
    /// missing or unusable file is a configuration error (exit 2) naming this key. Required.
    pub private_key_file: String,
    /// Passphrase of an encrypted PKCS#8 key (PBES2: PBKDF2-HMAC-SHA256 or scrypt, with
    /// AES-CBC — what `openssl pkcs8 -topk8` writes), best given as `"${VAR}"`. Never printed.
    /// Ignored, with a warning, for an unencrypted key.
    #[serde(default)]
    pub passphrase: Option<Secret>,
    /// Threads used to unwrap chat keys and decrypt messages; default: the number of cores.
    #[serde(default)]
    #[schemars(range(min = 1))]
    pub threads: Option<usize>,
}
