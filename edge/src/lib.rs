//! imgate's edge: every request meets this first.
//!
//! The decisions are pure functions ([`config`], [`plan`]) that build and test
//! natively; the Spin handler in `component` (wasm32 only) performs the I/O the
//! plan asks for: read the store (or the known-present [`index`]), serve or
//! redirect, or forward the miss to the origin.

pub mod access;
pub mod config;
pub mod index;
pub mod plan;
pub mod presign;

#[cfg(target_arch = "wasm32")]
mod component;

pub use config::EdgeConfig;
pub use plan::{Plan, plan};
