//! The edge's configuration, read from Spin variables (declared in `spin.toml`).

use imgate_contract::{Keyring, Presets};

/// Every variable the edge reads, with what it is for. `spin.toml` declares the same
/// names; a test keeps the two lists equal.
pub const VARIABLES: &[(&str, &str)] = &[
    (
        "store_endpoint",
        "S3 endpoint URL, e.g. https://s3.eu-west-1.amazonaws.com",
    ),
    ("store_bucket", "bucket holding the images"),
    ("store_region", "bucket region"),
    (
        "store_access_key_id",
        "credentials that may GetObject in the bucket",
    ),
    ("store_secret_access_key", "secret for store_access_key_id"),
    (
        "origin_url",
        "base URL of the origin, e.g. http://origin.internal:8081",
    ),
    (
        "edge_token",
        "credential the origin requires on its internal routes",
    ),
    (
        "signing_keys",
        "id:secret[,id:secret…]; URLs must carry k and s when set",
    ),
    (
        "allow_unsigned",
        "\"true\" accepts unsigned URLs when no keys are set (development only)",
    ),
    (
        "mode",
        "serve (default: 200 with the image, hit or miss) or redirect (302/307, browsers only)",
    ),
    (
        "public_store_url",
        "redirect mode: base URL where stored objects are public, e.g. a CDN on the bucket",
    ),
    (
        "origin_public_url",
        "redirect mode: base URL browsers reach the origin at (default origin_url)",
    ),
    (
        "index_ttl_secs",
        "how long the known-present index trusts an entry before checking the store again",
    ),
    (
        "presets",
        "rendition presets, name:WIDTHxHEIGHT:cover|fit:quality,… (default: thumbnail, small, medium, large); the origin's IMGATE_PRESETS must match",
    ),
    (
        "origin_timeout_secs",
        "longest the origin may take to start answering a miss before the edge answers 504 (default 20)",
    ),
    (
        "access_log",
        "\"false\" stops the one JSON line per request (request id, status, cache hit/miss) on stderr",
    ),
    (
        "templates_dir",
        "where the template folders are mounted (spin.toml `files`)",
    ),
];

/// What the edge answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// 200 with the image on a hit and on a miss: social crawlers do not follow
    /// redirects on `og:image`, and CloudFront passes a 3xx from its origin on.
    Serve,
    /// 302 to the public copy on a hit, 307 to the origin on a miss: no image
    /// bytes through the edge, for browser-only traffic.
    Redirect {
        public_store_url: String,
        origin_public_url: String,
    },
}

/// Default for `origin_timeout_secs`: above the origin's render (10 s) and
/// data-source (5 s) timeouts, below CloudFront's 30 s.
pub const DEFAULT_ORIGIN_TIMEOUT_SECS: u64 = 20;

/// Default for `index_ttl_secs`: an hour, far below any sensible lifecycle expiry.
pub const DEFAULT_INDEX_TTL_SECS: u64 = 3600;

/// The edge's settings. Secrets are kept out of `Debug`.
#[derive(Clone)]
pub struct EdgeConfig {
    pub store_endpoint: String,
    pub store_bucket: String,
    pub store_region: String,
    pub store_access_key_id: String,
    pub store_secret_access_key: String,
    pub origin_url: String,
    pub edge_token: String,
    pub keyring: Keyring,
    pub allow_unsigned: bool,
    pub templates_dir: String,
    pub mode: Mode,
    pub index_ttl_secs: u64,
    /// Longest the origin may take to start answering a miss; then 504.
    pub origin_timeout_secs: u64,
    pub presets: Presets,
    /// One JSON line per request on stderr.
    pub access_log: bool,
}

