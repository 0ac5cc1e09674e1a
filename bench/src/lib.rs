//! Generated clusters for the binding benchmarks (`benches/plan.rs`,
//! `bin/dry_run_bench.rs`).
//!
//! [`describe`] draws one abstract cluster from a seed; [`Cluster::snapshot`]
//! renders it as the typed input of `berth::binding::plan`, and
//! [`Cluster::manifest_json`] as a Kubernetes `kind: List` document for
//! `berth dry-run`. Every random choice is made once, in `describe`, so the two
//! renderings cannot drift apart; the test at the bottom checks that both give
//! the same plan.
//!
//! The mix is meant to exercise every path of the planner at scale: five
//! classes (Immediate and WaitForFirstConsumer, a real provisioner and
//! `kubernetes.io/no-provisioner`), access-mode sets from RWO to RWO+ROX+RWX,
//! capacities from 1Gi to 1Ti written in binary and decimal units, label
//! selectors, claimRef pre-binding, `spec.volumeName`, already-bound pairs,
//! Released volumes, local volumes with node affinity and scheduled pods,
//! VolumeAttributesClasses, and volumes whose claim is bound to another
//! volume (upstream's "claim bound elsewhere").

pub mod cli;
pub mod cpu;
pub mod csi_load;
pub mod render;
pub mod report;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use berth::binding::Snapshot;
use berth::binding::snapshot::{
    Claim, ClaimClass, ClaimRef, ClaimSource, CsiNode, Namespace, Node, Origin, Pod, PodVolume,
    StorageClass, Volume, VolumeSource,
};
use berth::model::{
    AccessMode, AccessModes, BindingMode, ClaimKey, ClaimPhase, LabelRequirement, LabelSelector,
    Labels, NodeRequirement, NodeSelector, ObjectKey, ReclaimPolicy, VolumeMode, VolumePhase,
};
use berth::quantity::Quantity;
use serde_json::{Map, Value, json};

/// A small deterministic generator (splitmix64 seeding, xorshift64* steps):
/// the figures must be reproducible from the seed alone, and a benchmark
/// input does not need statistical quality, so no `rand` dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // splitmix64 spreads small seeds (0, 1, 2…) over the whole state;
        // xorshift's state must never be zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 1 } else { z })
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (`n` below 2^32), by multiply-shift rather than `%`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }

    /// True with probability `p` percent.
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    /// An index drawn with the given relative weights.
    pub fn weighted(&mut self, weights: &[u64]) -> usize {
        let total: u64 = weights.iter().sum();
        let mut r = self.below(total.max(1));
        for (i, &w) in weights.iter().enumerate() {
            if r < w {
                return i;
            }
            r -= w;
        }
        weights.len().saturating_sub(1)
    }
}

use AccessMode::ReadWriteOncePod as RWOP;
use AccessMode::{ReadOnlyMany as ROX, ReadWriteMany as RWX, ReadWriteOnce as RWO};

/// What backs the volumes of a class.
#[derive(Debug, Clone, Copy)]
pub enum Backing {
    /// `spec.csi` with this driver; `provisioned` adds the provisioned-by annotation.
    Csi {
        driver: &'static str,
        provisioned: bool,
    },
    /// `spec.local` with node affinity to one node.
    Local,
}

/// One StorageClass of the generated cluster and the shape of its objects.
#[derive(Debug)]
pub struct ClassDef {
    pub name: &'static str,
    pub provisioner: &'static str,
    pub wait_for_consumer: bool,
    pub is_default: bool,
    pub reclaim: &'static str,
    pub backing: Backing,
    /// Relative share of volumes and claims in this class.
    pub weight: u64,
    /// Access-mode sets of its volumes (repeats weight the draw).
    pub volume_modes: &'static [&'static [AccessMode]],
    /// Access-mode sets its claims ask for.
    pub claim_modes: &'static [&'static [AccessMode]],
}

pub const NO_PROVISIONER: &str = "kubernetes.io/no-provisioner";

