//! An S3-protocol server on loopback (s3s + s3s-fs): objects are files under a
//! folder, requests must be signed with the run's credentials, exactly as with S3.

use std::path::Path;

use anyhow::Context;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};

use crate::random_hex;

/// Credentials for the local store, made fresh for each run.
#[derive(Clone)]
pub struct StoreCredentials {
    pub access_key: String,
    pub secret_key: String,
}

impl StoreCredentials {
    pub fn generate() -> anyhow::Result<Self> {
        Ok(Self {
            access_key: format!("imgate-{}", random_hex(6)?),
            secret_key: random_hex(20)?,
        })
    }
}

pub struct S3Server {
    pub url: String,
    pub bucket: String,
    pub credentials: StoreCredentials,
    task: tokio::task::JoinHandle<()>,
}

impl S3Server {
    /// Serves `data_dir` on 127.0.0.1:`port` (0 picks one), with `bucket` created.
    pub async fn start(
        data_dir: &Path,
        bucket: &str,
        port: u16,
        credentials: StoreCredentials,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(data_dir.join(bucket))
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let fs = s3s_fs::FileSystem::new(data_dir)
            .map_err(|e| anyhow::anyhow!("cannot serve {}: {e:?}", data_dir.display()))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(
            credentials.access_key.clone(),
            credentials.secret_key.clone(),
        ));
        let store = builder.build();
        let service = hyper::service::service_fn(move |request| answer(store.clone(), request));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port} for the store"))?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                // Without TCP_NODELAY a 100 KB GET stalls ~40 ms on delayed ACKs.
                let _ = socket.set_nodelay(true);
                let conn = http
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("store connection: {e}");
                    }
                });
            }
        });
        Ok(Self {
            url,
            bucket: bucket.to_string(),
            credentials,
            task,
        })
    }
}

/// The largest request the store reads (an upload; the origin's default cap
/// is far below).
const MAX_REQUEST_BYTES: usize = 256 << 20;

/// Answers once the whole request is in. s3s refuses a bad upload (wrong
/// signature, size or type) from its headers alone, and hyper then closes
/// the connection without reading the body: a client still sending it gets
/// a reset instead of the 403 (seen once in CI, in the uploads test that
/// expects the 403s).
async fn answer(
    store: S3Service,
    request: http::Request<Incoming>,
) -> Result<s3s::HttpResponse, s3s::StdError> {
    let (parts, body) = request.into_parts();
    let body = s3s::Body::from(body)
        .store_all_limited(MAX_REQUEST_BYTES)
        .await?;
    Ok(store
        .call(http::Request::from_parts(parts, s3s::Body::from(body)))
        .await?)
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
