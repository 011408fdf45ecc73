//! The origin's request flow in one place: parse → template or preset → key →
//! single-flight → (store | data → render → store | original → rendition →
//! store) → image.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use imgate_contract::{
    CanonicalCard, ContractError, ImageFormat, ObjectKey, Route, headers, route,
};

use crate::data::DataSources;
use crate::error::OriginError;
use crate::metrics::Metrics;
use crate::originals::Links;
use crate::render::Renderer;
use crate::rendition::{self as engine, SourceLimits};
use crate::singleflight::SingleFlight;
use crate::store::{Fetched, PutImage, PutOutcome, Store};
use crate::templates::{CardPage, Templates};

/// A finished image, ready to send.
#[derive(Clone, Debug)]
pub struct Image {
    pub key: ObjectKey,
    pub format: ImageFormat,
    pub bytes: Bytes,
    /// The store's ETag for the object, when the store said it.
    pub etag: Option<String>,
}

pub struct Origin {
    pub templates: Templates,
    pub renderer: Arc<Renderer>,
    pub store: Store,
    pub data: DataSources,
    pub metrics: Metrics,
    source_limits: SourceLimits,
    pub(crate) links: Links,
    flights: SingleFlight<Result<Image, OriginError>>,
}

/// Our own images are small; anything bigger in their place is not ours.
const MAX_STORED_IMAGE_BYTES: usize = 64 * 1024 * 1024;

impl Origin {
    pub fn new(
        templates: Templates,
        renderer: Arc<Renderer>,
        store: Store,
        data: DataSources,
    ) -> Self {
        Self {
            templates,
            renderer,
            store,
            data,
            metrics: Metrics::default(),
            source_limits: SourceLimits::default(),
            links: Links::default(),
            flights: SingleFlight::default(),
        }
    }

    /// Parses and checks a card URL against its template.
    pub fn card_for(&self, path: &str, query: &str) -> Result<CanonicalCard, OriginError> {
        match route::parse("GET", path, query)? {
            Route::Card(request) => Ok(self.templates.canonicalize(&request)?),
            // Renditions are made by their own pipeline, not by the card renderer.
            Route::Health | Route::Rendition(_) => {
                Err(ContractError::NotFound(path.to_string()).into())
            }
        }
    }

    /// Answers `/og/...`: the stored image, or a freshly rendered and stored one.
    pub async fn card(&self, path: &str, query: &str) -> Result<Image, OriginError> {
        let card = self.card_for(path, query)?;
        let key = ObjectKey::for_card(&card);
        self.flights
            .run(key.as_str(), || self.make(card, key.clone()))
            .await
    }

    /// Limits on the originals renditions are made from.
    pub fn with_source_limits(self, source_limits: SourceLimits) -> Self {
        Self {
            source_limits,
            ..self
        }
    }

    pub fn source_limits(&self) -> SourceLimits {
        self.source_limits
    }

    /// How manifests spell rendition URLs.
    pub fn with_links(self, links: Links) -> Self {
        Self { links, ..self }
    }

    /// Answers `/r/...`: the stored rendition, or one made from the original and
    /// stored. `accept` resolves `format=auto` (the edge sends a resolved format;
    /// a browser sent here by redirect mode may not).
    pub async fn rendition(
        &self,
        path: &str,
        query: &str,
        accept: Option<&str>,
    ) -> Result<Image, OriginError> {
        let Route::Rendition(request) = route::parse("GET", path, query)? else {
            return Err(ContractError::NotFound(path.to_string()).into());
        };
        let resolved = request.resolve(accept);
        self.flights
            .run(resolved.key.as_str(), || {
                self.make_rendition(&request, resolved.format, resolved.key.clone())
            })
            .await
    }

