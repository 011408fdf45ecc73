//! The part of a Spin manifest (`spin.toml`, v2) that running imgate's edge needs:
//! the HTTP component, its files, its outbound-host allowlist and its variables,
//! resolved the way Spin resolves them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Deserialize)]
struct RawManifest {
    spin_manifest_version: u32,
    #[serde(default)]
    variables: BTreeMap<String, RawVariable>,
    trigger: RawTriggers,
    component: BTreeMap<String, RawComponent>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVariable {
    default: Option<String>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    secret: bool,
}

#[derive(Deserialize)]
struct RawTriggers {
    http: Vec<RawHttpTrigger>,
}

#[derive(Deserialize)]
struct RawHttpTrigger {
    route: String,
    component: String,
}

#[derive(Deserialize)]
struct RawComponent {
    source: String,
    #[serde(default)]
    files: Vec<RawFile>,
    #[serde(default)]
    allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    key_value_stores: Vec<String>,
}

#[derive(Deserialize)]
struct RawFile {
    source: String,
    destination: String,
}

/// A directory from the host made visible to the component, read-only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host: PathBuf,
    pub guest: String,
}

/// One allowed outbound destination: scheme, host and port must all match.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct OutboundHost {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl OutboundHost {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let uri: http::Uri = url
            .parse()
            .with_context(|| format!("allowed_outbound_hosts entry {url:?} is not a URL"))?;
        let scheme = uri.scheme_str().unwrap_or_default().to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => bail!("allowed_outbound_hosts entry {url:?} must start with http:// or https://"),
        };
        let host = uri
            .host()
            .with_context(|| format!("allowed_outbound_hosts entry {url:?} has no host"))?
            .to_ascii_lowercase();
        Ok(Self {
            port: uri.port_u16().unwrap_or(default_port),
            scheme,
            host,
        })
    }

    /// Whether a request URI goes to this destination.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        Self::parse(&uri.to_string()).is_ok_and(|target| &target == self)
    }
}

impl std::fmt::Display for OutboundHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// The edge application, ready to run.
#[derive(Debug)]
pub struct App {
    pub component_name: String,
    pub wasm: PathBuf,
    pub mounts: Vec<Mount>,
    pub outbound: Vec<OutboundHost>,
    /// Component variables, resolved. Values of secret variables must not be logged.
    pub variables: BTreeMap<String, String>,
    /// Names of component variables whose value comes from a secret application variable.
    pub secret_variables: BTreeSet<String>,
    /// Labels of the key-value stores the component may open.
    pub key_value_stores: Vec<String>,
}

impl App {
    /// Loads a manifest. `env` looks up environment variables (`SPIN_VARIABLE_*`).
    pub fn load(manifest: &Path, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        let base = manifest.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base, env).with_context(|| format!("in {}", manifest.display()))
    }

    pub fn parse(
        text: &str,
        base: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        let raw: RawManifest = toml::from_str(text)?;
        if raw.spin_manifest_version != 2 {
            bail!("only spin_manifest_version = 2 is supported");
        }
        let [trigger] = raw.trigger.http.as_slice() else {
            bail!("expected exactly one [[trigger.http]]");
        };
        if trigger.route != "/..." {
            bail!(
                "the edge's trigger must have route = \"/...\", not {:?}",
                trigger.route
            );
        }
        let component = raw
            .component
            .get(&trigger.component)
            .with_context(|| format!("trigger names missing component {:?}", trigger.component))?;

        // Application variables: environment first (Spin's SPIN_VARIABLE_<NAME>), then default.
        let mut app_vars = BTreeMap::new();
        let mut missing = Vec::new();
        let mut secret_app_vars = BTreeSet::new();
        for (name, var) in &raw.variables {
            if var.required && var.default.is_some() {
                bail!("variable {name} is required and has a default");
            }
            if var.secret {
                secret_app_vars.insert(name.clone());
            }
            let env_name = format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase());
            match env(&env_name).or_else(|| var.default.clone()) {
                Some(value) => {
                    app_vars.insert(name.clone(), value);
                }
                None => missing.push(env_name),
            }
        }
        if !missing.is_empty() {
            bail!("required variables are not set: {}", missing.join(", "));
        }

        let mut variables = BTreeMap::new();
        let mut secret_variables = BTreeSet::new();
        for (name, template) in &component.variables {
            let (value, used) = expand(template, &app_vars)
                .with_context(|| format!("component variable {name}"))?;
            if used.iter().any(|u| secret_app_vars.contains(u)) {
                secret_variables.insert(name.clone());
            }
            variables.insert(name.clone(), value);
        }
        let outbound = component
            .allowed_outbound_hosts
            .iter()
            .map(|entry| {
                let (url, _) = expand(entry, &app_vars)?;
                OutboundHost::parse(&url)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mounts = component
            .files
            .iter()
            .map(|f| Mount {
                host: base.join(&f.source),
                guest: f.destination.clone(),
            })
            .collect();
        Ok(Self {
            component_name: trigger.component.clone(),
            wasm: base.join(&component.source),
            mounts,
            outbound,
            variables,
            secret_variables,
            key_value_stores: component.key_value_stores.clone(),
        })
    }
}

