//! The edge benchmark: `imgate-edge-host` running (a) imgate's edge in redirect
//! mode on the known-present hit path, (b) imgate's edge in serve mode streaming
//! a 100 KB stored image, and (c) a hello-world component, each under the same
//! bounded loopback load; and (d) the store serving (b)'s object directly, to
//! show what (b) spends outside the edge. Prints a Markdown table with the
//! ratios to (c).
//!
//! cargo bench -p imgate-edge-host --bench edge
//!
//! IMGATE_BENCH_REQUESTS (default 20000) sets requests per row,
//! IMGATE_BENCH_CONNECTIONS (default 16) the concurrent keep-alive connections.
//! Needs `scripts/build-edge` to have built both components. The load generator
//! runs on the same machine, so it competes with the host for the CPU.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use imgate_contract::{Keyring, Route, route};
use imgate_devstack::{Child, S3Server, StoreCredentials, random_hex};

const IMAGE_BYTES: usize = 100 * 1024;
const URL: &str = "/r/small/bench/photo.jpg";
const KEY: &str = "renditions/small/bench/photo.jpg.jpg";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One component and request to measure.
struct Case {
    name: &'static str,
    manifest: String,
    env: Vec<(&'static str, String)>,
    path: String,
    expect_status: u16,
}

struct Row {
    name: &'static str,
    expect_status: u16,
    req_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let requests = env_or("IMGATE_BENCH_REQUESTS", 20_000);
    let connections = env_or("IMGATE_BENCH_CONNECTIONS", 16);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let components = root.join("target/edge/wasm32-wasip2/edge");
    anyhow::ensure!(
        components.join("imgate_hello_component.wasm").is_file(),
        "run scripts/build-edge first"
    );
    let host = Path::new(env!("CARGO_BIN_EXE_imgate-edge-host"));
    let work = tempfile::tempdir()?;

    // The store, with one 100 KB image where the URL's object key says.
    let data = work.path().join("s3");
    let object = data.join("imgate").join(KEY);
    std::fs::create_dir_all(object.parent().context("no parent")?)?;
    std::fs::write(&object, vec![0x5a; IMAGE_BYTES])?;
    let s3 = S3Server::start(&data, "imgate", 0, StoreCredentials::generate()?).await?;

    let keys = format!("bench:{}", random_hex(24)?);
    let Route::Rendition(rendition) = route::parse("GET", URL, "")? else {
        unreachable!("a rendition URL")
    };
    let signed = Keyring::parse(&keys)
        .map_err(anyhow::Error::msg)?
        .sign_url(&rendition)
        .context("keys set")?;
    let edge_env = |mode: &str| -> Vec<(&'static str, String)> {
        vec![
            ("SPIN_VARIABLE_STORE_ENDPOINT", s3.url.clone()),
            (
                "SPIN_VARIABLE_STORE_ACCESS_KEY_ID",
                s3.credentials.access_key.clone(),
            ),
            (
                "SPIN_VARIABLE_STORE_SECRET_ACCESS_KEY",
                s3.credentials.secret_key.clone(),
            ),
            // Never called: every request here is a hit.
            ("SPIN_VARIABLE_ORIGIN_URL", "http://127.0.0.1:9".into()),
            ("SPIN_VARIABLE_EDGE_TOKEN", "bench-token-not-used".into()),
            ("SPIN_VARIABLE_SIGNING_KEYS", keys.clone()),
            ("SPIN_VARIABLE_MODE", mode.into()),
            (
                "SPIN_VARIABLE_PUBLIC_STORE_URL",
                "https://cdn.example.test".into(),
            ),
        ]
    };
    let hello_manifest = work.path().join("hello.toml");
    std::fs::write(
        &hello_manifest,
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"hello\"\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n\
             [component.hello]\nsource = {:?}\n",
            components
                .join("imgate_hello_component.wasm")
                .display()
                .to_string()
        ),
    )?;

