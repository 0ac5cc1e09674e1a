//! StorageClass `parameters` checking: which keys a known provisioner accepts and
//! which values it takes, so a misspelt key or an impossible value is reported
//! when the class is written rather than when the first claim fails to provision.
//!
//! The per-provisioner key lists live next to the provisioners in `plugins.rs`;
//! this module holds the spec type and the checker.

use std::fmt;

use crate::plugins;

/// Keys under this prefix are consumed by the CSI external-provisioner itself
/// (secrets, `fstype`, extra create metadata) and never reach the driver, so no
/// driver's own list mentions them.
pub(crate) const CSI_RESERVED_PREFIX: &str = "csi.storage.k8s.io/";

/// One key a provisioner understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParameterSpec {
    /// The key as documented upstream.
    pub name: &'static str,
    /// Accepted values; empty means any value.
    pub allowed: &'static [&'static str],
    /// The value must be a non-negative decimal integer (Kubernetes parameters
    /// are strings, so `"10"`, never `10`).
    pub numeric: bool,
    /// One line on what the key does.
    pub doc: &'static str,
    /// `name` is a prefix: any longer key starting with it is this parameter
    /// (the EBS CSI driver's numbered `tagSpecification_1`, `_2`, ...).
    pub prefix: bool,
}

impl ParameterSpec {
    /// A key that takes any value.
    pub(crate) const fn any(name: &'static str, doc: &'static str) -> ParameterSpec {
        ParameterSpec {
            name,
            allowed: &[],
            numeric: false,
            doc,
            prefix: false,
        }
    }

    /// A key restricted to a fixed set of values.
    pub(crate) const fn one_of(
        name: &'static str,
        allowed: &'static [&'static str],
        doc: &'static str,
    ) -> ParameterSpec {
        ParameterSpec {
            name,
            allowed,
            numeric: false,
            doc,
            prefix: false,
        }
    }

    /// A key whose value is a non-negative integer.
    pub(crate) const fn number(name: &'static str, doc: &'static str) -> ParameterSpec {
        ParameterSpec {
            name,
            allowed: &[],
            numeric: true,
            doc,
            prefix: false,
        }
    }

    /// A family of keys sharing a prefix.
    pub(crate) const fn prefixed(name: &'static str, doc: &'static str) -> ParameterSpec {
        ParameterSpec {
            name,
            allowed: &[],
            numeric: false,
            doc,
            prefix: true,
        }
    }

    fn matches_key(&self, key: &str, case_insensitive: bool) -> bool {
        if self.prefix {
            key.len() > self.name.len()
                && key.is_char_boundary(self.name.len())
                && same(&key[..self.name.len()], self.name, case_insensitive)
        } else {
            same(key, self.name, case_insensitive)
        }
    }

    /// What a good value looks like, or `None` if `value` is acceptable.
    fn expectation_unmet(&self, value: &str, case_insensitive: bool) -> Option<String> {
        if !self.allowed.is_empty() {
            if self
                .allowed
                .iter()
                .any(|a| same(value, a, case_insensitive))
            {
                return None;
            }
            return Some(format!("one of {}", self.allowed.join(", ")));
        }
        if self.numeric && !is_unsigned_integer(value) {
            return Some("a non-negative integer".to_string());
        }
        None
    }
}

fn same(a: &str, b: &str, case_insensitive: bool) -> bool {
    if case_insensitive {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

fn is_unsigned_integer(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// A problem with one StorageClass parameter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParameterIssue {
    /// The provisioner does not know this key (most provisioners reject the
    /// whole class when they meet one).
    Unknown { provisioner: String, key: String },
    /// The key is known but the value is not one it accepts.
    BadValue {
        provisioner: String,
        key: String,
        value: String,
        expected: String,
    },
}

impl ParameterIssue {
    /// The offending key, as written in the StorageClass.
    pub fn key(&self) -> &str {
        match self {
            ParameterIssue::Unknown { key, .. } | ParameterIssue::BadValue { key, .. } => key,
        }
    }

    /// The provisioner the class names.
    pub fn provisioner(&self) -> &str {
        match self {
            ParameterIssue::Unknown { provisioner, .. }
            | ParameterIssue::BadValue { provisioner, .. } => provisioner,
        }
    }
}

impl fmt::Display for ParameterIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParameterIssue::Unknown { provisioner, key } => {
                write!(f, "unknown parameter {key:?} for provisioner {provisioner}")
            }
            ParameterIssue::BadValue {
                provisioner,
                key,
                value,
                expected,
            } => write!(
                f,
                "invalid value {value:?} for parameter {key:?} of provisioner {provisioner}: expected {expected}"
            ),
        }
    }
}

