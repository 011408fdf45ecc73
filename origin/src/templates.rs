//! Card templates: one folder each, holding `template.toml` (the schema the edge
//! reads too) and `card.html` (a minijinja template, HTML-autoescaped).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use imgate_contract::{
    CanonicalCard, CardRequest, CardSpec, ContractError, template::MANIFEST_FILE,
};

/// The HTML file inside each template folder.
pub const HTML_FILE: &str = "card.html";

/// A filled-in template, ready for the browser.
pub struct CardPage {
    /// The template's name (its folder).
    pub template: String,
    pub html: String,
    pub spec: Arc<CardSpec>,
}

pub struct Templates {
    specs: BTreeMap<String, Arc<CardSpec>>,
    env: minijinja::Environment<'static>,
}

impl Templates {
    /// Loads every template folder under `dir`, failing on the first broken one so a
    /// typo is caught at start-up rather than on the first request.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut specs = BTreeMap::new();
        let mut env = minijinja::Environment::new();
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the templates folder {}", dir.display()))?;
        for entry in entries {
            let folder = entry?.path();
            let manifest = folder.join(MANIFEST_FILE);
            if !manifest.is_file() {
                continue;
            }
            let name = folder
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| imgate_contract::route::is_valid_template_name(n))
                .with_context(|| {
                    format!(
                        "template folder name {} must be [a-z0-9-]",
                        folder.display()
                    )
                })?
                .to_string();
            let spec = CardSpec::from_toml(&std::fs::read_to_string(&manifest)?)
                .map_err(|e| anyhow::anyhow!("{}: {e}", manifest.display()))?;
            let html_path = folder.join(HTML_FILE);
            let html = std::fs::read_to_string(&html_path)
                .with_context(|| format!("cannot read {}", html_path.display()))?;
            env.add_template_owned(name.clone(), html)
                .with_context(|| format!("{} does not parse", html_path.display()))?;
            specs.insert(name, Arc::new(spec));
        }
        anyhow::ensure!(
            !specs.is_empty(),
            "no templates (folders with {MANIFEST_FILE}) in {}",
            dir.display()
        );
        Ok(Self { specs, env })
    }

    pub fn spec(&self, name: &str) -> Result<&Arc<CardSpec>, ContractError> {
        self.specs
            .get(name)
            .ok_or_else(|| ContractError::UnknownTemplate(name.to_string()))
    }

    /// Every host some template lets its page load from.
    pub fn allowed_hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self
            .specs
            .values()
            .flat_map(|spec| spec.allowed_hosts.iter().cloned())
            .collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Arc<CardSpec>)> {
        self.specs.iter().map(|(name, spec)| (name.as_str(), spec))
    }

    /// Checks a request against its template's schema.
    pub fn canonicalize(&self, request: &CardRequest) -> Result<CanonicalCard, ContractError> {
        self.spec(&request.template)?.canonicalize(request)
    }

    /// The template filled in with `params`. Values are autoescaped, so a title
    /// can never inject markup.
    pub fn page(
        &self,
        template: &str,
        params: &BTreeMap<String, String>,
    ) -> anyhow::Result<CardPage> {
        let spec = self.spec(template)?.clone();
        let mut ctx: BTreeMap<&str, minijinja::Value> = params
            .iter()
            .map(|(k, v)| (k.as_str(), minijinja::Value::from(v.as_str())))
            .collect();
        ctx.insert("width", spec.width.into());
        ctx.insert("height", spec.height.into());
        Ok(CardPage {
            template: template.to_string(),
            html: self.env.get_template(template)?.render(ctx)?,
            spec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgate_contract::{Route, route};

    fn shipped() -> Templates {
        Templates::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../templates")).unwrap()
    }

    #[test]
    fn shipped_templates_load_and_escape() {
        let t = shipped();
        let names: Vec<_> = t.iter().map(|(n, _)| n).collect();
        for want in ["article", "basic", "product"] {
            assert!(names.contains(&want), "{names:?}");
        }
        let Route::Card(req) = route::parse(
            "GET",
            "/og/product.png",
            "title=%3Cscript%3Ealert(1)%3C%2Fscript%3E&price=%2419",
        )
        .unwrap() else {
            unreachable!()
        };
        let card = t.canonicalize(&req).unwrap();
        let page = t.page(&card.template, &card.params).unwrap();
        assert_eq!((page.spec.width, page.spec.height), (1200, 630));
        assert!(
            page.html
                .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{}",
            page.html
        );
        assert!(!page.html.contains("<script>"));
        assert!(page.html.contains("$19") && page.html.contains("width: 1200px"));
    }
}
