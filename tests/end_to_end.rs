//! End to end through the real parts: the built edge `.wasm` in its wasmtime
//! host, the origin with headless Chromium, and an S3-protocol server on
//! loopback. One stack is started for all trials, which run one at a time
//! because some of them count the origin's renders.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use imgate_contract::{CardSpec, ErrorBody, Keyring, ObjectKey, route};
use imgate_devstack::{Stack, StackOptions, random_hex, sibling_bin_dir, source_root};
use imgate_tests::{Scrape, png_size};
use libtest_mimic::{Arguments, Failed, Trial};
use tokio::runtime::Runtime;

mod abuse;
mod edge_modes;
mod faults;
mod nextjs;
mod operate;
mod uploads;

struct World {
    stack: Stack,
    /// Where the S3 server keeps objects (one file per key under the bucket's folder).
    data_dir: std::path::PathBuf,
    /// Each server's log: `origin.log`, `edge.log`.
    logs: std::path::PathBuf,
    templates: std::path::PathBuf,
    keys: Keyring,
    /// The `signing_keys` value the stack runs with.
    keys_spec: String,
    http: reqwest::Client,
    no_redirects: reqwest::Client,
    s3: aws_sdk_s3::Client,
    /// Every path the `listing` template's data source was asked for.
    data_source_paths: DataSourcePaths,
}

type DataSourcePaths = Arc<std::sync::Mutex<Vec<String>>>;

type Test = fn(&World) -> anyhow::Result<()>;

/// The origin's client timeout in this stack.
const CLIENT_TIMEOUT_SECS: u64 = 3;

const TRIALS: &[(&str, Test)] = &[
    (
        "first_request_renders_a_1200x630_png_and_stores_it",
        first_request_renders_and_stores,
    ),
    (
        "second_request_is_served_from_the_store",
        second_request_is_served_from_the_store,
    ),
    (
        "equivalent_urls_share_one_image",
        equivalent_urls_share_one_image,
    ),
    ("bad_input_gets_json_4xx_never_5xx", bad_input_gets_json_4xx),
    (
        "origin_refuses_callers_without_the_edge_token",
        origin_refuses_strangers,
    ),
    ("health_endpoints_answer", health_endpoints_answer),
    (
        "data_source_cards_render_from_their_record",
        data_source_cards,
    ),
    ("a_missing_record_is_a_404_through_the_edge", missing_record),
    (
        "a_hundred_malformed_requests_get_json_4xx",
        malformed_requests,
    ),
    ("origin_debug_routes_help_work_on_templates", debug_routes),
];

