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
    /// Whether the store holds it. An image made while the store failed is
    /// still served, but only briefly cacheable, so the next request after
    /// the store is back stores it.
    pub kept: bool,
}

/// Our own images are small; anything bigger in their place is not ours.
const MAX_STORED_IMAGE_BYTES: usize = 64 * 1024 * 1024;

#[derive(Clone)]
pub struct Images {
    pub store: Store,
    pub metrics: Arc<Metrics>,
}

impl Images {
    /// Images in `store`, whose calls are counted in `metrics` too.
    pub fn new(store: Store, metrics: Arc<Metrics>) -> Self {
        Self {
            store: store.counted(metrics.store.clone()),
            metrics,
        }
    }

    /// The image already stored at `key`, if any: another origin, or an earlier
    /// request, may have stored it since the edge looked. A store that cannot
    /// be read counts as "not there": making the image beats failing.
    pub async fn stored(
        &self,
        key: &ObjectKey,
        format: ImageFormat,
    ) -> Result<Option<Image>, OriginError> {
        let fetched = match self.store.get(key, MAX_STORED_IMAGE_BYTES).await {
            Ok(fetched) => fetched,
            Err(e) => {
                tracing::warn!(%key, "store unreadable, making the image without it: {e}");
                return Ok(None);
            }
        };
        match fetched {
            Fetched::Found { bytes, etag } => {
                self.metrics.image(ImageOutcome::ServedFromStore);
                Ok(Some(Image {
                    key: key.clone(),
                    format,
                    bytes,
                    etag,
                    kept: true,
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

    /// Stores a freshly made image and returns it, stored or not: a failing
    /// store is logged and counted, and the image is served anyway.
    pub async fn keep(
        &self,
        key: ObjectKey,
        format: ImageFormat,
        bytes: Bytes,
        metadata: Vec<(&'static str, String)>,
    ) -> Image {
        let (etag, kept) = match self.put(&key, format, bytes.clone(), metadata).await {
            Ok(etag) => (etag, true),
            Err(e) => {
                tracing::error!(%key, "store refused the image; serving it uncached: {e}");
                self.metrics.image(ImageOutcome::NotStored);
                (None, false)
            }
        };
        Image {
            key,
            format,
            bytes,
            etag,
            kept,
        }
    }
}
