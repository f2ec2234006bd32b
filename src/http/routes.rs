//! The routes of contract §2. Transport only: the request id and client, the body read
//! within its size and time bounds, the access log line; each body goes to the front
//! door its path names (`soap` for `/soap`, `rest` for `/api/…`), whose answer is sent
//! as it is.

use std::net::IpAddr;

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use log::info;

use crate::domain::{ClientAddress, FrontDoor, Outcome, RequestContext};
use crate::front::{Answer, CallLog, Incoming, TransportError};
use crate::page;
use crate::rest;
use crate::service::Service;
use crate::soap::{self, Limits};

/// What every worker shares.
pub struct AppState {
    pub service: Service,
    /// Largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Longest time to receive a whole body.
    pub body_timeout: Duration,
    /// Structural bounds for the envelope pre-pass.
    pub limits: Limits,
    /// The endpoint URL published in the WSDL; `None` builds it from the Host header.
    pub public_url: Option<String>,
    /// Served over TLS: a URL built from the request's host says `https`.
    pub tls: bool,
    /// `/metrics` is served on its own listener (`--metrics-bind`), not with the API.
    pub metrics_elsewhere: bool,
    /// Honour `X-Forwarded-Host`/`-Proto` (set only behind a proxy that overwrites them).
    pub trust_forwarded_host: bool,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The listener's own address, for the WSDL when a request names no host.
    pub local_host: String,
}

/// The request id and the client of a request from `peer` with `headers`.
fn context(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    state: &AppState,
    front: FrontDoor,
) -> RequestContext {
    let client =
        super::client::client_ip(peer, headers, &state.trusted_proxies).map(ClientAddress::new);
    RequestContext {
        request_id: new_request_id(),
        client_addr: client
            .as_ref()
            .map_or_else(|| "-".to_string(), |c| c.ip().to_string()),
        client_ip: client.as_ref().map(ClientAddress::ip),
        client_key: client.map_or_else(|| "-".to_string(), |c| c.key().to_string()),
        front,
    }
}

/// The answer to a body declared over the limit with `Expect: 100-continue`: the 413,
/// before any of the body is sent (the connection then closes).
pub(super) async fn too_large_unread(
    path: &str,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    state: &AppState,
) -> HttpResponse {
    refused_before_body(path, headers, peer, state, TransportError::TooLarge).await
}

/// The answer to a request with both `Content-Length` and `Transfer-Encoding`.
pub(super) async fn ambiguous_framing(req: &HttpRequest, state: &AppState) -> HttpResponse {
    let peer = req.peer_addr().map(|a| a.ip());
    refused_before_body(
        req.path(),
        req.headers(),
        peer,
        state,
        TransportError::AmbiguousLength,
    )
    .await
}

/// The front door a path leads to.
fn front_door(path: &str) -> FrontDoor {
    if path.starts_with("/api/") {
        FrontDoor::Rest
    } else {
        FrontDoor::Soap
    }
}

/// Whether a path leads to a front door (whose format a refusal is answered in).
pub(super) fn has_front_door(path: &str) -> bool {
    path == "/soap" || path.starts_with("/api/")
}

/// A request refused before its body is read, answered by the front door its path
/// leads to.
async fn refused_before_body(
    path: &str,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    state: &AppState,
    error: TransportError,
) -> HttpResponse {
    let front = front_door(path);
    let ctx = context(peer, headers, state, front);
    let answer = match front {
        FrontDoor::Soap => {
            let incoming = Incoming {
                content_type: content_type(headers),
                ..Incoming::default()
            };
            soap::refuse_transport(&state.service, error, &incoming, &ctx).await
        }
        FrontDoor::Rest | FrontDoor::Page => {
            rest::refuse_transport(&state.service, error, &ctx).await
        }
    };
    send(answer, &ctx, Duration::ZERO)
}

/// The one access log line of a call. Identifiers only: never a password, a hash or the
/// body.
fn log_call(request_id: &str, log: &CallLog, status: u16, took: Duration) {
    info!(
        target: "soap_passwd::access",
        "request_id={} op={} outcome={} account={:?} caller={:?} target={:?} status={} duration_ms={:.1}",
        request_id,
        log.operation,
        log.outcome.map_or("-", Outcome::as_str),
        log.account.as_deref().unwrap_or("-"),
        log.caller.as_deref().unwrap_or("-"),
        log.target.as_deref().unwrap_or("-"),
        status,
        took.as_secs_f64() * 1000.0,
    );
}