/// The five classes. `fast` is the default, so unset claims land there.
/// Claim modes include some no volume has (e.g. RWOP on `shared`) so that
/// provisioning and "access mode unsupported" pending both occur. RWOP is
/// never combined with another mode: the API server rejects that.
pub const CLASSES: [ClassDef; 5] = [
    ClassDef {
        name: "fast",
        provisioner: "ebs.csi.aws.com",
        wait_for_consumer: false,
        is_default: true,
        reclaim: "Delete",
        backing: Backing::Csi {
            driver: "ebs.csi.aws.com",
            provisioned: true,
        },
        weight: 30,
        volume_modes: &[&[RWO], &[RWO], &[RWO], &[RWOP]],
        claim_modes: &[&[RWO], &[RWO], &[RWO], &[RWOP]],
    },
    ClassDef {
        name: "shared",
        provisioner: "file.csi.azure.com",
        wait_for_consumer: false,
        is_default: false,
        reclaim: "Delete",
        backing: Backing::Csi {
            driver: "file.csi.azure.com",
            provisioned: true,
        },
        weight: 15,
        volume_modes: &[&[RWX], &[RWX], &[ROX, RWX], &[ROX], &[RWO, ROX, RWX]],
        claim_modes: &[&[RWX], &[RWX], &[ROX], &[ROX, RWX], &[RWO], &[RWOP]],
    },
    ClassDef {
        name: "berth",
        provisioner: "csi.berth.dev",
        wait_for_consumer: false,
        is_default: false,
        reclaim: "Delete",
        backing: Backing::Csi {
            driver: "csi.berth.dev",
            provisioned: true,
        },
        weight: 15,
        volume_modes: &[&[RWO], &[RWO], &[RWOP]],
        claim_modes: &[&[RWO], &[RWO], &[RWO], &[RWOP], &[RWX]],
    },
    ClassDef {
        name: "local",
        provisioner: NO_PROVISIONER,
        wait_for_consumer: true,
        is_default: false,
        reclaim: "Retain",
        backing: Backing::Local,
        weight: 20,
        volume_modes: &[&[RWO]],
        claim_modes: &[&[RWO]],
    },
    ClassDef {
        name: "static",
        provisioner: NO_PROVISIONER,
        wait_for_consumer: false,
        is_default: false,
        reclaim: "Retain",
        backing: Backing::Csi {
            driver: "nfs.csi.k8s.io",
            provisioned: false,
        },
        weight: 20,
        volume_modes: &[&[RWO], &[RWO, ROX], &[RWX]],
        claim_modes: &[&[RWO], &[ROX], &[RWX]],
    },
];

const NAMESPACES: usize = 20;
const TIERS: [&str; 3] = ["gold", "silver", "bronze"];
/// The one VolumeAttributesClass some volumes carry and some claims ask for.
const ATTRIBUTES_CLASS: &str = "fast-iops";
const ZONES: usize = 3;
const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";
/// Per-node attach limit published in each CSINode (for the limits pass).
const EBS_LIMIT: u32 = 25;

/// A size as written in the manifest and its exact value, so the typed
/// rendering never has to fail on a string it produced itself.
#[derive(Debug, Clone)]
pub struct Size {
    pub text: String,
    pub bytes: u64,
}

const GI: u64 = 1 << 30;

impl Size {
    /// 1Gi–1Ti, log-uniform, written as `Gi`, `G`, `Mi` or `M`: the planner
    /// must compare `100G` with `100Gi` exactly.
    fn draw(rng: &mut Rng) -> Size {
        let base = 1u64 << rng.below(11); // 1..=1024 Gi
        let gi = (base + rng.below(base)).min(1024);
        let bytes = gi * GI;
        match rng.below(20) {
            0..10 => Size {
                text: format!("{gi}Gi"),
                bytes,
            },
            10..15 => {
                // Whole decimal gigabytes at or above the binary size, but
                // never above 1Ti (1099.5G).
                let g = bytes.div_ceil(1_000_000_000).min(1099);
                Size {
                    text: format!("{g}G"),
                    bytes: g * 1_000_000_000,
                }
            }
            15..18 => Size {
                text: format!("{}Mi", gi * 1024),
                bytes,
            },
            _ => {
                let m = bytes.div_ceil(1_000_000).min(1_099_511);
                Size {
                    text: format!("{m}M"),
                    bytes: m * 1_000_000,
                }
            }
        }
    }