fn main() {
    let mut args = Arguments::from_args();
    // Trials share the stack and read its counters: run them one at a time.
    args.test_threads = Some(1);
    let runtime = Arc::new(Runtime::new().expect("tokio runtime"));
    let data = tempfile::tempdir().expect("temp dir");
    let world = match runtime.block_on(start(data.path())) {
        Ok(world) => Arc::new(world),
        Err(e) => {
            eprintln!("could not start the stack: {e:#}");
            std::process::exit(1);
        }
    };
    let trials = TRIALS
        .iter()
        .chain(edge_modes::TRIALS)
        .chain(uploads::TRIALS)
        .chain(nextjs::TRIALS)
        .chain(operate::TRIALS)
        .chain(faults::TRIALS)
        .chain(abuse::TRIALS)
        .map(|&(name, test)| {
            let (world, runtime) = (world.clone(), runtime.clone());
            Trial::test(name, move || {
                let _guard = runtime.enter();
                test(&world).map_err(|e| Failed::from(format!("{e:#}")))
            })
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    let world = Arc::into_inner(world).expect("trials are done");
    runtime.block_on(world.stack.stop());
    conclusion.exit();
}

/// The shipped templates plus `listing`, whose data source is a JSON server on loopback.
async fn templates(dir: &std::path::Path) -> anyhow::Result<(std::path::PathBuf, DataSourcePaths)> {
    let templates = dir.join("templates");
    for entry in std::fs::read_dir(source_root().join("templates"))? {
        let from = entry?.path();
        let to = templates.join(from.file_name().context("no name")?);
        std::fs::create_dir_all(&to)?;
        for file in std::fs::read_dir(&from)? {
            let file = file?.path();
            std::fs::copy(&file, to.join(file.file_name().context("no name")?))?;
        }
    }
    let source = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", source.local_addr()?);
    let asked = DataSourcePaths::default();
    let paths = asked.clone();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = source.accept().await {
            let paths = paths.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                if let Some(path) = request.split_whitespace().nth(1) {
                    paths.lock().expect("paths").push(path.to_string());
                }
                let (status, body) = match request.split_whitespace().nth(1) {
                    Some("/listings/42") => (
                        "200 OK",
                        r#"{"name":"Sunny loft in Lisbon","city":"Lisbon"}"#,
                    ),
                    _ => ("404 Not Found", ""),
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(reply.as_bytes()).await;
            });
        }
    });
    // A card that takes half a second of CPU in the page: floods fill the queue.
    let slow = templates.join("slow");
    std::fs::create_dir_all(&slow)?;
    std::fs::write(
        slow.join("template.toml"),
        "revision = 1\njavascript = true\n[params.n]\nrequired = true\nmax_chars = 8\n",
    )?;
    std::fs::write(
        slow.join("card.html"),
        "<body><h1>{{ n }}</h1><script>const end = Date.now() + 500; while (Date.now() < end) {}</script></body>",
    )?;
    // A card whose script never ends: a render is in flight until its timeout.
    let stuck = templates.join("stuck");
    std::fs::create_dir_all(&stuck)?;
    std::fs::write(
        stuck.join("template.toml"),
        "revision = 1\njavascript = true\n[params.n]\nrequired = true\nmax_chars = 8\n",
    )?;
    std::fs::write(
        stuck.join("card.html"),
        "<body><h1>{{ n }}</h1><script>while (true) {}</script></body>",
    )?;
    let listing = templates.join("listing");
    std::fs::create_dir_all(&listing)?;
    std::fs::write(
        listing.join("template.toml"),
        format!(
            "revision = 1\n[data_source]\nurl = \"{base}/listings/{{id}}\"\n[params.name]\nrequired = true\n[params.city]\n"
        ),
    )?;
    std::fs::write(
        listing.join("card.html"),
        "<body style=\"margin:0;font:64px sans-serif\"><h1>{{ name }}</h1><p>{{ city }}</p></body>",
    )?;
    Ok((templates, asked))
}

async fn start(data: &std::path::Path) -> anyhow::Result<World> {
    let keys = format!("e2e:{}", random_hex(24)?);
    let mut opts = StackOptions::new(source_root(), sibling_bin_dir()?);
    opts.data_dir = data.join("s3");
    let (templates, data_source_paths) = templates(data).await?;
    opts.templates = Some(templates);
    opts.edge_port = 0;
    opts.origin_port = 0;
    opts.s3_port = 0;
    opts.signing_keys = keys.clone();
    let logs = data.join("logs");
    std::fs::create_dir_all(&logs)?;
    opts.log_dir = Some(logs.clone());
    // The same capacity on every machine, so the flood trial overflows it
    // whatever the core count: 2 pages + 8 waiting.
    opts.origin_env = vec![
        ("IMGATE_RENDER_PAGES".into(), "2".into()),
        ("IMGATE_RENDER_QUEUE".into(), "8".into()),
        // Slow clients are cut off in seconds, so the abuse trials are quick.
        (
            "IMGATE_CLIENT_TIMEOUT_SECS".into(),
            CLIENT_TIMEOUT_SECS.to_string(),
        ),
    ];
    let stack = Stack::start(&opts).await?;
    let creds = aws_sdk_s3::config::Credentials::new(
        &stack.s3.credentials.access_key,
        &stack.s3.credentials.secret_key,
        None,
        None,
        "e2e",
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&stack.s3.url)
            .force_path_style(true)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .credentials_provider(creds)
            .build(),
    );
    Ok(World {
        data_source_paths,
        logs,
        data_dir: opts.data_dir.clone(),
        templates: opts.templates.clone().expect("set above"),
        keys: Keyring::parse(&keys).map_err(anyhow::Error::msg)?,
        keys_spec: keys,
        http: client().build()?,
        no_redirects: client()
            .redirect(reqwest::redirect::Policy::none())
            .build()?,
        s3,
        stack,
    })
}

