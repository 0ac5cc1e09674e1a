//! Builders for the objects upstream's PV controller and scheduler tests
//! make (`newVolume`, `newClaim`, `makePVC`, `testVolume`, …), rendered as
//! manifests, so the `upstream_*` suites can state each upstream case with
//! the same objects and let berth plan them.
//!
//! Every string is written as a JSON string, which YAML reads verbatim, so
//! values such as `yes` or `1` stay strings.

use std::fmt::Write as _;

/// Upstream's `testNamespace` in `framework_test.go`.
pub const TEST_NAMESPACE: &str = "default";
/// Upstream's `mockPluginName`: the plugin the PV controller tests provision,
/// delete and recycle with.
pub const MOCK_PLUGIN: &str = "kubernetes.io/mock-volume";
/// `pv.kubernetes.io/bound-by-controller`.
pub const ANN_BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// `pv.kubernetes.io/bind-completed`.
pub const ANN_BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// `pv.kubernetes.io/provisioned-by`.
pub const ANN_PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// `volume.beta.kubernetes.io/storage-class`.
pub const ANN_BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// `volume.kubernetes.io/selected-node`.
pub const ANN_SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

const RWO_ROX: &[&str] = &["ReadWriteOnce", "ReadOnlyMany"];

fn q(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

fn map_block(out: &mut String, indent: &str, key: &str, pairs: &[(String, String)]) {
    if pairs.is_empty() {
        return;
    }
    let _ = writeln!(out, "{indent}{key}:");
    for (k, v) in pairs {
        let _ = writeln!(out, "{indent}  {}: {}", q(k), q(v));
    }
}

fn list_block(out: &mut String, indent: &str, key: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(out, "{indent}{key}:");
    for i in items {
        let _ = writeln!(out, "{indent}- {}", q(i));
    }
}

/// A PersistentVolume.
#[derive(Debug, Clone)]
pub struct Pv {
    pub name: String,
    pub capacity: Option<String>,
    pub modes: Vec<String>,
    pub class: Option<String>,
    /// (namespace, name, uid); `None` parts are left out of the claimRef.
    pub claim_ref: Option<(Option<String>, Option<String>, Option<String>)>,
    pub phase: Option<String>,
    pub policy: Option<String>,
    pub annotations: Vec<(String, String)>,
    pub labels: Vec<(String, String)>,
    pub finalizers: Vec<String>,
    pub volume_mode: Option<String>,
    pub deleting: bool,
    /// YAML of `spec.nodeAffinity`, indented under `spec:` by two spaces.
    pub node_affinity: Option<String>,
    /// YAML of the volume source, indented under `spec:` by two spaces.
    pub source: String,
    pub attributes_class: Option<String>,
}

impl Pv {
    /// A volume with upstream's usual GCE PD source and nothing else set.
    pub fn new(name: &str, capacity: &str) -> Self {
        Pv {
            name: name.into(),
            capacity: Some(capacity.into()),
            modes: vec!["ReadWriteOnce".into()],
            class: None,
            claim_ref: None,
            phase: None,
            policy: None,
            annotations: Vec::new(),
            labels: Vec::new(),
            finalizers: Vec::new(),
            volume_mode: None,
            deleting: false,
            node_affinity: None,
            source: "  gcePersistentDisk:\n    pdName: upstream-test\n".into(),
            attributes_class: None,
        }
    }

    pub fn modes(mut self, modes: &[&str]) -> Self {
        self.modes = modes.iter().map(|m| m.to_string()).collect();
        self
    }
    pub fn class(mut self, class: &str) -> Self {
        self.class = Some(class.into());
        self
    }
    /// A claimRef to `default/<name>` (upstream's `testNamespace`), with a uid
    /// when `uid` is not empty.
    pub fn bound_to(self, uid: &str, name: &str) -> Self {
        self.claim_ref_in(TEST_NAMESPACE, uid, name)
    }
    pub fn claim_ref_in(mut self, namespace: &str, uid: &str, name: &str) -> Self {
        let uid = (!uid.is_empty()).then(|| uid.to_string());
        self.claim_ref = Some((Some(namespace.into()), Some(name.into()), uid));
        self
    }
    /// An empty claimRef (upstream's `&v1.ObjectReference{}`).
    pub fn claim_ref_empty(mut self) -> Self {
        self.claim_ref = Some((None, None, None));
        self
    }
    /// A claimRef with only a uid (upstream's `&v1.ObjectReference{UID: ..}`).
    pub fn claim_ref_uid_only(mut self, uid: &str) -> Self {
        self.claim_ref = Some((None, None, Some(uid.into())));
        self
    }
    pub fn phase(mut self, phase: &str) -> Self {
        self.phase = Some(phase.into());
        self
    }
    pub fn policy(mut self, policy: &str) -> Self {
        self.policy = Some(policy.into());
        self
    }
    pub fn ann(mut self, key: &str, value: &str) -> Self {
        self.annotations.push((key.into(), value.into()));
        self
    }
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.push((key.into(), value.into()));
        self
    }
    pub fn finalizer(mut self, f: &str) -> Self {
        self.finalizers.push(f.into());
        self
    }
    pub fn volume_mode(mut self, mode: &str) -> Self {
        self.volume_mode = Some(mode.into());
        self
    }
    pub fn deleting(mut self) -> Self {
        self.deleting = true;
        self
    }
    /// Upstream's `GetVolumeNodeAffinity(key, value)` / `makeNodeAffinity`.
    pub fn affinity_in(self, key: &str, value: &str) -> Self {
        self.node_affinity(&format!(
            "  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - key: {}\n          operator: In\n          values: [{}]\n",
            q(key),
            q(value)
        ))
    }
    pub fn node_affinity(mut self, yaml: &str) -> Self {
        self.node_affinity = Some(yaml.into());
        self
    }
    pub fn source(mut self, yaml: &str) -> Self {
        self.source = yaml.into();
        self
    }
    /// A CSI source of `driver` (upstream's `newExternalProvisionedVolume`).
    pub fn csi(self, driver: &str) -> Self {
        let src = format!(
            "  csi:\n    driver: {}\n    volumeHandle: 527b55dc-c7db-4574-9226-2e33318b06a3\n    fsType: ext4\n",
            q(driver)
        );
        self.source(&src)
    }
    pub fn attributes_class(mut self, vac: &str) -> Self {
        self.attributes_class = Some(vac.into());
        self
    }

    pub fn yaml(&self) -> String {
        let mut o = String::from("apiVersion: v1\nkind: PersistentVolume\nmetadata:\n");
        let _ = writeln!(o, "  name: {}", q(&self.name));
        map_block(&mut o, "  ", "labels", &self.labels);
        map_block(&mut o, "  ", "annotations", &self.annotations);
        list_block(&mut o, "  ", "finalizers", &self.finalizers);
        if self.deleting {
            o.push_str("  deletionTimestamp: \"2020-02-18T10:30:30Z\"\n");
        }
        o.push_str("spec:\n");
        if let Some(c) = &self.capacity {
            let _ = writeln!(o, "  capacity:\n    storage: {}", q(c));
        }
        if !self.modes.is_empty() {
            o.push_str("  accessModes:\n");
            for m in &self.modes {
                let _ = writeln!(o, "  - {m}");
            }
        }
        if let Some(c) = &self.class {
            let _ = writeln!(o, "  storageClassName: {}", q(c));
        }
        if let Some(p) = &self.policy {
            let _ = writeln!(o, "  persistentVolumeReclaimPolicy: {}", q(p));
        }
        if let Some(m) = &self.volume_mode {
            let _ = writeln!(o, "  volumeMode: {m}");
        }
        if let Some(v) = &self.attributes_class {
            let _ = writeln!(o, "  volumeAttributesClassName: {}", q(v));
        }
        if let Some((None, None, None)) = &self.claim_ref {
            o.push_str("  claimRef: {}\n");
        } else if let Some((ns, name, uid)) = &self.claim_ref {
            o.push_str("  claimRef:\n");
            if name.is_some() {
                o.push_str("    kind: PersistentVolumeClaim\n    apiVersion: v1\n");
            }
            if let Some(ns) = ns {
                let _ = writeln!(o, "    namespace: {}", q(ns));
            }
            if let Some(n) = name {
                let _ = writeln!(o, "    name: {}", q(n));
            }
            if let Some(u) = uid {
                let _ = writeln!(o, "    uid: {}", q(u));
            }
        }
        if let Some(a) = &self.node_affinity {
            o.push_str(a);
            if !a.ends_with('\n') {
                o.push('\n');
            }
        }
        o.push_str(&self.source);
        if !self.source.ends_with('\n') {
            o.push('\n');
        }
        if let Some(p) = &self.phase {
            let _ = writeln!(o, "status:\n  phase: {p}");
        }
        o.push_str("---\n");
        o
    }
}