/// Registers the routes.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/soap")
            .route(web::post().to(soap_endpoint))
            .route(web::get().to(documents)),
    )
    .service(
        web::resource("/api/users/{userId}/password")
            .route(web::patch().to(api_user_password))
            .route(web::get().to(api_user_password)),
    )
    .service(web::resource("/api/passwords").route(web::post().to(api_passwords)))
    .service(web::resource("/api/password-resets").route(web::post().to(api_password_resets)))
    .service(web::resource("/api/password-resets/{token}").route(web::post().to(api_reset_link)))
    .service(web::resource("/api/openapi.json").route(web::get().to(openapi)))
    .service(
        web::resource("/reset/{token}")
            .route(web::get().to(reset_page))
            .route(web::post().to(reset_page)),
    )
    .service(web::resource("/assets/reset.css").route(web::get().to(stylesheet)))
    .service(web::resource("/health").route(web::get().to(health)))
    .service(web::resource("/health/live").route(web::get().to(live)))
    .service(web::resource("/health/ready").route(web::get().to(ready)))
    .service(web::resource("/metrics").route(web::get().to(metrics_on_main)));
}

/// Registers `/metrics` alone, for the `--metrics-bind` listener.
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/metrics").route(web::get().to(metrics)));
}

fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// Sends a front door's answer, with the request id, and logs the call.
fn send(answer: Answer, ctx: &RequestContext, took: Duration) -> HttpResponse {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CONTENT_TYPE, answer.content_type))
        .insert_header(("X-Request-Id", ctx.request_id.as_str()));
    for (name, value) in &answer.headers {
        response.insert_header((*name, value.as_str()));
    }
    let mut response = response.body(answer.body);
    if answer.close {
        response
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    log_call(&ctx.request_id, &answer.log, answer.status, took);
    crate::metrics::call(
        ctx.front,
        answer.log.operation,
        answer.log.outcome.map_or("-", Outcome::as_str),
        took,
    );
    response
}

/// How much of an over-limit body is still read, and discarded, before the 413 is sent.
/// A client that is still sending when the server closes gets a connection reset instead
/// of the answer (and reqwest's or curl's streaming uploads report only the reset).
const DRAIN_MAX_BYTES: usize = 16 * 1024 * 1024;
const DRAIN_MAX_TIME: Duration = Duration::from_secs(2);

