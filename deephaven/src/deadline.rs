//! A deadline on every call as a whole. [`Deadline`] wraps the token-carrying channel: each call must have its
//! response headers *and* its whole body within the request timeout
//! ([`ClientConfig::with_request_timeout`](crate::ClientConfig::with_request_timeout)), counted from the moment it is
//! made.
//!
//! tonic's own `Endpoint::timeout` stops counting when the response headers arrive and does not count the time a
//! call waits for the connection. A server frozen between a unary reply's headers and its message (a SIGSTOP, a
//! long GC pause) would then leave that call, and whoever awaits it, waiting forever; seen as a publisher that
//! stayed "ready" for minutes beside a frozen Deephaven.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tonic::codegen::StdError;
use tonic::Status;
use tower_service::Service;

use crate::bearer::{BearerService, TokenBody};

/// The channel every call goes through: the session's token on each request, and a deadline on the whole call.
#[derive(Clone, Debug)]
pub(crate) struct Deadline {
    inner: BearerService,
    timeout: Duration,
}

impl Deadline {
    pub(crate) fn new(inner: BearerService, timeout: Duration) -> Self {
        Self { inner, timeout }
    }
}

fn expired(timeout: Duration) -> Status {
    Status::deadline_exceeded(format!("no complete answer within {timeout:?}"))
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<http::Request<tonic::body::Body>> for Deadline {
    type Response = http::Response<DeadlineBody>;
    type Error = StdError;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let timeout = self.timeout;
        let deadline = Instant::now() + timeout;
        let response = self.inner.call(request);
        Box::pin(async move {
            match tokio::time::timeout_at(deadline, response).await {
                Ok(response) => {
                    let response = response?;
                    Ok(response.map(|body| DeadlineBody::new(body, deadline, timeout)))
                }
                Err(_) => Err(Box::new(expired(timeout)) as StdError),
            }
        })
    }
}

/// A response body that fails with DEADLINE_EXCEEDED once the call's deadline has passed.
#[derive(Debug)]
pub(crate) struct DeadlineBody<B = TokenBody> {
    body: B,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl<B> DeadlineBody<B> {
    fn new(body: B, deadline: Instant, timeout: Duration) -> Self {
        Self { body, deadline: Box::pin(tokio::time::sleep_until(deadline)), timeout }
    }
}

impl<B: Body<Data = Bytes, Error = Status> + Unpin> Body for DeadlineBody<B> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(expired(self.timeout)))),
            Poll::Pending => Poll::Pending,
        }
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
    use http_body_util::BodyExt;

    /// A body whose first frame arrives after `delay` (a server that sent the headers, then froze).
    fn late_body(
        delay: Duration,
    ) -> http_body_util::StreamBody<impl futures::Stream<Item = Result<Frame<Bytes>, Status>>> {
        http_body_util::StreamBody::new(futures::stream::once(async move {
            tokio::time::sleep(delay).await;
            Ok(Frame::data(Bytes::from_static(b"late")))
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_still_missing_at_the_deadline_fails_with_deadline_exceeded() {
        let timeout = Duration::from_secs(5);
        let mut body =
            DeadlineBody::new(Box::pin(late_body(Duration::from_secs(3600))), Instant::now() + timeout, timeout);
        let frame = body.frame().await.expect("an answer, not the end of the body");
        assert_eq!(frame.expect_err("the deadline passed first").code(), tonic::Code::DeadlineExceeded);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_arrives_in_time_passes_through() {
        let timeout = Duration::from_secs(5);
        let mut body =
            DeadlineBody::new(Box::pin(late_body(Duration::from_secs(1))), Instant::now() + timeout, timeout);
        let frame = body.frame().await.expect("a frame").expect("in time");
        assert_eq!(frame.into_data().expect("data"), Bytes::from_static(b"late"));
    }
}
