//! The soak (a long job, not part of `scripts/test`): the local stack under
//! mixed load for minutes (hits, new cards, bad input), then a table of what
//! it held: requests per second, answers by kind, and the memory (PSS) of the
//! origin with its Chromium and of the edge host, after warm-up and at the
//! end. Exits non-zero on an unexpected answer or memory growth over the limit.
//!
//! cargo build --workspace --bins && target/debug/imgate-soak --minutes 10

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use imgate_contract::{Keyring, route};
use imgate_devstack::{Stack, StackOptions, random_hex, sibling_bin_dir, source_root};
use imgate_tests::{Processes, Scrape, pss_kib};

#[derive(Parser)]
#[command(
    about = "Mixed load against the local stack; reports throughput, answers and memory growth"
)]
struct Args {
    /// How long the load runs, in minutes (the first tenth warms up).
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Every this many seconds (the first at the start), a flood: this many
    /// new cards asked at once (more than the render queue holds, so most are shed).
    #[arg(long, default_value_t = 60)]
    flood_every_secs: u64,
    #[arg(long, default_value_t = 150)]
    flood_size: usize,
    /// Largest memory growth accepted from after warm-up to the end, in percent.
    #[arg(long, default_value_t = 10.0)]
    max_growth_percent: f64,
}

/// Answers by kind.
#[derive(Default)]
struct Tally {
    hits: AtomicU64,
    rendered: AtomicU64,
    refused: AtomicU64,
    shed: AtomicU64,
    unexpected: AtomicU64,
}

const HOT: usize = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let data = tempfile::tempdir()?;
    let keys = format!("soak:{}", random_hex(24)?);
    let mut opts = StackOptions::new(source_root(), sibling_bin_dir()?);
    opts.data_dir = data.path().join("s3");
    (opts.edge_port, opts.origin_port, opts.s3_port) = (0, 0, 0);
    opts.signing_keys = keys.clone();
    opts.log_dir = Some(data.path().to_path_buf());
    // Warnings only, and no access lines: the table is the output.
    opts.origin_env = vec![("RUST_LOG".into(), "warn".into())];
    opts.edge_variables = vec![("access_log".into(), "false".into())];
    eprintln!(
        "soak: starting the stack (logs in {})",
        data.path().display()
    );
    let stack = Stack::start(&opts).await?;
    let keyring = Keyring::parse(&keys).map_err(anyhow::Error::msg)?;
    let result = soak(&args, &stack, &keyring).await;
    stack.stop().await;
    let report = result?;
    println!("{report}");
    Ok(())
}

/// What every request of the soak shares: how to sign and send one, and the tally.
struct Load {
    http: reqwest::Client,
    edge: String,
    keyring: Keyring,
    tally: Tally,
    /// New cards asked so far, which makes each one's title unique.
    new_cards: AtomicU64,
    tag: String,
}

impl Load {
    /// A signed public URL for a card path and query.
    fn signed(&self, path: &str) -> String {
        let card = route::parse_card_url(path).expect("a card URL");
        format!(
            "{}{}",
            self.edge,
            self.keyring.sign_url(&card).expect("keys")
        )
    }

    /// A card nobody asked for before.
    fn new_card(&self) -> String {
        let i = self.new_cards.fetch_add(1, Ordering::Relaxed);
        self.signed(&format!("/og/basic.png?title=New%20{}%20{i}", self.tag))
    }

