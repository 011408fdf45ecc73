//! Backfill: every original already in the bucket gets its renditions and
//! manifest, as if it had just been uploaded. Resumable by construction: an
//! original whose manifest is complete (or records why it was refused) is
//! skipped, so a rerun picks up where an interrupted one stopped.

use std::time::{Duration, Instant};

use futures::StreamExt;
use imgate_contract::rendition::{ORIGINALS_PREFIX, check_source_key};
use indicatif::ProgressBar;

use crate::error::OriginError;
use crate::manifest::{Manifest, Status};
use crate::photos::{Photos, eager_formats};

pub struct Options {
    /// Only originals below `originals/{prefix}`.
    pub prefix: String,
    /// Originals processed at once.
    pub concurrency: usize,
    /// Try again originals whose manifest says they were refused.
    pub retry_refused: bool,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Summary {
    pub originals: usize,
    pub processed: usize,
    pub renditions: usize,
    /// Complete already, or refused before (and not retried).
    pub skipped: usize,
    /// Originals that are not usable images (recorded in their manifests).
    pub refused: Vec<(String, String)>,
    /// Originals the run could not finish (store errors): rerun to retry.
    pub failed: Vec<(String, String)>,
    pub elapsed: Duration,
}

enum Outcome {
    Processed(usize),
    Skipped,
    Refused(String),
    Failed(String),
}

/// Lists the originals (paginated), then processes those not done yet,
/// `concurrency` at a time, advancing `progress`.
pub async fn run(
    photos: &Photos,
    options: &Options,
    progress: &ProgressBar,
) -> Result<Summary, OriginError> {
    let started = Instant::now();
    let mut summary = Summary::default();
    let prefix = format!("{ORIGINALS_PREFIX}{}", options.prefix);
    let mut sources = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let (objects, more) = photos
            .images
            .store
            .list_objects(&prefix, after.as_deref())
            .await
            .map_err(OriginError::Store)?;
        after = objects.last().map(|o| o.key.clone());
        for key in objects.into_iter().map(|o| o.key) {
            let source = key.strip_prefix(ORIGINALS_PREFIX).unwrap_or(&key);
            match check_source_key(source) {
                Ok(()) => sources.push(source.to_string()),
                Err(e) => summary.failed.push((key.clone(), e.to_string())),
            }
        }
        progress.set_message(format!("listing: {} originals", sources.len()));
        if !more || after.is_none() {
            break;
        }
    }
    summary.originals = sources.len() + summary.failed.len();
    progress.set_length(sources.len() as u64);
    progress.set_message("processing");

    let mut outcomes = futures::stream::iter(sources)
        .map(|source| async move {
            let outcome = process(photos, options, &source).await;
            (source, outcome)
        })
        .buffer_unordered(options.concurrency.max(1));
    while let Some((source, outcome)) = outcomes.next().await {
        match outcome {
            Outcome::Processed(renditions) => {
                summary.processed += 1;
                summary.renditions += renditions;
            }
            Outcome::Skipped => summary.skipped += 1,
            Outcome::Refused(why) => {
                progress.println(format!("refused {source}: {why}"));
                summary.refused.push((source, why));
            }
            Outcome::Failed(why) => {
                progress.println(format!("failed {source}: {why}"));
                summary.failed.push((source, why));
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    summary.elapsed = started.elapsed();
    Ok(summary)
}

async fn process(photos: &Photos, options: &Options, source: &str) -> Outcome {
    let existing = match photos.manifest(source).await {
        Ok(existing) => existing,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    if let Some(manifest) = &existing
        && (is_done(photos, manifest, source) || (is_refused(manifest) && !options.retry_refused))
    {
        return Outcome::Skipped;
    }
    let upload = existing.and_then(|m| m.upload);
    match photos.process_original(source, upload).await {
        Ok(manifest) if manifest.status == Status::Complete => {
            Outcome::Processed(manifest.renditions.len())
        }
        Ok(manifest) => Outcome::Failed(
            manifest
                .renditions
                .iter()
                .filter_map(|r| r.error.as_ref())
                .map(|e| e.message.clone())
                .next()
                .unwrap_or_else(|| "some renditions failed".into()),
        ),
        Err(OriginError::Source(refused)) => Outcome::Refused(refused.to_string()),
        Err(e) => Outcome::Failed(e.to_string()),
    }
}

/// Complete, with every rendition today's presets and formats call for.
fn is_done(photos: &Photos, manifest: &Manifest, source: &str) -> bool {
    manifest.status == Status::Complete
        && photos.presets.iter().all(|preset| {
            eager_formats(source).iter().all(|format| {
                manifest.renditions.iter().any(|r| {
                    r.preset == preset.name && r.format == format.extension() && r.error.is_none()
                })
            })
        })
}

/// The original itself was refused (not a store failure).
fn is_refused(manifest: &Manifest) -> bool {
    manifest.status == Status::Failed && manifest.error.is_some()
}

impl Summary {
    /// A few lines for the terminal.
    pub fn report(&self) -> String {
        let mut text = format!(
            "backfill: {} originals in {:.1} s: {} processed ({} renditions), {} already done, {} refused, {} failed\n",
            self.originals,
            self.elapsed.as_secs_f64(),
            self.processed,
            self.renditions,
            self.skipped,
            self.refused.len(),
            self.failed.len(),
        );
        for (label, list) in [("refused", &self.refused), ("failed", &self.failed)] {
            for (source, why) in list.iter().take(10) {
                text.push_str(&format!("  {label} {source}: {why}\n"));
            }
            if list.len() > 10 {
                text.push_str(&format!("  … and {} more {label}\n", list.len() - 10));
            }
        }
        if !self.failed.is_empty() {
            text.push_str("rerun to retry the failed ones; finished originals are skipped\n");
        }
        text
    }
}
