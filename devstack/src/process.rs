//! A server child process: started, awaited until it prints its address, and
//! stopped with SIGTERM so it can shut down cleanly (the origin closes Chromium).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

pub struct Child {
    pub name: &'static str,
    pub url: String,
    process: tokio::process::Child,
}

impl Child {
    /// Starts `program` and waits until a stdout line contains `ready_prefix`
    /// followed by its URL. Later stdout lines are passed through; its log
    /// (stderr) too, and is also appended to `log_file` when given.
    pub async fn spawn(
        name: &'static str,
        program: &Path,
        args: &[&str],
        env: &[(&str, String)],
        ready_prefix: &'static str,
        timeout: Duration,
        log_file: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let mut process = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(if log_file.is_some() {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        if let (Some(path), Some(stderr)) = (log_file, process.stderr.take()) {
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let mut lines = BufReader::new(stderr).lines();
            tokio::spawn(async move {
                use std::io::Write;
                while let Ok(Some(line)) = lines.next_line().await {
                    eprintln!("{line}");
                    let _ = writeln!(file, "{line}");
                }
            });
        }
        let mut lines = BufReader::new(process.stdout.take().expect("stdout is piped")).lines();
        let ready = async {
            while let Some(line) = lines.next_line().await? {
                if let Some(at) = line.find(ready_prefix) {
                    return Ok(line[at + ready_prefix.len()..].trim().to_string());
                }
                println!("[{name}] {line}");
            }
            anyhow::bail!("{name} exited before it was ready (see its log above)")
        };
        let url = tokio::time::timeout(timeout, ready)
            .await
            .with_context(|| format!("{name} did not start within {timeout:?}"))??;
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                println!("[{name}] {line}");
            }
        });
        Ok(Self { name, url, process })
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.id()
    }

    /// SIGTERM, then SIGKILL if it has not exited within five seconds.
    pub async fn stop(mut self) {
        if let Some(pid) = self
            .process
            .id()
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if tokio::time::timeout(Duration::from_secs(5), self.process.wait())
            .await
            .is_err()
        {
            tracing::warn!("{} did not stop on SIGTERM; killing it", self.name);
            let _ = self.process.kill().await;
        }
    }
}
