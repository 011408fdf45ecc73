//! `imgate-origin`: renders cards in headless Chromium, stores them in S3 and
//! serves them to the edge.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use imgate_contract::{Keyring, Presets, route};

use imgate_origin::data::DataSources;
use imgate_origin::images::Images;
use imgate_origin::logs::{self, LogFormat};
use imgate_origin::metrics::Metrics;
use imgate_origin::origin::Origin;
use imgate_origin::photos::{Links, Photos};
use imgate_origin::render::{Renderer, RendererOptions};
use imgate_origin::rendition::SourceLimits;
use imgate_origin::store::Store;
use imgate_origin::templates::Templates;
use imgate_origin::uploads::Uploads;

#[derive(Parser)]
#[command(
    version,
    about = "imgate's origin: renders cards in headless Chromium and stores them in S3."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Log lines as JSON (for a log pipeline) or pretty (for people); auto
    /// picks JSON unless stderr is a terminal. RUST_LOG sets the levels.
    #[arg(long, global = true, env = "IMGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the edge's render requests, /healthz and /metrics.
    Serve(ServeArgs),
    /// Render one card URL to a file, without storing it (for working on templates).
    Render(RenderArgs),
    /// Make the renditions and manifest of every original already in the
    /// bucket that has none yet (a migration, or after adding a preset).
    /// Resumable: originals with a complete manifest are skipped.
    Backfill(BackfillArgs),
    /// Request public image URLs through the edge so they are stored before
    /// anyone asks: from a list (a file, or stdin) or a sitemap whose pages'
    /// og:image / twitter:image are warmed. Exits 1 if any URL failed.
    Warm(WarmArgs),
    /// Print the signed, canonical URL of a card or rendition path, e.g.
    /// `sign '/og/product.png?title=Hi'` (keys from IMGATE_SIGNING_KEYS).
    Sign(SignArgs),
    /// Delete cards older than N days, for stores without lifecycle rules
    /// (S3 users: prefer the lifecycle rule in infra/). Dry run by default.
    Gc(GcArgs),
    /// Check what the origin needs: the templates, Chromium (renders a card),
    /// the bucket (put/head/get/delete of a probe), its lifecycle and CORS
    /// rules. One ✓/✗ line each, with the fix for each ✗; exits 1 on any ✗.
    Doctor(DoctorArgs),
}

#[derive(Args)]
struct DoctorArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    renderer: RendererArgs,
}

#[derive(Args)]
struct GcArgs {
    /// Delete cards last written more than this many days ago.
    #[arg(long)]
    older_than_days: u64,
    /// Only keys under this prefix (must start with og/).
    #[arg(long, default_value = "og/")]
    prefix: String,
    /// Really delete; without it gc only prints what it would delete.
    #[arg(long)]
    delete: bool,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Args)]
struct SignArgs {
    /// A card or rendition path and query, e.g. '/r/thumbnail/users/42/beach.jpg?format=auto'.
    url: String,
    /// Public base URL to put in front (e.g. https://img.example.com).
    #[arg(long, env = "IMGATE_PUBLIC_URL", default_value = "")]
    base: String,
    /// Keys (`id:secret,…`, the edge's `signing_keys`); the first signs.
    #[arg(long, env = "IMGATE_SIGNING_KEYS", hide_env_values = true)]
    signing_keys: String,
}

