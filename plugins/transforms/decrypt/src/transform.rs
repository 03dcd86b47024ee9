//! The `decrypt` [`Transform`]: touches `messages` (encrypted messages) and `conversations`
//! (encrypted visitor variables), keeping their schemas.

use arrow_array::RecordBatch;
use pipe_plugin_sdk::schema::{CONVERSATIONS, MESSAGES};
use pipe_plugin_sdk::{PluginError, Result, StreamDecl, Transform, TransformOutput};

use crate::batch::{Decryptor, check_schema};
use crate::cache::DEFAULT_CAPACITY;
use crate::config::DecryptConfig;
use crate::variables::check_conversations_schema;
use crate::{parallel, private_key};

/// Decrypts giosg-encrypted `messages` rows; see the [crate docs](crate).
pub struct DecryptTransform {
    /// `None` only while a batch is being decrypted on a blocking thread (it owns the
    /// decryptor meanwhile), or after that thread panicked.
    decryptor: Option<Decryptor>,
}

impl DecryptTransform {
    /// Loads the private key and builds the transform.
    ///
    /// Errors: [`PluginError::Config`] at `private_key_file`, `passphrase` or `threads`.
    pub fn open(cfg: DecryptConfig) -> Result<Self> {
        if cfg.threads == Some(0) {
            return Err(PluginError::Config { path: "threads".into(), message: "must be at least 1".into() });
        }
        let rsa = private_key::load(&cfg.private_key_file, cfg.passphrase.as_ref().map(|p| p.expose()))?;
        let threads = cfg.threads.unwrap_or_else(parallel::default_threads);
        tracing::debug!(bits = rsa.key_size_bits(), threads, "decrypt: private key loaded");
        Ok(DecryptTransform { decryptor: Some(Decryptor::new(rsa, DEFAULT_CAPACITY, threads)) })
    }
}

#[async_trait::async_trait]
impl Transform for DecryptTransform {
    fn output_stream(&self, input: &StreamDecl) -> Option<StreamDecl> {
        let checked = match input.name.as_str() {
            MESSAGES => check_schema(&input.schema),
            CONVERSATIONS => check_conversations_schema(&input.schema),
            _ => return None,
        };
        match checked {
            Ok(()) => Some(input.clone()),
            Err(e) => {
                // Not the canonical schema: nothing we could decrypt safely.
                tracing::warn!("decrypt: leaving stream `{}` alone: {e}", input.name);
                None
            }
        }
    }

    async fn transform(&mut self, stream: &str, batch: RecordBatch) -> Result<Vec<TransformOutput>> {
        let mut decryptor =
            self.decryptor.take().ok_or_else(|| PluginError::other("decrypt: a previous batch failed"))?;
        let variables = stream == CONVERSATIONS;
        // RSA takes milliseconds per chat: keep it off the async worker threads.
        let (decryptor, out) = tokio::task::spawn_blocking(move || {
            let out = if variables { decryptor.decrypt_variables(&batch) } else { decryptor.decrypt_batch(&batch) };
            (decryptor, out)
        })
        .await
        .map_err(|e| PluginError::other(format!("decrypt: worker thread failed: {e}")))?;
        self.decryptor = Some(decryptor);
        out
    }
}

impl Drop for DecryptTransform {
    fn drop(&mut self) {
        if let Some(d) = &self.decryptor {
            let s = d.stats;
            if s.encrypted > 0 {
                tracing::info!(
                    "decrypt: {} of {} encrypted messages decrypted, {} dead-lettered; {} RSA unwraps",
                    s.decrypted,
                    s.encrypted,
                    s.failed,
                    s.unwraps
                );
            }
        }
    }
}
