//! Images in the store, written once and counted: cards and renditions alike.

use std::sync::Arc;

use bytes::Bytes;
use imgate_contract::{ImageFormat, ObjectKey, headers};

use crate::error::OriginError;
use crate::metrics::{ImageOutcome, Metrics};
use crate::store::{Fetched, PutImage, PutOutcome, Store};

/// A finished image, ready to send.
#[derive(Clone, Debug)]
pub struct Image {
    pub key: ObjectKey,
    pub format: ImageFormat,
    pub bytes: Bytes,
    /// The store's ETag for the object, when the store said it.
    pub etag: Option<String>,
}

/// Our own images are small; anything bigger in their place is not ours.
const MAX_STORED_IMAGE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct Images {
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

impl Images {
    /// The image already stored at `key`, if any: another origin, or an earlier
    /// request, may have stored it since the edge looked.
    pub async fn stored(
        &self,
        key: &ObjectKey,
        format: ImageFormat,
    ) -> Result<Option<Image>, OriginError> {
        match self
            .store
            .get(key, MAX_STORED_IMAGE_BYTES)
            .await
            .map_err(OriginError::Store)?
        {
            Fetched::Found { bytes, etag } => {
                self.metrics.image(ImageOutcome::ServedFromStore);
                Ok(Some(Image {
                    key: key.clone(),
                    format,
                    bytes,
                    etag,
                }))
            }
            Fetched::Missing => Ok(None),
            Fetched::TooLarge(bytes) => Err(OriginError::Store(format!(
                "{key} is {bytes} bytes, not an image imgate made"
            ))),
        }
    }

    /// Writes an image once; its ETag if this writer stored it.
    pub async fn put(
        &self,
        key: &ObjectKey,
        format: ImageFormat,
        bytes: Bytes,
        metadata: Vec<(&'static str, String)>,
    ) -> Result<Option<String>, OriginError> {
        let outcome = self
            .store
            .put(PutImage {
                key,
                bytes,
                content_type: format.content_type(),
                cache_control: headers::IMMUTABLE,
                metadata,
            })
            .await
            .map_err(OriginError::Store)?;
        Ok(match outcome {
            PutOutcome::Stored { etag } => {
                self.metrics.image(ImageOutcome::Stored);
                etag
            }
            PutOutcome::AlreadyThere => {
                self.metrics.image(ImageOutcome::AlreadyThere);
                None
            }
        })
    }
}
