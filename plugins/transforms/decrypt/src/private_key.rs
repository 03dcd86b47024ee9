//! Loading the customer's RSA private key from `private_key_file`.
//!
//! Accepted (PEM or raw DER):
//!
//! * PKCS#8 `-----BEGIN PRIVATE KEY-----` (what `openssl genpkey` writes);
//! * PKCS#1 `-----BEGIN RSA PRIVATE KEY-----` (what giosg's own tools ship, `openssl genrsa`
//!   before 3.0);
//! * encrypted PKCS#8 `-----BEGIN ENCRYPTED PRIVATE KEY-----` (PBES2: PBKDF2 or scrypt, with
//!   AES-CBC), opened with `passphrase`.
//!
//! The legacy OpenSSL encrypted PEM (`Proc-Type: 4,ENCRYPTED` + `DEK-Info`, giosg's Java
//! example key) is refused with the command that converts it: its key derivation is a single
//! MD5 round, so we would rather not carry it.
//!
//! RSA itself is aws-lc-rs. The RustCrypto `pkcs8` crate is used only to decrypt an encrypted
//! PKCS#8 container into plain PKCS#8 bytes, which aws-lc-rs then parses.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rsa::{KeyPair, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine as _;
use pipe_plugin_sdk::PluginError;
use zeroize::Zeroizing;

/// Config key the errors point at.
const KEY_FILE: &str = "private_key_file";
const PASSPHRASE: &str = "passphrase";

/// The command that turns a legacy encrypted PEM into an encrypted PKCS#8 one.
pub const CONVERT_LEGACY: &str = "openssl pkcs8 -topk8 -v2 aes-256-cbc -in old.pem -out new.pem";

fn config_error(key: &str, message: impl Into<String>) -> PluginError {
    PluginError::Config { path: key.to_string(), message: message.into() }
}

/// Reads and parses the private key file.
///
/// Errors: [`PluginError::Config`] at `private_key_file` (missing or unreadable file, not a
/// private key, legacy encrypted PEM, not RSA, unsupported size) or at `passphrase` (needed
/// but absent, wrong, or an unsupported encryption scheme).
pub fn load(path: &str, passphrase: Option<&str>) -> Result<OaepPrivateDecryptingKey, PluginError> {
    let bytes = Zeroizing::new(
        std::fs::read(path)
            .map_err(|e| config_error(KEY_FILE, format!("cannot read the private key file {path}: {e}")))?,
    );
    let key = parse(&bytes, passphrase).map_err(|e| match e {
        PluginError::Config { path: key, message } => config_error(&key, format!("{path}: {message}")),
        other => other,
    })?;
    OaepPrivateDecryptingKey::new(key)
        .map_err(|_| config_error(KEY_FILE, format!("{path}: the RSA key cannot be used for OAEP")))
}

/// Parses a private key from the bytes of a PEM or DER file (see the [module docs](self)).
///
/// Errors: as [`load`], without the file name.
pub fn parse(bytes: &[u8], passphrase: Option<&str>) -> Result<PrivateDecryptingKey, PluginError> {
    let Some(text) = std::str::from_utf8(bytes).ok().filter(|t| t.contains("-----BEGIN ")) else {
        return parse_der(bytes, passphrase);
    };
    let block = Pem::first_private_key(text)?;
    match block.label.as_str() {
        "RSA PRIVATE KEY" if block.is_legacy_encrypted() => Err(config_error(
            KEY_FILE,
            format!(
                "legacy OpenSSL encrypted PEM (`Proc-Type: 4,ENCRYPTED`) is not supported; convert it to encrypted PKCS#8 once with `{CONVERT_LEGACY}` (it asks for the old passphrase and a new one) and set passphrase to the new one"
            ),
        )),
        "RSA PRIVATE KEY" => unused_passphrase(passphrase, pkcs1(&block.der)),
        "PRIVATE KEY" => unused_passphrase(passphrase, pkcs8(&block.der)),
        "ENCRYPTED PRIVATE KEY" => encrypted_pkcs8(&block.der, passphrase),
        other => Err(config_error(
            KEY_FILE,
            format!("a `{other}` PEM is not supported; use an RSA key in PKCS#8 or PKCS#1 PEM"),
        )),
    }
}

/// A key given in DER: PKCS#8, PKCS#1, or encrypted PKCS#8 when a passphrase is set.
fn parse_der(der: &[u8], passphrase: Option<&str>) -> Result<PrivateDecryptingKey, PluginError> {
    if let Ok(key) = pkcs8(der) {
        return unused_passphrase(passphrase, Ok(key));
    }
    if let Ok(key) = pkcs1(der) {
        return unused_passphrase(passphrase, Ok(key));
    }
    if passphrase.is_some() && pkcs8::EncryptedPrivateKeyInfo::try_from(der).is_ok() {
        return encrypted_pkcs8(der, passphrase);
    }
    Err(config_error(KEY_FILE, "not a PEM file and not a DER-encoded RSA private key"))
}

/// A passphrase for an unencrypted key is harmless but probably a mistake: say so, go on.
fn unused_passphrase(
    passphrase: Option<&str>,
    key: Result<PrivateDecryptingKey, PluginError>,
) -> Result<PrivateDecryptingKey, PluginError> {
    if passphrase.is_some() && key.is_ok() {
        tracing::warn!("decrypt: `passphrase` is set but private_key_file is not encrypted; the passphrase is ignored");
    }
    key
}

