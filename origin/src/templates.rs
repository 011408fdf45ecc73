//! Card templates: one folder each, holding `template.toml` (the schema the edge
//! reads too) and `card.html` (a minijinja template, HTML-autoescaped).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use imgate_contract::{
    CanonicalCard, CardRequest, CardSpec, ContractError, template::MANIFEST_FILE,
};

/// The HTML file inside each template folder.
pub const HTML_FILE: &str = "card.html";

/// A rendered template, ready for the browser.
pub struct CardPage {
    pub html: String,
    pub width: u32,
    pub height: u32,
}

pub struct Templates {
    specs: BTreeMap<String, CardSpec>,
    env: minijinja::Environment<'static>,
}

impl Templates {
    /// Loads every template folder under `dir`, failing on the first broken one so a
    /// typo is caught at start-up rather than on the first request.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        let mut specs = BTreeMap::new();
        let mut env = minijinja::Environment::new();
        // `.html` names turn on HTML autoescaping; be explicit anyway.
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
            specs.insert(name, spec);
        }
        anyhow::ensure!(
            !specs.is_empty(),
            "no templates (folders with {MANIFEST_FILE}) in {}",
            dir.display()
        );
        Ok(Self { specs, env })
    }

    /// Checks a request against its template's schema.
    pub fn canonicalize(&self, request: &CardRequest) -> Result<CanonicalCard, ContractError> {
        self.specs
            .get(&request.template)
            .ok_or_else(|| ContractError::UnknownTemplate(request.template.clone()))?
            .canonicalize(request)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.specs.keys().map(String::as_str)
    }

    /// The card as a page to screenshot. Parameters are autoescaped, so a title
    /// can never inject markup.
    pub fn page(&self, card: &CanonicalCard) -> anyhow::Result<CardPage> {
        let spec = self
            .specs
            .get(&card.template)
            .with_context(|| format!("no template {:?}", card.template))?;
        let mut ctx: BTreeMap<&str, minijinja::Value> = card
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), minijinja::Value::from(v.as_str())))
            .collect();
        ctx.insert("width", spec.width.into());
        ctx.insert("height", spec.height.into());
        Ok(CardPage {
            html: self.env.get_template(&card.template)?.render(ctx)?,
            width: spec.width,
            height: spec.height,
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
        assert!(t.names().any(|n| n == "product"));
        let Route::Card(req) = route::parse(
            "GET",
            "/og/product.png",
            "title=%3Cscript%3Ealert(1)%3C%2Fscript%3E&price=%2419",
        )
        .unwrap() else {
            unreachable!()
        };
        let card = t.canonicalize(&req).unwrap();
        let page = t.page(&card).unwrap();
        assert_eq!((page.width, page.height), (1200, 630));
        let html = page.html;
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
            "{html}"
        );
        assert!(!html.contains("<script>"));
        assert!(html.contains("$19") && html.contains("width: 1200px"));
    }
}
