//! Counters in the Prometheus text format, served at `/metrics`.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Metrics {
    pub renders: AtomicU64,
    pub render_failures: AtomicU64,
    pub render_millis: AtomicU64,
    pub store_puts: AtomicU64,
    pub store_already_there: AtomicU64,
    pub served_from_store: AtomicU64,
    pub rejected: AtomicU64,
    pub renditions: AtomicU64,
    pub rendition_failures: AtomicU64,
}

impl Metrics {
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let rows: [(&str, &str, &AtomicU64); 9] = [
            (
                "imgate_renders_total",
                "Cards rendered by Chromium.",
                &self.renders,
            ),
            (
                "imgate_render_failures_total",
                "Renders that failed or timed out.",
                &self.render_failures,
            ),
            (
                "imgate_render_milliseconds_total",
                "Time spent rendering, in milliseconds.",
                &self.render_millis,
            ),
            (
                "imgate_store_puts_total",
                "Images written to the store.",
                &self.store_puts,
            ),
            (
                "imgate_store_already_there_total",
                "Writes skipped because another writer stored the key first.",
                &self.store_already_there,
            ),
            (
                "imgate_served_from_store_total",
                "Requests the origin answered from the store without rendering.",
                &self.served_from_store,
            ),
            (
                "imgate_renditions_total",
                "Renditions made from originals.",
                &self.renditions,
            ),
            (
                "imgate_rendition_failures_total",
                "Originals that could not be made into a rendition.",
                &self.rendition_failures,
            ),
            (
                "imgate_rejected_total",
                "Requests refused with a 4xx.",
                &self.rejected,
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in rows {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}\n",
                value.load(Ordering::Relaxed)
            ));
        }
        out
    }
}
