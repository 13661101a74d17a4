//! The HTTP API: `GET /metrics` and `GET /-/healthy`.

use std::future::Future;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use fleetwatch_model::exposition::TEXT_CONTENT_TYPE;

use crate::Simulator;

/// Builds the router (tested without a socket).
pub(crate) fn router(sim: Simulator) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .with_state(sim)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn metrics(State(sim): State<Simulator>) -> Response {
    if sim.is_down() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "cluster is down (simulated)\n",
        )
            .into_response();
    }
    let now = now_ms();
    // Rendering a large fleet takes milliseconds and may write log files:
    // keep it off the async workers.
    match tokio::task::spawn_blocking(move || sim.render(now)).await {
        Ok(text) => ([(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)], text).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "simulator render task failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "render failed\n").into_response()
        }
    }
}

async fn healthy() -> &'static str {
    "Healthy\n"
}

/// Serves `sim`'s [`router`](Simulator::router) on `listener` until
/// `shutdown` completes, then finishes in-flight requests.
pub async fn serve(
    sim: Simulator,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    tracing::debug!(cluster = sim.cluster(), "simulator serving");
    axum::serve(listener, sim.router())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use crate::{Scenario, Simulator, SimulatorOptions};

    fn sim(scenarios: Vec<Scenario>) -> Simulator {
        Simulator::new(SimulatorOptions {
            cluster: "http".into(),
            vms: 12,
            scenarios,
            ..SimulatorOptions::default()
        })
    }

    async fn get(sim: &Simulator, path: &str) -> (u16, Option<String>, String) {
        let req = Request::get(path).body(Body::empty()).expect("request");
        let resp = sim.router().oneshot(req).await.expect("infallible");
        let status = resp.status().as_u16();
        let ct = resp
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = axum::body::to_bytes(resp.into_body(), 64 << 20)
            .await
            .expect("body");
        (status, ct, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn metrics_and_health() {
        let s = sim(vec![]);
        let (status, ct, body) = get(&s, "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(
            ct.as_deref(),
            Some(fleetwatch_model::exposition::TEXT_CONTENT_TYPE)
        );
        assert!(body.contains("# TYPE kubevirt_vm_memory_usage_bytes gauge\n"));
        assert_eq!(s.last_values("kubevirt_vm_memory_usage_bytes").len(), 12);
        let (status, _, body) = get(&s, "/-/healthy").await;
        assert_eq!((status, body.as_str()), (200, "Healthy\n"));
        let (status, _, _) = get(&s, "/nope").await;
        assert_eq!(status, 404);
    }

    #[tokio::test]
    async fn cluster_down_answers_503() {
        let s = sim(vec![Scenario::ClusterDown]);
        let (status, _, _) = get(&s, "/metrics").await;
        assert_eq!(status, 503);
        let (status, _, _) = get(&s, "/-/healthy").await;
        assert_eq!(status, 200);
    }

    #[tokio::test]
    async fn serves_on_a_real_listener_and_shuts_down() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(super::serve(sim(vec![]), listener, async {
            let _ = rx.await;
        }));
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut resp = Vec::new();
        stream.read_to_end(&mut resp).await.expect("read");
        let resp = String::from_utf8_lossy(&resp);
        assert!(
            resp.starts_with("HTTP/1.1 200"),
            "{}",
            &resp[..resp.len().min(200)]
        );
        assert!(resp.contains("kubevirt_vmi_memory_used_bytes{"));
        let _ = tx.send(());
        server.await.expect("join").expect("serve");
    }
}
