//! `POST /cache/purge`: removes cached responses by URL or URL prefix, for
//! callers holding the admin token.

use http::{Response, StatusCode};
use pingora::protocols::http::ServerSession;
use subtle::ConstantTimeEq;

use super::json;
use crate::cache::purge::PurgeRequest;

/// A purge request body is a small JSON object.
const MAX_BODY: usize = 16 * 1024;

pub(super) async fn answer(session: &mut ServerSession, token: Option<&str>) -> Response<Vec<u8>> {
    if session.req_header().method != http::Method::POST {
        return error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return error(StatusCode::FORBIDDEN, "set admin.token to allow purging");
    };
    if !authorized(session, token) {
        return error(
            StatusCode::UNAUTHORIZED,
            "send Authorization: Bearer with the admin token (missing or wrong)",
        );
    }
    let body = match read_body(session).await {
        Ok(body) => body,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let request: PurgeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "send {\"url\": ...} or {\"prefix\": ...}",
            )
        }
    };
    match request.run() {
        Ok(purged) => json(
            StatusCode::OK,
            serde_json::json!({ "purged": purged })
                .to_string()
                .into_bytes(),
        ),
        Err(message) => error(StatusCode::BAD_REQUEST, message),
    }
}

fn authorized(session: &ServerSession, token: &str) -> bool {
    let given = session
        .req_header()
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    bool::from(given.as_bytes().ct_eq(token.as_bytes()))
}

async fn read_body(session: &mut ServerSession) -> Result<Vec<u8>, &'static str> {
    let mut body = Vec::new();
    loop {
        match session.read_request_body().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > MAX_BODY {
                    return Err("the body is over 16KiB");
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return Ok(body),
            Err(_) => return Err("the body could not be read"),
        }
    }
}

fn error(status: StatusCode, message: &str) -> Response<Vec<u8>> {
    json(
        status,
        serde_json::json!({ "error": message })
            .to_string()
            .into_bytes(),
    )
}
