//! HTTP: `/healthz`, `/metrics`, and the `/og/...` render route, for the edge
//! (with its token) or for a signed URL sent here by the edge's redirect mode.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;

use imgate_contract::{ContractError, Keyring, headers, request_id, route, sign::constant_time_eq};
use warp::Filter;
use warp::http::{HeaderValue, Response, StatusCode};

use crate::debug;
use crate::error::OriginError;
use crate::metrics::{self, route_label};
use crate::origin::Origin;
use crate::uploads::{self, Uploads};

type Reply = warp::reply::Response;

pub struct Server {
    pub origin: Origin,
    pub edge_token: String,
    /// Keys for signed URLs sent straight here (redirect mode); empty: edge only.
    pub keyring: Keyring,
    /// With no keys, accept unsigned URLs sent straight here (development only).
    pub allow_unsigned: bool,
    /// Serve `/debug/...` (no credential needed): for development, never on a
    /// public network.
    pub debug_routes: bool,
    /// Presigned uploads (off without API keys).
    pub uploads: Uploads,
    /// How long a client may take to send a request body (and its headers,
    /// which `listen::serve` bounds).
    pub client_timeout: std::time::Duration,
}

/// Every route, each request in a span carrying its id (the edge's, or a new
/// one) and counted in the metrics.
pub fn routes(
    server: Arc<Server>,
) -> impl Filter<Extract = (impl warp::Reply,), Error = Infallible> + Clone {
    let metrics = server.origin.photos.images.metrics.clone();
    let counted = warp::log::custom(move |info| {
        let took = info.elapsed();
        let status = info.status().as_u16();
        metrics.request(route_label(info.path()), status, took);
        // Runs inside the request's span, so the line carries its id.
        tracing::info!(status, ms = took.as_secs_f64() * 1000.0, "answered");
    });
    let span = warp::trace(|info| {
        let id = request_id::accept_or_new(
            info.request_headers()
                .get(request_id::HEADER)
                .and_then(|v| v.to_str().ok()),
        );
        tracing::info_span!(
            "request",
            request_id = %id,
            method = %info.method(),
            route = route_label(info.path()),
            path = %info.path(),
        )
    });
    handlers(server).with(counted).with(span)
}

fn handlers(server: Arc<Server>) -> impl Filter<Extract = (Reply,), Error = Infallible> + Clone {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    // A small body, read only when its declared length fits; anything else is
    // seen as empty and refused by its declared length. A body that does not
    // arrive within the client timeout is refused, so a slow sender cannot
    // hold the request open.
    let client_timeout = server.client_timeout;
    let small_body = warp::body::content_length_limit(uploads::MAX_REQUEST_BYTES)
        .and(warp::body::stream())
        .then(move |body| read_within(body, client_timeout))
        .or(warp::any().map(|| Ok(Bytes::new())))
        .unify();
    let uploads_server = server.clone();
    let uploads = warp::path("uploads")
        .and(warp::method())
        .and(warp::path::tail())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::header::optional::<u64>("content-length"))
        .and(small_body)
        .and(warp::any().map(move || uploads_server.clone()))
        .then(
            |method: warp::http::Method,
             tail: warp::path::Tail,
             authorization: Option<String>,
             length: Option<u64>,
             body: Result<Bytes, OriginError>,
             server: Arc<Server>| async move {
                match body {
                    Ok(body) => {
                        server
                            .upload_route(
                                method.as_str(),
                                tail.as_str(),
                                authorization.as_deref(),
                                length,
                                &body,
                            )
                            .await
                    }
                    Err(e) => server.reject(e),
                }
            },
        );
    let images = warp::method()
        .and(warp::path::full())
        .and(raw_query)
        .and(warp::header::optional::<String>(headers::EDGE_TOKEN))
        .and(warp::header::optional::<String>("accept"))
        .and(warp::any().map(move || server.clone()))
        .then(
            |method: warp::http::Method,
             path: warp::path::FullPath,
             query: String,
             token: Option<String>,
             accept: Option<String>,
             server: Arc<Server>| async move {
                let request = Incoming {
                    method: method.as_str(),
                    path: path.as_str(),
                    query: &query,
                    token: token.as_deref(),
                    accept: accept.as_deref(),
                };
                server.handle(request).await
            },
        );
    uploads
        .or(images)
        .unify()
        .recover(|_| async {
            Ok::<_, Infallible>(error(
                &ContractError::BadPath("unreadable request".into()).into(),
            ))
        })
        .unify()
}

