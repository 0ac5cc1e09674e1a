//! berth as a kubectl plugin against the real control plane and the real
//! kubectl: `berth` linked as `kubectl-berth` on `$PATH`, run as users type
//! it (kubectl refuses flags before a plugin's name, so they come after
//! `berth`):
//! - `kubectl berth dry-run --kubeconfig K -o json` reads the cluster
//!   without `--from-cluster` and prints what `berth dry-run --from-cluster`
//!   prints for the same cluster;
//! - `-n NS` shows that namespace's share of the whole cluster's plan;
//! - `kubectl berth explain pvc NAME` finds the claim in the namespace of
//!   the context `--context` (or `$KUBECONFIG`'s current context) names.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use berth_tests::control_plane::{ControlPlane, Options, binaries};
use berth_tests::{berth_bin, repo_root};
use kube::config::{Kubeconfig, NamedContext};
use serde_json::Value;

/// `shop` (tests/e2e/static-binding.yaml) and a second namespace whose
/// claim competes with shop's `small` for the same static volumes.
const OTHER: &str = "
apiVersion: v1
kind: Namespace
metadata: {name: other}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: elsewhere, namespace: other}
spec:
  storageClassName: static
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
";

/// The admin kubeconfig plus two contexts with a namespace each, as a
/// user's kubeconfig has them (`kubectl config set-context --namespace`).
/// Written as JSON, which is YAML too.
fn kubeconfig_with_contexts(admin: &Path, out: &Path) {
    let mut kc = Kubeconfig::read_from(admin).expect("admin kubeconfig");
    let base = kc.contexts[0].context.clone().expect("admin context");
    for (name, ns) in [("shop-ctx", "shop"), ("other-ctx", "other")] {
        let mut context = base.clone();
        context.namespace = Some(ns.to_string());
        kc.contexts.push(NamedContext {
            name: name.to_string(),
            context: Some(context),
            other: Default::default(),
        });
    }
    let text = serde_json::to_string(&kc).expect("kubeconfig JSON");
    std::fs::write(out, text).expect("write kubeconfig");
}

/// Runs the real kubectl with `args`, `plugins` first on `$PATH`.
fn kubectl(kubectl: &Path, plugins: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let path = std::env::join_paths(std::iter::once(plugins.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let mut cmd = Command::new(kubectl);
    cmd.args(args)
        .env("PATH", path)
        .env_remove("KUBECONFIG")
        .current_dir(repo_root());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run kubectl")
}

fn ok_json(what: &str, out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: not JSON: {e}"))
}

fn claims(plan: &Value, key: &str) -> Vec<String> {
    plan[key]
        .as_array()
        .expect(key)
        .iter()
        .map(|e| e["claim"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_berth_reads_the_cluster_with_kubectl_conventions() {
    // No binder and no scheduler: the cluster holds still between reads.
    let cp = ControlPlane::start_with(Options {
        stock_binder: false,
        scheduler: false,
        real_node: false,
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    cp.apply_file(&repo_root().join("tests/e2e/static-binding.yaml"))
        .await
        .expect("apply shop");
    let other = cp.dir().join("other.yaml");
    std::fs::write(&other, OTHER).expect("write other.yaml");
    cp.apply_file(&other).await.expect("apply other");

    let plugins = tempfile::tempdir().expect("plugin dir");
    std::os::unix::fs::symlink(berth_bin(), plugins.path().join("kubectl-berth"))
        .expect("link kubectl-berth");
    let kubectl_bin: PathBuf = binaries().expect("control plane binaries").join("kubectl");
    let kc: PathBuf = cp.dir().join("user.kubeconfig");
    kubeconfig_with_contexts(&cp.kubeconfig, &kc);
    let kc_arg = kc.display().to_string();
    let run = |args: &[&str]| kubectl(&kubectl_bin, plugins.path(), args, &[]);

    // kubectl sees the plugin where a user installed it.
    let list = run(&["plugin", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.contains("kubectl-berth"), "{listed}");

    // The cluster is the default input: no --from-cluster needed, and the
    // plan is the one plain berth reads from the same cluster.
    let plugin = ok_json(
        "kubectl berth dry-run",
        &run(&["berth", "dry-run", "--kubeconfig", &kc_arg, "-o", "json"]),
    );
    let plain = ok_json(
        "berth dry-run --from-cluster",
        &Command::new(berth_bin())
            .args(["dry-run", "--from-cluster", "--kubeconfig", &kc_arg])
            .args(["-o", "json"])
            .output()
            .expect("run berth"),
    );
    assert_eq!(plugin, plain);
    let everyone: Vec<String> = [claims(&plain, "bindings"), claims(&plain, "pending")].concat();
    assert!(
        everyone.iter().any(|c| c == "other/elsewhere"),
        "{everyone:?}"
    );
    assert!(everyone.iter().any(|c| c == "shop/small"), "{everyone:?}");

    // -n: the whole cluster's plan, narrowed to one namespace.
    let shop = ok_json(
        "kubectl berth dry-run -n shop",
        &run(&[
            "berth",
            "dry-run",
            "--kubeconfig",
            &kc_arg,
            "-n",
            "shop",
            "-o",
            "json",
        ]),
    );
    for key in ["bindings", "provisioning", "pending"] {
        let expected: Vec<String> = claims(&plain, key)
            .into_iter()
            .filter(|c| c.starts_with("shop/"))
            .collect();
        assert_eq!(claims(&shop, key), expected, "{key}");
    }

    // explain without -n: the namespace of the context --context names.
    let out = run(&[
        "berth",
        "explain",
        "pvc",
        "small",
        "--kubeconfig",
        &kc_arg,
        "--context",
        "shop-ctx",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("PersistentVolumeClaim shop/small"), "{text}");
    // The admin context has no namespace: `default`, as kubectl, and
    // berth's exit code comes back through kubectl.
    let out = run(&["berth", "explain", "pvc", "small", "--kubeconfig", &kc_arg]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("default/small is not in the input"), "{err}");
    // $KUBECONFIG, as kubectl passes its environment to plugins.
    let out = kubectl(
        &kubectl_bin,
        plugins.path(),
        &[
            "berth",
            "explain",
            "pvc",
            "elsewhere",
            "--context",
            "other-ctx",
        ],
        &[("KUBECONFIG", &kc)],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("PersistentVolumeClaim other/elsewhere"),
        "{text}"
    );
    // An unknown context names itself and the kubeconfig.
    let out = run(&[
        "berth",
        "dry-run",
        "--kubeconfig",
        &kc_arg,
        "--context",
        "nope",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("kubeconfig {kc_arg}: no context \"nope\"")),
        "{err}"
    );
}
