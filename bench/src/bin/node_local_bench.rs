//! deploy/'s shape at scale on a real control plane: a `berth node` agent
//! per node (processes, one per fake Node) and `berth controller`, with
//! kube-scheduler and the stock PV binder.
//!
//! - `wffc`: N WaitForFirstConsumer claims, each with a pod; kube-scheduler
//!   picks the nodes (from the agents' CSIStorageCapacity), each node's
//!   agent provisions its share.
//! - `immediate`: N Immediate claims, placed by the controller.
//!
//! Prints, per scenario: the time from the first create to all claims
//! Bound, the spread over the nodes, berth's API requests per claim (by
//! verb and resource, counted by berth's own clients) and the API server's
//! total, and the peak RSS of an agent and of the controller; and appends
//! the table to `--out` (default `bench/results/node-local.md`).
//!
//! ```text
//! node_local_bench [wffc] [immediate] [--nodes 10] [--claims 1000] [--out FILE]
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use berth_tests::control_plane::{Cluster, NodeSpec, affinity_nodes, free_port};
use clap::{Parser, ValueEnum};
use futures::{StreamExt, stream};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{ListParams, PostParams};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Wffc,
    Immediate,
}

#[derive(Debug, Parser)]
#[command(about = "berth's node agents and controller at scale on a real control plane")]
struct Args {
    /// Scenarios to run; both when none is named.
    #[arg(value_enum)]
    scenarios: Vec<Scenario>,
    #[arg(long, default_value_t = 10)]
    nodes: usize,
    #[arg(long, default_value_t = 1000)]
    claims: usize,
    /// Requests in flight while claims and pods are created.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Markdown file the results are appended to.
    #[arg(long)]
    out: Option<PathBuf>,
}

struct Outcome {
    scenario: Scenario,
    seconds: f64,
    spread: BTreeMap<String, usize>,
    berth_requests: BTreeMap<(String, String), f64>,
    apiserver_requests: f64,
    agent_rss_mib: (f64, f64),
    controller_rss_mib: f64,
}

/// `VmHWM` of a process, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

/// `(verb, resource) → count` from a berth process's `kube_requests_total`.
fn berth_requests(text: &str, into: &mut BTreeMap<(String, String), f64>) {
    for line in text.lines() {
        let Some(rest) = line
            .strip_prefix("berth_node_kube_requests_total{")
            .or_else(|| line.strip_prefix("berth_controller_kube_requests_total{"))
        else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        let n: f64 = value.trim().parse().unwrap_or(0.0);
        *into.entry((label("verb"), label("resource"))).or_default() += n;
    }
}

