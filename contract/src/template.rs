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
    #[serde(default)]
    pub params: BTreeMap<String, ParamSpec>,
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
    /// Every template parameter with a value (given or default), plus `v` if given.
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
        }
        Ok(spec)
    }

    /// Checks a request against this schema and fills in defaults. Unknown
    /// parameters are refused rather than ignored, so a typo shows up at once and
    /// junk parameters cannot mint new cache entries.
    pub fn canonicalize(&self, request: &CardRequest) -> Result<CanonicalCard, ContractError> {
        let mut params = BTreeMap::new();
        for (name, value) in &request.query.params {
            if name == VERSION_PARAM {
                params.insert(name.clone(), value.clone());
                continue;
            }
            let Some(spec) = self.params.get(name) else {
                return Err(ContractError::UnknownParam {
                    template: request.template.clone(),
                    param: name.clone(),
                    allowed: self.params.keys().cloned().collect::<Vec<_>>().join(", "),
                });
            };
            if value.chars().count() > spec.max_chars {
                return Err(ContractError::ParamTooLong {
                    param: name.clone(),
                    max: spec.max_chars,
                });
            }
            params.insert(name.clone(), value.clone());
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
                        template: request.template.clone(),
                        param: name.clone(),
                    });
                }
                None => {}
            }
        }
        Ok(CanonicalCard {
            template: request.template.clone(),
            revision: self.revision,
            format: request.format,
            params,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::route::{self, Route};

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
        match route::parse("GET", "/og/product.png", query).unwrap() {
            Route::Card(c) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fills_defaults_and_keeps_version() {
        let spec = CardSpec::from_toml(PRODUCT).unwrap();
        assert_eq!((spec.width, spec.height), (1200, 630));
        let c = spec.canonicalize(&card("title=Hi&v=9")).unwrap();
        assert_eq!(c.revision, 3);
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

    #[test]
    fn rejects_bad_manifests() {
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
