//! Operating imgate: the `imgate-origin` commands run against the stack's store
//! and edge, as an operator (or a cron job) would run them.

use std::io::Write;
use std::process::Stdio;

use anyhow::{Context, ensure};

use super::{Test, World, block};

pub const TRIALS: &[(&str, Test)] = &[
    (
        "warm_renders_what_is_missing_and_reports_failures",
        warm_list,
    ),
    ("sign_prints_a_url_the_edge_accepts", sign),
    ("gc_reports_then_deletes_only_old_cards", gc),
    ("doctor_checks_each_dependency_and_names_the_fix", doctor),
    (
        "metrics_count_requests_renders_joins_and_store_calls",
        metrics_move,
    ),
    ("a_request_id_reaches_the_edge_and_origin_logs", request_ids),
    ("serve_reports_every_bad_setting_at_once", bad_settings),
];

/// Runs `imgate-origin {args}` with the stack's store, keys and `stdin`: whether
/// it exited 0, and its stdout.
pub fn run_origin(w: &World, args: &[&str], stdin: &str) -> anyhow::Result<(bool, String)> {
    run_origin_with(w, args, stdin, &[])
}

/// [`run_origin`] with more (or overriding) environment variables.
pub fn run_origin_with(
    w: &World,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<(bool, String)> {
    let program = imgate_devstack::sibling_bin_dir()?.join("imgate-origin");
    let creds = &w.stack.s3.credentials;
    let mut child = std::process::Command::new(&program)
        .args(args)
        .env("IMGATE_BUCKET", &w.stack.s3.bucket)
        .env("IMGATE_S3_ENDPOINT", &w.stack.s3.url)
        .env("AWS_ACCESS_KEY_ID", &creds.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &creds.secret_key)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("IMGATE_SIGNING_KEYS", &w.keys_spec)
        .env("IMGATE_TEMPLATES", &w.templates)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", program.display()))?;
    child
        .stdin
        .take()
        .context("stdin is piped")?
        .write_all(stdin.as_bytes())?;
    let out = child.wait_with_output()?;
    let stdout = String::from_utf8(out.stdout)?;
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    Ok((out.status.success(), stdout))
}

fn warm_list(w: &World) -> anyhow::Result<()> {
    let present = w.signed("/og/basic.png?title=Warm%20already");
    let (status, _, _) = w.get(&present)?;
    ensure!(status == 200);
    let new = [
        w.signed("/og/basic.png?title=Warm%20one"),
        w.signed("/og/product.png?title=Warm%20two&price=%245"),
    ];
    let unsigned = format!("{}/og/basic.png?title=Warm%20forged", w.stack.edge_url);
    let list = format!(
        "# tonight's top cards\n{present}\n{}\n\n{}\n{unsigned}\n{present}\n",
        new[0], new[1]
    );
    let renders = w.renders()?;
    let (ok, report) = run_origin(w, &["warm", "--concurrency", "2"], &list)?;
    ensure!(!ok, "a failed URL makes warm exit non-zero");
    for row in [
        "warm: 4 URLs",
        "| rendered | 2 |",
        "| already present | 1 |",
        "| failed | 1 |",
        "403 missing-signature",
    ] {
        ensure!(report.contains(row), "{row:?} not in:\n{report}");
    }
    ensure!(
        w.renders()? == renders + 2.0,
        "exactly the two new cards were rendered"
    );

    // Everything stored now: a second run renders nothing and succeeds.
    let good = format!("{present}\n{}\n{}\n", new[0], new[1]);
    let (ok, report) = run_origin(w, &["warm"], &good)?;
    ensure!(ok && report.contains("| already present | 3 |"), "{report}");
    Ok(())
}

fn sign(w: &World) -> anyhow::Result<()> {
    let base = format!("--base={}", w.stack.edge_url);
    // Written loosely, with a stale signature: the printed URL is canonical and freshly signed.
    let (ok, out) = run_origin(
        w,
        &[
            "sign",
            &base,
            "/og/basic.png?title=Signed+by+the+CLI&k=old&s=stale",
        ],
        "",
    )?;
    ensure!(ok, "{out}");
    let url = out.trim();
    ensure!(
        url.starts_with(&w.stack.edge_url) && url.contains("title=Signed%20by%20the%20CLI&k="),
        "{url}"
    );
    let (status, _, _) = w.get(url)?;
    ensure!(status == 200, "{url}: {status}");
    let (ok, _) = run_origin(w, &["sign", "/nowhere"], "")?;
    ensure!(!ok, "a path that is not an image URL is refused");
    Ok(())
}

fn gc(w: &World) -> anyhow::Result<()> {
    let day = std::time::Duration::from_secs(86_400);
    let objects = [
        ("og/gc-e2e/old.png", 40),
        ("og/gc-e2e/new.png", 1),
        ("originals/gc-e2e/old.jpg", 40),
    ];
    for (key, age_days) in objects {
        block(async {
            w.s3.put_object()
                .bucket(&w.stack.s3.bucket)
                .key(key)
                .body(vec![7u8; 1000].into())
                .send()
                .await?;
            Ok(())
        })?;
        // The S3 server keeps an object as a file: age it by its mtime.
        let file = w.data_dir.join(&w.stack.s3.bucket).join(key);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .with_context(|| format!("{}", file.display()))?
            .set_modified(std::time::SystemTime::now() - day * age_days)?;
    }
    let exists = |key: &str| {
        block(async {
            Ok(w.s3
                .head_object()
                .bucket(&w.stack.s3.bucket)
                .key(key)
                .send()
                .await
                .is_ok())
        })
    };
    let args = ["gc", "--older-than-days", "30", "--prefix", "og/gc-e2e/"];
    let (ok, report) = run_origin(w, &args, "")?;
    ensure!(
        ok && report.contains("would delete 1 older than 30 days, 1000 bytes")
            && report.contains("dry run"),
        "{report}"
    );
    ensure!(exists("og/gc-e2e/old.png")?, "a dry run deletes nothing");

    let (ok, report) = run_origin(w, &[&args[..], &["--delete"]].concat(), "")?;
    ensure!(
        ok && report.contains("deleted 1 older than 30 days"),
        "{report}"
    );
    ensure!(!exists("og/gc-e2e/old.png")?, "the old card is gone");
    ensure!(exists("og/gc-e2e/new.png")?, "the recent card stays");
    ensure!(
        exists("originals/gc-e2e/old.jpg")?,
        "originals are never collected"
    );

    let (ok, _) = run_origin(
        w,
        &["gc", "--older-than-days", "30", "--prefix", "originals/"],
        "",
    )?;
    ensure!(!ok, "gc refuses prefixes that are not cards");
    Ok(())
}

fn doctor(w: &World) -> anyhow::Result<()> {
    let (ok, out) = run_origin(w, &["doctor"], "")?;
    ensure!(ok, "{out}");
    for line in [
        "✓ templates:",
        "✓ chromium: HeadlessChrome/",
        "(headless shell, begin frames)",
        "rendered the basic card",
        "✓ store: bucket",
    ] {
        ensure!(out.contains(line), "{line:?} not in:\n{out}");
    }
    ensure!(!out.contains('✗'), "{out}");

    // The browser missing: its ✗ says what to install or set; the rest still runs.
    let (ok, out) = run_origin(w, &["doctor", "--chromium", "/nonexistent/chromium"], "")?;
    ensure!(!ok, "a failed check exits non-zero");
    ensure!(
        out.contains("✗ chromium: cannot start")
            && out.contains("fix: install it (apt-get install chromium"),
        "{out}"
    );
    ensure!(
        out.contains("IMGATE_CHROMIUM") && out.contains("✓ store:"),
        "{out}"
    );

    // The store down: its ✗ names the settings to check; the rules are not asked.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let endpoint = format!("http://{closed}");
    let (ok, out) = run_origin_with(w, &["doctor"], "", &[("IMGATE_S3_ENDPOINT", &endpoint)])?;
    ensure!(!ok && out.contains("✗ store: put doctor/probe-"), "{out}");
    ensure!(
        out.contains("fix: check IMGATE_S3_ENDPOINT") && out.contains("✓ chromium:"),
        "{out}"
    );
    ensure!(!out.contains("lifecycle"), "{out}");

    // The edge's configuration: spin.toml with the variables set here.
    let manifest = imgate_devstack::source_root().join("spin.toml");
    let manifest = manifest.display().to_string();
    let edge_check = ["doctor", "--edge-manifest", &manifest];
    let (ok, out) = run_origin(w, &edge_check, "")?;
    ensure!(!ok && out.contains("✗ edge: "), "{out}");
    ensure!(
        out.contains("SPIN_VARIABLE_EDGE_TOKEN") && out.contains("fix: set what it names"),
        "{out}"
    );
    let token = "t".repeat(32);
    let (ok, out) = run_origin_with(
        w,
        &edge_check,
        "",
        &[
            ("SPIN_VARIABLE_EDGE_TOKEN", &token),
            ("SPIN_VARIABLE_STORE_ACCESS_KEY_ID", "AKID"),
            ("SPIN_VARIABLE_STORE_SECRET_ACCESS_KEY", "secret"),
            ("SPIN_VARIABLE_SIGNING_KEYS", &w.keys_spec),
        ],
    )?;
    ensure!(ok && out.contains("✓ edge: "), "{out}");
    ensure!(!out.contains(&token), "a secret was printed:\n{out}");
    Ok(())
}

/// Eight concurrent misses for one new card through the edge: the parsed
/// `/metrics` must show one render, one store write, eight answered card
/// requests, and the seven others either joined the render or found it stored.
fn metrics_move(w: &World) -> anyhow::Result<()> {
    let url = w.signed(&format!(
        "/og/basic.png?title=Counted%20{}",
        imgate_devstack::random_hex(4)?
    ));
    let before = w.scrape()?;
    for ((status, _, _), _) in w.get_all(&vec![url; 8])? {
        ensure!(status == 200, "status {status}");
    }
    let after = w.scrape()?;
    let delta = |metric: &str, labels: &[(&str, &str)]| after.increase(&before, metric, labels);
    let renders = delta(
        "imgate_renders_total",
        &[("template", "basic"), ("outcome", "ok")],
    );
    ensure!(renders == 1.0, "renders moved by {renders}");
    ensure!(delta("imgate_render_seconds", &[]) == 1.0);
    let answered = delta(
        "imgate_http_requests_total",
        &[("route", "card"), ("status", "200")],
    );
    ensure!(
        answered == 8.0,
        "card requests answered 200 moved by {answered}"
    );
    ensure!(delta("imgate_images_total", &[("outcome", "stored")]) == 1.0);
    let shared = delta("imgate_single_flight_joins_total", &[])
        + delta("imgate_images_total", &[("outcome", "served_from_store")]);
    ensure!(shared == 7.0, "joins + store hits moved by {shared}");
    ensure!(delta("imgate_store_seconds", &[("op", "put")]) >= 1.0);
    ensure!(delta("imgate_store_seconds", &[("op", "get")]) >= 1.0);
    // Nothing is left waiting or rendering once every answer is in.
    ensure!(after.sum("imgate_render_queue", &[]) == 0.0);
    ensure!(after.sum("imgate_render_pages_busy", &[]) == 0.0);
    ensure!(after.has("imgate_browser_restarts_total"));
    Ok(())
}

/// A caller's `x-request-id` comes back from the edge and appears in both the
/// edge's and the origin's log; a hostile one is replaced.
fn request_ids(w: &World) -> anyhow::Result<()> {
    let id = format!("e2e-{}", imgate_devstack::random_hex(8)?);
    let url = w.signed(&format!("/og/basic.png?title=Traced%20{id}"));
    let echoed = block(async {
        let response = w.http.get(&url).header("x-request-id", &id).send().await?;
        ensure!(response.status() == 200, "status {}", response.status());
        Ok(response.headers().clone())
    })?;
    ensure!(super::header(&echoed, "x-request-id") == id);
    // Both logs are JSON lines (stderr is not a terminal): the edge's access
    // line says it was a miss; the origin's answer line carries the id in its span.
    let edge: serde_json::Value =
        serde_json::from_str(&wait_for_line(&w.logs.join("edge.log"), &[&id])?)?;
    ensure!(
        edge["request_id"] == id.as_str() && edge["cache"] == "miss",
        "{edge}"
    );
    ensure!(edge["status"] == 200, "{edge}");
    let origin: serde_json::Value = serde_json::from_str(&wait_for_line(
        &w.logs.join("origin.log"),
        &[&id, "answered"],
    )?)?;
    ensure!(origin["span"]["request_id"] == id.as_str(), "{origin}");
    ensure!(origin["span"]["route"] == "card", "{origin}");
    let replaced = block(async {
        let response = w
            .http
            .get(&url)
            .header("x-request-id", "forged\" id=1")
            .send()
            .await?;
        Ok(response.headers().clone())
    })?;
    let fresh = super::header(&replaced, "x-request-id");
    ensure!(
        fresh.len() == 16 && fresh.bytes().all(|b| b.is_ascii_hexdigit()),
        "{fresh:?}"
    );
    Ok(())
}

/// Logs reach their file through a pipe after the answer: wait (up to ten
/// seconds) for the first line of `path` that contains every one of `needles`.
fn wait_for_line(path: &std::path::Path, needles: &[&str]) -> anyhow::Result<String> {
    let what = format!("{needles:?} appears in {}", path.display());
    super::eventually(&what, std::time::Duration::from_secs(10), || {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        Ok(text
            .lines()
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .map(str::to_string))
    })
}

/// Bad settings stop `serve` before Chromium or the store is touched, each
/// named; from the environment and from a settings file alike.
fn bad_settings(w: &World) -> anyhow::Result<()> {
    let program = imgate_devstack::sibling_bin_dir()?.join("imgate-origin");
    let run = |env: &[(&str, &str)], args: &[&str]| -> anyhow::Result<(i32, String)> {
        let out = std::process::Command::new(&program)
            .args(args)
            .env_remove("IMGATE_CONFIG")
            .env("RUST_BACKTRACE", "0")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    };
    let (code, stderr) = run(
        &[
            ("IMGATE_EDGE_TOKEN", "short"),
            ("IMGATE_PRESETS", "small:0x0:cover:80"),
            ("IMGATE_SIGNING_KEYS", "no-colon"),
            ("IMGATE_TEMPLATES", "/nonexistent"),
        ],
        &["serve", "--listen", "127.0.0.1:0"],
    )?;
    ensure!(code == 1, "exit {code}: {stderr}");
    for setting in [
        "IMGATE_EDGE_TOKEN",
        "IMGATE_PRESETS",
        "IMGATE_SIGNING_KEYS",
        "IMGATE_TEMPLATES",
    ] {
        ensure!(stderr.contains(setting), "{setting} not named:\n{stderr}");
    }
    ensure!(
        !stderr.contains("no-colon"),
        "a secret was printed:\n{stderr}"
    );

    let file = w.logs.join("bad.toml");
    std::fs::write(
        &file,
        "render_pages = \"many\"\nbukcet = \"x\"\nedge_token = \"0123456789abcdef-secret\"\n",
    )?;
    let (code, stderr) = run(&[], &["serve", "--config", &file.display().to_string()])?;
    ensure!(code == 2, "exit {code}: {stderr}");
    ensure!(stderr.contains("`render_pages` = \"many\""), "{stderr}");
    ensure!(stderr.contains("unknown setting `bukcet`"), "{stderr}");
    ensure!(!stderr.contains("0123456789abcdef-secret"), "{stderr}");
    Ok(())
}
