//! CSI Node service: stage (loop-attach, format, mount), publish (bind,
//! read-only where asked), unpublish/unstage (unmount and remove what we
//! made), volume stats and online expansion. Staging is recorded in the
//! store before anything is attached so a crash mid-stage can be undone.

use std::path::{Path, PathBuf};

use csi::node_service_capability::rpc::Type as NodeCap;
use csi::volume_capability::AccessType;
use csi_proto as csi;
use tonic::{Request, Response, Status};

use super::controller::{mode_supported, summarize_caps};
use super::error::CsiError;
use super::paths::require_path;
use super::store::{Layout, StageRecord, StageState};
use super::usage::{self, Reading, Usage};
use super::volumes::{Driver, validate_id};
use super::{Ctx, format, loopdev, mount};

fn is_block(cap: &csi::VolumeCapability) -> bool {
    matches!(cap.access_type, Some(AccessType::Block(_)))
}

fn remove_target(path: &Path) -> Result<(), CsiError> {
    let result = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(CsiError::io(format!("removing {}", path.display())))
}

fn check_capability(
    cap: Option<&csi::VolumeCapability>,
) -> Result<&csi::VolumeCapability, CsiError> {
    let cap =
        cap.ok_or_else(|| CsiError::InvalidArgument("volume_capability is required".into()))?;
    summarize_caps(std::slice::from_ref(cap))?;
    if let Some(m) = &cap.access_mode
        && !mode_supported(m.mode)
    {
        return Err(CsiError::InvalidArgument(format!(
            "access mode {} is not supported",
            m.mode
        )));
    }
    Ok(cap)
}

/// The checks of a NodeStageVolume request that need neither the file
/// system nor the store: the staging path's syntax and the capability.
pub fn check_stage_request(
    req: &csi::NodeStageVolumeRequest,
) -> Result<(PathBuf, &csi::VolumeCapability), CsiError> {
    validate_id("volume id", &req.volume_id)?;
    let staging = require_path("staging_target_path", &req.staging_target_path)?;
    let cap = check_capability(req.volume_capability.as_ref())?;
    Ok((staging, cap))
}

/// The checks of a NodePublishVolume request that need neither the file
/// system nor the store; returns the target and staging paths.
pub fn check_publish_request(
    req: &csi::NodePublishVolumeRequest,
) -> Result<(PathBuf, PathBuf, &csi::VolumeCapability), CsiError> {
    validate_id("volume id", &req.volume_id)?;
    let target = require_path("target_path", &req.target_path)?;
    let staging = require_path("staging_target_path", &req.staging_target_path)?;
    let cap = check_capability(req.volume_capability.as_ref())?;
    Ok((target, staging, cap))
}

