//! URL signatures: HMAC-SHA256 over the canonical path and query, URL-safe base64
//! without padding, with a key id so several keys can be live during a rotation.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::{ContractError, Signable};

type HmacSha256 = Hmac<Sha256>;

/// Shortest secret accepted, in bytes: HMAC-SHA256 gains nothing from more than 32,
/// and fewer is guessable.
pub const MIN_SECRET_LEN: usize = 32;

/// The set of keys a deployment accepts. The first one signs.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: Vec<(String, Vec<u8>)>,
}

// Secrets must never reach a log line, so Debug shows key ids only.
impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.keys.iter().map(|(id, _)| id))
            .finish()
    }
}

impl Keyring {
    /// Parses `id:secret[,id:secret…]`. Empty input means no keys.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, secret) = entry
                .split_once(':')
                .ok_or("signing keys are written id:secret, separated by commas")?;
            if !crate::query::is_token(id, crate::limits::MAX_KEY_ID_LEN) {
                return Err(format!(
                    "signing key id {id:?} must be 1-{} letters, digits, '-' or '_'",
                    crate::limits::MAX_KEY_ID_LEN
                ));
            }
            if secret.len() < MIN_SECRET_LEN {
                return Err(format!(
                    "signing key {id:?} is {} bytes; use at least {MIN_SECRET_LEN}",
                    secret.len()
                ));
            }
            if keys.iter().any(|(known, _)| known == id) {
                return Err(format!("signing key id {id:?} appears twice"));
            }
            keys.push((id.to_string(), secret.as_bytes().to_vec()));
        }
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The id of the key that signs new URLs.
    pub fn signing_key_id(&self) -> Option<&str> {
        self.keys.first().map(|(id, _)| id.as_str())
    }

    /// Signs a canonical string with the first key; `None` without keys.
    pub fn sign(&self, canonical: &str) -> Option<(String, String)> {
        let (id, secret) = self.keys.first()?;
        Some((
            id.clone(),
            URL_SAFE_NO_PAD.encode(mac(secret, canonical).finalize().into_bytes()),
        ))
    }

    /// Returns the request's canonical URL with `k` and `s` appended.
    pub fn sign_url(&self, request: &(impl Signable + ?Sized)) -> Option<String> {
        let canonical = request.signed_string();
        let (id, sig) = self.sign(&canonical)?;
        let sep = if canonical.contains('?') { '&' } else { '?' };
        Some(format!("{canonical}{sep}k={id}&s={sig}"))
    }

    /// Checks a request's signature in constant time.
    pub fn verify(&self, request: &(impl Signable + ?Sized)) -> Result<(), ContractError> {
        let query = request.query();
        let (Some(id), Some(sig)) = (&query.key_id, &query.signature) else {
            return Err(ContractError::MissingSignature);
        };
        let (_, secret) = self
            .keys
            .iter()
            .find(|(known, _)| known == id)
            .ok_or_else(|| ContractError::UnknownKey(id.chars().take(32).collect()))?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| ContractError::BadSignature)?;
        mac(secret, &request.signed_string())
            .verify_slice(&sig)
            .map_err(|_| ContractError::BadSignature)
    }
}

/// Compares two secrets without revealing, through timing, where they differ.
/// (Lengths are not secret: tokens have a fixed, documented minimum.)
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn mac(secret: &[u8], message: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(message.as_bytes());
    mac
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CardRequest, Route, route};

    const K1: &str = "k1:0123456789abcdef0123456789abcdef";

    fn card(url: &str) -> CardRequest {
        route::parse_card_url(url).unwrap()
    }

    #[test]
    fn signs_and_verifies() {
        let ring = Keyring::parse(K1).unwrap();
        let url = ring.sign_url(&card("/og/p.png?title=Hi")).unwrap();
        assert!(url.starts_with("/og/p.png?title=Hi&k=k1&s="), "{url}");
        assert_eq!(ring.verify(&card(&url)), Ok(()));
        let forged = url.replace("title=Hi", "title=Ho");
        assert_eq!(
            ring.verify(&card(&forged)),
            Err(ContractError::BadSignature)
        );
        assert_eq!(
            ring.verify(&card("/og/p.png?title=Hi")),
            Err(ContractError::MissingSignature)
        );
    }

    #[test]
    fn renditions_are_signed_the_same_way() {
        let ring = Keyring::parse(K1).unwrap();
        let parse = |url: &str| {
            let (path, query) = url.split_once('?').unwrap_or((url, ""));
            route::parse("GET", path, query).unwrap()
        };
        let Route::Rendition(r) = parse("/r/small/u/1/a.jpg?format=auto") else {
            panic!()
        };
        let url = ring.sign_url(&r).unwrap();
        assert!(
            url.starts_with("/r/small/u/1/a.jpg?format=auto&k=k1&s="),
            "{url}"
        );
        let route = parse(&url);
        assert_eq!(ring.verify(route.signable().unwrap()), Ok(()));
        let other = parse(&url.replace("format=auto", "format=webp"));
        assert_eq!(
            ring.verify(other.signable().unwrap()),
            Err(ContractError::BadSignature)
        );
        let moved = parse(&url.replace("/small/", "/large/"));
        assert_eq!(
            ring.verify(moved.signable().unwrap()),
            Err(ContractError::BadSignature)
        );
    }

    #[test]
    fn rotation_accepts_old_and_new_keys() {
        let old = Keyring::parse(K1).unwrap();
        let url = old.sign_url(&card("/og/p.png?title=Hi")).unwrap();
        let rotated = Keyring::parse(&format!("k2:{},{K1}", "z".repeat(40))).unwrap();
        assert_eq!(rotated.signing_key_id(), Some("k2"));
        assert_eq!(rotated.verify(&card(&url)), Ok(()));
        let retired = Keyring::parse(&format!("k2:{}", "z".repeat(40))).unwrap();
        assert!(matches!(
            retired.verify(&card(&url)),
            Err(ContractError::UnknownKey(_))
        ));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn parse_rejects_weak_or_malformed_keys() {
        assert!(Keyring::parse("").unwrap().is_empty());
        assert!(Keyring::parse("k1:short").is_err());
        assert!(Keyring::parse("nocolon").is_err());
        assert!(Keyring::parse(&format!("{K1},{K1}")).is_err());
        assert!(!format!("{:?}", Keyring::parse(K1).unwrap()).contains("0123"));
    }
}
