//! CSI v1 protocol (package `csi.v1`, spec v1.12) for berth: message types
//! plus tonic server and client stubs for the Identity, Controller, Node and
//! GroupController services, and the kubelet's plugin registration API.
//! Generated at build time from `proto/`.

/// Everything in the `csi.v1` protobuf package.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("csi.v1");
}

pub use v1::*;

/// The kubelet's plugin registration API (`pluginregistration`), which a
/// CSI node plugin serves on a socket in the kubelet's `plugins_registry`
/// directory so the kubelet registers it.
pub mod pluginregistration {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("pluginregistration");
}

/// A tonic endpoint whose connections go to a CSI driver's unix socket.
/// CSI drivers listen on unix sockets; tonic wants a URI anyway, so the
/// placeholder one below is never dialled.
fn unix_endpoint() -> tonic::transport::Endpoint {
    tonic::transport::Endpoint::from_static("http://[::1]:1")
}

fn unix_connector(
    path: std::path::PathBuf,
) -> impl tower::Service<
    tonic::transport::Uri,
    Response = hyper_util::rt::TokioIo<tokio::net::UnixStream>,
    Error = std::io::Error,
    Future = impl Send,
> + Clone {
    tower::service_fn(move |_| {
        let path = path.clone();
        async move {
            let stream = tokio::net::UnixStream::connect(path).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    })
}

/// Connects to the driver socket at `path` now.
pub async fn connect_unix(
    path: impl Into<std::path::PathBuf>,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    unix_endpoint()
        .connect_with_connector(unix_connector(path.into()))
        .await
}

/// A channel that connects to the driver socket at `path` on first use;
/// `configure` sets timeouts and the like on the endpoint.
pub fn connect_unix_lazy(
    path: impl Into<std::path::PathBuf>,
    configure: impl FnOnce(tonic::transport::Endpoint) -> tonic::transport::Endpoint,
) -> tonic::transport::Channel {
    configure(unix_endpoint()).connect_with_connector_lazy(unix_connector(path.into()))
}