/// Status, headers and body of one answer.
type Answer = (reqwest::StatusCode, reqwest::header::HeaderMap, Vec<u8>);

impl World {
    /// A signed public URL for a card path and query.
    fn signed(&self, path_and_query: &str) -> String {
        format!(
            "{}{}",
            self.stack.edge_url,
            self.keys.sign_url(&card(path_and_query)).unwrap()
        )
    }

    fn get(&self, url: &str) -> anyhow::Result<Answer> {
        self.request("GET", url)
    }

    /// GETs every URL at once; each answer, in order, with the time it took.
    fn get_all(&self, urls: &[String]) -> anyhow::Result<Vec<(Answer, Duration)>> {
        block(async {
            let requests: Vec<_> = urls
                .iter()
                .map(|url| {
                    let (http, url) = (self.http.clone(), url.clone());
                    tokio::spawn(async move {
                        let started = std::time::Instant::now();
                        let answer = send(http.get(&url)).await?;
                        Ok::<_, anyhow::Error>((answer, started.elapsed()))
                    })
                })
                .collect();
            let mut answers = Vec::with_capacity(urls.len());
            for r in requests {
                answers.push(r.await??);
            }
            Ok(answers)
        })
    }

    /// Sends a request and reads the whole answer.
    fn request(&self, method: &str, url: &str) -> anyhow::Result<Answer> {
        block(async { send(self.http.request(method.parse()?, url)).await })
    }

    /// The stored object's metadata, or the store's error (NotFound when absent).
    fn head(
        &self,
        key: &ObjectKey,
    ) -> anyhow::Result<aws_sdk_s3::operation::head_object::HeadObjectOutput> {
        block(async {
            Ok(self
                .s3
                .head_object()
                .bucket(&self.stack.s3.bucket)
                .key(key.as_str())
                .send()
                .await?)
        })
    }

    /// The origin's `/metrics`, parsed.
    fn scrape(&self) -> anyhow::Result<Scrape> {
        let (status, _, body) = self.get(&format!("{}/metrics", self.stack.origin_url))?;
        ensure!(status == 200, "/metrics answered {status}");
        Ok(Scrape::parse(&String::from_utf8(body)?)?)
    }

    /// Cards the origin has rendered.
    fn renders(&self) -> anyhow::Result<f64> {
        Ok(self
            .scrape()?
            .sum("imgate_renders_total", &[("outcome", "ok")]))
    }

    /// A template's schema, read from the templates the stack runs with.
    fn spec(&self, template: &str) -> anyhow::Result<CardSpec> {
        let manifest = self.templates.join(template).join("template.toml");
        CardSpec::from_toml(&std::fs::read_to_string(manifest)?).map_err(anyhow::Error::msg)
    }

    /// The key the contract derives for a card, independently of the servers.
    fn key(&self, path_and_query: &str) -> anyhow::Result<ObjectKey> {
        let request = card(path_and_query);
        Ok(ObjectKey::for_card(
            &self.spec(&request.template)?.canonicalize(&request)?,
        ))
    }
}

fn card(path_and_query: &str) -> imgate_contract::CardRequest {
    route::parse_card_url(path_and_query)
        .unwrap_or_else(|e| panic!("{path_and_query} is not a card URL: {e}"))
}

