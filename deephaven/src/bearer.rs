//! The token-carrying channel. [`BearerService`] wraps the tonic channel as a tower service: it puts the current
//! `authorization` value on every request (gRPC and Flight alike) and adopts any new `Bearer` token found in response
//! headers or trailers (trailers-only error replies arrive as headers), so a rotated token is picked up whichever call
//! happens to carry it. Tokens seen before are never re-adopted, so a late reply cannot roll the token back.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use tonic::transport::Channel;
use tower_service::Service;

/// How many superseded tokens are remembered to refuse a rollback.
const RETIRED_TOKENS: usize = 8;

/// The session's current `authorization` value and its history.
#[derive(Debug)]
pub(crate) struct TokenState {
    inner: Mutex<Tokens>,
    rotations: AtomicU64,
}

#[derive(Debug)]
struct Tokens {
    current: HeaderValue,
    authenticated: bool,
    retired: VecDeque<HeaderValue>,
}

impl TokenState {
    /// Starts with the login credential; the first Bearer token replaces it.
    pub(crate) fn new(login: HeaderValue) -> Self {
        Self {
            inner: Mutex::new(Tokens {
                current: login,
                authenticated: false,
                retired: VecDeque::with_capacity(RETIRED_TOKENS),
            }),
            rotations: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tokens> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The value to send as `authorization`.
    pub(crate) fn header(&self) -> HeaderValue {
        self.lock().current.clone()
    }

    /// True once the server has issued a Bearer token for this session.
    pub(crate) fn is_authenticated(&self) -> bool {
        self.lock().authenticated
    }

    /// Tokens adopted after the first one (server-side rotations seen).
    pub(crate) fn rotations(&self) -> u64 {
        self.rotations.load(Ordering::Relaxed)
    }

    /// Adopts the Bearer token in `headers`, if any and new.
    pub(crate) fn observe(&self, headers: &HeaderMap) {
        for value in headers.get_all(AUTHORIZATION) {
            if value.as_bytes().starts_with(b"Bearer ") {
                self.adopt(value);
            }
        }
    }

    fn adopt(&self, value: &HeaderValue) {
        let mut tokens = self.lock();
        if tokens.current == value || tokens.retired.contains(value) {
            return;
        }
        let mut value = value.clone();
        value.set_sensitive(true);
        let previous = std::mem::replace(&mut tokens.current, value);
        if tokens.authenticated {
            if tokens.retired.len() == RETIRED_TOKENS {
                tokens.retired.pop_front();
            }
            tokens.retired.push_back(previous);
            let rotations = self.rotations.fetch_add(1, Ordering::Relaxed) + 1;
            tracing::debug!(rotations, "adopted a rotated Deephaven session token");
        } else {
            tokens.authenticated = true;
            tracing::debug!("Deephaven session token issued");
        }
    }
}

/// A tonic channel that authenticates every call with the session's token.
#[derive(Clone, Debug)]
pub(crate) struct BearerService {
    channel: Channel,
    token: Arc<TokenState>,
}

impl BearerService {
    pub(crate) fn new(channel: Channel, token: Arc<TokenState>) -> Self {
        Self { channel, token }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<http::Request<tonic::body::Body>> for BearerService {
    type Response = http::Response<TokenBody>;
    type Error = tonic::transport::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.channel.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        request.headers_mut().insert(AUTHORIZATION, self.token.header());
        // Call the instance that was driven to readiness; keep a fresh clone.
        let fresh = self.channel.clone();
        let mut ready = std::mem::replace(&mut self.channel, fresh);
        let token = Arc::clone(&self.token);
        Box::pin(async move {
            let response = ready.call(request).await?;
            token.observe(response.headers());
            Ok(response.map(|body| TokenBody { body, token }))
        })
    }
}

/// A response body that adopts a Bearer token found in the trailers.
#[derive(Debug)]
pub(crate) struct TokenBody {
    body: tonic::body::Body,
    token: Arc<TokenState>,
}

impl Body for TokenBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(trailers) = frame.trailers_ref() {
                self.token.observe(trailers);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &'static str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(AUTHORIZATION, HeaderValue::from_static(value));
        map
    }

    #[test]
    fn first_bearer_authenticates_later_ones_rotate() {
        let state = TokenState::new(HeaderValue::from_static("Anonymous"));
        assert!(!state.is_authenticated());
        assert_eq!(state.header(), "Anonymous");

        state.observe(&headers("Bearer one"));
        assert!(state.is_authenticated());
        assert_eq!(state.header(), "Bearer one");
        assert_eq!(state.rotations(), 0);

        state.observe(&headers("Bearer one"));
        assert_eq!(state.rotations(), 0, "the same token is not a rotation");

        state.observe(&headers("Bearer two"));
        assert_eq!(state.header(), "Bearer two");
        assert_eq!(state.rotations(), 1);
        assert!(state.header().is_sensitive());
    }

    #[test]
    fn superseded_tokens_are_never_readopted() {
        let state = TokenState::new(HeaderValue::from_static("Anonymous"));
        state.observe(&headers("Bearer one"));
        state.observe(&headers("Bearer two"));
        state.observe(&headers("Bearer one"));
        assert_eq!(state.header(), "Bearer two");
        assert_eq!(state.rotations(), 1);
    }

    #[test]
    fn non_bearer_values_are_ignored() {
        let state = TokenState::new(HeaderValue::from_static("Anonymous"));
        state.observe(&headers("Basic abc"));
        state.observe(&HeaderMap::new());
        assert!(!state.is_authenticated());
        assert_eq!(state.header(), "Anonymous");
    }
}
