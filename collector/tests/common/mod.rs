//! Helpers shared by the collector's integration tests.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use fleetwatch_collector::CollectorError;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server on 127.0.0.1 that stops when told.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl Server {
    /// Serves `router` on an ephemeral loopback port.
    pub async fn start(router: Router) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Self {
            addr,
            stop: Some(tx),
            handle,
        }
    }

    /// Stops it, waiting at most 5 s for in-flight requests.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let abort = self.handle.abort_handle();
        if tokio::time::timeout(Duration::from_secs(5), &mut self.handle)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

/// Every wait of these helpers ends after this long.
pub const WAIT_BOUND: Duration = Duration::from_secs(20);

/// Polls `check` every 20 ms until it returns true; panics naming `what`
/// after [`WAIT_BOUND`].
#[allow(dead_code)] // not every test file waits
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT_BOUND;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Tells a running collector to stop and checks that it stops cleanly
/// within [`WAIT_BOUND`].
#[allow(dead_code)] // not every test file runs a whole collector
pub async fn stop_collector(
    stop: oneshot::Sender<()>,
    run: JoinHandle<Result<(), CollectorError>>,
) {
    let _ = stop.send(());
    let result = tokio::time::timeout(WAIT_BOUND, run)
        .await
        .expect("collector stops in time")
        .expect("run task");
    assert!(result.is_ok(), "{result:?}");
}
