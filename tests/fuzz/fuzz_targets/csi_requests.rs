//! Fuzz target: arbitrary bytes decoded as CSI request messages (the first
//! byte picks the RPC, the rest is the protobuf body, as a client on the
//! socket could send it) and put through the validation berth runs before
//! it touches the store or the disk: names and IDs, paths, capabilities
//! and access modes, parameters, capacity ranges and paging tokens
//! (secrets berth takes no notice of). Only a panic is a finding; and an
//! ID that passes validation must be safe as a single path component.

#![no_main]

use berth::csi::controller::{
    check_create_request, decode_token, parse_parameters, range_bytes, summarize_caps,
};
use berth::csi::node::{check_publish_request, check_stage_request, check_volume_path};
use berth::csi::paths::require_path;
use berth::csi::volumes::validate_id;
use csi_proto as csi;
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// An ID that validates must name one entry directly inside a directory.
fn id(kind: &str, value: &str) {
    if validate_id(kind, value).is_ok() {
        let mut parts = std::path::Path::new(value).components();
        assert!(
            matches!(
                (parts.next(), parts.next()),
                (Some(std::path::Component::Normal(_)), None)
            ),
            "{kind} {value:?} validated but is not one path component"
        );
    }
}

fn path(kind: &str, value: &str) {
    if let Ok(p) = require_path(kind, value) {
        assert!(
            p.is_absolute(),
            "{kind} {value:?} validated but is relative"
        );
        assert!(
            !p.components().any(|c| c == std::path::Component::ParentDir),
            "{kind} {value:?} validated with '..'"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 12 {
        0 => {
            let Ok(req) = csi::CreateVolumeRequest::decode(body) else {
                return;
            };
            id("volume name", &req.name);
            let _ = check_create_request(&req);
            if let Some(src) = req.volume_content_source.and_then(|s| s.r#type) {
                match src {
                    csi::volume_content_source::Type::Snapshot(s) => {
                        id("source snapshot id", &s.snapshot_id)
                    }
                    csi::volume_content_source::Type::Volume(v) => {
                        id("source volume id", &v.volume_id)
                    }
                }
            }
        }
        1 => {
            let Ok(req) = csi::DeleteVolumeRequest::decode(body) else {
                return;
            };
            id("volume id", &req.volume_id);
        }
        2 => {
            let Ok(req) = csi::NodeStageVolumeRequest::decode(body) else {
                return;
            };
            path("staging_target_path", &req.staging_target_path);
            let _ = check_stage_request(&req);
        }
        3 => {
            let Ok(req) = csi::NodePublishVolumeRequest::decode(body) else {
                return;
            };
            path("target_path", &req.target_path);
            let _ = check_publish_request(&req);
        }
        4 => {
            let Ok(req) = csi::NodeUnpublishVolumeRequest::decode(body) else {
                return;
            };
            id("volume id", &req.volume_id);
            path("target_path", &req.target_path);
        }
        5 => {
            let Ok(req) = csi::NodeGetVolumeStatsRequest::decode(body) else {
                return;
            };
            id("volume id", &req.volume_id);
            let _ = check_volume_path(&req.volume_path);
        }
        6 => {
            let Ok(req) = csi::NodeExpandVolumeRequest::decode(body) else {
                return;
            };
            let _ = check_volume_path(&req.volume_path);
            let _ = range_bytes(req.capacity_range.as_ref());
            let _ = summarize_caps(req.volume_capability.as_slice());
        }
        7 => {
            let Ok(req) = csi::CreateSnapshotRequest::decode(body) else {
                return;
            };
            id("snapshot name", &req.name);
            id("source volume id", &req.source_volume_id);
            let _ = parse_parameters(&req.parameters);
        }
        8 => {
            let Ok(req) = csi::ValidateVolumeCapabilitiesRequest::decode(body) else {
                return;
            };
            id("volume id", &req.volume_id);
            let _ = summarize_caps(&req.volume_capabilities);
            let _ = parse_parameters(&req.parameters);
        }
        9 => {
            let Ok(req) = csi::ControllerExpandVolumeRequest::decode(body) else {
                return;
            };
            id("volume id", &req.volume_id);
            let _ = range_bytes(req.capacity_range.as_ref());
        }
        10 => {
            let Ok(req) = csi::ListVolumesRequest::decode(body) else {
                return;
            };
            if let Ok(Some(key)) = decode_token(&req.starting_token) {
                id("token", &key);
            }
        }
        _ => {
            let Ok(req) = csi::NodeUnstageVolumeRequest::decode(body) else {
                return;
            };
            id("volume id", &req.volume_id);
            path("staging_target_path", &req.staging_target_path);
        }
    }
});