/// Reads a request body (already bounded by its declared length) unless it
/// takes longer than `timeout`.
async fn read_within(
    body: impl futures::Stream<Item = Result<impl bytes::Buf, warp::Error>>,
    timeout: std::time::Duration,
) -> Result<Bytes, OriginError> {
    use bytes::BufMut;
    use futures::TryStreamExt;
    let read = body.try_fold(Vec::new(), |mut all, chunk| async move {
        all.put(chunk);
        Ok(all)
    });
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(all)) => Ok(Bytes::from(all)),
        Ok(Err(e)) => Err(OriginError::BadUpload(format!(
            "the request body broke off: {e}"
        ))),
        Err(_) => Err(OriginError::SlowBody(timeout.as_secs())),
    }
}

impl Server {
    /// `POST /uploads`, `POST /uploads/{id}/complete`, `GET /uploads/{id}`.
    async fn upload_route(
        &self,
        method: &str,
        tail: &str,
        authorization: Option<&str>,
        length: Option<u64>,
        body: &[u8],
    ) -> Reply {
        if let Err(e) = self.uploads.authorise(authorization) {
            return self.reject(e);
        }
        if length.is_some_and(|n| n > uploads::MAX_REQUEST_BYTES) {
            return self.reject(OriginError::BadUpload(format!(
                "the request body is over {} bytes",
                uploads::MAX_REQUEST_BYTES
            )));
        }
        let photos = &self.origin.photos;
        let answer = match (method, tail.trim_end_matches('/')) {
            ("POST", "") => {
                return match self.uploads.create(photos, body).await {
                    Ok(ticket) => json(StatusCode::CREATED, &serde_json::json!(ticket)),
                    Err(e) => self.reject(e),
                };
            }
            ("POST", rest) if rest.ends_with("/complete") => {
                let id = rest.trim_end_matches("/complete");
                self.uploads.complete(photos, id).await
            }
            ("GET" | "HEAD", id) if !id.is_empty() => self.uploads.get(photos, id).await,
            (method, _) => Err(ContractError::MethodNotAllowed(method.to_string()).into()),
        };
        match answer {
            Ok(manifest) => json(StatusCode::OK, &serde_json::json!(manifest)),
            Err(e) => self.reject(e),
        }
    }
}

/// What the origin reads of a request.
struct Incoming<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    token: Option<&'a str>,
    accept: Option<&'a str>,
}

impl Server {
    async fn handle(&self, request: Incoming<'_>) -> Reply {
        let Incoming {
            method,
            path,
            query,
            token,
            accept,
        } = request;
        match path {
            "/healthz" => return self.health().await,
            "/metrics" => {
                return Response::builder()
                    .header("content-type", metrics::CONTENT_TYPE)
                    .header("cache-control", headers::NO_STORE)
                    .body(self.origin.metrics().encode().into())
                    .expect("static response");
            }
            _ => {}
        }
        if self.debug_routes
            && let Some(rest) = path.strip_prefix("/debug")
        {
            return self.debug(rest, query).await;
        }
        if method != "GET" && method != "HEAD" {
            return self.reject(ContractError::MethodNotAllowed(method.to_string()).into());
        }
        if !self.authorised(path, query, token) {
            return self.reject(OriginError::Unauthorized);
        }
        let made = if path.starts_with("/r/") {
            self.origin.rendition(path, query, accept).await
        } else {
            self.origin.card(path, query).await
        };
        match made {
            Ok(image) => {
                let mut response = Response::builder()
                    .header("content-type", image.format.content_type())
                    .header(
                        "cache-control",
                        if image.kept {
                            headers::IMMUTABLE
                        } else {
                            headers::NOT_KEPT
                        },
                    )
                    .header("x-imgate-key", image.key.as_str());
                // The same validator the store gives on a hit, so a revalidation matches.
                if let Some(etag) = image.etag.filter(|e| HeaderValue::from_str(e).is_ok()) {
                    response = response.header("etag", etag);
                }
                response.body(image.bytes.into()).expect("valid headers")
            }
            Err(e) => self.reject(e),
        }
    }

