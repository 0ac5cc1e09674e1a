//! The rules a claim's data source must pass before a volume is made from
//! it: a clone of another claim, or a restore of a VolumeSnapshot. They are
//! the CSI external-provisioner's (`getPVCSource`, `getSnapshotSource`),
//! with its messages, so a user reads the same reason from berth as from
//! upstream.
//!
//! The rules look at small borrowed views of the objects involved, so the
//! planner (typed snapshot objects) and the provisioner (live Kubernetes
//! objects) judge a data source by the same code.

use std::fmt;

use crate::quantity::Quantity;

/// Why a data source cannot be used (yet). Every one of them leaves the
/// claim Pending without a volume: a volume is never made empty in place
/// of a clone or a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `dataSourceRef.namespace` needs the CrossNamespaceVolumeDataSource
    /// feature (alpha, off by default).
    OtherNamespace,
    /// A VolumeSnapshot of an API group other than snapshot.storage.k8s.io.
    WrongSnapshotGroup(String),
    /// The data source has no name.
    NoName {
        claim: String,
    },
    ClaimNotFound {
        name: String,
        namespace: String,
    },
    ClaimNotBound {
        name: String,
        phase: String,
    },
    ClaimDeleting(String),
    SourceClassEmpty(String),
    ClassEmpty(String),
    ClaimTooSmall {
        requested: i128,
        source: i128,
    },
    SourceVolumeNameEmpty(String),
    /// The source claim's volume is missing, not a CSI volume of the class's
    /// driver, not bound back to it, or not Bound.
    SourceVolumeInvalid,
    /// A Block claim from a Filesystem source, or the reverse.
    VolumeModeMismatch {
        source_block: bool,
    },
    SnapshotNotFound(String),
    SnapshotDeleting(String),
    SnapshotNotBound(String),
    SnapshotNotReady(String),
    SnapshotHandleMissing(String),
    SnapshotTooSmall {
        requested: i128,
        restore: i128,
        name: String,
    },
    /// berth's volumes live on one node: a clone or a restore can only be
    /// made where its source is.
    SourceOnOtherNode {
        source: String,
        node: String,
    },
}

impl Problem {
    /// Upstream checks these before it looks the source up: its message is
    /// not wrapped in "error getting handle for DataSource ...".
    fn is_precheck(&self) -> bool {
        matches!(
            self,
            Problem::OtherNamespace | Problem::WrongSnapshotGroup(_) | Problem::NoName { .. }
        )
    }

    /// The message of a ProvisioningFailed event (after upstream's
    /// "failed to provision volume with StorageClass ..." prefix).
    pub fn message(&self, kind: &str, name: &str) -> String {
        if self.is_precheck() {
            self.to_string()
        } else {
            format!("error getting handle for DataSource Type {kind} by Name {name}: {self}")
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::OtherNamespace => f.write_str(
                "dataSourceRef namespace specified but the CrossNamespaceVolumeDataSource feature is disabled",
            ),
            Problem::WrongSnapshotGroup(g) => write!(
                f,
                "the PVC source does not belong to the right APIGroup. Expected snapshot.storage.k8s.io, Got {g}"
            ),
            Problem::NoName { claim } => write!(f, "the PVC source not found for PVC {claim}"),
            Problem::ClaimNotFound { name, namespace } => write!(
                f,
                "error getting PVC {name} (namespace {namespace:?}) from api server: persistentvolumeclaim {name:?} not found"
            ),
            Problem::ClaimNotBound { name, phase } => write!(
                f,
                "the PVC DataSource {name} must have a status of Bound.  Got {phase}"
            ),
            Problem::ClaimDeleting(n) => {
                write!(f, "the PVC DataSource {n} is currently being deleted")
            }
            Problem::SourceClassEmpty(n) => {
                write!(f, "the source PVC ({n}) storageclass cannot be empty")
            }
            Problem::ClassEmpty(n) => {
                write!(f, "the requested PVC ({n}) storageclass cannot be empty")
            }
            Problem::ClaimTooSmall { requested, source } => write!(
                f,
                "error, new PVC request must be greater than or equal in size to the specified PVC data source, requested {requested} but source is {source}"
            ),
            Problem::SourceVolumeNameEmpty(n) => {
                write!(f, "volume name is empty in source PVC {n}")
            }
            Problem::SourceVolumeInvalid => f.write_str("claim in dataSource not bound or invalid"),
            Problem::VolumeModeMismatch { source_block: true } => f.write_str(
                "the source PVC and destination PVCs must have the same volume mode for cloning.  Source is Block, but new PVC requested Filesystem",
            ),
            Problem::VolumeModeMismatch {
                source_block: false,
            } => f.write_str(
                "the source PVC and destination PVCs must have the same volume mode for cloning.  Source is Filesystem, but new PVC requested Block",
            ),
            Problem::SnapshotNotFound(n) => write!(
                f,
                "error getting snapshot {n} from api server: volumesnapshots.snapshot.storage.k8s.io {n:?} not found"
            ),
            Problem::SnapshotDeleting(n) => write!(f, "snapshot {n} is being deleted"),
            Problem::SnapshotNotBound(n) => write!(f, "snapshot {n} not bound"),
            Problem::SnapshotNotReady(n) => write!(f, "snapshot {n} is not Ready"),
            Problem::SnapshotHandleMissing(n) => {
                write!(f, "snapshot handle {n} is not available")
            }
            Problem::SnapshotTooSmall {
                requested,
                restore,
                name,
            } => write!(
                f,
                "requested volume size {requested} is less than the size {restore} for the source snapshot {name}"
            ),
            Problem::SourceOnOtherNode { source, node } => write!(
                f,
                "the source volume {source} is not on node {node}: a node-local volume is cloned or restored on its source's node"
            ),
        }
    }
}

