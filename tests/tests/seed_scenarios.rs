//! The seed talk's YAML examples (shipped in `examples/seed/`) as scenarios,
//! each with the outcome upstream Kubernetes would produce, plus the small
//! variations that show each rule at work.

use berth_tests::*;

fn seed(file: &str) -> String {
    std::fs::read_to_string(repo_root().join("examples/seed").join(file)).expect("seed file")
}

#[test]
fn pv0003_and_myclaim() {
    let yaml = seed("pv-and-claim.yaml");
    let p = plan(&yaml);
    // 8Gi with a selector: pv0003 is too small and unlabelled; a selector is never provisioned.
    assert!(p.bindings.is_empty());
    let pending = &p.pending[0];
    assert_eq!(pending.claim.to_string(), "default/myclaim");
    assert!(
        pending
            .reason
            .to_string()
            .contains("selector is never provisioned")
    );
    assert_eq!(
        pending.candidates[0].to_string(),
        "pv0003: 5Gi < 8Gi requested; labels do not match the claim's selector"
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    // With the labels on the volume and a 5Gi request, pv0003 is bound.
    let fitted = yaml
        .replace(
            "  name: pv0003\n",
            "  name: pv0003\n  labels:\n    release: stable\n    environment: dev\n",
        )
        .replace("storage: 8Gi", "storage: 5Gi");
    assert_eq!(
        bound_volume(&plan(&fitted), "default/myclaim").as_deref(),
        Some("pv0003")
    );

    // Once bound and the claim deleted, Recycle scrubs the NFS volume.
    let released = yaml.replace(
        "  storageClassName: slow\n  mountOptions:",
        "  storageClassName: slow\n  claimRef:\n    namespace: default\n    name: gone\n    uid: 6a1d\n  mountOptions:",
    );
    let p = plan(&released);
    assert_eq!(p.reclaim.len(), 1);
    assert_eq!(
        (p.reclaim[0].volume.as_str(), p.reclaim[0].action.as_str()),
        ("pv0003", "recycle")
    );
}

#[test]
fn statefulset_web() {
    let yaml = seed("statefulset.yaml");
    let p = plan(&yaml);
    let mut claims: Vec<(String, String)> = p
        .pending
        .iter()
        .map(|x| (x.claim.to_string(), x.reason.to_string()))
        .collect();
    claims.sort();
    let want: Vec<(String, String)> = (0..3)
        .map(|i| {
            (
                format!("default/www-web-{i}"),
                "storageclass.storage.k8s.io \"my-storage-class\" not found".to_string(),
            )
        })
        .collect();
    assert_eq!(claims, want);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("ignoring Service \"nginx\""))
    );

    // With the class defined (Immediate, a cloud CSI driver), all three are
    // provisioned. (berth's own driver would need nodes to place them on:
    // tests/tests/placement_rules.rs.)
    let with_class = format!("{}{yaml}", class("my-storage-class", "ebs.csi.aws.com", ""));
    let p = plan(&with_class);
    let mut provisioned: Vec<String> = p.provisioning.iter().map(|x| x.claim.to_string()).collect();
    provisioned.sort();
    assert_eq!(
        provisioned,
        [
            "default/www-web-0",
            "default/www-web-1",
            "default/www-web-2"
        ]
    );

    // WaitForFirstConsumer: each claim waits for its own pod.
    let wffc = format!(
        "{}{yaml}",
        class(
            "my-storage-class",
            "csi.berth.dev",
            "volumeBindingMode: WaitForFirstConsumer"
        )
    );
    let p = plan(&wffc);
    assert_eq!(
        pending_reason(&p, "default/www-web-2").as_deref(),
        Some("waiting for pod default/web-2 to be scheduled")
    );
}

#[test]
fn limit_ranges_and_quotas_of_the_talk_do_not_touch_claims() {
    let yaml = seed("limits-and-quotas.yaml");
    let claims = format!(
        "{}{}{}",
        class("std", "ebs.csi.aws.com", ""),
        pvc("a", "50Gi", &["ReadWriteOnce"], Some("std"), ""),
        pvc("b", "50Gi", &["ReadWriteOnce"], Some("std"), "")
            .replace("namespace: default", "namespace: my-nice-namespace")
    );
    let p = plan(&format!("{yaml}\n---\n{claims}"));
    assert!(p.rejected.is_empty(), "{:?}", p.rejected);
    assert_eq!(p.provisioning.len(), 2);

    // The talk's LimitRange as printed (mis-indented) is not a valid object:
    // the error names the field.
    let printed = "apiVersion: v1\nkind: LimitRange\nmetadata:\n   name: mem-limit-range\nspec:\n   limits:\n   - default:\n       memory: 512Mi\n   defaultRequest:\n       memory: 256Mi\n   type: Container\n";
    let docs = berth::manifest::parse_str("talk.yaml", printed).expect("valid YAML");
    let err = berth::manifest::to_snapshot(docs)
        .expect_err("invalid object")
        .to_string();
    assert!(err.contains("LimitRange mem-limit-range"), "{err}");
    assert!(err.contains("spec.limits[0].type"), "{err}");

    // With `type` in place but `defaultRequest` still one level too far out,
    // the object is valid and the stray field is a warning.
    let half_fixed = "apiVersion: v1\nkind: LimitRange\nmetadata:\n   name: mem-limit-range\nspec:\n   limits:\n   - default:\n       memory: 512Mi\n     type: Container\n   defaultRequest:\n       memory: 256Mi\n";
    let p = plan(half_fixed);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("unknown field \"spec.defaultRequest\"")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn the_talks_storage_classes_and_the_access_mode_table() {
    // (file, provisioner, modes served, modes refused)
    let cases = [
        (
            "class-gce.yaml",
            "kubernetes.io/gce-pd",
            &["ReadWriteOnce", "ReadOnlyMany"][..],
            &["ReadWriteMany"][..],
        ),
        (
            "class-azure.yaml",
            "kubernetes.io/azure-disk",
            &["ReadWriteOnce"][..],
            &["ReadOnlyMany", "ReadWriteMany"][..],
        ),
        (
            "class-aws.yaml",
            "kubernetes.io/aws-ebs",
            &["ReadWriteOnce"][..],
            &["ReadOnlyMany", "ReadWriteMany"][..],
        ),
    ];
    for (file, provisioner, served, refused) in cases {
        let class = seed(file);
        for mode in served {
            let p = plan(&format!(
                "{class}\n---\n{}",
                pvc("a", "1Gi", &[mode], Some("slow"), "")
            ));
            assert!(p.warnings.is_empty(), "{file}: {:?}", p.warnings);
            let prov = p
                .provisioning
                .first()
                .unwrap_or_else(|| panic!("{file} {mode}: {p:#?}"));
            assert_eq!(prov.provisioner, provisioner);
        }
        for mode in refused {
            let p = plan(&format!(
                "{class}\n---\n{}",
                pvc("a", "1Gi", &[mode], Some("slow"), "")
            ));
            let reason = pending_reason(&p, "default/a").unwrap_or_default();
            assert!(
                reason.contains(&format!("cannot serve access mode {mode}")),
                "{file} {mode}: {reason}"
            );
        }
    }
}