    /// The edge's token, or a URL signed as the edge would require it.
    fn authorised(&self, path: &str, query: &str, token: Option<&str>) -> bool {
        if token.is_some_and(|t| constant_time_eq(t.as_bytes(), self.edge_token.as_bytes())) {
            return true;
        }
        if self.keyring.is_empty() {
            return self.allow_unsigned;
        }
        route::parse("GET", path, query).is_ok_and(|route| {
            route
                .signable()
                .is_some_and(|signed| self.keyring.verify(signed).is_ok())
        })
    }

    /// Direct calls for working on templates: `/debug/templates`,
    /// `/debug/render/og/...` (render without storing) and `/debug/html/og/...`.
    async fn debug(&self, rest: &str, query: &str) -> Reply {
        if rest == "/templates" {
            return json(StatusCode::OK, &debug::templates(&self.origin.templates));
        }
        let (kind, card_path) = match rest.split_once("/og/") {
            Some((kind @ ("/render" | "/html"), tail)) => (kind, format!("/og/{tail}")),
            _ => return error(&ContractError::NotFound(format!("/debug{rest}")).into()),
        };
        let card = match self.origin.card_for(&card_path, query) {
            Ok(card) => card,
            Err(e) => return self.reject(e),
        };
        let started = std::time::Instant::now();
        let page = match self.origin.page(&card).await {
            Ok(page) => page,
            Err(e) => return self.reject(e),
        };
        let page_ms = started.elapsed().as_secs_f64() * 1000.0;
        if kind == "/html" {
            return Response::builder()
                .header("content-type", "text/html; charset=utf-8")
                // The page is for looking at, not for running or fetching anything.
                .header(
                    "content-security-policy",
                    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; font-src data: https:",
                )
                .header("x-content-type-options", "nosniff")
                .header("cache-control", headers::NO_STORE)
                .body(page.html.into())
                .expect("valid headers");
        }
        let render_started = std::time::Instant::now();
        match self.origin.render_page(&page, card.format).await {
            Ok(bytes) => Response::builder()
                .header("content-type", card.format.content_type())
                .header("cache-control", headers::NO_STORE)
                .header(
                    "server-timing",
                    format!(
                        "page;dur={page_ms:.1};desc=\"template and data\", render;dur={:.1};desc=\"chromium\"",
                        render_started.elapsed().as_secs_f64() * 1000.0
                    ),
                )
                .header("x-imgate-bytes", bytes.len())
                .body(bytes.into())
                .expect("valid headers"),
            Err(e) => self.reject(e),
        }
    }

    async fn health(&self) -> Reply {
        let (status, body) = if self.origin.renderer.is_alive().await {
            (StatusCode::OK, r#"{"status":"ok"}"#)
        } else {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"status":"renderer-down"}"#,
            )
        };
        Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .header("cache-control", headers::NO_STORE)
            .body(body.into())
            .expect("static response")
    }

    fn reject(&self, e: OriginError) -> Reply {
        if e.retry_after().is_some() {
            // Shedding load or restarting: expected under pressure, not a fault.
            tracing::warn!(code = %e.body().error.code, "{e}");
        } else if e.status() >= 500 {
            tracing::error!(code = %e.body().error.code, "{e}");
        } else {
            tracing::info!(code = %e.body().error.code, "refused: {e}");
        }
        error(&e)
    }
}

fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", headers::NO_STORE)
        .body(value.to_string().into())
        .expect("valid status")
}

fn error(e: &OriginError) -> Reply {
    let mut response = Response::builder();
    if let Some(seconds) = e.retry_after() {
        response = response.header("retry-after", seconds);
    }
    response
        .status(e.status())
        .header("content-type", "application/json")
        .header("cache-control", headers::NO_STORE)
        .body(e.body().to_json().into())
        .expect("valid status")
}
