//! The Spin HTTP handler: performs the I/O that [`crate::plan`] decides on.

use std::collections::HashMap;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderMap, HeaderValue};
use imgate_contract::{ErrorBody, headers};
use spin_sdk::http::{EmptyBody, FullBody, IntoResponse, Request, send};
use spin_sdk::wasip3::http::types::{ErrorCode, Response};

use crate::{EdgeConfig, Plan, config::VARIABLES, plan, plan::Fetch};

type Answer = Result<Response, ErrorCode>;

#[spin_sdk::http_service]
async fn handle(request: Request) -> Answer {
    let config = match load_config().await {
        Ok(config) => config,
        Err(problem) => {
            eprintln!("imgate-edge: misconfigured: {problem}");
            let body = ErrorBody::new("misconfigured", "the edge is misconfigured; see its log");
            return json(500, body.to_json());
        }
    };
    if config.keyring.is_empty() {
        eprintln!(
            "imgate-edge: WARNING: accepting unsigned URLs (allow_unsigned = true); never in production"
        );
    }
    let uri = request.uri();
    let decision = plan(
        &config,
        request.method().as_str(),
        uri.path(),
        uri.query().unwrap_or(""),
        |path| std::fs::read_to_string(path).ok(),
    );
    match decision {
        Plan::Respond { status, body } => json(status, body),
        Plan::Fetch(fetch) => serve(&config, fetch).await,
    }
}

/// Serves the stored object, or on a miss streams the origin's answer back.
async fn serve(config: &EdgeConfig, fetch: Fetch) -> Answer {
    let stored = http::Request::get(&fetch.store_url)
        .body(EmptyBody::new())
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    match send(stored).await {
        Ok(mut hit) if hit.status() == 200 => {
            image_headers(hit.headers_mut(), fetch.format.content_type(), "hit");
            return hit.into_response();
        }
        Ok(miss) if miss.status() == 404 => {}
        // The origin can still render and store it; the log says why the store failed.
        Ok(other) => eprintln!(
            "imgate-edge: store answered {} for {}",
            other.status(),
            fetch.key
        ),
        Err(e) => eprintln!("imgate-edge: store unreachable for {}: {e:?}", fetch.key),
    }

    let render = http::Request::get(&fetch.origin_url)
        .header(headers::EDGE_TOKEN, &config.edge_token)
        .body(EmptyBody::new())
        .map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
    match send(render).await {
        Ok(mut made) if made.status() == 200 => {
            image_headers(made.headers_mut(), fetch.format.content_type(), "miss");
            made.into_response()
        }
        Ok(mut failed) => {
            failed
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static(headers::NO_STORE));
            failed.into_response()
        }
        Err(e) => {
            eprintln!("imgate-edge: origin unreachable for {}: {e:?}", fetch.key);
            let body = ErrorBody::new(
                "origin-unreachable",
                "the image could not be made right now; retry shortly",
            );
            json(502, body.to_json())
        }
    }
}

/// Images are immutable; store-internal headers are not the client's business.
fn image_headers(headers: &mut HeaderMap, content_type: &'static str, cache_status: &'static str) {
    let internal: Vec<_> = headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-amz-") || *name == "server")
        .cloned()
        .collect();
    for name in internal {
        headers.remove(name);
    }
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(headers::IMMUTABLE));
    headers.insert(
        headers::CACHE_STATUS,
        HeaderValue::from_static(cache_status),
    );
}

fn json(status: u16, body: String) -> Answer {
    let cache = if status == 200 {
        "no-cache"
    } else {
        headers::NO_STORE
    };
    http::Response::builder()
        .status(status)
        .header(CONTENT_TYPE, "application/json")
        .header(CACHE_CONTROL, cache)
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
