//! The kubelet's plugin registration, served by the node agent itself (the
//! job of node-driver-registrar, one sidecar image fewer per node).
//!
//! The kubelet watches its `plugins_registry` directory for sockets; on
//! ours it calls `GetInfo` (we are a CSI plugin named after the driver,
//! reached at the CSI socket), registers the driver (Node annotation and
//! topology labels, CSINode entry with the volume limit) and tells us the
//! outcome with `NotifyRegistrationStatus`, which we log and expose in
//! `/readyz` and the `kubelet_registered` metric. When the socket vanishes
//! (the kubelet's directory was recreated, say by a kubelet reinstall) it
//! is made again, which makes the kubelet register the driver again.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use csi_proto::pluginregistration::registration_server::{Registration, RegistrationServer};
use csi_proto::pluginregistration::{
    InfoRequest, PluginInfo, RegistrationStatus, RegistrationStatusResponse,
};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

use crate::controller::metrics::Metrics;
use crate::csi::CsiError;

/// The readiness check this module reports.
pub const CHECK: &str = "kubelet-registration";
/// How often the socket is checked for having been removed.
const RECHECK: Duration = Duration::from_secs(1);

pub struct RegistrationService {
    driver: String,
    endpoint: String,
    metrics: Arc<Metrics>,
}

impl RegistrationService {
    /// `endpoint` is the CSI socket's path as the kubelet sees it.
    pub fn new(driver: &str, endpoint: &str, metrics: Arc<Metrics>) -> Self {
        RegistrationService {
            driver: driver.to_string(),
            endpoint: endpoint.to_string(),
            metrics,
        }
    }
}

#[tonic::async_trait]
impl Registration for RegistrationService {
    async fn get_info(&self, _req: Request<InfoRequest>) -> Result<Response<PluginInfo>, Status> {
        tracing::info!(driver = %self.driver, endpoint = %self.endpoint, "the kubelet asked who we are");
        Ok(Response::new(PluginInfo {
            r#type: "CSIPlugin".into(),
            name: self.driver.clone(),
            endpoint: self.endpoint.clone(),
            supported_versions: vec!["1.0.0".into()],
        }))
    }

    async fn notify_registration_status(
        &self,
        req: Request<RegistrationStatus>,
    ) -> Result<Response<RegistrationStatusResponse>, Status> {
        let status = req.into_inner();
        if status.plugin_registered {
            tracing::info!(driver = %self.driver, "registered with the kubelet");
            self.metrics.kubelet_registered.set(1);
            self.metrics.set_check(CHECK, Ok(()));
        } else {
            tracing::error!(driver = %self.driver, error = %status.error, "the kubelet refused the registration");
            self.metrics.kubelet_registered.set(0);
            self.metrics.set_check(
                CHECK,
                Err(format!("the kubelet refused it: {}", status.error)),
            );
        }
        Ok(Response::new(RegistrationStatusResponse {}))
    }
}

/// The inode a path has now, if it is there.
fn inode(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path).ok().map(|m| m.ino())
}

/// Serves registration on `path` until `shutdown` turns true, making the
/// socket again whenever it disappears.
pub async fn run(
    path: PathBuf,
    service: RegistrationService,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), CsiError> {
    let service = Arc::new(service);
    loop {
        service.metrics.set_check(
            CHECK,
            Err("waiting for the kubelet to register the driver".into()),
        );
        service.metrics.kubelet_registered.set(0);
        let listener = crate::csi::bind_socket(&path)?;
        let ours = inode(&path);
        tracing::info!(path = %path.display(), "serving kubelet plugin registration");
        let gone = {
            let path = path.clone();
            async move {
                loop {
                    tokio::time::sleep(RECHECK).await;
                    if inode(&path) != ours {
                        return;
                    }
                }
            }
        };
        // The kubelet's connections reach the server through the authority
        // relay (authority.rs), over in-process pipes.
        let (pipes_tx, pipes_rx) = tokio::sync::mpsc::channel::<tokio::io::DuplexStream>(8);
        let accept = async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    continue;
                };
                let (ours, theirs) = tokio::io::duplex(64 * 1024);
                if pipes_tx.send(theirs).await.is_err() {
                    return;
                }
                tokio::spawn(async move {
                    if let Err(e) = super::authority::relay(conn, ours).await {
                        tracing::warn!(error = %e, "kubelet registration connection failed");
                    }
                });
            }
        };
        let mut stop = shutdown.clone();
        let incoming =
            tokio_stream::wrappers::ReceiverStream::new(pipes_rx).map(Ok::<_, std::io::Error>);
        let served = tonic::transport::Server::builder()
            .add_service(RegistrationServer::from_arc(service.clone()))
            .serve_with_incoming_shutdown(incoming, async move {
                tokio::select! {
                    _ = gone => {}
                    _ = stop.wait_for(|s| *s) => {}
                    _ = accept => {}
                }
            })
            .await;
        if *shutdown.borrow() {
            if inode(&path) == ours {
                let _ = std::fs::remove_file(&path);
            }
            return Ok(());
        }
        match served {
            Ok(()) => {
                tracing::warn!(path = %path.display(), "registration socket removed; making it again")
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "registration server failed; restarting it");
                tokio::time::sleep(RECHECK).await;
            }
        }
    }
}
