//! Fault modes of the dataset for the `decrypt` failure paths: the server serves whatever the
//! dataset holds, so a test damages the dataset before starting the simulator.
//!
//! * Wrong key: give the pipeline [`super::crypto::unrelated_private_key_pem`] instead of
//!   [`Dataset::private_key_pkcs8_pem`]; the data stays as it is.
//! * Corrupted message: [`Dataset::corrupt_one_encrypted_message`].

use serde_json::Value;

use super::crypto::corrupt_ciphertext;
use super::{ChatTruth, Dataset, MessageTruth};

impl Dataset {
    /// Every message served with an `encrypted_message`, with its chat, in chat and message
    /// order. Their `plaintext` is what decryption must give back.
    pub fn encrypted_messages(&self) -> impl Iterator<Item = (&ChatTruth, &MessageTruth)> {
        self.chats
            .iter()
            .flat_map(|c| c.messages.iter().map(move |m| (c, m)))
            .filter(|(_, m)| m.json.get("encrypted_message").and_then(Value::as_str).is_some())
    }

    /// Damages exactly one encrypted message so its HMAC no longer matches: the first one of
    /// type `msg` in the first encrypted chat that has one (any encrypted message if none is a
    /// `msg`). Returns (chat id, message id) of the damaged message, or `None` when the
    /// dataset has no encrypted message. `plaintext` keeps the original text.
    pub fn corrupt_one_encrypted_message(&mut self) -> Option<(String, String)> {
        let is_msg = |m: &MessageTruth| m.json["type"] == "msg";
        let pick = self
            .encrypted_messages()
            .find(|(_, m)| is_msg(m))
            .or_else(|| self.encrypted_messages().next())
            .map(|(c, m)| (c.id().to_owned(), m.json["id"].as_str().unwrap_or_default().to_owned()))?;
        let chat = self.chats.iter_mut().find(|c| c.id() == pick.0)?;
        let message = chat.messages.iter_mut().find(|m| m.json["id"] == pick.1.as_str())?;
        let damaged = corrupt_ciphertext(message.json["encrypted_message"].as_str()?)?;
        message.json["encrypted_message"] = Value::String(damaged);
        Some(pick)
    }
}
