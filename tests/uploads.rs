//! Presigned uploads: the origin hands out a PUT URL, the store enforces what
//! it signed, completing makes every preset, and the manifest's URLs are served
//! by the edge; the backfill does the same for originals already stored.

use anyhow::{Context, ensure};
use imgate_contract::ObjectKey;
use serde_json::{Value, json};

use super::edge_modes::{error_code, photo_jpeg};
use super::{Answer, Test, World, block, header};

pub const TRIALS: &[(&str, Test)] = &[
    (
        "an_upload_round_trip_makes_every_preset_and_a_manifest",
        round_trip,
    ),
    (
        "the_store_refuses_an_upload_that_breaks_its_presigned_terms",
        store_enforces_terms,
    ),
    (
        "bad_upload_requests_get_json_4xx_and_nothing_is_made",
        bad_requests,
    ),
    (
        "backfill_processes_existing_originals_and_resumes",
        backfill,
    ),
];

impl World {
    /// Calls the origin's uploads API with the stack's API key.
    fn uploads(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Answer> {
        self.uploads_as(method, path, body, Some(&self.stack.api_key))
    }

    fn uploads_as(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        key: Option<&str>,
    ) -> anyhow::Result<Answer> {
        block(async {
            let mut request = self
                .http
                .request(method.parse()?, format!("{}{path}", self.stack.origin_url));
            if let Some(key) = key {
                request = request.bearer_auth(key);
            }
            if let Some(body) = body {
                request = request.json(&body);
            }
            super::send(request).await
        })
    }

    /// Asks for an upload URL; the ticket.
    fn ticket(&self, content_type: &str, bytes: usize) -> anyhow::Result<Value> {
        let (status, _, body) = self.uploads(
            "POST",
            "/uploads",
            Some(json!({"content_type": content_type, "bytes": bytes})),
        )?;
        ensure!(status == 201, "status {status}: {}", error_code(&body));
        Ok(serde_json::from_slice(&body)?)
    }

    /// PUTs `body` to a ticket's URL with its headers, `tamper` applied; the store's status.
    fn upload(
        &self,
        ticket: &Value,
        body: Vec<u8>,
        tamper: &[(&str, &str)],
    ) -> anyhow::Result<u16> {
        let url = ticket["upload"]["url"].as_str().context("upload.url")?;
        let headers = ticket["upload"]["headers"]
            .as_object()
            .context("upload.headers")?;
        block(async {
            let mut request = self.http.put(url).body(body);
            for (name, value) in headers {
                // reqwest sets content-length from the body, as browsers do.
                if name == "content-length" {
                    continue;
                }
                let value = tamper
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or(value.as_str().unwrap_or(""), |(_, v)| *v);
                request = request.header(name.as_str(), value);
            }
            Ok(request.send().await?.status().as_u16())
        })
    }
}

fn round_trip(w: &World) -> anyhow::Result<()> {
    let photo = photo_jpeg();
    let ticket = w.ticket("image/jpeg", photo.len())?;
    let id = ticket["id"].as_str().context("id")?;
    let source = ticket["source"].as_str().context("source")?;
    ensure!(source == format!("uploads/{id}") && id.ends_with(".jpg"));
    let signed = ticket["upload"]["url"].as_str().unwrap_or("");
    ensure!(
        signed.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost%3Bif-none-match"),
        "the upload URL must sign the length, type and if-none-match: {signed}"
    );

    // Pending until completed; completing before the PUT says what to do.
    let (status, _, body) = w.uploads("GET", &format!("/uploads/{id}"), None)?;
    ensure!(status == 200);
    ensure!(serde_json::from_slice::<Value>(&body)?["status"] == "pending");
    let (status, _, body) = w.uploads("POST", &format!("/uploads/{id}/complete"), None)?;
    ensure!(
        status == 409 && error_code(&body) == "upload-not-received",
        "{status} {}",
        error_code(&body)
    );

    ensure!(
        w.upload(&ticket, photo.clone(), &[])? == 200,
        "the PUT is accepted"
    );
    // The URL is single-use: If-None-Match: * is signed, so an original is never replaced.
    let again = w.upload(&ticket, photo.clone(), &[])?;
    ensure!(again == 412, "a second PUT answered {again}");

    let (status, _, body) = w.uploads("POST", &format!("/uploads/{id}/complete"), None)?;
    ensure!(status == 200, "status {status}: {}", error_code(&body));
    let manifest: Value = serde_json::from_slice(&body)?;
    ensure!(manifest["status"] == "complete", "{manifest:#}");
    ensure!(manifest["original"]["width"] == 1200 && manifest["original"]["height"] == 900);
    let renditions = manifest["renditions"].as_array().context("renditions")?;
    // Four presets, each as the source's JPEG and as WebP.
    ensure!(renditions.len() == 8, "{manifest:#}");
    let expected = [
        ("thumbnail", 400, 400),
        ("small", 800, 600),
        ("medium", 1200, 900),
        ("large", 1200, 900),
    ];
    for r in renditions {
        let preset = r["preset"].as_str().unwrap_or("");
        let &(_, width, height) = expected
            .iter()
            .find(|(name, ..)| *name == preset)
            .context("a known preset")?;
        ensure!(r["width"] == width && r["height"] == height, "{r}");
        // Each one is stored, and its URL — signed by the origin — is served by the edge.
        let url = format!("{}{}", w.stack.edge_url, r["url"].as_str().unwrap_or(""));
        let (status, headers, image) = w.get(&url)?;
        ensure!(status == 200, "{url}: {status} {}", error_code(&image));
        ensure!(
            header(&headers, "x-imgate-cache") == "hit",
            "{url} was made eagerly, so the edge finds it stored"
        );
        ensure!(Some(image.len() as u64) == r["bytes"].as_u64(), "{r}");
        let decoded = image::load_from_memory(&image)?;
        ensure!((decoded.width(), decoded.height()) == (width, height));
    }
    // The auto URLs pick by Accept from the same stored objects.
    let auto = manifest["auto_urls"]["thumbnail"]
        .as_str()
        .context("auto")?;
    let (status, headers, _) = w.get_with(
        &format!("{}{auto}", w.stack.edge_url),
        &[("accept", "image/webp")],
    )?;
    ensure!(status == 200 && header(&headers, "content-type") == "image/webp");
    ensure!(header(&headers, "x-imgate-cache") == "hit");

    // The manifest lives in the bucket, and completing again changes nothing.
    ensure!(w.head(&ObjectKey::for_manifest(source)).is_ok());
    let (status, _, body) = w.uploads("POST", &format!("/uploads/{id}/complete"), None)?;
    ensure!(status == 200 && serde_json::from_slice::<Value>(&body)? == manifest);
    Ok(())
}

fn store_enforces_terms(w: &World) -> anyhow::Result<()> {
    let photo = photo_jpeg();
    let ticket = w.ticket("image/jpeg", photo.len())?;
    let source = ticket["source"].as_str().context("source")?.to_string();
    let cases = [
        (
            "another content type",
            photo.clone(),
            vec![("content-type", "text/html")],
        ),
        (
            "a bigger file",
            [photo.clone(), vec![0; 1024]].concat(),
            vec![],
        ),
        ("a smaller file", photo[..photo.len() / 2].to_vec(), vec![]),
        // Refused from its headers while megabytes are still on the way: the
        // answer must still be the 403, not a reset connection.
        ("a far bigger file", vec![0; 16 << 20], vec![]),
    ];
    for (what, body, tamper) in cases {
        let status = w.upload(&ticket, body, &tamper)?;
        ensure!(status == 403, "{what}: the store answered {status}");
        ensure!(
            w.head(&ObjectKey::for_original(&source)).is_err(),
            "{what}: nothing is stored"
        );
    }
    // The same URL with the declared terms still works.
    ensure!(w.upload(&ticket, photo, &[])? == 200);
    Ok(())
}

fn bad_requests(w: &World) -> anyhow::Result<()> {
    let jpeg = json!({"content_type": "image/jpeg", "bytes": 1000});
    let key = Some(w.stack.api_key.as_str());
    let cases = vec![
        (
            "POST",
            "/uploads",
            Some(jpeg.clone()),
            None,
            401,
            "bad-api-key",
        ),
        (
            "POST",
            "/uploads",
            Some(jpeg.clone()),
            Some("0123456789abcdef0123456789abcdef-wrong"),
            401,
            "bad-api-key",
        ),
        (
            "POST",
            "/uploads",
            Some(json!({"content_type": "text/html", "bytes": 10})),
            key,
            415,
            "unsupported-upload",
        ),
        (
            "POST",
            "/uploads",
            Some(json!({"content_type": "image/png", "bytes": 1u64 << 40})),
            key,
            413,
            "upload-too-large",
        ),
        (
            "POST",
            "/uploads",
            Some(json!({"type": "image/png"})),
            key,
            400,
            "bad-upload",
        ),
        (
            "POST",
            "/uploads",
            Some(json!({"content_type": "image/png", "bytes": 10, "pad": "x".repeat(5000)})),
            key,
            400,
            "bad-upload",
        ),
        ("GET", "/uploads/..%2F..%2Fog", None, key, 400, "bad-path"),
        (
            "GET",
            "/uploads/0123456789abcdef0123456789abcdef.jpg",
            None,
            key,
            404,
            "upload-not-found",
        ),
        (
            "DELETE",
            "/uploads/0123456789abcdef0123456789abcdef.jpg",
            None,
            key,
            405,
            "method-not-allowed",
        ),
    ];
    for (method, path, body, key, want, code) in cases {
        let (status, headers, answer) = w.uploads_as(method, path, body, key)?;
        ensure!(
            status == want && error_code(&answer) == code,
            "{method} {path}: {status} {}",
            error_code(&answer)
        );
        ensure!(header(&headers, "content-type") == "application/json");
    }

    // A web page uploaded as a photo: the store takes it (it was signed as
    // image/jpeg), completing refuses it clearly and records why.
    let page = b"<!doctype html><title>not a photo</title>".to_vec();
    let ticket = w.ticket("image/jpeg", page.len())?;
    let id = ticket["id"].as_str().context("id")?;
    ensure!(w.upload(&ticket, page, &[])? == 200);
    let (status, _, body) = w.uploads("POST", &format!("/uploads/{id}/complete"), None)?;
    ensure!(
        status == 415 && error_code(&body) == "unsupported-image",
        "{status} {}",
        error_code(&body)
    );
    let (_, _, body) = w.uploads("GET", &format!("/uploads/{id}"), None)?;
    let manifest: Value = serde_json::from_slice(&body)?;
    ensure!(manifest["status"] == "failed" && manifest["error"]["code"] == "unsupported-image");
    ensure!(manifest["renditions"].as_array().is_none_or(Vec::is_empty));
    Ok(())
}

/// Runs `imgate-origin backfill` against the stack's store: exit success and stdout.
fn run_backfill(w: &World, prefix: &str, presets: &str) -> anyhow::Result<(bool, String)> {
    let presets = format!("--presets={presets}");
    super::operate::run_origin(
        w,
        &[
            "backfill",
            "--prefix",
            prefix,
            "--concurrency",
            "2",
            &presets,
        ],
        "",
    )
}

/// The stored object's bytes.
fn object_bytes(w: &World, key: &ObjectKey) -> anyhow::Result<Vec<u8>> {
    block(async {
        let object =
            w.s3.get_object()
                .bucket(&w.stack.s3.bucket)
                .key(key.as_str())
                .send()
                .await
                .with_context(|| format!("no object at {key}"))?;
        Ok(object.body.collect().await?.into_bytes().to_vec())
    })
}

fn manifest_of(w: &World, source: &str) -> anyhow::Result<Value> {
    Ok(serde_json::from_slice(&object_bytes(
        w,
        &ObjectKey::for_manifest(source),
    )?)?)
}

fn backfill(w: &World) -> anyhow::Result<()> {
    let mut png = Vec::new();
    image::RgbaImage::from_fn(500, 300, |x, y| image::Rgba([x as u8, y as u8, 90, 200]))
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    let originals = [
        ("e2e-backfill/a.jpg", photo_jpeg()),
        ("e2e-backfill/deep/b.png", png),
        ("e2e-backfill/page.jpg", b"<!doctype html>".to_vec()),
        // Stored by some other tool: no URL can ever name it.
        ("e2e-backfill/bad name.jpg", photo_jpeg()),
    ];
    for (source, bytes) in &originals {
        w.put(&ObjectKey::for_original(source), bytes)?;
    }

    let (ok, report) = run_backfill(w, "e2e-backfill/", "")?;
    ensure!(!ok, "an unusable key makes the run fail");
    ensure!(
        report.starts_with("backfill: 4 originals")
            && report.contains("2 processed (16 renditions), 0 already done, 1 refused, 1 failed"),
        "{report}"
    );
    ensure!(
        report.contains("failed originals/e2e-backfill/bad name.jpg"),
        "{report}"
    );

    let a = manifest_of(w, "e2e-backfill/a.jpg")?;
    ensure!(a["status"] == "complete" && a["renditions"].as_array().map(Vec::len) == Some(8));
    let b = manifest_of(w, "e2e-backfill/deep/b.png")?;
    ensure!(b["status"] == "complete", "{b:#}");
    let formats: Vec<&str> = b["renditions"]
        .as_array()
        .context("renditions")?
        .iter()
        .filter_map(|r| r["format"].as_str())
        .collect();
    ensure!(formats.iter().filter(|f| **f == "png").count() == 4 && formats.len() == 8);
    let page = manifest_of(w, "e2e-backfill/page.jpg")?;
    ensure!(page["status"] == "failed" && page["error"]["code"] == "unsupported-image");
    // Made eagerly, served from the store by the edge, signed by the backfill.
    let url = b["renditions"][0]["url"].as_str().context("url")?;
    let (status, headers, _) = w.get(&format!("{}{url}", w.stack.edge_url))?;
    ensure!(
        status == 200 && header(&headers, "x-imgate-cache") == "hit",
        "{url}: {status}"
    );

    // Interrupted runs resume: only what has no complete manifest is redone.
    w.delete(&ObjectKey::for_manifest("e2e-backfill/a.jpg"))?;
    let (_, report) = run_backfill(w, "e2e-backfill/", "")?;
    ensure!(
        report.contains("1 processed (8 renditions), 2 already done, 0 refused, 1 failed"),
        "{report}"
    );
    ensure!(manifest_of(w, "e2e-backfill/a.jpg")?["status"] == "complete");

    // A preset added later: the backfill makes it for what is already there.
    let presets = "avatar:96x96:cover:70,small:800x600:fit:80";
    let (ok, report) = run_backfill(w, "e2e-backfill/deep/", presets)?;
    ensure!(
        ok && report.contains("1 processed (4 renditions), 0 already done"),
        "{report}"
    );
    let avatar = object_bytes(
        w,
        &ObjectKey::for_rendition(
            "avatar",
            "e2e-backfill/deep/b.png",
            imgate_contract::ImageFormat::Png,
        ),
    )?;
    let avatar = image::load_from_memory(&avatar)?;
    ensure!((avatar.width(), avatar.height()) == (96, 96));
    Ok(())
}