    let spin_toml = root.join("spin.toml").display().to_string();
    let cases = [
        Case {
            name: "(a) edge, redirect mode, known-present hit",
            manifest: spin_toml.clone(),
            env: edge_env("redirect"),
            path: signed.clone(),
            expect_status: 302,
        },
        Case {
            name: "(b) edge, serve mode, 100 KB image",
            manifest: spin_toml,
            env: edge_env("serve"),
            path: signed,
            expect_status: 200,
        },
        Case {
            name: "(c) hello-world component",
            manifest: hello_manifest.display().to_string(),
            env: Vec::new(),
            path: "/".into(),
            expect_status: 200,
        },
    ];
    let mut rows = Vec::new();
    for case in cases {
        let Case {
            name,
            manifest,
            mut env,
            path,
            expect_status,
        } = case;
        env.push(("IMGATE_EDGE_LISTEN", "127.0.0.1:0".into()));
        // One log line per request would measure the terminal, not the edge.
        env.push(("RUST_LOG", "warn".into()));
        env.push(("SPIN_VARIABLE_ACCESS_LOG", "false".into()));
        let edge = Child::spawn(
            "edge",
            host,
            &["--manifest", &manifest],
            &env,
            "imgate-edge-host listening on ",
            Duration::from_secs(60),
            None,
        )
        .await?;
        let url = format!("{}{path}", edge.url);
        eprintln!("{name}: warming up…");
        load(&url, connections, connections * 50, expect_status).await?;
        eprintln!("{name}: {requests} requests over {connections} connections…");
        let started = Instant::now();
        let mut latencies = load(&url, connections, requests, expect_status).await?;
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        rows.push(Row {
            name,
            expect_status,
            req_per_s: requests as f64 / elapsed,
            p50_ms: percentile(&latencies, 0.50),
            p99_ms: percentile(&latencies, 0.99),
        });
        edge.stop().await;
    }
    // What (b) costs without the edge: the store serving the same object.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    let direct = imgate_edge::presign::Signer {
        endpoint: &s3.url,
        bucket: "imgate",
        region: "us-east-1",
        access_key_id: &s3.credentials.access_key,
        secret_access_key: &s3.credentials.secret_key,
    }
    .presign("GET", KEY, now.as_secs(), 3600);
    let name = "(d) the store alone, same 100 KB object";
    eprintln!("{name}: {requests} requests over {connections} connections…");
    load(&direct, connections, connections * 50, 200).await?;
    let started = Instant::now();
    let mut latencies = load(&direct, connections, requests, 200).await?;
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    rows.push(Row {
        name,
        expect_status: 200,
        req_per_s: requests as f64 / elapsed,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
    });
    print_table(&rows, requests, connections);
    Ok(())
}

/// `total` GETs of `url` over `connections` keep-alive connections; the
/// latency of each, in milliseconds. Any other status than `expect` fails.
async fn load(
    url: &str,
    connections: usize,
    total: usize,
    expect: u16,
) -> anyhow::Result<Vec<f64>> {
    let uri: hyper::Uri = url.parse()?;
    let authority = uri.authority().context("no host")?.clone();
    let mut tasks = Vec::new();
    for c in 0..connections {
        let share = total / connections + usize::from(c < total % connections);
        let (uri, authority) = (uri.clone(), authority.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(authority.as_str()).await?;
            stream.set_nodelay(true)?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let mut latencies = Vec::with_capacity(share);
            for _ in 0..share {
                let request = hyper::Request::get(uri.clone())
                    .header("host", authority.as_str())
                    .body(Empty::<Bytes>::new())?;
                let started = Instant::now();
                let response = sender.send_request(request).await?;
                let status = response.status().as_u16();
                let body = response.into_body().collect().await?.to_bytes();
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
                anyhow::ensure!(
                    status == expect,
                    "{uri}: {status}, not {expect}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                );
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::with_capacity(total);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn print_table(rows: &[Row], requests: usize, connections: usize) {
    let base = rows
        .iter()
        .find(|r| r.name.starts_with("(c)"))
        .expect("a hello-world row")
        .req_per_s;
    println!(
        "\nimgate-edge-host on loopback, {requests} requests per row over {connections} keep-alive connections, {} cores.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| | status | req/s | p50 | p99 | req/s vs (c) |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for row in rows {
        println!(
            "| {} | {} | {:.0} | {:.2} ms | {:.2} ms | {:.2}× |",
            row.name,
            row.expect_status,
            row.req_per_s,
            row.p50_ms,
            row.p99_ms,
            row.req_per_s / base
        );
    }
}