impl std::error::Error for ParameterIssue {}

/// Checks a StorageClass's parameters against what `provisioner` is known to
/// accept.
///
/// An unknown provisioner (any third-party CSI driver, say) yields no issues:
/// the catalog cannot know its keys, and guessing would only produce noise.
/// Issues come back sorted by key, so output is stable whatever order the map
/// was iterated in.
pub fn check_parameters<'a>(
    provisioner: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<ParameterIssue> {
    let Some(p) = plugins::provisioner(provisioner) else {
        return Vec::new();
    };
    let is_csi = p.plugin.source_field == "csi";
    // Providers that fold key case also fold (or compare loosely) enum values,
    // so for them a case difference in a value is not worth an alarm either.
    let fold = p.case_insensitive_keys;

    let mut issues = Vec::new();
    for (key, value) in params {
        if is_csi && key.starts_with(CSI_RESERVED_PREFIX) {
            continue;
        }
        match p.parameters.iter().find(|s| s.matches_key(key, fold)) {
            None => issues.push(ParameterIssue::Unknown {
                provisioner: p.name.to_string(),
                key: key.to_string(),
            }),
            Some(spec) => {
                if let Some(expected) = spec.expectation_unmet(value, fold) {
                    issues.push(ParameterIssue::BadValue {
                        provisioner: p.name.to_string(),
                        key: key.to_string(),
                        value: value.to_string(),
                        expected,
                    });
                }
            }
        }
    }
    // Stable sort: two issues for a repeated key keep their input order.
    issues.sort_by(|a, b| a.key().cmp(b.key()));
    issues
}

#[cfg(test)]
mod tests {
    use super::*;

    const EBS: &str = "kubernetes.io/aws-ebs";
    const GCE: &str = "kubernetes.io/gce-pd";
    const AZURE_DISK: &str = "kubernetes.io/azure-disk";
    const BERTH: &str = "csi.berth.dev";

    fn unknown(provisioner: &str, key: &str) -> ParameterIssue {
        ParameterIssue::Unknown {
            provisioner: provisioner.to_string(),
            key: key.to_string(),
        }
    }

    #[test]
    fn the_talks_three_storage_class_examples_have_no_issues() {
        let examples: [(&str, &[(&str, &str)]); 3] = [
            (
                GCE,
                &[
                    ("type", "pd-standard"),
                    ("fstype", "ext4"),
                    ("replication-type", "none"),
                ],
            ),
            (
                AZURE_DISK,
                &[
                    ("skuName", "Standard_LRS"),
                    ("location", "eastus"),
                    ("storageAccount", "azure_storage_account_name"),
                ],
            ),
            (
                EBS,
                &[("type", "io1"), ("iopsPerGB", "10"), ("fsType", "ext4")],
            ),
        ];
        for (provisioner, params) in examples {
            let issues = check_parameters(provisioner, params.iter().copied());
            assert!(issues.is_empty(), "{provisioner}: {issues:?}");
        }
    }

    #[test]
    fn misspelt_keys_are_unknown() {
        let table = [
            (EBS, "iopsPerGiB"),
            (EBS, "fstyp"),
            (GCE, "replicationType"),
            (AZURE_DISK, "sku"),
            (BERTH, "fstype"),
        ];
        for (provisioner, key) in table {
            assert_eq!(
                check_parameters(provisioner, [(key, "x")]),
                vec![unknown(provisioner, key)],
                "{provisioner} {key}"
            );
        }
    }

