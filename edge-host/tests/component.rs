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

/// What Spin reads from the manifest matches what the edge does: one catch-all
/// route, outbound calls only to the two URLs it sends to, the templates
/// mounted where `templates_dir` says, and every credential marked secret.
#[test]
fn spin_toml_routes_outbound_files_and_secrets_match_the_edge() {
    let manifest: toml::Table = std::fs::read_to_string(root().join("spin.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let triggers = manifest["trigger"]["http"].as_array().unwrap();
    assert_eq!(triggers.len(), 1);
    assert_eq!(triggers[0]["route"].as_str(), Some("/..."));
    assert_eq!(triggers[0]["component"].as_str(), Some("edge"));
    let edge = manifest["component"]["edge"].as_table().unwrap();
    let outbound: Vec<&str> = edge["allowed_outbound_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(outbound, ["{{ store_endpoint }}", "{{ origin_url }}"]);
    let files = edge["files"].as_array().unwrap();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["source"].as_str(), Some("templates"));
    let destination = files[0]["destination"].as_str().unwrap();
    assert_eq!(
        edge["variables"]["templates_dir"].as_str(),
        Some(destination),
        "the edge reads templates where they are mounted"
    );
    let app_vars = manifest["variables"].as_table().unwrap();
    for secret in [
        "store_access_key_id",
        "store_secret_access_key",
        "edge_token",
        "signing_keys",
    ] {
        assert_eq!(
            app_vars[secret].get("secret").and_then(|s| s.as_bool()),
            Some(true),
            "{secret} must be secret"
        );
    }
    for required in [
        "store_access_key_id",
        "store_secret_access_key",
        "edge_token",
    ] {
        assert_eq!(
            app_vars[required].get("required").and_then(|s| s.as_bool()),
            Some(true),
            "{required} has no safe default"
        );
    }
}
