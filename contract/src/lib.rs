//! The contract that imgate's edge, origin, CLI and URL helpers share byte for byte:
//! what a URL means ([`route`]), its canonical form ([`query`]), which templates
//! and parameters exist ([`template`]), which renditions exist ([`rendition`]),
//! where the image lives in the bucket
//! ([`key`]) and who may ask for it ([`sign`]).
//!
//! Pure code with no I/O, so it builds for `wasm32-wasip2` and native alike.
//! Data flows one way: `route::parse` → `sign::Keyring::verify` →
//! `template::CardSpec::canonicalize` → `key::ObjectKey`.

pub mod error;
pub mod format;
#[cfg(any(test, fuzzing))]
pub mod fuzz;
pub mod key;
pub mod limits;
pub mod query;
pub mod rendition;
pub mod request_id;
pub mod route;
pub mod sign;
pub mod template;

pub use error::{ContractError, ErrorBody};
pub use format::ImageFormat;
pub use key::ObjectKey;
pub use query::Query;
pub use rendition::{Preset, Presets, RenditionRequest};
pub use route::{CardRequest, Route, Signable};
pub use sign::Keyring;
pub use template::{CanonicalCard, CardSpec};

/// Headers and values both tiers must agree on.
pub mod headers {
    /// Objects never change once written: a new design bumps the template revision
    /// and a new record bumps `v`, both of which change the object key.
    pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";
    /// An image made while the store failed: served, but soon asked for
    /// again, so it is stored once the store is back.
    pub const NOT_KEPT: &str = "public, max-age=60";
    /// Errors must never be cached by a CDN or browser.
    pub const NO_STORE: &str = "no-store";
    /// The header carrying the edge's credential to the origin's internal routes.
    pub const EDGE_TOKEN: &str = "x-imgate-edge-token";
    /// Tells the caller whether the edge found the image stored (`hit`) or had it made (`miss`).
    pub const CACHE_STATUS: &str = "x-imgate-cache";
}
