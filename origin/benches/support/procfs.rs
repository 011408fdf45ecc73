//! Which processes run and how much CPU they used, from `/proc`: shared by
//! the card bench and `examples/chromium_lab.rs`.

use std::collections::HashMap;

/// The fields of `/proc/PID/stat` the measurements need.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    pub parent: u32,
    pub usage: Usage,
}

/// What a process has used so far, or between two readings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// utime + stime.
    pub ticks: u64,
    /// Page faults served without I/O: mostly first touches of memory that
    /// was just mapped, which the kernel must zero (on this kind of VM host
    /// ~5 µs per 4 KiB page, so a fresh 3 MB buffer costs ~4 ms).
    pub minor_faults: u64,
}

impl Usage {
    pub fn since(self, before: Self) -> Self {
        Self {
            ticks: self.ticks.saturating_sub(before.ticks),
            minor_faults: self.minor_faults.saturating_sub(before.minor_faults),
        }
    }

    pub fn add(&mut self, other: Self) {
        self.ticks += other.ticks;
        self.minor_faults += other.minor_faults;
    }
}

impl Stat {
    pub fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name is in parentheses and may contain anything: split around it.
        let (_, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
        // rest starts at field 3 (state): ppid is field 4, minflt 10,
        // utime 14, stime 15.
        Some(Self {
            parent: field(1)? as u32,
            usage: Usage {
                ticks: field(11)? + field(12)?,
                minor_faults: field(7)?,
            },
        })
    }
}

/// Every process, by pid.
pub fn processes() -> HashMap<u32, Stat> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
        .filter_map(|pid| Some((pid, Stat::of(pid)?)))
        .collect()
}

/// `root` and all its descendants, leaving out `skip` and its own.
pub fn tree(all: &HashMap<u32, Stat>, root: u32, skip: Option<u32>) -> Vec<u32> {
    let mut members = vec![root];
    let mut i = 0;
    while i < members.len() {
        let parent = members[i];
        members.extend(
            all.iter()
                .filter(|(pid, stat)| stat.parent == parent && Some(**pid) != skip)
                .map(|(pid, _)| *pid),
        );
        i += 1;
    }
    members
}

/// What `root`'s tree (without `skip`'s) has used so far, by pid.
pub fn tree_usage(root: u32, skip: Option<u32>) -> HashMap<u32, Usage> {
    let all = processes();
    tree(&all, root, skip)
        .into_iter()
        .filter_map(|pid| Some((pid, all.get(&pid)?.usage)))
        .collect()
}

/// What each process used between two snapshots (all of it for a process
/// that started in between).
pub fn spent(before: &HashMap<u32, Usage>, after: &HashMap<u32, Usage>) -> Vec<(u32, Usage)> {
    after
        .iter()
        .map(|(pid, usage)| {
            (
                *pid,
                usage.since(before.get(pid).copied().unwrap_or_default()),
            )
        })
        .collect()
}

pub fn ms_per_tick() -> f64 {
    1000.0 / rustix::param::clock_ticks_per_second() as f64
}

/// What a Chromium process is, by its `--type` (renderer, gpu-process,
/// utility and its sub-type); the browser has none.
pub fn chromium_kind(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    // Chromium's children retitle themselves: their arguments are one
    // space-separated string, not NUL-separated.
    let args: Vec<String> = cmdline
        .split(|&b| b == 0 || b == b' ')
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let kind = |prefix: &str| {
        args.iter()
            .find_map(|a| a.strip_prefix(prefix).map(str::to_owned))
    };
    match (kind("--type="), kind("--utility-sub-type=")) {
        (Some(_), Some(sub)) => format!("chromium utility ({sub})"),
        (Some(t), None) => format!("chromium {t}"),
        (None, _) => "chromium browser".into(),
    }
}
