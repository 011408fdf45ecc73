//! The card benchmark: the reference product card rendered warm by imgate's
//! renderer (Chromium + palette PNG) and, in the same run, by Satori + resvg
//! (what @vercel/og does), with the ratios. Prints a Markdown table.
//!
//! The latency and CPU rows alternate rounds of cards between the two, so that
//! both see the same machine: on a shared host the speed drifts by 10-20%
//! within minutes, which moved the ratio as much when the sides ran one after
//! the other.
//!
//! cargo bench -p imgate-origin --bench cards
//!
//! IMGATE_BENCH_ITERATIONS (default 60) sets cards per row; IMGATE_BENCH_FORMAT
//! (png, jpg or webp; default png) what imgate renders (Satori always makes PNG);
//! IMGATE_CHROMIUM_FLAGS adds Chromium flags.
//!
//! Needs Chromium, Node.js and `npm install` in bench/ (for Satori).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use imgate_contract::ImageFormat;
use imgate_origin::render::{Renderer, RendererOptions};
use imgate_origin::templates::{CardPage, Templates};

#[path = "support/procfs.rs"]
mod procfs;

const CONCURRENCY: [usize; 3] = [1, 2, 4];

/// Cards per round of the alternating rows.
const ROUND: usize = 10;

fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::var("IMGATE_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let format = ImageFormat::from_extension(
        &std::env::var("IMGATE_BENCH_FORMAT").unwrap_or_else(|_| "png".into()),
    )?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut satori = Satori::start(&root)?;
    let (imgate, satori) = runtime.block_on(imgate(&root, iterations, format, &mut satori))?;
    print_table(iterations, format, &imgate, &satori);
    Ok(())
}

struct Figures {
    cold_start_ms: f64,
    p50_ms: f64,
    p95_ms: f64,
    cards_per_s: BTreeMap<usize, f64>,
    cpu_ms_per_card: f64,
    /// imgate only: which process spent the CPU (Chromium's `--type`).
    cpu_by_process: BTreeMap<String, PerCard>,
    png_bytes: usize,
    peak_pss_mib: f64,
}

