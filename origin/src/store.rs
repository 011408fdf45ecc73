//! The image store: S3 (or any S3-protocol server) through aws-sdk-s3.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use bytes::Bytes;
use imgate_contract::ObjectKey;

use crate::metrics::StoreMetrics;

/// How an image is written.
pub struct PutImage<'a> {
    pub key: &'a ObjectKey,
    pub bytes: Bytes,
    pub content_type: &'a str,
    pub cache_control: &'a str,
    pub metadata: Vec<(&'static str, String)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Stored {
        etag: Option<String>,
    },
    /// Another process stored it first (`If-None-Match: *` answered 412).
    AlreadyThere,
}

#[derive(Clone)]
pub struct Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    metrics: StoreMetrics,
}

impl Store {
    /// Connects with the standard AWS credential chain (environment, profile,
    /// container or instance role), or with `credentials` (access key, secret)
    /// when given; `endpoint` points at an S3-compatible server.
    pub async fn connect(
        bucket: String,
        region: String,
        endpoint: Option<String>,
        credentials: Option<(String, String)>,
        timeout: std::time::Duration,
    ) -> Self {
        use aws_smithy_http_client::tls;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        // A slow or unreachable store must not hold a request past the edge's
        // patience (a miss looks up, renders, then writes): every attempt is
        // bounded, and with its retries every call.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(timeout.min(std::time::Duration::from_secs(3)))
            .operation_attempt_timeout(timeout)
            .operation_timeout(timeout * 2)
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .timeout_config(timeouts)
            .http_client(http);
        if let Some(endpoint) = &endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some((access_key, secret)) = credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                access_key, secret, None, None, "imgate",
            ));
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared)
            // S3-compatible servers on loopback have no per-bucket DNS names.
            .force_path_style(endpoint.is_some())
            .build();
        Self {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket,
            metrics: StoreMetrics::default(),
        }
    }

    /// Counts this store's calls in `metrics` (the origin's `/metrics`).
    pub fn counted(self, metrics: StoreMetrics) -> Self {
        Self { metrics, ..self }
    }

    /// Times a call and counts it as an error if it failed.
    async fn timed<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        let started = std::time::Instant::now();
        let result = call.await;
        self.metrics.observe(op, started.elapsed(), result.is_ok());
        result
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    #[tracing::instrument(name = "imgate.origin.store.put", skip_all, fields(key = %image.key))]
    pub async fn put(&self, image: PutImage<'_>) -> Result<PutOutcome, String> {
        self.timed("put", async {
            let mut request = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(image.key.as_str())
                .content_type(image.content_type)
                .cache_control(image.cache_control)
                // Written once: a concurrent writer of the same key loses harmlessly.
                .if_none_match("*")
                .body(ByteStream::from(image.bytes));
            for (name, value) in image.metadata {
                request = request.metadata(name, value);
            }
            match request.send().await {
                Ok(out) => Ok(PutOutcome::Stored { etag: out.e_tag }),
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 412) => {
                    Ok(PutOutcome::AlreadyThere)
                }
                Err(e) => Err(describe(&e)),
            }
        })
        .await
    }

    /// The object's bytes and ETag, unless it is missing or over `max_bytes`
    /// (judged by its length before any byte is read).
    #[tracing::instrument(name = "imgate.origin.store.get", skip_all, fields(key = %key))]
    pub async fn get(&self, key: &ObjectKey, max_bytes: usize) -> Result<Fetched, String> {
        self.timed("get", async {
            match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .send()
                .await
            {
                Ok(out) => {
                    let length = out.content_length.unwrap_or(0).max(0) as u64;
                    if length > max_bytes as u64 {
                        return Ok(Fetched::TooLarge(length));
                    }
                    let bytes = out.body.collect().await.map_err(|e| e.to_string())?;
                    Ok(Fetched::Found {
                        bytes: bytes.into_bytes(),
                        etag: out.e_tag,
                    })
                }
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                    Ok(Fetched::Missing)
                }
                Err(e) => Err(describe(&e)),
            }
        })
        .await
    }
}