/// Upstream's `newVolume(name, capacity, boundToClaimUID, boundToClaimName,
/// phase, reclaimPolicy, class, annotations...)`: a GCE PD with RWO+ROX,
/// Filesystem; `""` for the claim name means no claimRef, `""` for the
/// phase means no status. Annotations get upstream's values: the
/// provisioned-by annotation names the mock plugin, others say `yes`.
#[allow(clippy::too_many_arguments)]
pub fn new_volume(
    name: &str,
    capacity: &str,
    claim_uid: &str,
    claim_name: &str,
    phase: &str,
    policy: &str,
    class: &str,
    annotations: &[&str],
) -> Pv {
    let mut pv = Pv::new(name, capacity)
        .modes(RWO_ROX)
        .class(class)
        .volume_mode("Filesystem");
    if !policy.is_empty() {
        pv = pv.policy(policy);
    }
    if !phase.is_empty() {
        pv = pv.phase(phase);
    }
    if !claim_name.is_empty() {
        pv = pv.bound_to(claim_uid, claim_name);
    }
    for a in annotations {
        let value = if *a == ANN_PROVISIONED_BY {
            MOCK_PLUGIN
        } else {
            "yes"
        };
        pv = pv.ann(a, value);
    }
    pv
}

/// A PersistentVolumeClaim.
#[derive(Debug, Clone)]
pub struct Pvc {
    pub name: String,
    pub namespace: String,
    pub uid: Option<String>,
    pub request: Option<String>,
    pub modes: Vec<String>,
    /// `None`: storageClassName not set.
    pub class: Option<String>,
    pub volume_name: Option<String>,
    pub phase: Option<String>,
    pub volume_mode: Option<String>,
    /// `spec.selector`, as YAML indented under `spec:` by two spaces.
    pub selector: Option<String>,
    pub annotations: Vec<(String, String)>,
    pub finalizers: Vec<String>,
    pub deleting: bool,
    pub attributes_class: Option<String>,
    /// More of `spec`, as YAML indented by two spaces (`dataSource`, …).
    pub extra_spec: String,
}

