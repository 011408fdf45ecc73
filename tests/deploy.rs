//! The deployable files say what the code needs: the origin's Dockerfile
//! installs the one runtime package list, runs as a non-root user with a
//! health check, and only sets settings the origin has.

use std::path::{Path, PathBuf};

use clap::CommandFactory;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Dockerfile instructions (continuation lines joined, comments dropped),
/// split into stages at each `FROM`.
fn stages(dockerfile: &str) -> Vec<Vec<String>> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => current.push_str(head),
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<Vec<String>> = Vec::new();
    for instruction in instructions {
        if instruction.starts_with("FROM ") {
            stages.push(Vec::new());
        }
        if let Some(stage) = stages.last_mut() {
            stage.push(instruction);
        }
    }
    stages
}

#[test]
fn the_runtime_stage_installs_the_one_package_list() {
    let stages = stages(&read("Dockerfile"));
    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let (build, runtime) = (&stages[0], &stages[1]);
    assert!(runtime[0].starts_with("FROM debian:"), "{}", runtime[0]);
    assert!(
        build
            .iter()
            .any(|i| i
                .contains("cargo build --release --locked -p imgate-origin --no-default-features")),
        "the image has no dev stack: {build:#?}"
    );
    let list = "origin/runtime-packages.txt";
    assert!(
        runtime
            .iter()
            .any(|i| i.starts_with("COPY ") && i.contains(list))
    );
    let installs: Vec<&String> = runtime
        .iter()
        .filter(|i| i.contains("apt-get install"))
        .collect();
    assert_eq!(installs.len(), 1, "{installs:#?}");
    let install = installs[0];
    assert!(
        install.contains("/tmp/runtime-packages.txt")
            && install.contains("| xargs apt-get install"),
        "installs from the list, not a copy of it: {install}"
    );
    for package in imgate_origin::runtime_packages() {
        assert!(
            !install.contains(package),
            "{package} is named in the Dockerfile too; keep it in {list} only"
        );
    }
    // CI installs the same list, so the tests run with what the image has.
    let ci = read(".ci/run");
    assert!(ci.contains(list), ".ci/run must install {list}");
    assert!(!ci.contains("fonts-noto"), ".ci/run names fonts itself");
}

#[test]
fn the_list_has_the_browser_and_a_font_for_every_script_cards_use() {
    let packages = imgate_origin::runtime_packages();
    for needed in [
        "chromium-headless-shell", // the renderer (IMGATE_CHROMIUM in the Dockerfile)
        "fonts-noto-core",         // Latin, Arabic, Hebrew, …
        "fonts-noto-cjk",          // Chinese, Japanese, Korean
        "fonts-noto-color-emoji",  // emoji
        "ca-certificates",         // HTTPS to S3 and data sources
    ] {
        assert!(packages.contains(&needed), "{needed} missing: {packages:?}");
    }
}

#[test]
fn the_image_runs_unprivileged_with_a_health_check() {
    let stages = stages(&read("Dockerfile"));
    let runtime = stages.last().unwrap();
    let user = runtime
        .iter()
        .find_map(|i| i.strip_prefix("USER "))
        .expect("a USER");
    let uid: u32 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("a numeric uid");
    assert_ne!(uid, 0);
    assert!(
        runtime.iter().any(|i| i.starts_with("HEALTHCHECK ")
            && i.contains(r#"CMD ["imgate-origin", "healthcheck"]"#)),
        "{runtime:#?}"
    );
    assert!(runtime.contains(&r#"ENTRYPOINT ["imgate-origin"]"#.to_string()));
    assert!(runtime.contains(&r#"CMD ["serve"]"#.to_string()));
}

#[test]
fn the_image_sets_only_real_settings() {
    let table = imgate_origin::settings::table(&imgate_origin::cli::Cli::command());
    let dockerfile = read("Dockerfile");
    let env = stages(&dockerfile)
        .last()
        .unwrap()
        .iter()
        .find(|i| i.starts_with("ENV "))
        .cloned()
        .expect("an ENV");
    let names: Vec<&str> = env
        .split_whitespace()
        .filter_map(|kv| kv.split_once('=').map(|(k, _)| k))
        .collect();
    assert!(names.len() >= 4, "{names:?}");
    for name in names {
        assert!(
            table.contains(&format!("| `{name}` |")),
            "{name} is not a setting"
        );
    }
}
