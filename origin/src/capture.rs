//! How a laid-out page becomes image bytes. Chromium offers two ways, and
//! which one works depends on the build:
//!
//! - **Begin frames** (chrome-headless-shell, Debian's `chromium-headless-shell`):
//!   the page draws only when asked, and `HeadlessExperimental.beginFrame`
//!   draws one frame and returns it. Measured on the product card (2 cores):
//!   17.5 ms and 20 ms CPU (all processes) per JPEG card.
//! - **Screenshots** (full Chromium/Chrome, whose `--headless` is the "new"
//!   headless without begin-frame control): `Page.captureScreenshot` waits
//!   for the compositor's next frames at 60 Hz: 50 ms and 53 ms CPU for the
//!   same card, most of it waiting.
//!
//! The capture is chosen from the executable's name because the flags that
//! make begin frames work must be given at launch, and on full Chromium one of
//! them (`run-all-compositor-stages-before-draw`) slows screenshots by a third.
//!
//! Begin frames are drawn one at a time per renderer: the headless shell
//! (156) dies of SIGTRAP within a few cards when pages of one browser begin
//! frames concurrently (reproduced with 4 pages, with or without separate
//! windows; never with the frames serialised). Loading the next card's
//! document still overlaps with a frame, and so does the palette re-encode.

use std::path::Path;

use base64::Engine;
use chromiumoxide::Page;
use chromiumoxide::cdp::browser_protocol::headless_experimental::{
    BeginFrameParams, ScreenshotParams, ScreenshotParamsFormat,
};
use chromiumoxide::cdp::browser_protocol::page::{
    CaptureScreenshotFormat, CaptureScreenshotParams,
};
use chromiumoxide::error::CdpError;
use imgate_contract::ImageFormat;
use tokio::sync::Mutex;

/// Encoder quality for lossy formats: visually clean text at a fraction of PNG's size.
const JPEG_QUALITY: i64 = 88;
const WEBP_QUALITY: i64 = 88;

/// JPEG quality of the capture behind a PNG card. Chromium's JPEG is
/// Huffman-optimised (226 KB here, like `cjpeg -optimize`'s 232 KB, which
/// costs twice a plain encode), so the browser's CPU per card falls with the
/// bytes: product card bench, browser process at quality 100, 98, 97, 95:
/// 21.5, 18.5, 16.7, 14.2 ms; cards per CPU-second 1.69×, 1.80×, 1.82×,
/// 1.88× Satori's (separate runs on one day). But the PNG grows with the
/// ringing: 60, 68, 74, 83 KiB, and 4×4 block error against the lossless
/// capture 0.84 at 100, 0.96 at 95, 1.17 at 98 (whose palette misses the
/// product card's lightest colours). A card is rendered once and fetched on
/// every share, so bytes win over one render's CPU: quality 100.
const PNG_CAPTURE_QUALITY: i64 = 100;

/// A new page's first frame may have nothing to show yet (measured: one
/// empty frame on a fresh page).
const MAX_EMPTY_FRAMES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capture {
    BeginFrame,
    Screenshot,
}

/// Takes captures for one renderer, a frame at a time where that is needed.
#[derive(Debug)]
pub struct Capturer {
    capture: Capture,
    one_frame_at_a_time: Mutex<()>,
}

/// What Chromium encodes. A card PNG is captured as a JPEG at
/// `PNG_CAPTURE_QUALITY` and re-encoded by `encode::palette_png`: Chromium's
/// own PNG encoder costs ~130 ms (~20 ms more than JPEG even at its fastest
/// setting, for a 700 KB file), and a JPEG this good differs from a lossless
/// capture less than the 255-colour palette does (checked in render_tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Jpeg(i64),
    Webp(i64),
    /// Lossless, Chromium's default compression (for reference captures in tests).
    Png,
}

impl Encoding {
    pub fn for_card(format: ImageFormat) -> Self {
        match format {
            ImageFormat::Png => Self::Jpeg(PNG_CAPTURE_QUALITY),
            ImageFormat::Jpeg => Self::Jpeg(JPEG_QUALITY),
            ImageFormat::Webp => Self::Webp(WEBP_QUALITY),
        }
    }
}

