//! giosg's chat encryption, decrypting side (docs/vendors/giosg.md §5.3–§5.4), on aws-lc-rs.
//!
//! Two steps per chat:
//!
//! 1. [`unwrap_chat_key`]: the chat's `encrypted_symmetric_key` (standard base64 of an
//!    RSA-OAEP ciphertext, SHA-1 and MGF1-SHA-1, empty label) decrypts to the Keyczar key JSON
//!    of §5.2, which holds the AES-256 key and the HMAC-SHA1 key of the chat ([`ChatKey`]).
//! 2. [`decrypt_message`]: each `encrypted_message` is standard base64 of
//!    `header(5) || iv(16) || AES-256-CBC(pkcs7(text)) || HMAC-SHA1(header..ct)(20)`. The tag is
//!    verified (constant time) before anything is decrypted: encrypt-then-MAC, so a tampered
//!    message never reaches the padding check.
//!
//! Base64 input may carry line breaks (giosg sends MIME base64 with `\n` every 76 characters)
//! or none; all ASCII whitespace is ignored.

use aws_lc_rs::cipher::{AES_256, DecryptionContext, PaddedBlockDecryptingKey, UnboundCipherKey};
use aws_lc_rs::hmac;
use aws_lc_rs::iv::FixedLength;
use aws_lc_rs::rsa::{OAEP_SHA1_MGF1SHA1, OaepPrivateDecryptingKey};
use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use zeroize::Zeroizing;

/// Bytes of the header in front of the IV; its value differs by era and is never checked.
const HEADER_LEN: usize = 5;
const IV_LEN: usize = 16;
const BLOCK_LEN: usize = 16;
/// HMAC-SHA1 tag length.
const TAG_LEN: usize = 20;

/// The key strings of the key JSON are URL-safe base64 with the `=` padding stripped; accept
/// them padded too, in case a tool re-pads them.
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a row could not be decrypted. Each variant is one dead-letter reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The chat key could not be unwrapped: not base64, RSA-OAEP refused it (wrong private
    /// key, or a corrupted `encrypted_symmetric_key`), or it is not the key JSON of §5.2.
    KeyUnwrapFailed,
    /// The message's HMAC-SHA1 tag does not match: the ciphertext was altered, or it was
    /// encrypted with another chat's key.
    HmacMismatch,
    /// The ciphertext is not base64, is too short or not block-aligned, or its padding is
    /// invalid although the tag matched.
    BadCiphertext,
    /// An encrypted row carries no chat key (giosg.md §7 #9: a chat without
    /// `encrypted_symmetric_key`).
    MissingChatKey,
    /// The plaintext is not UTF-8.
    BadUtf8,
}

impl Reason {
    /// The reason code written to the dead-letter output.
    pub fn code(self) -> &'static str {
        match self {
            Reason::KeyUnwrapFailed => "key_unwrap_failed",
            Reason::HmacMismatch => "hmac_mismatch",
            Reason::BadCiphertext => "bad_ciphertext",
            Reason::MissingChatKey => "missing_chat_key",
            Reason::BadUtf8 => "bad_utf8",
        }
    }
}

/// A decryption failure: the reason code plus a human explanation (never key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Machine-readable reason.
    pub reason: Reason,
    /// What went wrong, for the dead letter's `message`.
    pub message: String,
}

impl Failure {
    fn new(reason: Reason, message: impl Into<String>) -> Self {
        Failure { reason, message: message.into() }
    }
}

/// One chat's symmetric keys, ready to use: the AES-256-CBC decrypting key and the HMAC-SHA1
/// verification key. Built once per chat and shared by all its messages.
pub struct ChatKey {
    aes: PaddedBlockDecryptingKey,
    hmac: hmac::Key,
}

impl std::fmt::Debug for ChatKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChatKey(***)")
    }
}

/// Decodes standard base64, ignoring all whitespace (MIME line breaks or none).
pub fn decode_base64_lenient(text: &str) -> Option<Vec<u8>> {
    // Whole runs between line breaks are copied at once: this runs for every message.
    let compact: String = text.split_ascii_whitespace().collect();
    STANDARD.decode(compact).ok()
}

