//! What `/debug/templates` shows: every template, its parameters and a sample URL.

use imgate_contract::template::ParamKind;
use serde_json::{Value, json};

use crate::templates::Templates;

pub fn templates(templates: &Templates) -> Value {
    let list: Vec<Value> = templates
        .iter()
        .map(|(name, spec)| {
            let params: Vec<Value> = spec
                .params
                .iter()
                .map(|(param, p)| {
                    json!({
                        "name": param,
                        "required": p.required,
                        "max_chars": p.max_chars,
                        "default": p.default,
                        "kind": match p.kind { ParamKind::Text => "text", ParamKind::Url => "url" },
                    })
                })
                .collect();
            // A sample URL fills each required text parameter with its own name.
            let sample_query: Vec<String> = spec
                .params
                .iter()
                .filter(|(_, p)| p.required && p.kind == ParamKind::Text)
                .map(|(param, _)| format!("{param}=Sample%20{param}"))
                .collect();
            let mut sample = format!("/debug/render/og/{name}.png");
            if !sample_query.is_empty() {
                sample = format!("{sample}?{}", sample_query.join("&"));
            }
            json!({
                "name": name,
                "description": spec.description,
                "revision": spec.revision,
                "width": spec.width,
                "height": spec.height,
                "javascript": spec.javascript,
                "allowed_hosts": spec.allowed_hosts,
                "data_source": spec.data_source.as_ref().map(|d| &d.url),
                "params": params,
                "sample": sample,
                "html": sample.replacen("/debug/render/", "/debug/html/", 1),
            })
        })
        .collect();
    json!({ "templates": list })
}
