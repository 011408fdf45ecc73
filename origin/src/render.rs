//! Cards rendered by one long-lived headless Chromium with a bounded pool of pages.
//!
//! Measured failure modes shape this module: a hung renderer makes the next CDP
//! call hang forever (the crate's own timeout did not fire), and a killed browser
//! leaves calls hanging and a zombie process. So every render runs under an
//! outer timeout, a page that failed or timed out is thrown away rather than
//! reused, and a supervisor relaunches a dead browser and reaps the old process.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use anyhow::Context;
use chromiumoxide::cdp::browser_protocol::emulation::{
    SetDeviceMetricsOverrideParams, SetScriptExecutionDisabledParams,
};
use chromiumoxide::cdp::browser_protocol::fetch::{
    self, ContinueRequestParams, EventRequestPaused, FailRequestParams,
};
use chromiumoxide::cdp::browser_protocol::inspector::{self, EventTargetCrashed};
use chromiumoxide::cdp::browser_protocol::network::ErrorReason;
use chromiumoxide::cdp::browser_protocol::target::CreateTargetParams;
use chromiumoxide::listeners::EventStream;
use chromiumoxide::{Browser, BrowserConfig, Page};
use futures::StreamExt;
use imgate_contract::{CardSpec, ImageFormat};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Notify, RwLock, Semaphore};

use crate::capture::{Capture, Capturer, Encoding};
use crate::encode;
use crate::error::OriginError;
use crate::metrics::RendererMetrics;
use crate::templates::CardPage;

/// Chromium flags for a headless renderer on a server with no network to spare:
/// no GPU, no QUIC, no background traffic, no first-run work. Written without
/// the leading `--`, which chromiumoxide adds (with it, Chromium silently
/// ignores the flag).
const CHROMIUM_FLAGS: &[&str] = &[
    "disable-gpu",
    "disable-quic",
    "no-first-run",
    "disable-background-networking",
    "disable-component-update",
    "disable-sync",
    "disable-dev-shm-usage",
    "font-render-hinting=none",
];

/// How the pool is set up.
#[derive(Debug, Clone)]
pub struct RendererOptions {
    /// Chromium executable; `None` looks for chromium/google-chrome on PATH.
    pub executable: Option<PathBuf>,
    /// Pages rendering at once.
    pub pages: usize,
    /// Renders that may wait for a page; beyond them a render is refused at
    /// once (503 `renderer-busy`) instead of queueing past its timeout.
    pub queue: usize,
    /// Longest one render may take.
    pub timeout: Duration,
    /// Every host any template allows (`Templates::allowed_hosts`). Chromium
    /// cannot even resolve any other name, so nothing else can be connected to.
    pub allowed_hosts: Vec<String>,
    /// More Chromium flags (without the leading `--`), after imgate's own.
    pub extra_flags: Vec<String>,
    /// Where restarts and the queue are counted.
    pub metrics: RendererMetrics,
}

pub struct Renderer {
    options: RendererOptions,
    executable: PathBuf,
    capture: Capturer,
    browser: RwLock<Arc<BrowserSlot>>,
    idle: StdMutex<Vec<PooledPage>>,
    permits: Semaphore,
    /// Rendering or waiting: `pages + queue` at most.
    admitted: Semaphore,
    died: Arc<Notify>,
    closing: Arc<AtomicBool>,
    generation: AtomicU64,
}

/// One running browser process. `new_page` needs only a shared borrow; the
/// exclusive one (kill, wait, exit check) is never held across a CDP call.
struct BrowserSlot {
    browser: RwLock<Browser>,
    pid: Option<u32>,
    generation: u64,
    /// `true` while the process runs; renders in flight watch it to fail at
    /// once when the browser dies instead of waiting out their timeout.
    alive: Arc<tokio::sync::watch::Sender<bool>>,
    version: String,
    _profile: tempfile::TempDir,
}