/// Step 1 (§5.3): unwraps a chat's `encrypted_symmetric_key` with the customer's RSA key.
///
/// Errors: [`Reason::KeyUnwrapFailed`] when the text is not base64, RSA-OAEP(SHA-1) decryption
/// fails (a wrong private key is by far the most common cause) or the result is not the key
/// JSON of §5.2.
pub fn unwrap_chat_key(rsa: &OaepPrivateDecryptingKey, encrypted_symmetric_key: &str) -> Result<ChatKey, Failure> {
    let ct = decode_base64_lenient(encrypted_symmetric_key).ok_or_else(|| {
        Failure::new(Reason::KeyUnwrapFailed, "the chat key (encrypted_symmetric_key) is not valid base64")
    })?;
    if ct.len() != rsa.key_size_bytes() {
        return Err(Failure::new(
            Reason::KeyUnwrapFailed,
            format!(
                "the chat key is {} bytes but the private key is {}-bit ({} bytes): it was wrapped for another key",
                ct.len(),
                rsa.key_size_bits(),
                rsa.key_size_bytes()
            ),
        ));
    }
    let mut out = Zeroizing::new(vec![0u8; rsa.min_output_size()]);
    let json = rsa.decrypt(&OAEP_SHA1_MGF1SHA1, &ct, &mut out, None).map_err(|_| {
        Failure::new(
            Reason::KeyUnwrapFailed,
            "RSA-OAEP (SHA-1) could not unwrap the chat key: private_key_file is not the key this chat was encrypted for, or the chat key is corrupt",
        )
    })?;
    parse_key_json(json)
}

/// Parses the Keyczar AES key JSON of §5.2 into usable keys.
///
/// Errors: [`Reason::KeyUnwrapFailed`] for anything that is not that JSON with a 32-byte AES
/// key, mode `CBC` and an HMAC key.
pub fn parse_key_json(json: &[u8]) -> Result<ChatKey, Failure> {
    let bad = |what: &str| {
        Failure::new(Reason::KeyUnwrapFailed, format!("the unwrapped chat key is not giosg's AES key JSON: {what}"))
    };
    let v: serde_json::Value = serde_json::from_slice(json).map_err(|_| bad("not JSON"))?;
    let decode = |s: Option<&str>, name: &str| -> Result<Zeroizing<Vec<u8>>, Failure> {
        let s = s.ok_or_else(|| bad(&format!("no `{name}`")))?;
        URL_SAFE_LENIENT.decode(s).map(Zeroizing::new).map_err(|_| bad(&format!("`{name}` is not base64url")))
    };
    if v["mode"].as_str() != Some("CBC") {
        return Err(bad("mode is not CBC"));
    }
    let aes = decode(v["aesKeyString"].as_str(), "aesKeyString")?;
    let hmac_key = decode(v["hmacKey"]["hmacKeyString"].as_str(), "hmacKey.hmacKeyString")?;
    if aes.len() != 32 {
        return Err(bad(&format!("AES key is {} bytes, not 32 (AES-256)", aes.len())));
    }
    if hmac_key.is_empty() {
        return Err(bad("empty HMAC key"));
    }
    let aes = UnboundCipherKey::new(&AES_256, &aes)
        .and_then(PaddedBlockDecryptingKey::cbc_pkcs7)
        .map_err(|_| bad("AES key rejected"))?;
    Ok(ChatKey { aes, hmac: hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &hmac_key) })
}

