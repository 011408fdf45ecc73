//! The origin's request flow in one place: parse → template → key →
//! single-flight → (store | render → store) → image.

use std::time::Instant;

use bytes::Bytes;
use imgate_contract::{
    CanonicalCard, ContractError, ImageFormat, ObjectKey, Route, headers, route,
};

use crate::error::OriginError;
use crate::metrics::Metrics;
use crate::render::Renderer;
use crate::singleflight::SingleFlight;
use crate::store::{PutImage, PutOutcome, Store};
use crate::templates::Templates;

/// A finished image, ready to send.
#[derive(Clone, Debug)]
pub struct Image {
    pub key: ObjectKey,
    pub format: ImageFormat,
    pub bytes: Bytes,
}

pub struct Origin {
    pub templates: Templates,
    pub renderer: Renderer,
    pub store: Store,
    pub metrics: Metrics,
    flights: SingleFlight<Result<Image, OriginError>>,
}

impl Origin {
    pub fn new(templates: Templates, renderer: Renderer, store: Store) -> Self {
        Self {
            templates,
            renderer,
            store,
            metrics: Metrics::default(),
            flights: SingleFlight::default(),
        }
    }

    /// Answers `/og/...`: the stored image, or a freshly rendered and stored one.
    pub async fn card(&self, path: &str, query: &str) -> Result<Image, OriginError> {
        let request = match route::parse("GET", path, query)? {
            Route::Card(request) => request,
            Route::Health => return Err(ContractError::NotFound(path.to_string()).into()),
        };
        let card = self.templates.canonicalize(&request)?;
        let key = ObjectKey::for_card(&card);
        self.flights
            .run(key.as_str(), || self.make(card, key.clone()))
            .await
    }

    /// Renders a card, counting it.
    async fn render(&self, card: &CanonicalCard) -> Result<Vec<u8>, OriginError> {
        let page = self
            .templates
            .page(card)
            .map_err(|e| OriginError::Render(format!("template {}: {e:#}", card.template)))?;
        let started = Instant::now();
        let result = self.renderer.screenshot(&page, card.format).await;
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

    async fn make(&self, card: CanonicalCard, key: ObjectKey) -> Result<Image, OriginError> {
        // Another origin, or an earlier request, may have stored it since the edge looked.
        if let Some(bytes) = self.store.get(&key).await.map_err(OriginError::Store)? {
            Metrics::inc(&self.metrics.served_from_store);
            return Ok(Image {
                key,
                format: card.format,
                bytes,
            });
        }
        let started = Instant::now();
        let bytes = Bytes::from(self.render(&card).await?);
        let render_ms = started.elapsed().as_millis() as u64;
        let outcome = self
            .store
            .put(PutImage {
                key: &key,
                bytes: bytes.clone(),
                content_type: card.format.content_type(),
                cache_control: headers::IMMUTABLE,
                metadata: vec![
                    ("template", card.template.clone()),
                    ("revision", card.revision.to_string()),
                    (
                        "renderer",
                        format!(
                            "imgate-origin/{} {}",
                            env!("CARGO_PKG_VERSION"),
                            self.renderer.version()
                        ),
                    ),
                ],
            })
            .await
            .map_err(OriginError::Store)?;
        match outcome {
            PutOutcome::Stored { .. } => Metrics::inc(&self.metrics.store_puts),
            PutOutcome::AlreadyThere => Metrics::inc(&self.metrics.store_already_there),
        }
        tracing::info!(%key, render_ms, bytes = bytes.len(), ?outcome, "card made");
        Ok(Image {
            key,
            format: card.format,
            bytes,
        })
    }
}
