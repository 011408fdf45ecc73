//! Hostile input against the running stack (issue 9): what an attacker can
//! send, and that it reaches nothing it should not.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use imgate_contract::headers;

use super::{CLIENT_TIMEOUT_SECS, Test, World};

pub const TRIALS: &[(&str, Test)] = &[
    (
        "traversal_never_reaches_an_object_outside_its_prefix",
        traversal,
    ),
    (
        "card_parameters_cannot_inject_html_or_script",
        html_injection,
    ),
    (
        "card_data_and_record_ids_cannot_make_the_origin_fetch_elsewhere",
        ssrf,
    ),
    (
        "oversized_heads_and_slow_clients_are_cut_off_while_others_are_served",
        slow_and_oversized,
    ),
];

/// A secret object sits in the bucket beside the prefixes imgate uses, and a
/// file beside the bucket on the S3 server's disk. Traversal URLs, signed so
/// that the signature is not what stops them, through the edge and straight
/// to the origin: each a JSON 4xx, none with the secret in it.
fn traversal(w: &World) -> anyhow::Result<()> {
    let secret = format!("secret-{}", imgate_devstack::random_hex(8)?);
    for key in ["private/secret.jpg", "secret.jpg", "originals.jpg"] {
        super::block(async {
            w.s3.put_object()
                .bucket(&w.stack.s3.bucket)
                .key(key)
                .body(secret.clone().into_bytes().into())
                .send()
                .await?;
            Ok(())
        })?;
    }
    std::fs::write(w.data_dir.join("outside.jpg"), &secret)?;
    let tries = [
        "/r/thumbnail/../private/secret.jpg",
        "/r/thumbnail/..%2Fprivate%2Fsecret.jpg",
        "/r/thumbnail/%2e%2e/%2e%2e/secret.jpg",
        "/r/thumbnail/%252e%252e/secret.jpg",
        "/r/thumbnail/..%5Csecret.jpg",
        "/r/thumbnail/%c0%ae%c0%ae/secret.jpg",
        "/r/small/....//....//secret.jpg",
        "/r/small/private/secret.jpg%00.png",
        "/r/small/../../outside.jpg",
        "/r/small/..%2F..%2F..%2Foutside.jpg",
        "/og/..%2F..%2Fsecret.png",
        "/og/basic/..%2F..%2Fsecret.png",
        "/og/%2e%2e%2fprivate%2fsecret.png",
        "/og/basic.png/../../secret.jpg",
        "/private/secret.jpg",
        "/secret.jpg",
        "/store/private/secret.jpg",
        "/../secret.jpg",
    ];
    for path in tries {
        let signed = signed_as_is(w, path);
        for url in [
            format!("{}{signed}", w.stack.edge_url),
            format!("{}{signed}", w.stack.origin_url),
        ] {
            let (status, _, body) =
                w.get_with(&url, &[(headers::EDGE_TOKEN, &w.stack.edge_token)])?;
            ensure!(status.is_client_error(), "{url}: {status}");
            ensure!(
                !super::edge_modes::error_code(&body).starts_with("not JSON"),
                "{url}: {body:?}"
            );
            ensure!(
                !String::from_utf8_lossy(&body).contains(&secret),
                "{url} answered the secret"
            );
        }
    }
    Ok(())
}

/// Values that try to break out of the text, an attribute or a script in the
/// template: the filled-in HTML (/debug/html) has them escaped, and an image
/// parameter that is not an https URL on the template's hosts is refused.
fn html_injection(w: &World) -> anyhow::Result<()> {
    let attacks = [
        ("<script>alert(1)</script>", "<script>alert"),
        ("\"><img src=x onerror=alert(1)>", "<img src=x"),
        ("'><svg onload=alert(1)>", "<svg onload"),
        ("</title><script>x()</script>", "</title><script>"),
        ("{{ 7*7 }}", "49"),
    ];
    for (value, must_not_appear) in attacks {
        let query = format!("title={}", encode(value));
        let url = format!("{}/debug/html/og/product.png?{query}", w.stack.origin_url);
        let (status, _, body) = w.get(&url)?;
        ensure!(status == 200, "{value}: {status}");
        let html = String::from_utf8(body)?;
        ensure!(
            !html.contains(must_not_appear),
            "{value} came through: {html}"
        );
    }
    for image in [
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http://images.example.com/a.png",
        "https://images.example.com.evil.net/a.png",
        "https://images.example.com@evil.net/a.png",
    ] {
        let path = format!("/og/product.png?title=x&image={}", encode(image));
        let (status, _, body) = w.get(&w.signed(&path))?;
        ensure!(status == 400, "{image}: {status}");
        ensure!(
            super::edge_modes::error_code(&body) == "url-not-allowed",
            "{image}"
        );
    }
    Ok(())
}