/// A page kept for reuse, with the policy its network interceptor enforces.
struct PooledPage {
    page: Page,
    generation: u64,
    policy: Arc<StdMutex<Option<Arc<CardSpec>>>>,
    interceptor: tokio::task::JoinHandle<()>,
    /// What the page was last set up for (viewport, JavaScript): unchanged
    /// settings are not sent again.
    setup: Option<Setup>,
    /// Fires if the page's renderer process dies: a render waiting on it
    /// would otherwise wait out its timeout.
    crashed: EventStream<EventTargetCrashed>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Setup {
    width: u32,
    height: u32,
    javascript: bool,
}

/// A page leaves the pool only when it failed, timed out or its browser is gone:
/// close its tab in the background so nothing leaks inside Chromium.
impl Drop for PooledPage {
    fn drop(&mut self) {
        self.interceptor.abort();
        let page = self.page.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                let _ = tokio::time::timeout(Duration::from_secs(2), page.close()).await;
            });
        }
    }
}

impl Renderer {
    /// Starts Chromium and the supervisor that relaunches it if it dies.
    pub async fn launch(options: RendererOptions) -> anyhow::Result<Arc<Self>> {
        let executable = match &options.executable {
            Some(path) => path.clone(),
            None => find_chromium().context(
                "no Chromium found: install it (apt-get install chromium-headless-shell) or set IMGATE_CHROMIUM",
            )?,
        };
        let died = Arc::new(Notify::new());
        let closing = Arc::new(AtomicBool::new(false));
        let capture = Capture::for_executable(&executable);
        let first = launch_browser(&executable, capture, &options, 0, &died, &closing).await?;
        tracing::info!(chromium = %first.version, executable = %executable.display(), capture = capture.describe(), pages = options.pages, "renderer ready");
        let renderer = Arc::new(Self {
            capture: Capturer::new(capture),
            permits: Semaphore::new(options.pages.max(1)),
            admitted: Semaphore::new(options.pages.max(1) + options.queue),
            options,
            executable,
            browser: RwLock::new(Arc::new(first)),
            idle: StdMutex::new(Vec::new()),
            died,
            closing,
            generation: AtomicU64::new(0),
        });
        tokio::spawn(supervise(Arc::downgrade(&renderer)));
        Ok(renderer)
    }

    pub async fn version(&self) -> String {
        self.browser.read().await.version.clone()
    }

    /// How this renderer's Chromium captures a page.
    pub fn capture(&self) -> Capture {
        self.capture.capture()
    }

    pub async fn is_alive(&self) -> bool {
        *self.browser.read().await.alive.borrow()
    }

    /// Renders a page at its size in CSS pixels, encoded by Chromium.
    #[tracing::instrument(name = "imgate.origin.render", skip_all, fields(width = page.spec.width, height = page.spec.height))]
    pub async fn screenshot(
        &self,
        page: &CardPage,
        format: ImageFormat,
    ) -> Result<Vec<u8>, OriginError> {
        let Ok(_admitted) = self.admitted.try_acquire() else {
            return Err(OriginError::RendererBusy);
        };
        let queued = Level::raise(&self.options.metrics.queued);
        let permit = self.permits.acquire().await.expect("never closed");
        drop(queued);
        let busy = Level::raise(&self.options.metrics.busy);
        if !self.is_alive().await {
            // Relaunching takes about a second; failing fast beats hanging.
            return Err(OriginError::RendererRestarting);
        }
        let timeout = self.options.timeout;
        let mut alive = self.browser.read().await.alive.subscribe();
        let render = tokio::time::timeout(timeout, async {
            let mut tab = self.checkout().await?;
            let encoding = Encoding::for_card(format);
            let result = tokio::select! {
                result = render_on(&tab.page, &tab.policy, &mut tab.setup, &self.capture, page, encoding) => {
                    result.map_err(|e| OriginError::Render(e.to_string()))
                }
                _ = tab.crashed.next() => Err(OriginError::PageCrashed),
            };
            Ok::<_, chromiumoxide::error::CdpError>((tab, result))
        });
        let outcome = tokio::select! {
            outcome = render => outcome,
            _ = alive.wait_for(|alive| !*alive) => return Err(OriginError::RendererRestarting),
        };
        match outcome {
            Ok(Ok((tab, Ok(bytes)))) => {
                // The page is free again: let the next capture start while this
                // one is re-encoded.
                self.checkin(tab);
                drop((permit, busy));
                match format {
                    ImageFormat::Png => {
                        tokio::task::spawn_blocking(move || encode::palette_png(&bytes))
                            .await
                            .map_err(|e| OriginError::Render(format!("PNG encoder panicked: {e}")))?
                            .map_err(|e| OriginError::Render(format!("PNG re-encode: {e:#}")))
                    }
                    _ => Ok(bytes),
                }
            }
            // The page may be in any state: never reuse it (dropping closes it).
            // The browser may be gone too: have the supervisor look now.
            Ok(Ok((tab, Err(e)))) => {
                drop(tab);
                self.died.notify_one();
                Err(e)
            }
            Ok(Err(e)) => {
                self.died.notify_one();
                Err(OriginError::Render(format!("no page available: {e}")))
            }
            // Dropping the future dropped the page with it (closed in the background).
            Err(_) => {
                self.died.notify_one();
                Err(OriginError::RenderTimeout(timeout.as_secs()))
            }
        }
    }

