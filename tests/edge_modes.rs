//! The edge beyond serving cards: renditions and `Accept`, redirect mode with
//! its known-present index, signing-key rotation, and the outbound allowlist —
//! each through extra edge hosts started against the same store and origin.

use anyhow::{Context, ensure};
use imgate_contract::{ErrorBody, ImageFormat, ObjectKey, route};
use imgate_devstack::random_hex;

use super::{Test, World, block, header};

pub const TRIALS: &[(&str, Test)] = &[
    (
        "renditions_are_served_by_accept_with_vary",
        renditions_by_accept,
    ),
    (
        "renditions_are_made_from_originals_once",
        renditions_from_originals,
    ),
    (
        "broken_originals_get_a_clear_4xx_and_nothing_is_stored",
        broken_originals,
    ),
    (
        "redirect_mode_trusts_then_heals_its_known_present_index",
        redirect_mode,
    ),
    ("a_retired_signing_key_works_until_removed", key_rotation),
    (
        "the_host_refuses_outbound_calls_outside_the_allowlist",
        outbound_allowlist,
    ),
];

impl World {
    /// A URL of any kind, signed with the stack's key, without the base.
    pub(crate) fn sign_path(&self, path_and_query: &str) -> String {
        sign_with(&self.keys, path_and_query)
    }

    /// Sends a GET with extra headers, never following redirects.
    pub(crate) fn get_with(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<super::Answer> {
        block(async {
            let mut request = self.no_redirects.get(url);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            super::send(request).await
        })
    }

    pub(crate) fn put(&self, key: &ObjectKey, body: &[u8]) -> anyhow::Result<()> {
        block(async {
            self.s3
                .put_object()
                .bucket(&self.stack.s3.bucket)
                .key(key.as_str())
                .body(body.to_vec().into())
                .send()
                .await?;
            Ok(())
        })
    }

    pub(crate) fn delete(&self, key: &ObjectKey) -> anyhow::Result<()> {
        block(async {
            self.s3
                .delete_object()
                .bucket(&self.stack.s3.bucket)
                .key(key.as_str())
                .send()
                .await?;
            Ok(())
        })
    }

    pub(crate) fn spawn_edge(
        &self,
        manifest: Option<&std::path::Path>,
        kv_dir: &std::path::Path,
        variables: &[(&str, &str)],
    ) -> anyhow::Result<imgate_devstack::Child> {
        block(self.stack.spawn_edge(manifest, kv_dir, variables))
    }
}

fn sign_with(keys: &imgate_contract::Keyring, path_and_query: &str) -> String {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let route = route::parse("GET", path, query)
        .unwrap_or_else(|e| panic!("{path_and_query} is not a URL imgate knows: {e}"));
    keys.sign_url(route.signable().expect("a signable route"))
        .expect("keys are set")
}

/// Stops an extra edge politely (dropping one on failure kills it).
pub fn stop(edge: imgate_devstack::Child) {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(edge.stop()));
}

pub fn error_code(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.error.code)
        .unwrap_or_else(|_| format!("not JSON: {}", String::from_utf8_lossy(body)))
}

fn renditions_by_accept(w: &World) -> anyhow::Result<()> {
    let small = "small";
    let stored = |format: ImageFormat| {
        (
            ObjectKey::for_rendition(small, "u/1/beach.jpg", format),
            format!("{} bytes of a small beach", format.extension()).into_bytes(),
        )
    };
    for format in [ImageFormat::Webp, ImageFormat::Jpeg] {
        let (key, body) = stored(format);
        w.put(&key, &body)?;
    }
    let auto = format!(
        "{}{}",
        w.stack.edge_url,
        w.sign_path("/r/small/u/1/beach.jpg?format=auto")
    );
    let chrome = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8";
    for (accept, format) in [
        (Some(chrome), ImageFormat::Webp),
        (Some("image/webp,*/*"), ImageFormat::Webp),
        (Some("image/webp;q=0,image/*"), ImageFormat::Jpeg),
        (None, ImageFormat::Jpeg),
    ] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let (status, got, body) = w.get_with(&auto, &headers)?;
        ensure!(status == 200, "Accept {accept:?}: {status}");
        ensure!(body == stored(format).1, "Accept {accept:?}: wrong object");
        ensure!(header(&got, "content-type") == format.content_type());
        ensure!(
            header(&got, "vary") == "Accept",
            "Accept {accept:?}: no Vary"
        );
        ensure!(header(&got, "x-imgate-cache") == "hit");
        ensure!(header(&got, "cache-control").contains("immutable"));
        ensure!(
            !header(&got, "etag").is_empty(),
            "the store's ETag passes through"
        );
    }
    // A fixed format does not depend on Accept: no Vary.
    let fixed = format!(
        "{}{}",
        w.stack.edge_url,
        w.sign_path("/r/small/u/1/beach.jpg")
    );
    let (status, got, body) = w.get_with(&fixed, &[("accept", chrome)])?;
    ensure!(status == 200 && body == stored(ImageFormat::Jpeg).1);
    ensure!(
        header(&got, "vary").is_empty(),
        "vary: {}",
        header(&got, "vary")
    );
    // The signature covers format=auto: swapping it for a fixed format is refused.
    let swapped = auto.replace("format=auto", "format=webp");
    let (status, _, body) = w.get_with(&swapped, &[])?;
    ensure!(status == 403 && error_code(&body) == "bad-signature");
    Ok(())
}