fn pkcs8(der: &[u8]) -> Result<PrivateDecryptingKey, PluginError> {
    PrivateDecryptingKey::from_pkcs8(der).map_err(|e| {
        config_error(
            KEY_FILE,
            format!("not a usable RSA private key in PKCS#8 ({e}); RSA keys of 2048 to 8192 bits are supported"),
        )
    })
}

/// aws-lc-rs reads PKCS#1 (`RSAPrivateKey`) only through its signing `KeyPair`; re-encode that
/// as PKCS#8 to get the decrypting key. No key material leaves aws-lc-rs except this DER,
/// which is zeroed after use.
fn pkcs1(der: &[u8]) -> Result<PrivateDecryptingKey, PluginError> {
    let pair = KeyPair::from_der(der).map_err(|e| {
        config_error(
            KEY_FILE,
            format!("not a usable RSA private key in PKCS#1 ({e}); RSA keys of 2048 to 8192 bits are supported"),
        )
    })?;
    let as_pkcs8: Pkcs8V1Der<'static> =
        pair.as_der().map_err(|_| config_error(KEY_FILE, "cannot re-encode the PKCS#1 key as PKCS#8"))?;
    let bytes = Zeroizing::new(as_pkcs8.as_ref().to_vec());
    pkcs8(&bytes)
}

fn encrypted_pkcs8(der: &[u8], passphrase: Option<&str>) -> Result<PrivateDecryptingKey, PluginError> {
    let Some(passphrase) = passphrase else {
        return Err(config_error(
            PASSPHRASE,
            "private_key_file is an encrypted PKCS#8 key: set passphrase (e.g. passphrase = \"${GIOSG_KEY_PASSPHRASE}\")",
        ));
    };
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(der)
        .map_err(|e| config_error(KEY_FILE, format!("malformed encrypted PKCS#8 key: {e}")))?;
    let plain = info.decrypt(passphrase.as_bytes()).map_err(|e| match e {
        pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::UnsupportedAlgorithm { .. })
        | pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::AlgorithmParametersInvalid { .. })
        | pkcs8::Error::EncryptedPrivateKey(pkcs8::pkcs5::Error::NoPbes1CryptSupport) => config_error(
            KEY_FILE,
            format!("the key is encrypted with a scheme we do not support (supported: PBES2 with PBKDF2-HMAC-SHA256 or scrypt, and AES-CBC); re-encrypt it with `{CONVERT_LEGACY}`"),
        ),
        _ => config_error(PASSPHRASE, "cannot decrypt private_key_file: wrong passphrase (or a corrupt key file)"),
    })?;
    pkcs8(plain.as_bytes()).map_err(|_| {
        config_error(PASSPHRASE, "cannot decrypt private_key_file: wrong passphrase (or a corrupt key file)")
    })
}

/// One PEM block: label, RFC 1421 headers (`Proc-Type`, `DEK-Info`) and the decoded body.
struct Pem {
    label: String,
    headers: Vec<(String, String)>,
    der: Zeroizing<Vec<u8>>,
}

impl Pem {
    /// The first block whose label ends in `PRIVATE KEY` (a file may also hold certificates
    /// or explanatory text, as `openssl pkcs12` output does).
    fn first_private_key(text: &str) -> Result<Pem, PluginError> {
        let mut labels = Vec::new();
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            let Some(label) = line.strip_prefix("-----BEGIN ").and_then(|l| l.strip_suffix("-----")) else { continue };
            if !label.ends_with("PRIVATE KEY") {
                labels.push(label.to_string());
                continue;
            }
            let end = format!("-----END {label}-----");
            let mut headers = Vec::new();
            let mut body = Zeroizing::new(String::new());
            let mut closed = false;
            for line in lines.by_ref() {
                if line == end {
                    closed = true;
                    break;
                }
                match line.split_once(':') {
                    // Base64 has no ':', so a line with one is a header.
                    Some((name, value)) => headers.push((name.trim().to_string(), value.trim().to_string())),
                    None => body.push_str(line),
                }
            }
            if !closed {
                return Err(config_error(KEY_FILE, format!("PEM block `{label}` has no `{end}` line")));
            }
            let der = base64::engine::general_purpose::STANDARD.decode(body.as_bytes()).map_err(|_| {
                config_error(KEY_FILE, format!("the base64 body of the `{label}` PEM block is invalid"))
            })?;
            return Ok(Pem { label: label.to_string(), headers, der: Zeroizing::new(der) });
        }
        Err(if labels.iter().any(|l| l.contains("PUBLIC KEY") || l == "CERTIFICATE") {
            config_error(
                KEY_FILE,
                format!(
                    "the file holds {} but no private key; decrypting needs the RSA private key whose public half giosg has",
                    labels.join(", ")
                ),
            )
        } else {
            config_error(KEY_FILE, "no `-----BEGIN ... PRIVATE KEY-----` block found")
        })
    }

    fn is_legacy_encrypted(&self) -> bool {
        self.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("Proc-Type") && v.contains("ENCRYPTED"))
    }
}