/// Sum of the API server's `apiserver_request_total` (every client).
async fn apiserver_requests(env: &Cluster) -> f64 {
    let req = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = env.client.request_text(req).await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

async fn run(scenario: Scenario, args: &Args) -> Outcome {
    let names: Vec<String> = (0..args.nodes).map(|i| format!("node-{i:02}")).collect();
    let specs: Vec<NodeSpec<'_>> = names.iter().map(|n| NodeSpec::new(n, "1Ti")).collect();
    let mut env = Cluster::start_node_local(&specs).await;
    let controller_port = free_port();
    let metrics_flag = format!("--metrics-address=127.0.0.1:{controller_port}");
    let controller_pid = env
        .berth
        .add_controller(&[&metrics_flag])
        .expect("controller")
        .pid();
    env.namespace("bench").await;
    let (class, mode) = match scenario {
        Scenario::Wffc => ("local", "WaitForFirstConsumer"),
        Scenario::Immediate => ("now", "Immediate"),
    };
    env.class(class, mode, "Delete", json!({})).await;
    env.wait_capacities(class).await;
    // Let the watches settle, so their start is not counted.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let api_before = apiserver_requests(&env).await;
    let mut berth_before = BTreeMap::new();
    for a in &env.berth.agents {
        berth_requests(
            &http_get(a.metrics_port, "/metrics").await,
            &mut berth_before,
        );
    }
    berth_requests(
        &http_get(controller_port, "/metrics").await,
        &mut berth_before,
    );

    let started = Instant::now();
    let claims = env.claims("bench");
    let pods: kube::Api<Pod> = env.pods("bench");
    stream::iter(0..args.claims)
        .map(|i| {
            let (claims, pods) = (claims.clone(), pods.clone());
            async move {
                let name = format!("c{i:05}");
                let claim: PersistentVolumeClaim = Cluster::claim_object(&name, class, json!({}));
                claims
                    .create(&PostParams::default(), &claim)
                    .await
                    .expect("claim");
                if scenario == Scenario::Wffc {
                    let pod: Pod = serde_json::from_value(json!({
                        "metadata": { "name": format!("p{i:05}") },
                        "spec": {
                            "containers": [{ "name": "app", "image": "registry.invalid/app:1" }],
                            "volumes": [{ "name": "data", "persistentVolumeClaim": { "claimName": name } }],
                        },
                    }))
                    .expect("pod");
                    pods.create(&PostParams::default(), &pod).await.expect("pod");
                }
            }
        })
        .buffer_unordered(args.concurrency)
        .collect::<Vec<()>>()
        .await;
    let n = args.claims;
    env.wait("every claim Bound", Duration::from_secs(3600), || {
        let claims = claims.clone();
        async move {
            let bound = claims
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .iter()
                .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
                .count();
            (bound == n).then_some(())
        }
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();

    let mut spread: BTreeMap<String, usize> = names.iter().map(|n| (n.clone(), 0)).collect();
    for pv in env.berth_pvs().await {
        for node in affinity_nodes(&pv) {
            *spread.entry(node).or_default() += 1;
        }
    }
    let mut berth_after = BTreeMap::new();
    for a in &env.berth.agents {
        berth_requests(
            &http_get(a.metrics_port, "/metrics").await,
            &mut berth_after,
        );
    }
    berth_requests(
        &http_get(controller_port, "/metrics").await,
        &mut berth_after,
    );
    let berth_requests: BTreeMap<(String, String), f64> = berth_after
        .into_iter()
        .map(|(k, v)| {
            let before = berth_before.get(&k).copied().unwrap_or(0.0);
            (k, (v - before) / n as f64)
        })
        .filter(|(_, v)| *v > 0.0)
        .collect();
    let apiserver = (apiserver_requests(&env).await - api_before) / n as f64;
    let agent_rss: Vec<f64> = env
        .berth
        .agents
        .iter()
        .filter_map(|a| a.daemon.as_ref().map(|d| peak_rss_mib(d.pid())))
        .collect();
    let max = agent_rss.iter().copied().fold(0.0, f64::max);
    let mean = agent_rss.iter().sum::<f64>() / agent_rss.len().max(1) as f64;
    Outcome {
        scenario,
        seconds,
        spread,
        berth_requests,
        apiserver_requests: apiserver,
        agent_rss_mib: (mean, max),
        controller_rss_mib: peak_rss_mib(controller_pid),
    }
}

fn render(o: &Outcome, args: &Args) -> String {
    let mut s = String::new();
    let what = match o.scenario {
        Scenario::Wffc => "WaitForFirstConsumer claims with a pod each (kube-scheduler places)",
        Scenario::Immediate => "Immediate claims (berth's controller places)",
    };
    let _ = writeln!(s, "### {} {what} over {} nodes\n", args.claims, args.nodes);
    let counts: Vec<usize> = o.spread.values().copied().collect();
    let (min, max) = (
        counts.iter().min().copied().unwrap_or(0),
        counts.iter().max().copied().unwrap_or(0),
    );
    let total: f64 = o.berth_requests.values().sum();
    let _ = writeln!(s, "| figure | value |\n|---|---|");
    let _ = writeln!(
        s,
        "| first create → all Bound | {:.1} s ({:.1} claims/s) |",
        o.seconds,
        args.claims as f64 / o.seconds
    );
    let _ = writeln!(s, "| volumes per node (min–max) | {min}–{max} |");
    let _ = writeln!(s, "| berth's API requests per claim | {total:.2} |");
    let _ = writeln!(
        s,
        "| all API requests per claim (API server, every client) | {:.2} |",
        o.apiserver_requests
    );
    let _ = writeln!(
        s,
        "| agent peak RSS (mean / max of {}) | {:.1} / {:.1} MiB |",
        args.nodes, o.agent_rss_mib.0, o.agent_rss_mib.1
    );
    let _ = writeln!(
        s,
        "| controller peak RSS | {:.1} MiB |",
        o.controller_rss_mib
    );
    let _ = writeln!(s, "\nberth's requests per claim by verb and resource:\n");
    for ((verb, resource), per) in &o.berth_requests {
        let _ = writeln!(s, "- {verb} {resource}: {per:.3}");
    }
    let _ = writeln!(s, "\nspread: {:?}\n", o.spread);
    s
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    let scenarios = if args.scenarios.is_empty() {
        vec![Scenario::Wffc, Scenario::Immediate]
    } else {
        args.scenarios.clone()
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| berth_bench::report::results_dir().join("node-local.md"));
    let mut text = String::new();
    for scenario in scenarios {
        let outcome = run(scenario, &args).await;
        let block = render(&outcome, &args);
        print!("{block}");
        text.push_str(&block);
    }
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = std::fs::write(&out, text) {
        eprintln!("node_local_bench: writing {}: {e}", out.display());
        std::process::exit(1);
    }
    println!("wrote {}", out.display());
}