    #[test]
    fn bad_enum_values_and_non_numeric_numbers_are_bad_values() {
        let table = [
            (EBS, "type", "io9", "one of gp2"),
            (EBS, "encrypted", "yes", "one of true, false"),
            (EBS, "iopsPerGB", "ten", "a non-negative integer"),
            (EBS, "iopsPerGB", "-10", "a non-negative integer"),
            (EBS, "iopsPerGB", "", "a non-negative integer"),
            (
                GCE,
                "replication-type",
                "regional",
                "one of none, regional-pd",
            ),
            (AZURE_DISK, "skuName", "Gold_LRS", "one of Standard_LRS"),
            (BERTH, "fsType", "btrfs", "one of ext4, xfs"),
        ];
        for (provisioner, key, value, expected_start) in table {
            let issues = check_parameters(provisioner, [(key, value)]);
            match issues.as_slice() {
                [
                    ParameterIssue::BadValue {
                        provisioner: p,
                        key: k,
                        value: v,
                        expected,
                    },
                ] => {
                    assert_eq!(
                        (p.as_str(), k.as_str(), v.as_str()),
                        (provisioner, key, value)
                    );
                    assert!(expected.starts_with(expected_start), "{expected}");
                }
                other => panic!("{provisioner} {key}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_provisioner_gives_no_issues() {
        for provisioner in ["example.com/some-csi-driver", "", "kubernetes.io/AWS-EBS"] {
            assert!(check_parameters(provisioner, [("anything", "at all")]).is_empty());
        }
    }

    #[test]
    fn csi_reserved_keys_are_accepted_for_csi_drivers_only() {
        let reserved = [
            ("csi.storage.k8s.io/fstype", "xfs"),
            ("csi.storage.k8s.io/provisioner-secret-name", "s"),
            ("csi.storage.k8s.io/node-stage-secret-namespace", "ns"),
        ];
        for driver in [
            BERTH,
            "ebs.csi.aws.com",
            "pd.csi.storage.gke.io",
            "disk.csi.azure.com",
            "file.csi.azure.com",
        ] {
            assert!(check_parameters(driver, reserved).is_empty(), "{driver}");
        }
        // An in-tree provisioner never sees the external-provisioner's keys.
        assert_eq!(
            check_parameters(EBS, [("csi.storage.k8s.io/fstype", "xfs")]),
            vec![unknown(EBS, "csi.storage.k8s.io/fstype")]
        );
    }

    #[test]
    fn in_tree_keys_and_values_ignore_case_berth_keys_do_not() {
        // The in-tree provisioners lower-case keys; the talk itself writes both
        // `fstype` and `fsType`, and the docs write `kind: Shared`.
        let ok: [(&str, &[(&str, &str)]); 3] = [
            (
                EBS,
                &[("FSTYPE", "ext4"), ("iopspergb", "10"), ("type", "IO1")],
            ),
            (
                GCE,
                &[("fsType", "xfs"), ("Replication-Type", "Regional-PD")],
            ),
            (
                AZURE_DISK,
                &[("kind", "Shared"), ("storageaccounttype", "premium_lrs")],
            ),
        ];
        for (provisioner, params) in ok {
            let issues = check_parameters(provisioner, params.iter().copied());
            assert!(issues.is_empty(), "{provisioner}: {issues:?}");
        }
        assert_eq!(
            check_parameters(BERTH, [("FSTYPE", "ext4")]),
            vec![unknown(BERTH, "FSTYPE")]
        );
        assert_eq!(check_parameters(BERTH, [("fsType", "EXT4")]).len(), 1);
    }

    #[test]
    fn issues_come_back_in_key_order() {
        let issues = check_parameters(
            EBS,
            [
                ("zzz", "1"),
                ("type", "io9"),
                ("aaa", "1"),
                ("iopsPerGB", "x"),
            ],
        );
        let keys: Vec<&str> = issues.iter().map(ParameterIssue::key).collect();
        assert_eq!(keys, ["aaa", "iopsPerGB", "type", "zzz"]);
    }

    #[test]
    fn prefixed_keys_match_only_longer_keys() {
        let driver = "ebs.csi.aws.com";
        assert!(check_parameters(driver, [("tagSpecification_1", "team=storage")]).is_empty());
        assert!(check_parameters(driver, [("tagspecification_2", "a=b")]).is_empty());
        assert_eq!(
            check_parameters(driver, [("tagSpecification_", "a=b")]),
            vec![unknown(driver, "tagSpecification_")]
        );
    }

    #[test]
    fn flocker_rejects_every_parameter() {
        // The in-tree Flocker provisioner refused any parameter at all.
        let p = "kubernetes.io/flocker";
        assert_eq!(
            check_parameters(p, [("profile", "gold")]),
            vec![unknown(p, "profile")]
        );
        assert!(check_parameters(p, []).is_empty());
    }

    #[test]
    fn display_names_the_provisioner() {
        assert_eq!(
            unknown(EBS, "iopsPerGb").to_string(),
            "unknown parameter \"iopsPerGb\" for provisioner kubernetes.io/aws-ebs"
        );
        let bad = ParameterIssue::BadValue {
            provisioner: BERTH.to_string(),
            key: "fsType".to_string(),
            value: "btrfs".to_string(),
            expected: "one of ext4, xfs".to_string(),
        };
        assert_eq!(
            bad.to_string(),
            "invalid value \"btrfs\" for parameter \"fsType\" of provisioner csi.berth.dev: expected one of ext4, xfs"
        );
        assert_eq!(bad.provisioner(), BERTH);
    }

    #[test]
    fn non_ascii_keys_do_not_panic() {
        // A prefix length can fall inside a multi-byte character.
        let key = "tagSpecification\u{e9}x";
        assert_eq!(check_parameters("ebs.csi.aws.com", [(key, "v")]).len(), 1);
        assert_eq!(check_parameters(EBS, [("ty\u{0301}pe", "gp2")]).len(), 1);
    }
}
