//! The parts of the `snapshot.storage.k8s.io/v1` kinds (VolumeSnapshot,
//! VolumeSnapshotContent) that restores read. k8s-openapi has no types for
//! these CRDs, so berth declares only the fields it uses; the rest of an
//! object is left alone.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

/// The external-provisioner's finalizer on a VolumeSnapshot a restore is
/// reading: the snapshot is not deleted under it.
pub const SOURCE_PROTECTION_FINALIZER: &str =
    "provisioner.storage.kubernetes.io/volumesnapshot-as-source-protection";

#[derive(Debug, Clone, Deserialize)]
pub struct VolumeSnapshotDoc {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub status: Option<VolumeSnapshotStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSnapshotStatus {
    pub bound_volume_snapshot_content_name: Option<String>,
    pub ready_to_use: Option<bool>,
    pub restore_size: Option<QuantityText>,
}

/// A quantity as YAML may write it: `1Gi` or a bare number.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct QuantityText(Value);

impl QuantityText {
    pub fn text(&self) -> String {
        match &self.0 {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct SnapshotContentDoc {
    #[serde(default)]
    pub metadata: ObjectMeta,
    pub spec: SnapshotContentSpec,
    pub status: Option<SnapshotContentStatus>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotContentSpec {
    #[serde(default)]
    pub driver: String,
    #[serde(default)]
    pub volume_snapshot_ref: SnapshotRef,
    #[serde(default)]
    pub source: SnapshotContentSource,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SnapshotRef {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotContentSource {
    pub volume_handle: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotContentStatus {
    pub snapshot_handle: Option<String>,
}