/// A test client that drops idle connections before the origin does (its
/// client timeout also closes idle keep-alive connections): reusing one the
/// server is closing at that moment fails the request.
fn client() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_idle_timeout(Duration::from_secs(CLIENT_TIMEOUT_SECS - 2))
}

/// Sends a request and reads the whole answer.
async fn send(request: reqwest::RequestBuilder) -> anyhow::Result<Answer> {
    let response = request.send().await?;
    let (status, headers) = (response.status(), response.headers().clone());
    Ok((status, headers, response.bytes().await?.to_vec()))
}

/// Polls `probe` every 20 ms until it finds what it looks for, for at most
/// `within`: for state another process changes with no event to wait on.
fn eventually<T>(
    what: &str,
    within: Duration,
    mut probe: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<T> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(found) = probe()? {
            return Ok(found);
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn block<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

const CARD: &str = "/og/product.png?title=Walking%20skeleton&subtitle=Edge%2C%20origin%2C%20Chromium%2C%20S3&price=%2442";

fn first_request_renders_and_stores(w: &World) -> anyhow::Result<()> {
    let before = w.renders()?;
    let (status, headers, body) = w.get(&w.signed(CARD))?;
    ensure!(
        status == 200,
        "status {status}: {}",
        String::from_utf8_lossy(&body)
    );
    ensure!(header(&headers, "content-type") == "image/png");
    ensure!(header(&headers, "cache-control") == imgate_contract::headers::IMMUTABLE);
    ensure!(
        header(&headers, "x-imgate-cache") == "miss",
        "first request should be a miss"
    );
    ensure!(
        png_size(&body) == Some((1200, 630)),
        "PNG size {:?}",
        png_size(&body)
    );
    ensure!(w.renders()? == before + 1.0, "exactly one render");

    let key = w.key(CARD)?;
    let head = w
        .head(&key)
        .with_context(|| format!("object {key} is not in the bucket"))?;
    ensure!(head.cache_control() == Some(imgate_contract::headers::IMMUTABLE));
    ensure!(head.content_type() == Some("image/png"));
    ensure!(head.content_length() == Some(body.len() as i64));
    let meta = head.metadata().context("no metadata")?;
    ensure!(
        meta.get("template").map(String::as_str) == Some("product"),
        "{meta:?}"
    );
    ensure!(
        meta.get("revision") == Some(&w.spec("product")?.revision.to_string()),
        "{meta:?}"
    );
    Ok(())
}

fn second_request_is_served_from_the_store(w: &World) -> anyhow::Result<()> {
    let url = w.signed("/og/product.png?title=Twice&price=%241");
    let (status, made, first) = w.get(&url)?;
    ensure!(status == 200);
    let renders = w.renders()?;
    let (status, headers, second) = w.get(&url)?;
    ensure!(status == 200);
    ensure!(
        header(&headers, "x-imgate-cache") == "hit",
        "second request should be a hit"
    );
    ensure!(header(&headers, "content-type") == "image/png");
    ensure!(header(&headers, "cache-control") == imgate_contract::headers::IMMUTABLE);
    ensure!(
        headers.keys().all(|k| !k.as_str().starts_with("x-amz-")),
        "store headers leak: {headers:?}"
    );
    ensure!(first == second, "same bytes");
    ensure!(
        !header(&made, "etag").is_empty() && header(&made, "etag") == header(&headers, "etag"),
        "one ETag, made or stored: {:?} vs {:?}",
        made.get("etag"),
        headers.get("etag")
    );
    ensure!(w.renders()? == renders, "the renderer was not reached");
    Ok(())
}

fn equivalent_urls_share_one_image(w: &World) -> anyhow::Result<()> {
    let (status, _, first) = w.get(&w.signed("/og/product.png?title=Same+card&price=%245"))?;
    ensure!(status == 200);
    let renders = w.renders()?;
    // Other order, other escaping, the default brand spelled out, an empty param: same image.
    let (status, headers, second) =
        w.get(&w.signed("/og/product.png?subtitle=&brand=imgate&price=$5&title=Same%20card"))?;
    ensure!(status == 200);
    ensure!(header(&headers, "x-imgate-cache") == "hit");
    ensure!(first == second);
    ensure!(w.renders()? == renders);
    Ok(())
}

fn bad_input_gets_json_4xx(w: &World) -> anyhow::Result<()> {
    let edge = &w.stack.edge_url;
    let forged = w
        .signed("/og/product.png?title=Real")
        .replace("title=Real", "title=Forged");
    let long_title = format!("/og/product.png?title={}", "x".repeat(91));
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "GET",
            w.signed("/og/nonexistent.png?title=x"),
            404,
            "unknown-template",
        ),
        (
            "GET",
            w.signed("/og/product.png?price=%241"),
            400,
            "missing-param",
        ),
        ("GET", w.signed(&long_title), 400, "param-too-long"),
        (
            "GET",
            w.signed("/og/product.png?title=x&colour=red"),
            400,
            "unknown-param",
        ),
        ("GET", forged, 403, "bad-signature"),
        (
            "GET",
            format!("{edge}/og/product.png?title=Unsigned"),
            403,
            "missing-signature",
        ),
        (
            "GET",
            format!("{edge}/og/product.gif?title=x"),
            400,
            "unknown-format",
        ),
        (
            "GET",
            format!("{edge}/og/..%2F..%2Fetc%2Fpasswd.png"),
            400,
            "bad-path",
        ),
        (
            "GET",
            format!("{edge}/og/{}.png", "a".repeat(600)),
            414,
            "path-too-long",
        ),
        (
            "POST",
            w.signed("/og/product.png?title=x"),
            405,
            "method-not-allowed",
        ),
        (
            "DELETE",
            w.signed("/og/product.png?title=x"),
            405,
            "method-not-allowed",
        ),
    ];
    let renders = w.renders()?;
    for (method, url, status, code) in cases {
        let (got, headers, body) = w.request(method, &url)?;
        let text = String::from_utf8_lossy(&body);
        ensure!(
            got.as_u16() == status,
            "{method} {url}: want {status}, got {got}: {text}"
        );
        ensure!(
            header(&headers, "content-type") == "application/json",
            "{method} {url}: not JSON"
        );
        ensure!(
            header(&headers, "cache-control") == "no-store",
            "{method} {url}: errors must not be cached"
        );
        let body: ErrorBody =
            serde_json::from_slice(&body).with_context(|| format!("{method} {url}: {text}"))?;
        ensure!(
            body.error.code == code,
            "{method} {url}: want {code}, got {}",
            body.error.code
        );
    }
    ensure!(
        w.renders()? == renders,
        "bad requests never reach the renderer"
    );
    Ok(())
}

