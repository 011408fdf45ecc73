//! Helpers for imgate's end-to-end tests.

/// Width and height from a PNG's IHDR chunk, or `None` if the bytes are not a PNG.
pub fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if bytes.len() < 24 || !bytes.starts_with(SIGNATURE) || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    Some((be(16), be(20)))
}

/// One scrape of `/metrics`, read by a Prometheus text-format parser.
pub struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    pub fn parse(text: &str) -> std::io::Result<Self> {
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).map(Self)
    }

    /// The sum of `metric` over every sample whose labels include `labels`; a
    /// histogram counts its observations.
    pub fn sum(&self, metric: &str, labels: &[(&str, &str)]) -> f64 {
        use prometheus_parse::Value;
        self.0
            .samples
            .iter()
            .filter(|s| {
                s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
            })
            .map(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
                Value::Histogram(buckets) => buckets.iter().map(|b| b.count).fold(0.0, f64::max),
                Value::Summary(_) => 0.0,
            })
            .sum()
    }

    /// How much `metric` (over `labels`, as [`Scrape::sum`]) grew since `before`.
    pub fn increase(&self, before: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
        self.sum(metric, labels) - before.sum(metric, labels)
    }

    /// Whether the scrape has any sample of `metric`.
    pub fn has(&self, metric: &str) -> bool {
        self.0.samples.iter().any(|s| s.metric == metric)
    }
}

/// One process, as `/proc/{pid}/stat` and `cmdline` describe it.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: u32,
    pub parent: u32,
    /// `R`, `S`, `D`, `Z` (a zombie: exited, not reaped by its parent), ...
    pub state: char,
    pub cmdline: String,
}

/// A snapshot of the machine's processes (Linux `/proc`).
pub struct Processes(Vec<Process>);

impl Processes {
    pub fn read() -> std::io::Result<Self> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir("/proc")? {
            let Some(pid) = entry?.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            // A process may exit between listing and reading: skip it.
            if let Some(process) = read_process(pid) {
                all.push(process);
            }
        }
        Ok(Self(all))
    }

    /// Every process below `ancestor` (children, their children, ...).
    pub fn descendants(&self, ancestor: u32) -> Vec<&Process> {
        let mut found: Vec<&Process> = Vec::new();
        let mut frontier = vec![ancestor];
        while let Some(parent) = frontier.pop() {
            for p in self.0.iter().filter(|p| p.parent == parent) {
                frontier.push(p.pid);
                found.push(p);
            }
        }
        found
    }

    /// `root` and every process below it.
    pub fn tree(&self, root: u32) -> Vec<u32> {
        let mut pids: Vec<u32> = self.descendants(root).iter().map(|p| p.pid).collect();
        pids.push(root);
        pids
    }

    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.0.iter().find(|p| p.pid == pid)
    }
}

fn read_process(pid: u32) -> Option<Process> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let after_comm = &stat[stat.rfind(')')? + 2..];
    let mut fields = after_comm.split(' ');
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    Some(Process {
        pid,
        parent,
        state,
        cmdline: String::from_utf8_lossy(&cmdline).replace('\0', " "),
    })
}

/// Proportional set size of `pids` together, in KiB: shared pages are split
/// between the processes sharing them, so a browser's tree is not counted
/// many times over. Processes that exited count 0.
pub fn pss_kib(pids: impl IntoIterator<Item = u32>) -> u64 {
    pids.into_iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .filter_map(|rollup| {
            rollup
                .lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_its_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let procs = Processes::read().unwrap();
        let me = std::process::id();
        let mine = procs.descendants(me);
        let sleeper = mine
            .iter()
            .find(|p| p.pid == child.id())
            .expect("the child");
        assert_eq!(sleeper.parent, me);
        // The child may not have exec'd yet; this process certainly has.
        let this = procs.get(me).expect("this process");
        let exe = std::env::current_exe().unwrap();
        let name = exe.file_name().unwrap().to_str().unwrap();
        assert!(this.cmdline.contains(name), "{this:?}");
        assert!(pss_kib([me]) > 0);
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(Processes::read().unwrap().get(child.id()).is_none());
    }

    #[test]
    fn reads_png_size() {
        let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        png.extend_from_slice(&1200u32.to_be_bytes());
        png.extend_from_slice(&630u32.to_be_bytes());
        assert_eq!(png_size(&png), Some((1200, 630)));
        assert_eq!(png_size(b"GIF89a"), None);
    }

    #[test]
    fn reads_what_the_origin_writes() {
        use std::time::Duration;
        let metrics = imgate_origin::metrics::Metrics::default();
        metrics.request("card", 200, Duration::from_millis(3));
        metrics.request("card", 200, Duration::from_millis(9));
        metrics.request("card", 404, Duration::from_millis(1));
        metrics.render("basic", "ok", Duration::from_millis(90));
        let scrape = Scrape::parse(&metrics.encode()).unwrap();
        assert_eq!(
            scrape.sum("imgate_http_requests_total", &[("route", "card")]),
            3.0
        );
        assert_eq!(
            scrape.sum("imgate_http_requests_total", &[("status", "200")]),
            2.0
        );
        assert_eq!(scrape.sum("imgate_render_seconds", &[]), 1.0);
        assert_eq!(
            scrape.sum("imgate_renders_total", &[("template", "basic")]),
            1.0
        );
        assert!(scrape.has("imgate_browser_restarts_total"));
        assert!(!scrape.has("imgate_nonexistent_total"));
    }
}