    /// GETs `url`, reads the answer and counts it as `kind` expects.
    async fn ask(&self, url: &str, kind: Kind) {
        let status = match self.http.get(url).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                // Read the body: a client that hangs up early is another test.
                let _ = response.bytes().await;
                Some(status)
            }
            Err(_) => None,
        };
        let tally = &self.tally;
        let counter = match (kind, status) {
            (Kind::Hit, Some(200)) => &tally.hits,
            (Kind::Miss, Some(200)) => &tally.rendered,
            (Kind::Miss, Some(503)) => &tally.shed,
            (Kind::Bad, Some(400..500)) => &tally.refused,
            _ => &tally.unexpected,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

async fn soak(args: &Args, stack: &Stack, keyring: &Keyring) -> anyhow::Result<String> {
    let load = Arc::new(Load {
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            // Below the servers' 75 s header timeout, which also closes idle
            // keep-alive connections (reqwest keeps them 90 s by default).
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?,
        edge: stack.edge_url.clone(),
        keyring: keyring.clone(),
        tally: Tally::default(),
        new_cards: AtomicU64::new(0),
        tag: random_hex(3)?,
    });
    let hot: Arc<Vec<String>> = Arc::new(
        (0..HOT)
            .map(|i| load.signed(&format!("/og/basic.png?title=Hot%20card%20{i}")))
            .collect(),
    );
    let bad: Arc<Vec<String>> = Arc::new(
        [
            "/og/basic.png?title=x",
            "/og/basic.png?title=x&k=soak&s=AAAA",
            "/og/..%2F..%2Fsecret.png",
            "/r/thumbnail/../../x.jpg",
            "/og/nope.png?title=x",
            "/og/basic.gif?title=x",
            "/admin",
        ]
        .iter()
        .map(|p| format!("{}{p}", load.edge))
        .chain([load.signed("/og/basic.png?title=x&colour=red")])
        .collect(),
    );
    for url in hot.iter() {
        let status = load.http.get(url).send().await?.status();
        ensure!(status == 200, "warming {url}: {status}");
    }

    let total = Duration::from_secs_f64(args.minutes * 60.0);
    let warm_up = total / 10;
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let (load, hot, bad) = (load.clone(), hot.clone(), bad.clone());
        workers.push(tokio::spawn(async move {
            let mut n: u64 = worker as u64;
            while started.elapsed() < total {
                n = n
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let pick = (n >> 33) % 100;
                let (url, kind) = match pick {
                    0..60 => (hot[(n >> 40) as usize % HOT].clone(), Kind::Hit),
                    60..80 => (load.new_card(), Kind::Miss),
                    _ => (bad[(n >> 40) as usize % bad.len()].clone(), Kind::Bad),
                };
                load.ask(&url, kind).await;
            }
        }));
    }

    let flood = {
        let load = load.clone();
        let (every, size) = (Duration::from_secs(args.flood_every_secs), args.flood_size);
        tokio::spawn(async move {
            let mut floods = 0u64;
            // The first at once: its high-water mark (pooled edge instances,
            // buffers) belongs in the warm-up, not in the growth.
            while started.elapsed() + every < total {
                if floods > 0 {
                    tokio::time::sleep(every).await;
                }
                floods += 1;
                let burst: Vec<_> = (0..size)
                    .map(|_| {
                        let load = load.clone();
                        tokio::spawn(async move { load.ask(&load.new_card(), Kind::Miss).await })
                    })
                    .collect();
                for request in burst {
                    let _ = request.await;
                }
            }
            floods
        })
    };

    tokio::time::sleep(warm_up).await;
    let baseline = memory(stack)?;
    eprintln!(
        "soak: warmed up; origin + Chromium {} MiB, edge {} MiB",
        baseline.0 / 1024,
        baseline.1 / 1024
    );
    let mut last = Instant::now();
    while started.elapsed() < total {
        tokio::time::sleep(Duration::from_secs(1)).await;
        if last.elapsed() >= Duration::from_secs(30) {
            last = Instant::now();
            let (origin, edge_kib) = memory(stack)?;
            eprintln!(
                "soak: {:>4.0}s  {} requests  {} unexpected  origin + Chromium {} MiB  edge {} MiB",
                started.elapsed().as_secs_f64(),
                count(&load.tally),
                load.tally.unexpected.load(Ordering::Relaxed),
                origin / 1024,
                edge_kib / 1024
            );
        }
    }
    for worker in workers {
        worker.await?;
    }
    let floods = flood.await?;
    let elapsed = started.elapsed();
    settle(&load.http, stack).await?;
    let end = memory(stack)?;
    let growth = |before: u64, after: u64| (after as f64 / before as f64 - 1.0) * 100.0;
    let tally = &load.tally;
    let requests = count(tally);
    let unexpected = tally.unexpected.load(Ordering::Relaxed);
    let (origin_growth, edge_growth) = (growth(baseline.0, end.0), growth(baseline.1, end.1));
    let report = format!(
        "| soak | value |\n|---|---:|\n\
         | duration | {:.0} s ({} in flight, a flood of {} new cards every {} s: {floods}) |\n\
         | requests | {requests} ({:.0}/s) |\n\
         | hits (200 from the store) | {} |\n\
         | new cards rendered (200) | {} |\n\
         | new cards shed (503, retry later) | {} |\n\
         | bad input refused (4xx JSON) | {} |\n\
         | unexpected answers | {unexpected} |\n\
         | origin + Chromium PSS after warm-up → end | {} → {} MiB ({origin_growth:+.1} %) |\n\
         | edge host PSS after warm-up → end | {} → {} MiB ({edge_growth:+.1} %) |",
        elapsed.as_secs_f64(),
        args.concurrency,
        args.flood_size,
        args.flood_every_secs,
        requests as f64 / elapsed.as_secs_f64(),
        tally.hits.load(Ordering::Relaxed),
        tally.rendered.load(Ordering::Relaxed),
        tally.shed.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed),
        baseline.0 / 1024,
        end.0 / 1024,
        baseline.1 / 1024,
        end.1 / 1024,
    );
    ensure!(
        unexpected == 0,
        "{report}\n\n{unexpected} unexpected answers"
    );
    for (what, g) in [
        ("origin + Chromium", origin_growth),
        ("edge host", edge_growth),
    ] {
        ensure!(
            g <= args.max_growth_percent,
            "{report}\n\n{what} memory grew {g:.1} % (limit {} %)",
            args.max_growth_percent
        );
    }
    Ok(report)
}

#[derive(Clone, Copy)]
enum Kind {
    Hit,
    Miss,
    Bad,
}

fn count(tally: &Tally) -> u64 {
    [
        &tally.hits,
        &tally.rendered,
        &tally.refused,
        &tally.shed,
        &tally.unexpected,
    ]
    .iter()
    .map(|c| c.load(Ordering::Relaxed))
    .sum()
}

/// PSS in KiB of the origin with everything below it (Chromium), and of the edge host.
fn memory(stack: &Stack) -> anyhow::Result<(u64, u64)> {
    let origin = stack.origin_pid().context("the origin exited")?;
    let edge = stack.edge_pid().context("the edge host exited")?;
    Ok((pss_kib(Processes::read()?.tree(origin)), pss_kib([edge])))
}

/// Waits until the origin has nothing queued or rendering.
async fn settle(http: &reqwest::Client, stack: &Stack) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = http
            .get(format!("{}/metrics", stack.origin_url))
            .send()
            .await?
            .text()
            .await?;
        let scrape = Scrape::parse(&text)?;
        if scrape.sum("imgate_render_queue", &[]) == 0.0
            && scrape.sum("imgate_render_pages_busy", &[]) == 0.0
        {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the origin never settled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