impl Pvc {
    pub fn new(namespace: &str, name: &str, request: &str) -> Self {
        Pvc {
            name: name.into(),
            namespace: namespace.into(),
            uid: None,
            request: Some(request.into()),
            modes: vec!["ReadWriteOnce".into()],
            class: None,
            volume_name: None,
            phase: None,
            volume_mode: None,
            selector: None,
            annotations: Vec::new(),
            finalizers: Vec::new(),
            deleting: false,
            attributes_class: None,
            extra_spec: String::new(),
        }
    }
    pub fn spec_yaml(mut self, yaml: &str) -> Self {
        self.extra_spec.push_str(yaml);
        self
    }
    pub fn uid(mut self, uid: &str) -> Self {
        self.uid = Some(uid.into());
        self
    }
    pub fn modes(mut self, modes: &[&str]) -> Self {
        self.modes = modes.iter().map(|m| m.to_string()).collect();
        self
    }
    pub fn class(mut self, class: &str) -> Self {
        self.class = Some(class.into());
        self
    }
    pub fn volume_name(mut self, v: &str) -> Self {
        self.volume_name = Some(v.into());
        self
    }
    pub fn phase(mut self, p: &str) -> Self {
        self.phase = Some(p.into());
        self
    }
    pub fn volume_mode(mut self, m: &str) -> Self {
        self.volume_mode = Some(m.into());
        self
    }
    /// `matchLabels` of one label.
    pub fn match_label(mut self, key: &str, value: &str) -> Self {
        self.selector = Some(format!(
            "  selector:\n    matchLabels:\n      {}: {}\n",
            q(key),
            q(value)
        ));
        self
    }
    /// `matchLabels` of several labels (upstream's `withLabelSelector`).
    pub fn match_labels(mut self, labels: &[(&str, &str)]) -> Self {
        let mut s = String::from("  selector:\n    matchLabels:\n");
        for (k, v) in labels {
            let _ = writeln!(s, "      {}: {}", q(k), q(v));
        }
        self.selector = Some(s);
        self
    }
    pub fn ann(mut self, key: &str, value: &str) -> Self {
        self.annotations.push((key.into(), value.into()));
        self
    }
    pub fn finalizer(mut self, f: &str) -> Self {
        self.finalizers.push(f.into());
        self
    }
    pub fn deleting(mut self) -> Self {
        self.deleting = true;
        self
    }
    pub fn attributes_class(mut self, vac: &str) -> Self {
        self.attributes_class = Some(vac.into());
        self
    }

    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn yaml(&self) -> String {
        let mut o = String::from("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n");
        let _ = writeln!(o, "  name: {}", q(&self.name));
        let _ = writeln!(o, "  namespace: {}", q(&self.namespace));
        if let Some(u) = &self.uid {
            let _ = writeln!(o, "  uid: {}", q(u));
        }
        map_block(&mut o, "  ", "annotations", &self.annotations);
        list_block(&mut o, "  ", "finalizers", &self.finalizers);
        if self.deleting {
            o.push_str("  deletionTimestamp: \"2020-02-18T10:30:30Z\"\n");
        }
        o.push_str("spec:\n");
        if !self.modes.is_empty() {
            o.push_str("  accessModes:\n");
            for m in &self.modes {
                let _ = writeln!(o, "  - {m}");
            }
        }
        if let Some(r) = &self.request {
            let _ = writeln!(o, "  resources:\n    requests:\n      storage: {}", q(r));
        }
        if let Some(c) = &self.class {
            let _ = writeln!(o, "  storageClassName: {}", q(c));
        }
        if let Some(v) = &self.volume_name {
            let _ = writeln!(o, "  volumeName: {}", q(v));
        }
        if let Some(m) = &self.volume_mode {
            let _ = writeln!(o, "  volumeMode: {m}");
        }
        if let Some(v) = &self.attributes_class {
            let _ = writeln!(o, "  volumeAttributesClassName: {}", q(v));
        }
        if let Some(s) = &self.selector {
            o.push_str(s);
        }
        o.push_str(&self.extra_spec);
        if let Some(p) = &self.phase {
            let _ = writeln!(o, "status:\n  phase: {p}");
        }
        o.push_str("---\n");
        o
    }
}

