//! `imgate-origin dev`: imgate on this machine in one command — an S3-protocol
//! store on loopback, this origin and the edge component in its wasmtime host.

use std::path::PathBuf;

use clap::Args;
use imgate_contract::{Keyring, Signable, route};
use imgate_devstack::{Stack, StackOptions, sibling_bin_dir};

const SAMPLE_URL: &str = "/og/product.png?title=Hello%20from%20imgate&subtitle=Cards%20rendered%20once%2C%20served%20forever&price=%2419";

/// Run imgate locally: an S3-protocol store on loopback, the origin (with
/// headless Chromium) and the edge component in its wasmtime host.
#[derive(Args)]
pub struct DevArgs {
    /// The imgate checkout (spin.toml, templates/, target/edge/).
    #[arg(long, default_value = ".")]
    pub root: PathBuf,
    /// Public port: the edge, where image URLs point.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// The origin's port (internal; /healthz and /metrics are handy).
    #[arg(long, default_value_t = 8081)]
    pub origin_port: u16,
    /// The local store's port.
    #[arg(long, default_value_t = 9000)]
    pub s3_port: u16,
    /// Where the store keeps images (default: <root>/.imgate/s3).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Require signed URLs with these keys (id:secret,...). Unset: unsigned URLs
    /// are accepted, which is for development only.
    #[arg(
        long,
        env = "IMGATE_SIGNING_KEYS",
        hide_env_values = true,
        default_value = ""
    )]
    pub signing_keys: String,
}

pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    let root = std::fs::canonicalize(&args.root)?;
    let mut opts = StackOptions::new(&root, sibling_bin_dir()?);
    opts.edge_port = args.port;
    opts.origin_port = args.origin_port;
    opts.s3_port = args.s3_port;
    opts.signing_keys = args.signing_keys;
    if let Some(dir) = args.data_dir {
        opts.data_dir = dir;
    }
    let keyring = Keyring::parse(&opts.signing_keys).map_err(anyhow::Error::msg)?;
    let stack = Stack::start(&opts).await?;
    let card = route::parse_card_url(SAMPLE_URL).expect("the sample URL is valid");
    let sample = format!(
        "{}{}",
        stack.edge_url,
        keyring
            .sign_url(&card)
            .unwrap_or_else(|| card.signed_string())
    );
    println!(
        "\nimgate is running:\n\
         \x20 edge    {edge}   public image URLs (what a CDN would front)\n\
         \x20 origin  {origin}   internal: /healthz, /metrics, /uploads (API key below)\n\
         \x20 store   {s3}   bucket {bucket:?}, files in {data}\n\n\
         {signing}\n\n\
         Try it:\n\x20 {sample}\n\n\
         Upload a photo (see README, Uploads):\n\x20 curl -X POST {origin}/uploads -H 'authorization: Bearer {api_key}' \\\n\
         \x20      -d '{{\"content_type\": \"image/jpeg\", \"bytes\": 123456}}'\n\n\
         Ctrl-C stops everything.",
        api_key = stack.api_key,
        edge = stack.edge_url,
        origin = stack.origin_url,
        s3 = stack.s3.url,
        bucket = stack.s3.bucket,
        data = opts.data_dir.display(),
        signing = if opts.signing_keys.is_empty() {
            "URLs need no signature (development mode; production requires signing keys)."
        } else {
            "Signed URLs required (k and s parameters)."
        },
    );
    tokio::signal::ctrl_c().await?;
    println!("\nstopping…");
    stack.stop().await;
    Ok(())
}
