//! `imgate-edge-host`: runs imgate's edge component locally the way Spin would.
//!
//! It reads `spin.toml`, loads the component it names, provides `spin:variables`
//! from the manifest defaults and `SPIN_VARIABLE_*`, Spin's key-value store (in
//! memory or files), mounts the component's `files`, enforces
//! `allowed_outbound_hosts`, reuses instances, and serves HTTP with one log
//! line per request.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use imgate_contract::ErrorBody;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::handler::ProxyHandler;

use imgate_edge_host::manifest::App;
use imgate_edge_host::runtime::{Edge, Limits};

/// Run imgate's edge component (the same .wasm Spin runs) on this machine.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Args {
    /// The Spin manifest naming the component, its files, variables and outbound hosts.
    #[arg(long, env = "IMGATE_EDGE_MANIFEST", default_value = "spin.toml")]
    manifest: PathBuf,
    /// Address to serve on. Port 0 picks a free port (printed on start).
    #[arg(long, env = "IMGATE_EDGE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Longest a request may take, an origin render included.
    #[arg(long, default_value = "30s", value_parser = humantime_secs)]
    request_timeout: Duration,
    /// How long to wait for a store or origin connection.
    #[arg(long, default_value = "5s", value_parser = humantime_secs)]
    connect_timeout: Duration,
    /// Keep Spin key-value stores as files `DIR/{label}.json` (Spin's local
    /// store keeps them on disk too); without it they live in memory.
    #[arg(long, env = "IMGATE_EDGE_KV_DIR")]
    kv_dir: Option<PathBuf>,
    /// Only check the manifest and its variables (defaults, SPIN_VARIABLE_*)
    /// against what the edge requires, print each problem, and exit 1 if
    /// there is any. Run it where you deploy from, with the same variables.
    #[arg(long)]
    check: bool,
}

fn humantime_secs(s: &str) -> Result<Duration, String> {
    let digits = s.strip_suffix('s').unwrap_or(s);
    digits
        .parse::<u64>()
        .map(Duration::from_secs)
        .map_err(|_| format!("{s:?} is not a duration in seconds like 30s"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    if args.check {
        let problems =
            imgate_edge_host::check::problems(&args.manifest, |name| std::env::var(name).ok());
        if problems.is_empty() {
            println!("✓ {}: the edge would start", args.manifest.display());
            return Ok(());
        }
        for problem in &problems {
            println!("✗ {problem}");
        }
        std::process::exit(1);
    }

    let app = App::load(&args.manifest, |name| std::env::var(name).ok())?;
    tracing::info!(
        component = %app.component_name,
        outbound = %app.outbound.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        variables = %app.variables.keys().map(|k| if app.secret_variables.contains(k) { format!("{k}=<secret>") } else { format!("{k}={}", app.variables[k]) }).collect::<Vec<_>>().join(" "),
        "loaded {}", args.manifest.display()
    );
    let edge = Edge::new(
        app,
        Limits {
            request_timeout: args.request_timeout,
            idle_timeout: Duration::from_secs(30),
            max_reuse: 128,
            max_concurrent: 16,
            connect_timeout: args.connect_timeout,
            first_byte_timeout: args.request_timeout,
        },
        args.kv_dir.as_deref(),
    )?;
    let stopping = edge.stopping();
    let handler = edge.into_handler();

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // The dev stack and the tests read this line to learn the port.
    println!("imgate-edge-host listening on http://{addr}");

    let next_request = AtomicU64::new(0);
    let in_flight = Arc::new(Semaphore::new(imgate_edge_host::runtime::MAX_IN_FLIGHT));
    let request_timeout = args.request_timeout;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            },
        };
        // Without this a small response can sit ~40 ms in Nagle's buffer.
        stream.set_nodelay(true)?;
        let (handler, in_flight) = (handler.clone(), in_flight.clone());
        let first_id = next_request.fetch_add(1 << 20, Ordering::Relaxed);
        tokio::spawn(async move {
            let ids = AtomicU64::new(first_id);
            let service = hyper::service::service_fn(move |req| {
                let (handler, in_flight) = (handler.clone(), in_flight.clone());
                let id = ids.fetch_add(1, Ordering::Relaxed);
                async move {
                    Ok::<_, Infallible>(
                        serve_one(&handler, &in_flight, request_timeout, id, req).await,
                    )
                }
            });
            // Like Spin (and the origin's listener): a client that trickles
            // its headers (slowloris) is cut off, and heads are bounded.
            if let Err(e) = http1::Builder::new()
                .keep_alive(true)
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_header_size(imgate_contract::limits::MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("connection closed: {e}");
            }
        });
    }
    stopping.store(true, Ordering::Relaxed);
    tracing::info!("shutting down");
    Ok(())
}

/// How long a client may take to send a request's headers; it also closes
/// idle keep-alive connections, so it is longer than a CDN's idle timeout.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(75);

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// A JSON error the host answers itself, never cached.
fn host_error(status: u16, code: &str, message: &str) -> hyper::Response<Body> {
    let mut response = hyper::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-store");
    if status == 503 {
        response = response.header("retry-after", "1");
    }
    response
        .body(
            Full::new(Bytes::from(ErrorBody::new(code, message).to_json()))
                .map_err(|e| match e {})
                .boxed_unsync(),
        )
        .expect("static response")
}

async fn serve_one(
    handler: &ProxyHandler<Edge>,
    in_flight: &Semaphore,
    wait: Duration,
    id: u64,
    req: hyper::Request<hyper::body::Incoming>,
) -> hyper::Response<Body> {
    let started = Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    // Each request in flight may hold an instance slot: past the pool's size a
    // request waits for a slot (as a Spin host queues) instead of failing.
    let Ok(Ok(_slot)) = tokio::time::timeout(wait, in_flight.acquire()).await else {
        tracing::warn!(%method, %path, "no instance free within {wait:?}");
        return host_error(503, "edge-busy", "the edge is at capacity; retry shortly");
    };
    let req = req.map(|body| body.map_err(wasmtime_wasi_http::Error::from).boxed_unsync());
    let response = match handler.handle(id, req).await {
        Ok(response) => response,
        Err(e) => {
            tracing::error!(%method, %path, "edge component failed: {e:?}");
            host_error(500, "edge-failed", "the edge failed to handle this request")
        }
    };
    // The component logs each request itself (as it does on Spin); this line
    // adds the host's view for debugging the host.
    tracing::debug!(
        %method,
        %path,
        status = response.status().as_u16(),
        cache = response.headers().get("x-imgate-cache").and_then(|v| v.to_str().ok()).unwrap_or("-"),
        index = response.headers().get("x-imgate-index").and_then(|v| v.to_str().ok()).unwrap_or("-"),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
}
