//! Counts every Kubernetes API request a berth process makes, by verb and
//! resource (`berth_*_kube_requests_total`), as a tower layer under the
//! kube client: the honest figure for "API requests per claim", from the
//! client's side, whatever else talks to the API server.

use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};

use super::metrics::Metrics;

/// The verb and resource of a request, as the API server's
/// `apiserver_request_total` names them (`list`/`watch`/`get`, `create`,
/// `update`, `patch`, `delete`; `persistentvolumeclaims`, with `/status`
/// for the subresource).
pub fn classify(method: &http::Method, uri: &http::Uri) -> (&'static str, String) {
    let path = uri.path();
    let watch = uri
        .query()
        .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    // /api/v1/... or /apis/<group>/<version>/...
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let skip = match parts.first() {
        Some(&"api") => 2,
        Some(&"apis") => 3,
        _ => parts.len(),
    };
    parts.drain(..skip.min(parts.len()));
    if parts.first() == Some(&"namespaces") && parts.len() >= 3 {
        parts.drain(..2);
    }
    let resource = match parts.as_slice() {
        [] => String::new(),
        [r] | [r, _] => r.to_string(),
        [r, _, sub, ..] => format!("{r}/{sub}"),
    };
    let named = parts.len() >= 2;
    let verb = match *method {
        http::Method::GET if watch => "watch",
        http::Method::GET if named => "get",
        http::Method::GET => "list",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::PATCH => "patch",
        http::Method::DELETE if named => "delete",
        http::Method::DELETE => "deletecollection",
        _ => "other",
    };
    (verb, resource)
}

/// Wraps a service so every request is counted in `metrics`.
#[derive(Clone)]
pub struct CountLayer {
    metrics: Arc<Metrics>,
}

impl CountLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        CountLayer { metrics }
    }
}

impl<S> Layer<S> for CountLayer {
    type Service = Count<S>;

    fn layer(&self, inner: S) -> Count<S> {
        Count {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Count<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B> Service<http::Request<B>> for Count<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> S::Future {
        let (verb, resource) = classify(req.method(), req.uri());
        self.metrics.count_request(verb, resource);
        self.inner.call(req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_named_like_the_api_servers_metrics() {
        let cases = [
            (
                "GET",
                "/api/v1/persistentvolumeclaims?watch=true&resourceVersion=5",
                "watch",
                "persistentvolumeclaims",
            ),
            (
                "GET",
                "/api/v1/persistentvolumeclaims?limit=500",
                "list",
                "persistentvolumeclaims",
            ),
            (
                "GET",
                "/api/v1/namespaces/ns/persistentvolumeclaims/data",
                "get",
                "persistentvolumeclaims",
            ),
            (
                "PATCH",
                "/api/v1/namespaces/ns/persistentvolumeclaims/data",
                "patch",
                "persistentvolumeclaims",
            ),
            (
                "PATCH",
                "/api/v1/namespaces/ns/persistentvolumeclaims/data/status",
                "patch",
                "persistentvolumeclaims/status",
            ),
            (
                "POST",
                "/api/v1/persistentvolumes",
                "create",
                "persistentvolumes",
            ),
            (
                "PUT",
                "/api/v1/persistentvolumes/pvc-1",
                "update",
                "persistentvolumes",
            ),
            (
                "DELETE",
                "/api/v1/persistentvolumes/pvc-1",
                "delete",
                "persistentvolumes",
            ),
            (
                "POST",
                "/apis/events.k8s.io/v1/namespaces/ns/events",
                "create",
                "events",
            ),
            (
                "PUT",
                "/apis/coordination.k8s.io/v1/namespaces/berth-system/leases/l",
                "update",
                "leases",
            ),
            (
                "GET",
                "/apis/storage.k8s.io/v1/csistoragecapacities?watch=1",
                "watch",
                "csistoragecapacities",
            ),
        ];
        for (method, uri, verb, resource) in cases {
            let m: http::Method = method.parse().expect("method");
            let u: http::Uri = uri.parse().expect("uri");
            assert_eq!(
                classify(&m, &u),
                (verb, resource.to_string()),
                "{method} {uri}"
            );
        }
    }
}
