//! The origin's request flow in one place: parse → template → key →
//! single-flight → (store | data → render → store) → image.

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
use crate::render::Renderer;
use crate::singleflight::SingleFlight;
use crate::store::{PutImage, PutOutcome, Store};
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
    flights: SingleFlight<Result<Image, OriginError>>,
}

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
        // Another origin, or an earlier request, may have stored it since the edge looked.
        if let Some((bytes, etag)) = self.store.get(&key).await.map_err(OriginError::Store)? {
            Metrics::inc(&self.metrics.served_from_store);
            return Ok(Image {
                key,
                format: card.format,
                bytes,
                etag,
            });
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
        let outcome = self
            .store
            .put(PutImage {
                key: &key,
                bytes: bytes.clone(),
                content_type: card.format.content_type(),
                cache_control: headers::IMMUTABLE,
                metadata,
            })
            .await
            .map_err(OriginError::Store)?;
        let etag = match &outcome {
            PutOutcome::Stored { etag } => {
                Metrics::inc(&self.metrics.store_puts);
                etag.clone()
            }
            PutOutcome::AlreadyThere => {
                Metrics::inc(&self.metrics.store_already_there);
                None
            }
        };
        tracing::info!(%key, render_ms, bytes = bytes.len(), ?outcome, "card made");
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
