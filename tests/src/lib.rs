//! Shared helpers for berth's integration suites: build a snapshot from YAML
//! text the way `berth dry-run` does, plan it, and read the result in the
//! shape of the JSON contract.

pub mod control_plane;
pub mod csi_driver;
pub mod images;
pub mod readme;
pub mod real_node;
pub mod scheduling;
pub mod upstream;

use berth::binding::{self, Plan, Snapshot};
use berth::manifest;

/// Parses manifests from text (as one `-f` file named `test.yaml`).
pub fn snapshot(yaml: &str) -> Snapshot {
    let docs = manifest::parse_str("test.yaml", yaml).unwrap_or_else(|e| panic!("load: {e}"));
    manifest::to_snapshot(docs).unwrap_or_else(|e| panic!("convert: {e}"))
}

/// Plans manifests given as text.
pub fn plan(yaml: &str) -> Plan {
    binding::plan(&snapshot(yaml))
}

/// `ns/name -> volume` for every binding.
pub fn bindings(plan: &Plan) -> Vec<(String, String)> {
    plan.bindings
        .iter()
        .map(|b| (b.claim.to_string(), b.volume.clone()))
        .collect()
}

/// The volume a claim is bound to, if any.
pub fn bound_volume(plan: &Plan, claim: &str) -> Option<String> {
    plan.bindings
        .iter()
        .find(|b| b.claim.to_string() == claim)
        .map(|b| b.volume.clone())
}

/// The pending reason of a claim, if it is pending.
pub fn pending_reason(plan: &Plan, claim: &str) -> Option<String> {
    plan.pending
        .iter()
        .find(|p| p.claim.to_string() == claim)
        .map(|p| p.reason.to_string())
}

/// The rejection reason of a claim, if it was rejected.
pub fn rejection(plan: &Plan, claim: &str) -> Option<String> {
    plan.rejected
        .iter()
        .find(|r| r.object.to_string() == claim)
        .map(|r| r.reason.clone())
}

/// The provisioning node of a claim: `Some(None)` for Immediate provisioning.
pub fn provisioned(plan: &Plan, claim: &str) -> Option<Option<String>> {
    plan.provisioning
        .iter()
        .find(|p| p.claim.to_string() == claim)
        .map(|p| p.node.clone())
}

/// A StorageClass document.
pub fn class(name: &str, provisioner: &str, extra: &str) -> String {
    format!(
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: {name}\nprovisioner: {provisioner}\n{extra}\n---\n"
    )
}

/// A PersistentVolume document with the common fields; `extra` is appended
/// under `spec:` (indent it by two spaces).
pub fn pv(name: &str, size: &str, modes: &[&str], class: &str, extra_spec: &str) -> String {
    let modes: Vec<String> = modes.iter().map(|m| format!("    - {m}\n")).collect();
    format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {name}\nspec:\n  capacity:\n    storage: {size}\n  accessModes:\n{}  storageClassName: \"{class}\"\n  nfs:\n    path: /x\n    server: nfs.example\n{extra_spec}\n---\n",
        modes.concat()
    )
}

/// A PersistentVolumeClaim document; `class` of `None` leaves storageClassName unset.
pub fn pvc(
    name: &str,
    size: &str,
    modes: &[&str],
    class: Option<&str>,
    extra_spec: &str,
) -> String {
    let modes: Vec<String> = modes.iter().map(|m| format!("    - {m}\n")).collect();
    let class = class
        .map(|c| format!("  storageClassName: \"{c}\"\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  accessModes:\n{}  resources:\n    requests:\n      storage: {size}\n{class}{extra_spec}\n---\n",
        modes.concat()
    )
}

/// The `berth` binary under test: `$BERTH_BIN` (what `tests/run-all.sh`
/// sets after building it), else the workspace's release build, built on
/// demand when it is missing. Tests never rebuild a binary that exists:
/// `cargo test --workspace` unifies features differently from
/// `cargo build -p berth`, so a rebuild would recompile every dependency.
pub fn berth_bin() -> std::path::PathBuf {
    use std::sync::OnceLock;
    static BIN: OnceLock<std::path::PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(p) = std::env::var("BERTH_BIN") {
            return std::path::PathBuf::from(p);
        }
        let root = repo_root();
        let target = std::env::var("CARGO_TARGET_DIR")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|_| root.join("target"));
        let bin = target.join("release").join("berth");
        if !bin.exists() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let status = std::process::Command::new(cargo)
                .args(["build", "--release", "-p", "berth"])
                .current_dir(&root)
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build --release -p berth failed");
        }
        bin
    })
    .clone()
}

/// The workspace root, for paths to `examples/`.
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace")
        .to_path_buf()
}

/// `GET path` on a loopback HTTP server, returning the body.
pub async fn http_get(port: u16, path: &str) -> String {
    try_http_get(port, path)
        .await
        .unwrap_or_else(|e| panic!("GET 127.0.0.1:{port}{path}: {e}"))
}

/// [`http_get`] for a server that may not be listening (yet).
pub async fn try_http_get(port: u16, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out)
}
