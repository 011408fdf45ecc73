//! Answers every request with a short text: what a component costs in the host
//! before it does any work. `edge-host/benches/edge.rs` compares the edge with it.

#[cfg(target_arch = "wasm32")]
#[spin_sdk::http_service]
async fn handle(
    _request: spin_sdk::http::Request,
) -> Result<spin_sdk::wasip3::http::types::Response, spin_sdk::wasip3::http::types::ErrorCode> {
    use spin_sdk::http::IntoResponse;
    http::Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(spin_sdk::http::FullBody::new(bytes::Bytes::from_static(
            b"hello\n",
        )))
        .map_err(|e| spin_sdk::wasip3::http::types::ErrorCode::InternalError(Some(e.to_string())))?
        .into_response()
}
