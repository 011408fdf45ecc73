//! The Next.js example as a social crawler meets it: fetch a page, read its
//! `og:image` and `twitter:image`, fetch those without following redirects.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use imgate_devstack::{Child, source_root};
use imgate_origin::warm::meta_content;
use imgate_tests::png_size;

use super::edge_modes::error_code;
use super::{Test, World, block, header};

pub const TRIALS: &[(&str, Test)] = &[(
    "nextjs_pages_give_crawlers_cards_that_answer_200",
    link_previews,
)];

const FACEBOOK: &str = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)";
const TWITTER: &str = "Twitterbot/1.0";

fn link_previews(w: &World) -> anyhow::Result<()> {
    let app = source_root().join("examples/nextjs");
    ensure!(
        app.join(".next/BUILD_ID").is_file(),
        "the Next.js example is not built: run scripts/build-example"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port()
        .to_string();
    let next = block(Child::spawn(
        "next",
        std::path::Path::new("node"),
        &[
            &app.join("node_modules/next/dist/bin/next")
                .display()
                .to_string(),
            "start",
            "--hostname",
            "127.0.0.1",
            "--port",
            &port,
            &app.display().to_string(),
        ],
        &[
            ("IMGATE_URL", w.stack.edge_url.clone()),
            ("IMGATE_SIGNING_KEYS", w.keys_spec.clone()),
            ("NEXT_TELEMETRY_DISABLED", "1".into()),
            ("SITE_URL", format!("http://127.0.0.1:{port}")),
        ],
        "- Local:",
        Duration::from_secs(60),
        None,
    ))?;
    let result = crawl(w, &next.url).and_then(|()| warm_from_sitemap(w, &next.url));
    block(async {
        next.stop().await;
        Ok(())
    })?;
    result
}

fn crawl(w: &World, site: &str) -> anyhow::Result<()> {
    for page in ["/products/trail-runner", "/blog/cards-that-never-go-stale"] {
        let html = block(async {
            let response = w
                .no_redirects
                .get(format!("{site}{page}"))
                .header("user-agent", FACEBOOK)
                .send()
                .await?;
            ensure!(response.status() == 200, "{page}: {}", response.status());
            Ok(response.text().await?)
        })?;
        let meta =
            |key: &str| meta_content(&html, key).with_context(|| format!("{page} has no {key}"));
        let image = meta("og:image")?;
        ensure!(
            meta("twitter:image")? == image,
            "{page}: twitter:image differs"
        );
        ensure!(meta("twitter:card")? == "summary_large_image");
        ensure!(meta("og:image:type")? == "image/png");
        ensure!(!meta("og:image:alt")?.is_empty());
        let declared: (u32, u32) = (
            meta("og:image:width")?.parse()?,
            meta("og:image:height")?.parse()?,
        );
        ensure!(
            image.starts_with(&w.stack.edge_url) && image.contains("&v=") && image.contains("&s="),
            "{page}: og:image is not a signed, versioned imgate URL: {image}"
        );

        // Cold: nobody has asked for this card yet; no redirect may be involved.
        let started = Instant::now();
        let (status, headers, body) = fetch_image(w, &image)?;
        let cold = started.elapsed();
        ensure!(status == 200, "{image}: {status} {}", error_code(&body));
        ensure!(
            header(&headers, "x-imgate-cache") == "miss",
            "the first fetch renders"
        );
        ensure!(header(&headers, "content-type") == "image/png");
        ensure!(
            png_size(&body) == Some(declared),
            "{page}: the card is not {declared:?}"
        );
        eprintln!("{page}: cold og:image in {} ms", cold.as_millis());
        // Crawlers give up after a few seconds; the bound for a cold miss.
        ensure!(cold < Duration::from_secs(2), "cold og:image took {cold:?}");

        let (status, headers, again) = fetch_image(w, &image)?;
        ensure!(status == 200 && header(&headers, "x-imgate-cache") == "hit" && again == body);
    }
    Ok(())
}

fn fetch_image(w: &World, url: &str) -> anyhow::Result<super::Answer> {
    block(super::send(
        w.no_redirects.get(url).header("user-agent", TWITTER),
    ))
}

/// `imgate-origin warm --sitemap` finds every page's card: two the crawl made, one new.
fn warm_from_sitemap(w: &World, site: &str) -> anyhow::Result<()> {
    let (ok, report) = super::operate::run_origin(
        w,
        &["warm", "--sitemap", &format!("{site}/sitemap.xml")],
        "",
    )?;
    ensure!(ok, "{report}");
    ensure!(
        report.contains("| rendered | 1 |") && report.contains("| already present | 2 |"),
        "{report}"
    );
    Ok(())
}
