//! The Spin HTTP handler: performs the I/O that [`crate::plan`] decides on.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION, VARY,
};
use imgate_contract::{ErrorBody, headers, request_id};
use spin_sdk::http::{EmptyBody, FullBody, IntoResponse, Request, send};
use spin_sdk::key_value::Store;
use spin_sdk::wasip3::http::types::{ErrorCode, RequestOptions, Response};
use spin_sdk::wasip3::http_compat::RequestOptionsExtension;

use crate::access::{AccessLine, access_line};
use crate::config::{Mode, VARIABLES};
use crate::index::Slot;
use crate::plan::{StoreMethod, Target, presign};
use crate::{EdgeConfig, Plan, plan};

type Answer = Result<Response, ErrorCode>;

/// Longest the store may take to start answering; a slow store is a miss.
const STORE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest any connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Bounds an outbound request: connecting, then the first byte of the answer.
fn timeouts(first_byte: Duration) -> RequestOptionsExtension {
    let options = RequestOptions::new();
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    // A host that does not support a timeout says so; the request still goes.
    let _ = options.set_connect_timeout(Some(nanos(CONNECT_TIMEOUT)));
    let _ = options.set_first_byte_timeout(Some(nanos(first_byte)));
    RequestOptionsExtension(options)
}

/// Tells the caller what the known-present index said (redirect mode).
const INDEX_STATUS: &str = "x-imgate-index";

#[spin_sdk::http_service]
async fn handle(request: Request) -> Answer {
    let started = std::time::Instant::now();
    let incoming = request.headers();
    // A load balancer's or CloudFront's id, so one request is one id everywhere.
    let id = request_id::accept_or_new(
        [request_id::HEADER, "x-amz-cf-id"]
            .iter()
            .find_map(|name| incoming.get(*name).and_then(|v| v.to_str().ok())),
    );
    let (method, path) = (
        request.method().to_string(),
        request.uri().path().to_string(),
    );
    let config = load_config().await;
    let answer = match &config {
        Ok(config) => answer(config, request, &id).await,
        Err(problem) => {
            eprintln!("imgate-edge: misconfigured: {problem}");
            let body = ErrorBody::new("misconfigured", "the edge is misconfigured; see its log");
            json(500, body.to_json(), &id)
        }
    };
    if config.as_ref().is_ok_and(|c| !c.access_log) {
        return answer;
    }
    // One line per request: the hit rate is the share of `"cache":"hit"`.
    let (status, cache, index) = match &answer {
        Ok(response) => {
            let answered = response.get_headers();
            let header = |name: &str| {
                answered
                    .get(name)
                    .first()
                    .and_then(|v| String::from_utf8(v.clone()).ok())
            };
            (
                response.get_status_code(),
                header(headers::CACHE_STATUS),
                header(INDEX_STATUS),
            )
        }
        Err(_) => (500, None, None),
    };
    eprintln!(
        "{}",
        access_line(&AccessLine {
            request_id: &id,
            method: &method,
            path: &path,
            status,
            cache: cache.as_deref(),
            index: index.as_deref(),
            ms: started.elapsed().as_secs_f64() * 1000.0,
        })
    );
    answer
}

async fn answer(config: &EdgeConfig, request: Request, id: &str) -> Answer {
    if config.keyring.is_empty() {
        eprintln!(
            "imgate-edge: WARNING: accepting unsigned URLs (allow_unsigned = true); never in production"
        );
    }
    let uri = request.uri();
    let accept = request
        .headers()
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok());
    let decision = plan(
        config,
        request.method().as_str(),
        uri.path(),
        uri.query().unwrap_or(""),
        accept,
        |path| std::fs::read_to_string(path).ok(),
    );
    match (decision, &config.mode) {
        (Plan::Respond { status, body }, _) => json(status, body, id),
        (Plan::Image(target), Mode::Serve) => serve(config, target, id).await,
        (
            Plan::Image(target),
            Mode::Redirect {
                public_store_url,
                origin_public_url,
            },
        ) => {
            let hit = format!("{public_store_url}/{}", target.key);
            let miss = format!("{origin_public_url}{}", target.public_path);
            redirect(config, &target, hit, miss, id).await
        }
    }
}

