//! The origin's whole flow for data-source cards: a JSON source on loopback, the
//! loopback S3 server, real Chromium.

use std::sync::Arc;
use std::time::Duration;

use imgate_devstack::{S3Server, StoreCredentials};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::Origin;
use crate::data::{DataSources, MAX_RECORD_BYTES};
use crate::error::OriginError;
use crate::render::{Renderer, RendererOptions};
use crate::store::Store;
use crate::templates::Templates;

/// A JSON API on loopback: `/listings/{id}` answers per id; counts requests.
async fn data_source() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", socket.local_addr().unwrap());
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = socket.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = conn.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = request.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body) = match path.as_str() {
                    "/listings/42" => (
                        "200 OK",
                        r#"{"name":"Sunny loft","price":{"amount":"$1,200"},"extra":[1,2]}"#
                            .to_string(),
                    ),
                    "/listings/incomplete" => {
                        ("200 OK", r#"{"price":{"amount":"$5"}}"#.to_string())
                    }
                    "/listings/notjson" => ("200 OK", "<html>".to_string()),
                    "/listings/big" => (
                        "200 OK",
                        format!(r#"{{"name":"{}"}}"#, "x".repeat(MAX_RECORD_BYTES)),
                    ),
                    "/listings/slow" => {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        ("200 OK", "{}".to_string())
                    }
                    "/listings/moved" => (
                        "302 Found\r\nLocation: http://169.254.169.254/",
                        String::new(),
                    ),
                    _ => ("404 Not Found", String::new()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(response.as_bytes()).await;
            });
        }
    });
    (base, hits)
}

async fn origin(source: &str, data: &tempfile::TempDir) -> (Origin, S3Server) {
    let folder = data.path().join("templates/listing");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("template.toml"),
        format!(
            "revision = 1\n[data_source]\nurl = \"{source}/listings/{{id}}\"\nfields = {{ price = \"/price/amount\" }}\n\
             [params.name]\nrequired = true\n[params.price]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        folder.join("card.html"),
        "<h1>{{ name }}</h1><p>{{ price }}</p>",
    )
    .unwrap();
    let credentials = StoreCredentials::generate().unwrap();
    let s3 = S3Server::start(&data.path().join("s3"), "cards", 0, credentials.clone())
        .await
        .unwrap();
    (assemble(data, &s3.url, &credentials).await, s3)
}

/// An origin with the templates under `data` and a store at `endpoint`.
async fn assemble(
    data: &tempfile::TempDir,
    endpoint: &str,
    credentials: &StoreCredentials,
) -> Origin {
    assemble_with(data, endpoint, credentials, Duration::from_secs(4)).await
}

async fn assemble_with(
    data: &tempfile::TempDir,
    endpoint: &str,
    credentials: &StoreCredentials,
    store_timeout: Duration,
) -> Origin {
    let templates = Templates::load(&data.path().join("templates")).unwrap();
    let store = Store::connect(
        "cards".into(),
        "us-east-1".into(),
        Some(endpoint.to_string()),
        Some((
            credentials.access_key.clone(),
            credentials.secret_key.clone(),
        )),
        store_timeout,
    )
    .await;
    let renderer = Renderer::launch(RendererOptions {
        executable: None,
        pages: 1,
        queue: 16,
        timeout: Duration::from_secs(20),
        allowed_hosts: Vec::new(),
        extra_flags: Vec::new(),
        metrics: Default::default(),
    })
    .await
    .unwrap();
    let sources = DataSources::new(Duration::from_secs(2)).unwrap();
    Origin::new(
        templates,
        renderer,
        crate::photos::Photos::new(crate::images::Images::new(store, Default::default())),
        sources,
    )
}

/// A folder with one template, `plain`, that shows its `title`.
fn plain_template() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("templates/plain");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("template.toml"),
        "revision = 1\n[params.title]\nrequired = true\n",
    )
    .unwrap();
    std::fs::write(folder.join("card.html"), "<h1>{{ title }}</h1>").unwrap();
    dir
}

