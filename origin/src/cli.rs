//! The `imgate-origin` command line: every command, flag and setting, each
//! setting also readable from an `IMGATE_*` environment variable (and from a
//! settings file, see [`crate::settings`]).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use imgate_contract::{Keyring, Presets};

use crate::logs::LogFormat;
use crate::photos::{Links, Photos};
use crate::rendition::SourceLimits;
use crate::store::Store;

#[derive(Parser)]
#[command(
    version,
    about = "imgate's origin: renders cards in headless Chromium and stores them in S3."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines as JSON (for a log pipeline) or pretty (for people); auto
    /// picks JSON unless stderr is a terminal. RUST_LOG sets the levels.
    #[arg(long, global = true, env = "IMGATE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Auto)]
    pub log_format: LogFormat,
    /// A TOML file of settings (keys: the variables' names without IMGATE_,
    /// lower case, e.g. `s3_endpoint = "http://127.0.0.1:9000"`). Flags and
    /// environment variables override it. See `imgate-origin settings`.
    #[arg(long, global = true, env = "IMGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the edge's render requests, /healthz and /metrics.
    Serve(ServeArgs),
    /// Run all of imgate on this machine: an S3-protocol store on loopback,
    /// this origin (headless Chromium) and the edge component in its wasmtime
    /// host (needs imgate-edge-host built next to this binary and the edge
    /// built by scripts/build-edge; scripts/dev does both).
    #[cfg(feature = "dev")]
    Dev(crate::dev::DevArgs),
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
    /// Exit 0 if the origin serving on this machine answers /healthz with 200
    /// (the container's HEALTHCHECK; no curl needed in the image).
    Healthcheck(HealthcheckArgs),
    /// Print every setting (environment variable, settings-file key, flag,
    /// default, the commands that read it) as a Markdown table.
    Settings,
}

#[derive(Args)]
pub struct DoctorArgs {
    /// Also check the edge's configuration: this Spin manifest with the
    /// SPIN_VARIABLE_* set here (runs imgate-edge-host --check).
    #[arg(long, value_name = "SPIN_TOML")]
    pub edge_manifest: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub renderer: RendererArgs,
}

#[derive(Args)]
pub struct GcArgs {
    /// Delete cards last written more than this many days ago.
    #[arg(long)]
    pub older_than_days: u64,
    /// Only keys under this prefix (must start with og/).
    #[arg(long, default_value = "og/")]
    pub prefix: String,
    /// Really delete; without it gc only prints what it would delete.
    #[arg(long)]
    pub delete: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args)]
pub struct SignArgs {
    /// A card or rendition path and query, e.g. '/r/thumbnail/users/42/beach.jpg?format=auto'.
    pub url: String,
    /// Public base URL to put in front (e.g. https://img.example.com).
    #[arg(long, env = "IMGATE_PUBLIC_URL", default_value = "")]
    pub base: String,
    /// Keys (`id:secret,…`, the edge's `signing_keys`); the first signs.
    #[arg(long, env = "IMGATE_SIGNING_KEYS", hide_env_values = true)]
    pub signing_keys: String,
}

#[derive(Args)]
pub struct WarmArgs {
    /// File of URLs, one per line (`#` comments allowed); `-` or nothing: stdin.
    #[arg(long, conflicts_with = "sitemap")]
    pub file: Option<PathBuf>,
    /// A sitemap URL: each page's og:image and twitter:image are warmed.
    #[arg(long)]
    pub sitemap: Option<String>,
    /// URLs requested at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Longest one request may take, in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout_secs: u64,
}

#[derive(Args)]
pub struct BackfillArgs {
    /// Only originals whose key (below originals/) starts with this.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Originals processed at once (default: one per CPU core).
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Try again originals recorded as refused (not usable images).
    #[arg(long)]
    pub retry_refused: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub photos: PhotoArgs,
}

