//! The controller's side of the CSI socket: a tonic client over a unix
//! socket. The channel is lazy and reconnects by itself, so a driver restart
//! only fails the calls made while it is down (they are retried as transient).

use std::path::PathBuf;
use std::time::Duration;

use csi_proto::controller_client::ControllerClient;
use csi_proto::identity_client::IdentityClient;
use tonic::transport::Channel;

/// How long one CreateVolume/DeleteVolume may take before it counts as a
/// transient failure (the driver keeps working; the retry is idempotent).
const RPC_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum CsiClientError {
    #[error("CSI endpoint {0:?} must look like unix:///path/to/csi.sock")]
    Endpoint(String),
    #[error("connecting to the CSI driver: {0}")]
    Connect(#[from] tonic::transport::Error),
}

#[derive(Clone)]
pub struct CsiClient {
    channel: Channel,
}

impl CsiClient {
    /// A lazily connected client for `unix:///path`.
    pub fn new(endpoint: &str) -> Result<Self, CsiClientError> {
        let path = endpoint
            .strip_prefix("unix://")
            .filter(|p| p.starts_with('/'))
            .map(PathBuf::from)
            .ok_or_else(|| CsiClientError::Endpoint(endpoint.to_string()))?;
        let channel = csi_proto::connect_unix_lazy(path, |e| {
            e.timeout(RPC_TIMEOUT)
                .connect_timeout(Duration::from_secs(5))
        });
        Ok(CsiClient { channel })
    }

    /// The driver's name (GetPluginInfo), written into every PV's `spec.csi.driver`.
    pub async fn driver_name(&self) -> Result<String, tonic::Status> {
        let resp = IdentityClient::new(self.channel.clone())
            .get_plugin_info(csi_proto::GetPluginInfoRequest {})
            .await?;
        Ok(resp.into_inner().name)
    }

    pub async fn create_volume(
        &self,
        req: csi_proto::CreateVolumeRequest,
    ) -> Result<csi_proto::Volume, tonic::Status> {
        let resp = ControllerClient::new(self.channel.clone())
            .create_volume(req)
            .await?;
        resp.into_inner()
            .volume
            .ok_or_else(|| tonic::Status::internal("CreateVolume returned no volume"))
    }

    /// DeleteVolume; a volume the driver no longer knows counts as deleted.
    pub async fn delete_volume(&self, volume_id: &str) -> Result<(), tonic::Status> {
        let req = csi_proto::DeleteVolumeRequest {
            volume_id: volume_id.to_string(),
            ..Default::default()
        };
        match ControllerClient::new(self.channel.clone())
            .delete_volume(req)
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(s),
        }
    }

    /// ControllerExpandVolume to at least `required_bytes`.
    pub async fn expand_volume(
        &self,
        volume_id: &str,
        required_bytes: i64,
        capability: Option<csi_proto::VolumeCapability>,
    ) -> Result<csi_proto::ControllerExpandVolumeResponse, tonic::Status> {
        let req = csi_proto::ControllerExpandVolumeRequest {
            volume_id: volume_id.to_string(),
            capacity_range: Some(csi_proto::CapacityRange {
                required_bytes,
                limit_bytes: 0,
            }),
            volume_capability: capability,
            ..Default::default()
        };
        Ok(ControllerClient::new(self.channel.clone())
            .controller_expand_volume(req)
            .await?
            .into_inner())
    }
}
