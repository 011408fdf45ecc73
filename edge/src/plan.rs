//! What the edge does with one request, decided without any I/O.

use std::time::Duration;

use imgate_contract::{
    CardSpec, ContractError, ErrorBody, ImageFormat, ObjectKey, Route, Signable, route,
    template::MANIFEST_FILE,
};

use crate::EdgeConfig;
use crate::presign::Signer;

/// How long a presigned store URL stays valid: only for the request that made it.
const PRESIGN_TTL: Duration = Duration::from_secs(60);

/// The edge's decision for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Plan {
    /// Answer directly with a JSON body.
    Respond { status: u16, body: String },
    /// An image: find it in the store, or have the origin make it.
    Image(Target),
}

/// The image a request resolves to.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub key: ObjectKey,
    pub format: ImageFormat,
    /// The answer depends on the `Accept` header (`format=auto` renditions).
    pub vary_accept: bool,
    /// The origin's internal render path: canonical, format resolved, unsigned
    /// (the edge token vouches for it).
    pub origin_path: String,
    /// The request's canonical URL, signature included: what a browser is sent
    /// to on the origin in redirect mode, where the origin checks it itself.
    pub public_path: String,
}

impl Plan {
    fn error(e: &ContractError) -> Self {
        Plan::Respond {
            status: e.status(),
            body: e.body().to_json(),
        }
    }
}

