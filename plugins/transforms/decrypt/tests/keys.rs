//! Private key formats and their errors, and the full RSA + AES path on giosg's own fixture.

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use pipe_plugin_decrypt::private_key::{load, parse};
use pipe_plugin_decrypt::scheme::{decrypt_message, unwrap_chat_key};
use pipe_plugin_sdk::PluginError;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn public_der(file: &str, passphrase: Option<&str>) -> Vec<u8> {
    let key = parse(&std::fs::read(fixture(file)).unwrap(), passphrase).unwrap();
    let der: PublicKeyX509Der<'static> = key.public_key().as_der().unwrap();
    der.as_ref().to_vec()
}

fn config_error(r: Result<impl Sized, PluginError>) -> (String, String) {
    match r.err().expect("an error") {
        PluginError::Config { path, message } => (path, message),
        other => panic!("not a config error: {other}"),
    }
}

#[test]
fn pkcs8_pkcs1_and_encrypted_pkcs8_are_the_same_key() {
    let want = public_der("test_key_pkcs8.pem", None);
    assert_eq!(public_der("test_key_pkcs1.pem", None), want);
    assert_eq!(public_der("test_key_pkcs8_encrypted.pem", Some("correct-horse")), want);
}

#[test]
fn der_files_are_accepted() {
    let pem = std::fs::read_to_string(fixture("test_key_pkcs8.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
    parse(&der, None).unwrap();
}

#[test]
fn text_around_the_pem_block_is_ignored() {
    let pem = std::fs::read_to_string(fixture("test_key_pkcs1.pem")).unwrap();
    let noisy = format!("Bag Attributes\n    localKeyID: 01\n{}\n", pem.replace('\n', "\r\n"));
    parse(noisy.as_bytes(), None).unwrap();
}

#[test]
fn legacy_encrypted_pem_says_how_to_convert() {
    let (path, message) = config_error(load(&fixture("test_key_legacy_encrypted.pem"), Some("correct-horse")));
    assert_eq!(path, "private_key_file");
    assert!(message.contains("Proc-Type") && message.contains("openssl pkcs8 -topk8"), "{message}");
}

#[test]
fn encrypted_pkcs8_needs_the_right_passphrase() {
    let file = fixture("test_key_pkcs8_encrypted.pem");
    let (path, message) = config_error(load(&file, None));
    assert_eq!(path, "passphrase");
    assert!(message.contains("set passphrase"), "{message}");
    let (path, message) = config_error(load(&file, Some("wrong")));
    assert_eq!(path, "passphrase");
    assert!(message.contains("wrong passphrase"), "{message}");
    assert!(!message.contains("wrong\""), "the passphrase is not echoed");
}

#[test]
fn missing_file_and_non_keys_are_config_errors_at_private_key_file() {
    let (path, message) = config_error(load("/nonexistent/key.pem", None));
    assert_eq!(path, "private_key_file");
    assert!(message.contains("/nonexistent/key.pem"), "{message}");

    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("garbage.pem", "hello world\n".to_string(), "not a PEM"),
        ("public.pem", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(), "no private key"),
        ("truncated.pem", "-----BEGIN PRIVATE KEY-----\nMIIE\n".into(), "no `-----END PRIVATE KEY-----`"),
        ("bad.pem", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(), "PKCS#8"),
        ("ec.pem", "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n".into(), "EC PRIVATE KEY"),
    ];
    for (name, text, want) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let (path, message) = config_error(load(p.to_str().unwrap(), None));
        assert_eq!(path, "private_key_file", "{name}");
        assert!(message.contains(want), "{name}: {message}");
    }
}

/// The whole §5.3 + §5.4 path on giosg's own public fixture: their PKCS#1 test key unwraps
/// their chat's `encrypted_symmetric_key` to the key of §5.7 vector 1, which decrypts the
/// vector's message.
#[test]
fn giosg_crypter_fixture_decrypts_end_to_end() {
    let rsa = load(&fixture("giosg_crypter_private.pem"), None).unwrap();
    let wrapped = "MyBY7CGGixwKYM88/CBvGT2cN7v3yzldk+YkYjwB92Nyk41cQyFf0eGFZ9DmVXQ0NbACan4v71+zulothiDQVQ8I94xTgJmRK16Vu0FhFYfW15grYmVMnnPG9pp0PUFIMd3VWZHKMkkBVmX9l02IrzneMunalUjKQTCO5HZaJTDIbAIsRiFKAw0bQZyvv5X5WDY1s888WRYXQikJRwqjKYxKqncd6F9dy+6a0pzNe+ZUNOKST6dc4phWCoxxGXgWcZNG1eTagzM9WScLvJPwkYawQi385oENPzjLU3P477pVjFDmHd3KZvEHjJ6IFUgm6FNxee6XsxiYXITSPVxJ0g==";
    let key = unwrap_chat_key(&rsa, wrapped).unwrap();
    let ct = "AJxNkp3ZS9McVTYPDyckR7ub7ri5oIObzl0a45t13owvG8ouGfAdfZiosw4hxCgc1iYg88v1xZRLFf0/UJr/CcqfCzJjSA4ZWg==";
    assert_eq!(decrypt_message(&key, ct).unwrap(), "The Line is Open!");
    // The same key file cannot unwrap a key wrapped for our test key.
    let other = load(&fixture("test_key_pkcs8.pem"), None).unwrap();
    assert_eq!(unwrap_chat_key(&other, wrapped).unwrap_err().reason.code(), "key_unwrap_failed");
}
