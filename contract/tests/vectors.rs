//! Shared test vectors: inputs → canonical signed URL and object key, written
//! by this crate to `vectors.json` and checked by the JavaScript helper's tests
//! (`js/test/`), so the two implementations cannot drift apart.
//!
//! The file is compared byte for byte with what the contract produces now; after
//! an intended change, regenerate it with `IMGATE_UPDATE_VECTORS=1 cargo test -p
//! imgate-contract --test vectors` and commit it with the JavaScript change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use imgate_contract::{CardSpec, ImageFormat, Keyring, ObjectKey, Route, route};
use serde_json::{Value, json};

/// Two keys: the first signs; the second is still accepted (rotation).
const KEYS: &str =
    "v2:imgate-test-vector-secret-0123456789abcdef,v1:an-older-secret-still-accepted-0123456789";

fn vectors_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors.json")
}

fn spec(template: &str) -> CardSpec {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../templates")
        .join(template)
        .join("template.toml");
    CardSpec::from_toml(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// A card: template, params (as a user passes them), optional v, format.
struct CardInput {
    template: &'static str,
    params: &'static [(&'static str, &'static str)],
    v: Option<&'static str>,
    format: &'static str,
}

const CARDS: &[CardInput] = &[
    CardInput {
        template: "basic",
        params: &[("title", "Hello")],
        v: None,
        format: "png",
    },
    CardInput {
        template: "product",
        params: &[
            ("title", "Trail shoes, 50% off!"),
            ("price", "$89 + tax"),
            ("subtitle", "Grip (wet) & dry * ~fast~ 'n' light"),
            ("brand", ""),
        ],
        v: Some("2026-11-21T10:00:00Z"),
        format: "png",
    },
    CardInput {
        template: "article",
        params: &[
            ("title", "東京の夜 — مرحبا بالعالم 🚀"),
            ("author", "Zoë Ångström"),
            ("site", "blog.example.com"),
            ("date", "2026-11-21"),
        ],
        v: Some("7"),
        format: "jpg",
    },
];

fn card_vector(keyring: &Keyring, input: &CardInput) -> Value {
    let mut query: Vec<String> = input
        .params
        .iter()
        .map(|(n, v)| format!("{n}={}", urlencode(v)))
        .collect();
    if let Some(v) = input.v {
        query.push(format!("v={}", urlencode(v)));
    }
    let path = format!("/og/{}.{}", input.template, input.format);
    let request = match route::parse("GET", &path, &query.join("&")).unwrap() {
        Route::Card(card) => card,
        other => panic!("{other:?}"),
    };
    let canonical = spec(input.template).canonicalize(&request).unwrap();
    json!({
        "template": input.template,
        "params": input.params.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
        "v": input.v,
        "format": input.format,
        "url": keyring.sign_url(&request).unwrap(),
        "revision": canonical.revision,
        "canonical_params": canonical.params,
        "key": ObjectKey::for_card(&canonical).as_str(),
    })
}

fn record_vector(keyring: &Keyring) -> Value {
    let request = match route::parse("GET", "/og/listing/4821-b.png", "v=1732182000").unwrap() {
        Route::Card(card) => card,
        other => panic!("{other:?}"),
    };
    json!({
        "template": "listing",
        "id": "4821-b",
        "v": "1732182000",
        "format": "png",
        "url": keyring.sign_url(&request).unwrap(),
    })
}

fn rendition_vector(keyring: &Keyring, preset: &str, source: &str, format: Option<&str>) -> Value {
    let query = format.map(|f| format!("format={f}")).unwrap_or_default();
    let request = match route::parse("GET", &format!("/r/{preset}/{source}"), &query).unwrap() {
        Route::Rendition(r) => r,
        other => panic!("{other:?}"),
    };
    // The stored object for each format the URL can resolve to.
    let keys: BTreeMap<&str, String> = ImageFormat::ALL
        .iter()
        .map(|f| {
            (
                f.extension(),
                ObjectKey::for_rendition(preset, source, *f).to_string(),
            )
        })
        .collect();
    json!({
        "preset": preset,
        "source": source,
        "format": format,
        "url": keyring.sign_url(&request).unwrap(),
        "keys": keys,
    })
}

/// Form-style encoding as a browser would send it (spaces as '+'), to show the
/// canonical form does not depend on how the query was written.
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b' ' => "+".to_string(),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn vectors() -> Value {
    let keyring = Keyring::parse(KEYS).unwrap();
    json!({
        "about": "Generated by contract/tests/vectors.rs; checked by js/test. Regenerate with IMGATE_UPDATE_VECTORS=1.",
        "signing_keys": KEYS,
        "cards": CARDS.iter().map(|c| card_vector(&keyring, c)).collect::<Vec<_>>(),
        "record_cards": [record_vector(&keyring)],
        "renditions": [
            rendition_vector(&keyring, "thumbnail", "users/42/beach.jpg", None),
            rendition_vector(&keyring, "small", "users/42/beach.jpg", Some("auto")),
            rendition_vector(&keyring, "large", "uploads/0123456789abcdef0123456789abcdef.png", Some("webp")),
        ],
    })
}

#[test]
fn vectors_file_matches_the_contract() {
    let text = serde_json::to_string_pretty(&vectors()).unwrap() + "\n";
    if std::env::var_os("IMGATE_UPDATE_VECTORS").is_some() {
        std::fs::write(vectors_file(), &text).unwrap();
    }
    let on_disk = std::fs::read_to_string(vectors_file()).unwrap_or_default();
    assert!(
        on_disk == text,
        "{} is out of date with the contract: regenerate it with IMGATE_UPDATE_VECTORS=1 and update js/ to match",
        vectors_file().display()
    );
}

#[test]
fn every_vector_verifies_with_the_keyring() {
    let keyring = Keyring::parse(KEYS).unwrap();
    let vectors = vectors();
    let urls = ["cards", "record_cards", "renditions"]
        .iter()
        .flat_map(|kind| vectors[kind].as_array().unwrap().clone())
        .map(|v| v["url"].as_str().unwrap().to_string());
    for url in urls {
        let (path, query) = url.split_once('?').unwrap();
        let route = route::parse("GET", path, query).unwrap();
        let signed = route.signable().unwrap();
        keyring.verify(signed).unwrap();
        // The URL is already canonical: parsing it back gives the same bytes.
        assert_eq!(signed.url(), url);
    }
}
