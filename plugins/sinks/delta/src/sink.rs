//! The `delta` sink: buffers each stream's rows between checkpoints and, at every commit, writes
//! them to the stream's table as one Delta transaction (append, or MERGE on the primary key),
//! carrying the checkpoint's `txn` actions ([`crate::ledger`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use deltalake::arrow::compute::{CastOptions, cast_with_options, concat_batches, take_record_batch};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError};
use futures::TryStreamExt;
use pipe_plugin_sdk::reexports::arrow_array::RecordBatch as RecordBatch60;
use pipe_plugin_sdk::reexports::async_trait;
use pipe_plugin_sdk::schema::{CONVERSATIONS, MESSAGES};
use pipe_plugin_sdk::{Checkpoint, PluginError, Result, Sink, SinkContext, SinkStats};
use serde_json::Value;
use url::Url;

use crate::ledger::{self, Ledger, Plan, Txn};
use crate::{DeltaConfig, Mode, bridge, parse_config};

/// The partition key computed from the stream's main timestamp.
pub const DATE_COLUMN: &str = "date";

/// How many commits back the sink reads `commitInfo` at open to find each app id's last state.
const HISTORY_DEPTH: usize = 1000;

/// Opens the sink (the factory): checks every stream against the config; tables are opened or
/// created at the first write or commit.
pub fn open(config: Value, ctx: SinkContext) -> Result<Box<dyn Sink>> {
    let cfg = parse_config(config)?;
    let root = root_url(&cfg.path)?;
    let mut tables = BTreeMap::new();
    for decl in &ctx.streams {
        let schema = bridge::schema_to_59(&decl.schema)
            .map_err(|e| PluginError::other(format!("stream `{}`: {e}", decl.name)))?;
        let url = root
            .join(&format!("{}/", decl.name))
            .map_err(|e| PluginError::Config { path: "path".into(), message: format!("{e}") })?;
        if url.scheme() == "file" {
            let dir = url.to_file_path().map_err(|_| PluginError::other(format!("not a local path: {url}")))?;
            std::fs::create_dir_all(&dir).map_err(|e| PluginError::io(format!("creating {}", dir.display()), e))?;
        }
        tables.insert(decl.name.clone(), StreamTable::new(&decl.name, &schema, &cfg, url)?);
    }
    Ok(Box::new(DeltaSink { cfg, pipeline: ctx.pipeline, run_id: ctx.run_id, tables, rows_committed: 0 }))
}

/// `path` as a directory URL: a URL with a scheme as is, anything else a local directory.
fn root_url(path: &str) -> Result<Url> {
    let cfg_err = |message: String| PluginError::Config { path: "path".into(), message };
    let mut url = match Url::parse(path) {
        Ok(u) if u.scheme().len() > 1 => u,
        _ => {
            let p = std::path::Path::new(path);
            std::fs::create_dir_all(p).map_err(|e| PluginError::io(format!("creating {path}"), e))?;
            let abs = std::fs::canonicalize(p).map_err(|e| PluginError::io(format!("resolving {path}"), e))?;
            Url::from_directory_path(&abs).map_err(|_| cfg_err(format!("{path} is not an absolute directory")))?
        }
    };
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    Ok(url)
}

fn delta_err<'a>(table: &'a str, what: &str) -> impl Fn(DeltaTableError) -> PluginError + 'a {
    let what = what.to_string();
    move |e| PluginError::other(format!("delta table `{table}`: {what}: {e}"))
}

fn arrow_err(table: &str) -> impl Fn(deltalake::arrow::error::ArrowError) -> PluginError + '_ {
    move |e| PluginError::other(format!("delta table `{table}`: {e}"))
}

/// Delta has no unsigned integers: the type a column is stored as (lossless widening).
fn delta_type(t: &DataType) -> DataType {
    match t {
        DataType::UInt8 => DataType::Int16,
        DataType::UInt16 => DataType::Int32,
        DataType::UInt32 | DataType::UInt64 => DataType::Int64,
        other => other.clone(),
    }
}