fn origin_refuses_strangers(w: &World) -> anyhow::Result<()> {
    let url = format!("{}/og/product.png?title=Sneaky", w.stack.origin_url);
    let (status, _, body) = w.get(&url)?;
    ensure!(status == 401, "status {status}");
    let body: ErrorBody = serde_json::from_slice(&body)?;
    ensure!(body.error.code == "unauthorized");
    let wrong = block(async {
        Ok(w.http
            .get(&url)
            .header(imgate_contract::headers::EDGE_TOKEN, "not-the-token-at-all")
            .send()
            .await?
            .status())
    })?;
    ensure!(wrong == 401);
    Ok(())
}

fn health_endpoints_answer(w: &World) -> anyhow::Result<()> {
    for base in [&w.stack.edge_url, &w.stack.origin_url] {
        let (status, _, body) = w.get(&format!("{base}/healthz"))?;
        ensure!(status == 200, "{base}/healthz: {status}");
        let json: serde_json::Value = serde_json::from_slice(&body)?;
        ensure!(json["status"] == "ok", "{base}/healthz: {json}");
    }
    // The container's HEALTHCHECK: `imgate-origin healthcheck` against the
    // running origin passes, and against a closed port fails.
    let origin = w.stack.origin_url.trim_start_matches("http://");
    let (ok, out) = operate::run_origin(w, &["healthcheck", "--listen", origin], "")?;
    ensure!(ok && out.contains(r#"{"status":"ok"}"#), "{out}");
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let (ok, _) = operate::run_origin(w, &["healthcheck", "--listen", &closed.to_string()], "")?;
    ensure!(!ok, "a closed port is unhealthy");
    Ok(())
}

fn data_source_cards(w: &World) -> anyhow::Result<()> {
    let url = w.signed("/og/listing/42.png?v=2026-11-21T10%3A00");
    let (status, headers, body) = w.get(&url)?;
    ensure!(
        status == 200,
        "status {status}: {}",
        String::from_utf8_lossy(&body)
    );
    ensure!(header(&headers, "x-imgate-cache") == "miss");
    ensure!(png_size(&body) == Some((1200, 630)));
    let (status, headers, again) = w.get(&url)?;
    ensure!(status == 200 && header(&headers, "x-imgate-cache") == "hit" && again == body);
    // A record card takes no parameters but v.
    let (status, _, body) = w.get(&w.signed("/og/listing/42.png?name=Other"))?;
    ensure!(status == 400, "status {status}");
    let body: ErrorBody = serde_json::from_slice(&body)?;
    ensure!(body.error.code == "unknown-param");
    Ok(())
}

fn missing_record(w: &World) -> anyhow::Result<()> {
    let (status, headers, body) = w.get(&w.signed("/og/listing/nope.png"))?;
    ensure!(status == 404, "status {status}");
    ensure!(header(&headers, "cache-control") == "no-store");
    let body: ErrorBody = serde_json::from_slice(&body)?;
    ensure!(body.error.code == "record-not-found", "{}", body.error.code);
    Ok(())
}

/// Malformed requests of every kind the edge sees in the wild. Unsigned ones
/// are refused before or at the signature check; signed ones reach the
/// template checks. Each must get a 4xx with a JSON error, never a 5xx.
fn malformed_requests(w: &World) -> anyhow::Result<()> {
    let long = "a".repeat(600);
    let mut unsigned: Vec<(&str, String)> = Vec::new();
    let paths = [
        "/og/../secret.png",
        "/og/%2e%2e/secret.png",
        "/og/..%2Fsecret.png",
        "/og/%2E%2E%2Fsecret.png",
        "//og/product.png",
        "/og//product.png",
        "/og/./product.png",
        "/og/product.png/..",
        "/og/product.png%00.jpg",
        "/og/product%00.png",
        "/og/pro%20duct.png",
        "/og/PRODUCT.png",
        "/og/product.PNG",
        "/og/product.gif",
        "/og/product",
        "/og/product.",
        "/og/.png",
        "/og/",
        "/og",
        "/og/product.png.png",
        "/og/-product.png",
        "/og/product/a.b.png",
        "/og/product/%2F.png",
        "/og/product/..%2F..%2Fx.png",
        "/og/product/a/b.png",
        "/og/%C3%A9.png",
        "/og/%FF.png",
        "/r/thumbnail/../../secret",
        "/r/thumbnail/%2e%2e/%2e%2e/secret",
        "/r/",
        "/r",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/og/%252e%252e/x.png",
        "/og/product.png;jsessionid=1",
        "/og/product.png%3Ftitle=x",
        "/healthz/../og/x.png",
        "/og/product/42.gif",
        "/og/product/.png",
        "/og/product/%20.png",
        "/og/%u002e%u002e/x.png",
        "/og/product.png%2F..",
        "/.env",
        "/admin",
        "/og%2Fproduct.png",
        "/og/produit-\u{e9}.png",
        "/r/thumbnail/a/../../secret.jpg",
        "/r/thumbnail/.hidden",
        "/r/thumbnail/a/.ssh/id_rsa",
        "/r/thumbnail//x.jpg",
        "/r/thumbnail/x.jpg/",
        "/r/thumbnail/%2e%2e%2fsecret",
        "/r/thumbnail/x%00.jpg",
        "/r/thumbnail/photo-\u{e9}.jpg",
        "/r/thumbnail/a\\b.jpg",
        "/r/THUMBNAIL/x.jpg",
        "/r/huge/x.jpg",
        "/r/thumbnail/x.jpg?format=gif",
        "/r/thumbnail/x.jpg?format=auto&format=webp",
        "/r/thumbnail/x.jpg?width=10",
        "/r/thumbnail/x.jpg?format=%FF",
        "/r/thumbnail/x.jpg?k=e2e&s=AAAA",
        "/r/thumbnail/x.jpg",
    ];
    for path in paths {
        unsigned.push(("GET", path.to_string()));
    }
    unsigned.push(("GET", format!("/og/{long}.png")));
    unsigned.push(("GET", format!("/r/small/{}x.jpg", "a/".repeat(150))));
    unsigned.push(("GET", format!("/og/product/{}.png", "1".repeat(200))));
    unsigned.push(("GET", format!("/og/listing/42.png?v={}", "0".repeat(70))));
    let queries = [
        "title=%",
        "title=%G1",
        "title=%FF",
        "title=%C3",
        "title=%E2%82",
        "tit%00le=x",
        "ti tle=x",
        "=x",
        "title=a&title=b",
        "s=a&s=b",
        "k=a&k=b",
        "title=x&k=unknown&s=AAAA",
        "title=x&k=&s=",
        "title=x&k=..%2F..&s=AAAA",
        "title=x&s=!!!&k=e2e",
        "title=x&k=e2e",
        "title=x&s=AAAA",
        "title=%F0%9F%98",
        "%=x",
        "title=x&%FF=y",
        "title=x&&&&",
        "&",
        "title",
    ];
    for q in queries {
        unsigned.push(("GET", format!("/og/product.png?{q}")));
    }
    unsigned.push(("GET", format!("/og/product.png?title={}", "x".repeat(5000))));
    unsigned.push((
        "GET",
        format!(
            "/og/product.png?{}",
            (0..40)
                .map(|i| format!("p{i}=1"))
                .collect::<Vec<_>>()
                .join("&")
        ),
    ));
    unsigned.push((
        "GET",
        format!("/og/product.png?title=x&k=e2e&s={}", "A".repeat(3000)),
    ));
    unsigned.push((
        "GET",
        format!("/og/product.png?title=x&k={}&s=AAAA", "k".repeat(300)),
    ));
    unsigned.push((
        "GET",
        format!("/og/product.png?v={}&title=x", "9".repeat(100)),
    ));
    for method in [
        "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT",
    ] {
        unsigned.push((method, "/og/product.png?title=x".to_string()));
    }
    // Signed, so they pass the signature check and meet the template's rules.
    let signed = [
        "/og/product.png",
        "/og/product.png?price=1",
        "/og/product.png?title=x&colour=red",
        "/og/product.png?title=x&image=http%3A%2F%2F127.0.0.1%2F",
        "/og/product.png?title=x&image=https%3A%2F%2F169.254.169.254%2F",
        "/og/product.png?title=x&image=javascript%3Aalert(1)",
        "/og/product.png?title=x&image=https%3A%2F%2Fimages.example.com.evil.net%2F",
        "/og/product.png?title=x&image=https%3A%2F%2Fuser%40images.example.com%2F",
        "/og/basic.png?text=no-title",
        "/og/article.png?author=x",
        "/og/nonexistent.png?title=x",
        "/og/product/42.png",
        "/og/basic/1.jpg",
        "/og/listing/42.png?v=1&extra=1",
        "/og/listing/42.png?name=x",
        "/og/product.webp?title=x&subtitle=y&subtitle2=z",
    ];
    let mut cases: Vec<(&str, String)> = unsigned
        .into_iter()
        .map(|(m, p)| (m, format!("{}{p}", w.stack.edge_url)))
        .collect();
    for path in signed {
        cases.push(("GET", w.signed(path)));
    }
    cases.push((
        "GET",
        w.signed(&format!("/og/product.png?title={}", "x".repeat(91))),
    ));
    for signed_over_limit in [
        format!("/og/product.png?title=x&price={}", "9".repeat(25)),
        format!("/og/product.jpg?title=x&brand={}", "b".repeat(41)),
        format!("/og/article.webp?title=x&site={}", "s".repeat(61)),
        format!("/og/basic.png?title={}", "é".repeat(101)),
    ] {
        cases.push(("GET", w.signed(&signed_over_limit)));
    }
    ensure!(cases.len() >= 100, "only {} cases", cases.len());

    let renders = w.renders()?;
    let mut failures = Vec::new();
    for (method, url) in &cases {
        let (status, headers, body) = w.request(method, url)?;
        let json: Option<ErrorBody> = serde_json::from_slice(&body).ok();
        let ok = status.is_client_error()
            && header(&headers, "cache-control") == "no-store"
            && json
                .as_ref()
                .is_some_and(|b| !b.error.code.is_empty() && !b.error.message.is_empty());
        if !ok {
            failures.push(format!(
                "{method} {url} -> {status} {}",
                String::from_utf8_lossy(&body)
            ));
        }
    }
    ensure!(
        failures.is_empty(),
        "{} of {} malformed requests were not a JSON 4xx:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    ensure!(
        w.renders()? == renders,
        "a malformed request reached the renderer"
    );
    Ok(())
}

fn debug_routes(w: &World) -> anyhow::Result<()> {
    let origin = &w.stack.origin_url;
    let (status, _, body) = w.get(&format!("{origin}/debug/templates"))?;
    ensure!(status == 200);
    let list: serde_json::Value = serde_json::from_slice(&body)?;
    let product = list["templates"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "product"))
        .context("product is not listed")?;
    ensure!(product["params"].as_array().is_some_and(|p| {
        p.iter()
            .any(|p| p["name"] == "title" && p["required"] == true)
    }));

    // The sample URL renders, without storing anything and with timings.
    let renders = w.renders()?;
    let sample = product["sample"].as_str().context("no sample URL")?;
    let (status, headers, body) = w.get(&format!("{origin}{sample}"))?;
    ensure!(status == 200, "{sample}: {status}");
    ensure!(png_size(&body) == Some((1200, 630)));
    ensure!(
        header(&headers, "server-timing").contains("render;dur="),
        "{headers:?}"
    );
    ensure!(header(&headers, "cache-control") == "no-store");
    ensure!(w.renders()? == renders + 1.0);
    let key = w.key(sample.trim_start_matches("/debug/render"))?;
    ensure!(w.head(&key).is_err(), "a debug render was stored");

    // The filled-in HTML, escaped, under a policy that runs and fetches nothing.
    let (status, headers, body) = w.get(&format!(
        "{origin}/debug/html/og/basic.png?title=%3Cb%3Ehi%3C%2Fb%3E"
    ))?;
    ensure!(status == 200);
    ensure!(header(&headers, "content-security-policy").starts_with("default-src 'none'"));
    let html = String::from_utf8(body)?;
    ensure!(
        html.contains("&lt;b&gt;hi") && !html.contains("<b>hi"),
        "{html}"
    );

    // Bad input is still a JSON 4xx.
    let (status, _, body) = w.get(&format!("{origin}/debug/render/og/product.png"))?;
    ensure!(status == 400);
    let body: ErrorBody = serde_json::from_slice(&body)?;
    ensure!(body.error.code == "missing-param");
    Ok(())
}
