//! A [`tower`](https://docs.rs/tower) layer that times every request of an HTTP service as a
//! [`scope`](crate::scope): axum's `Router::layer`, or any tower service of `http::Request`s
//! (feature `tower`).
//!
//! Each request is a scope named `"{METHOD} {route}"`: the route is axum's `MatchedPath` when
//! present (feature `axum`), else the request path with numeric, UUID and long hexadecimal
//! segments collapsed to `:id` — never one group per distinct URL. A layer names at most
//! [`MAX_ROUTES`] distinct routes; later ones are counted as `"{METHOD} (other routes)"`. The
//! scope's group gets the request-latency histogram (from the call to the response being
//! ready) and the count of responses per status class. A gRPC call that fails before its body
//! (tonic answers with `grpc-status` in the headers) counts under the HTTP class of its gRPC
//! code ([`grpc_as_http`]); a status sent in the trailers after a streamed body is not seen, and
//! the call counts as its HTTP status.
//!
//! ```
//! use taskscope::tower::TaskscopeLayer;
//! use tower_layer::Layer;
//! use tower_service::Service;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let guard = taskscope::Builder::new().no_server().init();
//! // Any `Service<http::Request<B>, Response = http::Response<R>>`: here a closure.
//! let hello = tower_util_service(|_req: http::Request<()>| async {
//!     Ok::<_, std::convert::Infallible>(http::Response::new("hello"))
//! });
//! let mut service = TaskscopeLayer::new().layer(hello);
//! let request = http::Request::get("/users/42").body(()).unwrap();
//! service.call(request).await.unwrap();
//!
//! let snap = guard.finish().unwrap();
//! let route = snap.scope("GET /users/:id").unwrap();
//! assert_eq!((route.latency_ns.count(), route.responses.success), (1, 1));
//! # }
//! # fn tower_util_service<F, Fut, Req, Res, E>(f: F) -> impl Service<Req, Response = Res, Error = E, Future = Fut> + Clone
//! # where F: FnMut(Req) -> Fut + Clone, Fut: std::future::Future<Output = Result<Res, E>> {
//! #     #[derive(Clone)] struct S<F>(F);
//! #     impl<F: FnMut(Req) -> Fut, Fut, Req, Res, E> Service<Req> for S<F> where Fut: std::future::Future<Output = Result<Res, E>> {
//! #         type Response = Res; type Error = E; type Future = Fut;
//! #         fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), E>> { std::task::Poll::Ready(Ok(())) }
//! #         fn call(&mut self, r: Req) -> Fut { (self.0)(r) }
//! #     }
//! #     S(f)
//! # }
//! ```

use std::borrow::Cow;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::base::location::layer_location;
use crate::task::scope::{scope_at, Scope};

/// Distinct route names one layer keeps (see the module docs).
pub const MAX_ROUTES: usize = 512;

/// How a layer names a request's scope.
pub trait NameRequest: Clone {
    /// The scope name of this request.
    fn name<B>(&self, request: &Request<B>) -> Cow<'static, str>;
}

/// The default naming: `"{METHOD} {route}"` (see the module docs).
#[derive(Clone, Copy, Debug, Default)]
pub struct RouteName;

impl NameRequest for RouteName {
    fn name<B>(&self, request: &Request<B>) -> Cow<'static, str> {
        let method = request.method().as_str();
        #[cfg(feature = "axum")]
        if let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>() {
            return Cow::Owned(format!("{method} {}", matched.as_str()));
        }
        Cow::Owned(format!("{method} {}", collapse_path(request.uri().path())))
    }
}

/// Names requests with a closure of the request's head: [`TaskscopeLayer::name_with`].
#[derive(Clone)]
pub struct NameWith<F>(F);

impl<F> std::fmt::Debug for NameWith<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NameWith(..)")
    }
}

impl<F> NameRequest for NameWith<F>
where
    F: Fn(&http::Method, &http::Uri, &http::Extensions) -> String + Clone,
{
    fn name<B>(&self, request: &Request<B>) -> Cow<'static, str> {
        Cow::Owned((self.0)(
            request.method(),
            request.uri(),
            request.extensions(),
        ))
    }
}

