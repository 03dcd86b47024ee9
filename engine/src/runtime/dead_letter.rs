//! Dead-letter output (docs/design.md §6): `<dir>/<stream>.jsonl`, one JSON object per line with
//! `stream`, `stage`, `reason`, `message`, `key`, `raw`, `at`. Files are opened lazily (no
//! dead letters, no files) and appended to, so earlier runs' records are kept.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use pipe_plugin_sdk::DeadLetter;
use serde_json::json;

/// Appends dead letters per stream.
pub struct DeadLetterWriter {
    dir: PathBuf,
    files: HashMap<String, BufWriter<File>>,
    /// Dead letters written in this run.
    pub count: u64,
}

impl DeadLetterWriter {
    pub fn new(dir: PathBuf) -> Self {
        DeadLetterWriter { dir, files: HashMap::new(), count: 0 }
    }

    /// Appends one record. Errors: the directory or file cannot be created or written.
    pub fn write(&mut self, dl: &DeadLetter) -> anyhow::Result<()> {
        let stream = if dl.stream.is_empty() { "_unknown" } else { dl.stream.as_str() };
        if !self.files.contains_key(stream) {
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| anyhow::anyhow!("cannot create dead-letter directory {}: {e}", self.dir.display()))?;
            let path = self.dir.join(format!("{stream}.jsonl"));
            let f = File::options()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| anyhow::anyhow!("cannot open dead-letter file {}: {e}", path.display()))?;
            self.files.insert(stream.to_string(), BufWriter::new(f));
        }
        let line = json!({
            "stream": dl.stream,
            "stage": dl.stage,
            "reason": dl.reason,
            "message": dl.message,
            "key": dl.key,
            "raw": dl.raw,
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        });
        let f = self.files.get_mut(stream).expect("opened above");
        writeln!(f, "{line}").map_err(|e| anyhow::anyhow!("cannot write dead letter: {e}"))?;
        self.count += 1;
        Ok(())
    }

    /// Makes every dead letter so far durable (called before a checkpoint is persisted).
    pub fn sync(&mut self) -> anyhow::Result<()> {
        for f in self.files.values_mut() {
            f.flush()?;
            f.get_ref().sync_data()?;
        }
        Ok(())
    }
}
