//! Default per-node volume attach limits by instance type, from public figures,
//! for when a node has not (yet) reported its own limit through `CSINode`.
//!
//! Every entry names where its figure comes from. Where no public figure was
//! found, there is no entry, and the look-up says `None` rather than guess.

use crate::plugins;

/// How many volumes of one driver an instance family can attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstanceLimit {
    /// CSI driver name; in-tree provisioner names are mapped to it on look-up.
    pub driver: &'static str,
    /// Instance types starting with this (ASCII case ignored) get this limit;
    /// the empty prefix is the driver-wide default.
    pub instance_prefix: &'static str,
    pub max_volumes: u32,
    /// Where the figure comes from.
    pub source: &'static str,
}

const EBS: &str = "ebs.csi.aws.com";
const PD: &str = "pd.csi.storage.gke.io";
const AZURE_DISK: &str = "disk.csi.azure.com";

const K8S_EBS_DEFAULT: &str = "Kubernetes DefaultMaxEBSVolumes: AWS advises at most 40 EBS \
     attachments on Xen instances and the root volume takes one";
const K8S_EBS_NITRO: &str = "Kubernetes DefaultMaxEBSNitroVolumeLimit, applied to instance \
     types matching its EBSNitroLimitRegex ^[cmr]5.*|t3|z1d";
const EBS_LATER_NITRO: &str = "AWS EC2 docs: Nitro instance, sharing 28 attachments between \
     EBS volumes, network interfaces and NVMe instance store; berth applies Kubernetes' Nitro \
     default of 25, whose regex predates this family";
const K8S_PD_BIG: &str = "Kubernetes in-tree GCE PD plugin (volumeLimitBig): Compute Engine \
     allows 128 persistent disks per VM, less the boot disk";
const K8S_PD_SMALL: &str = "Kubernetes in-tree GCE PD plugin (volumeLimitSmall): shared-core \
     machine types allow 16 persistent disks, less the boot disk";
const AZURE_B: &str = "Azure VM sizes docs, B-series burstable: max data disks";
const AZURE_BSV2: &str = "Azure VM sizes docs, Bsv2-series: max data disks";
const AZURE_DSV3: &str = "Azure VM sizes docs, Dsv3-series: max data disks";
const AZURE_DSV2: &str = "Azure VM sizes docs, DSv2-series: max data disks";
const AZURE_ESV3: &str = "Azure VM sizes docs, Esv3-series: max data disks";

const fn limit(
    driver: &'static str,
    instance_prefix: &'static str,
    max_volumes: u32,
    source: &'static str,
) -> InstanceLimit {
    InstanceLimit {
        driver,
        instance_prefix,
        max_volumes,
        source,
    }
}

