//! The origin's HTTP/1.1 listener. warp's own serves connections with no
//! timer, so a client that sends its headers a byte at a time (slowloris)
//! holds a connection, and the graceful shutdown, forever. Here each
//! connection gets hyper's header read timeout and a bounded header size, and
//! shutdown waits for requests in flight only so long.

use std::future::Future;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// How long requests in flight may finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);

/// Serves `filter` on `listener` until `shutdown` completes. `client_timeout`
/// bounds how long a client may take to send a request's headers.
pub async fn serve<F>(
    listener: tokio::net::TcpListener,
    filter: F,
    client_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) where
    F: warp::Filter + Clone + Send + Sync + 'static,
    F::Extract: warp::Reply,
{
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: let some close.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(warp::service(filter.clone()));
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(client_timeout)
            .max_header_size(imgate_contract::limits::MAX_HEAD_BYTES)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection closed: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "requests still open {}s after the shutdown signal; closing them",
            SHUTDOWN_GRACE.as_secs()
        );
    }
}
