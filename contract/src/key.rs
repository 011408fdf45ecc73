//! Where an image lives in the bucket.
//!
//! Cards: `og/{template}/{digest}.{ext}`, where the digest is SHA-256 over the
//! template revision and the canonical parameters. Template names are restricted
//! to `[a-z0-9-]`, and everything else is a hex digest.
//! Renditions: `renditions/{preset}/{source-key}.{ext}`, source keys restricted by
//! [`crate::rendition::check_source_key`].
//! Originals: `originals/{source-key}`; what was made of each:
//! `manifests/{source-key}.json`.
//! Either way a key can never escape its prefix however the URL was crafted.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::rendition::ORIGINALS_PREFIX;
use crate::{CanonicalCard, ImageFormat, query::encode_params};

/// An S3 object key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    pub fn for_card(card: &CanonicalCard) -> Self {
        let mut hasher = Sha256::new();
        // Length-prefixed fields, so no two distinct inputs hash the same bytes.
        for field in [
            card.template.as_str(),
            &card.revision.to_string(),
            card.record.as_deref().unwrap_or(""),
            &encode_params(&card.params),
        ] {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field.as_bytes());
        }
        let digest = hex(&hasher.finalize());
        Self(format!(
            "og/{}/{}.{}",
            card.template,
            digest,
            card.format.extension()
        ))
    }

    /// `renditions/{preset}/{source-key}.{ext}`. The source's own extension stays
    /// in the key: `beach.jpg` and `beach.png` are different photos.
    pub fn for_rendition(preset: &str, source: &str, format: ImageFormat) -> Self {
        Self(format!(
            "renditions/{preset}/{source}.{}",
            format.extension()
        ))
    }

    /// `originals/{source-key}`: where an upload lives.
    pub fn for_original(source: &str) -> Self {
        Self(format!("{ORIGINALS_PREFIX}{source}"))
    }

    /// `manifests/{source-key}.json`: what was made from an original. Kept out
    /// of `originals/` so a store event on that prefix never fires for it.
    pub fn for_manifest(source: &str) -> Self {
        Self(format!("manifests/{source}.json"))
    }

    /// `doctor/{id}`: a probe `imgate-origin doctor` writes and deletes.
    pub fn for_probe(id: &str) -> Self {
        Self(format!("doctor/{id}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn card(revision: u32, title: &str) -> CanonicalCard {
        CanonicalCard {
            template: "product".into(),
            revision,
            format: ImageFormat::Png,
            record: None,
            params: BTreeMap::from([("title".to_string(), title.to_string())]),
        }
    }

    #[test]
    fn key_shape_and_sensitivity() {
        let key = ObjectKey::for_card(&card(1, "a"));
        let s = key.as_str();
        assert!(s.starts_with("og/product/") && s.ends_with(".png"), "{s}");
        assert_eq!(s.len(), "og/product/".len() + 64 + ".png".len());
        assert_eq!(key, ObjectKey::for_card(&card(1, "a")));
        assert_ne!(
            key,
            ObjectKey::for_card(&card(2, "a")),
            "revision is in the key"
        );
        assert_ne!(key, ObjectKey::for_card(&card(1, "b")));
        let record = CanonicalCard {
            record: Some("42".into()),
            ..card(1, "a")
        };
        assert_ne!(
            key,
            ObjectKey::for_card(&record),
            "the record is in the key"
        );
    }
}