/// Step 2 (§5.4): verifies and decrypts one `encrypted_message` with its chat's key.
///
/// Errors: [`Reason::BadCiphertext`] (not base64, wrong length, bad padding),
/// [`Reason::HmacMismatch`], [`Reason::BadUtf8`].
pub fn decrypt_message(key: &ChatKey, encrypted_message: &str) -> Result<String, Failure> {
    let raw = decode_base64_lenient(encrypted_message)
        .ok_or_else(|| Failure::new(Reason::BadCiphertext, "the ciphertext is not valid base64"))?;
    let min = HEADER_LEN + IV_LEN + BLOCK_LEN + TAG_LEN;
    if raw.len() < min || !(raw.len() - HEADER_LEN - IV_LEN - TAG_LEN).is_multiple_of(BLOCK_LEN) {
        return Err(Failure::new(
            Reason::BadCiphertext,
            format!(
                "the ciphertext is {} bytes: not header + IV + whole AES blocks + HMAC (at least {min})",
                raw.len()
            ),
        ));
    }
    let (signed, tag) = raw.split_at(raw.len() - TAG_LEN);
    // Constant-time comparison inside aws-lc-rs.
    hmac::verify(&key.hmac, signed, tag).map_err(|_| {
        Failure::new(
            Reason::HmacMismatch,
            "HMAC-SHA1 mismatch: the ciphertext was altered, or it belongs to another chat key",
        )
    })?;
    let iv: [u8; IV_LEN] = signed[HEADER_LEN..HEADER_LEN + IV_LEN].try_into().expect("length checked above");
    let mut buf = Zeroizing::new(signed[HEADER_LEN + IV_LEN..].to_vec());
    let plain = key
        .aes
        .decrypt(&mut buf, DecryptionContext::Iv128(FixedLength::from(iv)))
        .map_err(|_| Failure::new(Reason::BadCiphertext, "AES-256-CBC padding is invalid although the HMAC matched"))?;
    std::str::from_utf8(plain)
        .map(str::to_owned)
        .map_err(|_| Failure::new(Reason::BadUtf8, "the decrypted text is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rsa::{KeySize, OaepPublicEncryptingKey, PrivateDecryptingKey};

    const CRYPTER_KEY: &str = r#"{"hmacKey":{"hmacKeyString":"Wf7oZEWQTpspt0g1ZISN0SNFS21w5DdVOp579RqBg20","size":256},"aesKeyString":"dIz4N3wn4V3RfRjyteWRS5_fkXzuo8fFP1ZLMgck_wg","mode":"CBC","size":256}"#;
    const JAVA_KEY: &str = r#"{"hmacKey":{"hmacKeyString":"-gJWUmlckpzblsNGf1gxhshbf5FNbBdagQfN7wSeh0M","size":256},"aesKeyString":"Jduu-c9igxKN1-XAy8Ma8NhsJnmj-YQtuSyM_ePSSZg","mode":"CBC","size":256}"#;

    fn key(json: &str) -> ChatKey {
        parse_key_json(json.as_bytes()).unwrap()
    }

    /// giosg.md §5.7 vector 1 (giosg_crypter, Keyczar-era header, no line breaks).
    #[test]
    fn public_vector_crypter() {
        let ct = "AJxNkp3ZS9McVTYPDyckR7ub7ri5oIObzl0a45t13owvG8ouGfAdfZiosw4hxCgc1iYg88v1xZRLFf0/UJr/CcqfCzJjSA4ZWg==";
        assert_eq!(decrypt_message(&key(CRYPTER_KEY), ct).unwrap(), "The Line is Open!");
    }

    /// giosg.md §5.7 vector 2 (java-decrypt-app, `"00000"` header, trailing line break).
    #[test]
    fn public_vectors_java() {
        let k = key(JAVA_KEY);
        let cases = [
            ("MDAwMDDQ9Mn5kH7v4BXslkglavGSYr0A2Uq1lMSYtYG/BZ5yVhy7rps46bfNuQS8/56ULEsN7pwW\n", "Kool!"),
            ("MDAwMDB2R/gwHbEykG49FVRulA/vYU0S2MdUqIWNOiMoSCcp71niHF304FYft8Wzkb8++yRCoFqP\n", "Teast message"),
            ("MDAwMDAEWBfxHzpmtGSu2lEKkBOdrvADyzppDy7qCxeyqu9QnsO/xOYfteT+f7WccfuQTnWMA4s3\n", "Language: en"),
        ];
        for (ct, want) in cases {
            assert_eq!(decrypt_message(&k, ct).unwrap(), want);
        }
    }

    /// Line breaks anywhere (MIME every 76, CRLF, none) decode the same.
    #[test]
    fn base64_with_and_without_line_breaks() {
        let k = key(JAVA_KEY);
        let flat = "MDAwMDDQ9Mn5kH7v4BXslkglavGSYr0A2Uq1lMSYtYG/BZ5yVhy7rps46bfNuQS8/56ULEsN7pwW";
        let broken = format!("{}\r\n{}\r\n", &flat[..40], &flat[40..]);
        assert_eq!(decrypt_message(&k, flat).unwrap(), "Kool!");
        assert_eq!(decrypt_message(&k, &broken).unwrap(), "Kool!");
    }

    #[test]
    fn reasons() {
        let k = key(JAVA_KEY);
        let good =
            decode_base64_lenient("MDAwMDDQ9Mn5kH7v4BXslkglavGSYr0A2Uq1lMSYtYG/BZ5yVhy7rps46bfNuQS8/56ULEsN7pwW")
                .unwrap();
        let mut flipped = good.clone();
        flipped[HEADER_LEN + IV_LEN] ^= 1;
        assert_eq!(decrypt_message(&k, &STANDARD.encode(&flipped)).unwrap_err().reason, Reason::HmacMismatch);
        // The other chat's key: the tag cannot match.
        assert_eq!(
            decrypt_message(&key(CRYPTER_KEY), &STANDARD.encode(&good)).unwrap_err().reason,
            Reason::HmacMismatch
        );
        assert_eq!(decrypt_message(&k, "not base64!").unwrap_err().reason, Reason::BadCiphertext);
        assert_eq!(decrypt_message(&k, &STANDARD.encode(&good[..50])).unwrap_err().reason, Reason::BadCiphertext);
        assert_eq!(parse_key_json(b"{}").unwrap_err().reason, Reason::KeyUnwrapFailed);
        let short_aes = JAVA_KEY.replace("Jduu-c9igxKN1-XAy8Ma8NhsJnmj-YQtuSyM_ePSSZg", "AAAA");
        assert_eq!(parse_key_json(short_aes.as_bytes()).unwrap_err().reason, Reason::KeyUnwrapFailed);
    }

    /// A correctly tagged plaintext that is not UTF-8 is `bad_utf8`, not garbage text.
    #[test]
    fn bad_utf8_is_reported() {
        use aws_lc_rs::cipher::PaddedBlockEncryptingKey;
        let (aes, mac) = ([7u8; 32], [9u8; 32]);
        let json = format!(
            r#"{{"hmacKey":{{"hmacKeyString":"{}","size":256}},"aesKeyString":"{}","mode":"CBC","size":256}}"#,
            URL_SAFE_LENIENT.encode(mac),
            URL_SAFE_LENIENT.encode(aes)
        );
        let enc = PaddedBlockEncryptingKey::cbc_pkcs7(UnboundCipherKey::new(&AES_256, &aes).unwrap()).unwrap();
        let mut ct = vec![0xff, 0xfe, 0x80];
        let ctx = enc.encrypt(&mut ct).unwrap();
        let iv: &[u8] = (&ctx).try_into().unwrap();
        let mut body = b"00000".to_vec();
        body.extend_from_slice(iv);
        body.extend_from_slice(&ct);
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &mac), &body);
        body.extend_from_slice(tag.as_ref());
        let err = decrypt_message(&key(&json), &STANDARD.encode(&body)).unwrap_err();
        assert_eq!(err.reason, Reason::BadUtf8);
    }

    /// The RSA step with a freshly generated key: wrap with the public half, unwrap with the
    /// private half; another key refuses it.
    #[test]
    fn rsa_round_trip_with_fresh_key() {
        let private = PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap();
        let public = OaepPublicEncryptingKey::new(private.public_key()).unwrap();
        let mut wrapped = vec![0u8; public.ciphertext_size()];
        let wrapped = public.encrypt(&OAEP_SHA1_MGF1SHA1, JAVA_KEY.as_bytes(), &mut wrapped, None).unwrap();
        let mime: String = STANDARD
            .encode(&*wrapped)
            .as_bytes()
            .chunks(76)
            .map(|l| format!("{}\n", std::str::from_utf8(l).unwrap()))
            .collect();

        let rsa = OaepPrivateDecryptingKey::new(private).unwrap();
        let k = unwrap_chat_key(&rsa, &mime).unwrap();
        assert_eq!(
            decrypt_message(&k, "MDAwMDDQ9Mn5kH7v4BXslkglavGSYr0A2Uq1lMSYtYG/BZ5yVhy7rps46bfNuQS8/56ULEsN7pwW\n")
                .unwrap(),
            "Kool!"
        );

        let other = OaepPrivateDecryptingKey::new(PrivateDecryptingKey::generate(KeySize::Rsa2048).unwrap()).unwrap();
        assert_eq!(unwrap_chat_key(&other, &mime).unwrap_err().reason, Reason::KeyUnwrapFailed);
        assert_eq!(unwrap_chat_key(&rsa, "@@").unwrap_err().reason, Reason::KeyUnwrapFailed);
        assert_eq!(unwrap_chat_key(&rsa, "AAAA").unwrap_err().reason, Reason::KeyUnwrapFailed);
    }
}
