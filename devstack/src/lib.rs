//! The whole of imgate on one machine: an S3-protocol server on loopback (in
//! process), the origin and the edge host (child processes, the real binaries).
//! `imgate-origin dev` runs it for people; the end-to-end tests run it for CI.

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
    /// More Spin variables for the edge, e.g. `("mode", "redirect")`.
    pub edge_variables: Vec<(String, String)>,
    /// Also write each server's log to `{dir}/{origin,edge}.log`.
    pub log_dir: Option<PathBuf>,
    /// More settings for the origin, e.g. `("IMGATE_RENDER_PAGES", "2")`.
    pub origin_env: Vec<(String, String)>,
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
            edge_variables: Vec::new(),
            log_dir: None,
            origin_env: Vec::new(),
        }
    }
}

/// A running stack. Dropping it stops the children.
pub struct Stack {
    pub edge_url: String,
    pub origin_url: String,
    pub s3: S3Server,
    pub edge_token: String,
    /// The origin's `/uploads` API key.
    pub api_key: String,
    edge: Child,
    origin: Child,
    edges: EdgeSetup,
}

/// How to start an edge host for this stack.
struct EdgeSetup {
    program: PathBuf,
    manifest: PathBuf,
    /// `SPIN_VARIABLE_*` connecting it to the store and origin.
    env: Vec<(String, String)>,
    start_timeout: Duration,
    log_file: Option<PathBuf>,
}

impl EdgeSetup {
    async fn spawn(
        &self,
        manifest: Option<&Path>,
        port: u16,
        kv_dir: &Path,
        variables: &[(&str, &str)],
    ) -> anyhow::Result<Child> {
        let mut env = self.env.clone();
        env.push(("IMGATE_EDGE_LISTEN".into(), format!("127.0.0.1:{port}")));
        env.push(("IMGATE_EDGE_KV_DIR".into(), kv_dir.display().to_string()));
        for (name, value) in variables {
            let name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            env.retain(|(known, _)| *known != name);
            env.push((name, value.to_string()));
        }
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let manifest = manifest.unwrap_or(&self.manifest).display().to_string();
        Child::spawn(
            "edge",
            &self.program,
            &["--manifest", &manifest],
            &env,
            "imgate-edge-host listening on ",
            self.start_timeout,
            self.log_file.as_deref(),
        )
        .await
    }
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
        let api_key = random_hex(24)?;

        let mut origin_env = vec![
            (
                "IMGATE_ORIGIN_LISTEN",
                format!("127.0.0.1:{}", opts.origin_port),
            ),
            ("IMGATE_EDGE_TOKEN", edge_token.clone()),
            ("IMGATE_API_KEYS", api_key.clone()),
            // Manifests link to the edge, when its address is known up front.
            (
                "IMGATE_PUBLIC_URL",
                if opts.edge_port == 0 {
                    String::new()
                } else {
                    format!("http://127.0.0.1:{}", opts.edge_port)
                },
            ),
            ("IMGATE_TEMPLATES", templates.display().to_string()),
            ("IMGATE_BUCKET", opts.bucket.clone()),
            ("IMGATE_S3_ENDPOINT", s3.url.clone()),
            ("AWS_ACCESS_KEY_ID", credentials.access_key.clone()),
            ("AWS_SECRET_ACCESS_KEY", credentials.secret_key.clone()),
            // Never wander off to an instance-metadata endpoint on a laptop.
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            // Loopback only: the debug routes help work on templates.
            ("IMGATE_DEBUG_ROUTES", "true".into()),
            // The edge's redirect mode sends misses here, signed as the edge checks them.
            ("IMGATE_SIGNING_KEYS", opts.signing_keys.clone()),
            (
                "IMGATE_ALLOW_UNSIGNED",
                opts.signing_keys.is_empty().to_string(),
            ),
        ];
        origin_env.extend(opts.origin_env.iter().map(|(k, v)| (k.as_str(), v.clone())));
        let origin = Child::spawn(
            "origin",
            &opts.bin_dir.join("imgate-origin"),
            &["serve"],
            &origin_env,
            "imgate-origin listening on ",
            opts.start_timeout,
            opts.log_dir
                .as_ref()
                .map(|d| d.join("origin.log"))
                .as_deref(),
        )
        .await?;

        let mut edge_env = vec![
            ("SPIN_VARIABLE_STORE_ENDPOINT".to_string(), s3.url.clone()),
            ("SPIN_VARIABLE_STORE_BUCKET".into(), opts.bucket.clone()),
            (
                "SPIN_VARIABLE_STORE_ACCESS_KEY_ID".into(),
                credentials.access_key.clone(),
            ),
            (
                "SPIN_VARIABLE_STORE_SECRET_ACCESS_KEY".into(),
                credentials.secret_key.clone(),
            ),
            ("SPIN_VARIABLE_ORIGIN_URL".into(), origin.url.clone()),
            ("SPIN_VARIABLE_EDGE_TOKEN".into(), edge_token.clone()),
            (
                "SPIN_VARIABLE_SIGNING_KEYS".into(),
                opts.signing_keys.clone(),
            ),
        ];
        if opts.signing_keys.is_empty() {
            edge_env.push(("SPIN_VARIABLE_ALLOW_UNSIGNED".into(), "true".into()));
        }
        let edges = EdgeSetup {
            program: opts.bin_dir.join("imgate-edge-host"),
            manifest,
            env: edge_env,
            start_timeout: opts.start_timeout,
            log_file: opts.log_dir.as_ref().map(|d| d.join("edge.log")),
        };
        let variables: Vec<(&str, &str)> = opts
            .edge_variables
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        // The known-present index survives restarts, as with Spin's local store.
        let edge = edges
            .spawn(None, opts.edge_port, &kv_dir(&opts.data_dir)?, &variables)
            .await?;

        Ok(Self {
            edge_url: edge.url.clone(),
            origin_url: origin.url.clone(),
            s3,
            edge_token,
            api_key,
            edge,
            origin,
            edges,
        })
    }

    /// The Spin manifest the stack's edge runs (paths absolute).
    pub fn manifest(&self) -> &Path {
        &self.edges.manifest
    }

    /// Starts one more edge host on a free port against the same store and
    /// origin: another `manifest` (default: the stack's), its own key-value
    /// folder, and Spin variables overriding the stack's, e.g. `("mode", "redirect")`.
    pub async fn spawn_edge(
        &self,
        manifest: Option<&Path>,
        kv_dir: &Path,
        variables: &[(&str, &str)],
    ) -> anyhow::Result<Child> {
        self.edges.spawn(manifest, 0, kv_dir, variables).await
    }

    /// The edge host's process id.
    pub fn edge_pid(&self) -> Option<u32> {
        self.edge.pid()
    }

    /// The origin's process id (its Chromium runs below it), for fault trials.
    pub fn origin_pid(&self) -> Option<u32> {
        self.origin.pid()
    }

    /// Stops the edge, then the origin (which closes Chromium), politely.
    pub async fn stop(self) {
        self.edge.stop().await;
        self.origin.stop().await;
    }
}

/// Where the edge keeps its key-value stores: beside the data folder, whose
/// top level the store treats as buckets.
pub fn kv_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = data_dir.parent().unwrap_or(data_dir).join("kv");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(dir)
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
