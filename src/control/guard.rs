//! What keeps the control server from being used against the host it runs on: a cap on
//! connections and a deadline on each (so half-sent requests cannot take every file descriptor),
//! a `Host` check (so a web page in a local browser cannot read events through DNS rebinding),
//! and security headers on every response.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::config::ControlGuard;

/// A connection lives at most this many idle timeouts, however slowly it keeps sending.
const MAX_AGE_IDLE_TIMEOUTS: u32 = 6;
/// After a failed `accept` (out of file descriptors): wait this long before the next one.
pub(super) const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The TCP listener, accepting at most `max_connections` connections at a time; a connection
/// beyond that is closed as it arrives (and counted), which gives its descriptor back at once.
pub struct Guarded {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    idle_timeout: Duration,
    rejected: Arc<AtomicU64>,
}

impl Guarded {
    pub fn new(inner: TcpListener, cfg: &ControlGuard, rejected: Arc<AtomicU64>) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(cfg.max_connections.get())),
            idle_timeout: cfg.idle_timeout,
            rejected,
        }
    }
}

impl axum::serve::Listener for Guarded {
    type Io = GuardedIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (GuardedIo, SocketAddr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => match self.slots.clone().try_acquire_owned() {
                    Ok(permit) => return (GuardedIo::new(stream, permit, self.idle_timeout), addr),
                    Err(_) => {
                        self.rejected.fetch_add(1, Relaxed);
                        drop(stream);
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "control server: accept failed; retrying");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection that holds its slot until it closes, and whose reads fail once it has sent
/// nothing for the idle timeout or has lived six of them (hyper then
/// closes it).
pub struct GuardedIo<S = TcpStream> {
    io: S,
    _slot: OwnedSemaphorePermit,
    idle_timeout: Duration,
    deadline: Pin<Box<Sleep>>,
    end: Instant,
}

impl<S> GuardedIo<S> {
    pub(super) fn new(io: S, slot: OwnedSemaphorePermit, idle_timeout: Duration) -> Self {
        let now = Instant::now();
        let end = now + idle_timeout * MAX_AGE_IDLE_TIMEOUTS;
        Self {
            io,
            _slot: slot,
            idle_timeout,
            deadline: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
            end,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let next = (Instant::now() + self.idle_timeout).min(self.end);
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "control connection idle or too old",
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The names a request may give in `Host`.
#[derive(Debug, Clone)]
pub struct Hosts {
    allowed: Arc<[String]>,
}

impl Hosts {
    /// `localhost`, the loopback addresses, the listen address and `extra` (lowercase).
    pub fn new(listen: Option<SocketAddr>, extra: &[String]) -> Self {
        let mut allowed: Vec<String> = ["localhost", "127.0.0.1", "::1"]
            .iter()
            .map(ToString::to_string)
            .collect();
        if let Some(a) = listen {
            allowed.push(a.ip().to_string());
        }
        allowed.extend(extra.iter().cloned());
        Self {
            allowed: allowed.into(),
        }
    }

    /// Whether a `Host` header value names this server (any port).
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let name = match host.strip_prefix('[') {
            // [::1]:9464
            Some(rest) => rest.split(']').next().unwrap_or_default(),
            None => match host.rsplit_once(':') {
                // name:port, but not a bare IPv6 address
                Some((name, port))
                    if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    name
                }
                _ => host.as_str(),
            },
        };
        let name = name.trim_end_matches('.');
        self.allowed.iter().any(|a| a == name)
    }
}

/// 421 for a request whose `Host` is not one of this server's names (requests without one,
/// as HTTP/1.0 allows, are served).
pub async fn check_host(State(hosts): State<Hosts>, req: Request, next: Next) -> Response {
    if let Some(h) = req.headers().get(header::HOST) {
        let ok = h.to_str().is_ok_and(|h| hosts.allows(h));
        if !ok {
            return (
                StatusCode::MISDIRECTED_REQUEST,
                "this control server answers only to localhost and the names in \
                 control.allowed_hosts\n",
            )
                .into_response();
        }
    }
    next.run(req).await
}

/// The dashboard's own script and styles only, no framing, no sniffing, no referrer.
const CSP: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
    style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
    frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Security headers on every response.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_allow_loopback_names_the_listen_address_and_configured_ones() {
        let h = Hosts::new(
            Some("10.0.0.5:9464".parse().unwrap()),
            &["metrics.internal".into()],
        );
        for ok in [
            "localhost",
            "localhost:9464",
            "LOCALHOST:1",
            "localhost.",
            "127.0.0.1:9464",
            "[::1]:9464",
            "::1",
            "10.0.0.5:9464",
            "metrics.internal:80",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "attacker.example",
            "attacker.example:9464",
            "localhost.attacker.example",
            "127.0.0.2:9464",
            "[::2]:9464",
            "",
            "metrics.internal.evil",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
    }
}
