//! Helpers for imgate's end-to-end tests.

/// Width and height from a PNG's IHDR chunk, or `None` if the bytes are not a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || !bytes.starts_with(SIGNATURE) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    Some((be(16), be(20)))
}

/// One scrape of `/metrics`, read by a Prometheus text-format parser.
pub struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    pub fn parse(text: &str) -> std::io::Result<Self> {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).map(Self)
    }

    /// The sum of `metric` over every sample whose labels include `labels`; a
    /// histogram counts its observations.
    pub fn sum(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        use prometheus_parse::Value;
        self.0
            .samples
            .iter()
            .filter(|s| {
                s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
            })
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
                Value::Summary(_) => 0.0,
            })
            .sum()
    }

    /// How much `metric` (over `labels`, as [`Scrape::sum`]) grew since `before`.
    pub fn increase(&self, before: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.sum(metric, labels) - before.sum(metric, labels)
    }

    /// Whether the scrape has any sample of `metric`.
    pub fn has(&self, metric: &str) -> bool {
        self.0.samples.iter().any(|s| s.metric == metric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_png_size() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&1200u32.to_be_bytes());
        png.extend_from_slice(&630u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((1200, 630)));
        assert_eq!(png_size(b"GIF89a"), None);
    }

    #[test]
    fn reads_what_the_origin_writes() {
        use std::time::Duration;
        let metrics = imgate_origin::metrics::Metrics::default();
        metrics.request("card", 200, Duration::from_millis(3));
        metrics.request("card", 200, Duration::from_millis(9));
        metrics.request("card", 404, Duration::from_millis(1));
        metrics.render("basic", "ok", Duration::from_millis(90));
        let scrape = Scrape::parse(&metrics.encode()).unwrap();
        assert_eq!(
            scrape.sum("imgate_http_requests_total", &[("route", "card")]),
            3.0
        );
        assert_eq!(
            scrape.sum("imgate_http_requests_total", &[("status", "200")]),
            2.0
        );
        assert_eq!(scrape.sum("imgate_render_seconds", &[]), 1.0);
        assert_eq!(
            scrape.sum("imgate_renders_total", &[("template", "basic")]),
            1.0
        );
        assert!(scrape.has("imgate_browser_restarts_total"));
        assert!(!scrape.has("imgate_nonexistent_total"));
    }
}