    fn quantity(&self) -> Quantity {
        // `text` is always well-formed; the fallback keeps the exact value
        // rather than panicking if that ever stopped being true.
        Quantity::parse(&self.text).unwrap_or_else(|_| Quantity::from_bytes(self.bytes))
    }
}

/// `spec.claimRef` of a generated volume.
#[derive(Debug, Clone)]
pub struct RefDesc {
    pub namespace: String,
    pub name: String,
    pub uid: Option<String>,
}

#[derive(Debug, Clone)]
pub struct VolumeDesc {
    pub name: String,
    pub class: usize,
    pub capacity: Size,
    pub modes: &'static [AccessMode],
    pub block: bool,
    pub tier: &'static str,
    /// Local volumes: the node they live on.
    pub node: Option<usize>,
    pub claim_ref: Option<RefDesc>,
    pub phase: VolumePhase,
    /// `pv.kubernetes.io/bound-by-controller`.
    pub bound_by_controller: bool,
    /// `spec.volumeAttributesClassName`.
    pub attributes_class: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct ClaimDesc {
    pub namespace: String,
    pub name: String,
    /// `None`: no class written, so DefaultStorageClass fills in `fast`.
    pub class: Option<usize>,
    pub request: Size,
    pub modes: &'static [AccessMode],
    pub block: bool,
    /// `matchLabels: {tier: …}`.
    pub selector: Option<&'static str>,
    pub volume_name: Option<String>,
    /// Set for claims that already exist and are Bound.
    pub uid: Option<String>,
    pub bound: bool,
    /// `spec.volumeAttributesClassName`.
    pub attributes_class: Option<&'static str>,
}

#[derive(Debug, Clone)]
pub struct PodDesc {
    pub namespace: String,
    pub name: String,
    pub claim: String,
    pub node: Option<usize>,
}

/// The abstract cluster both renderings are made from.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub namespaces: Vec<String>,
    pub nodes: Vec<String>,
    pub volumes: Vec<VolumeDesc>,
    pub claims: Vec<ClaimDesc>,
    pub pods: Vec<PodDesc>,
}