impl Store {
    /// Writes a small JSON record, replacing what was there (manifests change
    /// as an upload is processed).
    pub async fn put_json(&self, key: &ObjectKey, json: Vec<u8>) -> Result<(), String> {
        self.timed("put", async {
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .content_type("application/json")
                .cache_control(imgate_contract::headers::NO_STORE)
                .body(ByteStream::from(json))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| describe(&e))
        })
        .await
    }

    /// Whether an object exists, by a HEAD.
    pub async fn exists(&self, key: &ObjectKey) -> Result<bool, String> {
        self.timed("head", async {
            match self
                .client
                .head_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .send()
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
                Err(e) => Err(describe(&e)),
            }
        })
        .await
    }

    /// The bucket's enabled expiry rules as (prefix, days); `None` when the
    /// store does not keep lifecycle rules at all (many S3-compatible servers).
    pub async fn expiry_rules(&self) -> Result<Option<Vec<(String, Option<i32>)>>, String> {
        match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.rules()
                    .iter()
                    .filter(|r| r.status().as_str() == "Enabled")
                    .map(|r| {
                        let prefix = r.filter().and_then(|f| f.prefix());
                        (
                            prefix.unwrap_or("").to_string(),
                            r.expiration().and_then(|e| e.days()),
                        )
                    })
                    .collect(),
            )),
            Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Ok(Some(Vec::new())),
            Err(e) if unsupported(e.code(), e.raw_response().map(|r| r.status().as_u16())) => {
                Ok(None)
            }
            Err(e) => Err(describe(&e)),
        }
    }

    /// The methods the bucket's CORS rules allow; `None` when the store does
    /// not keep CORS rules.
    pub async fn cors_methods(&self) -> Result<Option<Vec<String>>, String> {
        match self
            .client
            .get_bucket_cors()
            .bucket(&self.bucket)
            .send()
            .await
        {
            Ok(out) => Ok(Some(
                out.cors_rules()
                    .iter()
                    .flat_map(|r| r.allowed_methods().iter().cloned())
                    .collect(),
            )),
            Err(e) if e.code() == Some("NoSuchCORSConfiguration") => Ok(Some(Vec::new())),
            Err(e) if unsupported(e.code(), e.raw_response().map(|r| r.status().as_u16())) => {
                Ok(None)
            }
            Err(e) => Err(describe(&e)),
        }
    }

    /// Deletes one object (absent is fine).
    pub async fn delete(&self, key: &ObjectKey) -> Result<(), String> {
        self.timed("delete", async {
            self.client
                .delete_object()
                .bucket(&self.bucket)
                .key(key.as_str())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| describe(&e))
        })
        .await
    }

    /// One page of objects under `prefix` after `after`, with their age and
    /// size; and whether more follow.
    pub async fn list_objects(
        &self,
        prefix: &str,
        after: Option<&str>,
    ) -> Result<(Vec<Listed>, bool), String> {
        self.timed("list", async {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_start_after(after.map(str::to_string))
                .send()
                .await
                .map_err(|e| describe(&e))?;
            let objects = out
                .contents
                .unwrap_or_default()
                .into_iter()
                .filter_map(|o| {
                    Some(Listed {
                        key: o.key?,
                        bytes: o.size.unwrap_or(0).max(0) as u64,
                        modified_secs: o.last_modified.map_or(0, |t| t.secs()),
                    })
                })
                .collect();
            Ok((objects, out.is_truncated.unwrap_or(false)))
        })
        .await
    }

    /// Deletes up to 1,000 keys in one request; the keys the store refused, with why.
    pub async fn delete_many(&self, keys: &[String]) -> Result<Vec<(String, String)>, String> {
        self.timed("delete", async {
            use aws_sdk_s3::types::{Delete, ObjectIdentifier};
            let objects = keys
                .iter()
                .map(|k| {
                    ObjectIdentifier::builder()
                        .key(k)
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(
                    Delete::builder()
                        .set_objects(Some(objects))
                        .quiet(true)
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .send()
                .await
                .map_err(|e| describe(&e))?;
            Ok(out
                .errors
                .unwrap_or_default()
                .into_iter()
                .map(|e| {
                    (
                        e.key.unwrap_or_default(),
                        format!(
                            "{}: {}",
                            e.code.unwrap_or_default(),
                            e.message.unwrap_or_default()
                        ),
                    )
                })
                .collect())
        })
        .await
    }

    /// A URL that lets whoever holds it PUT exactly one object at `key`: the
    /// content type and length are signed, so the store refuses any other, and
    /// `If-None-Match: *` is signed, so an original is never replaced.
    pub async fn presign_put(
        &self,
        key: &ObjectKey,
        content_type: &str,
        length: u64,
        expires_in: std::time::Duration,
    ) -> Result<PresignedPut, String> {
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| e.to_string())?;
        let request = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key.as_str())
            .content_type(content_type)
            .content_length(i64::try_from(length).map_err(|e| e.to_string())?)
            .if_none_match("*")
            .presigned(config)
            .await
            .map_err(|e| describe(&e))?;
        Ok(PresignedPut {
            url: request.uri().to_string(),
            headers: request
                .headers()
                .map(|(name, value)| (name.to_ascii_lowercase(), value.to_string()))
                .collect(),
        })
    }
}

/// An object as a listing shows it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub key: String,
    pub bytes: u64,
    /// Unix seconds.
    pub modified_secs: i64,
}

/// A presigned upload: PUT the file to `url` with exactly these headers.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PresignedPut {
    pub url: String,
    pub headers: std::collections::BTreeMap<String, String>,
}

/// What a read found.
#[derive(Debug)]
pub enum Fetched {
    Missing,
    /// Longer than the caller accepts; its length.
    TooLarge(u64),
    Found {
        bytes: Bytes,
        etag: Option<String>,
    },
}

/// The store has no such feature (rather than a failure to reach it).
fn unsupported(code: Option<&str>, status: Option<u16>) -> bool {
    matches!(code, Some("NotImplemented" | "MethodNotAllowed")) || status == Some(501)
}

/// One line for logs and error bodies: the S3 code and message (or the transport
/// error chain), never credentials.
fn describe<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if let Some(code) = e.code() {
        return format!("{code}: {}", e.message().unwrap_or(""));
    }
    crate::error::chain(e)
}
