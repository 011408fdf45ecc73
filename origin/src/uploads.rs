//! Presigned uploads: `POST /uploads` hands out a URL to PUT one original
//! straight to the store; `POST /uploads/{id}/complete` makes every preset from
//! it; `GET /uploads/{id}` answers its manifest. All three need an API key.

use std::time::Duration;

use imgate_contract::{ContractError, ObjectKey, sign::constant_time_eq};
use serde::{Deserialize, Serialize};

use crate::error::OriginError;
use crate::manifest::{self, Manifest, Status, Upload};
use crate::photos::Photos;
use crate::store::PresignedPut;

/// Where uploads land below `originals/`.
const UPLOADS_DIR: &str = "uploads";
/// The request body is a few fields.
pub const MAX_REQUEST_BYTES: u64 = 4 * 1024;
/// API keys are secrets of at least this many characters.
pub const MIN_API_KEY_LEN: usize = 32;

/// What may be uploaded, and its extension (which picks the default rendition format).
const TYPES: [(&str, &str); 4] = [
    ("image/jpeg", "jpg"),
    ("image/png", "png"),
    ("image/webp", "webp"),
    ("image/gif", "gif"),
];

pub struct Uploads {
    api_keys: Vec<String>,
    /// Longest upload accepted; at most the origin's source limit.
    pub max_bytes: u64,
    /// How long an upload URL stays valid.
    pub expires_in: Duration,
}

/// `POST /uploads`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUpload {
    pub content_type: String,
    /// The file's exact size; the store refuses any other.
    pub bytes: u64,
}

/// `POST /uploads`'s answer.
#[derive(Debug, Serialize)]
pub struct Ticket {
    pub id: String,
    /// The original's key below `originals/`.
    pub source: String,
    pub upload: PresignedPut,
    /// Unix seconds after which the upload URL is refused.
    pub expires_at: u64,
    /// POST here once the PUT succeeded.
    pub complete: String,
    /// GET here for the manifest.
    pub manifest: String,
}

impl Uploads {
    /// `api_keys`: comma-separated; empty turns uploads off.
    pub fn new(api_keys: &str, max_bytes: u64, expires_in: Duration) -> Result<Self, String> {
        let api_keys: Vec<String> = api_keys
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(str::to_string)
            .collect();
        if let Some(short) = api_keys.iter().find(|k| k.len() < MIN_API_KEY_LEN) {
            return Err(format!(
                "an API key of {} characters is too short; use at least {MIN_API_KEY_LEN} random ones",
                short.len()
            ));
        }
        Ok(Self {
            api_keys,
            max_bytes,
            expires_in,
        })
    }

    pub fn enabled(&self) -> bool {
        !self.api_keys.is_empty()
    }

    /// Checks `Authorization: Bearer <key>` in constant time.
    pub fn authorise(&self, authorization: Option<&str>) -> Result<(), OriginError> {
        if !self.enabled() {
            return Err(OriginError::UploadsDisabled);
        }
        let given = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .ok_or(OriginError::BadApiKey)?;
        // Every key is compared, so timing says nothing about which one matched.
        let matched = self.api_keys.iter().fold(false, |m, key| {
            m | constant_time_eq(given.as_bytes(), key.as_bytes())
        });
        if matched {
            Ok(())
        } else {
            Err(OriginError::BadApiKey)
        }
    }

