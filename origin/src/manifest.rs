//! The record of what was made from one original, kept in the bucket at
//! `manifests/{source-key}.json`: the uploads API answers with it and the
//! backfill reads it to skip work already done. It replaces a database row of
//! rendition URLs.

use imgate_contract::error::ErrorDetail;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// An upload URL was handed out; the original may not be there yet.
    Pending,
    /// Every rendition was stored.
    Complete,
    /// The original cannot be made into renditions (see `error`), or some
    /// renditions failed (see each one's `error`).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The original's key below `originals/`.
    pub source: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload: Option<Upload>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<OriginalInfo>,
    /// `format=auto` URL per preset: WebP or JPEG, as the browser accepts.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub auto_urls: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub renditions: Vec<Rendition>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
    /// Unix seconds.
    pub updated_at: u64,
}

/// What the uploader declared when it asked for an upload URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upload {
    pub id: String,
    pub content_type: String,
    pub bytes: u64,
    /// Unix seconds.
    pub created_at: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OriginalInfo {
    pub bytes: u64,
    /// Upright, after EXIF orientation.
    pub width: u32,
    pub height: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rendition {
    pub preset: String,
    /// File extension: `jpg`, `png` or `webp`.
    pub format: String,
    pub key: String,
    /// The public URL, signed when the origin has signing keys; a path when no
    /// public base URL is configured.
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

impl Manifest {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest always serialises")
    }
}

/// Now, in Unix seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