/// Upstream's `newClaim(name, claimUID, capacity, boundToVolume, phase,
/// class, annotations...)`: RWO+ROX, Filesystem, in `testNamespace`; `""`
/// for the volume means none, `""` for the phase means no status.
/// Provisioner annotations name the mock plugin, others say `yes`.
pub fn new_claim(
    name: &str,
    uid: &str,
    capacity: &str,
    volume: &str,
    phase: &str,
    class: Option<&str>,
    annotations: &[&str],
) -> Pvc {
    let mut c = Pvc::new(TEST_NAMESPACE, name, capacity)
        .modes(RWO_ROX)
        .volume_mode("Filesystem");
    if !uid.is_empty() {
        c = c.uid(uid);
    }
    if !volume.is_empty() {
        c = c.volume_name(volume);
    }
    if !phase.is_empty() {
        c = c.phase(phase);
    }
    if let Some(class) = class {
        c = c.class(class);
    }
    for a in annotations {
        let value = if a.ends_with("storage-provisioner") {
            MOCK_PLUGIN
        } else {
            "yes"
        };
        c = c.ann(a, value);
    }
    c
}

/// A StorageClass; `mode` is the volumeBindingMode (`None`: left to the API
/// default, Immediate).
pub fn storage_class(
    name: &str,
    provisioner: &str,
    policy: Option<&str>,
    mode: Option<&str>,
) -> String {
    let mut o = format!(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: {}\nprovisioner: {}\n",
        q(name),
        q(provisioner)
    );
    if let Some(p) = policy {
        let _ = writeln!(o, "reclaimPolicy: {p}");
    }
    if let Some(m) = mode {
        let _ = writeln!(o, "volumeBindingMode: {m}");
    }
    o.push_str("---\n");
    o
}

