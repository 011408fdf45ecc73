//! Photos: renditions made on demand (`/r/...`), and eagerly — one original →
//! every preset from a single decode, stored and recorded in its manifest —
//! when an upload completes and by the backfill. Needs no browser.

use std::time::Instant;

use bytes::Bytes;
use imgate_contract::rendition::format_of_source;
use imgate_contract::{
    ImageFormat, Keyring, ObjectKey, Preset, Presets, RenditionRequest, Route, Signable, route,
};

use crate::error::OriginError;
use crate::images::{Image, Images};
use crate::manifest::{self, Manifest, OriginalInfo, Rendition, Status, Upload};
use crate::metrics::{Metrics, Outcome};
use crate::rendition::{self as engine, Original, Rendered, SourceError, SourceLimits};
use crate::store::Fetched;

/// How manifests spell rendition URLs: signed as the edge checks them, under
/// the public base URL the CDN serves.
#[derive(Clone, Default)]
pub struct Links {
    /// e.g. `https://img.example.com`; without it, URLs are paths.
    pub public_url: Option<String>,
    /// Signs with its first key; without keys URLs are unsigned (development).
    pub keyring: Keyring,
}

impl Links {
    /// The URL of a rendition; `format: None` asks for `format=auto`.
    pub fn rendition(&self, preset: &str, source: &str, format: Option<ImageFormat>) -> String {
        let path = format!("/r/{preset}/{source}");
        let query = format!("format={}", format.map_or("auto", ImageFormat::extension));
        let request = match route::parse("GET", &path, &query) {
            Ok(Route::Rendition(request)) => request,
            // Preset names and source keys were checked before anything was made.
            other => unreachable!("{path}?{query} is not a rendition URL: {other:?}"),
        };
        let url = self
            .keyring
            .sign_url(&request)
            .unwrap_or_else(|| request.signed_string());
        match &self.public_url {
            Some(base) => format!("{}{url}", base.trim_end_matches('/')),
            None => url,
        }
    }
}

/// The formats made eagerly for a source: what its plain URL serves (its own
/// format) and what `format=auto` serves most browsers (WebP). Anything else is
/// made on demand.
pub fn eager_formats(source: &str) -> Vec<ImageFormat> {
    let own = format_of_source(source);
    let mut formats = vec![own];
    if own != ImageFormat::Webp {
        formats.push(ImageFormat::Webp);
    }
    formats
}

pub struct Photos {
    pub images: Images,
    pub presets: Presets,
    pub limits: SourceLimits,
    pub links: Links,
}

impl Photos {
    pub fn new(images: Images) -> Self {
        Self {
            images,
            presets: Presets::default(),
            limits: SourceLimits::default(),
            links: Links::default(),
        }
    }

    fn metrics(&self) -> &Metrics {
        &self.images.metrics
    }

    /// One rendition, made from the original and stored, unless it is stored
    /// already (another origin, or an earlier request, may have made it).
    pub async fn rendition(
        &self,
        request: &RenditionRequest,
        format: ImageFormat,
        key: ObjectKey,
    ) -> Result<Image, OriginError> {
        if let Some(image) = self.images.stored(&key, format).await? {
            return Ok(image);
        }
        let (source, source_etag) = self.original(&request.source).await?;
        let started = Instant::now();
        let (preset, limits) = (self.presets.get(&request.preset)?.clone(), self.limits);
        let made = tokio::task::spawn_blocking({
            let preset = preset.clone();
            move || engine::render(&source, &preset, format, limits)
        })
        .await
        .map_err(|e| OriginError::Render(format!("rendition panicked: {e}")))?;
        let bytes = match made {
            Ok(bytes) => Bytes::from(bytes),
            Err(e) => {
                self.metrics().rendition(Outcome::Failed);
                tracing::warn!(
                    source = request.source,
                    code = e.code(),
                    "original refused: {e}"
                );
                return Err(e.into());
            }
        };
        self.metrics().rendition(Outcome::Ok);
        let metadata = metadata(&preset, &request.source, source_etag.as_deref());
        let image = self.images.keep(key, format, bytes, metadata).await;
        tracing::info!(key = %image.key, make_ms = started.elapsed().as_millis() as u64, bytes = image.bytes.len(), stored = image.kept, "rendition made");
        Ok(image)
    }

    /// The original's bytes and ETag, within the byte limit.
    async fn original(&self, source: &str) -> Result<(Bytes, Option<String>), OriginError> {
        let key = ObjectKey::for_original(source);
        match self
            .images
            .store
            .get(&key, self.limits.max_bytes)
            .await
            .map_err(OriginError::Store)?
        {
            Fetched::Found { bytes, etag } => Ok((bytes, etag)),
            Fetched::Missing => Err(OriginError::SourceNotFound(key.to_string())),
            Fetched::TooLarge(bytes) => Err(SourceError::TooManyBytes {
                bytes: bytes as usize,
                max: self.limits.max_bytes,
            }
            .into()),
        }
    }