    async fn make_rendition(
        &self,
        request: &imgate_contract::RenditionRequest,
        format: ImageFormat,
        key: ObjectKey,
    ) -> Result<Image, OriginError> {
        if let Some(image) = self.stored(&key, format).await? {
            return Ok(image);
        }
        let source_key = request.source_key();
        let (source, source_etag) = match self
            .store
            .get(&source_key, self.source_limits.max_bytes)
            .await
            .map_err(OriginError::Store)?
        {
            Fetched::Found { bytes, etag } => (bytes, etag),
            Fetched::Missing => return Err(OriginError::SourceNotFound(source_key.to_string())),
            Fetched::TooLarge(bytes) => {
                return Err(engine::SourceError::TooManyBytes {
                    bytes: bytes as usize,
                    max: self.source_limits.max_bytes,
                }
                .into());
            }
        };
        let started = Instant::now();
        let (preset, limits) = (request.preset, self.source_limits);
        let made =
            tokio::task::spawn_blocking(move || engine::render(&source, preset, format, limits))
                .await
                .map_err(|e| OriginError::Render(format!("rendition panicked: {e}")))?;
        let bytes = match made {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                Metrics::inc(&self.metrics.rendition_failures);
                tracing::warn!(source = %source_key, code = e.code(), "original refused: {e}");
                return Err(e.into());
            }
        };
        Metrics::inc(&self.metrics.renditions);
        let mut metadata = vec![
            ("preset", preset.name.to_string()),
            ("source", request.source.clone()),
        ];
        if let Some(etag) = source_etag {
            metadata.push(("source-etag", etag.trim_matches('"').to_string()));
        }
        let etag = self.put(&key, format, bytes.clone(), metadata).await?;
        tracing::info!(%key, make_ms = started.elapsed().as_millis() as u64, bytes = bytes.len(), "rendition made");
        Ok(Image {
            key,
            format,
            bytes,
            etag,
        })
    }

    /// The image already stored at `key`, if any: another origin, or an earlier
    /// request, may have stored it since the edge looked.
    async fn stored(
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
                Metrics::inc(&self.metrics.served_from_store);
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
    pub(crate) async fn put(
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
                Metrics::inc(&self.metrics.store_puts);
                etag
            }
            PutOutcome::AlreadyThere => {
                Metrics::inc(&self.metrics.store_already_there);
                None
            }
        })
    }

    /// The filled-in template for a card: its query parameters, or its record's fields.
    pub async fn page(&self, card: &CanonicalCard) -> Result<CardPage, OriginError> {
        let params = match &card.record {
            None => card.params.clone(),
            Some(id) => self.record_params(card, id).await?,
        };
        self.templates
            .page(&card.template, &params)
            .map_err(|e| OriginError::Render(format!("template {}: {e:#}", card.template)))
    }

    /// Renders a card, counting it.
    pub async fn render(&self, card: &CanonicalCard) -> Result<Vec<u8>, OriginError> {
        let page = self.page(card).await?;
        self.render_page(&page, card.format).await
    }

    /// Renders a filled-in template, counting it in the metrics.
    pub async fn render_page(
        &self,
        page: &CardPage,
        format: ImageFormat,
    ) -> Result<Vec<u8>, OriginError> {
        let started = Instant::now();
        let result = self.renderer.screenshot(page, format).await;
        Metrics::inc(match &result {
            Ok(_) => &self.metrics.renders,
            Err(_) => &self.metrics.render_failures,
        });
        self.metrics.render_millis.fetch_add(
            started.elapsed().as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        result
    }

    async fn record_params(
        &self,
        card: &CanonicalCard,
        id: &str,
    ) -> Result<BTreeMap<String, String>, OriginError> {
        let spec = self.templates.spec(&card.template)?;
        let url = spec
            .record_url(id)
            .ok_or_else(|| ContractError::NoDataSource(card.template.clone()))?;
        let record = self.data.fetch(&url).await?;
        spec.params_from_record(&card.template, &record)
            .map_err(OriginError::BadRecord)
    }

    async fn make(&self, card: CanonicalCard, key: ObjectKey) -> Result<Image, OriginError> {
        if let Some(image) = self.stored(&key, card.format).await? {
            return Ok(image);
        }
        let started = Instant::now();
        let bytes = Bytes::from(self.render(&card).await?);
        let render_ms = started.elapsed().as_millis() as u64;
        let mut metadata = vec![
            ("template", card.template.clone()),
            ("revision", card.revision.to_string()),
            (
                "renderer",
                format!(
                    "imgate-origin/{} {}",
                    env!("CARGO_PKG_VERSION"),
                    self.renderer.version().await
                ),
            ),
        ];
        if let Some(id) = &card.record {
            metadata.push(("record", id.clone()));
        }
        let etag = self.put(&key, card.format, bytes.clone(), metadata).await?;
        tracing::info!(%key, render_ms, bytes = bytes.len(), stored = etag.is_some(), "card made");
        Ok(Image {
            key,
            format: card.format,
            bytes,
            etag,
        })
    }
}

#[cfg(test)]
#[path = "origin_tests.rs"]
mod tests;