/// Serve mode: the stored object, or on a miss the origin's answer, streamed back.
async fn serve(config: &EdgeConfig, target: Target, id: &str) -> Answer {
    let stored = http::Request::get(presign(config, StoreMethod::Get, &target.key, unix_now()))
        .extension(timeouts(STORE_TIMEOUT))
        .body(EmptyBody::new())
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    match send(stored).await {
        Ok(mut hit) if hit.status() == 200 => {
            image_headers(hit.headers_mut(), &target, "hit", id);
            return hit.into_response();
        }
        Ok(miss) if miss.status() == 404 => {}
        // The origin can still render and store it; the log says why the store failed.
        Ok(other) => eprintln!(
            "imgate-edge: store answered {} for {}",
            other.status(),
            target.key
        ),
        Err(e) => eprintln!("imgate-edge: store unreachable for {}: {e:?}", target.key),
    }

    let render = http::Request::get(format!("{}{}", config.origin_url, target.origin_path))
        .header(headers::EDGE_TOKEN, &config.edge_token)
        .header(request_id::HEADER, id)
        .extension(timeouts(Duration::from_secs(config.origin_timeout_secs)))
        .body(EmptyBody::new())
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    match send(render).await {
        Ok(mut made) if made.status() == 200 => {
            image_headers(made.headers_mut(), &target, "miss", id);
            // Now known present (unless the origin could not store it): a
            // redirect-mode edge on the same store skips its lookup.
            let kept = made.headers().get(CACHE_CONTROL)
                == Some(&HeaderValue::from_static(headers::IMMUTABLE));
            if kept && let Some(index) = Index::open(config, &target).await {
                index.record().await;
            }
            made.into_response()
        }
        Ok(mut failed) => {
            // Never cached, a 503's Retry-After included: the next try of the
            // same URL must reach an origin that may have room again.
            let answered = failed.headers_mut();
            answered.insert(CACHE_CONTROL, HeaderValue::from_static(headers::NO_STORE));
            answered.insert(request_id::HEADER, id_value(id));
            failed.into_response()
        }
        Err(e @ (ErrorCode::ConnectionReadTimeout | ErrorCode::ConnectionTimeout)) => {
            eprintln!("imgate-edge: origin too slow for {}: {e:?}", target.key);
            let body = ErrorBody::new(
                "origin-timeout",
                "the image took too long to make; retry shortly",
            );
            json(504, body.to_json(), id)
        }
        Err(e) => {
            eprintln!("imgate-edge: origin unreachable for {}: {e:?}", target.key);
            let body = ErrorBody::new(
                "origin-unreachable",
                "the image could not be made right now; retry shortly",
            );
            json(502, body.to_json(), id)
        }
    }
}

/// Redirect mode: 302 to the public copy when the index or a HEAD says it is
/// stored, else 307 to the origin, which checks the URL's signature itself.
async fn redirect(
    config: &EdgeConfig,
    target: &Target,
    hit: String,
    miss: String,
    id: &str,
) -> Answer {
    let index = Index::open(config, target).await;
    if let Some(index) = &index
        && index.is_fresh()
    {
        return redirect_to(302, &hit, target, config, "hit", id);
    }
    let head = http::Request::head(presign(config, StoreMethod::Head, &target.key, unix_now()))
        .extension(timeouts(STORE_TIMEOUT))
        .body(EmptyBody::new())
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    // `None`: the store did not say; the origin can still answer, and the index
    // keeps what it knew (only a 404 proves an entry stale).
    let stored = match send(head).await {
        Ok(answer) if answer.status() == 200 => Some(true),
        Ok(answer) if answer.status() == 404 => Some(false),
        Ok(other) => {
            eprintln!(
                "imgate-edge: store answered {} to HEAD {}",
                other.status(),
                target.key
            );
            None
        }
        Err(e) => {
            eprintln!("imgate-edge: store unreachable for {}: {e:?}", target.key);
            None
        }
    };
    let status = index.as_ref().map_or("off", Index::status);
    match (stored, &index) {
        (Some(true), Some(index)) => index.record().await,
        (Some(false), Some(index)) => index.forget().await,
        _ => {}
    }
    if stored == Some(true) {
        redirect_to(302, &hit, target, config, status, id)
    } else {
        redirect_to(307, &miss, target, config, status, id)
    }
}

