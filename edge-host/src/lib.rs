//! Runs imgate's edge component the way Spin would: [`manifest`] reads
//! `spin.toml`, [`runtime`] instantiates the component per request in wasmtime.

pub mod check;
pub mod kv;
pub mod manifest;
pub mod runtime;
