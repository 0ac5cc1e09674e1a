//! Every manifest under `deploy/` (and `deploy/bind/`) is accepted by the
//! real API server: the Namespace is created, everything else is applied
//! with server-side dry-run (full validation and admission, nothing
//! persisted). The kustomizations list every manifest, so `kubectl apply
//! -k` installs what is tested here.

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use berth::manifest;
use berth_tests::control_plane::{ControlPlane, binaries};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::pinned_kind;
use serde_json::Value;

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
            applied.push(apply(&client, &file.display().to_string(), &doc.value).await);
        }
    }
    // The kubelet-root overlay of deploy/kind/README.md, as kustomize
    // renders it, passes the same checks (its Namespace is re-applied as is).
    let overlay = kubelet_root_overlay();
    for doc in kustomize(overlay.path()) {
        apply(&client, "the kubelet-root overlay", &doc).await;
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

/// Applies one document with server-side apply: a Namespace for real (the
/// dry-run objects need it to exist), anything else with dry-run. Returns
/// `Kind/name`.
async fn apply(client: &kube::Client, source: &str, v: &Value) -> String {
    let api_version = v["apiVersion"].as_str().expect("apiVersion");
    let kind = v["kind"].as_str().expect("kind");
    let name = v["metadata"]["name"].as_str().expect("name");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (ar, caps) = pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("{source}: unknown kind {api_version} {kind}: {e}"));
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
    api.patch(name, &pp, &Patch::Apply(v))
        .await
        .unwrap_or_else(|e| panic!("{source}: {kind} {name} rejected: {e}"));
    format!("{kind}/{name}")
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

/// The kubelet root deploy/node.yaml assumes.
const KUBELET_ROOT: &str = "/var/lib/kubelet";

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// `kubectl kustomize DIR` with the kubectl of tests/k8s/build.sh, one
/// value per rendered document.
fn kustomize(dir: &Path) -> Vec<Value> {
    let kubectl = binaries().unwrap_or_else(|e| panic!("{e}")).join("kubectl");
    let out = Command::new(&kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", kubectl.display()));
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("kustomize prints UTF-8");
    manifest::parse_str(&dir.display().to_string(), &text)
        .expect("kustomize prints YAML documents")
        .into_iter()
        .map(|d| d.value)
        .collect()
}

/// `to` relative to the directory `from`, through `/`: kustomize refuses an
/// absolute path in `resources`.
fn relative_path(from: &Path, to: &Path) -> String {
    let from = from.canonicalize().expect("canonical temp dir");
    let to = to.canonicalize().expect("canonical deploy dir");
    let up = from
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .count();
    let down = to.strip_prefix("/").expect("an absolute path");
    format!("{}{}", "../".repeat(up), down.display())
}

/// A temporary directory holding the kustomization of deploy/kind/README.md's
/// `<!-- kubelet-root: kustomization -->` block as written, except its one
/// `resources` entry: the README's `../deploy` (a directory next to
/// deploy/) becomes the path of this repository's deploy/ from the temp dir.
fn kubelet_root_overlay() -> tempfile::TempDir {
    let block = berth_tests::readme::marked_block(
        "deploy/kind/README.md",
        "<!-- kubelet-root: kustomization ",
        "yaml",
    );
    let dir = tempfile::tempdir().expect("temp dir");
    const BASE: &str = "\n  - ../deploy\n";
    assert_eq!(
        block.matches(BASE).count(),
        1,
        "the README's overlay has one resource, ../deploy:\n{block}"
    );
    let resource = format!("\n  - {}\n", relative_path(dir.path(), &deploy_dir()));
    let text = block.replace(BASE, &resource);
    std::fs::write(dir.path().join("kustomization.yaml"), text).expect("write kustomization.yaml");
    dir
}

/// Splits a render into the berth-node DaemonSet and every other document.
fn node_daemonset(docs: Vec<Value>) -> (Value, Vec<Value>) {
    let (ds, rest): (Vec<Value>, Vec<Value>) = docs
        .into_iter()
        .partition(|d| d["kind"] == "DaemonSet" && d["metadata"]["name"] == "berth-node");
    let [ds] = <[Value; 1]>::try_from(ds).expect("one berth-node DaemonSet");
    (ds, rest)
}

/// `path` is the kubelet root `root` or a path under it.
fn under(path: &str, root: &str) -> bool {
    path.strip_prefix(root)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[test]
fn the_kubelet_root_overlay_moves_every_kubelet_path_and_nothing_else() {
    let (base, base_rest) = node_daemonset(kustomize(&deploy_dir()));
    let overlay = kubelet_root_overlay();
    let (ds, rest) = node_daemonset(kustomize(overlay.path()));
    assert_eq!(
        rest, base_rest,
        "the overlay changes nothing but the berth-node DaemonSet"
    );

    let pod = &ds["spec"]["template"]["spec"];
    let kubelet_volume = pod["volumes"]
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "kubelet-dir")
        .expect("the kubelet-dir volume");
    let root = kubelet_volume["hostPath"]["path"]
        .as_str()
        .expect("kubelet-dir is a hostPath");
    assert!(
        root.starts_with('/') && root != KUBELET_ROOT,
        "the kubelet-dir hostPath moved: {root}"
    );

    // No trace of the old root (the new one may contain it, as microk8s's
    // /var/snap/microk8s/common/var/lib/kubelet does).
    let text = serde_json::to_string(&ds)
        .expect("serialize")
        .replace(root, "<root>");
    assert!(
        !text.contains(KUBELET_ROOT),
        "{KUBELET_ROOT} left in the overlay's DaemonSet: {text}"
    );

    let container = &pod["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    let arg = |flag: &str| -> &str {
        args.iter()
            .find_map(|a| a.strip_prefix(flag))
            .unwrap_or_else(|| panic!("no {flag} in {args:?}"))
    };
    let endpoint = arg("--endpoint=unix://");
    assert!(under(endpoint, root), "--endpoint under {root}: {endpoint}");
    let registration = arg("--registration-path=");
    assert!(
        registration.starts_with(&format!("{root}/plugins_registry/")),
        "the kubelet watches {root}/plugins_registry: {registration}"
    );
    let mount = container["volumeMounts"]
        .as_array()
        .expect("volumeMounts")
        .iter()
        .find(|m| m["name"] == "kubelet-dir")
        .expect("the kubelet-dir mount");
    assert_eq!(
        mount["mountPath"], root,
        "the kubelet hands the driver host paths: the mount is at the host path"
    );
    for volume in pod["volumes"].as_array().into_iter().flatten() {
        let Some(path) = volume["hostPath"]["path"].as_str() else {
            continue;
        };
        let name = &volume["name"];
        let base_path = base["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| &v["name"] == name)
            .and_then(|v| v["hostPath"]["path"].as_str())
            .unwrap_or_else(|| panic!("volume {name} is in the base"));
        if under(base_path, KUBELET_ROOT) {
            assert!(under(path, root), "hostPath of {name} under {root}: {path}");
        } else {
            assert_eq!(path, base_path, "hostPath of {name} is not the kubelet's");
        }
    }

    // And nothing else: the base with the root replaced, field for field.
    let base_text = serde_json::to_string(&base).expect("serialize");
    assert!(
        base_text.contains(KUBELET_ROOT),
        "the base names {KUBELET_ROOT}"
    );
    let expected: Value =
        serde_json::from_str(&base_text.replace(KUBELET_ROOT, root)).expect("reparse");
    assert_eq!(
        ds, expected,
        "the overlay is the base with {KUBELET_ROOT} moved to {root}"
    );
}
