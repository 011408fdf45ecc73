//! What the edge does with one request, decided without any I/O.

use std::time::Duration;

use imgate_contract::{
    CardSpec, ContractError, ErrorBody, ImageFormat, ObjectKey, Route, route,
    template::MANIFEST_FILE,
};

use crate::EdgeConfig;

/// How long a presigned store URL stays valid: only for the request that made it.
const PRESIGN_TTL: Duration = Duration::from_secs(60);

/// The edge's decision for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Answer directly with a JSON body.
    Respond { status: u16, body: String },
    /// Try the store, and on a miss ask the origin.
    Fetch(Fetch),
}

#[derive(Debug, PartialEq, Eq)]
pub struct Fetch {
    pub key: ObjectKey,
    pub format: ImageFormat,
    /// A presigned GET for the object.
    pub store_url: String,
    /// The origin's internal render URL (canonical path and query, no signature).
    pub origin_url: String,
}

impl Plan {
    fn error(e: &ContractError) -> Self {
        Plan::Respond {
            status: e.status(),
            body: e.body().to_json(),
        }
    }
}

/// Decides what to do with a request. `read_manifest` returns a template's
/// `template.toml` by path, or `None` if there is no such file.
pub fn plan(
    config: &EdgeConfig,
    method: &str,
    path: &str,
    query: &str,
    read_manifest: impl FnOnce(&str) -> Option<String>,
) -> Plan {
    let card = match route::parse(method, path, query) {
        Ok(Route::Health) => {
            return Plan::Respond {
                status: 200,
                body: r#"{"status":"ok"}"#.into(),
            };
        }
        Ok(Route::Card(card)) => card,
        Err(e) => return Plan::error(&e),
    };
    if !config.keyring.is_empty()
        && let Err(e) = config.keyring.verify(&card)
    {
        return Plan::error(&e);
    }
    let manifest_path = format!("{}/{}/{MANIFEST_FILE}", config.templates_dir, card.template);
    let Some(manifest) = read_manifest(&manifest_path) else {
        return Plan::error(&ContractError::UnknownTemplate(card.template));
    };
    let spec = match CardSpec::from_toml(&manifest) {
        Ok(spec) => spec,
        Err(e) => {
            // A broken manifest is our fault, not the caller's: say so without details.
            return Plan::Respond {
                status: 500,
                body: ErrorBody::new(
                    "bad-template",
                    format!("template {:?} is misconfigured: {e}", card.template),
                )
                .to_json(),
            };
        }
    };
    let canonical = match spec.canonicalize(&card) {
        Ok(c) => c,
        Err(e) => return Plan::error(&e),
    };
    let key = ObjectKey::for_card(&canonical);
    Plan::Fetch(Fetch {
        store_url: presign_get(config, &key),
        origin_url: format!("{}{}", config.origin_url, card.signed_string()),
        format: card.format,
        key,
    })
}

fn presign_get(config: &EdgeConfig, key: &ObjectKey) -> String {
    use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
    // Both inputs were validated when the config was read, and the key is
    // `[a-z0-9-/.]` only, so these cannot fail.
    let endpoint = config
        .store_endpoint
        .parse()
        .expect("store_endpoint was validated as a URL");
    let bucket = Bucket::new(
        endpoint,
        UrlStyle::Path,
        config.store_bucket.clone(),
        config.store_region.clone(),
    )
    .expect("store endpoint is http(s)");
    let credentials = Credentials::new(
        config.store_access_key_id.clone(),
        config.store_secret_access_key.clone(),
    );
    bucket
        .get_object(Some(&credentials), key.as_str())
        .sign(PRESIGN_TTL)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::vars;

    const PRODUCT: &str = "revision = 1\n[params.title]\nrequired = true\nmax_chars = 20\n";

    fn config(extra: &[(&str, &str)]) -> EdgeConfig {
        let v = vars(extra);
        EdgeConfig::from_lookup(|n| v.get(n).cloned()).unwrap()
    }

    fn manifests(path: &str) -> Option<String> {
        (path == "/templates/product/template.toml").then(|| PRODUCT.to_string())
    }

    fn status(plan: &Plan) -> u16 {
        match plan {
            Plan::Respond { status, .. } => *status,
            Plan::Fetch(_) => 200,
        }
    }

    #[test]
    fn signed_card_is_fetched_from_store_then_origin() {
        let config = config(&[]);
        let url = config
            .keyring
            .sign_card(&route::parse_card_url("/og/product.png?title=Hi").unwrap())
            .unwrap();
        let (path, query) = url.split_once('?').unwrap();
        let Plan::Fetch(fetch) = plan(&config, "GET", path, query, manifests) else {
            panic!("expected a fetch");
        };
        assert!(fetch.key.as_str().starts_with("og/product/"));
        assert!(
            fetch
                .store_url
                .starts_with(&format!("http://127.0.0.1:9000/imgate/{}?", fetch.key)),
            "{}",
            fetch.store_url
        );
        assert!(fetch.store_url.contains("X-Amz-Signature="));
        assert!(!fetch.store_url.contains("SECRET"));
        assert_eq!(
            fetch.origin_url,
            "http://127.0.0.1:8081/og/product.png?title=Hi"
        );
    }

    #[test]
    fn bad_requests_get_json_errors_before_any_io() {
        let signed = config(&[]);
        let open = config(&[("signing_keys", ""), ("allow_unsigned", "true")]);
        let cases: &[(&EdgeConfig, &str, &str, &str, u16, &str)] = &[
            (
                &signed,
                "GET",
                "/og/product.png",
                "title=Hi",
                403,
                "missing-signature",
            ),
            (
                &signed,
                "GET",
                "/og/product.png",
                "title=Hi&k=k1&s=AAAA",
                403,
                "bad-signature",
            ),
            (
                &open,
                "POST",
                "/og/product.png",
                "title=Hi",
                405,
                "method-not-allowed",
            ),
            (
                &open,
                "GET",
                "/og/nope.png",
                "title=Hi",
                404,
                "unknown-template",
            ),
            (&open, "GET", "/og/product.png", "", 400, "missing-param"),
            (
                &open,
                "GET",
                "/og/product.png",
                "title=aaaaaaaaaaaaaaaaaaaaaaaaa",
                400,
                "param-too-long",
            ),
            (
                &open,
                "GET",
                "/og/product.png",
                "title=a&x=1",
                400,
                "unknown-param",
            ),
            (&open, "GET", "/elsewhere", "", 404, "not-found"),
        ];
        for (config, method, path, query, want_status, want_code) in cases {
            let p = plan(config, method, path, query, manifests);
            assert_eq!(status(&p), *want_status, "{method} {path}?{query}: {p:?}");
            let Plan::Respond { body, .. } = p else {
                unreachable!()
            };
            let body: ErrorBody = serde_json::from_str(&body).unwrap();
            assert_eq!(body.error.code, *want_code);
        }
    }

    #[test]
    fn health_is_answered_at_the_edge() {
        let p = plan(&config(&[]), "GET", "/healthz", "", |_| None);
        assert_eq!(status(&p), 200);
    }
}
