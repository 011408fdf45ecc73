//! `imgate-edge-host --check`: is this manifest, with these variables, an edge
//! that will serve? The same reading Spin does (defaults, `SPIN_VARIABLE_*`),
//! then the edge's own configuration rules, without starting anything.

use std::path::Path;

use imgate_edge::EdgeConfig;
use imgate_edge::config::VARIABLES;

use crate::manifest::App;

/// Problems found, each a sentence naming the variable or file to fix; empty
/// when the edge would start.
pub fn problems(manifest: &Path, env: impl Fn(&str) -> Option<String>) -> Vec<String> {
    let app = match App::load(manifest, env) {
        Ok(app) => app,
        Err(e) => return vec![format!("{e:#}")],
    };
    let mut problems = Vec::new();
    if !app.wasm.is_file() {
        problems.push(format!(
            "the component {} is not built (scripts/build-edge)",
            app.wasm.display()
        ));
    }
    for (name, _) in VARIABLES {
        if !app.variables.contains_key(*name) {
            problems.push(format!(
                "the component does not pass the variable {name} ([component.{}.variables])",
                app.component_name
            ));
        }
    }
    for mount in &app.mounts {
        if !mount.host.is_dir() {
            problems.push(format!(
                "files: {} (mounted at {}) is not a folder",
                mount.host.display(),
                mount.guest
            ));
        }
    }
    if let Err(config) = EdgeConfig::from_lookup(|name| app.variables.get(name).cloned()) {
        problems.extend(config.split("; ").map(str::to_string));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
    }

    #[test]
    fn the_shipped_manifest_needs_its_secrets() {
        let found = problems(&repo().join("spin.toml"), |_| None);
        assert_eq!(found.len(), 1, "{found:#?}");
        for secret in [
            "SPIN_VARIABLE_EDGE_TOKEN",
            "SPIN_VARIABLE_STORE_ACCESS_KEY_ID",
            "SPIN_VARIABLE_STORE_SECRET_ACCESS_KEY",
        ] {
            assert!(found[0].contains(secret), "{found:#?}");
        }
    }

    #[test]
    fn edge_rules_are_checked_after_the_manifest() {
        let env = |name: &str| match name {
            "SPIN_VARIABLE_EDGE_TOKEN" => Some("t".repeat(32)),
            "SPIN_VARIABLE_STORE_ACCESS_KEY_ID" | "SPIN_VARIABLE_STORE_SECRET_ACCESS_KEY" => {
                Some("x".into())
            }
            "SPIN_VARIABLE_MODE" => Some("sideways".into()),
            _ => None,
        };
        let found = problems(&repo().join("spin.toml"), env);
        let all = found.join("\n");
        assert!(all.contains("mode must be serve or redirect"), "{all}");
        assert!(all.contains("no signing_keys"), "{all}");
        assert!(
            !all.contains(&"t".repeat(32)),
            "a secret was printed: {all}"
        );
    }
}
