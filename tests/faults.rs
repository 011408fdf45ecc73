//! Load and faults against the running stack (issue 9's suite, growing):
//! what a crowd or a broken dependency does to the gateway.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use imgate_tests::{Process, Processes};

use super::{Test, World, block, eventually};

pub const TRIALS: &[(&str, Test)] = &[
    ("a_thundering_herd_renders_and_stores_once", thundering_herd),
    (
        "an_origin_that_is_down_is_a_quick_uncached_502",
        origin_down,
    ),
    (
        "an_origin_that_never_answers_is_an_uncached_504_in_time",
        origin_silent,
    ),
    (
        "a_flood_of_distinct_misses_is_shed_at_once_then_every_url_renders",
        distinct_miss_flood,
    ),
    (
        "a_killed_browser_fails_its_render_fast_and_is_relaunched_without_zombies",
        browser_killed,
    ),
    (
        "killed_renderer_processes_fail_the_render_in_time_and_the_next_succeeds",
        renderers_killed,
    ),
];

/// The origin's render timeout (its default).
const RENDER_TIMEOUT: Duration = Duration::from_secs(10);

/// `kill -9` of the Chromium process while a render runs: that request fails
/// with a 503 (no-store) well before the render timeout, the browser is
/// relaunched, the next card renders, and nothing of the old browser is left,
/// not even a zombie.
fn browser_killed(w: &World) -> anyhow::Result<()> {
    let before = w.scrape()?;
    let browser = browser(w)?;
    let old_tree = Processes::read()?.tree(browser.pid);
    let (answer, took) = during_a_stuck_render(w, || kill(&[browser.pid]))?;
    fails_uncached(&answer)?;
    ensure!(answer.0 == 503, "status {}", answer.0);
    ensure!(took < RENDER_TIMEOUT, "the render failed after {took:?}");
    renders_again(w)?;
    let restarts = w
        .scrape()?
        .increase(&before, "imgate_browser_restarts_total", &[]);
    ensure!(restarts == 1.0, "{restarts} restarts");
    eventually("the old browser's processes are gone", PATIENCE, || {
        let now = Processes::read()?;
        Ok(old_tree
            .iter()
            .all(|&pid| now.get(pid).is_none())
            .then_some(()))
    })?;
    no_zombies(w)
}

/// Every renderer process of the browser killed while a render runs (the
/// browser itself survives): the page's crash fails the render at once with a
/// 503 (no-store), the next card renders, and no zombie is left.
fn renderers_killed(w: &World) -> anyhow::Result<()> {
    let browser = browser(w)?;
    let (answer, took) = during_a_stuck_render(w, || {
        let procs = Processes::read()?;
        let renderers: Vec<u32> = procs
            .descendants(browser.pid)
            .iter()
            .filter(|p| p.cmdline.contains("--type=renderer"))
            .map(|p| p.pid)
            .collect();
        ensure!(!renderers.is_empty(), "no renderer process found");
        kill(&renderers)
    })?;
    fails_uncached(&answer)?;
    ensure!(answer.0 == 503, "status {}", answer.0);
    ensure!(super::edge_modes::error_code(&answer.2) == "page-crashed");
    ensure!(
        took < RENDER_TIMEOUT / 2,
        "the render failed after {took:?}"
    );
    renders_again(w)?;
    ensure!(
        Processes::read()?.get(browser.pid).is_some(),
        "the browser itself died"
    );
    no_zombies(w)
}

/// The origin's Chromium: its child that is not one of Chromium's helpers.
fn browser(w: &World) -> anyhow::Result<Process> {
    let origin = w.stack.origin_pid().context("the origin is not running")?;
    let procs = Processes::read()?;
    procs
        .descendants(origin)
        .into_iter()
        .find(|p| {
            p.parent == origin && p.cmdline.contains("chrom") && !p.cmdline.contains("--type=")
        })
        .cloned()
        .context("no Chromium below the origin")
}