struct StreamTable {
    name: String,
    url: Url,
    /// The table's Arrow schema (what every buffered batch has); replaced by the table's own
    /// once it is open.
    schema: SchemaRef,
    /// Index (in the incoming batch) of the timestamp the `date` column is computed from, when
    /// the sink adds that column.
    date_from: Option<usize>,
    partition_by: Vec<String>,
    /// Primary key (merge mode).
    key: Vec<String>,
    /// Conversations: the column whose greatest value wins (`updated_at`).
    latest_by: Option<String>,
    storage_options: HashMap<String, String>,
    table: Option<DeltaTable>,
    ledger: Ledger,
    /// App ids checked against the table's `txn` version in this session.
    verified: BTreeSet<String>,
    buffer: Vec<RecordBatch>,
    buffered_rows: u64,
}

impl StreamTable {
    fn new(stream: &str, incoming: &Schema, cfg: &DeltaConfig, url: Url) -> Result<Self> {
        let mut fields: Vec<Field> =
            incoming.fields().iter().map(|f| f.as_ref().clone().with_data_type(delta_type(f.data_type()))).collect();
        let mut date_from = None;
        if cfg.partition_by.iter().any(|p| p == DATE_COLUMN) && incoming.field_with_name(DATE_COLUMN).is_err() {
            let source = match stream {
                MESSAGES => "sent_at",
                CONVERSATIONS => "created_at",
                _ if incoming.field_with_name("sent_at").is_ok() => "sent_at",
                _ => "created_at",
            };
            let idx = incoming.index_of(source).map_err(|_| PluginError::Config {
                path: "partition_by".into(),
                message: format!(
                    "stream `{stream}` has neither a `date` column nor `sent_at`/`created_at` to derive it from"
                ),
            })?;
            if !matches!(incoming.field(idx).data_type(), DataType::Timestamp(_, _)) {
                return Err(PluginError::Config {
                    path: "partition_by".into(),
                    message: format!("`{stream}.{source}` is not a timestamp"),
                });
            }
            date_from = Some(idx);
            fields.push(Field::new(DATE_COLUMN, DataType::Date32, true));
        }
        let schema = Arc::new(Schema::new(fields));
        for (i, p) in cfg.partition_by.iter().enumerate() {
            let f = schema.field_with_name(p).map_err(|_| PluginError::Config {
                path: format!("partition_by[{i}]"),
                message: format!("stream `{stream}` has no column `{p}`"),
            })?;
            let ok = matches!(
                f.data_type(),
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Boolean
                    | DataType::Date32
                    | DataType::Int8
                    | DataType::Int16
                    | DataType::Int32
                    | DataType::Int64
            );
            if !ok {
                return Err(PluginError::Config {
                    path: format!("partition_by[{i}]"),
                    message: format!("`{stream}.{p}` ({}) cannot be a Delta partition column", f.data_type()),
                });
            }
        }
        let key: Vec<String> = match cfg.primary_keys.get(stream) {
            Some(k) => k.clone(),
            None => pipe_plugin_sdk::schema::primary_key(stream).iter().map(|s| s.to_string()).collect(),
        };
        if cfg.mode == Mode::Merge {
            if key.is_empty() {
                return Err(PluginError::Config {
                    path: "primary_keys".into(),
                    message: format!(
                        "merge mode needs the primary key of stream `{stream}`: primary_keys.{stream} = [\"col\", ...]"
                    ),
                });
            }
            for k in &key {
                if schema.field_with_name(k).is_err() {
                    return Err(PluginError::Config {
                        path: format!("primary_keys.{stream}"),
                        message: format!("stream `{stream}` has no column `{k}`"),
                    });
                }
            }
        }
        let latest_by =
            (stream == CONVERSATIONS && schema.field_with_name("updated_at").is_ok()).then(|| "updated_at".to_string());
        Ok(StreamTable {
            name: stream.to_string(),
            url,
            schema,
            date_from,
            partition_by: cfg.partition_by.clone(),
            key,
            latest_by,
            storage_options: cfg.storage_options.clone().into_iter().collect(),
            table: None,
            ledger: Ledger::default(),
            verified: BTreeSet::new(),
            buffer: Vec::new(),
            buffered_rows: 0,
        })
    }