/// A path with its identifier-like segments (all digits, a UUID, 16 or more hex digits)
/// replaced by `:id`.
pub fn collapse_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len().min(256));
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.push('/');
        }
        if is_identifier(segment) {
            out.push_str(":id");
        } else {
            out.push_str(segment);
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn is_identifier(segment: &str) -> bool {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    let uuid = segment.len() == 36 && {
        let parts: Vec<&str> = segment.split('-').collect();
        parts.len() == 5
            && parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
            && parts.iter().all(|p| hex(p))
    };
    digits || uuid || (segment.len() >= 16 && hex(segment))
}

/// The routes a layer (and every service it made) has named, bounded by `MAX_ROUTES`.
#[derive(Debug, Default)]
struct Routes(RwLock<HashSet<Box<str>, foldhash::fast::RandomState>>);

impl Routes {
    /// `name` if it is known or there is room for it, else the method's overflow name.
    fn admit<B>(&self, name: Cow<'static, str>, request: &Request<B>) -> Cow<'static, str> {
        if self
            .0
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&*name)
        {
            return name;
        }
        let mut routes = self.0.write().unwrap_or_else(|e| e.into_inner());
        if routes.len() < MAX_ROUTES {
            routes.insert(name.as_ref().into());
            return name;
        }
        if routes.contains(&*name) {
            return name;
        }
        Cow::Owned(format!("{} (other routes)", request.method()))
    }
}

/// The layer: wraps a service so that each request is a scope (see the module docs).
#[derive(Debug, Clone)]
pub struct TaskscopeLayer<N = RouteName> {
    namer: N,
    routes: Arc<Routes>,
}

impl TaskscopeLayer {
    /// Names requests `"{METHOD} {route}"`.
    pub fn new() -> Self {
        TaskscopeLayer {
            namer: RouteName,
            routes: Arc::default(),
        }
    }

    /// Names requests with `name(method, uri, extensions)` instead (still bounded to
    /// [`MAX_ROUTES`] distinct names per layer).
    ///
    /// ```
    /// let layer = taskscope::tower::TaskscopeLayer::name_with(|method, uri, _| {
    ///     format!("{method} {}", uri.path().split('/').nth(1).unwrap_or(""))
    /// });
    /// # let _ = layer;
    /// ```
    pub fn name_with<F>(name: F) -> TaskscopeLayer<NameWith<F>>
    where
        F: Fn(&http::Method, &http::Uri, &http::Extensions) -> String + Clone,
    {
        TaskscopeLayer {
            namer: NameWith(name),
            routes: Arc::default(),
        }
    }
}

impl Default for TaskscopeLayer {
    fn default() -> Self {
        TaskscopeLayer::new()
    }
}

impl<S, N: NameRequest> Layer<S> for TaskscopeLayer<N> {
    type Service = TaskscopeService<S, N>;

    fn layer(&self, inner: S) -> Self::Service {
        TaskscopeService {
            inner,
            namer: self.namer.clone(),
            routes: self.routes.clone(),
        }
    }
}

/// A service whose requests are scopes: made by [`TaskscopeLayer`].
#[derive(Debug, Clone)]
pub struct TaskscopeService<S, N = RouteName> {
    inner: S,
    namer: N,
    routes: Arc<Routes>,
}

impl<S, N, B, R> Service<Request<B>> for TaskscopeService<S, N>
where
    S: Service<Request<B>, Response = Response<R>>,
    N: NameRequest,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let name = if crate::state::shared::active().is_some() {
            let name = self.namer.name(&request);
            self.routes.admit(name, &request)
        } else {
            Cow::Borrowed("")
        };
        let response = self.inner.call(request);
        ResponseFuture {
            scope: scope_at(name, layer_location(), response),
        }
    }
}

pin_project! {
    /// The response future of a [`TaskscopeService`]: the inner service's, timed as a scope.
    #[derive(Debug)]
    pub struct ResponseFuture<F> {
        #[pin]
        scope: Scope<F>,
    }
}

impl<F, R, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project()
            .scope
            .poll_with(cx, |result| result.as_ref().map_or(0, response_status))
    }
}

/// The status a response counts under: its HTTP status, or for a gRPC response that carries
/// its `grpc-status` in the headers (tonic's "trailers-only" answer of a failed call), the
/// HTTP status that gRPC code stands for.
fn response_status<R>(response: &Response<R>) -> u16 {
    let grpc = response
        .headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u8>().ok());
    match grpc {
        Some(code) => grpc_as_http(code),
        None => response.status().as_u16(),
    }
}

/// The HTTP status of a gRPC status code, as in the gRPC-HTTP mapping of Google's API design
/// guide (`google.rpc.Code`): `NOT_FOUND` → 404, `INTERNAL` → 500, ...
pub fn grpc_as_http(code: u8) -> u16 {
    match code {
        0 => 200,
        1 => 499,
        3 | 9 | 11 => 400,
        4 => 504,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        12 => 501,
        14 => 503,
        16 => 401,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_collapse_and_words_stay() {
        assert_eq!(collapse_path("/users/42/posts/7"), "/users/:id/posts/:id");
        assert_eq!(
            collapse_path("/o/3f2504e0-4f89-11d3-9a0c-0305e82c3301"),
            "/o/:id"
        );
        assert_eq!(collapse_path("/blob/0123456789abcdef01"), "/blob/:id");
        assert_eq!(collapse_path("/report"), "/report");
        assert_eq!(collapse_path("/v2/cafe"), "/v2/cafe");
        assert_eq!(collapse_path(""), "/");
        assert_eq!(collapse_path("/"), "/");
    }

    #[test]
    fn a_layer_keeps_a_bounded_number_of_routes() {
        let routes = Routes::default();
        let request = Request::get("/").body(()).unwrap();
        for i in 0..MAX_ROUTES * 3 {
            routes.admit(Cow::Owned(format!("GET /page-{i}")), &request);
        }
        assert_eq!(routes.0.read().unwrap().len(), MAX_ROUTES);
        assert_eq!(
            routes.admit(Cow::Borrowed("GET /page-0"), &request),
            "GET /page-0"
        );
        assert_eq!(
            routes.admit(Cow::Borrowed("GET /page-new"), &request),
            "GET (other routes)"
        );
    }
}
