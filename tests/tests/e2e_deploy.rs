//! Every manifest under `deploy/` is accepted by the real API server: the
//! Namespace is created, everything else is applied with server-side dry-run
//! (full validation and admission, nothing persisted).

use std::path::Path;

use berth::manifest;
use berth_tests::control_plane::ControlPlane;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_manifests_pass_server_side_dry_run() {
    let cp = ControlPlane::start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let client = cp.client().await.expect("admin client");
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut files: Vec<_> = std::fs::read_dir(&deploy)
        .expect("deploy/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    // The namespace first, for real: dry-run objects need it to exist.
    files.sort_by_key(|p| p.file_name().is_none_or(|n| n != "namespace.yaml"));
    let mut applied = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let docs = manifest::parse_str(&file.display().to_string(), &text).expect("parse");
        for doc in docs {
            let v = doc.value;
            let api_version = v["apiVersion"].as_str().expect("apiVersion");
            let kind = v["kind"].as_str().expect("kind");
            let name = v["metadata"]["name"].as_str().expect("name").to_string();
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
            let gvk = GroupVersionKind::gvk(group, version, kind);
            let (ar, caps) = pinned_kind(&client, &gvk).await.unwrap_or_else(|e| {
                panic!("{}: unknown kind {api_version} {kind}: {e}", file.display())
            });
            let api: Api<DynamicObject> = match v["metadata"]["namespace"].as_str() {
                Some(ns) if caps.scope == kube::discovery::Scope::Namespaced => {
                    Api::namespaced_with(client.clone(), ns, &ar)
                }
                _ => Api::all_with(client.clone(), &ar),
            };
            let mut pp = PatchParams::apply("berth-e2e").force();
            if kind != "Namespace" {
                pp = pp.dry_run();
            }
            api.patch(&name, &pp, &Patch::Apply(&v))
                .await
                .unwrap_or_else(|e| panic!("{}: {kind} {name} rejected: {e}", file.display()));
            applied.push(format!("{kind}/{name}"));
        }
    }
    for expected in [
        "Namespace/berth-system",
        "ServiceAccount/berth-controller",
        "ClusterRole/berth-controller",
        "CSIDriver/csi.berth.dev",
        "Deployment/berth-controller",
        "DaemonSet/berth-node",
    ] {
        assert!(
            applied.iter().any(|a| a == expected),
            "{expected} missing from deploy/: {applied:?}"
        );
    }
    let classes = applied
        .iter()
        .filter(|a| a.starts_with("StorageClass/"))
        .count();
    assert!(
        classes >= 2,
        "an Immediate and a WaitForFirstConsumer class: {applied:?}"
    );
}
