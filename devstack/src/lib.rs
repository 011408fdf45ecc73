//! The whole of imgate on one machine: an S3-protocol server on loopback (in
//! process), the origin and the edge host (child processes, the real binaries).
//! `imgate-dev` runs it for people; the end-to-end tests run it for CI.

mod process;
pub mod s3;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;

pub use crate::process::Child;
pub use crate::s3::{S3Server, StoreCredentials};

/// How to start the stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    /// The repository root: holds spin.toml, templates/ and the built edge.
    pub root: PathBuf,
    /// Where the built `imgate-origin` and `imgate-edge-host` are.
    pub bin_dir: PathBuf,
    /// Where the store keeps its objects (bucket folders inside).
    pub data_dir: PathBuf,
    pub bucket: String,
    /// Ports; 0 picks free ones.
    pub edge_port: u16,
    pub origin_port: u16,
    pub s3_port: u16,
    /// `id:secret,...`; empty means unsigned URLs (development only).
    pub signing_keys: String,
    /// How long each server may take to come up (Chromium, component compile).
    pub start_timeout: Duration,
    /// Card templates, if not `<root>/templates` (both the origin and the edge read them).
    pub templates: Option<PathBuf>,
}

impl StackOptions {
    /// Defaults for a checkout at `root` with binaries in `bin_dir`.
    pub fn new(root: impl Into<PathBuf>, bin_dir: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            data_dir: root.join(".imgate/s3"),
            root,
            bin_dir: bin_dir.into(),
            bucket: "imgate".into(),
            edge_port: 8080,
            origin_port: 8081,
            s3_port: 9000,
            signing_keys: String::new(),
            start_timeout: Duration::from_secs(60),
            templates: None,
        }
    }
}

/// A running stack. Dropping it stops the children.
pub struct Stack {
    pub edge_url: String,
    pub origin_url: String,
    pub s3: S3Server,
    pub edge_token: String,
    edge: Child,
    origin: Child,
}

impl Stack {
    pub async fn start(opts: &StackOptions) -> anyhow::Result<Self> {
        let wasm = opts
            .root
            .join("target/edge/wasm32-wasip2/edge/imgate_edge.wasm");
        anyhow::ensure!(
            wasm.is_file(),
            "the edge component {} is not built: run scripts/build-edge",
            wasm.display()
        );
        let templates = opts
            .templates
            .clone()
            .unwrap_or_else(|| opts.root.join("templates"));
        let manifest = match &opts.templates {
            None => opts.root.join("spin.toml"),
            Some(dir) => manifest_with_templates(&opts.root, dir, &opts.data_dir)?,
        };
        let credentials = StoreCredentials::generate()?;
        let s3 = S3Server::start(
            &opts.data_dir,
            &opts.bucket,
            opts.s3_port,
            credentials.clone(),
        )
        .await?;
        let edge_token = random_hex(24)?;

        let origin = Child::spawn(
            "origin",
            &opts.bin_dir.join("imgate-origin"),
            &["serve"],
            &[
                (
                    "IMGATE_ORIGIN_LISTEN",
                    format!("127.0.0.1:{}", opts.origin_port),
                ),
                ("IMGATE_EDGE_TOKEN", edge_token.clone()),
                ("IMGATE_TEMPLATES", templates.display().to_string()),
                ("IMGATE_BUCKET", opts.bucket.clone()),
                ("IMGATE_S3_ENDPOINT", s3.url.clone()),
                ("AWS_ACCESS_KEY_ID", credentials.access_key.clone()),
                ("AWS_SECRET_ACCESS_KEY", credentials.secret_key.clone()),
                // Never wander off to an instance-metadata endpoint on a laptop.
                ("AWS_EC2_METADATA_DISABLED", "true".into()),
                // Loopback only: the debug routes help work on templates.
                ("IMGATE_DEBUG_ROUTES", "true".into()),
            ],
            "imgate-origin listening on ",
            opts.start_timeout,
        )
        .await?;

        let mut edge_env = vec![
            (
                "IMGATE_EDGE_LISTEN",
                format!("127.0.0.1:{}", opts.edge_port),
            ),
            ("SPIN_VARIABLE_STORE_ENDPOINT", s3.url.clone()),
            ("SPIN_VARIABLE_STORE_BUCKET", opts.bucket.clone()),
            (
                "SPIN_VARIABLE_STORE_ACCESS_KEY_ID",
                credentials.access_key.clone(),
            ),
            (
                "SPIN_VARIABLE_STORE_SECRET_ACCESS_KEY",
                credentials.secret_key.clone(),
            ),
            ("SPIN_VARIABLE_ORIGIN_URL", origin.url.clone()),
            ("SPIN_VARIABLE_EDGE_TOKEN", edge_token.clone()),
            ("SPIN_VARIABLE_SIGNING_KEYS", opts.signing_keys.clone()),
        ];
        if opts.signing_keys.is_empty() {
            edge_env.push(("SPIN_VARIABLE_ALLOW_UNSIGNED", "true".into()));
        }
        let edge = Child::spawn(
            "edge",
            &opts.bin_dir.join("imgate-edge-host"),
            &["--manifest", &manifest.display().to_string()],
            &edge_env,
            "imgate-edge-host listening on ",
            opts.start_timeout,
        )
        .await?;

        Ok(Self {
            edge_url: edge.url.clone(),
            origin_url: origin.url.clone(),
            s3,
            edge_token,
            edge,
            origin,
        })
    }

