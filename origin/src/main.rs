//! `imgate-origin`: renders cards in headless Chromium, stores them in S3 and
//! serves them to the edge.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{CommandFactory, FromArgMatches};
use imgate_contract::{Keyring, route};

use imgate_origin::data::DataSources;
use imgate_origin::images::Images;
use imgate_origin::metrics::Metrics;
use imgate_origin::origin::Origin;
use imgate_origin::photos::Photos;
use imgate_origin::render::{Renderer, RendererOptions};
use imgate_origin::templates::Templates;
use imgate_origin::uploads::Uploads;
use imgate_origin::{logs, settings};

use imgate_origin::cli::{
    BackfillArgs, Cli, Command, DoctorArgs, GcArgs, HealthcheckArgs, RenderArgs, RendererArgs,
    ServeArgs, SignArgs, WarmArgs,
};
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = parse_cli();
    logs::init(cli.log_format);
    match cli.command {
        Command::Serve(args) => serve(args).await,
        #[cfg(feature = "dev")]
        Command::Dev(args) => imgate_origin::dev::run(args).await,
        Command::Render(args) => render(args).await,
        Command::Backfill(args) => backfill(args).await,
        Command::Warm(args) => warm(args).await,
        Command::Sign(args) => sign(args),
        Command::Gc(args) => gc(args).await,
        Command::Doctor(args) => doctor(args).await,
        Command::Healthcheck(args) => healthcheck(args).await,
        Command::Settings => {
            print!("{}", settings::table(&Cli::command()));
            Ok(())
        }
    }
}

/// The command line, with a settings file's values (if one is named) as
/// defaults. Every problem in the file is printed before exiting with 2, like
/// a bad flag.
fn parse_cli() -> Cli {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut cmd = Cli::command();
    if let Some(path) = settings::config_path(&args, std::env::var_os(settings::CONFIG_ENV)) {
        let problems = match std::fs::read_to_string(&path) {
            Err(e) => vec![format!("cannot read {}: {e}", path.display())],
            Ok(text) => match settings::with_file(cmd.clone(), &path, &text) {
                Ok(with_file) => {
                    cmd = with_file;
                    Vec::new()
                }
                Err(problems) => problems,
            },
        };
        if !problems.is_empty() {
            eprintln!("imgate-origin: bad settings file:");
            for problem in problems {
                eprintln!("  - {problem}");
            }
            std::process::exit(2);
        }
    }
    let matches = cmd.get_matches_from(args);
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

async fn healthcheck(args: HealthcheckArgs) -> anyhow::Result<()> {
    let mut addr = args.listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}/healthz");
    let answer = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs))
        .build()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("{url} did not answer"))?;
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    anyhow::ensure!(status == 200, "{url} answered {status}: {body}");
    println!("{url}: {body}");
    Ok(())
}

async fn doctor(args: DoctorArgs) -> anyhow::Result<()> {
    use imgate_origin::doctor::{self, Check};
    let mut checks: Vec<Check> = Vec::new();
    let mut report = |check: Check| {
        println!("{}", check.line());
        checks.push(check);
    };
    match Templates::load(&args.renderer.templates) {
        Ok(templates) => {
            report(Check {
                name: "templates",
                verdict: doctor::Verdict::Pass(format!(
                    "{} loaded from {}",
                    templates.iter().map(|(name, _)| name).collect::<Vec<_>>().join(", "),
                    args.renderer.templates.display()
                )),
            });
            let options = renderer_options(&args.renderer, templates.allowed_hosts());
            report(doctor::chromium(options, &templates).await);
        }
        Err(e) => report(Check {
            name: "templates",
            verdict: doctor::Verdict::Fail {
                problem: format!("{e:#}"),
                fix: "point IMGATE_TEMPLATES at a folder of template folders (each with template.toml and card.html)".into(),
            },
        }),
    }
    let store = args.store.connect().await;
    let reachable = doctor::store(&store).await;
    let reachable_ok = !reachable.failed();
    report(reachable);
    if reachable_ok {
        report(doctor::lifecycle(&store).await);
        report(doctor::cors(&store).await);
    }
    if let Some(manifest) = &args.edge_manifest {
        let host = std::env::current_exe()?.with_file_name("imgate-edge-host");
        report(doctor::edge(&host, manifest));
    }
    let failed = checks.iter().filter(|c| c.failed()).count();
    if failed > 0 {
        println!("{failed} of {} checks failed", checks.len());
        std::process::exit(1);
    }
    Ok(())
}

