//! In-tree volume sources as the scheduler's volume-limit filter sees them
//! after CSI migration (csi-translation-lib): the CSI driver they count
//! against and the volume handle they are translated to. An in-tree PV, an
//! inline in-tree pod volume and a CSI PV naming the same disk then count
//! once, as upstream counts them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;

/// A migrated in-tree volume, as counted against a CSI driver's limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrated {
    pub driver: &'static str,
    pub handle: String,
}

const GCE_ZONE_BETA: &str = "failure-domain.beta.kubernetes.io/zone";
const GCE_ZONE: &str = "topology.kubernetes.io/zone";
const UNSPECIFIED: &str = "UNSPECIFIED";

/// A PV's in-tree source; `labels` carry a GCE disk's zones.
pub fn pv_source(
    spec: &core::PersistentVolumeSpec,
    labels: &BTreeMap<String, String>,
) -> Option<Migrated> {
    let (field, handle) = if let Some(s) = &spec.aws_elastic_block_store {
        ("awsElasticBlockStore", ebs_handle(&s.volume_id)?)
    } else if let Some(s) = &spec.gce_persistent_disk {
        let zones = labels
            .get(GCE_ZONE_BETA)
            .filter(|z| !z.is_empty())
            .or_else(|| labels.get(GCE_ZONE))
            .map(String::as_str)
            .unwrap_or("");
        ("gcePersistentDisk", gce_handle(&s.pd_name, zones)?)
    } else if let Some(s) = &spec.azure_disk {
        ("azureDisk", s.disk_uri.clone())
    } else if let Some(s) = &spec.cinder {
        ("cinder", s.volume_id.clone())
    } else if let Some(s) = &spec.portworx_volume {
        ("portworxVolume", s.volume_id.clone())
    } else {
        return None;
    };
    counted(field, handle)
}

/// A pod's inline in-tree volume. Inline GCE disks carry no zone, so their
/// handle names none.
pub fn inline_source(v: &core::Volume) -> Option<Migrated> {
    let (field, handle) = if let Some(s) = &v.aws_elastic_block_store {
        ("awsElasticBlockStore", ebs_handle(&s.volume_id)?)
    } else if let Some(s) = &v.gce_persistent_disk {
        ("gcePersistentDisk", gce_handle(&s.pd_name, "")?)
    } else if let Some(s) = &v.azure_disk {
        ("azureDisk", s.disk_uri.clone())
    } else if let Some(s) = &v.cinder {
        ("cinder", s.volume_id.clone())
    } else if let Some(s) = &v.portworx_volume {
        ("portworxVolume", s.volume_id.clone())
    } else {
        return None;
    };
    counted(field, handle)
}

fn counted(field: &str, handle: String) -> Option<Migrated> {
    let driver = storage_classes::plugin_for_source_field(field)?.limit_counted_driver()?;
    Some(Migrated { driver, handle })
}

/// `aws://<zone>/vol-…` becomes `vol-…`; any other id is taken as a bare
/// EBS id. A URL whose path is not one volume id does not translate (the
/// scheduler then does not count the volume).
fn ebs_handle(id: &str) -> Option<String> {
    let Some(rest) = id.strip_prefix("aws://") else {
        return Some(id.to_string());
    };
    // The host is the zone; the path, trimmed of slashes, is the volume.
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let vol = path.trim_matches('/');
    (vol.starts_with("vol-") && !vol.contains('/')).then(|| vol.to_string())
}

/// `projects/UNSPECIFIED/zones/<zone>/disks/<pd>` for one zone,
/// `…/regions/<region>/…` for several zones (`__`-separated) of one region,
/// `UNSPECIFIED` for the zone when there is none.
fn gce_handle(pd: &str, zones: &str) -> Option<String> {
    let list: Vec<&str> = zones.split("__").collect();
    match list.as_slice() {
        [""] => Some(format!(
            "projects/{UNSPECIFIED}/zones/{UNSPECIFIED}/disks/{pd}"
        )),
        [zone] => Some(format!("projects/{UNSPECIFIED}/zones/{zone}/disks/{pd}")),
        many => {
            let mut regions = Vec::new();
            for zone in many {
                let parts: Vec<&str> = zone.split('-').collect();
                let [locale, region, _] = parts.as_slice() else {
                    return None;
                };
                let r = format!("{locale}-{region}");
                if !regions.contains(&r) {
                    regions.push(r);
                }
            }
            let [region] = regions.as_slice() else {
                return None;
            };
            Some(format!(
                "projects/{UNSPECIFIED}/regions/{region}/disks/{pd}"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ebs_ids_translate_as_csi_migration_does() {
        let cases = [
            ("vol-0123", Some("vol-0123")),
            ("aws://us-east-1a/vol-0123", Some("vol-0123")),
            ("aws:///vol-0123", Some("vol-0123")),
            ("aws://us-east-1a/not-a-volume", None),
            ("aws://us-east-1a/vol-1/vol-2", None),
            ("my-disk", Some("my-disk")),
        ];
        for (id, want) in cases {
            assert_eq!(ebs_handle(id).as_deref(), want, "{id}");
        }
    }

    #[test]
    fn gce_handles_follow_the_zones() {
        let cases = [
            ("", Some("projects/UNSPECIFIED/zones/UNSPECIFIED/disks/d")),
            (
                "europe-west1-b",
                Some("projects/UNSPECIFIED/zones/europe-west1-b/disks/d"),
            ),
            (
                "europe-west1-b__europe-west1-c",
                Some("projects/UNSPECIFIED/regions/europe-west1/disks/d"),
            ),
            ("europe-west1-b__us-east1-c", None),
            ("zone-a__zone-b", None),
        ];
        for (zones, want) in cases {
            assert_eq!(gce_handle("d", zones).as_deref(), want, "{zones:?}");
        }
    }

    #[test]
    fn only_plugins_the_filter_counts_are_translated() {
        let ebs = core::Volume {
            name: "v".into(),
            aws_elastic_block_store: Some(core::AWSElasticBlockStoreVolumeSource {
                volume_id: "vol-1".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            inline_source(&ebs),
            Some(Migrated {
                driver: "ebs.csi.aws.com",
                handle: "vol-1".into()
            })
        );
        let vsphere = core::PersistentVolumeSpec {
            vsphere_volume: Some(core::VsphereVirtualDiskVolumeSource {
                volume_path: "[ds] disk.vmdk".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(pv_source(&vsphere, &BTreeMap::new()), None);
    }
}