/// The claim asking for a clone or a restore.
#[derive(Debug, Clone, Copy)]
pub struct NewClaim<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    /// `spec.storageClassName` (after admission gave it the default).
    pub class: Option<&'a str>,
    pub request: Option<Quantity>,
    pub block: bool,
    /// The class's provisioner: the source must be its driver's.
    pub driver: &'a str,
}

/// The claim a clone is made from.
#[derive(Debug, Clone, Copy)]
pub struct SourceClaim<'a> {
    pub uid: Option<&'a str>,
    pub phase: &'a str,
    pub deleting: bool,
    pub class: Option<&'a str>,
    pub request: Option<Quantity>,
    pub volume_name: Option<&'a str>,
}

/// The volume bound to a clone's source claim.
#[derive(Debug, Clone, Copy)]
pub struct SourceVolume<'a> {
    pub csi_driver: Option<&'a str>,
    pub handle: Option<&'a str>,
    /// `spec.claimRef`: namespace, name, uid.
    pub claim_ref: Option<(&'a str, &'a str, Option<&'a str>)>,
    pub bound: bool,
    pub block: bool,
}

fn bytes(q: Option<Quantity>) -> i128 {
    q.map_or(0, |q| q.value_ceil())
}

/// Upstream's `getPVCSource`: the CSI volume id to clone from.
/// `source_volume` is the PV the source claim's `spec.volumeName` names,
/// when it exists.
pub fn check_clone<'a>(
    claim: &NewClaim<'_>,
    source_name: &str,
    source: Option<&SourceClaim<'_>>,
    source_volume: Option<&SourceVolume<'a>>,
) -> Result<&'a str, Problem> {
    let Some(source) = source else {
        return Err(Problem::ClaimNotFound {
            name: source_name.to_string(),
            namespace: claim.namespace.to_string(),
        });
    };
    if source.phase != "Bound" {
        return Err(Problem::ClaimNotBound {
            name: source_name.to_string(),
            phase: source.phase.to_string(),
        });
    }
    if source.deleting {
        return Err(Problem::ClaimDeleting(source_name.to_string()));
    }
    if source.class.is_none() {
        return Err(Problem::SourceClassEmpty(source_name.to_string()));
    }
    if claim.class.is_none() {
        return Err(Problem::ClassEmpty(claim.name.to_string()));
    }
    let (requested, source_size) = (bytes(claim.request), bytes(source.request));
    if requested < source_size {
        return Err(Problem::ClaimTooSmall {
            requested,
            source: source_size,
        });
    }
    if source.volume_name.is_none_or(str::is_empty) {
        return Err(Problem::SourceVolumeNameEmpty(source_name.to_string()));
    }
    let volume = source_volume.ok_or(Problem::SourceVolumeInvalid)?;
    let handle = match (volume.csi_driver, volume.handle) {
        (Some(d), Some(h)) if d == claim.driver => h,
        _ => return Err(Problem::SourceVolumeInvalid),
    };
    let bound_back = volume.claim_ref.is_some_and(|(ns, name, uid)| {
        ns == claim.namespace && name == source_name && uid == source.uid
    });
    if !bound_back || !volume.bound {
        return Err(Problem::SourceVolumeInvalid);
    }
    if volume.block != claim.block {
        return Err(Problem::VolumeModeMismatch {
            source_block: volume.block,
        });
    }
    Ok(handle)
}