impl Capture {
    /// Begin frames for a headless shell, screenshots for anything else.
    pub fn for_executable(executable: &Path) -> Self {
        let name = executable
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.contains("headless-shell") || name.contains("headless_shell") {
            Self::BeginFrame
        } else {
            Self::Screenshot
        }
    }

    /// Launch flags (without `--`). `deterministic-mode` turns on begin-frame
    /// control and has every compositor stage (raster, image decode) finish
    /// before a frame is drawn, so one frame is the whole page.
    pub fn flags(self) -> &'static [&'static str] {
        match self {
            Self::BeginFrame => &["deterministic-mode"],
            Self::Screenshot => &[],
        }
    }

    /// For logs and `doctor`.
    pub fn describe(self) -> &'static str {
        match self {
            Self::BeginFrame => "headless shell, begin frames",
            Self::Screenshot => {
                "screenshots; a headless shell would be 3× faster: apt-get install chromium-headless-shell"
            }
        }
    }

    /// Whether new pages must be created with begin-frame control.
    pub fn controls_frames(self) -> bool {
        self == Self::BeginFrame
    }
}

impl Capturer {
    pub fn new(capture: Capture) -> Self {
        Self {
            capture,
            one_frame_at_a_time: Mutex::new(()),
        }
    }

    pub fn capture(&self) -> Capture {
        self.capture
    }

    /// The page as it is now, encoded.
    pub async fn take(&self, page: &Page, encoding: Encoding) -> Result<Vec<u8>, CdpError> {
        match self.capture {
            Capture::BeginFrame => {
                let params = BeginFrameParams::builder()
                    .screenshot(frame_params(encoding))
                    .build();
                let _frame = self.one_frame_at_a_time.lock().await;
                for _ in 0..MAX_EMPTY_FRAMES {
                    let frame = page.execute(params.clone()).await?;
                    if let Some(data) = &frame.result.screenshot_data {
                        return decode_base64(data.as_ref());
                    }
                }
                Err(CdpError::msg(format!(
                    "no image after {MAX_EMPTY_FRAMES} frames"
                )))
            }
            Capture::Screenshot => {
                // Page.captureScreenshot directly: chromiumoxide's screenshot()
                // first activates the target, one more round trip for nothing.
                let shot = page.execute(screenshot_params(encoding)).await?;
                decode_base64(shot.result.data.as_ref())
            }
        }
    }
}

fn frame_params(encoding: Encoding) -> ScreenshotParams {
    let builder = ScreenshotParams::builder();
    match encoding {
        Encoding::Jpeg(q) => builder.format(ScreenshotParamsFormat::Jpeg).quality(q),
        Encoding::Webp(q) => builder.format(ScreenshotParamsFormat::Webp).quality(q),
        Encoding::Png => builder.format(ScreenshotParamsFormat::Png),
    }
    .build()
}

fn screenshot_params(encoding: Encoding) -> CaptureScreenshotParams {
    let builder = CaptureScreenshotParams::builder();
    match encoding {
        Encoding::Jpeg(q) => builder.format(CaptureScreenshotFormat::Jpeg).quality(q),
        Encoding::Webp(q) => builder.format(CaptureScreenshotFormat::Webp).quality(q),
        Encoding::Png => builder.format(CaptureScreenshotFormat::Png),
    }
    .build()
}

fn decode_base64(data: &str) -> Result<Vec<u8>, CdpError> {
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map_err(|e| CdpError::msg(format!("screenshot is not base64: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headless_shells_get_begin_frames_and_browsers_screenshots() {
        for shell in [
            "/usr/lib/chromium/chromium-headless-shell",
            "/opt/chrome-headless-shell-linux64/chrome-headless-shell",
            "/opt/headless_shell",
        ] {
            assert_eq!(
                Capture::for_executable(Path::new(shell)),
                Capture::BeginFrame
            );
        }
        for browser in ["/usr/bin/chromium", "/usr/bin/google-chrome", "/opt/chrome"] {
            assert_eq!(
                Capture::for_executable(Path::new(browser)),
                Capture::Screenshot
            );
        }
    }
}
