//! Fetches a data-source card's record: JSON from the URL its template names.
//!
//! The host and path come from the operator's `template.toml`; the request only
//! supplies an id restricted to `[A-Za-z0-9_-]`, so it cannot point the fetch
//! anywhere else. Redirects are not followed for the same reason.

use std::time::Duration;

use futures::StreamExt;

use crate::error::OriginError;

/// Largest record accepted, in bytes.
pub const MAX_RECORD_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub struct DataSources {
    client: reqwest::Client,
}

impl DataSources {
    pub fn new(timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(3)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("imgate-origin/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client })
    }

    /// The record at `url`, parsed as JSON.
    #[tracing::instrument(name = "imgate.origin.data.fetch", skip_all, fields(url = %url))]
    pub async fn fetch(&self, url: &str) -> Result<serde_json::Value, OriginError> {
        let failed = |why: String| OriginError::DataSource(why);
        let response = self
            .client
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| failed(format!("{url}: {}", without_url(&e))))?;
        match response.status().as_u16() {
            200 => {}
            404 | 410 => return Err(OriginError::RecordNotFound),
            status => return Err(failed(format!("{url} answered {status}"))),
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_RECORD_BYTES as u64)
        {
            return Err(failed(format!(
                "{url}: record larger than {MAX_RECORD_BYTES} bytes"
            )));
        }
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(|e| failed(format!("{url}: {}", without_url(&e))))?;
            if body.len() + chunk.len() > MAX_RECORD_BYTES {
                return Err(failed(format!(
                    "{url}: record larger than {MAX_RECORD_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| failed(format!("{url}: not JSON: {e}")))
    }
}

/// What went wrong, without the URL (the caller names it already; reqwest's
/// Display repeats it).
fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(cause) => format!("{kind}: {}", crate::error::chain(cause)),
        None => kind.to_string(),
    }
}