/// Draws a cluster of `pvs` volumes and `pvcs` claims.
///
/// Shares (percent): 3% of volumes Released; of the claims that have a
/// same-numbered non-local volume, 4% are already bound to it, 3% are
/// reserved by its claimRef and 3% name it in `spec.volumeName`. Other claims:
/// 5% leave the class unset, 5% are Block, 10% of non-local ones carry a tier
/// selector, 3% ask for the VolumeAttributesClass `gold` (which 3% of volumes
/// have). Local claims: 80% have a pod on a node, 10% an unscheduled pod,
/// 10% no pod. Half of the already-bound claims also have an older volume
/// whose claimRef (with uid) still points at them (`pv-old-…`, added on top
/// of `pvs`), half of those bound by the controller. One node per 100
/// volumes (at least 4).
pub fn describe(pvs: usize, pvcs: usize, seed: u64) -> Cluster {
    let mut rng = Rng::new(seed);
    let weights: Vec<u64> = CLASSES.iter().map(|c| c.weight).collect();
    let local = CLASSES
        .iter()
        .position(|c| matches!(c.backing, Backing::Local));
    let namespaces: Vec<String> = (0..NAMESPACES).map(|i| format!("team-{i:02}")).collect();
    let nodes: Vec<String> = (0..(pvs / 100).max(4))
        .map(|i| format!("node-{i:05}"))
        .collect();

    let mut volumes: Vec<VolumeDesc> = (0..pvs)
        .map(|i| {
            let class = rng.weighted(&weights);
            let def = &CLASSES[class];
            let modes = def.volume_modes[rng.below(def.volume_modes.len() as u64) as usize];
            let capacity = Size::draw(&mut rng);
            let block = rng.percent(5);
            let tier = TIERS[rng.below(TIERS.len() as u64) as usize];
            let node = (Some(class) == local).then(|| rng.below(nodes.len() as u64) as usize);
            let released = rng.percent(3);
            let attributes_class = rng.percent(3).then_some(ATTRIBUTES_CLASS);
            let claim_ref = released.then(|| RefDesc {
                namespace: namespaces[i % NAMESPACES].clone(),
                name: format!("gone-{i:06}"),
                uid: Some(format!("uid-gone-{i:06}")),
            });
            VolumeDesc {
                name: format!("pv-{i:06}"),
                class,
                capacity,
                modes,
                block,
                tier,
                node,
                claim_ref,
                phase: if released {
                    VolumePhase::Released
                } else {
                    VolumePhase::Available
                },
                bound_by_controller: false,
                attributes_class,
            }
        })
        .collect();

    let mut claims = Vec::with_capacity(pvcs);
    let mut pods = Vec::new();
    for j in 0..pvcs {
        let namespace = namespaces[j % NAMESPACES].clone();
        let name = format!("data-{j:06}");
        let pairable = volumes
            .get(j)
            .is_some_and(|v| v.claim_ref.is_none() && Some(v.class) != local);
        let roll = rng.below(100);
        if pairable && roll < 10 {
            let v = &mut volumes[j];
            let mut claim = ClaimDesc {
                namespace: namespace.clone(),
                name: name.clone(),
                class: Some(v.class),
                request: v.capacity.clone(),
                modes: v.modes,
                block: v.block,
                selector: None,
                volume_name: None,
                uid: None,
                bound: false,
                attributes_class: v.attributes_class,
            };
            if roll < 4 {
                // Already bound: both sides point at each other.
                let uid = format!("uid-{j:06}");
                v.claim_ref = Some(RefDesc {
                    namespace,
                    name,
                    uid: Some(uid.clone()),
                });
                v.phase = VolumePhase::Bound;
                claim.uid = Some(uid.clone());
                claim.volume_name = Some(v.name.clone());
                claim.bound = true;
                if rng.percent(50) {
                    let old = VolumeDesc {
                        name: format!("pv-old-{j:06}"),
                        claim_ref: v.claim_ref.clone(),
                        bound_by_controller: rng.percent(50),
                        ..v.clone()
                    };
                    volumes.push(old);
                }
            } else if roll < 7 {
                // Reserved by the volume's claimRef, not yet bound.
                v.claim_ref = Some(RefDesc {
                    namespace,
                    name,
                    uid: None,
                });
            } else {
                claim.volume_name = Some(v.name.clone());
            }
            claims.push(claim);
            continue;
        }
        let unset = rng.percent(5);
        let class = if unset {
            CLASSES.iter().position(|c| c.is_default)
        } else {
            Some(rng.weighted(&weights))
        };
        let def = class.map(|c| &CLASSES[c]);
        let modes = def.map_or(&[RWO][..], |d| {
            d.claim_modes[rng.below(d.claim_modes.len() as u64) as usize]
        });
        let request = Size::draw(&mut rng);
        let block = rng.percent(5);
        let is_local = class.is_some() && class == local;
        let selector = (!is_local && rng.percent(10)).then_some(TIERS[0]);
        let attributes_class = rng.percent(3).then_some(ATTRIBUTES_CLASS);
        if is_local {
            let p = rng.below(10);
            if p < 9 {
                pods.push(PodDesc {
                    namespace: namespace.clone(),
                    name: format!("app-{j:06}"),
                    claim: name.clone(),
                    node: (p < 8).then(|| rng.below(nodes.len() as u64) as usize),
                });
            }
        }
        claims.push(ClaimDesc {
            namespace,
            name,
            class: if unset { None } else { class },
            request,
            modes,
            block,
            selector,
            volume_name: None,
            uid: None,
            bound: false,
            attributes_class,
        });
    }
    Cluster {
        namespaces,
        nodes,
        volumes,
        claims,
        pods,
    }
}

/// The typed snapshot of a generated cluster.
pub fn cluster(pvs: usize, pvcs: usize, seed: u64) -> Snapshot {
    describe(pvs, pvcs, seed).snapshot()
}

/// The same cluster as one Kubernetes `kind: List` JSON document.
pub fn cluster_manifest_json(pvs: usize, pvcs: usize, seed: u64) -> String {
    describe(pvs, pvcs, seed).manifest_json()
}

