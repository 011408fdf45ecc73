//! The origin's request flow in one place: parse → template or preset → key →
//! single-flight → (store | data → render → store) → image; renditions go to
//! [`Photos`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use imgate_contract::{CanonicalCard, ContractError, ImageFormat, ObjectKey, Route, route};

use crate::data::DataSources;
use crate::error::OriginError;
use crate::images::Image;
use crate::metrics::Metrics;
use crate::photos::Photos;
use crate::render::Renderer;
use crate::singleflight::SingleFlight;
use crate::templates::{CardPage, Templates};

pub struct Origin {
    pub templates: Templates,
    pub renderer: Arc<Renderer>,
    pub data: DataSources,
    /// Renditions, uploads' originals and their manifests.
    pub photos: Photos,
    flights: SingleFlight<Result<Image, OriginError>>,
}

impl Origin {
    pub fn new(
        templates: Templates,
        renderer: Arc<Renderer>,
        photos: Photos,
        data: DataSources,
    ) -> Self {
        Self {
            templates,
            renderer,
            data,
            flights: SingleFlight::counting(photos.images.metrics.single_flight_joins.clone()),
            photos,
        }
    }

    /// The counters `/metrics` shows, shared with the photo pipeline.
    pub fn metrics(&self) -> &Metrics {
        &self.photos.images.metrics
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
                self.photos
                    .rendition(&request, resolved.format, resolved.key.clone())
            })
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
        let outcome = match &result {
            Ok(_) => "ok".to_string(),
            Err(e) => e.body().error.code,
        };
        self.metrics()
            .render(&page.template, &outcome, started.elapsed());
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
        if let Some(image) = self.photos.images.stored(&key, card.format).await? {
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
        let image = self
            .photos
            .images
            .keep(key, card.format, bytes, metadata)
            .await;
        tracing::info!(key = %image.key, render_ms, bytes = image.bytes.len(), stored = image.kept, "card made");
        Ok(image)
    }
}

#[cfg(test)]
#[path = "origin_tests.rs"]
mod tests;
