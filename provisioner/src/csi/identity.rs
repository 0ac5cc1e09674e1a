//! CSI Identity service: plugin name/version, advertised plugin
//! capabilities and readiness probe.

use csi::plugin_capability::{self, service, volume_expansion};
use csi_proto as csi;
use tonic::{Request, Response, Status};

use super::{Ctx, DRIVER_NAME};

pub struct IdentityService {
    ctx: Ctx,
}

impl IdentityService {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

#[tonic::async_trait]
impl csi::identity_server::Identity for IdentityService {
    async fn get_plugin_info(
        &self,
        _req: Request<csi::GetPluginInfoRequest>,
    ) -> Result<Response<csi::GetPluginInfoResponse>, Status> {
        self.ctx
            .rpc("GetPluginInfo", "", |_| {
                Ok(csi::GetPluginInfoResponse {
                    name: DRIVER_NAME.to_string(),
                    vendor_version: env!("CARGO_PKG_VERSION").to_string(),
                    manifest: Default::default(),
                })
            })
            .await
    }

    async fn get_plugin_capabilities(
        &self,
        _req: Request<csi::GetPluginCapabilitiesRequest>,
    ) -> Result<Response<csi::GetPluginCapabilitiesResponse>, Status> {
        self.ctx
            .rpc("GetPluginCapabilities", "", |d| {
                let svc = |t: service::Type| csi::PluginCapability {
                    r#type: Some(plugin_capability::Type::Service(
                        plugin_capability::Service { r#type: t as i32 },
                    )),
                };
                let mut caps = vec![svc(service::Type::VolumeAccessibilityConstraints)];
                if d.cfg.controller {
                    caps.push(svc(service::Type::ControllerService));
                }
                // Image-backed volumes can grow while staged (loop capacity
                // refresh + online fs grow), so expansion is ONLINE.
                caps.push(csi::PluginCapability {
                    r#type: Some(plugin_capability::Type::VolumeExpansion(
                        plugin_capability::VolumeExpansion {
                            r#type: volume_expansion::Type::Online as i32,
                        },
                    )),
                });
                Ok(csi::GetPluginCapabilitiesResponse { capabilities: caps })
            })
            .await
    }

    async fn probe(
        &self,
        _req: Request<csi::ProbeRequest>,
    ) -> Result<Response<csi::ProbeResponse>, Status> {
        self.ctx
            .rpc("Probe", "", |d| {
                Ok(csi::ProbeResponse {
                    ready: Some(d.store.healthy()),
                })
            })
            .await
    }
}