fn modes_set(modes: &[AccessMode]) -> AccessModes {
    modes.iter().copied().collect()
}

fn volume_mode(block: bool) -> VolumeMode {
    if block {
        VolumeMode::Block
    } else {
        VolumeMode::Filesystem
    }
}

fn reclaim_policy(p: &str) -> ReclaimPolicy {
    match p {
        "Delete" => ReclaimPolicy::Delete,
        "Recycle" => ReclaimPolicy::Recycle,
        "Retain" => ReclaimPolicy::Retain,
        other => ReclaimPolicy::Unknown(other.to_string()),
    }
}

fn zone_of(node: usize) -> String {
    format!("zone-{}", node % ZONES)
}

impl Cluster {
    /// Objects in the manifest (every kind), for per-object memory figures.
    pub fn object_count(&self) -> usize {
        self.namespaces.len()
            + CLASSES.len()
            + 2 * self.nodes.len()
            + self.volumes.len()
            + self.claims.len()
            + self.pods.len()
    }

    /// Position of each kind's first object in the List: the manifest reader
    /// numbers objects in document order (`seq`), and admission uses it.
    fn first_seq(&self) -> (usize, usize, usize) {
        let volumes = self.namespaces.len() + CLASSES.len() + 2 * self.nodes.len();
        let claims = volumes + self.volumes.len();
        let pods = claims + self.claims.len();
        (volumes, claims, pods)
    }

