//! The HTTP server task every simulator runs: bound to a loopback port, stopped gracefully when
//! its owner is dropped or shut down.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An axum app served from a task on the current tokio runtime.
///
/// Dropping it stops the server (gracefully, in the background: dropping the stop sender
/// resolves the shutdown signal); [`LoopbackServer::shutdown`] also waits until it has stopped.
pub(crate) struct LoopbackServer {
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

impl LoopbackServer {
    /// Binds `127.0.0.1:0`: the listener to hand to [`LoopbackServer::serve`] (its address is
    /// known before the app is built, for simulators that put it in absolute URLs).
    pub(crate) async fn bind() -> std::io::Result<TcpListener> {
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await
    }

    /// Serves `app` on `listener` until stopped.
    pub(crate) fn serve(listener: TcpListener, app: axum::Router) -> std::io::Result<LoopbackServer> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let signal = async {
                let _ = stopped.await;
            };
            axum::serve(listener, app).with_graceful_shutdown(signal).await
        });
        Ok(LoopbackServer { addr, stop, task })
    }

    /// `http://127.0.0.1:PORT`, a pipeline's `base_url`.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, lets in-flight ones finish (at most 5 s) and waits for the
    /// server task to end.
    pub(crate) async fn shutdown(self) {
        let _ = self.stop.send(());
        let mut task = self.task;
        if tokio::time::timeout(Duration::from_secs(5), &mut task).await.is_err() {
            task.abort();
        }
    }
}
