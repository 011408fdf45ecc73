//! The built edge component is the file spin.toml names, exports the WASI HTTP
//! handler Spin calls, and imports nothing Spin-specific beyond its variables
//! and key-value store.
//! Needs `scripts/build-edge` to have run (the README's test command does).

use std::path::Path;
use std::time::Duration;

use imgate_edge_host::manifest::App;
use imgate_edge_host::runtime::{Edge, Limits};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

#[test]
fn spin_toml_names_the_built_component_and_it_exports_the_http_handler() {
    let required = |name: &str| match name {
        "SPIN_VARIABLE_STORE_ACCESS_KEY_ID"
        | "SPIN_VARIABLE_STORE_SECRET_ACCESS_KEY"
        | "SPIN_VARIABLE_EDGE_TOKEN" => Some("test".to_string()),
        _ => None,
    };
    let app = App::load(&root().join("spin.toml"), required).unwrap();
    assert_eq!(
        app.wasm.canonicalize().unwrap(),
        root()
            .join("target/edge/wasm32-wasip2/edge/imgate_edge.wasm")
            .canonicalize()
            .expect("the edge is built by scripts/build-edge")
    );
    // The edge is loaded on every cold start at the edge: keep it small.
    let size = std::fs::metadata(&app.wasm).unwrap().len();
    assert!(
        size <= 1_000_000,
        "the edge component is {size} bytes, over 1 MB"
    );
    let edge = Edge::new(
        app,
        Limits {
            request_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_reuse: 1,
            max_concurrent: 1,
            connect_timeout: Duration::from_secs(1),
            first_byte_timeout: Duration::from_secs(1),
        },
        None,
    )
    .expect("the host instantiates the component");
    let (imports, exports) = edge.interfaces();
    assert!(
        exports.iter().any(|e| e == "wasi:http/handler@0.3.0"),
        "exports: {exports:?}"
    );
    let non_wasi: Vec<_> = imports.iter().filter(|i| !i.starts_with("wasi:")).collect();
    assert_eq!(
        non_wasi,
        [
            "spin:variables/variables@3.0.0",
            "spin:key-value/key-value@3.0.0"
        ],
        "imports: {imports:?}"
    );
}

#[test]
fn every_variable_the_edge_reads_is_declared_in_spin_toml() {
    let manifest: toml::Table = std::fs::read_to_string(root().join("spin.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let declared = manifest["component"]["edge"]["variables"]
        .as_table()
        .unwrap();
    let wanted: Vec<_> = imgate_edge::config::VARIABLES
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let mut have: Vec<_> = declared.keys().map(String::as_str).collect();
    have.sort();
    let mut want = wanted.clone();
    want.sort();
    assert_eq!(have, want);
}
