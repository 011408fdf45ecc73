//! The URL grammar: which paths exist and what they ask for.
//!
//! ```text
//! GET /healthz
//! GET /og/{template}.{png|jpg|webp}?{params}[&v=…][&k=…&s=…]
//! ```
//!
//! Data-source cards (`/og/{template}/{id}.{ext}`) and renditions
//! (`/r/{preset}/{source-key}`) become further [`Route`] variants.

use crate::{ContractError, ImageFormat, Query, limits};

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Card(CardRequest),
}

/// `/og/{template}.{ext}?params`: a card drawn from query parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRequest {
    pub template: String,
    pub format: ImageFormat,
    pub query: Query,
}

impl CardRequest {
    /// The canonical path (`/og/product.png`), with the canonical extension.
    pub fn path(&self) -> String {
        format!("/og/{}.{}", self.template, self.format.extension())
    }

    /// The canonical path and query the signature covers.
    pub fn signed_string(&self) -> String {
        let query = self.query.canonical();
        if query.is_empty() {
            self.path()
        } else {
            format!("{}?{}", self.path(), query)
        }
    }
}

/// Parses a request line. `query` is the raw query string without `?` (empty if none).
pub fn parse(method: &str, path: &str, query: &str) -> Result<Route, ContractError> {
    if path.len() > limits::MAX_PATH_LEN {
        return Err(ContractError::PathTooLong {
            max: limits::MAX_PATH_LEN,
        });
    }
    if method != "GET" && method != "HEAD" {
        return Err(ContractError::MethodNotAllowed(method.to_string()));
    }
    if path == "/healthz" {
        return Ok(Route::Health);
    }
    if let Some(rest) = path.strip_prefix("/og/") {
        return parse_card(rest, query).map(Route::Card);
    }
    Err(ContractError::NotFound(path.to_string()))
}

fn parse_card(rest: &str, query: &str) -> Result<CardRequest, ContractError> {
    let (template, ext) = rest
        .rsplit_once('.')
        .ok_or_else(|| ContractError::BadPath("expected /og/{template}.{png|jpg|webp}".into()))?;
    if !is_valid_template_name(template) {
        return Err(ContractError::BadPath(format!(
            "template names are 1-{} lowercase letters, digits and '-'",
            limits::MAX_TEMPLATE_NAME_LEN
        )));
    }
    Ok(CardRequest {
        template: template.to_string(),
        format: ImageFormat::from_extension(ext)?,
        query: Query::parse(query)?,
    })
}

/// Template names double as folder names and key segments, so they are kept to a
/// set that can never traverse a path or need escaping.
pub fn is_valid_template_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= limits::MAX_TEMPLATE_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_card() {
        let Route::Card(card) = parse("GET", "/og/product.jpeg", "title=Hi").unwrap() else {
            panic!("not a card")
        };
        assert_eq!(card.template, "product");
        assert_eq!(card.format, ImageFormat::Jpeg);
        assert_eq!(card.signed_string(), "/og/product.jpg?title=Hi");
    }

    #[test]
    fn health_and_errors() {
        assert_eq!(parse("GET", "/healthz", ""), Ok(Route::Health));
        assert!(matches!(
            parse("POST", "/og/a.png", ""),
            Err(ContractError::MethodNotAllowed(_))
        ));
        assert!(matches!(
            parse("GET", "/nope", ""),
            Err(ContractError::NotFound(_))
        ));
        for bad in [
            "/og/.png",
            "/og/../x.png",
            "/og/a/b.png",
            "/og/A.png",
            "/og/x",
        ] {
            assert!(
                matches!(parse("GET", bad, ""), Err(ContractError::BadPath(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse("GET", "/og/x.gif", ""),
            Err(ContractError::UnknownFormat(_))
        ));
        let long = format!("/og/{}.png", "a".repeat(limits::MAX_PATH_LEN));
        assert!(matches!(
            parse("GET", &long, ""),
            Err(ContractError::PathTooLong { .. })
        ));
    }
}
