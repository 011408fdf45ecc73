//! A/B test of Chromium flags: two renderers side by side, rounds of cards
//! alternating between them, and each side's CPU per card by process. The
//! rounds alternate because this kind of host drifts: the same configuration
//! measured 74 and 94 ms per card a few minutes apart, while the two sides of
//! one run agree within a millisecond or two.
//!
//! Each round alternates two product cards with different text, so every
//! card is new to the page (a page that draws the same card again has nothing
//! to repaint, which would flatter any change that keeps the document).
//!
//! cargo run --release -p imgate-origin --example chromium_lab -- \
//!     --b "window-size=1200,630" [--a FLAGS] [--format png] [--rounds 10] [--cards 10] [--concurrency 1]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use imgate_contract::ImageFormat;
use imgate_origin::render::{Renderer, RendererOptions};
use imgate_origin::templates::{CardPage, Templates};

#[path = "../benches/support/procfs.rs"]
mod procfs;

/// Compares Chromium flags by CPU per card, in alternating rounds.
#[derive(Parser)]
struct Args {
    /// Chromium flags of side A (space-separated, without `--`).
    #[arg(long, default_value = "")]
    a: String,
    /// Chromium flags of side B.
    #[arg(long, default_value = "")]
    b: String,
    /// png, jpg or webp.
    #[arg(long, default_value = "png")]
    format: String,
    #[arg(long, default_value_t = 10)]
    rounds: usize,
    /// Cards per side per round.
    #[arg(long, default_value_t = 10)]
    cards: usize,
    /// Cards rendering at once (pages per renderer).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
}

struct Side {
    flags: String,
    renderer: Arc<Renderer>,
    browser: u32,
    /// Usage by what spent it.
    usage: BTreeMap<String, procfs::Usage>,
    wall: Duration,
}

const CLIENT: &str = "imgate (CDP client, re-encode)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let format = ImageFormat::from_extension(&args.format)?;
    let templates = Templates::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates"))?;
    let card = |title: &str, price: &str| {
        let params = [
            ("title", title),
            ("subtitle", "Free shipping this week only"),
            ("price", price),
            ("brand", "Acme Audio"),
        ];
        let params = params.map(|(k, v)| (k.to_string(), v.to_string()));
        templates.page("product", &params.into_iter().collect())
    };
    let cards = Arc::new([
        card("Noise-cancelling headphones, now 30% off", "$249")?,
        card("A different title, so that every card is new", "$12")?,
    ]);

    let me = std::process::id();
    let mut sides = Vec::new();
    for flags in [&args.a, &args.b] {
        let before = procfs::processes();
        let renderer = Renderer::launch(RendererOptions {
            executable: None,
            pages: args.concurrency,
            queue: args.concurrency,
            timeout: Duration::from_secs(30),
            allowed_hosts: Vec::new(),
            metrics: Default::default(),
            extra_flags: flags.split_whitespace().map(String::from).collect(),
        })
        .await?;
        let browser = procfs::processes()
            .into_iter()
            .find(|(pid, stat)| stat.parent == me && !before.contains_key(pid))
            .map(|(pid, _)| pid)
            .ok_or_else(|| anyhow::anyhow!("no new browser process"))?;
        for _ in 0..5 {
            renderer.screenshot(&cards[0], format).await?;
        }
        sides.push(Side {
            flags: flags.clone(),
            renderer,
            browser,
            usage: BTreeMap::new(),
            wall: Duration::ZERO,
        });
    }

    for round in 1..=args.rounds {
        for side in &mut sides {
            let before = (procfs::tree_usage(side.browser, None), procfs::Stat::of(me));
            let started = Instant::now();
            render_round(&side.renderer, &cards, args.cards, args.concurrency, format).await?;
            side.wall += started.elapsed();
            let after = (procfs::tree_usage(side.browser, None), procfs::Stat::of(me));
            for (pid, spent) in procfs::spent(&before.0, &after.0) {
                side.usage
                    .entry(procfs::chromium_kind(pid))
                    .or_default()
                    .add(spent);
            }
            if let (Some(before), Some(after)) = (before.1, after.1) {
                let spent = after.usage.since(before.usage);
                side.usage.entry(CLIENT.into()).or_default().add(spent);
            }
        }
        eprint!("\rround {round}/{}", args.rounds);
    }
    eprintln!();

    let n = (args.rounds * args.cards) as f64;
    for side in &sides {
        let ms = |ticks: u64| ticks as f64 * procfs::ms_per_tick() / n;
        println!(
            "[{}] {:.1} ms CPU per card, {:.1} ms wall",
            side.flags,
            ms(side.usage.values().map(|u| u.ticks).sum()),
            side.wall.as_secs_f64() * 1000.0 / n
        );
        for (kind, usage) in side.usage.iter().filter(|(_, u)| u.ticks > 0) {
            println!(
                "    {kind}: {:.1} ms, {:.0} page faults",
                ms(usage.ticks),
                usage.minor_faults as f64 / n
            );
        }
        side.renderer.shutdown().await;
    }
    Ok(())
}

/// `count` cards, `concurrency` at a time, alternating between `cards`.
async fn render_round(
    renderer: &Arc<Renderer>,
    cards: &Arc<[CardPage; 2]>,
    count: usize,
    concurrency: usize,
    format: ImageFormat,
) -> anyhow::Result<()> {
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let (renderer, cards) = (renderer.clone(), cards.clone());
            tokio::spawn(async move {
                for i in (worker..count).step_by(concurrency) {
                    renderer.screenshot(&cards[i % 2], format).await?;
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
