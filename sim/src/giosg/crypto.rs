//! giosg chat encryption (docs/vendors/giosg.md §5), both directions.
//!
//! The encrypting half is what the simulator uses to produce encrypted chats exactly like giosg
//! does (§5.6). The decrypting half ([`unwrap_chat_key`], [`decrypt_message`]) is an independent
//! reference implementation of §5.3–§5.4: the unit tests run it on giosg's own public test
//! vectors (§5.7) and on every ciphertext the simulator produces, which proves the simulator's
//! output is decryptable by the documented algorithm, not merely by our own inverse. End-to-end
//! tests may use it too, e.g. to check that rows the pipeline left encrypted are intact.

use aws_lc_rs::cipher::{
    AES_256, DecryptionContext, PaddedBlockDecryptingKey, PaddedBlockEncryptingKey, UnboundCipherKey,
};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey, OaepPublicEncryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::{hmac, rand as lc_rand};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD, URL_SAFE_NO_PAD};

/// Header giosg puts in front of the IV in current ciphertexts (base64 prefix `MDAwMDA`).
const HEADER: &[u8; 5] = b"00000";
/// Length of the header (ignored on decryption: older Keyczar-era ciphertexts carry other bytes).
const HEADER_LEN: usize = 5;
const IV_LEN: usize = 16;
/// HMAC-SHA1 tag length.
const TAG_LEN: usize = 20;

/// URL-safe base64 that accepts the key strings with or without `=` padding (§5.2).
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The customer's RSA-2048 key pair. giosg only ever holds the public half; the simulator keeps
/// both so the dataset can hand the private key to the `decrypt` transform under test.
pub(crate) struct CustomerKey {
    private: PrivateDecryptingKey,
    public: OaepPublicEncryptingKey,
}

impl CustomerKey {
    /// Generates a fresh key (crypto randomness; not derived from the dataset seed).
    pub(crate) fn generate() -> Self {
        let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).expect("RSA-2048 key generation");
        let public = OaepPublicEncryptingKey::new(private.public_key()).expect("RSA public key for OAEP");
        Self { private, public }
    }

    /// The private key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`, 64-character lines).
    pub(crate) fn private_key_pkcs8_pem(&self) -> String {
        let der: Pkcs8V1Der<'static> = self.private.as_der().expect("PKCS#8 export");
        pem("PRIVATE KEY", der.as_ref())
    }

    /// RSA-OAEP (SHA-1, MGF1-SHA-1, empty label) encrypts `plaintext`, returned as MIME base64
    /// — the format of `chat.encrypted_symmetric_key`.
    pub(crate) fn wrap(&self, plaintext: &[u8]) -> String {
        let mut out = vec![0u8; self.public.ciphertext_size()];
        let ct = self.public.encrypt(&OAEP_SHA1_MGF1SHA1, plaintext, &mut out, None).expect("RSA-OAEP encrypt");
        base64_mime(ct)
    }
}

/// A fresh RSA-2048 private key in PKCS#8 PEM that belongs to no dataset: hand it to the
/// `decrypt` transform to play a customer with the wrong key (every chat key then fails to
/// unwrap). Crypto randomness; each call gives another key.
pub fn unrelated_private_key_pem() -> String {
    CustomerKey::generate().private_key_pkcs8_pem()
}

/// Encrypts visitor variables the way giosg does for an encrypted room (docs/vendors/giosg.md
/// §5.5): a fresh key of its own, RSA-wrapped with the public half of `private_key_pem` (the
/// dataset's customer key) into the variable `_encrypted_aes_key`, and every value encrypted
/// with it in the message format (§5.4). `variables` are `{key, value}` objects with string
/// values; the result is the same list, values replaced, with `_encrypted_aes_key` last.
///
/// Errors: [`DecryptError::BadPrivateKey`] when the PEM is not a PKCS#8 RSA private key.
pub fn encrypt_visitor_variables(
    private_key_pem: &str,
    variables: &[serde_json::Value],
) -> Result<Vec<serde_json::Value>, DecryptError> {
    let body: String = private_key_pem.lines().filter(|l| !l.starts_with("-----")).collect::<Vec<_>>().concat();
    let der = decode_lenient(&body).map_err(|_| DecryptError::BadPrivateKey)?;
    let private = PrivateDecryptingKey::from_pkcs8(&der).map_err(|_| DecryptError::BadPrivateKey)?;
    let public = OaepPublicEncryptingKey::new(private.public_key()).map_err(|_| DecryptError::BadPrivateKey)?;
    let customer = CustomerKey { private, public };
    let key = ChatKey::random();
    let mut out: Vec<serde_json::Value> = variables
        .iter()
        .map(|v| {
            let plain = v["value"].as_str().map_or_else(|| v["value"].to_string(), str::to_string);
            serde_json::json!({"key": v["key"], "value": key.encrypt(&plain)})
        })
        .collect();
    out.push(serde_json::json!({"key": "_encrypted_aes_key", "value": customer.wrap(key.key_json().as_bytes())}));
    Ok(out)
}