/// Card data naming internal addresses, and record ids that try to steer
/// the data-source URL: refused before anything is fetched, and the data
/// source is only ever asked for `/listings/{id}` with a plain id.
fn ssrf(w: &World) -> anyhow::Result<()> {
    for image in [
        "https://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1/admin",
        "https://localhost:8081/metrics",
        "https://[::1]/",
        "https://images.example.com%2F@127.0.0.1/",
        "https://images.example.com\\@127.0.0.1/",
    ] {
        let path = format!("/og/product.png?title=x&image={}", encode(image));
        let (status, _, _) = w.get(&w.signed(&path))?;
        ensure!(status == 400, "{image}: {status}");
    }
    let before = w.data_source_paths.lock().expect("paths").len();
    for id in [
        "..%2F..%2Fadmin",
        "42%3Fdebug%3D1",
        "42%23x",
        "42%2F..%2F..%2Fmetrics",
        "%2F%2Fevil.net",
        "42@evil.net",
        "42.json",
        "%34%32",
    ] {
        let path = format!("/og/listing/{id}.png");
        let (status, _, body) =
            w.get(&format!("{}{}", w.stack.edge_url, signed_as_is(w, &path)))?;
        ensure!(status.is_client_error(), "{id}: {status}");
        ensure!(!super::edge_modes::error_code(&body).starts_with("not JSON"));
    }
    let (status, _, _) = w.get(&w.signed("/og/listing/42.png"))?;
    ensure!(status == 200, "the real record: {status}");
    let asked = w.data_source_paths.lock().expect("paths")[before..].to_vec();
    ensure!(
        asked.iter().all(|p| p == "/listings/42"),
        "the data source was asked for {asked:?}"
    );
    Ok(())
}

/// A 100 KB header is refused with 431 by the edge and the origin. Against
/// the origin (whose client timeout the stack sets to seconds): a client that
/// sends its headers, or an /uploads body, a byte at a time is cut off after
/// the client timeout (the body with a JSON 408); while fifty such clients
/// hang on, everyone else is answered at once.
fn slow_and_oversized(w: &World) -> anyhow::Result<()> {
    let origin = w.stack.origin_url.trim_start_matches("http://").to_string();
    let connect = || -> anyhow::Result<TcpStream> {
        let stream = TcpStream::connect(&origin)?;
        stream.set_read_timeout(Some(Duration::from_secs(CLIENT_TIMEOUT_SECS * 4)))?;
        Ok(stream)
    };
    // Both tiers bound the head.
    for base in [&w.stack.origin_url, &w.stack.edge_url] {
        let mut big = TcpStream::connect(base.trim_start_matches("http://"))?;
        big.set_read_timeout(Some(Duration::from_secs(10)))?;
        big.write_all(
            format!(
                "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
                "a".repeat(100_000)
            )
            .as_bytes(),
        )?;
        let answer = head(&mut big)?;
        ensure!(answer.starts_with("HTTP/1.1 431"), "{base}: {answer}");
    }

    // Slow heads: a header line each, never the blank line that ends them.
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = connect()?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nx-slow: 1\r\n")?;
            Ok(s)
        })
        .collect::<anyhow::Result<_>>()?;
    // A slow body: the headers promise 100 bytes, one arrives.
    let mut body = connect()?;
    let key = w.stack.api_key.clone();
    body.write_all(
        format!(
            "POST /uploads HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\n\
             content-type: application/json\r\ncontent-length: 100\r\n\r\n{{"
        )
        .as_bytes(),
    )?;
    let started = Instant::now();
    for _ in 0..5 {
        let asked = Instant::now();
        let (status, _, _) = w.get(&format!("{}/healthz", w.stack.origin_url))?;
        ensure!(status == 200);
        ensure!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
    }
    let answer = head(&mut body)?;
    let took = started.elapsed();
    ensure!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    ensure!(answer.contains("body-timeout"), "{answer}");
    let limit = Duration::from_secs(CLIENT_TIMEOUT_SECS + 2);
    ensure!(took < limit, "the slow body held on for {took:?}");
    // Every slow head has been closed without an answer by now.
    for s in &mut slow {
        let mut rest = Vec::new();
        let read = s
            .read_to_end(&mut rest)
            .context("a slow head was never closed")?;
        ensure!(read == 0 || String::from_utf8_lossy(&rest).starts_with("HTTP/1.1 408"));
    }
    ensure!(started.elapsed() < limit * 2, "slow heads held on");
    let (status, _, _) = w.get(&format!("{}/healthz", w.stack.origin_url))?;
    ensure!(status == 200);
    Ok(())
}

/// `path` with a valid signature over exactly its bytes, as if the key had
/// leaked into a careless signing helper: parsing must stop it, not the key.
fn signed_as_is(w: &World, path: &str) -> String {
    let (id, signature) = w.keys.sign(path).expect("the stack signs");
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}k={id}&s={signature}")
}

/// What the server sent before closing (or the first read's worth).
fn head(stream: &mut TcpStream) -> anyhow::Result<String> {
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
