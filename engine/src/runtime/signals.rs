//! SIGINT (Ctrl-C) and SIGTERM (what a scheduler sends to stop a task). The coordinator waits
//! for them beside its events: a batch run is interrupted (exit 1, nothing after the last
//! checkpoint committed); a service source is asked to stop, flushes, checkpoints and ends
//! normally, and a second signal interrupts it.

/// Resolves on the next SIGINT or SIGTERM. The handlers are installed once, at
/// [`Signals::new`], so a signal that arrives while a commit runs is not lost.
pub struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers (needs a tokio runtime). Where they cannot be installed,
    /// [`Self::recv`] falls back to Ctrl-C only.
    pub fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals { int: signal(SignalKind::interrupt()).ok(), term: signal(SignalKind::terminate()).ok() }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// Waits for the next signal and names it: `SIGINT` or `SIGTERM`.
    pub async fn recv(&mut self) -> &'static str {
        #[cfg(unix)]
        if let (Some(int), Some(term)) = (self.int.as_mut(), self.term.as_mut()) {
            return tokio::select! {
                _ = int.recv() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            };
        }
        let _ = tokio::signal::ctrl_c().await;
        "SIGINT"
    }
}

impl Default for Signals {
    fn default() -> Self {
        Self::new()
    }
}