/// Expands `{{ name }}` references to application variables. Returns the text
/// and the names it used.
fn expand(
    template: &str,
    vars: &BTreeMap<String, String>,
) -> anyhow::Result<(String, Vec<String>)> {
    let mut out = String::new();
    let mut used = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .with_context(|| format!("unclosed {{{{ in {template:?}"))?;
        let name = after[..end].trim();
        let value = vars
            .get(name)
            .with_context(|| format!("{template:?} uses undeclared variable {name:?}"))?;
        out.push_str(value);
        used.push(name.to_string());
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok((out, used))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
        spin_manifest_version = 2
        [application]
        name = "t"
        [variables]
        host = { default = "http://127.0.0.1:9000" }
        token = { required = true, secret = true }
        [[trigger.http]]
        route = "/..."
        component = "edge"
        [component.edge]
        source = "edge.wasm"
        files = [{ source = "templates", destination = "/templates" }]
        allowed_outbound_hosts = ["{{ host }}", "https://example.com"]
        [component.edge.variables]
        url = "{{host}}/x"
        token = "{{ token }}"
        fixed = "/templates"
    "#;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn resolves_like_spin() {
        let app = App::parse(
            MANIFEST,
            Path::new("/app"),
            env(&[
                ("SPIN_VARIABLE_TOKEN", "t0k"),
                ("SPIN_VARIABLE_HOST", "http://10.0.0.1:1"),
            ]),
        )
        .unwrap();
        assert_eq!(app.wasm, Path::new("/app/edge.wasm"));
        assert_eq!(app.variables["url"], "http://10.0.0.1:1/x");
        assert_eq!(app.variables["token"], "t0k");
        assert_eq!(app.variables["fixed"], "/templates");
        assert_eq!(app.secret_variables.iter().collect::<Vec<_>>(), ["token"]);
        assert_eq!(app.mounts[0].host, Path::new("/app/templates"));
        assert_eq!(app.outbound[0].to_string(), "http://10.0.0.1:1");
        assert_eq!(app.outbound[1].to_string(), "https://example.com:443");
    }

    #[test]
    fn required_variables_must_be_set() {
        let err = App::parse(MANIFEST, Path::new("/"), env(&[])).unwrap_err();
        assert!(
            format!("{err:#}").contains("SPIN_VARIABLE_TOKEN"),
            "{err:#}"
        );
    }

    #[test]
    fn outbound_matching_is_exact() {
        let allowed = OutboundHost::parse("http://127.0.0.1:9000").unwrap();
        assert!(allowed.allows(&"http://127.0.0.1:9000/bucket/key?x=1".parse().unwrap()));
        assert!(!allowed.allows(&"http://127.0.0.1:9001/".parse().unwrap()));
        assert!(!allowed.allows(&"https://127.0.0.1:9000/".parse().unwrap()));
        assert!(!allowed.allows(&"http://169.254.169.254/".parse().unwrap()));
        let https = OutboundHost::parse("https://S3.amazonaws.com").unwrap();
        assert!(https.allows(&"https://s3.amazonaws.com:443/b".parse().unwrap()));
    }
}