    /// Makes and stores every preset of `originals/{source}` and writes its
    /// manifest. A refused original is recorded as `failed` (and its error
    /// returned); only a store failure leaves no manifest behind.
    pub async fn process_original(
        &self,
        source: &str,
        upload: Option<Upload>,
    ) -> Result<Manifest, OriginError> {
        let started = Instant::now();
        let limits = self.limits;
        let mut manifest = Manifest {
            source: source.to_string(),
            status: Status::Complete,
            upload,
            original: None,
            auto_urls: self
                .presets
                .iter()
                .map(|p| (p.name.clone(), self.links.rendition(&p.name, source, None)))
                .collect(),
            renditions: Vec::new(),
            error: None,
            updated_at: manifest::now(),
        };
        let (bytes, etag) = match self.original(source).await {
            Ok(found) => found,
            Err(OriginError::Source(refused)) => return self.refused(manifest, refused).await,
            Err(e) => return Err(e),
        };
        let byte_count = bytes.len() as u64;
        let formats = eager_formats(source);
        let jobs: Vec<(Preset, ImageFormat)> = self
            .presets
            .iter()
            .flat_map(|preset| formats.iter().map(move |format| (preset.clone(), *format)))
            .collect();
        let made = {
            let jobs = jobs.clone();
            tokio::task::spawn_blocking(move || {
                let original = Original::decode(&bytes, limits)?;
                let made: Vec<Result<Rendered, SourceError>> = jobs
                    .iter()
                    .map(|(preset, format)| original.render(preset, *format))
                    .collect();
                Ok::<_, SourceError>((original.dimensions(), made))
            })
            .await
            .map_err(|e| OriginError::Render(format!("rendition panicked: {e}")))?
        };
        let ((width, height), made) = match made {
            Ok(made) => made,
            Err(refused) => return self.refused(manifest, refused).await,
        };
        manifest.original = Some(OriginalInfo {
            bytes: byte_count,
            width,
            height,
            etag: etag.as_ref().map(|e| e.trim_matches('"').to_string()),
        });

        let stores = jobs.iter().zip(made).map(|((preset, format), made)| {
            let key = ObjectKey::for_rendition(&preset.name, source, *format);
            let mut entry = Rendition {
                preset: preset.name.clone(),
                format: format.extension().to_string(),
                key: key.to_string(),
                url: self.links.rendition(&preset.name, source, Some(*format)),
                bytes: None,
                width: None,
                height: None,
                error: None,
            };
            let metadata = metadata(preset, source, etag.as_deref());
            async move {
                match made {
                    Ok(rendered) => {
                        self.metrics().rendition(Outcome::Ok);
                        entry.bytes = Some(rendered.bytes.len() as u64);
                        entry.width = Some(rendered.width);
                        entry.height = Some(rendered.height);
                        if let Err(e) = self
                            .images
                            .put(&key, *format, Bytes::from(rendered.bytes), metadata)
                            .await
                        {
                            entry.error = Some(e.body().error);
                        }
                    }
                    Err(e) => {
                        self.metrics().rendition(Outcome::Failed);
                        entry.error = Some(OriginError::from(e).body().error);
                    }
                }
                entry
            }
        });
        manifest.renditions = futures::future::join_all(stores).await;
        if manifest.renditions.iter().any(|r| r.error.is_some()) {
            manifest.status = Status::Failed;
        }
        self.write_manifest(&manifest).await?;
        tracing::info!(
            source,
            status = ?manifest.status,
            renditions = manifest.renditions.len(),
            make_ms = started.elapsed().as_millis() as u64,
            "original processed"
        );
        Ok(manifest)
    }

    /// Records why an original cannot be made into renditions, and says so.
    async fn refused(
        &self,
        mut manifest: Manifest,
        refused: SourceError,
    ) -> Result<Manifest, OriginError> {
        self.metrics().rendition(Outcome::Failed);
        tracing::warn!(
            source = manifest.source,
            code = refused.code(),
            "original refused: {refused}"
        );
        let refused = OriginError::from(refused);
        manifest.status = Status::Failed;
        manifest.error = Some(refused.body().error);
        self.write_manifest(&manifest).await?;
        Err(refused)
    }

    pub async fn write_manifest(&self, manifest: &Manifest) -> Result<(), OriginError> {
        self.images
            .store
            .put_json(
                &ObjectKey::for_manifest(&manifest.source),
                manifest.to_json(),
            )
            .await
            .map_err(OriginError::Store)
    }

    /// The manifest of `source`, if one was written.
    pub async fn manifest(&self, source: &str) -> Result<Option<Manifest>, OriginError> {
        const MAX_MANIFEST_BYTES: usize = 1024 * 1024;
        let key = ObjectKey::for_manifest(source);
        match self
            .images
            .store
            .get(&key, MAX_MANIFEST_BYTES)
            .await
            .map_err(OriginError::Store)?
        {
            Fetched::Found { bytes, .. } => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| OriginError::Store(format!("{key} is not a manifest: {e}"))),
            Fetched::Missing => Ok(None),
            Fetched::TooLarge(bytes) => Err(OriginError::Store(format!(
                "{key} is {bytes} bytes, not a manifest imgate wrote"
            ))),
        }
    }
}

/// What a rendition's object records about where it came from.
fn metadata(
    preset: &Preset,
    source: &str,
    source_etag: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut metadata = vec![
        ("preset", preset.name.clone()),
        ("source", source.to_string()),
    ];
    if let Some(etag) = source_etag {
        metadata.push(("source-etag", etag.trim_matches('"').to_string()));
    }
    metadata
}