/// Reads the body, refusing it as soon as it exceeds `limit` bytes.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::BytesMut, TransportError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        drain(&mut payload).await;
        return Err(TransportError::TooLarge);
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(4096).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| TransportError::Broken)?;
        if body.len() + chunk.len() > limit {
            drain(&mut payload).await;
            return Err(TransportError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads and discards the rest of a refused body, within [`DRAIN_MAX_BYTES`] and
/// [`DRAIN_MAX_TIME`], so that the client reads the 413 before the connection closes.
async fn drain(payload: &mut web::Payload) {
    let discard = async {
        let mut left = DRAIN_MAX_BYTES;
        while let Some(Ok(chunk)) = payload.next().await {
            left = left.saturating_sub(chunk.len());
            if left == 0 {
                break;
            }
        }
    };
    let _ = actix_web::rt::time::timeout(DRAIN_MAX_TIME, discard).await;
}

/// Reads the body within the size and time bounds: a slow or stalled body is cut off,
/// so it cannot hold a connection and a worker's attention for ever.
async fn bounded_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<web::BytesMut, TransportError> {
    let encoding = content_encoding(req.headers())?;
    let body = tokio::time::timeout(
        state.body_timeout,
        read_body(req, payload, state.body_limit),
    )
    .await
    .unwrap_or(Err(TransportError::BodyTimeout))?;
    match encoding {
        None => Ok(body),
        Some(encoding) => decompress(encoding, body, state.body_limit).await,
    }
}

/// The compressions a request body may come in.
#[derive(Debug, Clone, Copy)]
enum Compression {
    Gzip,
    /// RFC 9110's `deflate` is zlib; some clients send raw deflate: both are read.
    Deflate,
}

/// The body's `Content-Encoding`: none (or `identity`), gzip or deflate.
fn content_encoding(headers: &HeaderMap) -> Result<Option<Compression>, TransportError> {
    let Some(value) = headers.get(header::CONTENT_ENCODING) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| TransportError::UnsupportedEncoding)?
        .trim();
    if value.is_empty() || value.eq_ignore_ascii_case("identity") {
        Ok(None)
    } else if value.eq_ignore_ascii_case("gzip") || value.eq_ignore_ascii_case("x-gzip") {
        Ok(Some(Compression::Gzip))
    } else if value.eq_ignore_ascii_case("deflate") {
        Ok(Some(Compression::Deflate))
    } else {
        Err(TransportError::UnsupportedEncoding)
    }
}

/// Decompresses a body on a blocking thread, reading at most `limit` + 1 bytes of it:
/// a compression bomb costs at most the limit, and is refused as too large.
async fn decompress(
    compression: Compression,
    mut body: web::BytesMut,
    limit: usize,
) -> Result<web::BytesMut, TransportError> {
    use std::io::Read;
    let decoded = tokio::task::spawn_blocking(move || {
        let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        // Room for all it may read: no reallocation leaves a copy of the passwords behind.
        let mut out = Vec::with_capacity(limit.saturating_add(1));
        let read = match compression {
            Compression::Gzip => flate2::read::MultiGzDecoder::new(&body[..])
                .take(bound)
                .read_to_end(&mut out),
            Compression::Deflate => {
                match flate2::read::ZlibDecoder::new(&body[..])
                    .take(bound)
                    .read_to_end(&mut out)
                {
                    Ok(n) => Ok(n),
                    Err(_) => {
                        zeroize::Zeroize::zeroize(&mut out);
                        out.clear();
                        flate2::read::DeflateDecoder::new(&body[..])
                            .take(bound)
                            .read_to_end(&mut out)
                    }
                }
            }
        };
        // The compressed body held the passwords too.
        zeroize::Zeroize::zeroize(&mut body[..]);
        let result = match read {
            Ok(_) if out.len() > limit => Err(TransportError::TooLarge),
            Ok(_) => Ok(web::BytesMut::from(&out[..])),
            Err(_) => Err(TransportError::Broken),
        };
        zeroize::Zeroize::zeroize(&mut out);
        result
    })
    .await;
    decoded.unwrap_or(Err(TransportError::Broken))
}

/// What the front doors need of the request's headers.
fn incoming<'r>(req: &'r HttpRequest, state: &AppState) -> Incoming<'r> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    Incoming {
        content_type: content_type(req.headers()),
        host: request_host(req, state).map(|(_, host)| host),
        authorization: header("authorization"),
        account_url: header("x-account-url"),
        link_base: link_base(req, state),
        cookie: header("cookie"),
        origin: header("origin"),
        fetch_site: header("sec-fetch-site"),
    }
}

/// The origin reset links start with: `--public-url`'s, else the request's.
fn link_base(req: &HttpRequest, state: &AppState) -> Option<String> {
    if let Some(url) = &state.public_url {
        // `https://passwd.example.com/soap` → `https://passwd.example.com`.
        let (scheme, rest) = url.split_once("://")?;
        let host = rest.split('/').next()?;
        return Some(format!("{scheme}://{host}"));
    }
    request_host(req, state).map(|(scheme, host)| format!("{scheme}://{host}"))
}

/// Which front door a request goes to, and for the JSON one which route.
#[derive(Clone, Copy)]
enum Door<'a> {
    Soap,
    Rest(rest::Route<'a>),
}