static LIMITS: &[InstanceLimit] = &[
    // AWS EBS. Kubernetes gave every type 39 unless the Nitro regex matched.
    limit(EBS, "", 39, K8S_EBS_DEFAULT),
    limit(EBS, "c5", 25, K8S_EBS_NITRO),
    limit(EBS, "m5", 25, K8S_EBS_NITRO),
    limit(EBS, "r5", 25, K8S_EBS_NITRO),
    limit(EBS, "t3", 25, K8S_EBS_NITRO),
    limit(EBS, "z1d", 25, K8S_EBS_NITRO),
    // Sixth-generation families are Nitro too; the upstream regex would have
    // given them the Xen figure of 39, which overstates what they can attach.
    limit(EBS, "c6a", 25, EBS_LATER_NITRO),
    limit(EBS, "c6g", 25, EBS_LATER_NITRO),
    limit(EBS, "c6i", 25, EBS_LATER_NITRO),
    limit(EBS, "m6a", 25, EBS_LATER_NITRO),
    limit(EBS, "m6g", 25, EBS_LATER_NITRO),
    limit(EBS, "m6i", 25, EBS_LATER_NITRO),
    limit(EBS, "r6a", 25, EBS_LATER_NITRO),
    limit(EBS, "r6g", 25, EBS_LATER_NITRO),
    limit(EBS, "r6i", 25, EBS_LATER_NITRO),
    limit(EBS, "t4g", 25, EBS_LATER_NITRO),
    // GCE PD. Kubernetes' scheduler fallback (DefaultMaxGCEPDVolumes) is 16, but
    // that is for nodes that report nothing; by machine type the in-tree plugin
    // reported 127, or 15 for the shared-core types below.
    limit(PD, "", 127, K8S_PD_BIG),
    limit(PD, "f1-micro", 15, K8S_PD_SMALL),
    limit(PD, "g1-small", 15, K8S_PD_SMALL),
    limit(PD, "e2-micro", 15, K8S_PD_SMALL),
    limit(PD, "e2-small", 15, K8S_PD_SMALL),
    limit(PD, "e2-medium", 15, K8S_PD_SMALL),
    // Azure disks, per VM size. No driver-wide default: sizes range from 2 to 64
    // data disks, so any single figure would be wrong for most of them.
    limit(AZURE_DISK, "Standard_B1s", 2, AZURE_B),
    limit(AZURE_DISK, "Standard_B1ms", 2, AZURE_B),
    limit(AZURE_DISK, "Standard_B2s", 4, AZURE_B),
    limit(AZURE_DISK, "Standard_B2ms", 4, AZURE_B),
    limit(AZURE_DISK, "Standard_B4ms", 8, AZURE_B),
    limit(AZURE_DISK, "Standard_B8ms", 16, AZURE_B),
    // Listed so that the B2s prefix above does not claim it.
    limit(AZURE_DISK, "Standard_B2s_v2", 4, AZURE_BSV2),
    limit(AZURE_DISK, "Standard_D2s_v3", 4, AZURE_DSV3),
    limit(AZURE_DISK, "Standard_D4s_v3", 8, AZURE_DSV3),
    limit(AZURE_DISK, "Standard_D8s_v3", 16, AZURE_DSV3),
    limit(AZURE_DISK, "Standard_D16s_v3", 32, AZURE_DSV3),
    limit(AZURE_DISK, "Standard_D32s_v3", 32, AZURE_DSV3),
    limit(AZURE_DISK, "Standard_DS1_v2", 4, AZURE_DSV2),
    limit(AZURE_DISK, "Standard_DS2_v2", 8, AZURE_DSV2),
    limit(AZURE_DISK, "Standard_DS3_v2", 16, AZURE_DSV2),
    limit(AZURE_DISK, "Standard_DS4_v2", 32, AZURE_DSV2),
    limit(AZURE_DISK, "Standard_DS5_v2", 64, AZURE_DSV2),
    limit(AZURE_DISK, "Standard_E2s_v3", 4, AZURE_ESV3),
    limit(AZURE_DISK, "Standard_E4s_v3", 8, AZURE_ESV3),
    limit(AZURE_DISK, "Standard_E8s_v3", 16, AZURE_ESV3),
    limit(AZURE_DISK, "Standard_E16s_v3", 32, AZURE_ESV3),
    limit(AZURE_DISK, "Standard_E32s_v3", 32, AZURE_ESV3),
];

/// Every known limit.
pub fn instance_limits() -> &'static [InstanceLimit] {
    LIMITS
}

/// The attach limit for `instance_type` under `driver`, from the entry with the
/// longest matching `instance_prefix`; `None` when no entry matches.
///
/// `driver` may be the CSI driver name or the in-tree provisioner name
/// (`kubernetes.io/aws-ebs`): an in-tree volume that is migrated to CSI counts
/// against the CSI driver's limit.
pub fn default_volume_limit(driver: &str, instance_type: &str) -> Option<u32> {
    let driver = csi_name(driver);
    LIMITS
        .iter()
        .filter(|l| l.driver == driver && has_prefix_ignore_case(instance_type, l.instance_prefix))
        .max_by_key(|l| l.instance_prefix.len())
        .map(|l| l.max_volumes)
}

