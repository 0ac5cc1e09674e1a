//! Property tests over generated clusters: no volume is ever bound twice,
//! every binding satisfies class, size, volume mode, access modes and
//! selector, every claim gets exactly one outcome, the plan does not depend
//! on the order of the input, and no input makes the parser or the planner
//! panic.

use std::collections::{HashMap, HashSet};

use berth::binding::{BindHow, Plan, Snapshot, plan};
use berth::manifest::{parse_str, to_snapshot};
use proptest::prelude::*;

const SIZES: &[&str] = &["500Mi", "1G", "1Gi", "2Gi", "5Gi", "5000M", "10Gi"];
const MODES: &[&str] = &[
    "ReadWriteOnce",
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOncePod",
];
const CLASSES: &[&str] = &["static", "dyn", "wait", ""];

#[derive(Debug, Clone)]
struct GenPv {
    size: usize,
    modes: Vec<usize>,
    class: usize,
    block: bool,
    gold: bool,
    claim_ref: Option<(usize, bool)>,
    deleting: bool,
    zone: usize,
}

#[derive(Debug, Clone)]
struct GenPvc {
    size: usize,
    modes: Vec<usize>,
    class: Option<usize>,
    block: bool,
    selector: Option<bool>,
    volume_name: Option<usize>,
    node: Option<usize>,
}

fn gen_pv() -> impl Strategy<Value = GenPv> {
    (
        0..SIZES.len(),
        proptest::sample::subsequence((0..MODES.len()).collect::<Vec<_>>(), 0..=3),
        0..CLASSES.len(),
        proptest::bool::weighted(0.15),
        any::<bool>(),
        proptest::option::weighted(0.2, (0..12usize, any::<bool>())),
        proptest::bool::weighted(0.05),
        0..2usize,
    )
        .prop_map(
            |(size, modes, class, block, gold, claim_ref, deleting, zone)| GenPv {
                size,
                modes,
                class,
                block,
                gold,
                claim_ref,
                deleting,
                zone,
            },
        )
}

fn gen_pvc() -> impl Strategy<Value = GenPvc> {
    (
        0..SIZES.len(),
        proptest::sample::subsequence(vec![0usize, 1, 2], 1..=2),
        proptest::option::weighted(0.9, 0..CLASSES.len()),
        proptest::bool::weighted(0.15),
        proptest::option::weighted(0.2, any::<bool>()),
        proptest::option::weighted(0.1, 0..16usize),
        proptest::option::weighted(0.5, 0..2usize),
    )
        .prop_map(
            |(size, modes, class, block, selector, volume_name, node)| GenPvc {
                size,
                modes,
                class,
                block,
                selector,
                volume_name,
                node,
            },
        )
}