#[derive(Args)]
struct WarmArgs {
    /// File of URLs, one per line (`#` comments allowed); `-` or nothing: stdin.
    #[arg(long, conflicts_with = "sitemap")]
    file: Option<PathBuf>,
    /// A sitemap URL: each page's og:image and twitter:image are warmed.
    #[arg(long)]
    sitemap: Option<String>,
    /// URLs requested at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Longest one request may take, in seconds.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

#[derive(Args)]
struct BackfillArgs {
    /// Only originals whose key (below originals/) starts with this.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Originals processed at once (default: one per CPU core).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Try again originals recorded as refused (not usable images).
    #[arg(long)]
    retry_refused: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    photos: PhotoArgs,
}

#[derive(Args)]
struct RendererArgs {
    /// Folder of card templates (one sub-folder each, with template.toml and card.html).
    #[arg(long, env = "IMGATE_TEMPLATES", default_value = "templates")]
    templates: PathBuf,
    /// Chromium executable; by default the first chromium/google-chrome on PATH.
    #[arg(long, env = "IMGATE_CHROMIUM")]
    chromium: Option<PathBuf>,
    /// Longest one render may take, in seconds, before the page is discarded.
    #[arg(long, env = "IMGATE_RENDER_TIMEOUT_SECS", default_value_t = 10)]
    render_timeout_secs: u64,
    /// Pages rendering at once (default: one per CPU core).
    #[arg(long, env = "IMGATE_RENDER_PAGES")]
    render_pages: Option<usize>,
    /// Extra Chromium flags, space-separated (e.g. "force-color-profile=srgb").
    #[arg(long, env = "IMGATE_CHROMIUM_FLAGS", value_delimiter = ' ')]
    chromium_flags: Vec<String>,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to serve on. Port 0 picks a free port (printed on start).
    #[arg(long, env = "IMGATE_ORIGIN_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// Credential the edge sends in x-imgate-edge-token; requests without it are refused.
    #[arg(long, env = "IMGATE_EDGE_TOKEN", hide_env_values = true)]
    edge_token: String,
    /// Accept unsigned URLs sent straight here when no keys are set. For
    /// development only, like the edge's allow_unsigned.
    #[arg(long, env = "IMGATE_ALLOW_UNSIGNED")]
    allow_unsigned: bool,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    photos: PhotoArgs,
    /// API keys for /uploads (`Authorization: Bearer <key>`), comma-separated,
    /// each at least 32 characters. Without any, uploads are off.
    #[arg(
        long,
        env = "IMGATE_API_KEYS",
        hide_env_values = true,
        default_value = ""
    )]
    api_keys: String,
    /// How long an upload URL stays valid, in seconds.
    #[arg(long, env = "IMGATE_UPLOAD_EXPIRY_SECS", default_value_t = 900)]
    upload_expiry_secs: u64,
    /// Longest a data-source record fetch may take, in seconds.
    #[arg(long, env = "IMGATE_DATA_TIMEOUT_SECS", default_value_t = 5)]
    data_timeout_secs: u64,
    /// Serve /debug/templates, /debug/render/... and /debug/html/... without a
    /// credential. For development only.
    #[arg(long, env = "IMGATE_DEBUG_ROUTES")]
    debug_routes: bool,
    #[command(flatten)]
    renderer: RendererArgs,
}

#[derive(Args)]
struct StoreArgs {
    /// Bucket the images are stored in.
    #[arg(long, env = "IMGATE_BUCKET", default_value = "imgate")]
    bucket: String,
    /// Bucket region.
    #[arg(long, env = "IMGATE_S3_REGION", default_value = "us-east-1")]
    region: String,
    /// S3-compatible endpoint (for example http://127.0.0.1:9000); AWS S3 when unset.
    #[arg(long, env = "IMGATE_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
}

impl StoreArgs {
    async fn connect(self) -> Store {
        Store::connect(self.bucket, self.region, self.s3_endpoint, None).await
    }
}

/// How originals become renditions, and how manifests link to them.
#[derive(Args)]
struct PhotoArgs {
    /// Largest original a rendition is made from (and largest upload), in bytes.
    #[arg(long, env = "IMGATE_MAX_SOURCE_BYTES", default_value_t = SourceLimits::default().max_bytes)]
    max_source_bytes: usize,
    /// Most pixels (width × height) an original may declare: the image-bomb guard.
    #[arg(long, env = "IMGATE_MAX_SOURCE_PIXELS", default_value_t = SourceLimits::default().max_pixels)]
    max_source_pixels: u64,
    /// Rendition presets, `name:WIDTHxHEIGHT:cover|fit:quality,…`; the edge's
    /// `presets` variable must match. Empty: thumbnail, small, medium, large.
    #[arg(long, env = "IMGATE_PRESETS", default_value = "")]
    presets: String,
    /// Public base URL of the edge/CDN (e.g. https://img.example.com) for the
    /// rendition URLs in manifests; without it they are paths.
    #[arg(long, env = "IMGATE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Keys (`id:secret,…`, the edge's `signing_keys`): manifests' URLs are
    /// signed with the first, and signed URLs sent straight here (the edge's
    /// redirect mode) are checked against all. Empty: URLs are unsigned and
    /// only the edge (with its token) is served.
    #[arg(
        long,
        env = "IMGATE_SIGNING_KEYS",
        hide_env_values = true,
        default_value = ""
    )]
    signing_keys: String,
}

impl PhotoArgs {
    /// Configures the photo pipeline.
    fn apply(&self, photos: &mut Photos) -> anyhow::Result<()> {
        photos.presets =
            Presets::parse(&self.presets).map_err(|e| anyhow::anyhow!("IMGATE_PRESETS: {e}"))?;
        photos.limits = SourceLimits {
            max_bytes: self.max_source_bytes,
            max_pixels: self.max_source_pixels,
        };
        photos.links = Links {
            public_url: self.public_url.clone().filter(|url| !url.is_empty()),
            keyring: Keyring::parse(&self.signing_keys)
                .map_err(|e| anyhow::anyhow!("IMGATE_SIGNING_KEYS: {e}"))?,
        };
        Ok(())
    }
}

