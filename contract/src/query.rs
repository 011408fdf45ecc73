//! Query strings: strict parsing and the one canonical encoding.
//!
//! Canonical form: parameters sorted by name, empty values dropped, each name and
//! value percent-encoded with everything but RFC 3986 unreserved characters
//! escaped (so `+`, `%20` and a raw space all become `%20`). Two query strings that
//! mean the same thing have the same canonical form, and the signature covers
//! exactly that form.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::{ContractError, limits};

/// Everything but `A-Z a-z 0-9 - . _ ~` is escaped.
pub(crate) const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The reserved parameter carrying the signature.
pub const SIGNATURE_PARAM: &str = "s";
/// The reserved parameter naming the signing key.
pub const KEY_ID_PARAM: &str = "k";
/// The reserved parameter versioning the image (for example a record's updated-at).
pub const VERSION_PARAM: &str = "v";

/// A parsed query: the parameters that identify the image, and the signature that vouches for them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Identity parameters (including `v`), sorted, without empty values.
    pub params: BTreeMap<String, String>,
    /// `k`, if given.
    pub key_id: Option<String>,
    /// `s`, if given.
    pub signature: Option<String>,
}

impl Query {
    /// Parses a raw query string (without the leading `?`).
    pub fn parse(raw: &str) -> Result<Self, ContractError> {
        if raw.len() > limits::MAX_QUERY_LEN {
            return Err(ContractError::QueryTooLong {
                max: limits::MAX_QUERY_LEN,
            });
        }
        let mut query = Query::default();
        let mut seen = 0usize;
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            seen += 1;
            if seen > limits::MAX_PARAMS {
                return Err(ContractError::TooManyParams {
                    max: limits::MAX_PARAMS,
                });
            }
            let (raw_name, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let name = decode(raw_name)?;
            if !is_valid_name(&name) {
                return Err(ContractError::BadParamName(name));
            }
            let value = decode(raw_value).map_err(|_| ContractError::BadEncoding(name.clone()))?;
            let slot = match name.as_str() {
                SIGNATURE_PARAM => &mut query.signature,
                KEY_ID_PARAM => &mut query.key_id,
                _ => {
                    if query.params.contains_key(&name) {
                        return Err(ContractError::DuplicateParam(name));
                    }
                    if name == VERSION_PARAM && value.chars().count() > limits::MAX_VERSION_CHARS {
                        return Err(ContractError::ParamTooLong {
                            param: name,
                            max: limits::MAX_VERSION_CHARS,
                        });
                    }
                    // An empty value means the same as no value: dropping it keeps
                    // `?a=&b=1` and `?b=1` on one key and one signature.
                    if !value.is_empty() {
                        query.params.insert(name, value);
                    }
                    continue;
                }
            };
            if slot.is_some() {
                return Err(ContractError::DuplicateParam(name));
            }
            // Key ids and signatures are plain tokens: checked here, they can
            // never make the canonical URL longer than what was accepted.
            let max = if name == KEY_ID_PARAM {
                limits::MAX_KEY_ID_LEN
            } else {
                limits::MAX_SIGNATURE_LEN
            };
            if !is_token(&value, max) {
                return Err(if name == KEY_ID_PARAM {
                    ContractError::UnknownKey(value.chars().take(32).collect())
                } else {
                    ContractError::BadSignature
                });
            }
            *slot = Some(value);
        }
        // Bounded: at most three times the raw query.
        if query.canonical().len() > limits::MAX_CANONICAL_QUERY_LEN {
            return Err(ContractError::CanonicalQueryTooLong {
                max: limits::MAX_CANONICAL_QUERY_LEN,
            });
        }
        Ok(query)
    }

    /// The canonical encoding of the identity parameters (no `s`, no `k`).
    pub fn canonical(&self) -> String {
        encode_params(&self.params)
    }
}

/// Encodes sorted parameters in the canonical form.
pub fn encode_params(params: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    for (name, value) in params {
        if !out.is_empty() {
            out.push('&');
        }
        out.extend(utf8_percent_encode(name, ESCAPED));
        out.push('=');
        out.extend(utf8_percent_encode(value, ESCAPED));
    }
    out
}

/// 1 to `max` of `A-Z a-z 0-9 - _`: key ids and base64url signatures.
pub(crate) fn is_token(value: &str, max: usize) -> bool {
    (1..=max).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn decode(raw: &str) -> Result<String, ContractError> {
    // Form encoding: '+' is a space. Replace before decoding so `%2B` stays a plus.
    let plus_as_space = raw.replace('+', " ");
    percent_decode_str(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ContractError::BadEncoding(raw.chars().take(64).collect()))
}

fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= limits::MAX_PARAM_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_drops_empty_and_normalises_encoding() {
        let a = Query::parse("title=Hello+World&brand=&price=%2412").unwrap();
        let b = Query::parse("price=$12&title=Hello%20World").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.canonical(), "price=%2412&title=Hello%20World");
    }

    #[test]
    fn separates_signature_and_key_id() {
        let q = Query::parse("title=x&s=abc&k=k1&v=7").unwrap();
        assert_eq!(q.signature.as_deref(), Some("abc"));
        assert_eq!(q.key_id.as_deref(), Some("k1"));
        assert_eq!(q.canonical(), "title=x&v=7");
    }

    #[test]
    fn rejects_what_it_cannot_canonicalise() {
        assert!(matches!(
            Query::parse("a=1&a=2"),
            Err(ContractError::DuplicateParam(_))
        ));
        assert!(matches!(
            Query::parse("s=1&s=2"),
            Err(ContractError::DuplicateParam(_))
        ));
        assert!(matches!(
            Query::parse("a=%FF"),
            Err(ContractError::BadEncoding(_))
        ));
        assert!(matches!(
            Query::parse("a b=1"),
            Err(ContractError::BadParamName(_))
        ));
        let many = (0..40)
            .map(|i| format!("p{i}=1"))
            .collect::<Vec<_>>()
            .join("&");
        assert!(matches!(
            Query::parse(&many),
            Err(ContractError::TooManyParams { .. })
        ));
        let long = format!("a={}", "x".repeat(limits::MAX_QUERY_LEN));
        assert!(matches!(
            Query::parse(&long),
            Err(ContractError::QueryTooLong { .. })
        ));
    }

    #[test]
    fn whatever_is_accepted_stays_acceptable_once_encoded_and_signed() {
        // 1,400 raw backslashes are 4,200 bytes once escaped.
        let raw = format!("a={}", "\\".repeat(1400));
        assert!(raw.len() < limits::MAX_QUERY_LEN);
        assert!(matches!(
            Query::parse(&raw),
            Err(ContractError::CanonicalQueryTooLong { .. })
        ));
        let longest = format!("a={}", "x".repeat(limits::MAX_CANONICAL_QUERY_LEN - 2));
        let q = Query::parse(&longest).unwrap();
        let signed = format!(
            "{}&k={}&s={}",
            q.canonical(),
            "k".repeat(limits::MAX_KEY_ID_LEN),
            "s".repeat(limits::MAX_SIGNATURE_LEN)
        );
        assert_eq!(Query::parse(&signed).unwrap().params, q.params);
        assert!(matches!(
            Query::parse("a=1&s=not%20base64"),
            Err(ContractError::BadSignature)
        ));
        assert!(matches!(
            Query::parse(&format!("a=1&k={}", "k".repeat(33))),
            Err(ContractError::UnknownKey(_))
        ));
    }

    #[test]
    fn a_plus_sign_survives_when_escaped() {
        let q = Query::parse("price=1%2B1").unwrap();
        assert_eq!(q.params["price"], "1+1");
    }
}