fn render(pvs: &[GenPv], pvcs: &[GenPvc]) -> Vec<String> {
    let mut docs = vec![
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: static\nprovisioner: kubernetes.io/no-provisioner\n".to_string(),
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: dyn\nprovisioner: csi.berth.dev\n".to_string(),
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: wait\nprovisioner: csi.berth.dev\nvolumeBindingMode: WaitForFirstConsumer\n".to_string(),
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n0\n  labels: {zone: z0}\n".to_string(),
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n  labels: {zone: z1}\n".to_string(),
    ];
    for (i, v) in pvs.iter().enumerate() {
        let modes: Vec<&str> = v.modes.iter().map(|&m| MODES[m]).collect();
        let claim_ref = match v.claim_ref {
            Some((c, true)) => {
                format!("  claimRef: {{namespace: default, name: c{c}, uid: \"uid-{c}\"}}\n")
            }
            Some((c, false)) => format!("  claimRef: {{namespace: default, name: c{c}}}\n"),
            None => String::new(),
        };
        docs.push(format!(
            "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: pv{i}\n  labels: {{tier: {tier}}}\n{del}spec:\n  capacity: {{storage: {size}}}\n  accessModes: [{modes}]\n  storageClassName: \"{class}\"\n  volumeMode: {mode}\n{claim_ref}  nodeAffinity:\n    required:\n      nodeSelectorTerms:\n      - matchExpressions:\n        - {{key: zone, operator: In, values: [z{zone}]}}\n  csi: {{driver: csi.berth.dev, volumeHandle: h{i}}}\n",
            tier = if v.gold { "gold" } else { "silver" },
            del = if v.deleting { "  deletionTimestamp: \"2026-01-01T00:00:00Z\"\n" } else { "" },
            size = SIZES[v.size],
            modes = modes.join(", "),
            class = CLASSES[v.class],
            mode = if v.block { "Block" } else { "Filesystem" },
            zone = v.zone,
        ));
    }
    for (i, c) in pvcs.iter().enumerate() {
        let modes: Vec<&str> = c.modes.iter().map(|&m| MODES[m]).collect();
        let class = c
            .class
            .map(|k| format!("  storageClassName: \"{}\"\n", CLASSES[k]))
            .unwrap_or_default();
        let selector = match c.selector {
            Some(g) => format!(
                "  selector:\n    matchLabels: {{tier: {}}}\n",
                if g { "gold" } else { "silver" }
            ),
            None => String::new(),
        };
        let volume_name = c
            .volume_name
            .map(|v| format!("  volumeName: pv{v}\n"))
            .unwrap_or_default();
        docs.push(format!(
            "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: c{i}\n  namespace: default\n  uid: \"uid-{i}\"\nspec:\n  accessModes: [{modes}]\n  resources: {{requests: {{storage: {size}}}}}\n  volumeMode: {mode}\n{class}{selector}{volume_name}",
            modes = modes.join(", "),
            size = SIZES[c.size],
            mode = if c.block { "Block" } else { "Filesystem" },
        ));
        if let Some(n) = c.node {
            docs.push(format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p{i}\n  namespace: default\nspec:\n  nodeName: n{n}\n  containers: [{{name: c, image: i}}]\n  volumes:\n  - name: v\n    persistentVolumeClaim: {{claimName: c{i}}}\n"
            ));
        }
    }
    docs
}

fn build(docs: &[String]) -> Snapshot {
    let text = docs.join("---\n");
    to_snapshot(parse_str("gen.yaml", &text).expect("generated YAML parses"))
        .expect("generated objects convert")
}

