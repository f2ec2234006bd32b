//! The HTTP server: actix-server accepts on the bound listener, the connection is
//! counted under its address and (with `--tls-cert`) its TLS handshake made, actix-http
//! serves it, and the actix-web `App` of [`super::routes`] answers the requests.
//!
//! Built from those parts rather than with actix-web's `HttpServer` for two hooks it
//! does not offer (issue 9):
//! - **`Expect: 100-continue`**: `HttpServer` answers `100 Continue` before any handler
//!   runs, so a request declaring a body over the limit was invited to send it, and 16 MB
//!   were read before the 413. Here the expect step refuses it with the 413 at once.
//! - **Connections per address**: every accepted connection is counted under its
//!   address (an IPv6 peer under its /64); one past the limit is shut at once, so idle
//!   sockets from one host cannot fill the connection cap for everyone.
//!
//! And a middleware refuses a request that gives both `Content-Length` and
//! `Transfer-Encoding` (RFC 9112 §6.1: a smuggling risk behind some proxies) with 400,
//! closing the connection.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_http::error::DispatchError;
use actix_http::{HttpMessage as _, HttpService, Protocol, Request, Response, body::BoxBody};
use actix_server::Server;
use actix_service::{
    IntoServiceFactory, ServiceFactory, ServiceFactoryExt, fn_service, map_config,
};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{Next, from_fn};
use actix_web::rt::net::TcpStream;
use actix_web::{App, HttpResponse, web};
use ipnet::IpNet;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::routes::{self, AppState};
use super::tls::Tls;
use crate::domain::ClientAddress;

/// How the server is run.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub workers: usize,
    /// Concurrent connections per worker.
    pub max_connections: usize,
    pub keep_alive: Duration,
    /// Longest time to receive a request's head.
    pub head_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// Open connections one client address (an IPv6 client's /64) may hold.
    pub max_connections_per_address: usize,
    /// Peers exempt from that limit: trusted proxies and allowlisted relays.
    pub exempt: Vec<IpNet>,
}

/// Builds the server on `listener`; it runs once awaited (or its handle is used). With
/// `tls`, every connection is a TLS one (a plain-HTTP client fails its handshake).
pub fn build(
    listener: TcpListener,
    state: web::Data<AppState>,
    options: ServerOptions,
    tls: Option<Tls>,
) -> std::io::Result<Server> {
    let local = listener.local_addr()?;
    let limiter = Arc::new(ConnectionLimiter {
        max: options.max_connections_per_address.max(1),
        exempt: options.exempt.clone(),
        open: Mutex::default(),
    });
    let builder = Server::build()
        .workers(options.workers.max(1))
        .max_concurrent_connections(options.max_connections.max(1))
        .shutdown_timeout(options.shutdown_timeout.as_secs().max(1))
        // actix stops SIGINT by force (dropping in-flight requests); both signals are
        // handled by `startup::Application::run_until_stopped` instead, as graceful stops.
        .disable_signals();
    let (keep_alive, head_timeout) = (options.keep_alive, options.head_timeout);
    let builder = match tls {
        None => builder.listen("soap-passwd", listener, move || {
            let limiter = limiter.clone();
            // Counted at accept, before the first byte is read.
            fn_service(move |io: TcpStream| {
                let counted = limiter.admit(&io);
                async move {
                    let counted = counted?;
                    let peer = io.peer_addr().ok();
                    Ok((Connection { io, counted }, Protocol::Http1, peer))
                }
            })
            .and_then(http_service(state.clone(), local, keep_alive, head_timeout))
        })?,
        Some(tls) => builder.listen("soap-passwd", listener, move || {
            let limiter = limiter.clone();
            let acceptor = tls.acceptor();
            // Counted at accept, before the handshake: a client holding handshakes open
            // is held to its share like one holding request heads.
            fn_service(move |io: TcpStream| {
                let counted = limiter.admit(&io);
                let acceptor = acceptor.clone();
                async move {
                    let counted = counted?;
                    let peer = io.peer_addr().ok();
                    let io = match tokio::time::timeout(head_timeout, acceptor.accept(io)).await {
                        Ok(Ok(io)) => io,
                        Ok(Err(e)) => {
                            log::debug!("TLS handshake with {peer:?} failed: {e}");
                            return Err(DispatchError::Io(e));
                        }
                        Err(_) => {
                            log::debug!("TLS handshake with {peer:?} timed out");
                            return Err(DispatchError::SlowRequestTimeout);
                        }
                    };
                    Ok((Connection { io, counted }, Protocol::Http1, peer))
                }
            })
            .and_then(http_service(state.clone(), local, keep_alive, head_timeout))
        })?,
    };
    Ok(builder.run())
}

