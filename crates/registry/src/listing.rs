//! `/v2/`, `/v2/_catalog` and `/v2/<name>/tags/list`, with `n`/`last` pagination and the
//! `Link: <…>; rel="next"` header when more entries follow.

use hyper::StatusCode;
use serde_json::json;

use crate::error::Code;
use crate::http::{self, Reply};
use crate::server::State;

/// Distribution's page size when `n` is absent or not a number.
const DEFAULT_PAGE: usize = 100;

/// `GET /v2/`: the API version check.
pub fn base() -> Reply {
    Ok(http::json(StatusCode::OK, &json!({})))
}

/// The entries after `last`, at most `n` of them (`sorted` is sorted), and whether more follow.
fn page<'a>(
    sorted: &'a [String],
    q: &std::collections::HashMap<String, String>,
) -> (&'a [String], usize, bool) {
    let n = q.get("n").and_then(|n| n.parse::<i64>().ok());
    let n = match n {
        Some(n) if n >= 0 => n as usize,
        _ => DEFAULT_PAGE,
    };
    let start = match q.get("last") {
        Some(last) => sorted.partition_point(|x| x.as_str() <= last.as_str()),
        None => 0,
    };
    let end = (start + n).min(sorted.len());
    (&sorted[start..end], n, end < sorted.len())
}

fn link_next(resp: &mut hyper::Response<http::Body>, path: &str, last: &str, n: usize) {
    let last: String = form_urlencoded::byte_serialize(last.as_bytes()).collect();
    http::set(
        resp,
        "link",
        &format!("<{path}?last={last}&n={n}>; rel=\"next\""),
    );
}

/// `GET /v2/_catalog`
pub fn catalog(state: &State, uri: &hyper::Uri) -> Reply {
    let all = state.repos.catalog()?;
    let q = http::query(uri);
    let (items, n, more) = page(&all, &q);
    let mut resp = http::json(StatusCode::OK, &json!({ "repositories": items }));
    if let (true, Some(last)) = (more, items.last()) {
        link_next(&mut resp, "/v2/_catalog", last, n);
    }
    Ok(resp)
}

/// `GET /v2/<name>/tags/list`
pub fn tags(state: &State, name: &str, uri: &hyper::Uri) -> Reply {
    let Some(all) = state.repos.tags(name)? else {
        return Err(Code::NameUnknown.detail(json!({ "name": name })));
    };
    let q = http::query(uri);
    let (items, n, more) = page(&all, &q);
    let mut resp = http::json(StatusCode::OK, &json!({ "name": name, "tags": items }));
    if let (true, Some(last)) = (more, items.last()) {
        link_next(&mut resp, &format!("/v2/{name}/tags/list"), last, n);
    }
    Ok(resp)
}