fn redirect_to(
    status: u16,
    location: &str,
    target: &Target,
    config: &EdgeConfig,
    index_status: &str,
    id: &str,
) -> Answer {
    // A hit's location is immutable, but lifecycle rules may expire the object:
    // cache the redirect no longer than the index trusts itself.
    let cache = if status == 302 {
        format!("public, max-age={}", config.index_ttl_secs)
    } else {
        headers::NO_STORE.to_string()
    };
    let mut response = http::Response::builder()
        .status(status)
        .header(LOCATION, location)
        .header(CACHE_CONTROL, cache)
        .header(INDEX_STATUS, index_status)
        .header(request_id::HEADER, id);
    if target.vary_accept {
        response = response.header(VARY, "Accept");
    }
    response
        .body(EmptyBody::new())
        .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?
        .into_response()
}

/// The known-present index entry of one object: best effort, so every failure
/// is logged and treated as "not known".
struct Index {
    store: Store,
    slot: Slot,
    shard: Option<Vec<u8>>,
    now: u64,
    ttl_secs: u64,
}

impl Index {
    async fn open(config: &EdgeConfig, target: &Target) -> Option<Self> {
        let store = Store::open_default()
            .await
            .map_err(|e| eprintln!("imgate-edge: key-value store unavailable: {e:?}"))
            .ok()?;
        let slot = Slot::of(&target.key);
        let shard = store
            .get(&slot.shard)
            .await
            .map_err(|e| eprintln!("imgate-edge: index read failed: {e:?}"))
            .ok()?;
        let now = unix_now();
        Some(Self {
            store,
            slot,
            shard,
            now,
            ttl_secs: config.index_ttl_secs,
        })
    }

    fn shard(&self) -> &[u8] {
        self.shard.as_deref().unwrap_or_default()
    }

    fn is_fresh(&self) -> bool {
        self.slot.is_fresh(self.shard(), self.now, self.ttl_secs)
    }

    /// `miss` (no entry) or `stale` (an entry too old to trust).
    fn status(&self) -> &'static str {
        match self.slot.seen_at(self.shard()) {
            Some(_) => "stale",
            None => "miss",
        }
    }

    async fn record(&self) {
        let value = self.slot.record(self.shard(), self.now);
        if let Err(e) = self.store.set(&self.slot.shard, value).await {
            eprintln!("imgate-edge: index write failed: {e:?}");
        }
    }

    async fn forget(&self) {
        if let Some(value) = self.slot.forget(self.shard())
            && let Err(e) = self.store.set(&self.slot.shard, value).await
        {
            eprintln!("imgate-edge: index write failed: {e:?}");
        }
    }
}

/// Images are immutable; store-internal headers are not the client's business.
/// `ETag` and `Content-Length` pass through.
fn image_headers(headers: &mut HeaderMap, target: &Target, cache_status: &'static str, id: &str) {
    let internal: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-amz-") || *name == "server")
        .cloned()
        .collect();
    for name in internal {
        headers.remove(name);
    }
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static(target.format.content_type()),
    );
    // The store's objects and the origin's answers say how long they may be
    // cached (an image the origin could not store says briefly).
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static(headers::IMMUTABLE));
    }
    headers.insert(
        headers::CACHE_STATUS,
        HeaderValue::from_static(cache_status),
    );
    if target.vary_accept {
        headers.insert(VARY, HeaderValue::from_static("Accept"));
    }
    headers.insert(request_id::HEADER, id_value(id));
}

/// Ids are checked or made by `request_id`, so always a valid header value.
fn id_value(id: &str) -> HeaderValue {
    HeaderValue::from_str(id).expect("request ids are header-safe tokens")
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn json(status: u16, body: String, id: &str) -> Answer {
    let cache = if status == 200 {
        "no-cache"
    } else {
        headers::NO_STORE
    };
    http::Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, cache)
        .header(request_id::HEADER, id)
        .body(FullBody::new(Bytes::from(body)))
        .map_err(|e| ErrorCode::InternalError(Some(e.to_string())))?
        .into_response()
}

async fn load_config() -> Result<EdgeConfig, String> {
    let mut values = HashMap::new();
    for (name, _) in VARIABLES {
        match spin_sdk::variables::get(*name).await {
            Ok(value) => {
                values.insert(*name, value);
            }
            Err(spin_sdk::variables::Error::Undefined(_)) => {}
            Err(e) => return Err(format!("variable {name}: {e}")),
        }
    }
    EdgeConfig::from_lookup(|name| values.get(name).cloned())
}