/// The HTTP/1.1 service over one accepted (and counted) connection.
fn http_service<S>(
    state: web::Data<AppState>,
    local: SocketAddr,
    keep_alive: Duration,
    head_timeout: Duration,
) -> impl ServiceFactory<
    (Connection<S>, Protocol, Option<SocketAddr>),
    Config = (),
    Response = (),
    Error = DispatchError,
    InitError = (),
>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let app = App::new()
        .app_data(state.clone())
        .wrap(from_fn(refuse_ambiguous_framing))
        .configure(routes::configure);
    let expect_state = state.clone();
    let expect_hook = fn_service(move |req: Request| {
        let state = expect_state.clone();
        async move { expect_continue(req, &state).await }
    });
    HttpService::build()
        .keep_alive(keep_alive)
        .client_request_timeout(head_timeout)
        .client_disconnect_timeout(Duration::from_secs(1))
        .local_addr(local)
        .expect(expect_hook) // ok: actix-http's Expect hook, not Option::expect
        .finish(map_config(
            app.into_factory()
                .map_err(|err: actix_web::Error| err.error_response()),
            |_| AppConfig::default(),
        ))
}

/// An accepted connection (plain or TLS) with its count under the client's address,
/// uncounted when the connection is dropped.
struct Connection<S> {
    io: S,
    #[allow(dead_code)] // held for its Drop
    counted: Option<Counted>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Connection<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Connection<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// The answer to a request the expect step refused, sent instead of `100 Continue`.
pub struct ExpectRefused(Response<BoxBody>);

impl From<ExpectRefused> for Response<BoxBody> {
    fn from(refused: ExpectRefused) -> Self {
        refused.0
    }
}

/// `Expect: 100-continue`: a body declared over the limit is refused with the 413 now,
/// before the client is told to send it.
async fn expect_continue(req: Request, state: &AppState) -> Result<Request, ExpectRefused> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(n) if n > state.body_limit as u64 => {
            let peer = req.peer_addr().map(|a| a.ip());
            let response = routes::too_large_unread(req.path(), req.headers(), peer, state).await;
            Err(ExpectRefused(response.into()))
        }
        _ => Ok(req),
    }
}

/// Both `Content-Length` and `Transfer-Encoding`: which one frames the body depends on
/// who reads it, so the request is refused and the connection closed (RFC 9112 §6.1).
async fn refuse_ambiguous_framing(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let headers = req.headers();
    if headers.contains_key(header::CONTENT_LENGTH)
        && headers.contains_key(header::TRANSFER_ENCODING)
    {
        let response = match req.app_data::<web::Data<AppState>>() {
            Some(state) if routes::has_front_door(req.path()) => {
                routes::ambiguous_framing(req.request(), state).await
            }
            _ => {
                let mut response = HttpResponse::BadRequest()
                    .content_type("text/plain; charset=utf-8")
                    .body("Content-Length and Transfer-Encoding together are not accepted\n");
                response
                    .head_mut()
                    .set_connection_type(actix_web::http::ConnectionType::Close);
                response
            }
        };
        return Ok(req.into_response(response).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// Open connections per client address.
struct ConnectionLimiter {
    max: usize,
    exempt: Vec<IpNet>,
    open: Mutex<HashMap<String, usize>>,
}

/// One counted connection; uncounted when the connection (and with it the extensions
/// actix keeps for it) is dropped.
struct Counted {
    limiter: Arc<ConnectionLimiter>,
    key: String,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

impl ConnectionLimiter {
    /// Counts a new connection (`None`: an exempt peer, not counted), or shuts it at once
    /// when its address is at the limit.
    fn admit(self: &Arc<Self>, io: &TcpStream) -> Result<Option<Counted>, DispatchError> {
        let Ok(peer) = io.peer_addr() else {
            return Ok(None);
        };
        let client = ClientAddress::new(peer.ip());
        if self.exempt.iter().any(|net| net.contains(&client.ip())) {
            return Ok(None);
        }
        let key = client.key().to_string();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(key.clone()).or_insert(0);
        if *n >= self.max {
            drop(open);
            log::debug!("connection from {key} refused: {} open already", self.max);
            // Both directions, so the client reads the end at once.
            let _ = socket2::SockRef::from(io).shutdown(std::net::Shutdown::Both);
            return Err(DispatchError::DisconnectTimeout);
        }
        *n += 1;
        Ok(Some(Counted {
            limiter: self.clone(),
            key,
        }))
    }
}