/// A 1200×900 photo-like JPEG.
pub fn photo_jpeg() -> Vec<u8> {
    let photo = image::RgbImage::from_fn(1200, 900, |x, y| {
        image::Rgb([(x % 251) as u8, (y % 241) as u8, ((x + y) % 239) as u8])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&photo)
        .expect("encodes");
    out
}

fn renditions_from_originals(w: &World) -> anyhow::Result<()> {
    w.put(&ObjectKey::for_original("e2e/photo.jpg"), &photo_jpeg())?;
    let url = format!(
        "{}{}",
        w.stack.edge_url,
        w.sign_path("/r/small/e2e/photo.jpg")
    );
    let (status, got, body) = w.get_with(&url, &[])?;
    ensure!(status == 200, "status {status}: {}", error_code(&body));
    ensure!(header(&got, "x-imgate-cache") == "miss");
    ensure!(header(&got, "content-type") == "image/jpeg");
    let made = image::load_from_memory(&body)?;
    ensure!(
        (made.width(), made.height()) == (800, 600),
        "{}×{}",
        made.width(),
        made.height()
    );

    let key = ObjectKey::for_rendition("small", "e2e/photo.jpg", ImageFormat::Jpeg);
    let head = w.head(&key).context("the rendition is stored")?;
    ensure!(head.cache_control() == Some(imgate_contract::headers::IMMUTABLE));
    let meta = head.metadata().context("metadata")?;
    ensure!(
        meta.get("preset").map(String::as_str) == Some("small"),
        "{meta:?}"
    );
    ensure!(
        meta.get("source-etag").is_some_and(|e| !e.is_empty()),
        "{meta:?}"
    );

    let (status, got, again) = w.get_with(&url, &[])?;
    ensure!(status == 200 && header(&got, "x-imgate-cache") == "hit" && again == body);

    // auto: WebP for a browser that takes it, made from the same original.
    let auto = format!(
        "{}{}",
        w.stack.edge_url,
        w.sign_path("/r/thumbnail/e2e/photo.jpg?format=auto")
    );
    let (status, got, body) = w.get_with(&auto, &[("accept", "image/webp,*/*")])?;
    ensure!(status == 200, "status {status}: {}", error_code(&body));
    ensure!(header(&got, "content-type") == "image/webp" && header(&got, "vary") == "Accept");
    let thumb = image::load_from_memory(&body)?;
    ensure!((thumb.width(), thumb.height()) == (400, 400));
    Ok(())
}

fn broken_originals(w: &World) -> anyhow::Result<()> {
    let good = photo_jpeg();
    let cases: [(&str, Vec<u8>, u16, &str); 3] = [
        (
            "e2e/page.jpg",
            b"<!doctype html><title>not a photo</title>".to_vec(),
            415,
            "unsupported-image",
        ),
        (
            "e2e/cut.jpg",
            good[..good.len() / 3].to_vec(),
            422,
            "corrupt-image",
        ),
        (
            "e2e/heic.jpg",
            b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec(),
            415,
            "unsupported-image",
        ),
    ];
    for (source, bytes, status, code) in cases {
        w.put(&ObjectKey::for_original(source), &bytes)?;
        let url = format!(
            "{}{}",
            w.stack.edge_url,
            w.sign_path(&format!("/r/medium/{source}"))
        );
        let (got_status, got, body) = w.get_with(&url, &[])?;
        ensure!(
            got_status == status && error_code(&body) == code,
            "{source}: {got_status} {}",
            error_code(&body)
        );
        ensure!(header(&got, "cache-control") == "no-store");
        let key = ObjectKey::for_rendition("medium", source, ImageFormat::Jpeg);
        ensure!(w.head(&key).is_err(), "{source}: a rendition was stored");
    }
    let missing = format!(
        "{}{}",
        w.stack.edge_url,
        w.sign_path("/r/medium/e2e/none.jpg")
    );
    let (status, _, body) = w.get_with(&missing, &[])?;
    ensure!(
        status == 404 && error_code(&body) == "source-not-found",
        "{status}"
    );
    Ok(())
}

fn redirect_mode(w: &World) -> anyhow::Result<()> {
    let card = "/og/basic.png?title=Redirect%20mode&text=index";
    let key = w.key(card)?;
    let signed = w.sign_path(card);
    // Stored by the serve-mode edge first.
    let (status, _, _) = w.get(&format!("{}{signed}", w.stack.edge_url))?;
    ensure!(status == 200, "status {status}");

    let kv = tempfile::tempdir()?;
    let cdn = "https://cdn.example.test";
    let redirect = [
        ("mode", "redirect"),
        ("public_store_url", cdn),
        ("origin_public_url", w.stack.origin_url.as_str()),
    ];
    let trusting = w.spawn_edge(None, kv.path(), &redirect)?;
    let url = format!("{}{signed}", trusting.url);
    let at_cdn = format!("{cdn}/{key}");

    let (status, got, _) = w.get_with(&url, &[])?;
    ensure!(status == 302, "status {status}");
    ensure!(
        header(&got, "location") == at_cdn,
        "{}",
        header(&got, "location")
    );
    ensure!(header(&got, "x-imgate-index") == "miss", "found by a HEAD");
    ensure!(header(&got, "cache-control") == "public, max-age=3600");

    // Gone from the store, but the index vouches for it: no store lookup at all.
    w.delete(&key)?;
    let (status, got, _) = w.get_with(&url, &[])?;
    ensure!(status == 302 && header(&got, "x-imgate-index") == "hit");
    ensure!(header(&got, "location") == at_cdn);
    stop(trusting);

    // An edge that trusts no entry (TTL 0) sees the stale one, finds the object
    // gone, forgets it, and sends the browser to the origin with the signature.
    let mut checking = redirect.to_vec();
    checking.push(("index_ttl_secs", "0"));
    let checking = w.spawn_edge(None, kv.path(), &checking)?;
    let url = format!("{}{signed}", checking.url);
    let (status, got, _) = w.get_with(&url, &[])?;
    ensure!(status == 307, "status {status}");
    ensure!(header(&got, "x-imgate-index") == "stale");
    ensure!(header(&got, "cache-control") == "no-store");
    let location = header(&got, "location").to_string();
    ensure!(
        location == format!("{}{signed}", w.stack.origin_url),
        "{location}"
    );

    // The origin checks the signature itself, renders and stores.
    let (status, got, body) = w.get_with(&location, &[])?;
    ensure!(status == 200, "origin: {status} {}", error_code(&body));
    ensure!(header(&got, "content-type") == "image/png");
    w.head(&key).context("stored again")?;
    let tampered = location.replace("Redirect%20mode", "Redirect%20mod");
    let (status, _, _) = w.get_with(&tampered, &[])?;
    ensure!(
        status == 401,
        "a forged URL straight to the origin: {status}"
    );

    // Stored again: a HEAD finds it; the forgotten entry is not "stale" any more.
    let (status, got, _) = w.get_with(&url, &[])?;
    ensure!(status == 302 && header(&got, "x-imgate-index") == "miss");
    stop(checking);
    Ok(())
}

fn key_rotation(w: &World) -> anyhow::Result<()> {
    let fresh = format!("fresh:{}", random_hex(24)?);
    let fresh_keys = imgate_contract::Keyring::parse(&fresh).map_err(anyhow::Error::msg)?;
    let card = "/og/basic.png?title=Rotation";
    let old_url = w.sign_path(card);
    let new_url = sign_with(&fresh_keys, card);
    let kv = tempfile::tempdir()?;

    // During the rotation both keys verify; the new one signs.
    let both = format!("{fresh},{}", w.keys_spec);
    let rotating = w.spawn_edge(None, kv.path(), &[("signing_keys", &both)])?;
    for path in [&old_url, &new_url] {
        let (status, _, body) = w.get_with(&format!("{}{path}", rotating.url), &[])?;
        ensure!(status == 200, "{path}: {status} {}", error_code(&body));
    }
    stop(rotating);

    // Once the old key is removed, its URLs are refused.
    let rotated = w.spawn_edge(None, kv.path(), &[("signing_keys", &fresh)])?;
    let (status, _, body) = w.get_with(&format!("{}{old_url}", rotated.url), &[])?;
    ensure!(
        status == 403 && error_code(&body) == "unknown-key",
        "{status}"
    );
    let (status, _, _) = w.get_with(&format!("{}{new_url}", rotated.url), &[])?;
    ensure!(status == 200, "{status}");
    stop(rotated);
    Ok(())
}

fn outbound_allowlist(w: &World) -> anyhow::Result<()> {
    // The stack's manifest with the origin taken off the allowlist.
    let dir = tempfile::tempdir()?;
    let mut manifest: toml::Table = std::fs::read_to_string(w.stack.manifest())?.parse()?;
    let edge = manifest["component"]
        .as_table_mut()
        .and_then(|c| c.iter_mut().next())
        .map(|(_, component)| component)
        .and_then(|c| c.as_table_mut())
        .context("no component")?;
    edge.insert(
        "allowed_outbound_hosts".into(),
        toml::Value::Array(vec!["{{ store_endpoint }}".into()]),
    );
    let path = dir.path().join("spin.toml");
    std::fs::write(&path, toml::to_string(&manifest)?)?;

    let fenced = w.spawn_edge(Some(&path), dir.path(), &[])?;
    // Not stored yet, so the edge must call the origin, which it may not.
    let url = format!(
        "{}{}",
        fenced.url,
        w.sign_path("/og/basic.png?title=Nowhere%20to%20go")
    );
    let (status, got, body) = w.get_with(&url, &[])?;
    ensure!(status == 502, "status {status}");
    ensure!(error_code(&body) == "origin-unreachable");
    ensure!(header(&got, "cache-control") == "no-store");
    stop(fenced);
    Ok(())
}
