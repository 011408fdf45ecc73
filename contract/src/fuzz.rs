//! What must hold for any request line, however hostile: the checks the fuzz
//! target `url` runs (`fuzz/`), and that `cargo test` replays over the kept
//! corpus (`fuzz/corpus/url/`), so a crash once found stays fixed.
//!
//! Compiled only for tests and under cargo-fuzz (`--cfg fuzzing`).

use crate::template::ParamKind;
use crate::{CardSpec, Keyring, ObjectKey, Route, route};

/// A template with every kind of parameter and a data source.
const SPEC: &str = r#"
revision = 3
allowed_hosts = ["images.example.com", "*.cdn.example.net"]
[data_source]
url = "https://api.example.com/records/{id}?full=1"
[params.title]
required = true
max_chars = 40
[params.subtitle]
default = "-"
[params.image]
kind = "url"
"#;

/// Two keys, both accepted; `k1` signs.
const KEYS: [&str; 2] = [
    "k1:0123456789abcdef0123456789abcdef",
    "k2:fedcba9876543210fedcba9876543210",
];

/// Parses `data` as `path?query` and checks everything derived from it.
/// Panics (which the fuzzer reports) when a property fails.
pub fn url(data: &[u8]) {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let (path, query) = line.split_once('?').unwrap_or((line, ""));
    let Ok(route) = route::parse("GET", path, query) else {
        return;
    };
    let keyring = Keyring::parse(&KEYS.join(",")).expect("test keys");
    // A signature verifies only if it is exactly the one its key id's secret
    // makes for this canonical request: no forgery, no replay under another id.
    if let Some(signable) = route.signable()
        && keyring.verify(signable).is_ok()
    {
        let id = signable.query().key_id.as_deref().expect("verified");
        let own = KEYS
            .iter()
            .find(|k| k.split(':').next() == Some(id))
            .expect("a known id");
        let made = Keyring::parse(own).expect("one key").sign_url(signable);
        assert_eq!(made.as_deref(), Some(signable.url().as_str()), "forged");
    }
    match &route {
        Route::Health => {}
        Route::Card(card) => {
            round_trips(&route, &keyring);
            let spec = CardSpec::from_toml(SPEC).expect("fuzz template");
            if let Ok(canonical) = spec.canonicalize(card) {
                let key = ObjectKey::for_card(&canonical);
                contained(key.as_str(), &format!("og/{}/", card.template));
                for (name, value) in &canonical.params {
                    if spec.params.get(name).map(|p| p.kind) == Some(ParamKind::Url)
                        && !value.is_empty()
                    {
                        assert!(spec.allows_url(value), "{value:?} passed as an image URL");
                    }
                }
                if let Some(id) = &canonical.record {
                    let url = spec.record_url(id).expect("data source");
                    assert!(
                        url.starts_with("https://api.example.com/records/")
                            && url.ends_with("?full=1")
                            && !url["https://api.example.com/records/".len()..]
                                .trim_end_matches("?full=1")
                                .contains(['/', '?', '#', '%', '.', '@', '\\']),
                        "record {id:?} leaves the data source: {url}"
                    );
                }
            }
        }
        Route::Rendition(rendition) => {
            round_trips(&route, &keyring);
            contained(rendition.source_key().as_str(), "originals/");
            for accept in ["", "image/webp", "image/*"] {
                let key = rendition.resolve(Some(accept)).key;
                contained(key.as_str(), &format!("renditions/{}/", rendition.preset));
            }
        }
    }
}

/// The canonical URL means the same request, and signing it makes a URL
/// that verifies and names the same request again.
fn round_trips(route: &Route, keyring: &Keyring) {
    let signable = route.signable().expect("card or rendition");
    let reparse = |url: &str| {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        route::parse("GET", path, query).unwrap_or_else(|e| panic!("{url}: {e}"))
    };
    let again = reparse(&signable.url());
    assert_eq!(
        again.signable().expect("same kind").signed_string(),
        signable.signed_string()
    );
    let signed = reparse(&keyring.sign_url(signable).expect("keys sign"));
    let signed = signed.signable().expect("same kind");
    keyring.verify(signed).expect("our own signature");
    assert_eq!(signed.signed_string(), signable.signed_string());
}

/// A key stays under its prefix: no empty, `.` or `..` segment, nothing that
/// a store or a filesystem-backed S3 server would read as a path trick.
fn contained(key: &str, prefix: &str) {
    let rest = key
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{key:?} is not under {prefix:?}"));
    assert!(
        rest.split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".." && !s.starts_with('.')),
        "{key:?} has a path trick in it"
    );
    assert!(
        key.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b)),
        "{key:?} has a character that needs quoting"
    );
}

#[cfg(test)]
mod corpus {
    /// Every input the fuzzer kept, and every crash it ever found (kept apart
    /// in `regressions/`, which corpus minimisation does not touch), still passes.
    #[test]
    fn the_fuzz_corpus_replays_clean() {
        let fuzz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
        let mut n = 0;
        for dir in ["corpus/url", "regressions/url"] {
            for entry in std::fs::read_dir(fuzz.join(dir)).expect(dir) {
                let path = entry.expect("corpus entry").path();
                super::url(&std::fs::read(&path).expect("corpus file"));
                n += 1;
            }
        }
        assert!(n > 0, "the url corpus is empty");
    }
}