/// A front door's request: the body (if any), bounded, handed to it, and its answer
/// sent and logged.
async fn call(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    door: Door<'_>,
) -> HttpResponse {
    let started = Instant::now();
    let front = match door {
        Door::Soap => FrontDoor::Soap,
        Door::Rest(_) => FrontDoor::Rest,
    };
    let ctx = context(
        req.peer_addr().map(|a| a.ip()),
        req.headers(),
        &state,
        front,
    );
    let incoming = incoming(&req, &state);
    let service = &state.service;
    let answer = match (bounded_body(&req, payload, &state).await, door) {
        (Err(error), Door::Soap) => soap::refuse_transport(service, error, &incoming, &ctx).await,
        (Err(error), Door::Rest(_)) => rest::refuse_transport(service, error, &ctx).await,
        (Ok(mut body), door) => {
            let answer = match door {
                Door::Soap => soap::handle(service, &body, &incoming, &state.limits, &ctx).await,
                Door::Rest(route) => {
                    let batch_max = state.limits.batch_max;
                    rest::handle(service, route, &body, &incoming, batch_max, &ctx).await
                }
            };
            // The body held passwords: wipe it rather than leave it to the allocator.
            zeroize::Zeroize::zeroize(&mut body[..]);
            answer
        }
    };
    send(answer, &ctx, started.elapsed())
}

/// `PATCH` (set) and `GET` (read the status of) `/api/users/{userId}/password`.
async fn api_user_password(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let user_id = req
        .match_info()
        .get("userId")
        .unwrap_or_default()
        .to_string();
    let route = if req.method() == actix_web::http::Method::GET {
        rest::Route::ReadStatus { user_id: &user_id }
    } else {
        rest::Route::ChangePassword { user_id: &user_id }
    };
    call(req, payload, state, Door::Rest(route)).await
}

/// `GET` (the form) and `POST` (its submission) `/reset/{token}`.
async fn reset_page(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let ctx = context(
        req.peer_addr().map(|a| a.ip()),
        req.headers(),
        &state,
        FrontDoor::Page,
    );
    let token = req
        .match_info()
        .get("token")
        .unwrap_or_default()
        .to_string();
    let incoming = incoming(&req, &state);
    let answer = if req.method() == actix_web::http::Method::GET {
        page::show(&state.service, &token, &incoming, &ctx).await
    } else {
        match bounded_body(&req, payload, &state).await {
            Err(_) => page::show(&state.service, &token, &incoming, &ctx).await,
            Ok(mut body) => {
                let answer = page::submit(&state.service, &token, &body, &incoming, &ctx).await;
                zeroize::Zeroize::zeroize(&mut body[..]);
                answer
            }
        }
    };
    send(answer, &ctx, started.elapsed())
}

/// `GET /assets/reset.css`.
async fn stylesheet() -> HttpResponse {
    let answer = page::stylesheet();
    let mut response = HttpResponse::Ok();
    response.insert_header((header::CONTENT_TYPE, answer.content_type));
    for (name, value) in &answer.headers {
        response.insert_header((*name, value.as_str()));
    }
    response.body(answer.body)
}

/// `POST /api/password-resets`.
async fn api_password_resets(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    call(req, payload, state, Door::Rest(rest::Route::ResetPasswords)).await
}

/// `POST /api/password-resets/{token}`.
async fn api_reset_link(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let token = req
        .match_info()
        .get("token")
        .unwrap_or_default()
        .to_string();
    call(
        req,
        payload,
        state,
        Door::Rest(rest::Route::ChangeByLink { token: &token }),
    )
    .await
}

/// `POST /api/passwords`.
async fn api_passwords(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    call(
        req,
        payload,
        state,
        Door::Rest(rest::Route::UpdatePasswords),
    )
    .await
}

/// `GET /api/openapi.json`.
async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(rest::openapi::document())
}

/// `POST /soap`: the body, bounded, handed to the SOAP front door.
async fn soap_endpoint(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    call(req, payload, state, Door::Soap).await
}

/// `GET /soap?wsdl`, `GET /soap?singleWsdl` and `GET /soap?xsd=NAME`.
async fn documents(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let query = req.query_string();
    let xml = |body: String| {
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/xml; charset=utf-8"))
            .body(body)
    };
    if query.eq_ignore_ascii_case("singleWsdl") {
        return xml(soap::wsdl::single_wsdl_for(&endpoint_url(&req, &state)));
    }
    if query.eq_ignore_ascii_case("wsdl") || query.to_ascii_lowercase().starts_with("wsdl=") {
        return xml(soap::wsdl::wsdl_for(&endpoint_url(&req, &state)));
    }
    if let Some(name) = query.strip_prefix("xsd=") {
        if let Some(schema) = soap::wsdl::schema(name) {
            return xml(schema.to_string());
        }
        return HttpResponse::NotFound().body("no such schema\n");
    }
    HttpResponse::BadRequest()
        .content_type("text/plain; charset=utf-8")
        .body("POST SOAP requests here; GET ?wsdl for the service description\n")
}