/// Flips one bit inside the AES ciphertext of an `encrypted_message` (MIME base64 in, MIME
/// base64 out): the HMAC-SHA1 tag no longer matches, while the length, header, IV and base64
/// form stay valid — the shape of a message damaged in transit or storage.
pub fn corrupt_ciphertext(encrypted_message: &str) -> Option<String> {
    let mut raw = decode_lenient(encrypted_message).ok()?;
    let first_ct_byte = HEADER_LEN + IV_LEN;
    if raw.len() < first_ct_byte + 16 + TAG_LEN {
        return None;
    }
    raw[first_ct_byte] ^= 0x01;
    Some(base64_mime(&raw))
}

/// One chat's symmetric key: AES-256 key + HMAC-SHA1 key, in giosg's Keyczar JSON form (§5.2).
pub(crate) struct ChatKey {
    aes: [u8; 32],
    hmac: [u8; 32],
}

impl ChatKey {
    /// A fresh random key (crypto randomness, as giosg makes one per chat session).
    pub(crate) fn random() -> Self {
        let mut aes = [0u8; 32];
        let mut hmac = [0u8; 32];
        lc_rand::fill(&mut aes).expect("system randomness");
        lc_rand::fill(&mut hmac).expect("system randomness");
        Self { aes, hmac }
    }

    /// The key JSON that gets RSA-wrapped into `encrypted_symmetric_key`. Written by hand to keep
    /// giosg's field order (`hmacKey` first) and compact form of the §5.7 vectors; key strings are URL-safe base64 without padding.
    pub(crate) fn key_json(&self) -> String {
        format!(
            r#"{{"hmacKey":{{"hmacKeyString":"{}","size":256}},"aesKeyString":"{}","mode":"CBC","size":256}}"#,
            URL_SAFE_NO_PAD.encode(self.hmac),
            URL_SAFE_NO_PAD.encode(self.aes)
        )
    }

    /// Encrypts one message text into `encrypted_message` form (§5.6):
    /// MIME base64 of `"00000" || iv || AES-256-CBC(pkcs7(text)) || HMAC-SHA1(header..ct)`.
    pub(crate) fn encrypt(&self, text: &str) -> String {
        let key = UnboundCipherKey::new(&AES_256, &self.aes).expect("AES-256 key");
        let key = PaddedBlockEncryptingKey::cbc_pkcs7(key).expect("AES-CBC key");
        let mut ct = text.as_bytes().to_vec();
        // `encrypt` draws a random IV and hands it back in the decryption context.
        let ctx = key.encrypt(&mut ct).expect("AES-CBC encrypt");
        let iv: &[u8] = (&ctx).try_into().expect("CBC context carries an IV");

        let mut body = Vec::with_capacity(HEADER_LEN + IV_LEN + ct.len() + TAG_LEN);
        body.extend_from_slice(HEADER);
        body.extend_from_slice(iv);
        body.extend_from_slice(&ct);
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &self.hmac), &body);
        body.extend_from_slice(tag.as_ref());
        base64_mime(&body)
    }
}

/// Standard base64 with a `\n` after every 76 output characters and at the end, like Python's
/// `base64.encodebytes` — the form giosg serves for both encrypted fields.
pub fn base64_mime(bytes: &[u8]) -> String {
    let flat = STANDARD.encode(bytes);
    let mut out = String::with_capacity(flat.len() + flat.len() / 76 + 1);
    for line in flat.as_bytes().chunks(76) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out
}

/// PEM armour: base64 of `der` in 64-character lines between BEGIN/END `label` lines.
fn pem(label: &str, der: &[u8]) -> String {
    let flat = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in flat.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Why the reference decryptor refused an input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecryptError {
    /// The PEM is not an unencrypted PKCS#8 RSA private key.
    BadPrivateKey,
    /// A field was not valid base64.
    BadBase64,
    /// RSA-OAEP decryption failed (wrong key or corrupted `encrypted_symmetric_key`).
    Rsa,
    /// The unwrapped key is not the Keyczar AES key JSON of §5.2.
    BadKeyJson,
    /// The ciphertext is shorter than header + IV + one block + tag, or not block-aligned.
    BadLength,
    /// The HMAC-SHA1 tag does not match.
    HmacMismatch,
    /// AES-CBC decryption or PKCS#7 unpadding failed.
    Aes,
    /// The plaintext is not UTF-8.
    NotUtf8,
}

impl std::fmt::Display for DecryptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

impl std::error::Error for DecryptError {}

/// Decodes standard base64 after removing all whitespace (giosg inserts `\n` every 76 chars).
fn decode_lenient(text: &str) -> Result<Vec<u8>, DecryptError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(compact).map_err(|_| DecryptError::BadBase64)
}

