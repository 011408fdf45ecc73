//! A card template's schema: its size, its parameters and its revision.
//!
//! Each template lives in its own folder with a `template.toml` (this schema) next
//! to its HTML. Edge and origin read the same file, so both reject the same bad
//! requests and derive the same object key.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::{CardRequest, ContractError, ImageFormat, limits, query::VERSION_PARAM};

/// The manifest's file name inside a template folder.
pub const MANIFEST_FILE: &str = "template.toml";

/// A template's schema, as written in its `template.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSpec {
    /// What the card is for, for humans.
    #[serde(default)]
    pub description: String,
    /// Bumped on every visual change; part of the object key, so a redesign
    /// never serves stale cards.
    pub revision: u32,
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    /// Run the page's scripts. Off by default: cards are HTML and CSS.
    #[serde(default)]
    pub javascript: bool,
    /// Hosts the page may load images and fonts from (`images.example.com`, or
    /// `*.example.com` for its subdomains). Everything else is blocked.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Where `/og/{template}/{id}.{ext}` cards get their parameters.
    pub data_source: Option<DataSource>,
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
}

/// A JSON API the origin asks for a record's fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSource {
    /// The record's URL, with `{id}` where the id goes:
    /// `https://api.example.com/listings/{id}`.
    pub url: String,
    /// Where each parameter is in the JSON, as a JSON pointer (`/seller/name`).
    /// A parameter not listed is read from the top-level field of its name.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// One parameter of a template.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(default)]
    pub required: bool,
    /// Longest accepted value, in characters.
    #[serde(default = "default_max_chars")]
    pub max_chars: usize,
    /// Used when the URL leaves the parameter out.
    pub default: Option<String>,
    #[serde(default)]
    pub kind: ParamKind,
}

/// What a parameter's value is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ParamKind {
    /// Text, shown as text (HTML-escaped).
    #[default]
    Text,
    /// An `https://` URL on one of the template's `allowed_hosts` (for an image).
    Url,
}

fn default_width() -> u32 {
    1200
}
fn default_height() -> u32 {
    630
}
fn default_max_chars() -> usize {
    limits::DEFAULT_MAX_PARAM_CHARS
}

/// A card request checked against its template: everything that identifies the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanonicalCard {
    pub template: String,
    pub revision: u32,
    pub format: ImageFormat,
    /// The data-source record, for `/og/{template}/{id}.{ext}` cards.
    pub record: Option<String>,
    /// Parameter cards: every template parameter with a value (given or
    /// default), plus `v` if given. Record cards: `v` only; the rest comes from
    /// the data source.
    pub params: BTreeMap<String, String>,
}