#[derive(Args)]
struct RenderArgs {
    /// A card URL path and query, e.g. '/og/product.png?title=Hello'.
    url: String,
    /// Where to write the image.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    renderer: RendererArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    logs::init(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Render(args) => render(args).await,
        Command::Backfill(args) => backfill(args).await,
        Command::Warm(args) => warm(args).await,
        Command::Sign(args) => sign(args),
        Command::Gc(args) => gc(args).await,
        Command::Doctor(args) => doctor(args).await,
    }
}

async fn doctor(args: DoctorArgs) -> anyhow::Result<()> {
    use imgate_origin::doctor::{self, Check};
    let mut checks: Vec<Check> = Vec::new();
    let mut report = |check: Check| {
        println!("{}", check.line());
        checks.push(check);
    };
    match Templates::load(&args.renderer.templates) {
        Ok(templates) => {
            report(Check {
                name: "templates",
                verdict: doctor::Verdict::Pass(format!(
                    "{} loaded from {}",
                    templates.iter().map(|(name, _)| name).collect::<Vec<_>>().join(", "),
                    args.renderer.templates.display()
                )),
            });
            let options = renderer_options(&args.renderer, templates.allowed_hosts());
            report(doctor::chromium(options, &templates).await);
        }
        Err(e) => report(Check {
            name: "templates",
            verdict: doctor::Verdict::Fail {
                problem: format!("{e:#}"),
                fix: "point IMGATE_TEMPLATES at a folder of template folders (each with template.toml and card.html)".into(),
            },
        }),
    }
    let store = args.store.connect().await;
    let reachable = doctor::store(&store).await;
    let reachable_ok = !reachable.failed();
    report(reachable);
    if reachable_ok {
        report(doctor::lifecycle(&store).await);
        report(doctor::cors(&store).await);
    }
    let failed = checks.iter().filter(|c| c.failed()).count();
    if failed > 0 {
        println!("{failed} of {} checks failed", checks.len());
        std::process::exit(1);
    }
    Ok(())
}

async fn gc(args: GcArgs) -> anyhow::Result<()> {
    use imgate_origin::gc;
    let options = gc::Options {
        prefix: args.prefix,
        older_than: Duration::from_secs(args.older_than_days * 86_400),
        delete: args.delete,
    };
    gc::check_prefix(&options.prefix).map_err(anyhow::Error::msg)?;
    let store = args.store.connect().await;
    let now = imgate_origin::manifest::now() as i64;
    let summary = gc::run(&store, &options, now, |line| eprintln!("{line}"))
        .await
        .map_err(|e| anyhow::anyhow!("gc stopped: {e}"))?;
    print!("{}", summary.report(&options));
    if !summary.failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

fn sign(args: SignArgs) -> anyhow::Result<()> {
    let keyring = Keyring::parse(&args.signing_keys)
        .map_err(|e| anyhow::anyhow!("IMGATE_SIGNING_KEYS: {e}"))?;
    anyhow::ensure!(
        !keyring.is_empty(),
        "IMGATE_SIGNING_KEYS is empty: nothing to sign with"
    );
    let (path, query) = args.url.split_once('?').unwrap_or((&args.url, ""));
    let route = route::parse("GET", path, query)?;
    let signable = route
        .signable()
        .with_context(|| format!("{path} is not a card or rendition URL"))?;
    let signed = keyring.sign_url(signable).expect("the keyring has a key");
    println!("{}{signed}", args.base.trim_end_matches('/'));
    Ok(())
}

async fn warm(args: WarmArgs) -> anyhow::Result<()> {
    use imgate_origin::warm;
    use std::io::{IsTerminal, Read};
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs))
        // The public URL must answer 200 itself: a redirect is a failure to report.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("imgate-warm/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let (urls, mut unreadable) = match (&args.sitemap, &args.file) {
        (Some(sitemap), _) => warm::from_sitemap(&client, sitemap)
            .await
            .with_context(|| format!("cannot read the sitemap {sitemap}"))?,
        (None, Some(path)) if path.as_os_str() != "-" => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            (warm::parse_list(&text), Vec::new())
        }
        (None, _) => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            (warm::parse_list(&text), Vec::new())
        }
    };
    let terminal = std::io::stderr().is_terminal();
    let progress = if terminal {
        let bar = indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} warming [{bar:30}] {pos}/{len} URLs, {per_sec}, eta {eta}",
            )?
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut summary = warm::run(&client, urls, args.concurrency, &progress, !terminal).await;
    summary.failed.append(&mut unreadable);
    print!("{}", summary.report());
    if !summary.failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