/// A VolumeSnapshot, as a restore looks at it.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotView<'a> {
    pub uid: Option<&'a str>,
    pub deleting: bool,
    pub protected: bool,
    pub content: Option<&'a str>,
    pub ready: bool,
    pub restore_size: Option<Quantity>,
}

/// A VolumeSnapshotContent, as a restore looks at it.
#[derive(Debug, Clone, Copy)]
pub struct ContentView<'a> {
    pub driver: &'a str,
    /// `spec.volumeSnapshotRef`: namespace, name, uid.
    pub snapshot: Option<(&'a str, &'a str, Option<&'a str>)>,
    pub handle: Option<&'a str>,
}

/// Upstream's `getSnapshotSource`: the CSI snapshot id to restore from.
/// `content` is the VolumeSnapshotContent the snapshot's status names,
/// when it exists.
pub fn check_restore<'a>(
    claim: &NewClaim<'_>,
    name: &str,
    snapshot: Option<&SnapshotView<'_>>,
    content: Option<&ContentView<'a>>,
) -> Result<&'a str, Problem> {
    let snapshot = snapshot.ok_or_else(|| Problem::SnapshotNotFound(name.to_string()))?;
    // A restore that already protected its snapshot may finish even while
    // the snapshot is being deleted; a new one may not start.
    if snapshot.deleting && !snapshot.protected {
        return Err(Problem::SnapshotDeleting(name.to_string()));
    }
    let not_bound = || Problem::SnapshotNotBound(name.to_string());
    snapshot.content.ok_or_else(not_bound)?;
    let content = content.ok_or_else(not_bound)?;
    let points_back = content
        .snapshot
        .is_some_and(|(ns, n, uid)| ns == claim.namespace && n == name && uid == snapshot.uid);
    if !points_back || content.driver != claim.driver {
        return Err(not_bound());
    }
    if !snapshot.ready {
        return Err(Problem::SnapshotNotReady(name.to_string()));
    }
    let handle = content
        .handle
        .ok_or_else(|| Problem::SnapshotHandleMissing(name.to_string()))?;
    if let Some(restore) = snapshot.restore_size {
        let (requested, restore) = (bytes(claim.request), restore.value_ceil());
        if requested < restore {
            return Err(Problem::SnapshotTooSmall {
                requested,
                restore,
                name: name.to_string(),
            });
        }
    }
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Option<Quantity> {
        Quantity::parse(s).ok()
    }

    const CLAIM: NewClaim<'static> = NewClaim {
        name: "copy",
        namespace: "ns",
        class: Some("fast"),
        request: None,
        block: false,
        driver: "csi.berth.dev",
    };

    fn source() -> SourceClaim<'static> {
        SourceClaim {
            uid: Some("u1"),
            phase: "Bound",
            deleting: false,
            class: Some("fast"),
            request: q("1Gi"),
            volume_name: Some("pv1"),
        }
    }

    fn volume() -> SourceVolume<'static> {
        SourceVolume {
            csi_driver: Some("csi.berth.dev"),
            handle: Some("vol-1"),
            claim_ref: Some(("ns", "src", Some("u1"))),
            bound: true,
            block: false,
        }
    }

    #[test]
    fn clone_rules_in_upstream_order() {
        let claim = NewClaim {
            request: q("1Gi"),
            ..CLAIM
        };
        let ok = check_clone(&claim, "src", Some(&source()), Some(&volume()));
        assert_eq!(ok, Ok("vol-1"));
        // Another class of the same driver is fine (upstream dropped the
        // same-class rule for a same-driver rule).
        let other_class = NewClaim {
            class: Some("slow"),
            ..claim
        };
        assert_eq!(
            check_clone(&other_class, "src", Some(&source()), Some(&volume())),
            Ok("vol-1")
        );

        let cases: Vec<(
            &str,
            NewClaim,
            Option<SourceClaim>,
            Option<SourceVolume>,
            Problem,
        )> = vec![
            (
                "missing source",
                claim,
                None,
                None,
                Problem::ClaimNotFound {
                    name: "src".into(),
                    namespace: "ns".into(),
                },
            ),
            (
                "source pending",
                claim,
                Some(SourceClaim {
                    phase: "Pending",
                    ..source()
                }),
                Some(volume()),
                Problem::ClaimNotBound {
                    name: "src".into(),
                    phase: "Pending".into(),
                },
            ),
            (
                "source deleting",
                claim,
                Some(SourceClaim {
                    deleting: true,
                    ..source()
                }),
                Some(volume()),
                Problem::ClaimDeleting("src".into()),
            ),
            (
                "smaller than the source",
                NewClaim {
                    request: q("512Mi"),
                    ..claim
                },
                Some(source()),
                Some(volume()),
                Problem::ClaimTooSmall {
                    requested: 536870912,
                    source: 1073741824,
                },
            ),
            (
                "another driver's volume",
                claim,
                Some(source()),
                Some(SourceVolume {
                    csi_driver: Some("other.csi"),
                    ..volume()
                }),
                Problem::SourceVolumeInvalid,
            ),
            (
                "volume bound to another claim",
                claim,
                Some(source()),
                Some(SourceVolume {
                    claim_ref: Some(("ns", "src", Some("u2"))),
                    ..volume()
                }),
                Problem::SourceVolumeInvalid,
            ),
            (
                "no volume",
                claim,
                Some(source()),
                None,
                Problem::SourceVolumeInvalid,
            ),
            (
                "block from filesystem",
                NewClaim {
                    block: true,
                    ..claim
                },
                Some(source()),
                Some(volume()),
                Problem::VolumeModeMismatch {
                    source_block: false,
                },
            ),
        ];
        for (name, c, s, v, want) in cases {
            assert_eq!(
                check_clone(&c, "src", s.as_ref(), v.as_ref()),
                Err(want),
                "{name}"
            );
        }
    }

    #[test]
    fn restore_rules_in_upstream_order() {
        let claim = NewClaim {
            request: q("1Gi"),
            ..CLAIM
        };
        let snap = SnapshotView {
            uid: Some("s1"),
            deleting: false,
            protected: false,
            content: Some("c1"),
            ready: true,
            restore_size: q("1Gi"),
        };
        let content = ContentView {
            driver: "csi.berth.dev",
            snapshot: Some(("ns", "snap", Some("s1"))),
            handle: Some("snap-1"),
        };
        assert_eq!(
            check_restore(&claim, "snap", Some(&snap), Some(&content)),
            Ok("snap-1")
        );
        let not_ready = SnapshotView {
            ready: false,
            ..snap
        };
        assert_eq!(
            check_restore(&claim, "snap", Some(&not_ready), Some(&content)),
            Err(Problem::SnapshotNotReady("snap".into()))
        );
        assert_eq!(
            check_restore(&claim, "snap", None, None),
            Err(Problem::SnapshotNotFound("snap".into()))
        );
        let deleting = SnapshotView {
            deleting: true,
            ..snap
        };
        assert_eq!(
            check_restore(&claim, "snap", Some(&deleting), Some(&content)),
            Err(Problem::SnapshotDeleting("snap".into()))
        );
        let started = SnapshotView {
            protected: true,
            ..deleting
        };
        assert_eq!(
            check_restore(&claim, "snap", Some(&started), Some(&content)),
            Ok("snap-1")
        );
        let small = NewClaim {
            request: q("512Mi"),
            ..claim
        };
        assert_eq!(
            check_restore(&small, "snap", Some(&snap), Some(&content)),
            Err(Problem::SnapshotTooSmall {
                requested: 536870912,
                restore: 1073741824,
                name: "snap".into()
            })
        );
        let other_driver = ContentView {
            driver: "other.csi",
            ..content
        };
        assert_eq!(
            check_restore(&claim, "snap", Some(&snap), Some(&other_driver)),
            Err(Problem::SnapshotNotBound("snap".into()))
        );
        let no_handle = ContentView {
            handle: None,
            ..content
        };
        assert_eq!(
            check_restore(&claim, "snap", Some(&snap), Some(&no_handle)),
            Err(Problem::SnapshotHandleMissing("snap".into()))
        );
    }

    #[test]
    fn messages_are_upstreams() {
        let p = Problem::ClaimNotBound {
            name: "src".into(),
            phase: "Pending".into(),
        };
        assert_eq!(
            p.message("PersistentVolumeClaim", "src"),
            "error getting handle for DataSource Type PersistentVolumeClaim by Name src: the PVC DataSource src must have a status of Bound.  Got Pending"
        );
        assert_eq!(
            Problem::OtherNamespace.message("PersistentVolumeClaim", "src"),
            "dataSourceRef namespace specified but the CrossNamespaceVolumeDataSource feature is disabled"
        );
    }
}