/// Reference §5.3: RSA-OAEP(SHA-1, MGF1-SHA-1) unwraps `chat.encrypted_symmetric_key` with a
/// PKCS#8 PEM private key and returns the AES key JSON text.
pub fn unwrap_chat_key(private_key_pem: &str, encrypted_symmetric_key: &str) -> Result<String, DecryptError> {
    let body: String = private_key_pem.lines().filter(|l| !l.starts_with("-----")).collect::<Vec<_>>().concat();
    let der = decode_lenient(&body).map_err(|_| DecryptError::BadPrivateKey)?;
    let private = PrivateDecryptingKey::from_pkcs8(&der).map_err(|_| DecryptError::BadPrivateKey)?;
    let key = OaepPrivateDecryptingKey::new(private).map_err(|_| DecryptError::BadPrivateKey)?;
    let ct = decode_lenient(encrypted_symmetric_key)?;
    let mut out = vec![0u8; key.min_output_size()];
    let pt = key.decrypt(&OAEP_SHA1_MGF1SHA1, &ct, &mut out, None).map_err(|_| DecryptError::Rsa)?;
    String::from_utf8(pt.to_vec()).map_err(|_| DecryptError::NotUtf8)
}

/// Reference §5.4: decrypts one `encrypted_message` with the key JSON of its chat, verifying
/// the HMAC-SHA1 tag over header + IV + ciphertext first (encrypt-then-MAC).
pub fn decrypt_message(key_json: &str, encrypted_message: &str) -> Result<String, DecryptError> {
    let (aes_key, hmac_key) = parse_key_json(key_json)?;
    let raw = decode_lenient(encrypted_message)?;
    let min = HEADER_LEN + IV_LEN + 16 + TAG_LEN;
    if raw.len() < min || !(raw.len() - HEADER_LEN - IV_LEN - TAG_LEN).is_multiple_of(16) {
        return Err(DecryptError::BadLength);
    }
    let (signed, tag) = raw.split_at(raw.len() - TAG_LEN);
    hmac::verify(&hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &hmac_key), signed, tag)
        .map_err(|_| DecryptError::HmacMismatch)?;

    let iv: [u8; IV_LEN] = signed[HEADER_LEN..HEADER_LEN + IV_LEN].try_into().expect("length checked");
    let mut ct = signed[HEADER_LEN + IV_LEN..].to_vec();
    let key = UnboundCipherKey::new(&AES_256, &aes_key).map_err(|_| DecryptError::BadKeyJson)?;
    let key = PaddedBlockDecryptingKey::cbc_pkcs7(key).map_err(|_| DecryptError::Aes)?;
    let pt = key.decrypt(&mut ct, DecryptionContext::Iv128(FixedLength::from(iv))).map_err(|_| DecryptError::Aes)?;
    String::from_utf8(pt.to_vec()).map_err(|_| DecryptError::NotUtf8)
}

