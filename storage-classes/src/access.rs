//! Access modes of PersistentVolumes and claims, and the support levels a volume
//! plugin can offer for each of them.
//!
//! The strings are exactly the Kubernetes API values (`spec.accessModes`), so a
//! claim can be parsed and echoed back without a translation table elsewhere.

use std::fmt;

/// A PersistentVolume access mode, as named by the Kubernetes API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AccessMode {
    /// Read-write, mounted by a single node (pods on that node may share it).
    ReadWriteOnce,
    /// Read-only, mounted by many nodes.
    ReadOnlyMany,
    /// Read-write, mounted by many nodes.
    ReadWriteMany,
    /// Read-write, mounted by a single pod in the whole cluster.
    ReadWriteOncePod,
}

impl AccessMode {
    /// Every mode, in the order used for bitsets and per-mode tables
    /// (`Provisioner::modes` is indexed by this order).
    pub const ALL: [AccessMode; 4] = [
        AccessMode::ReadWriteOnce,
        AccessMode::ReadOnlyMany,
        AccessMode::ReadWriteMany,
        AccessMode::ReadWriteOncePod,
    ];

    /// The Kubernetes API string.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "ReadWriteOnce",
            AccessMode::ReadOnlyMany => "ReadOnlyMany",
            AccessMode::ReadWriteMany => "ReadWriteMany",
            AccessMode::ReadWriteOncePod => "ReadWriteOncePod",
        }
    }

    /// The abbreviation `kubectl` prints.
    pub fn short(self) -> &'static str {
        match self {
            AccessMode::ReadWriteOnce => "RWO",
            AccessMode::ReadOnlyMany => "ROX",
            AccessMode::ReadWriteMany => "RWX",
            AccessMode::ReadWriteOncePod => "RWOP",
        }
    }

    /// Parses an API string. Only the exact API spelling is accepted: the API
    /// server rejects anything else, so being lenient here would let a manifest
    /// pass berth's checks and then fail on `kubectl apply`.
    pub fn parse(s: &str) -> Option<AccessMode> {
        AccessMode::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// One bit per mode, so a set of modes fits in a `u8`.
    pub fn bit(self) -> u8 {
        1 << self.index()
    }

    /// Position in [`AccessMode::ALL`].
    pub(crate) fn index(self) -> usize {
        match self {
            AccessMode::ReadWriteOnce => 0,
            AccessMode::ReadOnlyMany => 1,
            AccessMode::ReadWriteMany => 2,
            AccessMode::ReadWriteOncePod => 3,
        }
    }
}

impl fmt::Display for AccessMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How far a volume plugin (or a provisioner) supports one access mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Support {
    /// Supported.
    Yes,
    /// Not supported.
    No,
    /// Decided by the concrete driver (CSI, FlexVolume) or by the parameters it
    /// is given; the catalog cannot rule it out.
    DependsOnDriver,
    /// vSphere's RWX cell: it only works when every pod using the volume runs
    /// on the same node.
    WhenPodsCollocated,
}

impl Support {
    /// Whether a claim asking for this mode may go ahead. Only an outright `No`
    /// blocks: the conditional cells are left to the driver, which knows more
    /// than a static table can.
    pub fn allows(self) -> bool {
        !matches!(self, Support::No)
    }

    /// Human-readable wording, close to the Kubernetes documentation table.
    pub fn as_str(self) -> &'static str {
        match self {
            Support::Yes => "yes",
            Support::No => "no",
            Support::DependsOnDriver => "depends on the driver",
            Support::WhenPodsCollocated => "works when Pods are collocated",
        }
    }
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_strings_short_names_and_bits_follow_all_order() {
        let table = [
            (AccessMode::ReadWriteOnce, "ReadWriteOnce", "RWO", 1u8),
            (AccessMode::ReadOnlyMany, "ReadOnlyMany", "ROX", 2),
            (AccessMode::ReadWriteMany, "ReadWriteMany", "RWX", 4),
            (AccessMode::ReadWriteOncePod, "ReadWriteOncePod", "RWOP", 8),
        ];
        for (i, (mode, api, short, bit)) in table.into_iter().enumerate() {
            assert_eq!(AccessMode::ALL[i], mode);
            assert_eq!(mode.as_str(), api);
            assert_eq!(mode.to_string(), api);
            assert_eq!(mode.short(), short);
            assert_eq!(mode.bit(), bit);
            assert_eq!(AccessMode::parse(api), Some(mode));
        }
    }

    #[test]
    fn parse_accepts_only_exact_api_strings() {
        for bad in [
            "",
            "RWO",
            "readwriteonce",
            "ReadWriteOnce ",
            " ReadOnlyMany",
            "ReadWriteOncepod",
        ] {
            assert_eq!(AccessMode::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_no_blocks_a_mode() {
        let table = [
            (Support::Yes, true),
            (Support::No, false),
            (Support::DependsOnDriver, true),
            (Support::WhenPodsCollocated, true),
        ];
        for (support, allows) in table {
            assert_eq!(support.allows(), allows, "{support:?}");
            assert!(!support.as_str().is_empty());
        }
    }
}