/// The syntax of NodeGetVolumeStats' and NodeExpandVolume's volume_path:
/// present, no NUL, not absurdly long. Anything else wrong with it (a
/// relative path, one outside the kubelet's directory) means the volume
/// is not there: NOT_FOUND, as csi-sanity's "some/path" cases expect,
/// decided after the volume id is looked up.
pub fn check_volume_path(p: &str) -> Result<(), CsiError> {
    if p.is_empty() {
        return Err(CsiError::InvalidArgument("volume_path is required".into()));
    }
    if p.contains('\0') || p.len() > super::paths::MAX_PATH_LEN {
        return Err(CsiError::InvalidArgument(format!(
            "volume_path {:?} is not a path",
            p.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

fn clamp(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

fn bytes_usage(total: i64, used: i64, available: i64) -> csi::VolumeUsage {
    csi::VolumeUsage {
        available,
        total,
        used,
        unit: csi::volume_usage::Unit::Bytes as i32,
    }
}

fn inodes_usage(used: i64, available: i64) -> csi::VolumeUsage {
    csi::VolumeUsage {
        available,
        total: used.saturating_add(available),
        used,
        unit: csi::volume_usage::Unit::Inodes as i32,
    }
}

/// The VolumeCondition: abnormal with every problem found, else normal,
/// with `note` saying what the figures lack.
fn condition(problems: Vec<String>, note: Option<&str>) -> csi::VolumeCondition {
    if problems.is_empty() {
        csi::VolumeCondition {
            abnormal: false,
            message: match note {
                Some(n) => format!("volume is mounted; {n}"),
                None => "volume is mounted".into(),
            },
        }
    } else {
        csi::VolumeCondition {
            abnormal: true,
            message: problems.join("; "),
        }
    }
}

impl Driver {
    fn node_volume(&self, id: &str) -> Result<(Layout, PathBuf), CsiError> {
        validate_id("volume id", id)?;
        self.volume_on_disk(id)
            .ok_or_else(|| CsiError::NotFound(format!("volume {id} not found on this node")))
    }

    /// A path berth is asked to act on (create, mount on, unmount, remove)
    /// must be one the kubelet could have handed it.
    fn confined(&self, kind: &str, path: &Path) -> Result<(), CsiError> {
        self.cfg.paths.confine(path).map_err(|refusal| {
            CsiError::InvalidArgument(format!("{kind} {} {refusal}", path.display()))
        })
    }

    /// Where NodeGetVolumeStats and NodeExpandVolume should find the
    /// volume: a path that is not absolute or lies where berth never
    /// publishes cannot hold it, so NOT_FOUND.
    fn published_path(&self, p: &str) -> Result<PathBuf, CsiError> {
        let not_found = |why: String| CsiError::NotFound(format!("volume path {p}: {why}"));
        let path = require_path("volume_path", p).map_err(|e| not_found(e.to_string()))?;
        self.cfg
            .paths
            .confine(&path)
            .map_err(|refusal| not_found(refusal.to_string()))?;
        Ok(path)
    }

    pub fn node_stage(&self, req: csi::NodeStageVolumeRequest) -> Result<(), CsiError> {
        let (staging, cap) = check_stage_request(&req)?;
        self.confined("staging_target_path", &staging)?;
        let (layout, data) = self.node_volume(&req.volume_id)?;
        let block = is_block(cap);
        if block && layout == Layout::Dir {
            return Err(CsiError::InvalidArgument(
                "block access requested for a filesystem-directory volume".into(),
            ));
        }
        let _lock = self.lock(format!("volume:{}", req.volume_id))?;
        if let Some(st) = self.store.stage(&req.volume_id)? {
            if st.state == StageState::Staged
                && st.staging_path == req.staging_target_path
                && st.block == block
            {
                return Ok(());
            }
            return Err(CsiError::AlreadyExists(format!(
                "volume {} is already staged at {} with a different capability",
                req.volume_id, st.staging_path
            )));
        }
        let max = self.cfg.max_volumes_per_node;
        if max > 0 && self.store.stage_count()? >= u64::try_from(max).unwrap_or(u64::MAX) {
            return Err(CsiError::ResourceExhausted(format!(
                "node {} already has its maximum of {max} volumes staged",
                self.cfg.node_id
            )));
        }
        std::fs::create_dir_all(&staging)
            .map_err(CsiError::io(format!("creating {}", staging.display())))?;

        let mut rec = StageRecord {
            volume_id: req.volume_id.clone(),
            staging_path: req.staging_target_path.clone(),
            block,
            loop_device: None,
            state: StageState::Staging,
        };
        self.store.put_stage(&rec)?;
        let result = (|| {
            match layout {
                Layout::Dir => mount::bind(&data, &staging, false)?,
                Layout::Image => {
                    let dev = loopdev::attach(&data)?;
                    rec.loop_device = Some(dev.to_string_lossy().into_owned());
                    if !block {
                        let Some(AccessType::Mount(m)) = &cap.access_type else {
                            return Err(CsiError::InvalidArgument(
                                "mount capability expected".into(),
                            ));
                        };
                        let wanted = if !m.fs_type.is_empty() {
                            m.fs_type.clone()
                        } else {
                            req.volume_context
                                .get("fsType")
                                .cloned()
                                .unwrap_or_else(|| "ext4".to_string())
                        };
                        let fs = match format::probe(&dev)? {
                            Some(existing) => {
                                let bytes = std::fs::metadata(&data)
                                    .map_err(CsiError::io(format!("stat {}", data.display())))?
                                    .len();
                                format::grow_unmounted(&dev, &existing, bytes)?;
                                existing
                            }
                            None => {
                                format::mkfs(&dev, &wanted)?;
                                wanted
                            }
                        };
                        mount::mount_fs(&dev, &staging, &fs, &m.mount_flags, false)?;
                    }
                }
            }
            rec.state = StageState::Staged;
            self.store.put_stage(&rec)
        })();
        if let Err(e) = result {
            let _ = mount::unmount_all(&staging);
            for dev in loopdev::devices_for(&data) {
                let _ = loopdev::detach_backed_by(&dev, &data);
            }
            let _ = self.store.remove_stage(&req.volume_id);
            return Err(e);
        }
        Ok(())
    }

    pub fn node_unstage(&self, id: &str, staging: &str) -> Result<(), CsiError> {
        validate_id("volume id", id)?;
        let staging = require_path("staging_target_path", staging)?;
        self.confined("staging_target_path", &staging)?;
        let _lock = self.lock(format!("volume:{id}"))?;
        let Some(rec) = self.store.stage(id)? else {
            return Ok(());
        };
        mount::unmount_all(Path::new(&rec.staging_path))?;
        // Only devices still backed by this volume's image: the recorded
        // device may have been detached already (by the loop just before it,
        // or a reconciliation) and its number taken by another volume's
        // NodeStage since, whose device a blind detach would pull (EIO in its
        // mkfs or mount, or a staged volume without its device).
        let image = self.volume_path(id, Layout::Image);
        for dev in loopdev::devices_for(&image) {
            loopdev::detach_backed_by(&dev, &image)?;
        }
        if let Some(dev) = &rec.loop_device {
            loopdev::detach_backed_by(Path::new(dev), &image)?;
        }
        self.store.remove_stage(id)?;
        // Nothing asks for the stats of an unstaged volume; a later stage
        // measures afresh.
        self.usage.forget(id);
        Ok(())
    }

    pub fn node_publish(&self, req: csi::NodePublishVolumeRequest) -> Result<(), CsiError> {
        let (target, staging, cap) = check_publish_request(&req)?;
        self.confined("target_path", &target)?;
        self.confined("staging_target_path", &staging)?;
        self.node_volume(&req.volume_id)?;
        let _lock = self.lock(format!("volume:{}", req.volume_id))?;
        let st = self
            .store
            .stage(&req.volume_id)?
            .filter(|s| s.state == StageState::Staged)
            .ok_or_else(|| {
                CsiError::FailedPrecondition(format!("volume {} is not staged", req.volume_id))
            })?;
        if st.staging_path != req.staging_target_path {
            return Err(CsiError::FailedPrecondition(format!(
                "volume {} is staged at {}, not {}",
                req.volume_id, st.staging_path, req.staging_target_path
            )));
        }
        if mount::is_mount_point(&target)? {
            return Ok(());
        }
        let block = is_block(cap);
        let created = !target.exists();
        let source = if block {
            let dev = st.loop_device.clone().ok_or_else(|| {
                CsiError::FailedPrecondition("volume was not staged for block access".into())
            })?;
            if created {
                std::fs::File::create(&target)
                    .map_err(CsiError::io(format!("creating {}", target.display())))?;
            }
            PathBuf::from(dev)
        } else {
            if created {
                std::fs::create_dir(&target)
                    .map_err(CsiError::io(format!("creating {}", target.display())))?;
            }
            PathBuf::from(&st.staging_path)
        };
        if let Err(e) = mount::bind(&source, &target, req.readonly) {
            if created {
                let _ = remove_target(&target);
            }
            return Err(e);
        }
        Ok(())
    }

    pub fn node_unpublish(&self, id: &str, target: &str) -> Result<(), CsiError> {
        validate_id("volume id", id)?;
        let target = require_path("target_path", target)?;
        self.confined("target_path", &target)?;
        // A volume berth does not know is not NOT_FOUND here (nor in
        // NodeUnstage): the kubelet retries a failed unpublish forever, so
        // a retry after the volume is gone must succeed, and a leftover
        // mount under the kubelet's directory is still undone.
        let _lock = self.lock(format!("volume:{id}"))?;
        mount::unmount_all(&target)?;
        remove_target(&target)
    }

    pub fn node_stats(
        &self,
        id: &str,
        path: &str,
    ) -> Result<csi::NodeGetVolumeStatsResponse, CsiError> {
        validate_id("volume id", id)?;
        check_volume_path(path)?;
        let (layout, data) = self.node_volume(id)?;
        let p = &self.published_path(path)?;
        let meta = std::fs::metadata(p)
            .map_err(|_| CsiError::NotFound(format!("volume path {path} does not exist")))?;
        let mounted = mount::is_mount_point(p)?;
        let mut problems = Vec::new();
        if !mounted {
            problems.push("volume path is not a mount point".to_string());
        }
        if !meta.is_dir() {
            // A block publish: the only meaningful figure is the device size.
            let total = std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0);
            return Ok(csi::NodeGetVolumeStatsResponse {
                usage: vec![bytes_usage(clamp(total), 0, 0)],
                volume_condition: Some(condition(problems, None)),
            });
        }
        let fs = nix::sys::statvfs::statvfs(p).map_err(CsiError::sys(format!("statvfs {path}")))?;
        let frag = u128::from(fs.fragment_size());
        let fs_avail = clamp(u128::from(fs.blocks_available()) * frag);
        let fs_ffree = clamp(u128::from(fs.files_free()));
        if layout == Layout::Image {
            // An image's file system is the volume's own: statvfs is exact.
            let total = clamp(u128::from(fs.blocks()) * frag);
            let free = clamp(u128::from(fs.blocks_free()) * frag);
            let files = clamp(u128::from(fs.files()));
            return Ok(csi::NodeGetVolumeStatsResponse {
                usage: vec![
                    bytes_usage(total, total.saturating_sub(free), fs_avail),
                    inodes_usage(files.saturating_sub(fs_ffree), fs_ffree),
                ],
                volume_condition: Some(condition(problems, None)),
            });
        }
        // A directory shares the host's file system, so statvfs here would
        // describe the host's disk: the volume's figures are its capacity
        // and what a walk of its directory finds.
        let capacity = self
            .store
            .volume(id)?
            .filter(|v| v.layout == Layout::Dir)
            .map(|v| v.capacity);
        let reading = self.usage.usage(id, &data);
        let measured = match &reading {
            Reading::Measured(u) => *u,
            Reading::Pending | Reading::Failed(_) => Usage::default(),
        };
        let used = clamp(measured.bytes);
        let note = match &reading {
            Reading::Measured(_) => None,
            Reading::Pending => Some("its usage is still being measured"),
            Reading::Failed(e) => {
                problems.push(format!("its usage cannot be measured: {e}"));
                None
            }
        };
        let bytes = match capacity {
            Some(cap) => {
                if measured.bytes > cap {
                    problems.push(usage::over_capacity_message(measured.bytes, cap));
                }
                let cap = clamp(cap);
                bytes_usage(cap, used, cap.saturating_sub(used).max(0))
            }
            // `--mode node` with a state store of its own has no volume
            // records: without a capacity, the directory can grow as far as
            // the host's file system lets it.
            None => bytes_usage(used.saturating_add(fs_avail), used, fs_avail),
        };
        Ok(csi::NodeGetVolumeStatsResponse {
            // A directory has no inode limit of its own: it may take what
            // the host's file system has left.
            usage: vec![bytes, inodes_usage(clamp(measured.inodes), fs_ffree)],
            volume_condition: Some(condition(problems, note)),
        })
    }

    pub fn node_expand(&self, req: csi::NodeExpandVolumeRequest) -> Result<i64, CsiError> {
        validate_id("volume id", &req.volume_id)?;
        check_volume_path(&req.volume_path)?;
        if let Some(cap) = &req.volume_capability {
            summarize_caps(std::slice::from_ref(cap))?;
        }
        let (layout, data) = self.node_volume(&req.volume_id)?;
        let path = &self.published_path(&req.volume_path)?;
        if !path.exists() {
            return Err(CsiError::NotFound(format!(
                "volume path {} does not exist",
                req.volume_path
            )));
        }
        let _lock = self.lock(format!("volume:{}", req.volume_id))?;
        let block = req.volume_capability.as_ref().is_some_and(is_block) || !path.is_dir();
        if layout == Layout::Image {
            for dev in loopdev::devices_for(&data) {
                loopdev::refresh_capacity(&dev)?;
                if !block && let Some(fs) = format::probe(&dev)? {
                    format::grow(&dev, path, &fs)?;
                }
            }
        }
        let required = req.capacity_range.as_ref().map_or(0, |r| r.required_bytes);
        if required > 0 {
            return Ok(required);
        }
        let len = std::fs::metadata(&data).map(|m| m.len()).unwrap_or(0);
        Ok(i64::try_from(len).unwrap_or(i64::MAX))
    }
}

pub struct NodeService {
    ctx: Ctx,
}

impl NodeService {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

const NODE_CAPS: [NodeCap; 5] = [
    NodeCap::StageUnstageVolume,
    NodeCap::GetVolumeStats,
    NodeCap::ExpandVolume,
    NodeCap::VolumeCondition,
    NodeCap::SingleNodeMultiWriter,
];

#[tonic::async_trait]
impl csi::node_server::Node for NodeService {
    async fn node_stage_volume(
        &self,
        req: Request<csi::NodeStageVolumeRequest>,
    ) -> Result<Response<csi::NodeStageVolumeResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        self.ctx
            .rpc("NodeStageVolume", &id, move |d| {
                d.node_stage(req).map(|()| csi::NodeStageVolumeResponse {})
            })
            .await
    }

    async fn node_unstage_volume(
        &self,
        req: Request<csi::NodeUnstageVolumeRequest>,
    ) -> Result<Response<csi::NodeUnstageVolumeResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        self.ctx
            .rpc("NodeUnstageVolume", &id, move |d| {
                d.node_unstage(&req.volume_id, &req.staging_target_path)
                    .map(|()| csi::NodeUnstageVolumeResponse {})
            })
            .await
    }

    async fn node_publish_volume(
        &self,
        req: Request<csi::NodePublishVolumeRequest>,
    ) -> Result<Response<csi::NodePublishVolumeResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        self.ctx
            .rpc("NodePublishVolume", &id, move |d| {
                d.node_publish(req)
                    .map(|()| csi::NodePublishVolumeResponse {})
            })
            .await
    }

    async fn node_unpublish_volume(
        &self,
        req: Request<csi::NodeUnpublishVolumeRequest>,
    ) -> Result<Response<csi::NodeUnpublishVolumeResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        self.ctx
            .rpc("NodeUnpublishVolume", &id, move |d| {
                d.node_unpublish(&req.volume_id, &req.target_path)
                    .map(|()| csi::NodeUnpublishVolumeResponse {})
            })
            .await
    }

    async fn node_get_volume_stats(
        &self,
        req: Request<csi::NodeGetVolumeStatsRequest>,
    ) -> Result<Response<csi::NodeGetVolumeStatsResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        self.ctx
            .rpc("NodeGetVolumeStats", &id, move |d| {
                d.node_stats(&req.volume_id, &req.volume_path)
            })
            .await
    }

    async fn node_expand_volume(
        &self,
        req: Request<csi::NodeExpandVolumeRequest>,
    ) -> Result<Response<csi::NodeExpandVolumeResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        self.ctx
            .rpc("NodeExpandVolume", &id, move |d| {
                d.node_expand(req)
                    .map(|capacity_bytes| csi::NodeExpandVolumeResponse { capacity_bytes })
            })
            .await
    }

    async fn node_get_capabilities(
        &self,
        _req: Request<csi::NodeGetCapabilitiesRequest>,
    ) -> Result<Response<csi::NodeGetCapabilitiesResponse>, Status> {
        self.ctx
            .rpc("NodeGetCapabilities", "", |_| {
                Ok(csi::NodeGetCapabilitiesResponse {
                    capabilities: NODE_CAPS
                        .iter()
                        .map(|c| csi::NodeServiceCapability {
                            r#type: Some(csi::node_service_capability::Type::Rpc(
                                csi::node_service_capability::Rpc { r#type: *c as i32 },
                            )),
                        })
                        .collect(),
                })
            })
            .await
    }

    async fn node_get_info(
        &self,
        _req: Request<csi::NodeGetInfoRequest>,
    ) -> Result<Response<csi::NodeGetInfoResponse>, Status> {
        self.ctx
            .rpc("NodeGetInfo", "", |d| {
                Ok(csi::NodeGetInfoResponse {
                    node_id: d.cfg.node_id.clone(),
                    max_volumes_per_node: d.cfg.max_volumes_per_node.max(0),
                    accessible_topology: Some(csi::Topology {
                        segments: [(d.cfg.topology_key.clone(), d.cfg.node_id.clone())].into(),
                    }),
                })
            })
            .await
    }
}
