//! CSI Controller service: volume and snapshot lifecycle (create, delete,
//! clone, restore, expand, list, get), capacity and capability validation.
//! Data is made before its record is committed and the record is removed
//! before its data, so a crash at any point leaves at worst unrecorded data,
//! which start-up reconciliation sweeps.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::process::Command;

use csi::controller_service_capability::rpc::Type as CtrlCap;
use csi::volume_capability::AccessType;
use csi::volume_capability::access_mode::Mode;
use csi_proto as csi;
use tonic::{Request, Response, Status};

use super::Ctx;
use super::error::CsiError;
use super::format;
use super::store::{ContentSource, Layout, Publication, SnapshotRecord, VolumeRecord};
use super::volumes::{Driver, Pool, validate_id};

/// Size given to volumes created without a capacity range.
const DEFAULT_SIZE: u64 = 1 << 30;
/// Loop devices address whole 512-byte sectors, so image files are sized in
/// sector multiples.
const SECTOR: u64 = 512;
/// Parameters under this prefix are added by Kubernetes sidecars
/// (external-provisioner) and are accepted and ignored.
const K8S_PARAM_PREFIX: &str = "csi.storage.k8s.io/";

/// What a set of requested capabilities asks of a volume.
#[derive(Default, Debug)]
pub struct CapSummary {
    pub block: bool,
    pub mount: bool,
    pub fs_type: Option<String>,
}

pub fn mode_supported(mode: i32) -> bool {
    matches!(
        Mode::try_from(mode),
        Ok(Mode::SingleNodeWriter
            | Mode::SingleNodeReaderOnly
            | Mode::SingleNodeSingleWriter
            | Mode::SingleNodeMultiWriter)
    )
}

/// Check that every capability is well-formed (access type and access mode
/// set) and summarise what they request. Unsupported modes are reported
/// separately because ValidateVolumeCapabilities answers "not confirmed"
/// for them rather than failing.
pub fn summarize_caps(caps: &[csi::VolumeCapability]) -> Result<CapSummary, CsiError> {
    let mut s = CapSummary::default();
    for cap in caps {
        let mode = cap
            .access_mode
            .as_ref()
            .ok_or_else(|| {
                CsiError::InvalidArgument("volume capability without access_mode".into())
            })?
            .mode;
        if mode == Mode::Unknown as i32 {
            return Err(CsiError::InvalidArgument("access mode UNKNOWN".into()));
        }
        match &cap.access_type {
            Some(AccessType::Block(_)) => s.block = true,
            Some(AccessType::Mount(m)) => {
                s.mount = true;
                if !m.fs_type.is_empty() {
                    if s.fs_type.as_ref().is_some_and(|f| *f != m.fs_type) {
                        return Err(CsiError::InvalidArgument(
                            "capabilities ask for different fs types".into(),
                        ));
                    }
                    s.fs_type = Some(m.fs_type.clone());
                }
            }
            None => {
                return Err(CsiError::InvalidArgument(
                    "volume capability without access_type".into(),
                ));
            }
        }
    }
    Ok(s)
}

fn check_fs_type(fs: &str) -> Result<(), CsiError> {
    if format::SUPPORTED.contains(&fs) {
        Ok(())
    } else {
        Err(CsiError::InvalidArgument(format!(
            "fsType {fs:?} is not one of {:?}",
            format::SUPPORTED
        )))
    }
}