/// The endpoint's public URL: the configured one, else built from the request's host.
fn endpoint_url(req: &HttpRequest, state: &AppState) -> String {
    if let Some(url) = &state.public_url {
        return url.clone();
    }
    let (scheme, host) = request_host(req, state)
        .unwrap_or_else(|| (own_scheme(state).to_string(), state.local_host.clone()));
    format!("{scheme}://{host}/soap")
}

/// The scheme and host the client addressed: the `Host` header, or — only when
/// `--trust-forwarded-host` says a proxy in front sets them — `X-Forwarded-Host` and
/// `X-Forwarded-Proto`. Values that are not plain host names are ignored.
fn request_host(req: &HttpRequest, state: &AppState) -> Option<(String, String)> {
    let header_value = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.split(',').next())
            .map(str::trim)
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 255
                    && h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]_".contains(c))
            })
            .map(str::to_string)
    };
    let mut scheme = own_scheme(state).to_string();
    if state.trust_forwarded_host {
        if let Some(host) = header_value("x-forwarded-host") {
            if let Some(proto) = header_value("x-forwarded-proto") {
                if proto.eq_ignore_ascii_case("https") {
                    scheme = "https".to_string();
                }
            }
            return Some((scheme, host));
        }
    }
    header_value("host").map(|host| (scheme, host))
}

/// The scheme this server is reached by, before any proxy.
fn own_scheme(state: &AppState) -> &'static str {
    if state.tls { "https" } else { "http" }
}

/// `GET /health`: 200 when the database answers.
/// `/health/live`: the process runs and serves HTTP; the database is not asked (a
/// restart would not bring it back).
async fn live() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain")
        .insert_header(("Cache-Control", "no-store"))
        .body("live\n")
}

/// `/health/ready`: the database answers and holds every migration this build needs.
async fn ready(state: web::Data<AppState>) -> HttpResponse {
    use crate::store::Readiness;
    let (mut answer, body) = match state.service.store().readiness().await {
        Readiness::Ready => (HttpResponse::Ok(), "ready\n"),
        Readiness::Unavailable => (HttpResponse::ServiceUnavailable(), "database unavailable\n"),
        Readiness::SchemaBehind => (
            HttpResponse::ServiceUnavailable(),
            "database schema behind this build\n",
        ),
    };
    answer
        .content_type("text/plain")
        .insert_header(("Cache-Control", "no-store"))
        .body(body)
}

/// `/metrics` on the API's listener: there unless `--metrics-bind` moved it.
async fn metrics_on_main(state: web::Data<AppState>) -> HttpResponse {
    if state.metrics_elsewhere {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("not found\n");
    }
    metrics(state).await
}

/// The longest a scrape waits for the database's count of outstanding reset links; the
/// gauge keeps its last value if it did not answer in time.
const METRICS_DB_WAIT: Duration = Duration::from_secs(2);

/// `GET /metrics`: the Prometheus text format (contract §16).
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let now = chrono::Utc::now().timestamp_millis();
    let store = state.service.store();
    let resets_outstanding =
        match tokio::time::timeout(METRICS_DB_WAIT, store.outstanding_resets(now)).await {
            Ok(Ok(n)) => Some(n),
            Ok(Err(e)) => {
                log::debug!("metrics: outstanding reset links not counted: {e}");
                None
            }
            Err(_) => None,
        };
    let text = crate::metrics::encode(crate::metrics::Scraped {
        hashing: state.service.hashing_occupancy(),
        resets_outstanding,
    });
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .insert_header(("Cache-Control", "no-store"))
        .body(text)
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    if state.service.store().healthy().await {
        HttpResponse::Ok().content_type("text/plain").body("ok\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain")
            .body("database unavailable\n")
    }
}
