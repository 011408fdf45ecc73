//! Warm-up: request public image URLs through the edge so the first visitor
//! (or social crawler) finds them stored. URLs come from a list, or from a
//! sitemap whose pages name their cards in `og:image` / `twitter:image`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::StreamExt;
use indicatif::ProgressBar;

/// What one URL needed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It was not stored: the request made it.
    Rendered,
    /// It was stored already.
    Present,
    Failed(String),
}

#[derive(Debug, Default)]
pub struct Summary {
    pub rendered: usize,
    pub present: usize,
    pub failed: Vec<(String, String)>,
    pub elapsed: Duration,
}

/// The URLs of a list: one per line; blank lines and `#` comments skipped.
pub fn parse_list(text: &str) -> Vec<String> {
    dedupe(
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string),
    )
}

/// The `<loc>`s of a sitemap.
pub fn sitemap_locations(xml: &str) -> Vec<String> {
    xml.split("<loc>")
        .skip(1)
        .filter_map(|rest| {
            rest.split_once("</loc>")
                .map(|(loc, _)| unescape(loc.trim()))
        })
        .collect()
}

/// The `content` of a `<meta property|name="{key}">` tag, entities decoded.
pub fn meta_content(html: &str, key: &str) -> Option<String> {
    html.split("<meta ").skip(1).find_map(|tag| {
        let tag = &tag[..tag.find('>')?];
        let attr = |name: &str| {
            let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
            Some(&tag[start..start + tag[start..].find('"')?])
        };
        (attr("property") == Some(key) || attr("name") == Some(key))
            .then(|| attr("content"))
            .flatten()
            .map(unescape)
    })
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn dedupe(urls: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    urls.filter(|u| seen.insert(u.clone())).collect()
}

/// The image URLs a sitemap leads to: its pages' `og:image` and
/// `twitter:image`, and any `<loc>` that is itself an imgate image URL.
/// Pages that cannot be read are returned as failures.
pub async fn from_sitemap(
    client: &reqwest::Client,
    sitemap: &str,
) -> anyhow::Result<(Vec<String>, Vec<(String, String)>)> {
    let xml = client
        .get(sitemap)
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let mut images = Vec::new();
    let mut failed = Vec::new();
    for page in sitemap_locations(&xml) {
        if is_image_url(&page) {
            images.push(page);
            continue;
        }
        let html = match client
            .get(&page)
            .send()
            .await
            .and_then(|r| r.error_for_status())
        {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(e) => {
                failed.push((page, format!("page unreadable: {e}")));
                continue;
            }
        };
        let found: Vec<String> = ["og:image", "twitter:image"]
            .iter()
            .filter_map(|key| meta_content(&html, key))
            .collect();
        if found.is_empty() {
            failed.push((page, "the page has no og:image or twitter:image".into()));
        }
        images.extend(found);
    }
    Ok((dedupe(images.into_iter()), failed))
}

fn is_image_url(url: &str) -> bool {
    url.contains("/og/") || url.contains("/r/")
}

/// Requests every URL, `concurrency` at a time, reading the edge's
/// `x-imgate-cache` to tell a render from a stored image.
pub async fn run(
    client: &reqwest::Client,
    urls: Vec<String>,
    concurrency: usize,
    progress: &ProgressBar,
    plain: bool,
) -> Summary {
    let started = Instant::now();
    let mut summary = Summary::default();
    progress.set_length(urls.len() as u64);
    let mut outcomes = futures::stream::iter(urls)
        .map(|url| async move {
            let outcome = warm_one(client, &url).await;
            (url, outcome)
        })
        .buffer_unordered(concurrency.max(1));
    while let Some((url, outcome)) = outcomes.next().await {
        let line = match &outcome {
            Outcome::Rendered => format!("rendered {url}"),
            Outcome::Present => format!("present  {url}"),
            Outcome::Failed(why) => format!("failed   {url}: {why}"),
        };
        if plain {
            eprintln!("{line}");
        } else if matches!(outcome, Outcome::Failed(_)) {
            progress.println(line);
        }
        match outcome {
            Outcome::Rendered => summary.rendered += 1,
            Outcome::Present => summary.present += 1,
            Outcome::Failed(why) => summary.failed.push((url, why)),
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    summary.elapsed = started.elapsed();
    summary
}

async fn warm_one(client: &reqwest::Client, url: &str) -> Outcome {
    let response = match client.get(url).send().await {
        Ok(response) => response,
        Err(e) => return Outcome::Failed(crate::error::chain(&e)),
    };
    let status = response.status();
    let cache = response
        .headers()
        .get(imgate_contract::headers::CACHE_STATUS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    // Read the whole answer: a miss is stored once the edge has streamed it.
    let body = response.bytes().await.unwrap_or_default();
    if !status.is_success() {
        let why = serde_json::from_slice::<imgate_contract::ErrorBody>(&body)
            .map(|b| format!("{}: {}", b.error.code, b.error.message))
            .unwrap_or_else(|_| String::from_utf8_lossy(&body[..body.len().min(200)]).into());
        return Outcome::Failed(format!("{} {why}", status.as_u16()));
    }
    if cache == "hit" {
        Outcome::Present
    } else {
        Outcome::Rendered
    }
}

impl Summary {
    pub fn report(&self) -> String {
        let mut text = format!(
            "warm: {} URLs in {:.1} s\n\n| outcome | URLs |\n| --- | ---: |\n| rendered | {} |\n| already present | {} |\n| failed | {} |\n",
            self.rendered + self.present + self.failed.len(),
            self.elapsed.as_secs_f64(),
            self.rendered,
            self.present,
            self.failed.len(),
        );
        if !self.failed.is_empty() {
            text.push('\n');
            for (url, why) in self.failed.iter().take(20) {
                text.push_str(&format!("failed {url}: {why}\n"));
            }
            if self.failed.len() > 20 {
                text.push_str(&format!("… and {} more\n", self.failed.len() - 20));
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lists_sitemaps_and_meta_tags() {
        assert_eq!(
            parse_list(
                "# top listings\nhttps://a/og/x.png\n\n  https://a/og/y.png \nhttps://a/og/x.png\n"
            ),
            ["https://a/og/x.png", "https://a/og/y.png"]
        );
        let xml = "<urlset><url><loc>https://s/p?a=1&amp;b=2</loc></url><url><loc> https://s/q </loc></url></urlset>";
        assert_eq!(
            sitemap_locations(xml),
            ["https://s/p?a=1&b=2", "https://s/q"]
        );
        let html = r#"<head><meta property="og:image" content="https://i/og/a.png?a=1&amp;v=2"/><meta name="twitter:card" content="summary_large_image"/></head>"#;
        assert_eq!(
            meta_content(html, "og:image").as_deref(),
            Some("https://i/og/a.png?a=1&v=2")
        );
        assert_eq!(
            meta_content(html, "twitter:card").as_deref(),
            Some("summary_large_image")
        );
        assert_eq!(meta_content(html, "og:title"), None);
    }
}