/// Validate StorageClass parameters; returns the requested fsType, if any.
pub fn parse_parameters(params: &HashMap<String, String>) -> Result<Option<String>, CsiError> {
    let mut fs = None;
    for (k, v) in params {
        if k == "fsType" || k == "csi.storage.k8s.io/fstype" {
            check_fs_type(v)?;
            fs = Some(v.clone());
        } else if !k.starts_with(K8S_PARAM_PREFIX) {
            return Err(CsiError::InvalidArgument(format!(
                "unknown parameter {k:?}"
            )));
        }
    }
    Ok(fs)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub fn range_bytes(range: Option<&csi::CapacityRange>) -> Result<(u64, u64), CsiError> {
    let Some(r) = range else { return Ok((0, 0)) };
    let req = u64::try_from(r.required_bytes)
        .map_err(|_| CsiError::InvalidArgument("negative required_bytes".into()))?;
    let lim = u64::try_from(r.limit_bytes)
        .map_err(|_| CsiError::InvalidArgument("negative limit_bytes".into()))?;
    if lim != 0 && req > lim {
        return Err(CsiError::OutOfRange(format!(
            "required_bytes {req} exceeds limit_bytes {lim}"
        )));
    }
    Ok((req, lim))
}

/// `size`, or `fs`'s minimum when that is larger; OUT_OF_RANGE, naming the
/// minimum, when `limit` (non-zero) forbids it.
fn at_least_fs_minimum(fs: &str, size: u64, limit: u64) -> Result<u64, CsiError> {
    let min = format::minimum_bytes(fs);
    if size >= min {
        return Ok(size);
    }
    if limit > 0 && limit < min {
        return Err(CsiError::OutOfRange(format!(
            "{fs} needs at least {min} bytes ({}); limit_bytes {limit} is below it",
            crate::quantity::Quantity::from_bytes(min)
        )));
    }
    Ok(min)
}

fn run_cp(args: &[&std::ffi::OsStr]) -> Result<(), CsiError> {
    let mut cmd = Command::new("cp");
    cmd.args(args);
    format::die_with_parent(&mut cmd);
    let command = format!("{cmd:?}");
    let out = cmd.output().map_err(|e| CsiError::Command {
        command: command.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(CsiError::Command {
            command,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Create a volume's or snapshot's bytes at `dst`, optionally copying from
/// `src` (same layout). Images stay sparse; copies use reflinks where the
/// filesystem has them.
fn make_data(layout: Layout, dst: &Path, src: Option<&Path>, size: u64) -> Result<(), CsiError> {
    match (layout, src) {
        (Layout::Dir, None) => {
            std::fs::create_dir(dst).map_err(CsiError::io(format!("creating {}", dst.display())))
        }
        (Layout::Dir, Some(src)) => {
            std::fs::create_dir(dst)
                .map_err(CsiError::io(format!("creating {}", dst.display())))?;
            let from = src.join(".");
            run_cp(&[
                "-a".as_ref(),
                "--reflink=auto".as_ref(),
                from.as_os_str(),
                dst.as_os_str(),
            ])
        }
        (Layout::Image, src) => {
            if let Some(src) = src {
                run_cp(&[
                    "--sparse=always".as_ref(),
                    "--reflink=auto".as_ref(),
                    src.as_os_str(),
                    dst.as_os_str(),
                ])?;
            } else {
                File::create_new(dst)
                    .map_err(CsiError::io(format!("creating {}", dst.display())))?;
            }
            grow_image(dst, size)
        }
    }
}

fn grow_image(path: &Path, size: u64) -> Result<(), CsiError> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(CsiError::io(format!("opening {}", path.display())))?;
    let len = f
        .metadata()
        .map_err(CsiError::io(format!("stat {}", path.display())))?
        .len();
    let want = size.div_ceil(SECTOR) * SECTOR;
    if want > len {
        f.set_len(want)
            .map_err(CsiError::io(format!("resizing {}", path.display())))?;
    }
    Ok(())
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Paging tokens are the hex of the last key returned: opaque to the CO,
/// stable across deletions because the store scans from the key onwards.
fn encode_token(key: &str) -> String {
    key.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_token(token: &str) -> Result<Option<String>, CsiError> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || CsiError::BadToken(token.to_string());
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return Err(bad());
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    let key = String::from_utf8(bytes).map_err(|_| bad())?;
    validate_id("token", &key).map_err(|_| bad())?;
    Ok(Some(key))
}

fn max_entries(n: i32) -> Result<usize, CsiError> {
    usize::try_from(n)
        .map_err(|_| CsiError::InvalidArgument("max_entries must not be negative".into()))
}

/// What a CreateVolume request asks for, as far as it can be told without
/// the store: what its capabilities want, the parameters' fsType and the
/// capacity range in bytes.
#[derive(Debug)]
pub struct CreateAsk {
    pub caps: CapSummary,
    pub param_fs: Option<String>,
    pub required: u64,
    pub limit: u64,
}

/// The checks of a CreateVolume request that need neither the store nor
/// the disk: name, capabilities and access modes, parameters, fs type and
/// capacity range.
pub fn check_create_request(req: &csi::CreateVolumeRequest) -> Result<CreateAsk, CsiError> {
    validate_id("volume name", &req.name)?;
    if req.volume_capabilities.is_empty() {
        return Err(CsiError::InvalidArgument(
            "volume_capabilities are required".into(),
        ));
    }
    let caps = summarize_caps(&req.volume_capabilities)?;
    for cap in &req.volume_capabilities {
        if let Some(m) = &cap.access_mode
            && !mode_supported(m.mode)
        {
            return Err(CsiError::InvalidArgument(format!(
                "access mode {:?} is not supported (node-local volumes)",
                Mode::try_from(m.mode).unwrap_or(Mode::Unknown)
            )));
        }
    }
    let param_fs = parse_parameters(&req.parameters)?;
    if let Some(fs) = &caps.fs_type {
        check_fs_type(fs)?;
    }
    let (required, limit) = range_bytes(req.capacity_range.as_ref())?;
    Ok(CreateAsk {
        caps,
        param_fs,
        required,
        limit,
    })
}

impl Driver {
    fn topology(&self) -> csi::Topology {
        csi::Topology {
            segments: [(self.cfg.topology_key.clone(), self.cfg.node_id.clone())].into(),
        }
    }

    /// A topology constraint is satisfiable here when every segment in it
    /// names this node under our key.
    fn topology_matches(&self, t: &csi::Topology) -> bool {
        t.segments
            .iter()
            .all(|(k, v)| *k == self.cfg.topology_key && *v == self.cfg.node_id)
    }

    fn volume_condition(&self, id: &str) -> csi::VolumeCondition {
        match self.volume_on_disk(id) {
            Some(_) => csi::VolumeCondition {
                abnormal: false,
                message: "volume data present".into(),
            },
            None => csi::VolumeCondition {
                abnormal: true,
                message: "volume data missing from the data directory".into(),
            },
        }
    }

    fn volume_message(&self, rec: &VolumeRecord) -> csi::Volume {
        let mut ctx = HashMap::new();
        if let Some(fs) = &rec.fs_type {
            ctx.insert("fsType".to_string(), fs.clone());
        }
        csi::Volume {
            capacity_bytes: to_i64(rec.capacity),
            volume_id: rec.id.clone(),
            volume_context: ctx,
            content_source: rec.source.as_ref().map(|s| csi::VolumeContentSource {
                r#type: Some(match s {
                    ContentSource::Snapshot(id) => csi::volume_content_source::Type::Snapshot(
                        csi::volume_content_source::SnapshotSource {
                            snapshot_id: id.clone(),
                        },
                    ),
                    ContentSource::Volume(id) => csi::volume_content_source::Type::Volume(
                        csi::volume_content_source::VolumeSource {
                            volume_id: id.clone(),
                        },
                    ),
                }),
            }),
            accessible_topology: vec![self.topology()],
        }
    }

    fn snapshot_message(rec: &SnapshotRecord) -> csi::Snapshot {
        csi::Snapshot {
            size_bytes: to_i64(rec.size),
            snapshot_id: rec.id.clone(),
            source_volume_id: rec.source_volume_id.clone(),
            creation_time: Some(prost_types::Timestamp {
                seconds: rec.created_unix_nanos.div_euclid(1_000_000_000),
                nanos: i32::try_from(rec.created_unix_nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
            }),
            ready_to_use: true,
            group_snapshot_id: String::new(),
        }
    }

    pub fn create_volume(&self, req: csi::CreateVolumeRequest) -> Result<csi::Volume, CsiError> {
        let CreateAsk {
            caps,
            param_fs,
            required,
            limit,
        } = check_create_request(&req)?;
        if let Some(tr) = &req.accessibility_requirements
            && !tr.requisite.is_empty()
            && !tr.requisite.iter().any(|t| self.topology_matches(t))
        {
            return Err(CsiError::ResourceExhausted(format!(
                "no requisite topology matches node {}",
                self.cfg.node_id
            )));
        }

        let mut fs_type = caps.fs_type.clone().or(param_fs);
        let mut layout = if caps.block || fs_type.is_some() {
            Layout::Image
        } else {
            Layout::Dir
        };
        let source = match req
            .volume_content_source
            .as_ref()
            .and_then(|s| s.r#type.as_ref())
        {
            None => None,
            Some(csi::volume_content_source::Type::Snapshot(s)) => {
                Some(ContentSource::Snapshot(s.snapshot_id.clone()))
            }
            Some(csi::volume_content_source::Type::Volume(v)) => {
                Some(ContentSource::Volume(v.volume_id.clone()))
            }
        };

        let _name_lock = self.lock(format!("volume-name:{}", req.name))?;
        let params: BTreeMap<String, String> = req.parameters.clone().into_iter().collect();

        // Resolve the content source first: its layout and size decide ours.
        let mut src_path = None;
        let mut _src_lock = None;
        let mut min_size = 0;
        match &source {
            None => {}
            Some(ContentSource::Snapshot(sid)) => {
                validate_id("source snapshot id", sid)?;
                let snap = self
                    .store
                    .snapshot(sid)?
                    .ok_or_else(|| CsiError::NotFound(format!("snapshot {sid} not found")))?;
                _src_lock = Some(self.lock(format!("snapshot:{sid}"))?);
                layout = snap.layout;
                fs_type = match snap.layout {
                    Layout::Dir => None,
                    Layout::Image => snap.fs_type.clone().or(fs_type),
                };
                min_size = snap.size;
                src_path = Some(self.snapshot_path(sid, snap.layout));
            }
            Some(ContentSource::Volume(vid)) => {
                validate_id("source volume id", vid)?;
                let vol = self
                    .store
                    .volume(vid)?
                    .ok_or_else(|| CsiError::NotFound(format!("source volume {vid} not found")))?;
                _src_lock = Some(self.lock(format!("volume:{vid}"))?);
                layout = vol.layout;
                fs_type = match vol.layout {
                    Layout::Dir => None,
                    Layout::Image => vol.fs_type.clone().or(fs_type),
                };
                min_size = vol.capacity;
                src_path = Some(self.volume_path(vid, vol.layout));
            }
        }
        if caps.block && layout == Layout::Dir {
            return Err(CsiError::InvalidArgument(
                "block access requested but the content source is a filesystem directory".into(),
            ));
        }
        if layout == Layout::Image && caps.mount && fs_type.is_none() {
            fs_type = Some("ext4".to_string());
        }

        let size = if required > 0 {
            required
        } else if limit > 0 {
            DEFAULT_SIZE.min(limit)
        } else {
            DEFAULT_SIZE
        }
        .max(min_size);
        if limit > 0 && size > limit {
            return Err(CsiError::OutOfRange(format!(
                "the content source needs {min_size} bytes, above limit_bytes {limit}"
            )));
        }
        // A file system berth formats has a floor: round up to it, and say
        // so in capacity_bytes (the CSI spec lets a volume be larger than
        // asked, up to limit_bytes).
        let size = match fs_type.as_deref().filter(|_| caps.mount) {
            Some(fs) => at_least_fs_minimum(fs, size, limit)?,
            None => size,
        };

        if let Some(existing) = self.store.volume_by_name(&req.name)? {
            let fits = existing.capacity >= required && (limit == 0 || existing.capacity <= limit);
            let same = fits
                && existing.layout == layout
                && existing.fs_type == fs_type
                && existing.source == source
                && existing.parameters == params;
            return if same {
                Ok(self.volume_message(&existing))
            } else {
                Err(CsiError::AlreadyExists(format!(
                    "volume name {} exists with incompatible size, layout, source or parameters",
                    req.name
                )))
            };
        }

        self.reserve(size, Pool::Volumes)?;
        let rec = VolumeRecord {
            id: self.new_id("vol"),
            name: req.name.clone(),
            capacity: size,
            layout,
            fs_type,
            parameters: params,
            source,
        };
        let path = self.volume_path(&rec.id, layout);
        let result = make_data(layout, &path, src_path.as_deref(), size)
            .and_then(|()| self.store.put_volume(&rec));
        if let Err(e) = result {
            // Nothing references the new data yet; if even this cleanup
            // fails, start-up reconciliation sweeps it.
            let _ = self.remove_volume_data(&rec.id);
            self.release(size, Pool::Volumes);
            return Err(e);
        }
        Ok(self.volume_message(&rec))
    }

    pub fn delete_volume(&self, id: &str) -> Result<(), CsiError> {
        validate_id("volume id", id)?;
        let _lock = self.lock(format!("volume:{id}"))?;
        let Some(rec) = self.store.volume(id)? else {
            return Ok(());
        };
        if self.cfg.node && self.store.stage(id)?.is_some() {
            return Err(CsiError::FailedPrecondition(format!(
                "volume {id} is still staged on node {}",
                self.cfg.node_id
            )));
        }
        if self.store.publication(id)?.is_some() {
            self.store.remove_publication(id)?;
        }
        self.store.remove_volume(&rec)?;
        if let Err(e) = self.remove_volume_data(id) {
            // Keep the volume visible so the CO retries the delete; a
            // restart would sweep the unrecorded data anyway.
            let _ = self.store.put_volume(&rec);
            return Err(e);
        }
        self.release(rec.capacity, Pool::Volumes);
        Ok(())
    }

    fn ready_volume(&self, id: &str) -> Result<VolumeRecord, CsiError> {
        validate_id("volume id", id)?;
        self.store
            .volume(id)?
            .ok_or_else(|| CsiError::NotFound(format!("volume {id} not found")))
    }

    pub fn controller_publish(
        &self,
        req: csi::ControllerPublishVolumeRequest,
    ) -> Result<csi::ControllerPublishVolumeResponse, CsiError> {
        validate_id("volume id", &req.volume_id)?;
        if req.node_id.is_empty() {
            return Err(CsiError::InvalidArgument("node_id is required".into()));
        }
        let Some(cap) = req.volume_capability.as_ref() else {
            return Err(CsiError::InvalidArgument(
                "volume_capability is required".into(),
            ));
        };
        let caps = summarize_caps(std::slice::from_ref(cap))?;
        let rec = self.ready_volume(&req.volume_id)?;
        if req.node_id != self.cfg.node_id {
            return Err(CsiError::NotFound(format!(
                "node {} does not exist",
                req.node_id
            )));
        }
        if cap
            .access_mode
            .as_ref()
            .is_some_and(|m| !mode_supported(m.mode))
        {
            return Err(CsiError::InvalidArgument(
                "access mode is not supported".into(),
            ));
        }
        if caps.block && rec.layout == Layout::Dir {
            return Err(CsiError::InvalidArgument(
                "block access requested for a filesystem-directory volume".into(),
            ));
        }
        let _lock = self.lock(format!("volume:{}", req.volume_id))?;
        let want = Publication {
            volume_id: req.volume_id.clone(),
            node_id: req.node_id.clone(),
            readonly: req.readonly,
            block: caps.block,
        };
        let context = || csi::ControllerPublishVolumeResponse {
            publish_context: [("readonly".to_string(), req.readonly.to_string())].into(),
        };
        if let Some(existing) = self.store.publication(&req.volume_id)? {
            return if existing == want {
                Ok(context())
            } else {
                Err(CsiError::AlreadyExists(format!(
                    "volume {} is already published with different attributes",
                    req.volume_id
                )))
            };
        }
        let max = self.cfg.max_volumes_per_node;
        if max > 0 && self.store.publication_count()? >= u64::try_from(max).unwrap_or(u64::MAX) {
            return Err(CsiError::ResourceExhausted(format!(
                "node {} already has its maximum of {max} volumes attached",
                self.cfg.node_id
            )));
        }
        self.store.put_publication(&want)?;
        Ok(context())
    }

    pub fn controller_unpublish(&self, volume_id: &str, node_id: &str) -> Result<(), CsiError> {
        validate_id("volume id", volume_id)?;
        let _lock = self.lock(format!("volume:{volume_id}"))?;
        match self.store.publication(volume_id)? {
            // An empty node_id means "from every node".
            Some(p) if node_id.is_empty() || p.node_id == node_id => {
                self.store.remove_publication(volume_id)
            }
            _ => Ok(()),
        }
    }

    fn published_nodes(&self, volume_id: &str) -> Result<Vec<String>, CsiError> {
        Ok(self
            .store
            .publication(volume_id)?
            .map(|p| p.node_id)
            .into_iter()
            .collect())
    }

    pub fn validate_capabilities(
        &self,
        req: csi::ValidateVolumeCapabilitiesRequest,
    ) -> Result<csi::ValidateVolumeCapabilitiesResponse, CsiError> {
        validate_id("volume id", &req.volume_id)?;
        if req.volume_capabilities.is_empty() {
            return Err(CsiError::InvalidArgument(
                "volume_capabilities are required".into(),
            ));
        }
        let caps = summarize_caps(&req.volume_capabilities)?;
        let rec = self.ready_volume(&req.volume_id)?;
        let unsupported = if caps.block && rec.layout == Layout::Dir {
            Some("block access is not possible on a filesystem-directory volume".to_string())
        } else if let Some(m) = req
            .volume_capabilities
            .iter()
            .filter_map(|c| c.access_mode.as_ref())
            .find(|m| !mode_supported(m.mode))
        {
            Some(format!("access mode {} is not supported", m.mode))
        } else if let (Some(want), Some(have)) = (&caps.fs_type, &rec.fs_type) {
            (want != have).then(|| format!("volume is formatted {have}, not {want}"))
        } else {
            None
        };
        Ok(match unsupported {
            Some(message) => csi::ValidateVolumeCapabilitiesResponse {
                confirmed: None,
                message,
            },
            None => csi::ValidateVolumeCapabilitiesResponse {
                confirmed: Some(csi::validate_volume_capabilities_response::Confirmed {
                    volume_context: req.volume_context,
                    volume_capabilities: req.volume_capabilities,
                    parameters: req.parameters,
                    mutable_parameters: req.mutable_parameters,
                }),
                message: String::new(),
            },
        })
    }

    pub fn list_volumes(
        &self,
        req: csi::ListVolumesRequest,
    ) -> Result<csi::ListVolumesResponse, CsiError> {
        let limit = max_entries(req.max_entries)?;
        let after = decode_token(&req.starting_token)?;
        let (page, more) = self.store.volumes_page(after.as_deref(), limit)?;
        let next_token = match (more, page.last()) {
            (true, Some(last)) => encode_token(&last.id),
            _ => String::new(),
        };
        let entries = page
            .iter()
            .map(|v| {
                Ok(csi::list_volumes_response::Entry {
                    volume: Some(self.volume_message(v)),
                    status: Some(csi::list_volumes_response::VolumeStatus {
                        published_node_ids: self.published_nodes(&v.id)?,
                        volume_condition: Some(self.volume_condition(&v.id)),
                    }),
                })
            })
            .collect::<Result<_, CsiError>>()?;
        Ok(csi::ListVolumesResponse {
            entries,
            next_token,
        })
    }

    pub fn get_volume(&self, id: &str) -> Result<csi::ControllerGetVolumeResponse, CsiError> {
        let rec = self.ready_volume(id)?;
        Ok(csi::ControllerGetVolumeResponse {
            volume: Some(self.volume_message(&rec)),
            status: Some(csi::controller_get_volume_response::VolumeStatus {
                published_node_ids: self.published_nodes(id)?,
                volume_condition: Some(self.volume_condition(id)),
            }),
        })
    }

    pub fn get_capacity(
        &self,
        req: csi::GetCapacityRequest,
    ) -> Result<csi::GetCapacityResponse, CsiError> {
        if !req.volume_capabilities.is_empty() {
            summarize_caps(&req.volume_capabilities)?;
        }
        let here = req
            .accessible_topology
            .as_ref()
            .is_none_or(|t| self.topology_matches(t));
        let available = if here { to_i64(self.available()) } else { 0 };
        Ok(csi::GetCapacityResponse {
            available_capacity: available,
            maximum_volume_size: Some(available),
            minimum_volume_size: None,
        })
    }

    pub fn expand_volume(
        &self,
        req: csi::ControllerExpandVolumeRequest,
    ) -> Result<csi::ControllerExpandVolumeResponse, CsiError> {
        validate_id("volume id", &req.volume_id)?;
        let Some(range) = req.capacity_range.as_ref() else {
            return Err(CsiError::InvalidArgument(
                "capacity_range is required".into(),
            ));
        };
        let (required, limit) = range_bytes(Some(range))?;
        let _lock = self.lock(format!("volume:{}", req.volume_id))?;
        let mut rec = self.ready_volume(&req.volume_id)?;
        let node_expansion_required = rec.layout == Layout::Image;
        let target = if required > 0 { required } else { limit };
        let target = match rec
            .fs_type
            .as_deref()
            .filter(|_| rec.layout == Layout::Image)
        {
            Some(fs) => at_least_fs_minimum(fs, target, limit)?,
            None => target,
        };
        if target <= rec.capacity {
            return Ok(csi::ControllerExpandVolumeResponse {
                capacity_bytes: to_i64(rec.capacity),
                node_expansion_required,
            });
        }
        let grow_by = target - rec.capacity;
        self.reserve(grow_by, Pool::Volumes)?;
        let image = self.volume_path(&rec.id, Layout::Image);
        let old_len = match rec.layout {
            Layout::Image => Some(
                std::fs::metadata(&image)
                    .map_err(CsiError::io(format!("stat {}", image.display())))
                    .inspect_err(|_| self.release(grow_by, Pool::Volumes))?
                    .len(),
            ),
            Layout::Dir => None,
        };
        let result = (|| {
            if old_len.is_some() {
                grow_image(&image, target)?;
            }
            rec.capacity = target;
            self.store.put_volume(&rec)
        })();
        if let Err(e) = result {
            // The record still says the old size (a full disk under the
            // state store is the likely cause), so the image goes back to
            // it: nothing has been written past the old end, since
            // NodeExpand only runs after this answers.
            if let Some(len) = old_len
                && let Err(undo) = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&image)
                    .and_then(|f| f.set_len(len))
            {
                tracing::warn!(path = %image.display(), error = %undo, "could not shrink the image back after a failed expansion");
            }
            self.release(grow_by, Pool::Volumes);
            return Err(e);
        }
        Ok(csi::ControllerExpandVolumeResponse {
            capacity_bytes: to_i64(target),
            node_expansion_required,
        })
    }

    pub fn create_snapshot(
        &self,
        req: csi::CreateSnapshotRequest,
    ) -> Result<csi::Snapshot, CsiError> {
        validate_id("snapshot name", &req.name)?;
        validate_id("source volume id", &req.source_volume_id)?;
        let _name_lock = self.lock(format!("snapshot-name:{}", req.name))?;
        if let Some(existing) = self.store.snapshot_by_name(&req.name)? {
            return if existing.source_volume_id == req.source_volume_id {
                Ok(Self::snapshot_message(&existing))
            } else {
                Err(CsiError::AlreadyExists(format!(
                    "snapshot name {} exists for another source volume",
                    req.name
                )))
            };
        }
        let _vol_lock = self.lock(format!("volume:{}", req.source_volume_id))?;
        let vol = self.ready_volume(&req.source_volume_id)?;
        self.reserve(vol.capacity, Pool::Snapshots)?;
        let rec = SnapshotRecord {
            id: self.new_id("snap"),
            name: req.name.clone(),
            source_volume_id: vol.id.clone(),
            size: vol.capacity,
            layout: vol.layout,
            fs_type: vol.fs_type.clone(),
            created_unix_nanos: now_nanos(),
        };
        let result = make_data(
            vol.layout,
            &self.snapshot_path(&rec.id, vol.layout),
            Some(&self.volume_path(&vol.id, vol.layout)),
            vol.capacity,
        )
        .and_then(|()| self.store.put_snapshot(&rec));
        if let Err(e) = result {
            let _ = self.remove_snapshot_data(&rec.id);
            self.release(vol.capacity, Pool::Snapshots);
            return Err(e);
        }
        Ok(Self::snapshot_message(&rec))
    }

    pub fn delete_snapshot(&self, id: &str) -> Result<(), CsiError> {
        validate_id("snapshot id", id)?;
        let _lock = self.lock(format!("snapshot:{id}"))?;
        let Some(rec) = self.store.snapshot(id)? else {
            return Ok(());
        };
        self.store.remove_snapshot(&rec)?;
        if let Err(e) = self.remove_snapshot_data(id) {
            let _ = self.store.put_snapshot(&rec);
            return Err(e);
        }
        self.release(rec.size, Pool::Snapshots);
        Ok(())
    }

    pub fn list_snapshots(
        &self,
        req: csi::ListSnapshotsRequest,
    ) -> Result<csi::ListSnapshotsResponse, CsiError> {
        let limit = max_entries(req.max_entries)?;
        let entry = |s: &SnapshotRecord| csi::list_snapshots_response::Entry {
            snapshot: Some(Self::snapshot_message(s)),
        };
        let source_ok = |s: &SnapshotRecord| {
            req.source_volume_id.is_empty() || s.source_volume_id == req.source_volume_id
        };
        if !req.snapshot_id.is_empty() {
            // An unknown or malformed id is simply not in the list.
            let found = validate_id("snapshot id", &req.snapshot_id)
                .ok()
                .map(|()| self.store.snapshot(&req.snapshot_id))
                .transpose()?
                .flatten()
                .filter(|s| source_ok(s));
            return Ok(csi::ListSnapshotsResponse {
                entries: found.iter().map(entry).collect(),
                next_token: String::new(),
            });
        }
        let after = decode_token(&req.starting_token)?;
        let (all, _) = self.store.snapshots_page(after.as_deref(), 0)?;
        let mut matching = all.iter().filter(|s| source_ok(s));
        let mut entries = Vec::new();
        let mut last = None;
        for s in matching.by_ref() {
            if limit != 0 && entries.len() == limit {
                break;
            }
            last = Some(s.id.clone());
            entries.push(entry(s));
        }
        let more = limit != 0 && entries.len() == limit && {
            let tail_start = last.clone();
            all.iter()
                .filter(|s| source_ok(s))
                .any(|s| tail_start.as_ref().is_some_and(|l| s.id > *l))
        };
        Ok(csi::ListSnapshotsResponse {
            entries,
            next_token: match (more, last) {
                (true, Some(l)) => encode_token(&l),
                _ => String::new(),
            },
        })
    }
}

pub struct ControllerService {
    ctx: Ctx,
}

impl ControllerService {
    pub fn new(ctx: Ctx) -> Self {
        Self { ctx }
    }
}

/// Capabilities the controller advertises; every one of them is implemented.
const CONTROLLER_CAPS: [CtrlCap; 13] = [
    CtrlCap::CreateDeleteVolume,
    CtrlCap::PublishUnpublishVolume,
    CtrlCap::PublishReadonly,
    CtrlCap::ListVolumesPublishedNodes,
    CtrlCap::ListVolumes,
    CtrlCap::GetCapacity,
    CtrlCap::CreateDeleteSnapshot,
    CtrlCap::ListSnapshots,
    CtrlCap::CloneVolume,
    CtrlCap::ExpandVolume,
    CtrlCap::GetVolume,
    CtrlCap::VolumeCondition,
    CtrlCap::SingleNodeMultiWriter,
];

#[tonic::async_trait]
impl csi::controller_server::Controller for ControllerService {
    async fn create_volume(
        &self,
        req: Request<csi::CreateVolumeRequest>,
    ) -> Result<Response<csi::CreateVolumeResponse>, Status> {
        let req = req.into_inner();
        let name = req.name.clone();
        self.ctx
            .rpc("CreateVolume", &name, move |d| {
                d.create_volume(req)
                    .map(|v| csi::CreateVolumeResponse { volume: Some(v) })
            })
            .await
    }

    async fn delete_volume(
        &self,
        req: Request<csi::DeleteVolumeRequest>,
    ) -> Result<Response<csi::DeleteVolumeResponse>, Status> {
        let id = req.into_inner().volume_id;
        self.ctx
            .rpc("DeleteVolume", &id.clone(), move |d| {
                d.delete_volume(&id).map(|()| csi::DeleteVolumeResponse {})
            })
            .await
    }

    async fn controller_publish_volume(
        &self,
        req: Request<csi::ControllerPublishVolumeRequest>,
    ) -> Result<Response<csi::ControllerPublishVolumeResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        self.ctx
            .rpc("ControllerPublishVolume", &id, move |d| {
                d.controller_publish(req)
            })
            .await
    }

    async fn controller_unpublish_volume(
        &self,
        req: Request<csi::ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<csi::ControllerUnpublishVolumeResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        self.ctx
            .rpc("ControllerUnpublishVolume", &id, move |d| {
                d.controller_unpublish(&req.volume_id, &req.node_id)
                    .map(|()| csi::ControllerUnpublishVolumeResponse {})
            })
            .await
    }

    async fn validate_volume_capabilities(
        &self,
        req: Request<csi::ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<csi::ValidateVolumeCapabilitiesResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        self.ctx
            .rpc("ValidateVolumeCapabilities", &id, move |d| {
                d.validate_capabilities(req)
            })
            .await
    }

    async fn list_volumes(
        &self,
        req: Request<csi::ListVolumesRequest>,
    ) -> Result<Response<csi::ListVolumesResponse>, Status> {
        let req = req.into_inner();
        self.ctx
            .rpc("ListVolumes", "", move |d| d.list_volumes(req))
            .await
    }

    async fn get_capacity(
        &self,
        req: Request<csi::GetCapacityRequest>,
    ) -> Result<Response<csi::GetCapacityResponse>, Status> {
        let req = req.into_inner();
        self.ctx
            .rpc("GetCapacity", "", move |d| d.get_capacity(req))
            .await
    }

    async fn controller_get_capabilities(
        &self,
        _req: Request<csi::ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<csi::ControllerGetCapabilitiesResponse>, Status> {
        self.ctx
            .rpc("ControllerGetCapabilities", "", |_| {
                Ok(csi::ControllerGetCapabilitiesResponse {
                    capabilities: CONTROLLER_CAPS
                        .iter()
                        .map(|c| csi::ControllerServiceCapability {
                            r#type: Some(csi::controller_service_capability::Type::Rpc(
                                csi::controller_service_capability::Rpc { r#type: *c as i32 },
                            )),
                        })
                        .collect(),
                })
            })
            .await
    }

    async fn create_snapshot(
        &self,
        req: Request<csi::CreateSnapshotRequest>,
    ) -> Result<Response<csi::CreateSnapshotResponse>, Status> {
        let req = req.into_inner();
        let id = req.source_volume_id.clone();
        self.ctx
            .rpc("CreateSnapshot", &id, move |d| {
                d.create_snapshot(req)
                    .map(|s| csi::CreateSnapshotResponse { snapshot: Some(s) })
            })
            .await
    }

    async fn delete_snapshot(
        &self,
        req: Request<csi::DeleteSnapshotRequest>,
    ) -> Result<Response<csi::DeleteSnapshotResponse>, Status> {
        let id = req.into_inner().snapshot_id;
        self.ctx
            .rpc("DeleteSnapshot", &id.clone(), move |d| {
                d.delete_snapshot(&id)
                    .map(|()| csi::DeleteSnapshotResponse {})
            })
            .await
    }

    async fn list_snapshots(
        &self,
        req: Request<csi::ListSnapshotsRequest>,
    ) -> Result<Response<csi::ListSnapshotsResponse>, Status> {
        let req = req.into_inner();
        self.ctx
            .rpc("ListSnapshots", "", move |d| d.list_snapshots(req))
            .await
    }

    async fn get_snapshot(
        &self,
        req: Request<csi::GetSnapshotRequest>,
    ) -> Result<Response<csi::GetSnapshotResponse>, Status> {
        let id = req.into_inner().snapshot_id;
        self.ctx
            .rpc("GetSnapshot", &id, |_| {
                Err(CsiError::Unimplemented(
                    "GET_SNAPSHOT is not advertised".into(),
                ))
            })
            .await
    }

    async fn controller_expand_volume(
        &self,
        req: Request<csi::ControllerExpandVolumeRequest>,
    ) -> Result<Response<csi::ControllerExpandVolumeResponse>, Status> {
        let req = req.into_inner();
        let id = req.volume_id.clone();
        self.ctx
            .rpc("ControllerExpandVolume", &id, move |d| d.expand_volume(req))
            .await
    }

    async fn controller_get_volume(
        &self,
        req: Request<csi::ControllerGetVolumeRequest>,
    ) -> Result<Response<csi::ControllerGetVolumeResponse>, Status> {
        let id = req.into_inner().volume_id;
        self.ctx
            .rpc("ControllerGetVolume", &id.clone(), move |d| {
                d.get_volume(&id)
            })
            .await
    }

    async fn controller_modify_volume(
        &self,
        req: Request<csi::ControllerModifyVolumeRequest>,
    ) -> Result<Response<csi::ControllerModifyVolumeResponse>, Status> {
        let id = req.into_inner().volume_id;
        self.ctx
            .rpc("ControllerModifyVolume", &id, |_| {
                Err(CsiError::Unimplemented(
                    "MODIFY_VOLUME is not advertised".into(),
                ))
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let t = encode_token("vol-abc");
        assert_eq!(decode_token(&t).ok().flatten().as_deref(), Some("vol-abc"));
        assert!(decode_token("zz").is_err());
        assert!(decode_token("abc").is_err());
        assert!(decode_token(&encode_token("../x")).is_err());
        assert!(matches!(decode_token(""), Ok(None)));
    }

    #[test]
    fn sizes_below_a_file_systems_floor_are_raised_to_it_within_the_limit() {
        let xfs = format::minimum_bytes("xfs");
        let cases: [(&str, &str, u64, u64, u64); 5] = [
            ("xfs 1Mi", "xfs", 1 << 20, 0, xfs),
            ("xfs 1Mi with room", "xfs", 1 << 20, 1 << 30, xfs),
            ("xfs above", "xfs", 1 << 30, 0, 1 << 30),
            ("ext4 1Mi", "ext4", 1 << 20, 1 << 20, 1 << 20),
            ("ext4 tiny", "ext4", 4096, 0, 106_496),
        ];
        for (name, fs, size, limit, want) in cases {
            assert_eq!(
                at_least_fs_minimum(fs, size, limit).ok(),
                Some(want),
                "case {name}"
            );
        }
        let refused = at_least_fs_minimum("xfs", 1 << 20, 1 << 20);
        match refused {
            Err(CsiError::OutOfRange(m)) => assert!(m.contains("300Mi"), "{m}"),
            other => panic!("expected OUT_OF_RANGE, got {other:?}"),
        }
    }

    #[test]
    fn parameters_are_strict() {
        let mut p = HashMap::new();
        p.insert("csi.storage.k8s.io/pvc/name".to_string(), "x".to_string());
        assert!(matches!(parse_parameters(&p), Ok(None)));
        p.insert("fsType".to_string(), "xfs".to_string());
        assert_eq!(parse_parameters(&p).ok().flatten().as_deref(), Some("xfs"));
        p.insert("fsType".to_string(), "ntfs".to_string());
        assert!(parse_parameters(&p).is_err());
        let mut q = HashMap::new();
        q.insert("bogus".to_string(), "1".to_string());
        assert!(parse_parameters(&q).is_err());
    }
}