    /// Opens the table (creating it if missing) and reads its ledger.
    async fn ensure_open(&mut self) -> Result<&mut DeltaTable> {
        if self.table.is_none() {
            let name = self.name.clone();
            let mut table = DeltaTableBuilder::from_url(self.url.clone())
                .map_err(delta_err(&name, "opening"))?
                .with_storage_options(self.storage_options.clone())
                .build()
                .map_err(delta_err(&name, "opening"))?;
            match table.load().await {
                Ok(()) => {}
                Err(DeltaTableError::NotATable(_)) => {
                    use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
                    let kernel: deltalake::kernel::StructType = self
                        .schema
                        .as_ref()
                        .try_into_kernel()
                        .map_err(|e| PluginError::other(format!("delta table `{name}`: schema: {e}")))?;
                    let created = table
                        .create()
                        .with_table_name(&name)
                        .with_columns(kernel.fields().cloned())
                        .with_partition_columns(self.partition_by.clone())
                        .with_save_mode(deltalake::protocol::SaveMode::Ignore)
                        .await;
                    table = match created {
                        Ok(t) => t,
                        // Another writer (a shard) may have created it first: then it loads.
                        Err(create_err) => {
                            let mut t = DeltaTableBuilder::from_url(self.url.clone())
                                .map_err(delta_err(&name, "opening"))?
                                .with_storage_options(self.storage_options.clone())
                                .build()
                                .map_err(delta_err(&name, "opening"))?;
                            if t.load().await.is_err() {
                                return Err(delta_err(&name, "creating")(create_err));
                            }
                            t
                        }
                    };
                    tracing::info!(table = %self.url, "created delta table `{name}`");
                }
                Err(e) => return Err(delta_err(&name, "opening")(e)),
            }
            // The table's own schema is the authority (column order, nested field names).
            let table_schema =
                table.snapshot().map_err(delta_err(&name, "reading the schema"))?.snapshot().arrow_schema();
            for f in self.schema.fields() {
                if table_schema.field_with_name(f.name()).is_err() {
                    return Err(PluginError::other(format!(
                        "delta table `{name}` at {} has no column `{}`: it was created for another schema",
                        self.url,
                        f.name()
                    )));
                }
            }
            let infos: Vec<deltalake::kernel::CommitInfo> = table
                .history(Some(HISTORY_DEPTH))
                .try_collect()
                .await
                .map_err(delta_err(&name, "reading the history"))?;
            let maps: Vec<serde_json::Map<String, Value>> =
                infos.into_iter().map(|i| i.info.into_iter().collect()).collect();
            self.ledger = Ledger::from_history(maps.iter());
            self.schema = table_schema;
            self.table = Some(table);
        }
        Ok(self.table.as_mut().expect("opened"))
    }

    /// An incoming (arrow 59) batch in the table's schema: columns by name, cast where Delta's
    /// types differ, plus `date`.
    fn conform(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let opts = CastOptions { safe: false, ..Default::default() };
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for f in self.schema.fields() {
            let col = match (f.name().as_str(), self.date_from) {
                (DATE_COLUMN, Some(idx)) if batch.schema().field_with_name(DATE_COLUMN).is_err() => {
                    let ts = batch.column(idx);
                    let utc = cast_with_options(ts, &DataType::Timestamp(TimeUnit::Microsecond, None), &opts)
                        .map_err(arrow_err(&self.name))?;
                    cast_with_options(&utc, &DataType::Date32, &opts).map_err(arrow_err(&self.name))?
                }
                (name, _) => batch.column_by_name(name).cloned().ok_or_else(|| {
                    PluginError::other(format!("delta table `{}`: batch has no column `{name}`", self.name))
                })?,
            };
            let col = if col.data_type() == f.data_type() {
                col
            } else {
                cast_with_options(&col, f.data_type(), &opts).map_err(arrow_err(&self.name))?
            };
            columns.push(col);
        }
        RecordBatch::try_new(self.schema.clone(), columns).map_err(arrow_err(&self.name))
    }

