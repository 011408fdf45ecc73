//! HTTP: `/healthz`, `/metrics`, and the edge-only `/og/...` render route.

use std::convert::Infallible;
use std::sync::Arc;

use imgate_contract::{ContractError, headers, sign::constant_time_eq};
use warp::Filter;
use warp::http::{Response, StatusCode};

use crate::error::OriginError;
use crate::metrics::Metrics;
use crate::origin::Origin;

type Reply = warp::reply::Response;

pub struct Server {
    pub origin: Origin,
    pub edge_token: String,
}

pub fn routes(server: Arc<Server>) -> impl Filter<Extract = (Reply,), Error = Infallible> + Clone {
    let raw_query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::method()
        .and(warp::path::full())
        .and(raw_query)
        .and(warp::header::optional::<String>(headers::EDGE_TOKEN))
        .and(warp::any().map(move || server.clone()))
        .then(
            |method: warp::http::Method,
             path: warp::path::FullPath,
             query: String,
             token: Option<String>,
             server: Arc<Server>| async move {
                server
                    .handle(method.as_str(), path.as_str(), &query, token.as_deref())
                    .await
            },
        )
        .recover(|_| async {
            Ok::<_, Infallible>(error(
                &ContractError::BadPath("unreadable request".into()).into(),
            ))
        })
        .unify()
}

impl Server {
    async fn handle(&self, method: &str, path: &str, query: &str, token: Option<&str>) -> Reply {
        match path {
            "/healthz" => return self.health(),
            "/metrics" => {
                return Response::builder()
                    .header("content-type", "text/plain; version=0.0.4")
                    .body(self.origin.metrics.render().into())
                    .expect("static response");
            }
            _ => {}
        }
        if method != "GET" && method != "HEAD" {
            return self.reject(ContractError::MethodNotAllowed(method.to_string()).into());
        }
        if !token.is_some_and(|t| constant_time_eq(t.as_bytes(), self.edge_token.as_bytes())) {
            return self.reject(OriginError::Unauthorized);
        }
        match self.origin.card(path, query).await {
            Ok(image) => Response::builder()
                .header("content-type", image.format.content_type())
                .header("cache-control", headers::IMMUTABLE)
                .header("x-imgate-key", image.key.as_str())
                .body(image.bytes.into())
                .expect("valid headers"),
            Err(e) => self.reject(e),
        }
    }

    fn health(&self) -> Reply {
        let (status, body) = if self.origin.renderer.is_alive() {
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
        if e.status() < 500 {
            Metrics::inc(&self.origin.metrics.rejected);
        } else {
            tracing::error!("{e}");
        }
        error(&e)
    }
}

fn error(e: &OriginError) -> Reply {
    Response::builder()
        .status(e.status())
        .header("content-type", "application/json")
        .header("cache-control", headers::NO_STORE)
        .body(e.body().to_json().into())
        .expect("valid status")
}