async fn backfill(args: BackfillArgs) -> anyhow::Result<()> {
    use imgate_origin::backfill;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let options = backfill::Options {
        prefix: args.prefix,
        concurrency: args.concurrency.unwrap_or(cores),
        retry_refused: args.retry_refused,
    };
    let mut photos = Photos::new(Images {
        store: args.store.connect().await,
        metrics: Default::default(),
    });
    args.photos.apply(&mut photos)?;
    // Drawn on a terminal only; logs and CI output get the summary.
    let progress = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} originals, {per_sec}, eta {eta}",
        )?
        .progress_chars("=> "),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    let summary = backfill::run(&photos, &options, &progress).await?;
    print!("{}", summary.report());
    if !summary.failed.is_empty() {
        // The report said what failed and what to do; a status says it to scripts.
        std::process::exit(1);
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.edge_token.len() >= 16,
        "IMGATE_EDGE_TOKEN must be at least 16 characters"
    );
    let uploads = Uploads::new(
        &args.api_keys,
        args.photos.max_source_bytes as u64,
        Duration::from_secs(args.upload_expiry_secs),
    )
    .map_err(|e| anyhow::anyhow!("IMGATE_API_KEYS: {e}"))?;
    // Configuration errors are reported before Chromium starts.
    let metrics = Arc::new(Metrics::default());
    let mut photos = Photos::new(Images {
        store: args.store.connect().await.counted(metrics.store.clone()),
        metrics: metrics.clone(),
    });
    args.photos.apply(&mut photos)?;
    let keyring = photos.links.keyring.clone();
    if keyring.is_empty() && args.allow_unsigned {
        tracing::warn!(
            "accepting unsigned URLs from anyone (IMGATE_ALLOW_UNSIGNED); never in production"
        );
    }
    let templates = Templates::load(&args.renderer.templates)?;
    let mut options = renderer_options(&args.renderer, templates.allowed_hosts());
    options.metrics = metrics.renderer.clone();
    let renderer = Renderer::launch(options).await?;
    tracing::info!(
        templates = %templates.iter().map(|(name, _)| name).collect::<Vec<_>>().join(","),
        presets = %photos.presets.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(","),
        bucket = photos.images.store.bucket(),
        "origin configured"
    );
    let data = DataSources::new(Duration::from_secs(args.data_timeout_secs))?;
    if args.debug_routes {
        tracing::warn!(
            "debug routes are on: /debug/... renders anything for anyone who can reach this port"
        );
    }
    let server = Arc::new(imgate_origin::server::Server {
        origin: Origin::new(templates, renderer, photos, data),
        edge_token: args.edge_token,
        keyring,
        allow_unsigned: args.allow_unsigned,
        debug_routes: args.debug_routes,
        uploads,
    });

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // The dev stack and the tests read this line to learn the port.
    println!(
        "imgate-origin listening on http://{}",
        listener.local_addr()?
    );
    warp::serve(imgate_origin::server::routes(server.clone()))
        .incoming(listener)
        .graceful(shutdown_signal())
        .run()
        .await;
    server.origin.renderer.shutdown().await;
    tracing::info!("origin stopped");
    Ok(())
}

async fn render(args: RenderArgs) -> anyhow::Result<()> {
    let templates = Templates::load(&args.renderer.templates)?;
    let request = route::parse_card_url(&args.url)?;
    let card = templates.canonicalize(&request)?;
    anyhow::ensure!(
        card.record.is_none(),
        "render takes parameter cards; a data-source card needs the server (try /debug/render/og/...)"
    );
    let page = templates.page(&card.template, &card.params)?;
    let renderer = launch(&args.renderer, templates.allowed_hosts()).await?;
    let result = renderer.screenshot(&page, card.format).await;
    renderer.shutdown().await;
    let bytes = result?;
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!("wrote {} ({} bytes)", args.output.display(), bytes.len());
    Ok(())
}

async fn launch(args: &RendererArgs, allowed_hosts: Vec<String>) -> anyhow::Result<Arc<Renderer>> {
    Renderer::launch(renderer_options(args, allowed_hosts)).await
}

fn renderer_options(args: &RendererArgs, allowed_hosts: Vec<String>) -> RendererOptions {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    RendererOptions {
        executable: args.chromium.clone(),
        pages: args.render_pages.unwrap_or(cores),
        timeout: Duration::from_secs(args.render_timeout_secs),
        allowed_hosts,
        extra_flags: args.chromium_flags.clone(),
        metrics: Default::default(),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
