//! The response future: the inner service's, or the layer's own answer.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::Response;
use pin_project_lite::pin_project;

/// A boxed future, for the one path that must wait before deciding: a bounded cache reading a
/// token it does not hold.
pub(crate) type Boxed<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// The future [`crate::TokenAuth`] returns.
    pub struct ResponseFuture<F: Future, B> {
        #[pin]
        kind: Kind<F, B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F: Future, B> {
        Inner { #[pin] future: F },
        Rejected { response: Option<Response<B>> },
        Fetching { future: Boxed<F::Output> },
    }
}

impl<F: Future, B> ResponseFuture<F, B> {
    pub(crate) fn fetching(future: Boxed<F::Output>) -> Self {
        Self { kind: Kind::Fetching { future } }
    }

    pub(crate) fn inner(future: F) -> Self {
        Self { kind: Kind::Inner { future } }
    }

    pub(crate) fn rejected(response: Response<B>) -> Self {
        Self { kind: Kind::Rejected { response: Some(response) } }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx),
            KindProj::Fetching { future } => future.as_mut().poll(cx),
            KindProj::Rejected { response } => match response.take() {
                Some(r) => Poll::Ready(Ok(r)),
                // Polled after completion: the contract allows anything but unsafety; stay pending.
                None => Poll::Pending,
            },
        }
    }
}

impl<F: Future, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