    /// An idle page of the current browser, or a new one.
    async fn checkout(&self) -> chromiumoxide::Result<PooledPage> {
        let slot = self.browser.read().await.clone();
        let reusable = {
            let mut idle = self.idle.lock().expect("page pool poisoned");
            // Pages of a dead browser are useless; drop them.
            idle.retain(|p| p.generation == slot.generation);
            idle.pop()
        };
        if let Some(page) = reusable {
            return Ok(page);
        }
        // Its own window: a page that is a background tab gets its frames
        // throttled (about one a second), and every capture waits for a frame.
        let target = CreateTargetParams::builder()
            .url("about:blank")
            .new_window(true)
            .enable_begin_frame_control(self.capture().controls_frames())
            .build()
            .map_err(chromiumoxide::error::CdpError::msg)?;
        let page = slot.browser.read().await.new_page(target).await?;
        let policy: Arc<StdMutex<Option<Arc<CardSpec>>>> = Arc::default();
        // Every request the page makes is paused here and allowed only if the
        // current template lists its host. `data:` URLs are not requests.
        page.execute(fetch::EnableParams::default()).await?;
        page.execute(inspector::EnableParams::default()).await?;
        let crashed = page.event_listener::<EventTargetCrashed>().await?;
        let mut paused = page.event_listener::<EventRequestPaused>().await?;
        let (interceptor_page, interceptor_policy) = (page.clone(), policy.clone());
        let interceptor = tokio::spawn(async move {
            while let Some(event) = paused.next().await {
                let url = &event.request.url;
                let allowed = interceptor_policy
                    .lock()
                    .expect("policy poisoned")
                    .as_ref()
                    .is_some_and(|spec| spec.allows_url(url));
                let answer = if allowed {
                    interceptor_page
                        .execute(ContinueRequestParams::new(event.request_id.clone()))
                        .await
                        .map(drop)
                } else {
                    tracing::warn!(url = %truncate(url, 120), "card page request blocked");
                    interceptor_page
                        .execute(FailRequestParams::new(
                            event.request_id.clone(),
                            ErrorReason::BlockedByClient,
                        ))
                        .await
                        .map(drop)
                };
                if answer.is_err() {
                    break;
                }
            }
        });
        Ok(PooledPage {
            page,
            generation: slot.generation,
            policy,
            interceptor,
            setup: None,
            crashed,
        })
    }

    fn checkin(&self, page: PooledPage) {
        *page.policy.lock().expect("policy poisoned") = None;
        self.idle.lock().expect("page pool poisoned").push(page);
    }

    /// Whether the current browser process has exited. The CDP connection
    /// does not always notice a killed browser, so the process is asked
    /// directly.
    async fn check_exited(&self) {
        let slot = self.browser.read().await.clone();
        let exited = match slot.browser.try_write() {
            Ok(mut browser) => browser.try_wait().ok().flatten().map(|s| s.to_string()),
            // A call holds the browser: opening a page never returns if the
            // browser died under it. Ask the kernel without reaping; `reap`
            // does that once the call is dropped.
            Err(_) => slot.pid.and_then(exit_status),
        };
        if let Some(status) = exited
            && slot.alive.send_replace(false)
            && !self.closing.load(Ordering::SeqCst)
        {
            tracing::error!(generation = slot.generation, %status, "chromium exited; relaunching");
        }
    }

