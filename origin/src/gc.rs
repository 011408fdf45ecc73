//! Garbage collection for stores without lifecycle rules: cards older than N
//! days are deleted (they are re-rendered on the next request). Dry run unless
//! told to delete.

use std::time::{Duration, Instant};

use crate::store::{Listed, Store};

pub struct Options {
    /// Keys under this prefix only; must be a card prefix (`og/…`).
    pub prefix: String,
    pub older_than: Duration,
    /// Delete; otherwise only report.
    pub delete: bool,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub scanned: usize,
    pub expired: Vec<Listed>,
    pub bytes: u64,
    pub failed: Vec<(String, String)>,
    pub deleted: bool,
    pub elapsed: Duration,
}

/// Only cards are disposable: originals, renditions and manifests are not
/// re-creatable from a URL alone (renditions are, but backfill, not gc, owns them).
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    if prefix.starts_with("og/") && !prefix.contains("..") {
        Ok(())
    } else {
        Err(format!(
            "gc deletes cards only: the prefix must start with og/ (got {prefix:?})"
        ))
    }
}

/// Lists page by page and deletes each page's expired keys as it goes, so a
/// huge bucket never sits in memory; `line` gets one line per expired key.
pub async fn run(
    store: &Store,
    options: &Options,
    now_secs: i64,
    mut line: impl FnMut(&str),
) -> Result<Summary, String> {
    check_prefix(&options.prefix)?;
    let started = Instant::now();
    let cutoff = now_secs - options.older_than.as_secs() as i64;
    let mut summary = Summary {
        deleted: options.delete,
        ..Summary::default()
    };
    let mut after: Option<String> = None;
    loop {
        let (page, more) = store
            .list_objects(&options.prefix, after.as_deref())
            .await?;
        after = page.last().map(|o| o.key.clone());
        summary.scanned += page.len();
        let expired: Vec<Listed> = page
            .into_iter()
            .filter(|o| o.modified_secs < cutoff)
            .collect();
        for object in &expired {
            let days = (now_secs - object.modified_secs) / 86_400;
            line(&format!(
                "{} {} ({} bytes, {days} days old)",
                if options.delete {
                    "delete"
                } else {
                    "would delete"
                },
                object.key,
                object.bytes
            ));
        }
        if options.delete && !expired.is_empty() {
            let keys: Vec<String> = expired.iter().map(|o| o.key.clone()).collect();
            summary.failed.extend(store.delete_many(&keys).await?);
        }
        summary.bytes += expired.iter().map(|o| o.bytes).sum::<u64>();
        summary.expired.extend(expired);
        if !more || after.is_none() {
            break;
        }
    }
    summary.elapsed = started.elapsed();
    Ok(summary)
}

impl Summary {
    pub fn report(&self, options: &Options) -> String {
        let verb = if self.deleted {
            "deleted"
        } else {
            "would delete"
        };
        let mut text = format!(
            "gc {}: scanned {} objects in {:.1} s; {verb} {} older than {} days, {} bytes ({:.1} MB)\n",
            options.prefix,
            self.scanned,
            self.elapsed.as_secs_f64(),
            self.expired.len() - self.failed.len(),
            options.older_than.as_secs() / 86_400,
            self.bytes,
            self.bytes as f64 / 1e6,
        );
        for (key, why) in &self.failed {
            text.push_str(&format!("  not deleted {key}: {why}\n"));
        }
        if !self.deleted && !self.expired.is_empty() {
            text.push_str("dry run: nothing was deleted; add --delete to delete\n");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_card_prefixes() {
        assert!(check_prefix("og/").is_ok());
        assert!(check_prefix("og/product/").is_ok());
        for bad in [
            "",
            "originals/",
            "renditions/",
            "manifests/",
            "og/../originals/",
            "/og/",
        ] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }
}
