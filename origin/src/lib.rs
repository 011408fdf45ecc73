//! imgate's origin: renders cards in headless Chromium, stores them in S3 and
//! serves them to the edge. The `imgate-origin` binary is the CLI around it;
//! the benchmark uses the renderer directly.

pub mod backfill;
pub mod capture;
pub mod cli;
pub mod data;
pub mod debug;
#[cfg(feature = "dev")]
pub mod dev;
pub mod dither;
pub mod doctor;
pub mod encode;
pub mod error;
pub mod gc;
pub mod images;
pub mod listen;
pub mod logs;
pub mod manifest;
pub mod metrics;
pub mod origin;
pub mod photos;
pub mod render;
pub mod server;
pub mod settings;
pub mod singleflight;
pub mod store;
pub mod templates;
pub mod uploads;
pub mod warm;

/// The rendition engine (its own crate, so it can be fuzzed and benchmarked
/// without the browser and the AWS SDK).
pub use imgate_rendition as rendition;

/// The Debian packages the origin needs at run time (Chromium, fonts), from
/// the one list the container image and CI install.
pub fn runtime_packages() -> Vec<&'static str> {
    include_str!("../runtime-packages.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}
