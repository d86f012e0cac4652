//! The demo app's HTTP/1.1 server: accepting connections, routing each request to its page,
//! and the small comment API.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::{Body, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use super::cases::{self, Case};
use super::video::video_response;

/// A comment is a sentence or two; anything bigger is refused before it is buffered.
const MAX_COMMENT_BYTES: usize = 4 * 1024;
/// Pause after a failed accept (e.g. out of file descriptors) so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

const CSS: &str = include_str!("assets/demo.css");
const HTML_TYPE: &str = "text/html; charset=utf-8";
const JSON_TYPE: &str = "application/json";
const READ_METHODS: &str = "GET, HEAD";

/// The running demo app. Dropping it stops the server and every open connection.
#[derive(Debug)]
pub struct DemoAppHandle {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

/// What the server shares between connections.
#[derive(Debug, Default)]
struct AppState {
    next_comment_id: AtomicU64,
}

/// Where a request path leads; the method is checked separately so a wrong one gets 405.
#[derive(Debug, Clone, Copy)]
enum Route {
    Read(Resource),
    Comments(&'static Case),
    NotFound,
}

/// The read-only resources, answered for GET and HEAD.
#[derive(Debug, Clone, Copy)]
enum Resource {
    CasePage(&'static Case),
    Summary(&'static Case),
    Video,
    Billing(&'static Case),
    Stylesheet,
}

/// Starts the demo app on `listener` and returns at once; the server runs on the current
/// Tokio runtime until the handle is dropped.
pub async fn spawn_demo_app(listener: TcpListener) -> io::Result<DemoAppHandle> {
    let local_addr = listener.local_addr()?;
    let state = Arc::new(AppState::default());
    let task = tokio::spawn(serve(listener, state));
    Ok(DemoAppHandle { local_addr, task })
}

// === impl DemoAppHandle ===

impl DemoAppHandle {
    /// The address the app listens on, for the gateway's upstream and for tests.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for DemoAppHandle {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

async fn serve(listener: TcpListener, state: Arc<AppState>) {
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                tracing::debug!(%error, "demo app could not accept a connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let state = Arc::clone(&state);
        connections.spawn(async move {
            let service = service_fn(move |request| handle(request, Arc::clone(&state)));
            // The timer enables hyper's default header-read timeout against idle sockets.
            let served = http1::Builder::new()
                .timer(TokioTimer::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(error) = served {
                tracing::debug!(%error, "demo app connection ended with an error");
            }
        });
    }
}

/// Answers one request; never fails, every outcome is a response.
async fn handle(
    request: Request<Incoming>,
    state: Arc<AppState>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let route = route(request.uri().path());
    let response = match (route, &method) {
        (Route::Comments(case), &Method::POST) => {
            add_comment(case, request.into_body(), &state).await
        }
        (Route::Comments(_), _) => method_not_allowed("POST"),
        (Route::Read(resource), &Method::GET | &Method::HEAD) => {
            read(resource, &method, request.headers())
        }
        (Route::Read(_), _) => method_not_allowed(READ_METHODS),
        (Route::NotFound, _) => text(StatusCode::NOT_FOUND, "Not found.\n"),
    };
    Ok(without_body_for_head(&method, response))
}

/// Maps a path to a route; only exact paths of known cases match, everything else is 404.
fn route(path: &str) -> Route {
    if path == "/static/demo.css" {
        return Route::Read(Resource::Stylesheet);
    }
    if let Some(rest) = path.strip_prefix("/api/cases/") {
        return match rest.split_once('/') {
            Some((id, "comments")) => cases::find(id).map_or(Route::NotFound, Route::Comments),
            _ => Route::NotFound,
        };
    }
    let Some(rest) = path.strip_prefix("/cases/") else {
        return Route::NotFound;
    };
    let (id, resource) = rest.split_once('/').unwrap_or((rest, ""));
    let Some(case) = cases::find(id) else {
        return Route::NotFound;
    };
    let resource = match resource {
        "" if !rest.ends_with('/') => Resource::CasePage(case),
        "summary.json" => Resource::Summary(case),
        "video" => Resource::Video,
        "billing" => Resource::Billing(case),
        _ => return Route::NotFound,
    };
    Route::Read(resource)
}

/// GET and HEAD of the read-only routes.
fn read(resource: Resource, method: &Method, headers: &HeaderMap) -> Response<Full<Bytes>> {
    match resource {
        Resource::CasePage(case) => {
            with_type(StatusCode::OK, HTML_TYPE, cases::case_page(case, headers))
        }
        Resource::Summary(case) => with_type(StatusCode::OK, JSON_TYPE, cases::summary_json(case)),
        Resource::Video => video_response(method, headers),
        Resource::Billing(case) => with_type(StatusCode::OK, HTML_TYPE, cases::billing_page(case)),
        Resource::Stylesheet => with_type(StatusCode::OK, "text/css; charset=utf-8", CSS),
    }
}

/// Accepts a small comment and answers as the real app would; the content is neither stored
/// nor logged, since the demo only needs to show that the gateway refuses this for viewers.
async fn add_comment(case: &Case, body: Incoming, state: &AppState) -> Response<Full<Bytes>> {
    let received = match Limited::new(body, MAX_COMMENT_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                "A comment is at most 4 KiB.\n",
            );
        }
        Err(_) => return text(StatusCode::BAD_REQUEST, "The comment could not be read.\n"),
    };
    let id = state.next_comment_id.fetch_add(1, Ordering::Relaxed) + 1;
    let json = serde_json::json!({
        "comment": { "id": id, "case": case.id, "bytes": received.len() }
    });
    let mut response = with_type(StatusCode::CREATED, JSON_TYPE, json.to_string());
    let location = format!("/api/cases/{}/comments/{id}", case.id);
    if let Ok(location) = HeaderValue::try_from(location) {
        response.headers_mut().insert(LOCATION, location);
    }
    response
}

fn with_type(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Case data, even invented, should behave like the real thing: never cached.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn text(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    with_type(status, "text/plain; charset=utf-8", message)
}

fn method_not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed.\n");
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

/// A HEAD answer has GET's headers and no body; the length is stated explicitly so it survives
/// a proxy that rebuilds the response.
fn without_body_for_head(
    method: &Method,
    mut response: Response<Full<Bytes>>,
) -> Response<Full<Bytes>> {
    if method != Method::HEAD {
        return response;
    }
    if let Some(len) = response.body().size_hint().exact() {
        response
            .headers_mut()
            .entry(CONTENT_LENGTH)
            .or_insert_with(|| HeaderValue::from(len));
    }
    *response.body_mut() = Full::new(Bytes::new());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(id: &str) -> &'static Case {
        cases::find(id).expect("demo case exists")
    }

    #[test]
    fn paths_route_to_exactly_the_known_resources() {
        let table = [
            ("a case page", "/cases/42", "CasePage(42)"),
            ("the other case page", "/cases/43", "CasePage(43)"),
            ("a case summary", "/cases/42/summary.json", "Summary(42)"),
            ("a case video", "/cases/43/video", "Video"),
            ("a billing page", "/cases/42/billing", "Billing(42)"),
            ("the comment API", "/api/cases/42/comments", "Comments(42)"),
            ("the stylesheet", "/static/demo.css", "Stylesheet"),
            ("an unknown case", "/cases/44", "NotFound"),
            ("an unknown case's video", "/cases/44/video", "NotFound"),
            ("a trailing slash", "/cases/42/", "NotFound"),
            ("an unknown resource", "/cases/42/notes", "NotFound"),
            ("a deeper path", "/cases/42/video/extra", "NotFound"),
            (
                "comments of an unknown case",
                "/api/cases/99/comments",
                "NotFound",
            ),
            ("the case list", "/cases/", "NotFound"),
            ("the root", "/", "NotFound"),
            ("a dot segment", "/cases/../static/demo.css", "NotFound"),
        ];
        for (name, path, expected) in table {
            let got = match route(path) {
                Route::Read(Resource::CasePage(c)) => format!("CasePage({})", c.id),
                Route::Read(Resource::Summary(c)) => format!("Summary({})", c.id),
                Route::Read(Resource::Video) => "Video".to_owned(),
                Route::Read(Resource::Billing(c)) => format!("Billing({})", c.id),
                Route::Read(Resource::Stylesheet) => "Stylesheet".to_owned(),
                Route::Comments(c) => format!("Comments({})", c.id),
                Route::NotFound => "NotFound".to_owned(),
            };
            assert_eq!(got, expected, "{name}");
        }
    }

    #[test]
    fn head_keeps_the_length_and_drops_the_body() {
        let get = read(
            Resource::Summary(case("42")),
            &Method::GET,
            &HeaderMap::new(),
        );
        let expected_len = get.body().size_hint().exact();
        let head = without_body_for_head(&Method::HEAD, get);
        assert_eq!(head.body().size_hint().exact(), Some(0));
        let stated = head.headers()[CONTENT_LENGTH]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok());
        assert_eq!(stated, expected_len);
    }

    #[test]
    fn get_responses_keep_their_body() {
        let get = read(Resource::Stylesheet, &Method::GET, &HeaderMap::new());
        let len = get.body().size_hint().exact();
        assert_eq!(
            without_body_for_head(&Method::GET, get)
                .body()
                .size_hint()
                .exact(),
            len
        );
        assert_eq!(len, u64::try_from(CSS.len()).ok());
    }
}
