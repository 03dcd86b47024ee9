//! The streaming runtime: source → transforms → sinks over bounded channels, checkpoints as
//! barriers, state persisted only after every sink committed (docs/design.md §2, §5).
//!
//! [`run`] is the whole flow; each step is a module:
//!
//! * [`plan`]: `--window` and `--shard` applied to the pipeline ([`RunOptions`]);
//! * `state` (crate level): the run lock of local state (one run per pipeline and account),
//!   then the last committed checkpoint to resume from;
//! * [`sweep`]: the temporary files of crashed earlier runs, removed under that lock;
//! * [`topology`]: open the source ([`multi_source`] for many accounts), the transforms and the
//!   sinks, propagating stream schemas; wire them with bounded channels;
//! * [`coordinator`]: checkpoint → commit every sink → save state → notify the source, with
//!   [`signals`] and the [`dead_letter`] files;
//! * [`report`]: what the run did and its [`Outcome`].

pub mod coordinator;
pub mod dead_letter;
pub mod multi_source;
pub mod plan;
pub mod progress;
pub mod report;
pub mod signals;
pub mod sweep;
pub mod topology;

use std::time::Instant;

use pipe_plugin_sdk::{Metrics, SourceContext};

pub use plan::{RunOptions, Window};
pub use report::{Outcome, RunError, RunReport};

use crate::config::Pipeline;
use crate::runtime::coordinator::{Control, Coordinator};
use crate::runtime::plan::Plan;
use crate::runtime::progress::Progress;
use crate::state;

/// Runs a pipeline to the end and returns what it did; its [`Outcome`] follows from the report.
/// On error every sink is aborted (temporary files removed) and the state keeps the last
/// committed checkpoint.
///
/// Errors: [`RunError::Config`] when `--window`/`--shard` do not apply or a plugin refuses its
/// config at open (exit 2); [`RunError::Busy`] when another run holds the lock of the state
/// (exit 1); [`RunError::Failed`] for everything else (exit 1).
pub async fn run(p: &Pipeline, opts: &RunOptions, progress: &Progress) -> Result<RunReport, RunError> {
    let started = Instant::now();
    let metrics = progress.metrics.clone();
    let run_id = format!("{}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), &uuid_fragment());

    // Plan: the window renames the pipeline (its own state) and bounds the source; the shard
    // picks the accounts.
    let plan = Plan::new(p, opts)?;
    let p = &*plan.pipeline;

    // Lock: on local state, one run per document (pipeline or account) at a time, held until
    // this function returns; under it, sweep what crashed earlier holders left behind.
    let store = state::StateStore::open(&p.state_dir)?;
    let _lock = match &store {
        state::StateStore::Local(dir) => Some(lock_and_sweep(p, &plan, dir, &run_id)?),
        state::StateStore::Remote(_) => None,
    };

    // State: the last committed checkpoint (per account), unless --full-refresh.
    let (state_session, prior_state) =
        state::Session::open(store, &p.name, p.source.descriptor.name, plan.account_ids(), opts.full_refresh).await?;
    if prior_state.is_some() {
        tracing::info!(pipeline = %p.name, "resuming from the committed state in {}", state_session.describe());
    }
    let report = RunReport { state_before: prior_state.clone(), ..Default::default() };

    // Topology: the source resumes from that state and learns of shutdowns and commits; its
    // streams, as the transforms change them, are what the sinks are opened with.
    let ctx =
        SourceContext { pipeline: p.name.clone(), state: prior_state, limit: opts.limit, metrics: metrics.clone() };
    let mut source = topology::open_source(&plan, ctx)?;
    let control = Control::attach(source.as_mut());
    let (sinks, mut running) = topology::open_stages(source, p, &run_id, &metrics)?.wire();

    // Coordinator: write, commit at checkpoints, save state; on failure abort every sink.
    let mut coordinator = Coordinator::new(p, sinks, state_session, control, report);
    let result = coordinator.drive(&mut running).await;
    running.stop();
    if let Err(e) = result {
        coordinator.abort().await;
        return Err(RunError::Failed(e));
    }
    let mut report = coordinator.finish();
    report.requests = Metrics::get(&metrics.requests);
    report.retries = Metrics::get(&metrics.retries);
    report.throttled_responses = Metrics::get(&metrics.throttled_responses);
    report.conversations = Metrics::get(&metrics.conversations);
    report.concurrency = report::ConcurrencyReport {
        adaptive: Metrics::get(&metrics.concurrency_adaptive) == 1,
        last: Metrics::get(&metrics.concurrency),
        mean: Metrics::get(&metrics.concurrency_mean_milli) as f64 / 1000.0,
        learned_rate: Some(Metrics::get(&metrics.learned_rate_milli)).filter(|r| *r > 0).map(|r| r as f64 / 1000.0),
    };
    report.elapsed = started.elapsed();
    Ok(report)
}

/// Takes the run lock of every state document of the plan in `dir`, then removes the temporary
/// files of the crashed runs that held it before ([`sweep`]).
///
/// Errors: [`RunError::Busy`] naming the live holder; [`RunError::Failed`] when a lock file
/// cannot be used. A sweep that fails is only logged (the files stay hidden and are retried).
fn lock_and_sweep(
    p: &Pipeline,
    plan: &Plan<'_>,
    dir: &std::path::Path,
    run_id: &str,
) -> Result<state::lock::RunLock, RunError> {
    let keys: Vec<String> = match plan.account_ids() {
        None => vec![state::key(&p.name, None)],
        Some(ids) => ids.iter().map(|id| state::key(&p.name, Some(id))).collect(),
    };
    let mut lock = state::lock::RunLock::acquire(dir, &keys, run_id).map_err(|e| match e {
        state::lock::LockError::Held { .. } => RunError::Busy(e.to_string()),
        state::lock::LockError::Io { .. } => RunError::Failed(e.into()),
    })?;
    let dead = lock.leftovers().to_vec();
    if !dead.is_empty() {
        let (removed, error) = sweep::sweep(&dead, &sweep::sink_dirs(p), &std::env::temp_dir());
        tracing::info!(runs = %dead.join(", "), removed, "swept what crashed earlier runs left behind");
        match error {
            None => lock.forget_leftovers(&dead).map_err(RunError::Failed)?,
            Some(e) => tracing::warn!("could not remove everything crashed runs left behind: {e}"),
        }
    }
    Ok(lock)
}

/// Eight hex digits that make a run id unique among runs started in the same second.
fn uuid_fragment() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}