async fn gc(args: GcArgs) -> anyhow::Result<()> {
    use imgate_origin::gc;
    let options = gc::Options {
        prefix: args.prefix,
        older_than: Duration::from_secs(args.older_than_days * 86_400),
        delete: args.delete,
    };
    gc::check_prefix(&options.prefix).map_err(anyhow::Error::msg)?;
    let store = args.store.connect().await;
    let now = imgate_origin::manifest::now() as i64;
    let summary = gc::run(&store, &options, now, |line| eprintln!("{line}"))
        .await
        .map_err(|e| anyhow::anyhow!("gc stopped: {e}"))?;
    print!("{}", summary.report(&options));
    if !summary.failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

fn sign(args: SignArgs) -> anyhow::Result<()> {
    let keyring = Keyring::parse(&args.signing_keys)
        .map_err(|e| anyhow::anyhow!("IMGATE_SIGNING_KEYS: {e}"))?;
    anyhow::ensure!(
        !keyring.is_empty(),
        "IMGATE_SIGNING_KEYS is empty: nothing to sign with"
    );
    let (path, query) = args.url.split_once('?').unwrap_or((&args.url, ""));
    let route = route::parse("GET", path, query)?;
    let signable = route
        .signable()
        .with_context(|| format!("{path} is not a card or rendition URL"))?;
    let signed = keyring.sign_url(signable).expect("the keyring has a key");
    println!("{}{signed}", args.base.trim_end_matches('/'));
    Ok(())
}

async fn warm(args: WarmArgs) -> anyhow::Result<()> {
    use imgate_origin::warm;
    use std::io::{IsTerminal, Read};
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout_secs))
        // The public URL must answer 200 itself: a redirect is a failure to report.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("imgate-warm/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let (urls, mut unreadable) = match (&args.sitemap, &args.file) {
        (Some(sitemap), _) => warm::from_sitemap(&client, sitemap)
            .await
            .with_context(|| format!("cannot read the sitemap {sitemap}"))?,
        (None, Some(path)) if path.as_os_str() != "-" => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            (warm::parse_list(&text), Vec::new())
        }
        (None, _) => {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text)?;
            (warm::parse_list(&text), Vec::new())
        }
    };
    let terminal = std::io::stderr().is_terminal();
    let progress = if terminal {
        let bar = indicatif::ProgressBar::new(0).with_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} warming [{bar:30}] {pos}/{len} URLs, {per_sec}, eta {eta}",
            )?
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut summary = warm::run(&client, urls, args.concurrency, &progress, !terminal).await;
    summary.failed.append(&mut unreadable);
    print!("{}", summary.report());
    if !summary.failed.is_empty() {
        std::process::exit(1);
    }
    Ok(())
}

