//! What the origin counts, served at `/metrics` in the OpenMetrics text format
//! (which Prometheus scrapes natively).
//!
//! Each part of the origin holds only the handles it updates (the renderer its
//! [`RendererMetrics`], the store its [`StoreMetrics`]); the handles share
//! their values with the one registry here, so parts stay usable without it
//! (tests, CLI commands) and nothing is counted twice.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `Content-Type` of [`Metrics::encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub route: &'static str,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RenderLabels {
    pub template: String,
    /// `ok`, or the error code the request was answered with.
    pub outcome: String,
}

/// `outcome` alone; its values are snake_case names (the derive for enums
/// would write variant names as they are).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub enum ImageOutcome {
    /// Written by this origin.
    Stored,
    /// Another writer stored the key first.
    AlreadyThere,
    /// Found in the store: another origin or an earlier request made it.
    ServedFromStore,
    /// Made, but the store refused it: served anyway, briefly cacheable.
    NotStored,
}

impl ImageOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::AlreadyThere => "already_there",
            Self::ServedFromStore => "served_from_store",
            Self::NotStored => "not_stored",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Outcome {
    Ok,
    Failed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    /// The S3 call: put, get, head, list, delete, ...
    pub op: &'static str,
}

/// The renderer's own handles.
#[derive(Clone, Debug, Default)]
pub struct RendererMetrics {
    /// Browser relaunches after it died.
    pub restarts: Counter,
    /// Renders waiting for a free page.
    pub queued: Gauge,
    /// Pages rendering now.
    pub busy: Gauge,
}

/// The store's own handles.
#[derive(Clone)]
pub struct StoreMetrics {
    pub seconds: Family<StoreLabels, Histogram, fn() -> Histogram>,
    pub errors: Family<StoreLabels, Counter>,
}

impl Default for StoreMetrics {
    fn default() -> Self {
        Self {
            seconds: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            errors: Family::default(),
        }
    }
}

impl StoreMetrics {
    pub fn observe(&self, op: &'static str, took: Duration, ok: bool) {
        let labels = StoreLabels { op };
        self.seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if !ok {
            self.errors.get_or_create(&labels).inc();
        }
    }
}

/// 1 ms to ~16 s, doubling: covers a store HEAD and a slow cold render alike.
fn latency_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.001, 2.0, 15)
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RequestLabels, Histogram, fn() -> Histogram>,
    pub renders: Family<RenderLabels, Counter>,
    pub render_seconds: Histogram,
    pub images: Family<OutcomeLabels, Counter>,
    pub renditions: Family<OutcomeLabels, Counter>,
    pub single_flight_joins: Counter,
    pub renderer: RendererMetrics,
    pub store: StoreMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("imgate");
        let metrics = Self {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(|| Histogram::new(latency_buckets())),
            renders: Family::default(),
            render_seconds: Histogram::new(latency_buckets()),
            images: Family::default(),
            renditions: Family::default(),
            single_flight_joins: Counter::default(),
            renderer: RendererMetrics::default(),
            store: StoreMetrics::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "http_requests",
            "Requests answered, by route and status",
            metrics.requests.clone(),
        );
        r.register(
            "http_request_seconds",
            "Time to answer a request, by route and status",
            metrics.request_seconds.clone(),
        );
        r.register(
            "renders",
            "Cards rendered by Chromium, by template and outcome",
            metrics.renders.clone(),
        );
        r.register(
            "render_seconds",
            "Time Chromium took per card, waiting for a page included",
            metrics.render_seconds.clone(),
        );
        r.register(
            "images",
            "Cards and renditions made or found, by what became of them",
            metrics.images.clone(),
        );
        r.register(
            "renditions",
            "Renditions made from originals, by outcome",
            metrics.renditions.clone(),
        );
        r.register(
            "single_flight_joins",
            "Requests that waited for a render of the same key already running",
            metrics.single_flight_joins.clone(),
        );
        r.register(
            "browser_restarts",
            "Chromium relaunches after the browser died",
            metrics.renderer.restarts.clone(),
        );
        r.register(
            "render_queue",
            "Renders waiting for a free page",
            metrics.renderer.queued.clone(),
        );
        r.register(
            "render_pages_busy",
            "Pages rendering now",
            metrics.renderer.busy.clone(),
        );
        r.register(
            "store_seconds",
            "Time per S3 call, by operation",
            metrics.store.seconds.clone(),
        );
        r.register(
            "store_errors",
            "S3 calls that failed, by operation",
            metrics.store.errors.clone(),
        );
        Self {
            registry,
            ..metrics
        }
    }
}

impl Metrics {
    /// Every metric in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn image(&self, outcome: ImageOutcome) {
        self.images
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    pub fn rendition(&self, outcome: Outcome) {
        self.renditions
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    pub fn render(&self, template: &str, outcome: &str, took: Duration) {
        self.renders
            .get_or_create(&RenderLabels {
                template: template.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.render_seconds.observe(took.as_secs_f64());
    }

    pub fn request(&self, route: &'static str, status: u16, took: Duration) {
        let labels = RequestLabels { route, status };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }
}

/// The route label of a request path: a small fixed set, so a flood of
/// distinct URLs cannot grow the metrics without bound.
pub fn route_label(path: &str) -> &'static str {
    match path {
        "/healthz" => "healthz",
        "/metrics" => "metrics",
        _ if path.starts_with("/og/") => "card",
        _ if path.starts_with("/r/") => "rendition",
        _ if path == "/uploads" || path.starts_with("/uploads/") => "uploads",
        _ if path.starts_with("/debug/") => "debug",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_held_elsewhere_show_in_the_registry() {
        let metrics = Metrics::default();
        let renderer = metrics.renderer.clone();
        renderer.restarts.inc();
        renderer.queued.set(3);
        metrics
            .store
            .observe("put", Duration::from_millis(5), false);
        metrics.request("card", 200, Duration::from_millis(80));
        let text = metrics.encode();
        assert!(text.contains("imgate_browser_restarts_total 1\n"), "{text}");
        assert!(text.contains("imgate_render_queue 3\n"), "{text}");
        assert!(
            text.contains("imgate_store_errors_total{op=\"put\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("imgate_http_requests_total{route=\"card\",status=\"200\"} 1\n"),
            "{text}"
        );
        metrics.image(ImageOutcome::ServedFromStore);
        assert!(
            metrics
                .encode()
                .contains("imgate_images_total{outcome=\"served_from_store\"} 1\n")
        );
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn route_labels_are_a_fixed_set() {
        assert_eq!(route_label("/og/basic.png"), "card");
        assert_eq!(route_label("/r/small/a.jpg"), "rendition");
        assert_eq!(route_label("/uploads/abc/complete"), "uploads");
        assert_eq!(route_label("/uploadsx"), "other");
        assert_eq!(route_label("/../../etc/passwd"), "other");
    }
}