    /// Replaces a dead browser with a fresh one and reaps the old process.
    async fn relaunch_if_dead(&self) -> anyhow::Result<()> {
        let mut slot = self.browser.write().await;
        if *slot.alive.borrow() || self.closing.load(Ordering::SeqCst) {
            return Ok(());
        }
        let generation = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let fresh = launch_browser(
            &self.executable,
            self.capture(),
            &self.options,
            generation,
            &self.died,
            &self.closing,
        )
        .await?;
        let old = std::mem::replace(&mut *slot, Arc::new(fresh));
        drop(slot);
        self.options.metrics.restarts.inc();
        tracing::warn!(generation, "chromium relaunched");
        // In its own task: a render still holding the old browser keeps it
        // until that render's timeout, and the supervisor must keep watching.
        tokio::spawn(reap(old));
        Ok(())
    }

    /// Closes Chromium and waits for the process, so no zombie is left.
    pub async fn shutdown(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.idle.lock().expect("page pool poisoned").clear();
        let slot = self.browser.read().await.clone();
        let mut browser = slot.browser.write().await;
        let _ = tokio::time::timeout(Duration::from_secs(5), browser.close()).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), browser.wait()).await;
    }

    /// Kills the browser process, as a crash would (for tests of the supervisor).
    #[cfg(test)]
    pub async fn kill_browser(&self) {
        let slot = self.browser.read().await.clone();
        let _ = slot.browser.write().await.kill().await;
    }
}

async fn render_on(
    tab: &Page,
    policy: &StdMutex<Option<Arc<CardSpec>>>,
    setup: &mut Option<Setup>,
    capture: &Capturer,
    page: &CardPage,
    encoding: Encoding,
) -> chromiumoxide::Result<Vec<u8>> {
    *policy.lock().expect("policy poisoned") = Some(page.spec.clone());
    let wanted = Setup {
        width: page.spec.width,
        height: page.spec.height,
        javascript: page.spec.javascript,
    };
    if *setup != Some(wanted) {
        // Forgotten first: if a call fails half-way the page is dropped
        // anyway, but a stale `setup` must never outlive a change.
        *setup = None;
        tab.execute(SetScriptExecutionDisabledParams::new(!wanted.javascript))
            .await?;
        tab.execute(SetDeviceMetricsOverrideParams::new(
            wanted.width,
            wanted.height,
            1.0,
            false,
        ))
        .await?;
        *setup = Some(wanted);
    }
    tab.set_content(&page.html).await?;
    capture.take(tab, encoding).await
}

async fn launch_browser(
    executable: &std::path::Path,
    capture: Capture,
    options: &RendererOptions,
    generation: u64,
    died: &Arc<Notify>,
    closing: &Arc<AtomicBool>,
) -> anyhow::Result<BrowserSlot> {
    // A fresh profile per browser: no shared state, no stale locks.
    let profile = tempfile::Builder::new()
        .prefix("imgate-chromium-")
        .tempdir()?;
    let config = BrowserConfig::builder()
        .chrome_executable(executable)
        .no_sandbox()
        .user_data_dir(profile.path())
        .viewport(None)
        .launch_timeout(Duration::from_secs(30))
        .request_timeout(options.timeout)
        .args(CHROMIUM_FLAGS.iter().copied())
        .args(capture.flags().iter().copied())
        .args(network_lockdown(&options.allowed_hosts))
        .args(
            options
                .extra_flags
                .iter()
                .map(|f| f.trim_start_matches('-').to_string()),
        )
        .build()
        .map_err(|e| anyhow::anyhow!("chromium config: {e}"))?;
    let (mut browser, mut handler) = Browser::launch(config)
        .await
        .with_context(|| format!("cannot start {}", executable.display()))?;
    let alive = Arc::new(tokio::sync::watch::Sender::new(true));
    let (alive_flag, died, closing) = (alive.clone(), died.clone(), closing.clone());
    tokio::spawn(async move {
        while let Some(event) = handler.next().await {
            if let Err(e) = event {
                tracing::debug!("chromium event error: {e}");
            }
        }
        alive_flag.send_replace(false);
        if closing.load(Ordering::SeqCst) {
            tracing::info!("chromium closed");
        } else {
            tracing::error!(generation, "chromium died; relaunching");
            died.notify_one();
        }
    });
    let version = tokio::time::timeout(options.timeout, browser.version())
        .await
        .context("chromium did not answer")??
        .product;
    let pid = browser
        .get_mut_child()
        .and_then(|child| child.as_mut_inner().id());
    Ok(BrowserSlot {
        browser: RwLock::new(browser),
        pid,
        generation,
        alive,
        version,
        _profile: profile,
    })
}