async fn backfill(args: BackfillArgs) -> anyhow::Result<()> {
    use imgate_origin::backfill;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let options = backfill::Options {
        prefix: args.prefix,
        concurrency: args.concurrency.unwrap_or(cores),
        retry_refused: args.retry_refused,
    };
    let mut photos = Photos::new(Images::new(args.store.connect().await, Default::default()));
    args.photos
        .apply(&mut photos)
        .map_err(|problems| anyhow::anyhow!(problems.join("; ")))?;
    // Drawn on a terminal only; logs and CI output get the summary.
    let progress = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} originals, {per_sec}, eta {eta}",
        )?
        .progress_chars("=> "),
    );
    progress.enable_steady_tick(Duration::from_millis(200));
    let summary = backfill::run(&photos, &options, &progress).await?;
    print!("{}", summary.report());
    if !summary.failed.is_empty() {
        // The report said what failed and what to do; a status says it to scripts.
        std::process::exit(1);
    }
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    // Every bad setting is reported at once, before Chromium starts.
    let mut problems = Vec::new();
    if args.edge_token.len() < 16 {
        problems.push("IMGATE_EDGE_TOKEN must be at least 16 characters".to_string());
    }
    let uploads = Uploads::new(
        &args.api_keys,
        args.photos.max_source_bytes as u64,
        Duration::from_secs(args.upload_expiry_secs),
    )
    .map_err(|e| problems.push(format!("IMGATE_API_KEYS: {e}")));
    let metrics = Arc::new(Metrics::default());
    let mut photos = Photos::new(Images::new(args.store.connect().await, metrics.clone()));
    if let Err(more) = args.photos.apply(&mut photos) {
        problems.extend(more);
    }
    let templates = Templates::load(&args.renderer.templates)
        .map_err(|e| problems.push(format!("IMGATE_TEMPLATES: {e:#}")));
    let (Ok(uploads), Ok(templates), true) = (uploads, templates, problems.is_empty()) else {
        anyhow::bail!(
            "the origin's settings are not usable:\n  - {}",
            problems.join("\n  - ")
        );
    };
    let keyring = photos.links.keyring.clone();
    if keyring.is_empty() && args.allow_unsigned {
        tracing::warn!(
            "accepting unsigned URLs from anyone (IMGATE_ALLOW_UNSIGNED); never in production"
        );
    }
    let mut options = renderer_options(&args.renderer, templates.allowed_hosts());
    options.metrics = metrics.renderer.clone();
    let renderer = Renderer::launch(options).await?;
    tracing::info!(
        templates = %templates.iter().map(|(name, _)| name).collect::<Vec<_>>().join(","),
        presets = %photos.presets.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(","),
        bucket = photos.images.store.bucket(),
        "origin configured"
    );
    let data = DataSources::new(Duration::from_secs(args.data_timeout_secs))?;
    if args.debug_routes {
        tracing::warn!(
            "debug routes are on: /debug/... renders anything for anyone who can reach this port"
        );
    }
    let server = Arc::new(imgate_origin::server::Server {
        origin: Origin::new(templates, renderer, photos, data),
        edge_token: args.edge_token,
        keyring,
        allow_unsigned: args.allow_unsigned,
        debug_routes: args.debug_routes,
        uploads,
        client_timeout: Duration::from_secs(args.client_timeout_secs),
    });

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    // The dev stack and the tests read this line to learn the port.
    println!(
        "imgate-origin listening on http://{}",
        listener.local_addr()?
    );
    imgate_origin::listen::serve(
        listener,
        imgate_origin::server::routes(server.clone()),
        server.client_timeout,
        shutdown_signal(),
    )
    .await;
    server.origin.renderer.shutdown().await;
    tracing::info!("origin stopped");
    Ok(())
}

async fn render(args: RenderArgs) -> anyhow::Result<()> {
    let templates = Templates::load(&args.renderer.templates)?;
    let request = route::parse_card_url(&args.url)?;
    let card = templates.canonicalize(&request)?;
    anyhow::ensure!(
        card.record.is_none(),
        "render takes parameter cards; a data-source card needs the server (try /debug/render/og/...)"
    );
    let page = templates.page(&card.template, &card.params)?;
    let renderer = launch(&args.renderer, templates.allowed_hosts()).await?;
    let result = renderer.screenshot(&page, card.format).await;
    renderer.shutdown().await;
    let bytes = result?;
    std::fs::write(&args.output, &bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!("wrote {} ({} bytes)", args.output.display(), bytes.len());
    Ok(())
}

async fn launch(args: &RendererArgs, allowed_hosts: Vec<String>) -> anyhow::Result<Arc<Renderer>> {
    Renderer::launch(renderer_options(args, allowed_hosts)).await
}

fn renderer_options(args: &RendererArgs, allowed_hosts: Vec<String>) -> RendererOptions {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    RendererOptions {
        executable: args.chromium.clone(),
        pages: args.render_pages.unwrap_or(cores),
        queue: args
            .render_queue
            .unwrap_or(16 * args.render_pages.unwrap_or(cores)),
        timeout: Duration::from_secs(args.render_timeout_secs),
        allowed_hosts,
        extra_flags: args.chromium_flags.clone(),
        metrics: Default::default(),
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
}
