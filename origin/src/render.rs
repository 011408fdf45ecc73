//! Cards rendered by one long-lived headless Chromium.
//!
//! Every CDP call runs under the render timeout: a hung renderer makes the next
//! call hang forever (the crate's own timeout did not fire in our tests), so a
//! page that times out is thrown away and a fresh one opened.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use chromiumoxide::cdp::browser_protocol::emulation::{
    SetDeviceMetricsOverrideParams, SetScriptExecutionDisabledParams,
};
use chromiumoxide::cdp::browser_protocol::network::{
    BlockPattern, EnableParams, SetBlockedUrLsParams,
};
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use tokio::sync::Mutex;

use imgate_contract::ImageFormat;

use crate::error::OriginError;
use crate::templates::CardPage;

/// Encoder quality for lossy formats: visually clean text at a fraction of PNG's size.
const JPEG_QUALITY: i64 = 88;
const WEBP_QUALITY: i64 = 88;

/// Chromium flags for a headless renderer on a server with no network to spare:
/// no GPU, no QUIC, no background traffic to Google, no first-run work.
const CHROMIUM_FLAGS: &[&str] = &[
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--font-render-hinting=none",
];

pub struct Renderer {
    browser: Mutex<Browser>,
    page: Mutex<Option<Page>>,
    timeout: Duration,
    alive: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
    version: String,
    _profile: tempfile::TempDir,
}

impl Renderer {
    /// Starts Chromium. `executable` defaults to the first of chromium,
    /// chromium-browser, google-chrome found on PATH.
    pub async fn launch(executable: Option<PathBuf>, timeout: Duration) -> anyhow::Result<Self> {
        let executable = match executable {
            Some(path) => path,
            None => find_chromium().context(
                "no Chromium found: install it (apt-get install chromium) or set IMGATE_CHROMIUM",
            )?,
        };
        // A fresh profile per process: no shared state, no stale locks.
        let profile = tempfile::Builder::new()
            .prefix("imgate-chromium-")
            .tempdir()?;
        let config = BrowserConfig::builder()
            .chrome_executable(&executable)
            .no_sandbox()
            .user_data_dir(profile.path())
            .viewport(None)
            .launch_timeout(Duration::from_secs(30))
            .request_timeout(timeout)
            .args(CHROMIUM_FLAGS.iter().copied())
            .build()
            .map_err(|e| anyhow::anyhow!("chromium config: {e}"))?;
        let (browser, mut handler) = Browser::launch(config)
            .await
            .with_context(|| format!("cannot start {}", executable.display()))?;
        let alive = Arc::new(AtomicBool::new(true));
        let closing = Arc::new(AtomicBool::new(false));
        let (alive_flag, closing_flag) = (alive.clone(), closing.clone());
        tokio::spawn(async move {
            while let Some(event) = handler.next().await {
                if let Err(e) = event {
                    tracing::debug!("chromium event error: {e}");
                }
            }
            alive_flag.store(false, Ordering::SeqCst);
            if closing_flag.load(Ordering::SeqCst) {
                tracing::info!("chromium closed");
            } else {
                tracing::error!(
                    "chromium connection lost: renders will fail until the origin restarts"
                );
            }
        });
        let version = tokio::time::timeout(timeout, browser.version())
            .await
            .context("chromium did not answer")??
            .product;
        tracing::info!(chromium = %version, executable = %executable.display(), "renderer ready");
        Ok(Self {
            browser: Mutex::new(browser),
            page: Mutex::new(None),
            timeout,
            alive,
            closing,
            version,
            _profile: profile,
        })
    }

    pub fn version(&self) -> &str {
        &self.version
    }

    pub fn is_alive(&self) -> bool {
        self.alive.load(Ordering::SeqCst)
    }

    /// Renders a page at its size in CSS pixels, encoded by Chromium.
    #[tracing::instrument(name = "imgate.origin.render", skip_all, fields(width = page.width, height = page.height))]
    pub async fn screenshot(
        &self,
        page: &CardPage,
        format: ImageFormat,
    ) -> Result<Vec<u8>, OriginError> {
        let mut slot = self.page.lock().await;
        let outcome = tokio::time::timeout(self.timeout, async {
            if slot.is_none() {
                *slot = Some(self.new_page().await?);
            }
            let tab = slot.as_ref().expect("just filled");
            tab.execute(SetDeviceMetricsOverrideParams::new(
                page.width,
                page.height,
                1.0,
                false,
            ))
            .await?;
            tab.set_content(&page.html).await?;
            tab.screenshot(screenshot_params(format)).await
        })
        .await;
        match outcome {
            Ok(Ok(png)) => Ok(png),
            Ok(Err(e)) => {
                // The page may be in any state; start the next render on a fresh one.
                discard(slot.take());
                Err(OriginError::Render(e.to_string()))
            }
            Err(_) => {
                discard(slot.take());
                Err(OriginError::RenderTimeout(self.timeout.as_secs()))
            }
        }
    }

    async fn new_page(&self) -> chromiumoxide::Result<Page> {
        let page = self.browser.lock().await.new_page("about:blank").await?;
        // Cards are self-contained: no script, no network. Template parameters
        // are escaped, and even if markup slipped through it could not fetch
        // anything, internal or not. `data:` URLs are not network requests.
        page.execute(SetScriptExecutionDisabledParams::new(true))
            .await?;
        page.execute(EnableParams::default()).await?;
        page.execute(
            SetBlockedUrLsParams::builder()
                .url_pattern(BlockPattern::new("*://*:*", true))
                .build(),
        )
        .await?;
        Ok(page)
    }

    /// Closes Chromium and waits for the process, so no zombie is left.
    pub async fn shutdown(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let mut browser = self.browser.lock().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), browser.close()).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), browser.wait()).await;
    }
}

fn screenshot_params(format: ImageFormat) -> ScreenshotParams {
    let builder = ScreenshotParams::builder();
    match format {
        ImageFormat::Png => builder.format(CaptureScreenshotFormat::Png),
        ImageFormat::Jpeg => builder
            .format(CaptureScreenshotFormat::Jpeg)
            .quality(JPEG_QUALITY),
        ImageFormat::Webp => builder
            .format(CaptureScreenshotFormat::Webp)
            .quality(WEBP_QUALITY),
    }
    .build()
}

fn discard(page: Option<Page>) {
    if let Some(page) = page {
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(2), page.close()).await;
        });
    }
}

fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|candidate| candidate.is_file())
}
