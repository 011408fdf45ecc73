//! `imgate-origin doctor`: checks what the origin depends on, one line each,
//! and for every failure says how to fix it.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use imgate_contract::{ImageFormat, ObjectKey};

use crate::render::{Renderer, RendererOptions};
use crate::store::{Fetched, PutImage, PutOutcome, Store};
use crate::templates::Templates;

pub enum Verdict {
    Pass(String),
    Fail {
        problem: String,
        fix: String,
    },
    /// Not applicable here (e.g. the store keeps no lifecycle rules).
    Skip(String),
}

pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Pass(detail.into()),
        }
    }

    fn fail(name: &'static str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Fail {
                problem: problem.into(),
                fix: fix.into(),
            },
        }
    }

    fn skip(name: &'static str, why: impl Into<String>) -> Self {
        Self {
            name,
            verdict: Verdict::Skip(why.into()),
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self.verdict, Verdict::Fail { .. })
    }

    pub fn line(&self) -> String {
        match &self.verdict {
            Verdict::Pass(detail) => format!("✓ {}: {detail}", self.name),
            Verdict::Fail { problem, fix } => {
                format!("✗ {}: {problem}\n    fix: {fix}", self.name)
            }
            Verdict::Skip(why) => format!("- {}: skipped, {why}", self.name),
        }
    }
}

/// Launches Chromium and renders the `basic` card (or the first template).
pub async fn chromium(options: RendererOptions, templates: &Templates) -> Check {
    const NAME: &str = "chromium";
    let started = Instant::now();
    let renderer = match Renderer::launch(options).await {
        Ok(renderer) => renderer,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("cannot start: {e:#}"),
                format!(
                    "install it (apt-get install {}) or point IMGATE_CHROMIUM at the executable",
                    crate::runtime_packages().join(" ")
                ),
            );
        }
    };
    let template = templates
        .iter()
        .map(|(name, _)| name.to_string())
        .find(|name| name == "basic")
        .or_else(|| templates.iter().next().map(|(name, _)| name.to_string()));
    let Some(template) = template else {
        renderer.shutdown().await;
        return Check::fail(
            NAME,
            "no template to render",
            "put at least one template folder in IMGATE_TEMPLATES",
        );
    };
    // Every required parameter gets a sample value.
    let params: BTreeMap<String, String> = templates
        .spec(&template)
        .map(|spec| {
            spec.params
                .iter()
                .filter(|(_, p)| p.required)
                .map(|(name, _)| (name.clone(), "imgate doctor".to_string()))
                .collect()
        })
        .unwrap_or_default();
    let result = match templates.page(&template, &params) {
        Ok(page) => renderer
            .screenshot(&page, ImageFormat::Png)
            .await
            .map_err(|e| e.to_string()),
        Err(e) => Err(format!("{e:#}")),
    };
    let version = format!(
        "{} ({})",
        renderer.version().await,
        renderer.capture().describe()
    );
    renderer.shutdown().await;
    match result {
        Ok(png) => Check::pass(
            NAME,
            format!(
                "{version} rendered the {template} card ({} bytes) in {} ms",
                png.len(),
                started.elapsed().as_millis()
            ),
        ),
        Err(e) => Check::fail(
            NAME,
            format!("{version} started but could not render {template}: {e}"),
            "run `imgate-origin render` with RUST_LOG=debug to see Chromium's errors; check IMGATE_CHROMIUM_FLAGS",
        ),
    }
}

