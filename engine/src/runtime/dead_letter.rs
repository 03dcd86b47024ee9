//! Dead-letter output (docs/design.md §6): `<dir>/<stream>.jsonl`, one JSON object per line with
//! `stream`, `stage`, `reason`, `message`, `key`, `raw`, `at`. Files are opened lazily (no
//! dead letters, no files) and appended to, so earlier runs' records are kept.
//!
//! Several processes may append to one file at once (shards of a pipeline whose dead-letter
//! directory is on a shared volume): every file is opened with `O_APPEND` and each line,
//! newline included, goes out in exactly one `write(2)`, so lines never interleave or tear.
//! Nothing is buffered in this process between two [`DeadLetterWriter::write`]s; durability
//! comes from [`DeadLetterWriter::sync`] (at every commit and at the end of the run) and from
//! fsyncing the directory when a file is created.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use pipe_plugin_sdk::DeadLetter;
use serde_json::json;

/// Appends dead letters per stream.
pub struct DeadLetterWriter {
    dir: PathBuf,
    files: HashMap<String, File>,
    /// Dead letters written in this run.
    pub count: u64,
}

impl DeadLetterWriter {
    /// A writer into `dir` (created with the first dead letter).
    pub fn new(dir: PathBuf) -> Self {
        DeadLetterWriter { dir, files: HashMap::new(), count: 0 }
    }

    /// Appends one record as one line, in one `write(2)`.
    ///
    /// Errors: the directory or file cannot be created or written, or the system wrote only
    /// part of the line (a full disk).
    pub fn write(&mut self, dl: &DeadLetter) -> anyhow::Result<()> {
        let stream = if dl.stream.is_empty() { "_unknown" } else { dl.stream.as_str() };
        if !self.files.contains_key(stream) {
            let f = open_append(&self.dir, &self.dir.join(format!("{stream}.jsonl")))?;
            self.files.insert(stream.to_string(), f);
        }
        let mut line = json!({
            "stream": dl.stream,
            "stage": dl.stage,
            "reason": dl.reason,
            "message": dl.message,
            "key": dl.key,
            "raw": dl.raw,
            "at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        })
        .to_string();
        line.push('\n');
        let f = self.files.get_mut(stream).expect("opened above");
        // One write, never a retried remainder: a second write could land after another
        // process's line and tear this one.
        let written = f.write(line.as_bytes()).map_err(|e| anyhow::anyhow!("cannot write dead letter: {e}"))?;
        if written != line.len() {
            anyhow::bail!("cannot write dead letter: only {written} of {} bytes were written", line.len());
        }
        self.count += 1;
        Ok(())
    }

    /// Makes every dead letter so far durable (called before a checkpoint is persisted and at
    /// the end of the run).
    ///
    /// Errors: an fsync failed.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        for (stream, f) in &self.files {
            f.sync_data().map_err(|e| anyhow::anyhow!("cannot sync the dead letters of `{stream}`: {e}"))?;
        }
        Ok(())
    }
}

/// Opens `path` for appending, creating `dir` and the file as needed; a new file's directory
/// entry is fsynced so the file survives a crash.
fn open_append(dir: &Path, path: &Path) -> anyhow::Result<File> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create dead-letter directory {}: {e}", dir.display()))?;
    let opened = |create_new: bool| {
        let mut o = File::options();
        o.append(true);
        if create_new {
            o.create_new(true)
        } else {
            o.create(true)
        };
        o.open(path)
    };
    let cannot = |e: std::io::Error| anyhow::anyhow!("cannot open dead-letter file {}: {e}", path.display());
    match opened(true) {
        Ok(f) => {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| anyhow::anyhow!("cannot sync dead-letter directory {}: {e}", dir.display()))?;
            Ok(f)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => opened(false).map_err(cannot),
        Err(e) => Err(cannot(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_letter(i: usize, writer: usize) -> DeadLetter {
        DeadLetter {
            stream: "messages".into(),
            stage: "test".into(),
            reason: "bad_row".into(),
            // Long enough that a torn or interleaved line would show.
            message: format!("writer {writer} record {i} {}", "x".repeat(3000)),
            key: json!({ "i": i, "writer": writer }),
            raw: json!({ "payload": "y".repeat(1000) }),
        }
    }

    #[test]
    fn concurrent_writers_on_one_file_never_tear_a_line() {
        let dir = tempfile::tempdir().unwrap();
        const WRITERS: usize = 6;
        const EACH: usize = 400;
        std::thread::scope(|s| {
            for w in 0..WRITERS {
                let d = dir.path().to_path_buf();
                // One writer each, as separate processes have: their own open file description.
                s.spawn(move || {
                    let mut writer = DeadLetterWriter::new(d);
                    for i in 0..EACH {
                        writer.write(&dead_letter(i, w)).unwrap();
                    }
                    writer.sync().unwrap();
                });
            }
        });
        let text = std::fs::read_to_string(dir.path().join("messages.jsonl")).unwrap();
        let mut seen = std::collections::BTreeSet::new();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("every line parses");
            seen.insert((v["key"]["writer"].as_u64().unwrap(), v["key"]["i"].as_u64().unwrap()));
        }
        assert_eq!(text.lines().count(), WRITERS * EACH);
        assert_eq!(seen.len(), WRITERS * EACH, "every record once");
    }

    #[test]
    fn appends_to_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("messages.jsonl"), "{\"old\":1}\n").unwrap();
        let mut w = DeadLetterWriter::new(dir.path().to_path_buf());
        w.write(&dead_letter(0, 0)).unwrap();
        w.sync().unwrap();
        let text = std::fs::read_to_string(dir.path().join("messages.jsonl")).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with("{\"old\":1}\n"));
    }
}