impl CardSpec {
    /// Parses and checks a `template.toml`.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        let spec: CardSpec = toml::from_str(text).map_err(|e| e.to_string())?;
        for side in [spec.width, spec.height] {
            if side == 0 || side > limits::MAX_CARD_SIDE {
                return Err(format!(
                    "width and height must be 1..={}",
                    limits::MAX_CARD_SIDE
                ));
            }
        }
        for (name, param) in &spec.params {
            if name == VERSION_PARAM || name == "s" || name == "k" {
                return Err(format!("parameter name {name:?} is reserved"));
            }
            if param.required && param.default.is_some() {
                return Err(format!("parameter {name:?} is required and has a default"));
            }
            if param.kind == ParamKind::Url && spec.allowed_hosts.is_empty() {
                return Err(format!(
                    "parameter {name:?} is a url but the template has no allowed_hosts"
                ));
            }
        }
        for host in &spec.allowed_hosts {
            let bare = host.strip_prefix("*.").unwrap_or(host);
            if bare.is_empty()
                || !bare
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            {
                return Err(format!(
                    "allowed host {host:?} must be a host name like images.example.com"
                ));
            }
        }
        if let Some(source) = &spec.data_source {
            if source.url.matches("{id}").count() != 1 {
                return Err("data_source.url must contain {id} exactly once".into());
            }
            if !(source.url.starts_with("https://") || source.url.starts_with("http://")) {
                return Err("data_source.url must be an http(s) URL".into());
            }
            if let Some(unknown) = source.fields.keys().find(|f| !spec.params.contains_key(*f)) {
                return Err(format!(
                    "data_source.fields names unknown parameter {unknown:?}"
                ));
            }
        }
        Ok(spec)
    }

    /// Checks a request against this schema and fills in defaults. Unknown
    /// parameters are refused rather than ignored, so a typo shows up at once and
    /// junk parameters cannot mint new cache entries.
    pub fn canonicalize(&self, request: &CardRequest) -> Result<CanonicalCard, ContractError> {
        let mut given = request.query.params.clone();
        let version = given.remove(VERSION_PARAM);
        let params = match &request.record {
            // A record's data comes from the data source; the URL only versions it.
            Some(_) => {
                if self.data_source.is_none() {
                    return Err(ContractError::NoDataSource(request.template.clone()));
                }
                if let Some(name) = given.keys().next() {
                    return Err(ContractError::UnknownParam {
                        template: request.template.clone(),
                        param: name.clone(),
                        allowed: VERSION_PARAM.into(),
                    });
                }
                BTreeMap::new()
            }
            None => self.check_params(&request.template, given)?,
        };
        let mut params = params;
        if let Some(v) = version {
            params.insert(VERSION_PARAM.into(), v);
        }
        Ok(CanonicalCard {
            template: request.template.clone(),
            revision: self.revision,
            format: request.format,
            record: request.record.clone(),
            params,
        })
    }

    /// Checks parameters against the schema and fills in defaults: for the query
    /// of a parameter card, and for the fields read from a data source.
    pub fn check_params(
        &self,
        template: &str,
        given: BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>, ContractError> {
        let mut params = BTreeMap::new();
        for (name, value) in given {
            let Some(spec) = self.params.get(&name) else {
                return Err(ContractError::UnknownParam {
                    template: template.to_string(),
                    param: name,
                    allowed: self.params.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            };
            if value.chars().count() > spec.max_chars {
                return Err(ContractError::ParamTooLong {
                    param: name,
                    max: spec.max_chars,
                });
            }
            if spec.kind == ParamKind::Url && !self.allows_url(&value) {
                return Err(ContractError::UrlNotAllowed {
                    param: name,
                    allowed: self.allowed_hosts.join(", "),
                });
            }
            params.insert(name, value);
        }
        for (name, spec) in &self.params {
            if params.contains_key(name) {
                continue;
            }
            match &spec.default {
                Some(default) if !default.is_empty() => {
                    params.insert(name.clone(), default.clone());
                }
                Some(_) => {}
                None if spec.required => {
                    return Err(ContractError::MissingParam {
                        template: template.to_string(),
                        param: name.clone(),
                    });
                }
                None => {}
            }
        }
        Ok(params)
    }

    /// Reads a record's parameters from its data-source JSON: strings and
    /// numbers at each parameter's JSON pointer; anything else counts as absent.
    pub fn params_from_record(
        &self,
        template: &str,
        record: &serde_json::Value,
    ) -> Result<BTreeMap<String, String>, ContractError> {
        let fields = self.data_source.as_ref().map(|s| &s.fields);
        let mut given = BTreeMap::new();
        for name in self.params.keys() {
            let pointer = fields
                .and_then(|f| f.get(name))
                .cloned()
                .unwrap_or_else(|| format!("/{name}"));
            let value = match record.pointer(&pointer) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Number(n)) => n.to_string(),
                _ => continue,
            };
            if !value.is_empty() {
                given.insert(name.clone(), value);
            }
        }
        self.check_params(template, given)
    }

    /// The data-source URL for a record id (ids are `[A-Za-z0-9_-]`, so no escaping is needed).
    pub fn record_url(&self, id: &str) -> Option<String> {
        self.data_source.as_ref().map(|s| s.url.replace("{id}", id))
    }

    /// Whether the page may load `url`: `https` on one of `allowed_hosts`.
    pub fn allows_url(&self, url: &str) -> bool {
        https_host(url).is_some_and(|host| {
            self.allowed_hosts
                .iter()
                .any(|allowed| match allowed.strip_prefix("*.") {
                    Some(parent) => host
                        .strip_suffix(parent)
                        .is_some_and(|sub| sub.ends_with('.') && sub.len() > 1),
                    None => host == allowed.to_ascii_lowercase(),
                })
        })
    }
}