/// With the store down, a card is still made and served, marked not kept
/// (briefly cacheable) and counted; once the store is back, the next request
/// stores it.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_outage_serves_cards_uncached_and_stores_them_once_it_is_back() {
    let dir = plain_template();
    // A port nothing listens on yet: the store is down from the start.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let credentials = StoreCredentials::generate().unwrap();
    let origin = assemble(&dir, &format!("http://127.0.0.1:{port}"), &credentials).await;

    let started = std::time::Instant::now();
    let made = origin.card("/og/plain.png", "title=Outage").await.unwrap();
    assert!(!made.kept);
    assert!(made.bytes.starts_with(b"\x89PNG"));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let text = origin.metrics().encode();
    assert!(
        text.contains("imgate_images_total{outcome=\"not_stored\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("imgate_store_errors_total{op=\"put\"} 1\n"),
        "{text}"
    );

    let _s3 = S3Server::start(&dir.path().join("s3"), "cards", port, credentials)
        .await
        .unwrap();
    let stored = origin.card("/og/plain.png", "title=Outage").await.unwrap();
    assert!(stored.kept);
    assert_eq!(stored.key, made.key);
    assert!(
        origin
            .photos
            .images
            .store
            .exists(&stored.key)
            .await
            .unwrap()
    );
    origin.renderer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn data_source_cards_fetch_render_store_and_version() {
    let (source, hits) = data_source().await;
    let dir = tempfile::tempdir().unwrap();
    let (origin, _s3) = origin(&source, &dir).await;

    let first = origin.card("/og/listing/42.png", "v=1").await.unwrap();
    assert!(first.key.as_str().starts_with("og/listing/"));
    assert!(first.bytes.starts_with(b"\x89PNG"));
    let html = origin
        .page(&origin.card_for("/og/listing/42.png", "").unwrap())
        .await
        .unwrap()
        .html;
    assert!(
        html.contains("Sunny loft") && html.contains("$1,200"),
        "{html}"
    );

    // Stored: the same version needs neither the data source nor the renderer.
    let (fetches, renders) = (
        hits.load(std::sync::atomic::Ordering::SeqCst),
        renders_tried(&origin),
    );
    let again = origin.card("/og/listing/42.png", "v=1").await.unwrap();
    assert_eq!(again.bytes, first.bytes);
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), fetches);
    assert_eq!(renders_tried(&origin), renders);

    // A new version is a new image.
    let newer = origin.card("/og/listing/42.png", "v=2").await.unwrap();
    assert_ne!(newer.key, first.key);
    origin.renderer.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn data_source_failures_are_clear_errors() {
    let (source, _) = data_source().await;
    let dir = tempfile::tempdir().unwrap();
    let (origin, _s3) = origin(&source, &dir).await;
    let cases: [(&str, u16, &str); 6] = [
        ("missing", 404, "record-not-found"),
        ("incomplete", 502, "bad-record"),
        ("notjson", 502, "data-source-failed"),
        ("big", 502, "data-source-failed"),
        ("slow", 502, "data-source-failed"),
        ("moved", 502, "data-source-failed"),
    ];
    for (id, status, code) in cases {
        let started = std::time::Instant::now();
        let err: OriginError = origin
            .card(&format!("/og/listing/{id}.png"), "")
            .await
            .unwrap_err();
        assert_eq!(
            (err.status(), err.body().error.code.as_str()),
            (status, code),
            "{id}: {err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{id} took {:?}",
            started.elapsed()
        );
    }
    assert_eq!(renders_tried(&origin), 0);
    origin.renderer.shutdown().await;
}

/// Renders tried (ok or failed), as `/metrics` reports them.
fn renders_tried(origin: &Origin) -> u64 {
    let text = origin.metrics().encode();
    text.lines()
        .find_map(|l| l.strip_prefix("imgate_render_seconds_count "))
        .map_or(0, |n| n.parse().expect("a count"))
}

/// A store that accepts connections and never answers (hung, or a black-holed
/// network): the lookup and the write each give up after their timeout, and
/// the card is served uncached in time, the failures counted.
#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_never_answers_is_given_up_on_in_time() {
    let dir = plain_template();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", silent.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let credentials = StoreCredentials::generate().unwrap();
    let timeout = Duration::from_secs(1);
    let origin = assemble_with(&dir, &endpoint, &credentials, timeout).await;

    let started = std::time::Instant::now();
    let made = origin.card("/og/plain.png", "title=Hung").await.unwrap();
    let took = started.elapsed();
    assert!(!made.kept);
    assert!(made.bytes.starts_with(b"\x89PNG"));
    // Lookup and write, each at most twice the timeout, plus the render.
    assert!(took >= timeout, "gave up after {took:?}: not a timeout");
    assert!(took < timeout * 4 + Duration::from_secs(5), "took {took:?}");
    let text = origin.metrics().encode();
    assert!(
        text.contains("imgate_images_total{outcome=\"not_stored\"} 1\n"),
        "{text}"
    );
    origin.renderer.shutdown().await;
}