/// Decides what to do with a request. `accept` is the `Accept` header;
/// `read_manifest` returns a template's `template.toml` by path, or `None` if
/// there is no such file.
pub fn plan(
    config: &EdgeConfig,
    method: &str,
    path: &str,
    query: &str,
    accept: Option<&str>,
    read_manifest: impl FnOnce(&str) -> Option<String>,
) -> Plan {
    let route = match route::parse(method, path, query) {
        Ok(route) => route,
        Err(e) => return Plan::error(&e),
    };
    if let Some(signed) = route.signable()
        && !config.keyring.is_empty()
        && let Err(e) = config.keyring.verify(signed)
    {
        return Plan::error(&e);
    }
    match route {
        Route::Health => Plan::Respond {
            status: 200,
            body: r#"{"status":"ok"}"#.into(),
        },
        Route::Card(card) => {
            let manifest_path =
                format!("{}/{}/{MANIFEST_FILE}", config.templates_dir, card.template);
            let Some(manifest) = read_manifest(&manifest_path) else {
                return Plan::error(&ContractError::UnknownTemplate(card.template));
            };
            let spec = match CardSpec::from_toml(&manifest) {
                Ok(spec) => spec,
                Err(e) => {
                    // A broken manifest is our fault, not the caller's.
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
            Plan::Image(Target {
                key: ObjectKey::for_card(&canonical),
                format: card.format,
                vary_accept: false,
                origin_path: card.signed_string(),
                public_path: card.url(),
            })
        }
        Route::Rendition(rendition) => {
            if let Err(e) = config.presets.get(&rendition.preset) {
                return Plan::error(&e);
            }
            let resolved = rendition.resolve(accept);
            Plan::Image(Target {
                origin_path: rendition.origin_path(resolved.format),
                public_path: rendition.url(),
                key: resolved.key,
                format: resolved.format,
                vary_accept: resolved.vary_accept,
            })
        }
    }
}

/// A presigned store request (`GET` or `HEAD`) for one object, made at `now`
/// (unix seconds).
pub fn presign(config: &EdgeConfig, method: StoreMethod, key: &ObjectKey, now: u64) -> String {
    let signer = Signer {
        endpoint: &config.store_endpoint,
        bucket: &config.store_bucket,
        region: &config.store_region,
        access_key_id: &config.store_access_key_id,
        secret_access_key: &config.store_secret_access_key,
    };
    let method = match method {
        StoreMethod::Get => "GET",
        StoreMethod::Head => "HEAD",
    };
    signer.presign(method, key.as_str(), now, PRESIGN_TTL.as_secs())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMethod {
    Get,
    Head,
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
            Plan::Image(_) => 200,
        }
    }

    #[test]
    fn signed_card_is_fetched_from_store_then_origin() {
        let config = config(&[]);
        let url = config
            .keyring
            .sign_url(&route::parse_card_url("/og/product.png?title=Hi").unwrap())
            .unwrap();
        let (path, query) = url.split_once('?').unwrap();
        let Plan::Image(target) = plan(&config, "GET", path, query, None, manifests) else {
            panic!("expected an image");
        };
        assert!(target.key.as_str().starts_with("og/product/"));
        assert_eq!(target.origin_path, "/og/product.png?title=Hi");
        assert_eq!(
            target.public_path, url,
            "the signature travels to the origin"
        );
        assert!(!target.vary_accept);
        let store_url = presign(&config, StoreMethod::Get, &target.key, 1_795_305_599);
        assert!(
            store_url.starts_with(&format!("http://127.0.0.1:9000/imgate/{}?", target.key)),
            "{store_url}"
        );
        assert!(store_url.contains("X-Amz-Signature="));
        assert!(!store_url.contains("SECRET"));
        assert!(store_url.contains("X-Amz-Date=20261121T235959Z"));
        assert_ne!(
            presign(&config, StoreMethod::Head, &target.key, 1_795_305_599),
            store_url
        );
    }

    #[test]
    fn configured_presets_are_served() {
        let custom = config(&[
            ("allow_unsigned", "true"),
            ("signing_keys", ""),
            ("presets", "avatar:96x96:cover:70"),
        ]);
        let Plan::Image(target) = plan(&custom, "GET", "/r/avatar/u/7.jpg", "", None, |_| None)
        else {
            panic!("avatar is a preset here")
        };
        assert_eq!(target.key.as_str(), "renditions/avatar/u/7.jpg.jpg");
        let v = vars(&[("presets", "avatar:96x96")]);
        let bad = EdgeConfig::from_lookup(|n| v.get(n).cloned());
        assert!(
            bad.unwrap_err()
                .contains("presets: preset \"avatar:96x96\"")
        );
    }

    #[test]
    fn auto_renditions_resolve_per_client() {
        let config = config(&[]);
        let Ok(Route::Rendition(r)) = route::parse("GET", "/r/small/u/7.jpg", "format=auto") else {
            panic!()
        };
        let url = config.keyring.sign_url(&r).unwrap();
        let (path, query) = url.split_once('?').unwrap();
        let for_accept = |accept| match plan(&config, "GET", path, query, accept, |_| None) {
            Plan::Image(target) => target,
            other => panic!("{other:?}"),
        };
        let webp = for_accept(Some("image/avif,image/webp,*/*"));
        let jpeg = for_accept(None);
        assert_eq!(webp.key.as_str(), "renditions/small/u/7.jpg.webp");
        assert_eq!(webp.origin_path, "/r/small/u/7.jpg?format=webp");
        assert_eq!(jpeg.key.as_str(), "renditions/small/u/7.jpg.jpg");
        assert!(webp.vary_accept && jpeg.vary_accept);
        assert_eq!(webp.public_path, url);
    }

    #[test]
    fn bad_requests_get_json_errors_before_any_io() {
        let signed = config(&[]);
        let open = config(&[("signing_keys", ""), ("allow_unsigned", "true")]);
        let custom = config(&[
            ("signing_keys", ""),
            ("allow_unsigned", "true"),
            ("presets", "avatar:96x96:cover:70"),
        ]);
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
            (
                &signed,
                "GET",
                "/r/small/a.jpg",
                "",
                403,
                "missing-signature",
            ),
            (&open, "GET", "/r/small/../a.jpg", "", 400, "bad-path"),
            (&open, "GET", "/r/huge/a.jpg", "", 404, "unknown-preset"),
            (&custom, "GET", "/r/small/a.jpg", "", 404, "unknown-preset"),
        ];
        for (config, method, path, query, want_status, want_code) in cases {
            let p = plan(config, method, path, query, None, manifests);
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
        let p = plan(&config(&[]), "GET", "/healthz", "", None, |_| None);
        assert_eq!(status(&p), 200);
    }
}
