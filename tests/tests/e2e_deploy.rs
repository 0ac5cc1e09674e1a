//! Every manifest under `deploy/` (and `deploy/bind/`) is accepted by the
//! real API server: the Namespace is created, everything else is applied
//! with server-side dry-run (full validation and admission, nothing
//! persisted). The kustomizations list every manifest, so `kubectl apply
//! -k` installs what is tested here.

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
    let mut files = manifests(&deploy);
    let mut kustomized = kustomization_resources(&deploy);
    let names: Vec<String> = files.iter().map(|p| file_name(p)).collect();
    kustomized.sort();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(
        kustomized, sorted,
        "deploy/kustomization.yaml lists every manifest"
    );
    let bind = deploy.join("bind");
    assert_eq!(
        kustomization_resources(&bind),
        ["..", "rbac.yaml"],
        "deploy/bind/kustomization.yaml is deploy/ plus the binder's rights"
    );
    files.extend(manifests(&bind));
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
        "ServiceAccount/berth-node",
        "ClusterRole/berth-node",
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

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The manifests of a directory (not its kustomization).
fn manifests(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .filter(|p| file_name(p) != "kustomization.yaml")
        .collect();
    files.sort();
    files
}

fn kustomization_resources(dir: &Path) -> Vec<String> {
    let path = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs = manifest::parse_str(&path.display().to_string(), &text).expect("kustomization");
    docs[0].value["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_bind_overlay_patches_the_controller_container() {
    // deploy/bind/kustomization.yaml appends `--bind` to containers/0.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/controller.yaml");
    let text = std::fs::read_to_string(&path).expect("controller.yaml");
    let docs = manifest::parse_str("controller.yaml", &text).expect("parse");
    let deployment = docs
        .iter()
        .find(|d| d.value["kind"] == "Deployment")
        .expect("a Deployment");
    let first = &deployment.value["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(first["name"], "controller");
    let args: Vec<&str> = first["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(args.contains(&"controller"), "{args:?}");
    assert!(
        !args.contains(&"--bind"),
        "the base coexists with the stock binder"
    );
}

/// The documents of `deploy/<file>`.
fn documents(file: &str) -> Vec<serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    manifest::parse_str(file, &text)
        .expect("parse")
        .into_iter()
        .map(|d| d.value)
        .collect()
}

#[test]
fn deploy_is_one_agent_per_node_and_a_controller_without_volume_state() {
    let node = documents("node.yaml");
    let ds = node
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("DaemonSet");
    let pod = &ds["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(
        containers.len(),
        1,
        "one container per node: {containers:?}"
    );
    let args: Vec<&str> = containers[0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert_eq!(args[0], "node", "the agent: {args:?}");
    assert!(
        args.iter()
            .any(|a| a.starts_with("--registration-path=/var/lib/kubelet/plugins_registry/")),
        "berth registers itself with the kubelet: {args:?}"
    );
    assert_eq!(pod["serviceAccountName"], "berth-node");

    let controller = documents("controller.yaml");
    let deployment = controller
        .iter()
        .find(|d| d["kind"] == "Deployment")
        .expect("Deployment");
    let pod = &deployment["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "no CSI driver next to the controller");
    let args: Vec<&str> = containers[0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(
        args.contains(&"controller") && args.contains(&"--leader-elect"),
        "{args:?}"
    );
    assert!(
        !args.iter().any(|a| a.starts_with("--csi-endpoint")),
        "the controller makes no volumes itself: {args:?}"
    );
    assert!(
        pod.get("volumes").is_none(),
        "no hostPath, no state: {pod:?}"
    );

    let driver = documents("csidriver.yaml");
    assert_eq!(driver[0]["spec"]["storageCapacity"], true);

    // Only the agents write CSIStorageCapacity, and only in berth-system.
    for doc in documents("rbac.yaml") {
        let kind = doc["kind"].as_str().unwrap_or_default();
        if !kind.ends_with("Role") {
            continue;
        }
        for rule in doc["rules"].as_array().into_iter().flatten() {
            let resources: Vec<&str> = rule["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|r| r.as_str())
                .collect();
            let writes = rule["verbs"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|v| matches!(v.as_str(), Some("create" | "update" | "patch" | "delete")));
            if resources.contains(&"csistoragecapacities") && writes {
                assert_eq!(kind, "Role", "capacity writes are namespaced: {doc}");
                assert_eq!(doc["metadata"]["name"], "berth-node-capacity", "{doc}");
            }
        }
    }
}