fn csi_name(driver: &str) -> &str {
    plugins::plugins()
        .iter()
        .find(|p| p.internal_provisioner == Some(driver))
        .and_then(|p| p.csi_migration_driver)
        .unwrap_or(driver)
}

fn has_prefix_ignore_case(s: &str, prefix: &str) -> bool {
    s.as_bytes()
        .get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn longest_matching_prefix_wins() {
        let table = [
            // Driver-wide default versus family entries.
            (EBS, "m4.large", Some(39)),
            (EBS, "m5.large", Some(25)),
            (EBS, "m5d.2xlarge", Some(25)),
            (EBS, "c5n.18xlarge", Some(25)),
            (EBS, "t3a.micro", Some(25)),
            (EBS, "t2.micro", Some(39)),
            (EBS, "m6i.xlarge", Some(25)),
            (EBS, "m6id.xlarge", Some(25)),
            (EBS, "", Some(39)),
            (PD, "n1-standard-4", Some(127)),
            (PD, "e2-standard-8", Some(127)),
            (PD, "e2-medium", Some(15)),
            (PD, "f1-micro", Some(15)),
            // A longer, more specific size beats the shorter one it extends.
            (AZURE_DISK, "Standard_B2s", Some(4)),
            (AZURE_DISK, "Standard_B2s_v2", Some(4)),
            (AZURE_DISK, "Standard_D16s_v3", Some(32)),
            (AZURE_DISK, "Standard_D2s_v3", Some(4)),
            (AZURE_DISK, "Standard_DS2_v2", Some(8)),
            (AZURE_DISK, "Standard_DS2_v2_Promo", Some(8)),
            (AZURE_DISK, "Standard_E4s_v3", Some(8)),
            (AZURE_DISK, "standard_d8s_v3", Some(16)),
            // No default for Azure: an unlisted size is unknown.
            (AZURE_DISK, "Standard_M128s", None),
            (AZURE_DISK, "", None),
        ];
        for (driver, instance, expected) in table {
            assert_eq!(
                default_volume_limit(driver, instance),
                expected,
                "{driver} {instance}"
            );
        }
    }

    #[test]
    fn in_tree_provisioner_names_map_to_their_csi_driver() {
        let table = [
            ("kubernetes.io/aws-ebs", "m5.large", Some(25)),
            ("kubernetes.io/aws-ebs", "m4.large", Some(39)),
            ("kubernetes.io/gce-pd", "g1-small", Some(15)),
            ("kubernetes.io/azure-disk", "Standard_D4s_v3", Some(8)),
        ];
        for (driver, instance, expected) in table {
            assert_eq!(default_volume_limit(driver, instance), expected, "{driver}");
        }
    }

    #[test]
    fn unknown_drivers_have_no_limit() {
        for driver in [
            "",
            "csi.berth.dev",
            "example.com/x",
            "kubernetes.io/nfs",
            "EBS.CSI.AWS.COM",
        ] {
            assert_eq!(default_volume_limit(driver, "m5.large"), None, "{driver}");
        }
    }

    #[test]
    fn prefixes_are_unique_per_driver_and_every_entry_names_a_source() {
        let mut seen = HashSet::new();
        for l in instance_limits() {
            assert!(
                seen.insert((l.driver, l.instance_prefix.to_ascii_lowercase())),
                "duplicate {} {}",
                l.driver,
                l.instance_prefix
            );
            assert!(!l.source.is_empty());
            assert!(l.max_volumes > 0);
            assert!(
                plugins::provisioner(l.driver).is_some(),
                "{} is not a known provisioner",
                l.driver
            );
        }
    }

    #[test]
    fn non_ascii_instance_types_do_not_panic() {
        assert_eq!(default_volume_limit(PD, "e2-m\u{e9}dium"), Some(127));
        assert_eq!(default_volume_limit(AZURE_DISK, "Standard_\u{e9}"), None);
    }
}