/// Extracts (AES key, HMAC key) from the Keyczar key JSON of §5.2.
fn parse_key_json(key_json: &str) -> Result<(Vec<u8>, Vec<u8>), DecryptError> {
    let v: serde_json::Value = serde_json::from_str(key_json).map_err(|_| DecryptError::BadKeyJson)?;
    let field = |s: Option<&str>| -> Result<Vec<u8>, DecryptError> {
        let s = s.ok_or(DecryptError::BadKeyJson)?;
        URL_SAFE_LENIENT.decode(s).map_err(|_| DecryptError::BadKeyJson)
    };
    let aes = field(v["aesKeyString"].as_str())?;
    let hmac = field(v["hmacKey"]["hmacKeyString"].as_str())?;
    if aes.len() != 32 || v["mode"].as_str() != Some("CBC") {
        return Err(DecryptError::BadKeyJson);
    }
    Ok((aes, hmac))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// §5.7 vector 1 ([CRYPTER], Keyczar-era header bytes, no line breaks).
    #[test]
    fn crypter_vector() {
        let key = r#"{"hmacKey":{"hmacKeyString":"Wf7oZEWQTpspt0g1ZISN0SNFS21w5DdVOp579RqBg20","size":256},"aesKeyString":"dIz4N3wn4V3RfRjyteWRS5_fkXzuo8fFP1ZLMgck_wg","mode":"CBC","size":256}"#;
        let ct = "AJxNkp3ZS9McVTYPDyckR7ub7ri5oIObzl0a45t13owvG8ouGfAdfZiosw4hxCgc1iYg88v1xZRLFf0/UJr/CcqfCzJjSA4ZWg==";
        assert_eq!(decrypt_message(key, ct).unwrap(), "The Line is Open!");
    }

    /// §5.7 vector 2 ([JAVA] example data, `"00000"` header, trailing `\n`).
    #[test]
    fn java_vectors() {
        let key = r#"{"hmacKey":{"hmacKeyString":"-gJWUmlckpzblsNGf1gxhshbf5FNbBdagQfN7wSeh0M","size":256},"aesKeyString":"Jduu-c9igxKN1-XAy8Ma8NhsJnmj-YQtuSyM_ePSSZg","mode":"CBC","size":256}"#;
        let cases = [
            ("MDAwMDDQ9Mn5kH7v4BXslkglavGSYr0A2Uq1lMSYtYG/BZ5yVhy7rps46bfNuQS8/56ULEsN7pwW\n", "Kool!"),
            ("MDAwMDB2R/gwHbEykG49FVRulA/vYU0S2MdUqIWNOiMoSCcp71niHF304FYft8Wzkb8++yRCoFqP\n", "Teast message"),
            ("MDAwMDAEWBfxHzpmtGSu2lEKkBOdrvADyzppDy7qCxeyqu9QnsO/xOYfteT+f7WccfuQTnWMA4s3\n", "Language: en"),
        ];
        for (ct, want) in cases {
            assert_eq!(decrypt_message(key, ct).unwrap(), want);
        }
    }

    /// A flipped ciphertext bit must be caught by the HMAC, not decrypted to garbage.
    #[test]
    fn tampering_is_detected() {
        let key = ChatKey::random();
        let mut raw = decode_lenient(&key.encrypt("hello")).unwrap();
        raw[HEADER_LEN + IV_LEN] ^= 1;
        assert_eq!(decrypt_message(&key.key_json(), &STANDARD.encode(raw)), Err(DecryptError::HmacMismatch));
    }

    /// Our encryptor round-trips through the reference decryptor, including the RSA step, for
    /// short, block-aligned, multi-line and long unicode texts.
    #[test]
    fn round_trip() {
        let customer = CustomerKey::generate();
        let pem = customer.private_key_pkcs8_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n") && pem.ends_with("-----END PRIVATE KEY-----\n"));
        assert!(pem.lines().filter(|l| !l.starts_with("-----")).all(|l| l.len() <= 64));

        let key = ChatKey::random();
        let wrapped = customer.wrap(key.key_json().as_bytes());
        // 256 bytes → 344 base64 chars in lines of 76, each line (incl. the last) ending in \n.
        assert_eq!(wrapped.chars().filter(|c| !c.is_whitespace()).count(), 344);
        assert!(wrapped.ends_with('\n') && wrapped.lines().all(|l| l.len() <= 76));
        let json = unwrap_chat_key(&pem, &wrapped).unwrap();
        assert_eq!(json, key.key_json());

        let long: String = "Ääkköset ja эмодзи 🎉 漢字 ".chars().cycle().take(2000).collect();
        for text in ["", "Kool!", "exactly16bytes!!", "line 1\nline 2\n", long.as_str()] {
            let ct = key.encrypt(text);
            assert!(decode_lenient(&ct).unwrap().starts_with(HEADER), "header is \"00000\"");
            assert_eq!(decrypt_message(&json, &ct).unwrap(), text);
        }
    }

    /// The corruption keeps the form valid and is caught by the HMAC, not by base64 or length.
    #[test]
    fn corrupted_ciphertext_fails_the_hmac() {
        let key = ChatKey::random();
        let ct = key.encrypt("hello there");
        let bad = corrupt_ciphertext(&ct).unwrap();
        assert_ne!(bad, ct);
        assert_eq!(bad.len(), ct.len());
        assert_eq!(decrypt_message(&key.key_json(), &bad), Err(DecryptError::HmacMismatch));
        assert!(corrupt_ciphertext("AAAA").is_none());
    }

    #[test]
    fn unrelated_key_cannot_unwrap() {
        let customer = CustomerKey::generate();
        let wrapped = customer.wrap(ChatKey::random().key_json().as_bytes());
        assert_eq!(unwrap_chat_key(&unrelated_private_key_pem(), &wrapped), Err(DecryptError::Rsa));
    }

    #[test]
    fn mime_line_breaks() {
        assert_eq!(base64_mime(b""), "");
        assert_eq!(base64_mime(b"Kool"), "S29vbA==\n");
        let s = base64_mime(&[0u8; 57]); // exactly 76 output chars → one line
        assert_eq!(s.len(), 77);
        let s = base64_mime(&[0u8; 58]);
        assert_eq!(s.lines().count(), 2);
    }
}