    /// One row per key: the last one written, or for conversations the one with the greatest
    /// `updated_at` (a null `updated_at` loses; ties go to the later row).
    fn dedup(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let opts = CastOptions { safe: false, ..Default::default() };
        let keys: Vec<ArrayRef> = self
            .key
            .iter()
            .map(|k| cast_with_options(batch.column_by_name(k).expect("checked at open"), &DataType::Utf8, &opts))
            .collect::<std::result::Result<_, _>>()
            .map_err(arrow_err(&self.name))?;
        let keys: Vec<&deltalake::arrow::array::StringArray> =
            keys.iter().map(|a| a.as_any().downcast_ref().expect("cast to utf8")).collect();
        let order = match &self.latest_by {
            Some(c) => Some(
                cast_with_options(batch.column_by_name(c).expect("checked at open"), &DataType::Int64, &opts)
                    .map_err(arrow_err(&self.name))?,
            ),
            None => None,
        };
        let order =
            order.as_ref().map(|a| a.as_any().downcast_ref::<deltalake::arrow::array::Int64Array>().expect("int64"));
        let mut best: HashMap<Vec<Option<&str>>, usize> = HashMap::with_capacity(batch.num_rows());
        for row in 0..batch.num_rows() {
            let k: Vec<Option<&str>> = keys.iter().map(|a| (!a.is_null(row)).then(|| a.value(row))).collect();
            match best.entry(k) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(row);
                }
                std::collections::hash_map::Entry::Occupied(mut e) => {
                    let newer = match order {
                        None => true,
                        Some(o) => {
                            let v = |i: usize| (!o.is_null(i)).then(|| o.value(i));
                            v(row) >= v(*e.get())
                        }
                    };
                    if newer {
                        *e.get_mut() = row;
                    }
                }
            }
        }
        if best.len() == batch.num_rows() {
            return Ok(batch.clone());
        }
        let mut idx: Vec<u32> = best.into_values().map(|i| i as u32).collect();
        idx.sort_unstable();
        take_record_batch(batch, &UInt32Array::from(idx)).map_err(arrow_err(&self.name))
    }

    /// Writes the buffer as one Delta commit with `txns`; returns the rows written.
    async fn write_commit(&mut self, mode: Mode, txns: &[Txn], run_id: &str) -> Result<u64> {
        let name = self.name.clone();
        let props = CommitProperties::default()
            .with_application_transactions(txns.iter().map(|t| Transaction::new(&t.app_id, t.version)).collect())
            .with_metadata([(ledger::COMMIT_INFO_KEY.to_string(), ledger::commit_metadata(txns, run_id))]);
        let batches = std::mem::take(&mut self.buffer);
        self.buffered_rows = 0;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        match mode {
            Mode::Append => {
                let table = self.table.as_mut().expect("opened");
                let mut writer = RecordBatchWriter::for_table(table)
                    .map_err(delta_err(&name, "writing"))?
                    .with_commit_properties(props);
                for b in batches {
                    writer.write(b).await.map_err(delta_err(&name, "writing"))?;
                }
                writer.flush_and_commit(table).await.map_err(delta_err(&name, "committing"))?;
                Ok(rows)
            }
            Mode::Merge => {
                let all = concat_batches(&self.schema, &batches).map_err(arrow_err(&name))?;
                let unique = self.dedup(&all)?;
                self.merge(unique, props).await
            }
        }
    }

    #[cfg(feature = "merge")]
    async fn merge(&mut self, source: RecordBatch, props: CommitProperties) -> Result<u64> {
        use deltalake::datafusion::common::Column;
        use deltalake::datafusion::prelude::{Expr, SessionContext};
        let name = self.name.clone();
        let q = |rel: &str, c: &str| Expr::Column(Column::new(Some(rel), c));
        let rows = source.num_rows() as u64;
        let df = SessionContext::new()
            .read_batch(source)
            .map_err(|e| PluginError::other(format!("delta table `{name}`: {e}")))?;
        let on = self.key.iter().map(|k| q("target", k).eq(q("source", k))).reduce(Expr::and).expect("a key");
        let columns: Vec<String> = self.schema.fields().iter().map(|f| f.name().clone()).collect();
        let newer = self.latest_by.as_ref().map(|c| q("target", c).is_null().or(q("source", c).gt_eq(q("target", c))));
        let key = self.key.clone();
        let table = self.table.take().expect("opened");
        let result = table
            .merge(df, on)
            .with_source_alias("source")
            .with_target_alias("target")
            .with_commit_properties(props)
            .when_matched_update(|mut u| {
                if let Some(p) = newer {
                    u = u.predicate(p);
                }
                for c in columns.iter().filter(|c| !key.contains(c)) {
                    u = u.update(c.as_str(), q("source", c));
                }
                u
            })
            .and_then(|m| {
                m.when_not_matched_insert(|mut i| {
                    for c in &columns {
                        i = i.set(c.as_str(), q("source", c));
                    }
                    i
                })
            })
            .map_err(delta_err(&name, "planning the merge"))?
            .await;
        match result {
            Ok((table, metrics)) => {
                tracing::debug!(table = %name, inserted = metrics.num_target_rows_inserted, updated = metrics.num_target_rows_updated, "merged");
                self.table = Some(table);
                Ok(rows)
            }
            Err(e) => Err(delta_err(&name, "merging")(e)), // reopened (and re-read) on the next use
        }
    }

    #[cfg(not(feature = "merge"))]
    async fn merge(&mut self, _source: RecordBatch, _props: CommitProperties) -> Result<u64> {
        unreachable!("mode = \"merge\" is refused at config time without the `merge` feature")
    }
}