fn check_invariants(snap: &Snapshot, p: &Plan) -> Result<(), TestCaseError> {
    // No volume bound twice, no claim bound twice.
    let mut volumes = HashSet::new();
    let mut claims = HashSet::new();
    for b in &p.bindings {
        prop_assert!(
            volumes.insert(b.volume.clone()),
            "volume {} bound twice",
            b.volume
        );
        prop_assert!(
            claims.insert(b.claim.clone()),
            "claim {} bound twice",
            b.claim
        );
    }
    // Every claim has exactly one outcome.
    let mut outcomes: HashMap<String, u32> = HashMap::new();
    for k in p
        .bindings
        .iter()
        .map(|b| &b.claim)
        .chain(p.provisioning.iter().map(|x| &x.claim))
        .chain(p.pending.iter().map(|x| &x.claim))
        .chain(p.rejected.iter().map(|x| &x.object))
    {
        *outcomes.entry(k.to_string()).or_default() += 1;
    }
    for c in &snap.claims {
        prop_assert_eq!(
            outcomes.get(&c.key.to_string()).copied(),
            Some(1),
            "claim {}",
            c.key
        );
    }
    // Every binding satisfies the claim.
    let vols: HashMap<&str, &berth::binding::snapshot::Volume> =
        snap.volumes.iter().map(|v| (v.name.as_str(), v)).collect();
    for b in &p.bindings {
        let claim = snap
            .claims
            .iter()
            .find(|c| c.key == b.claim)
            .expect("bound claim exists");
        let vol = vols[b.volume.as_str()];
        let request = claim.request.expect("generated claims have requests");
        let finished =
            matches!(b.how, BindHow::AlreadyBound | BindHow::VolumeName) && vol.claim_ref.is_some();
        // Upstream finishes a binding both sides already name without its
        // checks, a volume being deleted included (syncUnboundClaim); no
        // other binding takes one.
        prop_assert!(
            !vol.deleting || finished,
            "{} bound to a deleting volume",
            b.claim
        );
        if !finished {
            prop_assert_eq!(vol.volume_mode, claim.volume_mode);
        }
        match &b.how {
            BindHow::PreBound => {
                prop_assert!(vol.capacity.is_some_and(|c| c >= request));
            }
            // A volume whose claimRef already names the claim is finished
            // without checks, as upstream does; otherwise the named volume
            // must satisfy the claim.
            BindHow::AlreadyBound | BindHow::VolumeName if finished => {
                prop_assert!(vol.claim_ref.as_ref().is_some_and(|r| r.key == claim.key));
            }
            BindHow::AlreadyBound | BindHow::VolumeName => {
                prop_assert!(
                    vol.capacity
                        .is_some_and(|c| c.value_ceil() >= request.value_ceil())
                );
                prop_assert!(vol.access_modes.contains_all(claim.access_modes));
                prop_assert_eq!(&vol.class, claim.class.effective());
            }
            BindHow::Matched | BindHow::Scheduler { .. } => {
                prop_assert!(vol.capacity.is_some_and(|c| c >= request));
                prop_assert!(vol.access_modes.contains_all(claim.access_modes));
                prop_assert_eq!(&vol.class, claim.class.effective());
                prop_assert!(vol.claim_ref.is_none());
                if let Some(sel) = &claim.selector {
                    prop_assert!(
                        sel.matches(&vol.labels),
                        "selector violated by {}",
                        b.volume
                    );
                }
            }
        }
        if let BindHow::Scheduler { node } = &b.how {
            let labels = &snap
                .nodes
                .iter()
                .find(|n| &n.name == node)
                .expect("node")
                .labels;
            prop_assert!(
                vol.node_affinity
                    .as_ref()
                    .is_none_or(|a| a.matches(node, labels))
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn bindings_are_sound_and_order_independent(
        pvs in proptest::collection::vec(gen_pv(), 0..16),
        pvcs in proptest::collection::vec(gen_pvc(), 0..12),
        seed in any::<u64>(),
    ) {
        let docs = render(&pvs, &pvcs);
        let snap = build(&docs);
        let first = plan(&snap);
        check_invariants(&snap, &first)?;

        // Same objects, another order: the same plan (there is no quota or
        // LimitRange here, whose effect depends on creation order by design).
        let mut shuffled = docs.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let second = plan(&build(&shuffled));
        prop_assert_eq!(&first.bindings, &second.bindings);
        prop_assert_eq!(&first.provisioning, &second.provisioning);
        prop_assert_eq!(&first.pending, &second.pending);
        prop_assert_eq!(&first.reclaim, &second.reclaim);
        prop_assert_eq!(&first.violations, &second.violations);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        if let Ok(docs) = parse_str("fuzz", &text) {
            if let Ok(snap) = to_snapshot(docs) {
                let _ = plan(&snap);
            }
        }
    }

    #[test]
    fn mutated_manifests_never_panic(
        pvs in proptest::collection::vec(gen_pv(), 1..4),
        pvcs in proptest::collection::vec(gen_pvc(), 1..4),
        cut in any::<prop::sample::Index>(),
        insert in "[ -~\n]{0,12}",
    ) {
        let text = render(&pvs, &pvcs).join("---\n");
        let at = cut.index(text.len());
        let at = (0..=at).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
        let mutated = format!("{}{}{}", &text[..at], insert, &text[at..]);
        if let Ok(docs) = parse_str("fuzz", &mutated) {
            if let Ok(snap) = to_snapshot(docs) {
                let _ = plan(&snap);
            }
        }
    }
}