/// The host of an `https://` URL, lowercased, refusing anything unusual
/// (user info, backslashes, missing host) rather than guessing how a browser
/// would read it.
fn https_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.is_empty()
        || authority.contains(['@', '\\', '%'])
        || url.contains(char::is_whitespace)
    {
        return None;
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return None,
        None => authority,
    };
    Some(host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route;

    const PRODUCT: &str = r#"
        revision = 3
        [params.title]
        required = true
        max_chars = 10
        [params.brand]
        default = "imgate"
        [params.price]
    "#;

    fn card(query: &str) -> CardRequest {
        parse(&format!("/og/product.png?{query}"))
    }

    #[test]
    fn fills_defaults_and_keeps_version() {
        let spec = CardSpec::from_toml(PRODUCT).unwrap();
        assert_eq!((spec.width, spec.height), (1200, 630));
        let c = spec.canonicalize(&card("title=Hi&v=9")).unwrap();
        assert_eq!(c.revision, 3);
        assert_eq!(c.record, None);
        let got: Vec<_> = c.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(got, ["brand=imgate", "title=Hi", "v=9"]);
        // Spelling out the default names the same image.
        assert_eq!(
            c,
            spec.canonicalize(&card("brand=imgate&v=9&title=Hi"))
                .unwrap()
        );
    }

    #[test]
    fn refuses_bad_params() {
        let spec = CardSpec::from_toml(PRODUCT).unwrap();
        assert_eq!(
            spec.canonicalize(&card("brand=x")).unwrap_err().code(),
            "missing-param"
        );
        assert_eq!(
            spec.canonicalize(&card("title=0123456789x"))
                .unwrap_err()
                .code(),
            "param-too-long"
        );
        // Ten characters is the limit, counted in characters not bytes.
        assert!(
            spec.canonicalize(&card(
                "title=%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9"
            ))
            .is_ok()
        );
        assert_eq!(
            spec.canonicalize(&card("title=a&colour=red"))
                .unwrap_err()
                .code(),
            "unknown-param"
        );
    }

    const LISTING: &str = r#"
        revision = 2
        allowed_hosts = ["images.example.com", "*.cdn.example.com"]
        [data_source]
        url = "https://api.example.com/listings/{id}"
        fields = { title = "/name", photo = "/images/0" }
        [params.title]
        required = true
        [params.price]
        [params.photo]
        kind = "url"
    "#;

    fn parse(url: &str) -> CardRequest {
        route::parse_card_url(url).unwrap()
    }

    #[test]
    fn record_cards_are_identified_by_id_and_version() {
        let spec = CardSpec::from_toml(LISTING).unwrap();
        let c = spec
            .canonicalize(&parse("/og/listing/42.png?v=2026-11-01"))
            .unwrap();
        assert_eq!(c.record.as_deref(), Some("42"));
        assert_eq!(c.params.len(), 1);
        assert_eq!(
            spec.canonicalize(&parse("/og/listing/42.png?title=x"))
                .unwrap_err()
                .code(),
            "unknown-param"
        );
        let product = CardSpec::from_toml(PRODUCT).unwrap();
        assert_eq!(
            product
                .canonicalize(&parse("/og/product/42.png"))
                .unwrap_err()
                .code(),
            "no-data-source"
        );
        assert_eq!(
            spec.record_url("42").unwrap(),
            "https://api.example.com/listings/42"
        );
    }

    #[test]
    fn record_fields_are_read_by_pointer_and_checked() {
        let spec = CardSpec::from_toml(LISTING).unwrap();
        let json = serde_json::json!({
            "name": "Loft <b>", "price": 1200, "images": ["https://a.cdn.example.com/1.jpg"], "ignored": true
        });
        let params = spec.params_from_record("listing", &json).unwrap();
        let got: Vec<_> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            got,
            [
                "photo=https://a.cdn.example.com/1.jpg",
                "price=1200",
                "title=Loft <b>"
            ]
        );
        let missing = spec
            .params_from_record("listing", &serde_json::json!({"price": 3}))
            .unwrap_err();
        assert_eq!(missing.code(), "missing-param");
    }

    #[test]
    fn url_params_must_point_at_allowed_hosts() {
        let spec = CardSpec::from_toml(LISTING).unwrap();
        for ok in [
            "https://images.example.com/a.png",
            "https://IMAGES.example.com:443/a",
            "https://x.cdn.example.com/a",
        ] {
            assert!(spec.allows_url(ok), "{ok}");
        }
        for bad in [
            "http://images.example.com/a.png",
            "https://127.0.0.1/",
            "https://images.example.com.evil.net/",
            "https://evil.net/?https://images.example.com",
            "https://user@images.example.com/",
            "https://cdn.example.com/",
            "https://images.example.com\\@evil.net/",
            "javascript:alert(1)",
            "https://images.example.com:x/",
        ] {
            assert!(!spec.allows_url(bad), "{bad}");
        }
        let err = spec
            .canonicalize(&parse(
                "/og/listing.png?title=t&photo=https%3A%2F%2F10.0.0.1%2Fx",
            ))
            .unwrap_err();
        assert_eq!(err.code(), "url-not-allowed");
    }

    #[test]
    fn rejects_bad_manifests() {
        assert!(
            CardSpec::from_toml("revision = 1\n[params.p]\nkind = \"url\"").is_err(),
            "url without hosts"
        );
        assert!(
            CardSpec::from_toml("revision = 1\n[data_source]\nurl = \"https://x/\"").is_err(),
            "no {{id}}"
        );
        assert!(CardSpec::from_toml("revision = 1\nallowed_hosts = [\"a/b\"]").is_err());
        assert!(CardSpec::from_toml("revision = 1\nwidth = 0").is_err());
        assert!(CardSpec::from_toml("revision = 1\n[params.v]").is_err());
        assert!(CardSpec::from_toml("revision = 1\nsurprise = true").is_err());
        assert!(
            CardSpec::from_toml("revision = 1\n[params.a]\nrequired = true\ndefault = \"x\"")
                .is_err()
        );
        assert!(
            CardSpec::from_toml("width = 10").is_err(),
            "revision is required"
        );
    }
}