/// A Node with labels.
pub fn node(name: &str, labels: &[(&str, &str)]) -> String {
    let mut o = format!(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: {}\n",
        q(name)
    );
    if !labels.is_empty() {
        o.push_str("  labels:\n");
        for (k, v) in labels {
            let _ = writeln!(o, "    {}: {}", q(k), q(v));
        }
    }
    o.push_str("---\n");
    o
}

/// A Pod in `namespace` using `claims`, on `node` when given.
pub fn pod(namespace: &str, name: &str, node: Option<&str>, claims: &[&str]) -> String {
    let mut o = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {}\n  namespace: {}\nspec:\n",
        q(name),
        q(namespace)
    );
    if let Some(n) = node {
        let _ = writeln!(o, "  nodeName: {}", q(n));
    }
    o.push_str("  containers:\n  - name: c\n    image: i\n");
    if !claims.is_empty() {
        o.push_str("  volumes:\n");
        for (i, c) in claims.iter().enumerate() {
            let _ = writeln!(
                o,
                "  - name: v{i}\n    persistentVolumeClaim:\n      claimName: {}",
                q(c)
            );
        }
    }
    o.push_str("---\n");
    o
}

/// Concatenates rendered volumes and claims with any extra documents.
pub fn manifests(volumes: &[Pv], claims: &[Pvc], extra: &[String]) -> String {
    let mut o = String::new();
    for e in extra {
        o.push_str(e);
    }
    for v in volumes {
        o.push_str(&v.yaml());
    }
    for c in claims {
        o.push_str(&c.yaml());
    }
    o
}

/// Asserts that a not-applicable list names no case twice and no ported
/// case, so the two lists stay a partition of upstream's cases.
pub fn assert_partition(ported: &[&str], not_applicable: &[(&str, &str)]) {
    let mut seen = std::collections::BTreeSet::new();
    for name in ported.iter().chain(not_applicable.iter().map(|(n, _)| n)) {
        assert!(seen.insert(*name), "case {name:?} is listed twice");
    }
    for (name, reason) in not_applicable {
        assert!(!reason.trim().is_empty(), "case {name:?} has no reason");
    }
}