#[derive(Args)]
pub struct RendererArgs {
    /// Folder of card templates (one sub-folder each, with template.toml and card.html).
    #[arg(long, env = "IMGATE_TEMPLATES", default_value = "templates")]
    pub templates: PathBuf,
    /// Chromium executable; by default Debian's chromium-headless-shell, else the
    /// first chrome-headless-shell/chromium/google-chrome on PATH. A headless
    /// shell renders a card in a third of full Chromium's time.
    #[arg(long, env = "IMGATE_CHROMIUM")]
    pub chromium: Option<PathBuf>,
    /// Longest one render may take, in seconds, before the page is discarded.
    #[arg(long, env = "IMGATE_RENDER_TIMEOUT_SECS", default_value_t = 10)]
    pub render_timeout_secs: u64,
    /// Pages rendering at once (default: one per CPU core).
    #[arg(long, env = "IMGATE_RENDER_PAGES")]
    pub render_pages: Option<usize>,
    /// Renders that may wait for a page (default: 16 per page); more are
    /// refused at once with 503 and Retry-After rather than left waiting.
    #[arg(long, env = "IMGATE_RENDER_QUEUE")]
    pub render_queue: Option<usize>,
    /// Extra Chromium flags, space-separated (e.g. "force-color-profile=srgb").
    #[arg(long, env = "IMGATE_CHROMIUM_FLAGS", value_delimiter = ' ')]
    pub chromium_flags: Vec<String>,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to serve on. Port 0 picks a free port (printed on start).
    #[arg(long, env = "IMGATE_ORIGIN_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Credential the edge sends in x-imgate-edge-token; requests without it are refused.
    #[arg(long, env = "IMGATE_EDGE_TOKEN", hide_env_values = true)]
    pub edge_token: String,
    /// Accept unsigned URLs sent straight here when no keys are set. For
    /// development only, like the edge's allow_unsigned.
    #[arg(long, env = "IMGATE_ALLOW_UNSIGNED")]
    pub allow_unsigned: bool,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub photos: PhotoArgs,
    /// API keys for /uploads (`Authorization: Bearer <key>`), comma-separated,
    /// each at least 32 characters. Without any, uploads are off.
    #[arg(
        long,
        env = "IMGATE_API_KEYS",
        hide_env_values = true,
        default_value = ""
    )]
    pub api_keys: String,
    /// How long an upload URL stays valid, in seconds.
    #[arg(long, env = "IMGATE_UPLOAD_EXPIRY_SECS", default_value_t = 900)]
    pub upload_expiry_secs: u64,
    /// Longest a client may take to send a request's headers, or the small
    /// body of an /uploads call, in seconds: slow senders (slowloris) are cut
    /// off. Keep it above your load balancer's idle timeout if it reuses
    /// connections.
    #[arg(long, env = "IMGATE_CLIENT_TIMEOUT_SECS", default_value_t = 75, value_parser = clap::value_parser!(u64).range(1..))]
    pub client_timeout_secs: u64,
    /// Longest a data-source record fetch may take, in seconds.
    #[arg(long, env = "IMGATE_DATA_TIMEOUT_SECS", default_value_t = 5)]
    pub data_timeout_secs: u64,
    /// Serve /debug/templates, /debug/render/... and /debug/html/... without a
    /// credential. For development only.
    #[arg(long, env = "IMGATE_DEBUG_ROUTES")]
    pub debug_routes: bool,
    #[command(flatten)]
    pub renderer: RendererArgs,
}

#[derive(Args)]
pub struct StoreArgs {
    /// Bucket the images are stored in.
    #[arg(long, env = "IMGATE_BUCKET", default_value = "imgate")]
    pub bucket: String,
    /// Bucket region.
    #[arg(long, env = "IMGATE_S3_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Longest one store call may take, in seconds (twice that with its
    /// retries): a hung store costs a miss at most two of these before and
    /// after the render, well inside the edge's origin_timeout_secs.
    #[arg(long, env = "IMGATE_STORE_TIMEOUT_SECS", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    pub store_timeout_secs: u64,
    /// S3-compatible endpoint (for example http://127.0.0.1:9000); AWS S3 when unset.
    #[arg(long, env = "IMGATE_S3_ENDPOINT")]
    s3_endpoint: Option<String>,
}

impl StoreArgs {
    pub async fn connect(self) -> Store {
        Store::connect(
            self.bucket,
            self.region,
            self.s3_endpoint,
            None,
            std::time::Duration::from_secs(self.store_timeout_secs),
        )
        .await
    }
}

/// How originals become renditions, and how manifests link to them.
#[derive(Args)]
pub struct PhotoArgs {
    /// Largest original a rendition is made from (and largest upload), in bytes.
    #[arg(long, env = "IMGATE_MAX_SOURCE_BYTES", default_value_t = SourceLimits::default().max_bytes)]
    pub max_source_bytes: usize,
    /// Most pixels (width × height) an original may declare: the image-bomb guard.
    #[arg(long, env = "IMGATE_MAX_SOURCE_PIXELS", default_value_t = SourceLimits::default().max_pixels)]
    pub max_source_pixels: u64,
    /// Rendition presets, `name:WIDTHxHEIGHT:cover|fit:quality,…`; the edge's
    /// `presets` variable must match. Empty: thumbnail, small, medium, large.
    #[arg(long, env = "IMGATE_PRESETS", default_value = "")]
    pub presets: String,
    /// Public base URL of the edge/CDN (e.g. https://img.example.com) for the
    /// rendition URLs in manifests; without it they are paths.
    #[arg(long, env = "IMGATE_PUBLIC_URL")]
    pub public_url: Option<String>,
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
    pub signing_keys: String,
}

impl PhotoArgs {
    /// Configures the photo pipeline.
    /// Every problem found, one message each.
    pub fn apply(&self, photos: &mut Photos) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        match Presets::parse(&self.presets) {
            Ok(presets) => photos.presets = presets,
            Err(e) => problems.push(format!("IMGATE_PRESETS: {e}")),
        }
        photos.limits = SourceLimits {
            max_bytes: self.max_source_bytes,
            max_pixels: self.max_source_pixels,
        };
        let public_url = self.public_url.clone().filter(|url| !url.is_empty());
        if let Some(url) = &public_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            problems.push(format!(
                "IMGATE_PUBLIC_URL: {url:?} is not an http:// or https:// URL"
            ));
        }
        match Keyring::parse(&self.signing_keys) {
            Ok(keyring) => {
                photos.links = Links {
                    public_url,
                    keyring,
                }
            }
            Err(e) => problems.push(format!("IMGATE_SIGNING_KEYS: {e}")),
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

#[derive(Args)]
pub struct RenderArgs {
    /// A card URL path and query, e.g. '/og/product.png?title=Hello'.
    pub url: String,
    /// Where to write the image.
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub renderer: RendererArgs,
}

#[derive(Args)]
pub struct HealthcheckArgs {
    /// The address `serve` listens on; an unspecified IP (0.0.0.0) means loopback.
    #[arg(long, env = "IMGATE_ORIGIN_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Longest the check may take, in seconds.
    #[arg(long, default_value_t = 3)]
    pub timeout_secs: u64,
}