    /// Stops the edge, then the origin (which closes Chromium), politely.
    pub async fn stop(self) {
        self.edge.stop().await;
        self.origin.stop().await;
    }
}

/// A copy of `<root>/spin.toml` whose component reads `templates` instead of
/// `<root>/templates`, written beside the data folder (whose top level the
/// store treats as buckets); paths made absolute.
fn manifest_with_templates(
    root: &Path,
    templates: &Path,
    data_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let text = std::fs::read_to_string(root.join("spin.toml"))?;
    let mut manifest: toml::Table = text.parse()?;
    let components = manifest
        .get_mut("component")
        .and_then(|c| c.as_table_mut())
        .context("spin.toml has no [component.*]")?;
    for (_, component) in components.iter_mut() {
        let Some(component) = component.as_table_mut() else {
            continue;
        };
        if let Some(toml::Value::String(source)) = component.get_mut("source") {
            *source = root.join(&*source).display().to_string();
        }
        if let Some(toml::Value::Array(files)) = component.get_mut("files") {
            for file in files.iter_mut().filter_map(|f| f.as_table_mut()) {
                if file.get("destination").and_then(|d| d.as_str()) == Some("/templates") {
                    file.insert("source".into(), templates.display().to_string().into());
                }
            }
        }
    }
    let beside = data_dir.parent().unwrap_or(data_dir);
    std::fs::create_dir_all(beside)?;
    let path = beside.join("spin.toml");
    std::fs::write(&path, toml::to_string(&manifest)?)?;
    Ok(path)
}

/// The directory holding the binaries built alongside the running one: the
/// executable's own folder, or its parent for test binaries in `target/*/deps`.
pub fn sibling_bin_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("executable has no folder")?;
    for candidate in [dir, dir.parent().unwrap_or(dir)] {
        if candidate.join("imgate-origin").is_file() {
            return Ok(candidate.to_path_buf());
        }
    }
    anyhow::bail!(
        "imgate-origin is not built next to {}: run cargo build --workspace",
        exe.display()
    )
}

/// Random hex from the OS, for per-run credentials.
pub fn random_hex(bytes: usize) -> anyhow::Result<String> {
    use std::io::Read;
    let mut buf = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("cannot read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// The root of the source checkout this crate was built from.
pub fn source_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}