impl std::fmt::Debug for EdgeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EdgeConfig")
            .field("store_endpoint", &self.store_endpoint)
            .field("store_bucket", &self.store_bucket)
            .field("origin_url", &self.origin_url)
            .field("keyring", &self.keyring)
            .field("allow_unsigned", &self.allow_unsigned)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl EdgeConfig {
    /// Builds the configuration from a variable lookup, reporting every problem at once.
    pub fn from_lookup(mut get: impl FnMut(&str) -> Option<String>) -> Result<Self, String> {
        let mut problems = Vec::new();
        let mut required = |name: &str| match get(name) {
            Some(v) if !v.trim().is_empty() => v.trim().to_string(),
            _ => {
                problems.push(format!("variable {name} is not set"));
                String::new()
            }
        };
        let store_endpoint = required("store_endpoint");
        let store_bucket = required("store_bucket");
        let store_region = required("store_region");
        let store_access_key_id = required("store_access_key_id");
        let store_secret_access_key = required("store_secret_access_key");
        let origin_url = required("origin_url");
        let edge_token = required("edge_token");
        let templates_dir = required("templates_dir");
        let keyring =
            Keyring::parse(&get("signing_keys").unwrap_or_default()).unwrap_or_else(|e| {
                problems.push(e);
                Keyring::default()
            });
        let mut flag = |name: &str, default: bool| match get(name).as_deref().map(str::trim) {
            None | Some("") => default,
            Some("false") => false,
            Some("true") => true,
            Some(other) => {
                problems.push(format!("{name} must be true or false, not {other:?}"));
                default
            }
        };
        let allow_unsigned = flag("allow_unsigned", false);
        let access_log = flag("access_log", true);
        if keyring.is_empty() && !allow_unsigned {
            problems.push(
                "no signing_keys: set signing keys, or allow_unsigned = \"true\" for local development"
                    .into(),
            );
        }
        for (name, url) in [
            ("store_endpoint", &store_endpoint),
            ("origin_url", &origin_url),
        ] {
            let http = url.starts_with("http://") || url.starts_with("https://");
            if !url.is_empty() && !http {
                problems.push(format!("{name} must be an http:// or https:// URL"));
            }
        }
        let mut seconds = |name: &str, default: u64| match get(name).as_deref().map(str::trim) {
            None | Some("") => default,
            Some(n) => n.parse().unwrap_or_else(|_| {
                problems.push(format!("{name} must be a number of seconds, not {n:?}"));
                default
            }),
        };
        let index_ttl_secs = seconds("index_ttl_secs", DEFAULT_INDEX_TTL_SECS);
        let origin_timeout_secs = seconds("origin_timeout_secs", DEFAULT_ORIGIN_TIMEOUT_SECS);
        let presets = Presets::parse(&get("presets").unwrap_or_default()).unwrap_or_else(|e| {
            problems.push(format!("presets: {e}"));
            Presets::default()
        });
        let mode = match get("mode").as_deref().map(str::trim) {
            None | Some("") | Some("serve") => Mode::Serve,
            Some("redirect") => {
                let public_store_url = get("public_store_url").unwrap_or_default();
                if public_store_url.trim().is_empty() {
                    problems.push("mode redirect needs public_store_url".into());
                }
                let origin_public_url = get("origin_public_url")
                    .filter(|u| !u.trim().is_empty())
                    .unwrap_or_else(|| origin_url.clone());
                Mode::Redirect {
                    public_store_url: public_store_url.trim().trim_end_matches('/').into(),
                    origin_public_url: origin_public_url.trim().trim_end_matches('/').into(),
                }
            }
            Some(other) => {
                problems.push(format!("mode must be serve or redirect, not {other:?}"));
                Mode::Serve
            }
        };
        if let Mode::Redirect {
            public_store_url,
            origin_public_url,
        } = &mode
        {
            for (name, url) in [
                ("public_store_url", public_store_url),
                ("origin_public_url", origin_public_url),
            ] {
                if !url.is_empty() && !url.starts_with("http://") && !url.starts_with("https://") {
                    problems.push(format!("{name} must be an http:// or https:// URL"));
                }
            }
        }
        if !problems.is_empty() {
            return Err(problems.join("; "));
        }
        Ok(Self {
            store_endpoint: store_endpoint.trim_end_matches('/').to_string(),
            store_bucket,
            store_region,
            store_access_key_id,
            store_secret_access_key,
            origin_url: origin_url.trim_end_matches('/').to_string(),
            edge_token,
            keyring,
            allow_unsigned,
            templates_dir,
            mode,
            index_ttl_secs,
            origin_timeout_secs,
            presets,
            access_log,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    pub(crate) fn vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut v: HashMap<String, String> = [
            ("store_endpoint", "http://127.0.0.1:9000/"),
            ("store_bucket", "imgate"),
            ("store_region", "us-east-1"),
            ("store_access_key_id", "AKID"),
            ("store_secret_access_key", "SECRET-not-in-debug"),
            ("origin_url", "http://127.0.0.1:8081"),
            ("edge_token", "TOKEN-not-in-debug"),
            ("templates_dir", "/templates"),
            ("signing_keys", "k1:0123456789abcdef0123456789abcdef"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, val) in extra {
            v.insert(k.to_string(), val.to_string());
        }
        v
    }

    #[test]
    fn reads_variables_and_hides_secrets() {
        let v = vars(&[]);
        let config = EdgeConfig::from_lookup(|n| v.get(n).cloned()).unwrap();
        assert_eq!(config.store_endpoint, "http://127.0.0.1:9000");
        let debug = format!("{config:?}");
        assert!(!debug.contains("SECRET") && !debug.contains("TOKEN") && !debug.contains("0123"));
    }

    #[test]
    fn refuses_to_run_open_by_accident() {
        let v = vars(&[("signing_keys", "")]);
        let err = EdgeConfig::from_lookup(|n| v.get(n).cloned()).unwrap_err();
        assert!(err.contains("allow_unsigned"), "{err}");
        let v = vars(&[("signing_keys", ""), ("allow_unsigned", "true")]);
        assert!(EdgeConfig::from_lookup(|n| v.get(n).cloned()).is_ok());
    }

    #[test]
    fn redirect_mode_needs_a_public_store_url() {
        let v = vars(&[("mode", "redirect")]);
        let err = EdgeConfig::from_lookup(|n| v.get(n).cloned()).unwrap_err();
        assert!(err.contains("public_store_url"), "{err}");
        let v = vars(&[
            ("mode", "redirect"),
            ("public_store_url", "https://cdn.example.com/"),
        ]);
        let config = EdgeConfig::from_lookup(|n| v.get(n).cloned()).unwrap();
        assert_eq!(
            config.mode,
            Mode::Redirect {
                public_store_url: "https://cdn.example.com".into(),
                origin_public_url: "http://127.0.0.1:8081".into(),
            }
        );
        let v = vars(&[("mode", "proxy")]);
        assert!(EdgeConfig::from_lookup(|n| v.get(n).cloned()).is_err());
    }

    #[test]
    fn reports_every_problem() {
        let err = EdgeConfig::from_lookup(|_| None).unwrap_err();
        for name in ["store_endpoint", "origin_url", "edge_token", "signing_keys"] {
            assert!(err.contains(name), "{name} missing from {err}");
        }
        let v = vars(&[
            ("origin_timeout_secs", "soon"),
            ("index_ttl_secs", "-1"),
            ("access_log", "maybe"),
        ]);
        let err = EdgeConfig::from_lookup(|n| v.get(n).cloned()).unwrap_err();
        for problem in [
            "origin_timeout_secs must be a number of seconds, not \"soon\"",
            "index_ttl_secs must be a number of seconds, not \"-1\"",
            "access_log must be true or false, not \"maybe\"",
        ] {
            assert!(err.contains(problem), "{problem:?} missing from {err}");
        }
        let v = vars(&[]);
        let config = EdgeConfig::from_lookup(|n| v.get(n).cloned()).unwrap();
        assert_eq!(config.origin_timeout_secs, DEFAULT_ORIGIN_TIMEOUT_SECS);
        assert!(config.access_log);
    }
}