/// Writes, reads, lists and deletes a probe object under `doctor/`.
pub async fn store(store: &Store) -> Check {
    const NAME: &str = "store";
    let fix = format!(
        "check IMGATE_S3_ENDPOINT, IMGATE_S3_REGION and the credentials (AWS_* or the task role), that bucket {:?} exists, and that they allow s3:PutObject, GetObject and DeleteObject",
        store.bucket()
    );
    let id = format!("probe-{}", std::process::id());
    let key = ObjectKey::for_probe(&id);
    let body = Bytes::from_static(b"imgate doctor probe");
    let started = Instant::now();
    let steps = async {
        match store
            .put(PutImage {
                key: &key,
                bytes: body.clone(),
                content_type: "text/plain",
                cache_control: imgate_contract::headers::NO_STORE,
                metadata: Vec::new(),
            })
            .await
            .map_err(|e| format!("put {key}: {e}"))?
        {
            PutOutcome::Stored { .. } | PutOutcome::AlreadyThere => {}
        }
        if !store
            .exists(&key)
            .await
            .map_err(|e| format!("head {key}: {e}"))?
        {
            return Err(format!("head {key}: the object just written is missing"));
        }
        match store
            .get(&key, 1024)
            .await
            .map_err(|e| format!("get {key}: {e}"))?
        {
            Fetched::Found { bytes, .. } if bytes == body => {}
            _ => return Err(format!("get {key}: did not read back what was written")),
        }
        store
            .delete(&key)
            .await
            .map_err(|e| format!("delete {key}: {e}"))
    };
    match steps.await {
        Ok(()) => Check::pass(
            NAME,
            format!(
                "bucket {:?}: put, head, get and delete of {key} in {} ms",
                store.bucket(),
                started.elapsed().as_millis()
            ),
        ),
        Err(problem) => Check::fail(NAME, problem, fix),
    }
}

/// Whether old cards expire (a lifecycle rule on `og/`), where the store keeps rules.
pub async fn lifecycle(store: &Store) -> Check {
    const NAME: &str = "lifecycle";
    match store.expiry_rules().await {
        Ok(None) => Check::skip(
            NAME,
            "this store keeps no lifecycle rules; schedule `imgate-origin gc` instead",
        ),
        Ok(Some(rules)) => match rules
            .iter()
            .find(|(prefix, days)| days.is_some() && "og/".starts_with(prefix.as_str()))
        {
            Some((prefix, Some(days))) => Check::pass(
                NAME,
                format!("cards expire after {days} days (rule on {:?})", prefix),
            ),
            _ => Check::fail(
                NAME,
                "no enabled rule expires og/: cards accumulate forever",
                "add an expiration rule for the og/ prefix (the infra/ template has one), or schedule `imgate-origin gc --older-than-days N --delete`",
            ),
        },
        Err(e) => Check::fail(
            NAME,
            format!("cannot read the rules: {e}"),
            "allow s3:GetLifecycleConfiguration, or ignore this line",
        ),
    }
}

/// Whether browsers may upload (PUT) straight to the bucket, where the store keeps CORS rules.
pub async fn cors(store: &Store) -> Check {
    const NAME: &str = "cors";
    match store.cors_methods().await {
        Ok(None) => Check::skip(NAME, "this store keeps no CORS rules"),
        Ok(Some(methods)) if methods.iter().any(|m| m == "PUT") => {
            Check::pass(NAME, format!("allows {}", methods.join(", ")))
        }
        Ok(Some(_)) => Check::fail(
            NAME,
            "no CORS rule allows PUT: browser uploads to presigned URLs will fail",
            "add a CORS rule allowing PUT from your site with the content-type and if-none-match headers (only needed for uploads from browsers)",
        ),
        Err(e) => Check::fail(
            NAME,
            format!("cannot read the rules: {e}"),
            "allow s3:GetBucketCORS, or ignore this line",
        ),
    }
}

/// The edge's configuration as `spin.toml` and the `SPIN_VARIABLE_*` here
/// resolve it, checked by `imgate-edge-host --check` (the edge's own rules;
/// the origin does not link the edge host). `host` is that binary.
pub fn edge(host: &std::path::Path, manifest: &std::path::Path) -> Check {
    const NAME: &str = "edge";
    let out = match std::process::Command::new(host)
        .arg("--check")
        .arg("--manifest")
        .arg(manifest)
        .stdin(std::process::Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            return Check::fail(
                NAME,
                format!("cannot run {}: {e}", host.display()),
                "build or install imgate-edge-host next to imgate-origin (cargo build --workspace)",
            );
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        return Check::pass(
            NAME,
            format!(
                "{} resolves and passes the edge's rules",
                manifest.display()
            ),
        );
    }
    let problems: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("✗ "))
        .collect();
    Check::fail(
        NAME,
        if problems.is_empty() {
            String::from_utf8_lossy(&out.stderr).trim().to_string()
        } else {
            problems.join("; ")
        },
        "set what it names: SPIN_VARIABLE_<NAME> here, `spin deploy --variable name=value` or the platform's variables in production (docs/DEPLOY.md)",
    )
}