/// What upstream expects of one object once the controllers have settled,
/// in the terms a plan answers.
#[derive(Debug, Clone)]
pub enum Want {
    /// The claim (`ns/name`) is bound to the volume.
    Bound(&'static str, &'static str),
    /// The claim is bound to one of these volumes (upstream leaves the tie
    /// to map order).
    BoundToOneOf(&'static str, &'static [&'static str]),
    /// The claim stays Pending: no binding, no provisioning, not Lost.
    Pending(&'static str),
    /// The claim is Pending with a reason containing this text.
    PendingBecause(&'static str, &'static str),
    /// The claim gets no volume (binding or provisioning); its phase is
    /// left as it was, which the plan does not state.
    NoVolume(&'static str),
    /// The claim is Lost.
    Lost(&'static str),
    /// The claim is provisioned.
    Provisioned(&'static str),
    /// The volume gets this reclaim action (`keep`, `delete`, `recycle`,
    /// `fail`, `unbind`).
    Reclaim(&'static str, &'static str),
    /// The volume gets no reclaim action.
    NoReclaim(&'static str),
    /// No claim is bound to the volume.
    VolumeUnbound(&'static str),
}

/// The mismatches between a plan and the wants, as readable lines.
pub fn unmet(plan: &berth::binding::Plan, wants: &[Want]) -> Vec<String> {
    let bound = |c: &str| crate::bound_volume(plan, c);
    let pending = |c: &str| crate::pending_reason(plan, c);
    let provisioned = |c: &str| crate::provisioned(plan, c).is_some();
    let reclaim = |v: &str| {
        plan.reclaim
            .iter()
            .find(|r| r.volume == v)
            .map(|r| r.action.as_str().to_string())
    };
    let mut out = Vec::new();
    for w in wants {
        let ok = match w {
            Want::Bound(c, v) => bound(c).as_deref() == Some(*v),
            Want::BoundToOneOf(c, vs) => bound(c).is_some_and(|b| vs.contains(&b.as_str())),
            Want::Pending(c) => {
                bound(c).is_none()
                    && !provisioned(c)
                    && !pending(c).is_some_and(|r| r.contains("Lost"))
            }
            Want::PendingBecause(c, text) => {
                bound(c).is_none() && pending(c).is_some_and(|r| r.contains(text))
            }
            Want::NoVolume(c) => bound(c).is_none() && !provisioned(c),
            Want::Lost(c) => bound(c).is_none() && pending(c).is_some_and(|r| r.contains("Lost")),
            Want::Provisioned(c) => provisioned(c),
            Want::Reclaim(v, verb) => reclaim(v).as_deref() == Some(*verb),
            Want::NoReclaim(v) => reclaim(v).is_none(),
            Want::VolumeUnbound(v) => !plan.bindings.iter().any(|b| b.volume == *v),
        };
        if !ok {
            let got = match w {
                Want::Reclaim(v, _) | Want::NoReclaim(v) | Want::VolumeUnbound(v) => format!(
                    "reclaim {:?}, bound to {:?}",
                    reclaim(v),
                    plan.bindings
                        .iter()
                        .find(|b| b.volume == *v)
                        .map(|b| b.claim.to_string())
                ),
                Want::Bound(c, _)
                | Want::BoundToOneOf(c, _)
                | Want::Pending(c)
                | Want::PendingBecause(c, _)
                | Want::NoVolume(c)
                | Want::Lost(c)
                | Want::Provisioned(c) => format!(
                    "bound {:?}, provisioned {}, pending {:?}",
                    bound(c),
                    provisioned(c),
                    pending(c)
                ),
            };
            out.push(format!("want {w:?}; berth: {got}"));
        }
    }
    out
}

/// One ported controller case: upstream's name, the objects, what upstream
/// expects once settled.
pub struct SyncCase {
    pub name: &'static str,
    pub volumes: Vec<Pv>,
    pub claims: Vec<Pvc>,
    pub wants: Vec<Want>,
}

/// Ported cases berth still gets wrong: (case name, the rule berth lacks).
/// Each is a bug in the core, open until fixed; the runners assert that
/// each still diverges, so a fix turns the run red until the case leaves
/// this list (and README's count of open divergences drops).
pub const OPEN_DIVERGENCES: &[(&str, &str)] = &[];

/// Whether `case` is one of [`OPEN_DIVERGENCES`].
pub fn is_open_divergence(case: &str) -> bool {
    OPEN_DIVERGENCES
        .iter()
        .any(|(n, _)| case == *n || case.ends_with(&format!("/{n}")))
}

/// Plans every case with `extra` documents (classes, nodes, pods) and
/// fails with every unmet expectation of every case at once.
pub fn run_sync_cases(cases: &[SyncCase], extra: &[String]) {
    let mut failures = Vec::new();
    for c in cases {
        let yaml = manifests(&c.volumes, &c.claims, extra);
        let p = crate::plan(&yaml);
        let unmet = unmet(&p, &c.wants);
        if is_open_divergence(&c.name) {
            if unmet.is_empty() {
                failures.push(format!(
                    "{}: now agrees with upstream: remove it from OPEN_DIVERGENCES",
                    c.name
                ));
            }
            continue;
        }
        for line in unmet {
            failures.push(format!("{}: {line}", c.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} unmet:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