fn kill(pids: &[u32]) -> anyhow::Result<()> {
    for &pid in pids {
        let pid = rustix::process::Pid::from_raw(pid as i32).context("pid 0")?;
        // Already gone is fine: Chromium may have reaped a helper itself.
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
    Ok(())
}

/// Asks for a card whose script never ends; once the origin reports the
/// render under way, does `fault`; returns the answer and how long it took
/// from the fault.
fn during_a_stuck_render(
    w: &World,
    fault: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<(super::Answer, Duration)> {
    let url = w.signed(&format!(
        "/og/stuck.png?n={}",
        imgate_devstack::random_hex(3)?
    ));
    let request = tokio::runtime::Handle::current().spawn(super::send(w.http.get(url)));
    eventually("the render is under way", PATIENCE, || {
        Ok((w.scrape()?.sum("imgate_render_pages_busy", &[]) >= 1.0).then_some(()))
    })?;
    fault()?;
    let faulted = Instant::now();
    let answer = block(async { request.await? })?;
    Ok((answer, faulted.elapsed()))
}

/// A failed render reaches the client as a JSON 5xx that nothing caches.
fn fails_uncached((status, headers, body): &super::Answer) -> anyhow::Result<()> {
    ensure!(status.is_server_error(), "status {status}");
    ensure!(super::header(headers, "cache-control") == "no-store");
    let code = super::edge_modes::error_code(body);
    ensure!(!code.is_empty(), "not a JSON error: {body:?}");
    Ok(())
}

/// A new card renders (the browser may still be relaunching: a client
/// retries a 503 after its Retry-After).
fn renders_again(w: &World) -> anyhow::Result<()> {
    let url = w.signed(&format!(
        "/og/basic.png?title=After%20the%20fault%20{}",
        imgate_devstack::random_hex(3)?
    ));
    let mut last = None;
    eventually("a card renders after the fault", PATIENCE, || {
        let status = w.get(&url)?.0;
        last = Some(status);
        Ok((status == 200).then_some(()))
    })
    .with_context(|| format!("last status {last:?}"))
}

fn no_zombies(w: &World) -> anyhow::Result<()> {
    let origin = w.stack.origin_pid().context("the origin is not running")?;
    eventually("no zombie below the origin", PATIENCE, || {
        let procs = Processes::read()?;
        Ok(procs
            .descendants(origin)
            .iter()
            .all(|p| p.state != 'Z')
            .then_some(()))
    })
}

/// How long a fault trial waits for the stack to recover.
const PATIENCE: Duration = Duration::from_secs(15);

/// 200 concurrent requests for one new card through the edge: every one gets
/// 200 with the same bytes, and the origin rendered once and wrote once.
fn thundering_herd(w: &World) -> anyhow::Result<()> {
    const CROWD: usize = 200;
    let url = w.signed(&format!(
        "/og/product.png?title=Everyone%20at%20once%20{}",
        imgate_devstack::random_hex(4)?
    ));
    let before = w.scrape()?;
    let answers = w.get_all(&vec![url; CROWD])?;
    ensure!(answers.len() == CROWD);
    for ((status, _, _), _) in &answers {
        ensure!(*status == 200, "status {status}");
    }
    ensure!(
        answers.windows(2).all(|pair| pair[0].0.2 == pair[1].0.2),
        "the crowd got different bytes"
    );
    let after = w.scrape()?;
    let delta = |metric: &str, labels: &[(&str, &str)]| after.increase(&before, metric, labels);
    let renders = delta("imgate_renders_total", &[("template", "product")]);
    ensure!(renders == 1.0, "{renders} renders");
    let puts = delta("imgate_store_seconds", &[("op", "put")]);
    ensure!(puts == 1.0, "{puts} PutObject calls");
    // Whatever did not render either waited for the render or found it stored
    // (the edge itself answers the latecomers from the store).
    let answered = delta(
        "imgate_http_requests_total",
        &[("route", "card"), ("status", "200")],
    );
    let shared = delta("imgate_single_flight_joins_total", &[])
        + delta("imgate_images_total", &[("outcome", "served_from_store")]);
    ensure!(
        shared == answered - 1.0,
        "{answered} reached the origin, {shared} shared the render"
    );
    Ok(())
}

/// An edge whose origin is down answers a miss with a JSON 502 that no cache
/// keeps, at once rather than after a timeout.
fn origin_down(w: &World) -> anyhow::Result<()> {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let ((status, got, body), took) = miss_through(
        w,
        &[("origin_url", &format!("http://{closed}"))],
        "/og/basic.png?title=Nobody%20home",
    )?;
    ensure!(status == 502, "status {status}");
    ensure!(super::edge_modes::error_code(&body) == "origin-unreachable");
    ensure!(super::header(&got, "cache-control") == "no-store");
    ensure!(!super::header(&got, "x-request-id").is_empty());
    ensure!(took < std::time::Duration::from_secs(5), "took {took:?}");
    Ok(())
}

/// An origin that accepts connections and never answers (a hung process):
/// the edge gives up after `origin_timeout_secs` with a JSON 504, never cached.
fn origin_silent(w: &World) -> anyhow::Result<()> {
    let silent = block(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((connection, _)) = listener.accept().await {
                held.push(connection);
            }
        });
        Ok(addr)
    })?;
    let ((status, got, body), took) = miss_through(
        w,
        &[
            ("origin_url", &format!("http://{silent}")),
            ("origin_timeout_secs", "1"),
        ],
        "/og/basic.png?title=Hung%20origin",
    )?;
    ensure!(status == 504, "status {status}");
    ensure!(super::edge_modes::error_code(&body) == "origin-timeout");
    ensure!(super::header(&got, "cache-control") == "no-store");
    ensure!(
        took >= std::time::Duration::from_secs(1) && took < std::time::Duration::from_secs(5),
        "took {took:?}"
    );
    Ok(())
}