/// How often the supervisor asks whether the browser process is still there.
const EXIT_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// Relaunches a dead browser, until the renderer is dropped. Death is noticed
/// either way: the CDP connection ending, or the process having exited.
async fn supervise(renderer: std::sync::Weak<Renderer>) {
    loop {
        let Some(died) = renderer.upgrade().map(|r| r.died.clone()) else {
            return;
        };
        tokio::select! {
            _ = died.notified() => {}
            _ = tokio::time::sleep(EXIT_CHECK_INTERVAL) => {}
        }
        let Some(renderer) = renderer.upgrade() else {
            return;
        };
        if renderer.closing.load(Ordering::SeqCst) {
            return;
        }
        renderer.check_exited().await;
        // Retry with a pause: a browser that cannot start should not spin a core.
        while let Err(e) = renderer.relaunch_if_dead().await {
            tracing::error!("cannot relaunch chromium: {e:#}");
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
}

/// How a child process ended, if it has, leaving it for `wait` to reap.
fn exit_status(pid: u32) -> Option<String> {
    use rustix::process::{Pid, WaitId, WaitIdOptions, waitid};
    let pid = Pid::from_raw(i32::try_from(pid).ok()?)?;
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    let status = waitid(WaitId::Pid(pid), options).ok()??;
    Some(match status.terminating_signal() {
        Some(signal) => format!("killed by signal {signal}"),
        None => format!("exit status {}", status.exit_status().unwrap_or(-1)),
    })
}

/// Kills what is left of a dead browser and waits for the process to exit.
async fn reap(slot: Arc<BrowserSlot>) {
    let mut browser = slot.browser.write().await;
    let _ = tokio::time::timeout(Duration::from_secs(5), browser.kill()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), browser.wait()).await;
}

/// Page-level interception applies each template's own allowlist, but it only
/// sees the main frame's requests: an out-of-process iframe, a preconnect or a
/// speculative fetch still opened sockets in our tests. So the browser itself
/// gets no route anywhere but the allowed hosts: every other connection goes
/// to a proxy whose name cannot resolve (loopback included, which Chromium
/// otherwise never proxies), so no socket is ever opened.
fn network_lockdown(allowed: &[String]) -> Vec<String> {
    const NOWHERE: &str = "imgate-no-network.invalid";
    let mut rules = vec!["MAP * ~NOTFOUND".to_string()];
    rules.extend(allowed.iter().map(|host| format!("EXCLUDE {host}")));
    let mut bypass = vec!["<-loopback>".to_string()];
    bypass.extend(allowed.iter().cloned());
    vec![
        format!("host-resolver-rules={}", rules.join(", ")),
        format!("proxy-server=http://{NOWHERE}:9"),
        format!("proxy-bypass-list={}", bypass.join(";")),
    ]
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A headless shell first: it renders a card in a third of the time (see
/// `capture`). Debian's wrapper script in /usr/bin runs the binary as a child,
/// which would put a shell between the supervisor and the browser, so the
/// binary itself is preferred.
fn find_chromium() -> Option<PathBuf> {
    const DEBIAN_SHELL: &str = "/usr/lib/chromium/chromium-headless-shell";
    if std::path::Path::new(DEBIAN_SHELL).is_file() {
        return Some(DEBIAN_SHELL.into());
    }
    let path = std::env::var_os("PATH")?;
    [
        "chrome-headless-shell",
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .iter()
    .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
    .find(|candidate| candidate.is_file())
}

#[cfg(test)]
#[path = "render_tests.rs"]
mod tests;

/// Counts itself in a gauge while it lives, so a cancelled render is
/// uncounted too.
struct Level<'a>(&'a Gauge);

impl<'a> Level<'a> {
    fn raise(gauge: &'a Gauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for Level<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}