struct DeltaSink {
    cfg: DeltaConfig,
    pipeline: String,
    run_id: String,
    tables: BTreeMap<String, StreamTable>,
    rows_committed: u64,
}

#[async_trait]
impl Sink for DeltaSink {
    async fn write(&mut self, stream: &str, batch: &RecordBatch60) -> Result<()> {
        let max = self.cfg.max_buffered_rows;
        let t = self
            .tables
            .get_mut(stream)
            .ok_or_else(|| PluginError::other(format!("delta: unknown stream `{stream}`")))?;
        t.ensure_open().await?;
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let b59 = bridge::batch_to_59(batch).map_err(|e| PluginError::other(format!("delta table `{stream}`: {e}")))?;
        let conformed = t.conform(&b59)?;
        t.buffered_rows += conformed.num_rows() as u64;
        if t.buffered_rows > max {
            return Err(PluginError::other(format!(
                "delta table `{stream}`: more than max_buffered_rows = {max} rows since the last commit; \
                 commit more often (the pipeline's commit_interval) or raise max_buffered_rows"
            )));
        }
        t.buffer.push(conformed);
        Ok(())
    }

    async fn commit(&mut self, checkpoint: &Checkpoint) -> Result<()> {
        let apps = ledger::checkpoint_apps(&self.pipeline, &checkpoint.state);
        for t in self.tables.values_mut() {
            t.ensure_open().await?;
            if t.buffered_rows == 0 {
                t.buffer.clear();
                continue;
            }
            // The table's `txn` version is the authority over what the history said.
            for app in apps.keys() {
                if t.verified.contains(app) {
                    continue;
                }
                let table = t.table.as_ref().expect("opened");
                let v = table
                    .snapshot()
                    .map_err(delta_err(&t.name, "reading"))?
                    .transaction_version(table.log_store().as_ref(), app)
                    .await
                    .map_err(delta_err(&t.name, "reading its transactions"))?;
                t.ledger.reconcile(app, v);
                t.verified.insert(app.clone());
            }
            match t.ledger.plan(&apps) {
                Plan::Replay(found) => {
                    tracing::info!(
                        table = %t.name,
                        rows = t.buffered_rows,
                        "checkpoint already committed to this table ({found:?}): a replay, skipped"
                    );
                    t.buffer.clear();
                    t.buffered_rows = 0;
                }
                Plan::Write(txns) => {
                    let rows = t.write_commit(self.cfg.mode, &txns, &self.run_id).await;
                    if rows.is_err() {
                        // Unknown outcome: re-read the table (and its transactions) before the next commit.
                        t.table = None;
                        t.verified.clear();
                    }
                    self.rows_committed += rows?;
                    t.ledger.record(&txns);
                }
            }
        }
        Ok(())
    }

    async fn abort(&mut self) -> Result<()> {
        for t in self.tables.values_mut() {
            t.buffer.clear();
            t.buffered_rows = 0;
        }
        Ok(())
    }

    fn stats(&self) -> SinkStats {
        SinkStats { files: 0, bytes: 0, rows: self.rows_committed }
    }
}