/// More distinct new cards at once than the origin's pages and render queue
/// hold (the stack runs with 2 pages and 8 places): the excess is answered
/// 503 + Retry-After, no-store, at once (not after a timeout); everything
/// admitted renders; afterwards every URL renders.
fn distinct_miss_flood(w: &World) -> anyhow::Result<()> {
    const FLOOD: usize = 60;
    let tag = imgate_devstack::random_hex(3)?;
    let urls: Vec<String> = (0..FLOOD)
        .map(|i| w.signed(&format!("/og/slow.png?n={tag}{i}")))
        .collect();
    let mut shed = Vec::new();
    for (i, ((status, headers, _), took)) in w.get_all(&urls)?.iter().enumerate() {
        match status.as_u16() {
            200 => {}
            503 => {
                ensure!(
                    super::header(headers, "retry-after") == "1",
                    "{i}: {headers:?}"
                );
                ensure!(super::header(headers, "cache-control") == "no-store", "{i}");
                ensure!(
                    *took < std::time::Duration::from_secs(2),
                    "{i} shed after {took:?}"
                );
                shed.push(i);
            }
            other => anyhow::bail!("{i}: status {other}"),
        }
    }
    ensure!(!shed.is_empty(), "the flood never filled the queue");
    ensure!(shed.len() < FLOOD, "nothing was admitted");
    // The flood is over: every URL it shed renders now (a few at a time).
    for chunk in shed.chunks(4) {
        let again: Vec<String> = chunk.iter().map(|&i| urls[i].clone()).collect();
        for ((status, _, _), _) in w.get_all(&again)? {
            ensure!(status == 200, "status {status} after the flood");
        }
    }
    let scrape = w.scrape()?;
    ensure!(scrape.sum("imgate_render_queue", &[]) == 0.0);
    ensure!(scrape.sum("imgate_render_pages_busy", &[]) == 0.0);
    Ok(())
}

/// A new card's URL asked of an edge of its own, started with `variables`
/// (the origin to use), which is stopped again: the answer and its time.
fn miss_through(
    w: &World,
    variables: &[(&str, &str)],
    path_and_query: &str,
) -> anyhow::Result<(super::Answer, std::time::Duration)> {
    let kv = tempfile::tempdir()?;
    let edge = w.spawn_edge(None, kv.path(), variables)?;
    let url = format!("{}{}", edge.url, w.sign_path(path_and_query));
    let started = std::time::Instant::now();
    let answer = w.get_with(&url, &[]);
    let took = started.elapsed();
    super::edge_modes::stop(edge);
    Ok((answer?, took))
}
