//! One source over many accounts (`[[source.accounts]]`): opens the plugin once per account,
//! runs at most `max_concurrent_accounts` of them at a time, and merges their events into one
//! stream for the rest of the pipeline. An account's source is opened only when its turn
//! comes, because sources start fetching as soon as they are open.
//!
//! Checkpoints: each account checkpoints on its own; after any of them the merged source
//! emits a composite checkpoint `{"accounts": {"<id>": <that account's last state>, ...}}`,
//! which the state store splits into one document per account (`state::Session`). Events are
//! forwarded in the order they arrive, so a composite checkpoint covers everything each
//! account emitted before its own last checkpoint.
//!
//! An account that fails (refused credentials, vendor down beyond retries) does not stop the
//! others: its failure becomes a dead letter of kind [`DeadLetterKind::AccountFailed`]
//! (reason `account_failed`), its state stays at its last checkpoint, and the run ends
//! `partial` (exit 3) naming it.

use std::collections::BTreeMap;
use std::sync::Arc;

use pipe_plugin_sdk::reexports::async_trait;
use pipe_plugin_sdk::{
    Checkpoint, CommitCadence, DeadLetter, DeadLetterKind, Event, PluginError, PluginFactory, Result, Source,
    SourceContext, SourceControl, StreamDecl,
};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc};

use crate::config::accounts::Account;

/// What an account's task reports.
enum AccountEvent {
    Event(Event),
    Failed(PluginError),
}

/// The merged source. See the [module docs](self).
pub struct MultiSource {
    streams: Vec<StreamDecl>,
    /// Accounts not started yet: they start at the first `next`, after `attach_control` had
    /// the chance to hand each its own control.
    unstarted: Vec<Pending>,
    permits: Arc<Semaphore>,
    tx: Option<mpsc::Sender<(String, AccountEvent)>>,
    /// Every account's source is a service (webhook listener): a signal asks them all to stop.
    graceful: bool,
    /// The accounts' commit cadence (the first account's; they share one plugin).
    cadence: CommitCadence,
    rx: mpsc::Receiver<(String, AccountEvent)>,
    /// Last checkpointed state per account (from the state store at start, then from the
    /// accounts' checkpoints).
    states: BTreeMap<String, Value>,
    running: usize,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// An account waiting for its turn: how to open its source, and the control it gets.
struct Pending {
    id: String,
    open: pipe_plugin_sdk::plugin::SourceFactory,
    config: Value,
    ctx: SourceContext,
    control: Option<SourceControl>,
}

impl MultiSource {
    /// Prepares every account of `accounts` (each resumes from its entry of `prior`, the
    /// composite state), to run `max_concurrent` at a time from the first `next`. The first
    /// account's source is opened and closed once at once, for the streams and to surface a
    /// refused config before the run starts.
    ///
    /// Errors: the first account's plugin refuses to open (its config key path is the
    /// account's, `source.accounts[0].key`). A later account that refuses to open when its turn
    /// comes fails alone (dead letter `account_failed`).
    pub fn open(
        accounts: &[Account],
        max_concurrent: usize,
        prior: Option<&Value>,
        base_ctx: &SourceContext,
    ) -> std::result::Result<Self, (String, PluginError)> {
        let prior_states =
            prior.and_then(|p| p.get("accounts")).and_then(Value::as_object).cloned().unwrap_or_default();
        let mut pending = Vec::with_capacity(accounts.len());
        for account in accounts {
            let PluginFactory::Source(open) = account.spec.descriptor.factory.clone() else {
                unreachable!("checked at load")
            };
            let ctx = SourceContext { state: prior_states.get(&account.id).cloned(), ..base_ctx.clone() };
            pending.push(Pending {
                id: account.id.clone(),
                open,
                config: account.spec.config.clone(),
                ctx,
                control: None,
            });
        }
        let (streams, graceful, cadence) = match (pending.first(), accounts.first()) {
            (Some(first), Some(account)) => {
                let probe = (first.open)(first.config.clone(), first.ctx.clone())
                    .map_err(|e| (account.spec.path.clone(), e))?;
                (probe.streams(), probe.stops_gracefully(), probe.commit_cadence())
            }
            _ => (Vec::new(), false, CommitCadence::Interval),
        };
        let (tx, rx) = mpsc::channel(4);
        let permits = Arc::new(Semaphore::new(max_concurrent.max(1)));
        let running = pending.len();
        let states = prior_states.into_iter().filter(|(id, _)| accounts.iter().any(|a| &a.id == id)).collect();
        Ok(MultiSource {
            streams,
            unstarted: pending,
            permits,
            tx: Some(tx),
            graceful,
            cadence,
            rx,
            states,
            running,
            tasks: Vec::new(),
        })
    }