    /// Checks the request, records a pending manifest, and presigns the PUT.
    pub async fn create(&self, photos: &Photos, body: &[u8]) -> Result<Ticket, OriginError> {
        let request: NewUpload = serde_json::from_slice(body).map_err(|e| {
            OriginError::BadUpload(format!(
                r#"expected {{"content_type": "image/jpeg", "bytes": 123456}}: {e}"#
            ))
        })?;
        let ext = TYPES
            .iter()
            .find(|(mime, _)| *mime == request.content_type)
            .map(|(_, ext)| *ext)
            .ok_or_else(|| {
                OriginError::UnsupportedUpload(request.content_type.chars().take(64).collect())
            })?;
        if request.bytes == 0 || request.bytes > self.max_bytes {
            return Err(OriginError::UploadTooLarge {
                bytes: request.bytes,
                max: self.max_bytes,
            });
        }
        let id = format!("{}.{ext}", new_id()?);
        let source = format!("{UPLOADS_DIR}/{id}");
        let created_at = manifest::now();
        let upload = photos
            .images
            .store
            .presign_put(
                &ObjectKey::for_original(&source),
                &request.content_type,
                request.bytes,
                self.expires_in,
            )
            .await
            .map_err(OriginError::Store)?;
        photos
            .write_manifest(&Manifest {
                source: source.clone(),
                status: Status::Pending,
                upload: Some(Upload {
                    id: id.clone(),
                    content_type: request.content_type,
                    bytes: request.bytes,
                    created_at,
                }),
                original: None,
                auto_urls: Default::default(),
                renditions: Vec::new(),
                error: None,
                updated_at: created_at,
            })
            .await?;
        tracing::info!(%id, bytes = request.bytes, "upload URL issued");
        Ok(Ticket {
            complete: format!("/uploads/{id}/complete"),
            manifest: format!("/uploads/{id}"),
            id,
            source,
            upload,
            expires_at: created_at + self.expires_in.as_secs(),
        })
    }

    /// Makes every preset of an uploaded original. Idempotent: a completed
    /// upload answers its manifest again.
    pub async fn complete(&self, photos: &Photos, id: &str) -> Result<Manifest, OriginError> {
        let pending = self.get(photos, id).await?;
        if pending.status == Status::Complete {
            return Ok(pending);
        }
        match photos
            .process_original(&pending.source, pending.upload)
            .await
        {
            Err(OriginError::SourceNotFound(_)) => Err(OriginError::UploadNotReceived(id.into())),
            other => other,
        }
    }

    /// The upload's manifest.
    pub async fn get(&self, photos: &Photos, id: &str) -> Result<Manifest, OriginError> {
        check_id(id)?;
        photos
            .manifest(&format!("{UPLOADS_DIR}/{id}"))
            .await?
            .ok_or_else(|| OriginError::UploadNotFound(id.into()))
    }
}

/// 128 random bits in hex: unguessable, so one uploader cannot find another's.
fn new_id() -> Result<String, OriginError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| OriginError::Store(format!("no randomness for an upload id: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Ids are what [`new_id`] makes, plus an extension we hand out.
fn check_id(id: &str) -> Result<(), OriginError> {
    let valid = id.split_once('.').is_some_and(|(hex, ext)| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && TYPES.iter().any(|(_, known)| *known == ext)
    });
    if valid {
        Ok(())
    } else {
        Err(ContractError::BadPath(format!(
            "upload ids look like 0123456789abcdef0123456789abcdef.jpg, not {:?}",
            id.chars().take(64).collect::<String>()
        ))
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked() {
        let id = format!("{}.jpg", new_id().unwrap());
        assert!(check_id(&id).is_ok(), "{id}");
        for bad in [
            "",
            "../x.jpg",
            "0123456789abcdef0123456789abcdef",
            "0123456789abcdef0123456789abcdef.exe",
            "0123456789ABCDEF0123456789abcdef.jpg",
            "0123456789abcdef0123456789abcde.jpg",
            "0123456789abcdef0123456789abcdef.jpg/complete",
        ] {
            assert!(check_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn api_keys_are_long_and_checked() {
        assert!(Uploads::new("short", 1, Duration::ZERO).is_err());
        let key = "k".repeat(MIN_API_KEY_LEN);
        let uploads = Uploads::new(&format!(" {key} ,"), 1, Duration::ZERO).unwrap();
        assert!(uploads.authorise(Some(&format!("Bearer {key}"))).is_ok());
        for bad in [
            None,
            Some(key.as_str()),
            Some("Bearer nope"),
            Some("Basic x"),
        ] {
            assert!(matches!(
                uploads.authorise(bad),
                Err(OriginError::BadApiKey)
            ));
        }
        let off = Uploads::new("", 1, Duration::ZERO).unwrap();
        assert!(matches!(
            off.authorise(Some(&format!("Bearer {key}"))),
            Err(OriginError::UploadsDisabled)
        ));
    }
}