/// imgate's figures, and Satori's from the rounds alternated with imgate's.
async fn imgate(
    root: &Path,
    iterations: usize,
    format: ImageFormat,
    satori: &mut Satori,
) -> anyhow::Result<(Figures, Figures)> {
    let templates = Templates::load(&root.join("templates"))?;
    let params: BTreeMap<String, String> = [
        ("title", "Noise-cancelling headphones, now 30% off"),
        ("subtitle", "Free shipping this week only"),
        ("price", "$249"),
        ("brand", "Acme Audio"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let page = Arc::new(templates.page("product", &params)?);

    let started = Instant::now();
    let renderer = Renderer::launch(RendererOptions {
        executable: None,
        pages: *CONCURRENCY.iter().max().expect("not empty"),
        queue: 64,
        timeout: Duration::from_secs(30),
        allowed_hosts: Vec::new(),
        metrics: Default::default(),
        extra_flags: std::env::var("IMGATE_CHROMIUM_FLAGS")
            .map(|f| f.split_whitespace().map(String::from).collect())
            .unwrap_or_default(),
    })
    .await?;
    let first = renderer.screenshot(&page, format).await?;
    let cold_start_ms = ms(started.elapsed());
    for _ in 0..5 {
        renderer.screenshot(&page, format).await?;
    }

    eprintln!("imgate and Satori: {iterations} cards each, one at a time, in rounds of {ROUND}…");
    let skip = satori.pid();
    let mut times = Vec::with_capacity(iterations);
    let mut usage: HashMap<u32, procfs::Usage> = HashMap::new();
    let mut satori_rounds = Vec::new();
    let mut done = 0;
    while done < iterations {
        let cards = ROUND.min(iterations - done);
        let before = procfs::tree_usage(std::process::id(), Some(skip));
        for _ in 0..cards {
            let t = Instant::now();
            renderer.screenshot(&page, format).await?;
            times.push(ms(t.elapsed()));
        }
        let after = procfs::tree_usage(std::process::id(), Some(skip));
        for (pid, spent) in procfs::spent(&before, &after) {
            usage.entry(pid).or_default().add(spent);
        }
        satori_rounds.push(tokio::task::block_in_place(|| satori.round(cards))?);
        done += cards;
    }
    let cpu_by_process = per_card_by_process(&usage, iterations);
    let cpu_ms_per_card = cpu_by_process.values().map(|p| p.cpu_ms).sum();
    times.sort_by(f64::total_cmp);

    // Not earlier: reading `smaps_rollup` of a browser tree every 50 ms costs
    // more CPU than a card's CDP traffic, and would be counted as imgate's
    // and slow its cards. The peak is with the most pages open, below.
    let sampler = MemorySampler::start(skip);
    let mut cards_per_s = BTreeMap::new();
    for concurrency in CONCURRENCY {
        eprintln!("imgate: {iterations} cards, {concurrency} at a time…");
        let t = Instant::now();
        throughput(&renderer, &page, iterations, concurrency, format).await?;
        cards_per_s.insert(concurrency, iterations as f64 / t.elapsed().as_secs_f64());
    }
    renderer.shutdown().await;
    let imgate = Figures {
        cold_start_ms,
        p50_ms: percentile(&times, 0.5),
        p95_ms: percentile(&times, 0.95),
        cards_per_s,
        cpu_ms_per_card,
        cpu_by_process,
        png_bytes: first.len(),
        peak_pss_mib: sampler.stop(),
    };
    Ok((imgate, Satori::figures(&satori_rounds, iterations)))
}

async fn throughput(
    renderer: &Arc<Renderer>,
    page: &Arc<CardPage>,
    iterations: usize,
    concurrency: usize,
    format: ImageFormat,
) -> anyhow::Result<()> {
    let next = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (renderer, page, next) = (renderer.clone(), page.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::SeqCst) < iterations as u64 {
                    renderer.screenshot(&page, format).await?;
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    Ok(())
}

/// `bench/satori.mjs`, kept running and asked for rounds of cards.
struct Satori {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

/// What `satori.mjs` answers for one round.
#[derive(serde::Deserialize)]
struct SatoriRound {
    times_ms: Vec<f64>,
    wall_ms: f64,
    cpu_ms: f64,
    png_bytes: usize,
    rss_mib: f64,
}

impl Satori {
    fn start(root: &Path) -> anyhow::Result<Self> {
        use std::io::BufRead;
        use std::process::Stdio;
        anyhow::ensure!(
            root.join("bench/node_modules/satori").is_dir(),
            "Satori is not installed: (cd bench && npm install)"
        );
        let mut child = std::process::Command::new("node")
            .arg(root.join("bench/satori.mjs"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("cannot run node")?;
        let stdin = child.stdin.take().context("node's stdin")?;
        let stdout = child.stdout.take().context("node's stdout")?;
        let mut satori = Self {
            child,
            stdin,
            stdout: std::io::BufReader::new(stdout).lines(),
        };
        let ready = satori.line()?;
        anyhow::ensure!(ready.contains("ready"), "satori.mjs said {ready}");
        Ok(satori)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn line(&mut self) -> anyhow::Result<String> {
        self.stdout
            .next()
            .context("satori.mjs exited (its error is above)")?
            .context("reading satori.mjs")
    }

    fn round(&mut self, cards: usize) -> anyhow::Result<SatoriRound> {
        use std::io::Write;
        writeln!(self.stdin, "{cards}").context("satori.mjs exited")?;
        let line = self.line()?;
        serde_json::from_str(&line).with_context(|| format!("satori.mjs said {line}"))
    }

    fn figures(rounds: &[SatoriRound], cards: usize) -> Figures {
        let mut times: Vec<f64> = rounds.iter().flat_map(|r| r.times_ms.clone()).collect();
        times.sort_by(f64::total_cmp);
        let wall_s = rounds.iter().map(|r| r.wall_ms).sum::<f64>() / 1000.0;
        Figures {
            cold_start_ms: f64::NAN,
            p50_ms: percentile(&times, 0.5),
            p95_ms: percentile(&times, 0.95),
            // Satori renders on the JavaScript thread: one at a time, whatever the concurrency.
            cards_per_s: BTreeMap::from([(1, cards as f64 / wall_s)]),
            cpu_ms_per_card: rounds.iter().map(|r| r.cpu_ms).sum::<f64>() / cards as f64,
            cpu_by_process: BTreeMap::new(),
            png_bytes: rounds.last().map_or(0, |r| r.png_bytes),
            peak_pss_mib: rounds.iter().map(|r| r.rss_mib).fold(0.0, f64::max),
        }
    }
}

impl Drop for Satori {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn print_table(iterations: usize, format: ImageFormat, imgate: &Figures, satori: &Figures) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let ext = format.extension();
    println!(
        "\nReference product card, 1200×630, warm, {iterations} cards per row, {cores} cores.\n"
    );
    println!("| | imgate ({ext}) | Satori + resvg (png) | imgate / Satori |");
    println!("| --- | ---: | ---: | ---: |");
    let row = |name: &str, a: f64, b: f64, unit: &str| {
        println!("| {name} | {a:.1} {unit} | {b:.1} {unit} | {:.2}× |", a / b);
    };
    row("latency p50", imgate.p50_ms, satori.p50_ms, "ms");
    row("latency p95", imgate.p95_ms, satori.p95_ms, "ms");
    for (c, rate) in &imgate.cards_per_s {
        row(
            &format!("throughput, {c} at a time"),
            *rate,
            satori.cards_per_s[&1],
            "cards/s",
        );
    }
    row(
        "CPU per card (all processes)",
        imgate.cpu_ms_per_card,
        satori.cpu_ms_per_card,
        "ms",
    );
    row(
        "cards per CPU-second",
        1000.0 / imgate.cpu_ms_per_card,
        1000.0 / satori.cpu_ms_per_card,
        "",
    );
    row(
        "image size",
        imgate.png_bytes as f64 / 1024.0,
        satori.png_bytes as f64 / 1024.0,
        "KiB",
    );
    println!(
        "| peak memory | {:.0} MiB (browser tree, PSS) | {:.0} MiB (node, RSS) | |",
        imgate.peak_pss_mib, satori.peak_pss_mib
    );
    println!(
        "| cold start to first card | {:.0} ms | | |",
        imgate.cold_start_ms
    );
    println!("\n| imgate per card, by process | CPU | page faults |\n| --- | ---: | ---: |");
    for (process, per_card) in &imgate.cpu_by_process {
        println!(
            "| {process} | {:.1} ms | {:.0} |",
            per_card.cpu_ms, per_card.minor_faults
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

/// One process kind's share of a card.
#[derive(Default)]
struct PerCard {
    cpu_ms: f64,
    minor_faults: f64,
}

/// Usage per card from usage by pid, summed by what each process is: the
/// bench itself (CDP client and PNG re-encode) or a Chromium process.
fn per_card_by_process(
    usage: &HashMap<u32, procfs::Usage>,
    cards: usize,
) -> BTreeMap<String, PerCard> {
    let mut by_kind = BTreeMap::<String, PerCard>::new();
    for (pid, spent) in usage {
        let kind = if *pid == std::process::id() {
            "imgate (CDP client, re-encode)".into()
        } else {
            procfs::chromium_kind(*pid)
        };
        let per_card = by_kind.entry(kind).or_default();
        per_card.cpu_ms += spent.ticks as f64 * procfs::ms_per_tick() / cards as f64;
        per_card.minor_faults += spent.minor_faults as f64 / cards as f64;
    }
    by_kind
}

/// Samples the proportional memory of the browser processes (descendants only).
struct MemorySampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<f64>,
}

impl MemorySampler {
    fn start(skip: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peak_kib = 0u64;
            while !flag.load(Ordering::Relaxed) {
                let all = procfs::processes();
                let me = std::process::id();
                let kib: u64 = procfs::tree(&all, me, Some(skip))
                    .into_iter()
                    .filter(|&pid| pid != me)
                    .map(pss_kib)
                    .sum();
                peak_kib = peak_kib.max(kib);
                std::thread::sleep(Duration::from_millis(50));
            }
            peak_kib as f64 / 1024.0
        });
        Self { stop, thread }
    }

    fn stop(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or(f64::NAN)
    }
}

fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