    fn composite_checkpoint(&self) -> Event {
        Event::Checkpoint(Checkpoint { state: json!({ "accounts": self.states }) })
    }
}

async fn pump_account(account: Pending, permits: Arc<Semaphore>, tx: mpsc::Sender<(String, AccountEvent)>) {
    let Ok(_permit) = permits.acquire_owned().await else { return };
    let Pending { id, open, config, ctx, control } = account;
    let mut source = match open(config, ctx) {
        Ok(s) => s,
        Err(e) => {
            let _ = tx.send((id, AccountEvent::Failed(e))).await;
            return;
        }
    };
    if let Some(control) = control {
        source.attach_control(control);
    }
    tracing::info!(account = %id, "account started");
    loop {
        let (ev, done) = match source.next().await {
            Ok(Event::End) => (AccountEvent::Event(Event::End), true),
            Ok(ev) => (AccountEvent::Event(ev), false),
            Err(e) => (AccountEvent::Failed(e), true),
        };
        if tx.send((id.clone(), ev)).await.is_err() || done {
            break;
        }
    }
    tracing::info!(account = %id, "account finished");
}

#[async_trait]
impl Source for MultiSource {
    fn streams(&self) -> Vec<StreamDecl> {
        self.streams.clone()
    }

    fn stops_gracefully(&self) -> bool {
        self.graceful
    }

    fn commit_cadence(&self) -> CommitCadence {
        self.cadence
    }

    /// Hands every account the shutdown token, and news of its own part of each committed
    /// composite state.
    fn attach_control(&mut self, control: SourceControl) {
        for account in &mut self.unstarted {
            let (tx, rx) = tokio::sync::watch::channel(None);
            let mut committed = control.committed.clone();
            let id = account.id.clone();
            self.tasks.push(tokio::spawn(async move {
                while committed.changed().await.is_ok() {
                    let state =
                        committed.borrow_and_update().as_ref().and_then(|s| s.get("accounts")?.get(&id).cloned());
                    if state.is_some() && tx.send(state).is_err() {
                        return;
                    }
                }
            }));
            account.control = Some(SourceControl { shutdown: control.shutdown.clone(), committed: rx });
        }
    }

    async fn next(&mut self) -> Result<Event> {
        if let Some(tx) = self.tx.take() {
            for account in self.unstarted.drain(..) {
                self.tasks.push(tokio::spawn(pump_account(account, self.permits.clone(), tx.clone())));
            }
        }
        loop {
            if self.running == 0 {
                return Ok(Event::End);
            }
            let Some((id, ev)) = self.rx.recv().await else {
                return Err(PluginError::other("an account's task stopped without ending (it panicked?)"));
            };
            match ev {
                AccountEvent::Event(Event::Checkpoint(cp)) => {
                    self.states.insert(id, cp.state);
                    return Ok(self.composite_checkpoint());
                }
                AccountEvent::Event(Event::End) => {
                    self.running -= 1;
                }
                AccountEvent::Event(other) => return Ok(other),
                AccountEvent::Failed(e) => {
                    self.running -= 1;
                    tracing::error!(account = %id, "account failed: {e}");
                    return Ok(Event::DeadLetter(DeadLetter {
                        stream: "conversations".into(),
                        key: json!({ "account": id }),
                        stage: String::new(),
                        reason: DeadLetterKind::AccountFailed.into(),
                        message: format!("account `{id}`: {e}"),
                        raw: Value::Null,
                    }));
                }
            }
        }
    }
}

impl Drop for MultiSource {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
