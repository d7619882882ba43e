//! Accept loop: a cap on open connections, a header-read timeout that also
//! closes idle keep-alive connections, HTTP/1.1 only (HTTP/2 in hyper has no
//! header timeout; put a TLS proxy in front), and graceful shutdown with a
//! deadline.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::{App, handle};

pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: CancellationToken) {
    let cfg = &app.config.server;
    let connections = Arc::new(Semaphore::new(cfg.max_connections as usize));
    let mut builder = http1::Builder::new();
    // Without a timer hyper silently disables its header timeout.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(cfg.header_read_timeout))
        .max_buf_size(64 * 1024)
        .max_headers(64);
    let graceful = GracefulShutdown::new();
    let deadline = Duration::from_secs(cfg.shutdown_timeout);

    loop {
        // Waiting for a permit first leaves excess clients in the kernel's
        // backlog instead of accepting them and running out of descriptors.
        let permit = tokio::select! {
            p = connections.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends pass; exiting would turn them into an outage.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let svc = service_fn(move |req| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(handle(app, req, peer).await) }
        });
        let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, timeout = e.is_timeout(), "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            seconds = deadline.as_secs(),
            "requests still running at the shutdown deadline were cut off"
        );
    }
}