    /// Renders the typed input of the planner, field for field what
    /// `berth::manifest::to_snapshot` makes of [`Cluster::manifest_json`].
    pub fn snapshot(&self) -> Snapshot {
        let origin = || Origin {
            source: "generated".into(),
            document: 1,
        };
        let (_, claim_seq, pod_seq) = self.first_seq();
        let namespaces = self
            .namespaces
            .iter()
            .enumerate()
            .map(|(seq, name)| Namespace {
                name: name.clone(),
                terminating: false,
                seq,
            })
            .collect();
        let classes = CLASSES
            .iter()
            .map(|c| StorageClass {
                name: c.name.to_string(),
                provisioner: c.provisioner.to_string(),
                parameters: Vec::new(),
                reclaim_policy: reclaim_policy(c.reclaim),
                binding_mode: if c.wait_for_consumer {
                    BindingMode::WaitForFirstConsumer
                } else {
                    BindingMode::Immediate
                },
                is_default: c.is_default,
                created: None,
                allowed_topologies: None,
                origin: origin(),
            })
            .collect();
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, name)| Node {
                name: name.clone(),
                labels: Labels::from([
                    (HOSTNAME.to_string(), name.clone()),
                    (ZONE.to_string(), zone_of(i)),
                ]),
                unschedulable: false,
                taints: Vec::new(),
                allocatable: None,
            })
            .collect();
        let csi_nodes = self
            .nodes
            .iter()
            .map(|name| CsiNode {
                name: name.clone(),
                drivers: vec![("ebs.csi.aws.com".to_string(), Some(EBS_LIMIT))],
            })
            .collect();
        let volumes = self
            .volumes
            .iter()
            .map(|v| {
                let def = &CLASSES[v.class];
                let source = match def.backing {
                    Backing::Csi {
                        driver,
                        provisioned,
                    } => VolumeSource {
                        field: Some("csi".into()),
                        csi_driver: Some(driver.to_string()),
                        csi_handle: Some(v.name.clone()),
                        migrated: None,
                        provisioned_by: provisioned.then(|| def.provisioner.to_string()),
                    },
                    // Local volumes have no CSI driver to migrate to.
                    Backing::Local => VolumeSource {
                        field: Some("local".into()),
                        csi_driver: storage_classes::plugin_for_source_field("local")
                            .and_then(|p| p.csi_migration_driver)
                            .map(str::to_string),
                        csi_handle: None,
                        migrated: None,
                        provisioned_by: None,
                    },
                };
                Volume {
                    name: v.name.clone(),
                    capacity: Some(v.capacity.quantity()),
                    access_modes: modes_set(v.modes),
                    volume_mode: volume_mode(v.block),
                    class: def.name.to_string(),
                    attributes_class: v.attributes_class.unwrap_or_default().to_string(),
                    labels: BTreeMap::from([("tier".to_string(), v.tier.to_string())]),
                    claim_ref: v.claim_ref.as_ref().map(|r| ClaimRef {
                        key: ClaimKey::new(r.namespace.clone(), r.name.clone()),
                        uid: r.uid.clone(),
                    }),
                    bound_by_controller: v.bound_by_controller,
                    phase: Some(v.phase),
                    reclaim_policy: reclaim_policy(def.reclaim),
                    deleting: false,
                    node_affinity: v.node.map(|n| NodeSelector {
                        terms: vec![vec![NodeRequirement::Label(LabelRequirement::In(
                            HOSTNAME.to_string(),
                            vec![self.nodes[n].clone()],
                        ))]],
                    }),
                    source,
                    origin: origin(),
                }
            })
            .collect();
        let claims = self
            .claims
            .iter()
            .enumerate()
            .map(|(j, c)| Claim {
                key: ClaimKey::new(c.namespace.clone(), c.name.clone()),
                uid: c.uid.clone(),
                class: match c.class {
                    Some(i) => ClaimClass::Named(CLASSES[i].name.to_string()),
                    None => ClaimClass::Unset,
                },
                request: Some(c.request.quantity()),
                access_modes: modes_set(c.modes),
                volume_mode: volume_mode(c.block),
                selector: c.selector.map(|tier| LabelSelector {
                    requirements: vec![LabelRequirement::In(
                        "tier".to_string(),
                        vec![tier.to_string()],
                    )],
                }),
                attributes_class: c.attributes_class.unwrap_or_default().to_string(),
                volume_name: c.volume_name.clone(),
                selected_node: None,
                phase: if c.bound {
                    ClaimPhase::Bound
                } else {
                    ClaimPhase::Pending
                },
                bind_completed: c.bound,
                deleting: false,
                data_source: None,
                source: ClaimSource::Manifest,
                origin: origin(),
                seq: claim_seq + j,
            })
            .collect();
        let pods = self
            .pods
            .iter()
            .enumerate()
            .map(|(k, p)| Pod {
                key: ObjectKey::new(p.namespace.clone(), p.name.clone()),
                node_name: p.node.map(|n| self.nodes[n].clone()),
                volumes: vec![PodVolume::Claim(p.claim.clone())],
                terminated: false,
                ephemeral: Vec::new(),
                origin: origin(),
                seq: pod_seq + k,
                scheduling: Default::default(),
            })
            .collect();
        Snapshot {
            classes,
            volumes,
            claims,
            nodes,
            csi_nodes,
            pods,
            namespaces,
            ..Snapshot::default()
        }
    }

    /// Renders the manifest. Objects are serialized one at a time into the
    /// output, so a 100k × 100k cluster never exists as one `Value` tree.
    pub fn manifest_json(&self) -> String {
        let mut out = String::with_capacity(400 * self.object_count() + 64);
        out.push_str("{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[\n");
        let mut first = true;
        let mut emit = |item: Value| {
            if !first {
                out.push_str(",\n");
            }
            first = false;
            // Writing into a String cannot fail.
            let _ = write!(out, "{item}");
        };
        for name in &self.namespaces {
            emit(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}));
        }
        for c in &CLASSES {
            let mut metadata = Map::new();
            metadata.insert("name".into(), json!(c.name));
            if c.is_default {
                metadata.insert(
                    "annotations".into(),
                    json!({"storageclass.kubernetes.io/is-default-class": "true"}),
                );
            }
            emit(json!({
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": metadata,
                "provisioner": c.provisioner,
                "reclaimPolicy": c.reclaim,
                "volumeBindingMode": if c.wait_for_consumer { "WaitForFirstConsumer" } else { "Immediate" },
            }));
        }
        for (i, name) in self.nodes.iter().enumerate() {
            emit(json!({
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {HOSTNAME: name, ZONE: zone_of(i)}},
            }));
        }
        for name in &self.nodes {
            emit(json!({
                "apiVersion": "storage.k8s.io/v1",
                "kind": "CSINode",
                "metadata": {"name": name},
                "spec": {"drivers": [{
                    "name": "ebs.csi.aws.com",
                    "nodeID": name,
                    "allocatable": {"count": EBS_LIMIT},
                }]},
            }));
        }
        for v in &self.volumes {
            emit(self.volume_json(v));
        }
        for c in &self.claims {
            emit(claim_json(c));
        }
        for p in &self.pods {
            let mut spec = Map::new();
            spec.insert(
                "containers".into(),
                json!([{"name": "app", "image": "busybox"}]),
            );
            spec.insert(
                "volumes".into(),
                json!([{"name": "data", "persistentVolumeClaim": {"claimName": p.claim}}]),
            );
            if let Some(n) = p.node {
                spec.insert("nodeName".into(), json!(self.nodes[n]));
            }
            emit(json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": p.name, "namespace": p.namespace},
                "spec": spec,
            }));
        }
        out.push_str("\n]}\n");
        out
    }

    fn volume_json(&self, v: &VolumeDesc) -> Value {
        let def = &CLASSES[v.class];
        let mut metadata = Map::new();
        metadata.insert("name".into(), json!(v.name));
        metadata.insert("labels".into(), json!({"tier": v.tier}));
        let mut spec = Map::new();
        spec.insert("capacity".into(), json!({"storage": v.capacity.text}));
        spec.insert("accessModes".into(), modes_json(v.modes));
        spec.insert("storageClassName".into(), json!(def.name));
        spec.insert("persistentVolumeReclaimPolicy".into(), json!(def.reclaim));
        if v.block {
            spec.insert("volumeMode".into(), json!("Block"));
        }
        match def.backing {
            Backing::Csi {
                driver,
                provisioned,
            } => {
                spec.insert(
                    "csi".into(),
                    json!({"driver": driver, "volumeHandle": v.name}),
                );
                if provisioned {
                    metadata.insert(
                        "annotations".into(),
                        json!({"pv.kubernetes.io/provisioned-by": def.provisioner}),
                    );
                }
            }
            Backing::Local => {
                spec.insert(
                    "local".into(),
                    json!({"path": format!("/mnt/disks/{}", v.name)}),
                );
            }
        }
        if let Some(n) = v.node {
            spec.insert(
                "nodeAffinity".into(),
                json!({"required": {"nodeSelectorTerms": [{"matchExpressions": [
                    {"key": HOSTNAME, "operator": "In", "values": [self.nodes[n]]}
                ]}]}}),
            );
        }
        if v.bound_by_controller {
            let annotations = metadata.entry("annotations").or_insert_with(|| json!({}));
            annotations["pv.kubernetes.io/bound-by-controller"] = json!("yes");
        }
        if let Some(a) = v.attributes_class {
            spec.insert("volumeAttributesClassName".into(), json!(a));
        }
        if let Some(r) = &v.claim_ref {
            let mut claim_ref = Map::new();
            claim_ref.insert("kind".into(), json!("PersistentVolumeClaim"));
            claim_ref.insert("namespace".into(), json!(r.namespace));
            claim_ref.insert("name".into(), json!(r.name));
            if let Some(uid) = &r.uid {
                claim_ref.insert("uid".into(), json!(uid));
            }
            spec.insert("claimRef".into(), Value::Object(claim_ref));
        }
        json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": metadata,
            "spec": spec,
            "status": {"phase": v.phase.as_str()},
        })
    }
}

