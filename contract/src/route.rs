//! The URL grammar: which paths exist and what they ask for.
//!
//! ```text
//! GET /healthz
//! GET /og/{template}.{png|jpg|webp}?{params}[&v=…][&k=…&s=…]
//! GET /og/{template}/{id}.{png|jpg|webp}[?v=…][&k=…&s=…]
//! GET /r/{preset}/{source-key}[?format=jpg|png|webp|auto][&k=…&s=…]
//! ```
//!
//! The second card form names a record: the origin fetches its data from the
//! template's data source. The third is a rendition of an uploaded original
//! (see [`crate::rendition`]).

use crate::{ContractError, ImageFormat, Query, RenditionRequest, limits};

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    Card(CardRequest),
    Rendition(RenditionRequest),
}

/// A request a URL signature can vouch for.
pub trait Signable {
    /// The canonical path the signature covers.
    fn path(&self) -> String;
    /// The query carrying the identity parameters and the signature.
    fn query(&self) -> &Query;

    /// The canonical path and query the signature covers.
    fn signed_string(&self) -> String {
        let query = self.query().canonical();
        if query.is_empty() {
            self.path()
        } else {
            format!("{}?{}", self.path(), query)
        }
    }

    /// The canonical URL with the signature it came with, if any.
    fn url(&self) -> String {
        let mut url = self.signed_string();
        let query = self.query();
        for (name, value) in [("k", &query.key_id), ("s", &query.signature)] {
            if let Some(value) = value {
                url.push(if url.contains('?') { '&' } else { '?' });
                url.push_str(name);
                url.push('=');
                url.extend(percent_encoding::utf8_percent_encode(
                    value,
                    crate::query::ESCAPED,
                ));
            }
        }
        url
    }
}

impl Signable for CardRequest {
    fn path(&self) -> String {
        CardRequest::path(self)
    }
    fn query(&self) -> &Query {
        &self.query
    }
}

impl Signable for RenditionRequest {
    fn path(&self) -> String {
        RenditionRequest::path(self)
    }
    fn query(&self) -> &Query {
        &self.query
    }
}

impl Route {
    /// The signable request, for every route that needs a signature.
    pub fn signable(&self) -> Option<&dyn Signable> {
        match self {
            Route::Health => None,
            Route::Card(card) => Some(card),
            Route::Rendition(rendition) => Some(rendition),
        }
    }
}

/// A card: `/og/{template}.{ext}?params` draws it from query parameters,
/// `/og/{template}/{id}.{ext}` from the record `id` of the template's data source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardRequest {
    pub template: String,
    /// The record id, for data-source cards.
    pub record: Option<String>,
    pub format: ImageFormat,
    pub query: Query,
}

impl CardRequest {
    /// The canonical path (`/og/product.png`, `/og/listing/42.png`), with the
    /// canonical extension.
    pub fn path(&self) -> String {
        match &self.record {
            None => format!("/og/{}.{}", self.template, self.format.extension()),
            Some(id) => format!("/og/{}/{id}.{}", self.template, self.format.extension()),
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
    if let Some(rest) = path.strip_prefix("/r/") {
        return RenditionRequest::parse(rest, query).map(Route::Rendition);
    }
    Err(ContractError::NotFound(path.to_string()))
}

/// Parses a card URL's path and query (`/og/product.png?title=Hi`), for tools
/// that are handed a URL rather than a request: signing helpers, the render
/// command, tests.
pub fn parse_card_url(path_and_query: &str) -> Result<CardRequest, ContractError> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    match parse("GET", path, query)? {
        Route::Card(card) => Ok(card),
        Route::Health | Route::Rendition(_) => Err(ContractError::BadPath(format!(
            "{path} is not a card URL (/og/{{template}}.{{ext}}?params)"
        ))),
    }
}

fn parse_card(rest: &str, query: &str) -> Result<CardRequest, ContractError> {
    let (stem, ext) = rest.rsplit_once('.').ok_or_else(|| {
        ContractError::BadPath("expected /og/{template}.{ext} or /og/{template}/{id}.{ext}".into())
    })?;
    let (template, record) = match stem.split_once('/') {
        None => (stem, None),
        Some((template, id)) if is_valid_record_id(id) => (template, Some(id.to_string())),
        Some(_) => {
            return Err(ContractError::BadPath(format!(
                "record ids are 1-{} letters, digits, '-' and '_'",
                limits::MAX_RECORD_ID_LEN
            )));
        }
    };
    if !is_valid_template_name(template) {
        return Err(ContractError::BadPath(format!(
            "template names are 1-{} lowercase letters, digits and '-'",
            limits::MAX_TEMPLATE_NAME_LEN
        )));
    }
    Ok(CardRequest {
        template: template.to_string(),
        record,
        format: ImageFormat::from_extension(ext)?,
        query: Query::parse(query)?,
    })
}

/// Record ids go into a data-source URL and a hash, never a file path; they are
/// still kept to a set that needs no escaping anywhere.
pub fn is_valid_record_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= limits::MAX_RECORD_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
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
    fn parses_a_data_source_card() {
        let Route::Card(card) = parse("GET", "/og/listing/ab-12_C.webp", "v=7").unwrap() else {
            panic!("not a card")
        };
        assert_eq!(
            (card.template.as_str(), card.record.as_deref()),
            ("listing", Some("ab-12_C"))
        );
        assert_eq!(card.signed_string(), "/og/listing/ab-12_C.webp?v=7");
    }

    #[test]
    fn parses_card_urls() {
        let card = parse_card_url("/og/product.png?title=Hi").unwrap();
        assert_eq!(card.signed_string(), "/og/product.png?title=Hi");
        assert_eq!(
            parse_card_url("/og/basic.jpg").unwrap().query,
            Query::default()
        );
        assert!(matches!(
            parse_card_url("/healthz"),
            Err(ContractError::BadPath(_))
        ));
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
            "/og/a/b/c.png",
            "/og/a/.png",
            "/og/a/b%2F.png",
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
            Err(ContractError::UnknownFormat { .. })
        ));
        let long = format!("/og/{}.png", "a".repeat(limits::MAX_PATH_LEN));
        assert!(matches!(
            parse("GET", &long, ""),
            Err(ContractError::PathTooLong { .. })
        ));
    }
}