fn modes_json(modes: &[AccessMode]) -> Value {
    Value::Array(modes.iter().map(|m| json!(m.as_str())).collect())
}

fn claim_json(c: &ClaimDesc) -> Value {
    let mut metadata = Map::new();
    metadata.insert("name".into(), json!(c.name));
    metadata.insert("namespace".into(), json!(c.namespace));
    if let Some(uid) = &c.uid {
        metadata.insert("uid".into(), json!(uid));
    }
    if c.bound {
        // As the binder leaves a claim it bound: without the annotation
        // upstream reads a Bound claim as one still being bound.
        metadata.insert(
            "annotations".into(),
            json!({"pv.kubernetes.io/bind-completed": "yes"}),
        );
    }
    let mut spec = Map::new();
    spec.insert("accessModes".into(), modes_json(c.modes));
    spec.insert(
        "resources".into(),
        json!({"requests": {"storage": c.request.text}}),
    );
    if let Some(i) = c.class {
        spec.insert("storageClassName".into(), json!(CLASSES[i].name));
    }
    if c.block {
        spec.insert("volumeMode".into(), json!("Block"));
    }
    if let Some(tier) = c.selector {
        spec.insert("selector".into(), json!({"matchLabels": {"tier": tier}}));
    }
    if let Some(v) = &c.volume_name {
        spec.insert("volumeName".into(), json!(v));
    }
    if let Some(a) = c.attributes_class {
        spec.insert("volumeAttributesClassName".into(), json!(a));
    }
    let mut claim = Map::new();
    claim.insert("apiVersion".into(), json!("v1"));
    claim.insert("kind".into(), json!("PersistentVolumeClaim"));
    claim.insert("metadata".into(), Value::Object(metadata));
    claim.insert("spec".into(), Value::Object(spec));
    if c.bound {
        claim.insert("status".into(), json!({"phase": "Bound"}));
    }
    Value::Object(claim)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth::binding::{BindHow, plan};

    fn parsed(json: &str) -> Snapshot {
        let docs = berth::manifest::parse_str("cluster.json", json).expect("manifest parses");
        berth::manifest::to_snapshot(docs).expect("manifest converts")
    }

    #[test]
    fn both_renderings_plan_the_same() {
        for (pvs, pvcs, seed) in [(2000, 2000, 1), (500, 1500, 2), (1500, 300, 3)] {
            let c = describe(pvs, pvcs, seed);
            let from_json = parsed(&c.manifest_json());
            assert!(from_json.warnings.is_empty(), "{:?}", from_json.warnings);
            assert_eq!(from_json.volumes.len(), c.volumes.len());
            assert!(c.volumes.len() >= pvs);
            assert_eq!(from_json.claims.len(), pvcs);
            assert_eq!(plan(&c.snapshot()), plan(&from_json), "{pvs}x{pvcs}");
        }
    }

    #[test]
    fn the_mix_reaches_every_path() {
        let p = plan(&cluster(5000, 5000, 42));
        let count = |f: fn(&BindHow) -> bool| p.bindings.iter().filter(|b| f(&b.how)).count();
        assert!(count(|h| matches!(h, BindHow::Matched)) > 1000);
        assert!(count(|h| matches!(h, BindHow::AlreadyBound)) > 50);
        assert!(count(|h| matches!(h, BindHow::PreBound)) > 50);
        assert!(count(|h| matches!(h, BindHow::VolumeName)) > 50);
        assert!(count(|h| matches!(h, BindHow::Scheduler { .. })) > 50);
        assert!(p.provisioning.len() > 100);
        assert!(p.provisioning.iter().any(|x| x.node.is_none()));
        assert!(p.pending.len() > 100);
        assert!(!p.reclaim.is_empty());
        let action = |a: &str| p.reclaim.iter().filter(|r| r.action.as_str() == a).count();
        assert!(
            action("unbind") > 10,
            "claim bound elsewhere: unbound volumes"
        );
        let matched_old = p
            .bindings
            .iter()
            .filter(|b| b.volume.starts_with("pv-old-") && matches!(b.how, BindHow::Matched))
            .count();
        assert!(matched_old > 0, "a rolled-back volume binds another claim");
        let snap = cluster(5000, 5000, 42);
        let gold = |c: &berth::binding::snapshot::Claim| !c.attributes_class.is_empty();
        assert!(snap.claims.iter().filter(|c| gold(c)).count() > 50);
        assert!(p.rejected.is_empty(), "{:?}", p.rejected.first());
    }

    #[test]
    fn deterministic_per_seed() {
        assert_eq!(
            cluster_manifest_json(300, 300, 9),
            cluster_manifest_json(300, 300, 9)
        );
        assert_ne!(
            cluster_manifest_json(300, 300, 9),
            cluster_manifest_json(300, 300, 10)
        );
    }
}
