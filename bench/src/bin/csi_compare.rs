//! Comparison 4, the CSI driver: `berth csi` against the mock CSI driver of
//! kubernetes-csi's csi-test (`cmd/mock-driver` of v4.2.0, built by
//! `bench/peers/build.sh mock`), both serving on unix sockets in temporary
//! directories.
//!
//! The intended upstream, csi-driver-host-path, is not served by the Go
//! module proxy this project can reach (403 for every version), and csi-test
//! v4.2.0 is the last release with the mock driver. The mock keeps its
//! volumes in a list in memory and does no I/O, while berth creates a real
//! directory and records durable state per volume: this compares berth's
//! real driver with a driver that does no I/O at all, i.e. how close berth's
//! RPC path gets to that floor.
//!
//! For each count of existing volumes (both drivers are filled to it first,
//! untimed), every round creates `--ops` fresh 1 MiB filesystem volumes with
//! `--clients` calls in flight and then deletes them, on one side and then
//! the other, alternating which side goes first. The figures per round are
//! CreateVolume and DeleteVolume throughput and p99 latency, so a round
//! leaves each driver with the count it started with. Written as
//! `csi-{create,delete}-{throughput,p99}-N.json`.
//!
//! Usage: csi_compare [--existing 100,1000,10000] [--ops 200] [--clients 8]
//!                    [--rounds 3] [--berth PATH] [--upstream PATH] [--out DIR]
//!
//! Exits non-zero, writing nothing, if either driver fails to start, dies,
//! or fails a call: a side that did not run gets no figure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};

use berth_bench::cli::{parse_list, peer_bin, repo_root};
use berth_bench::csi_load::{Stat, connect, create_many, delete_many};
use berth_bench::report::{Better, Comparison, Round, results_dir};
use csi_proto::controller_client::ControllerClient;
use tonic::transport::Channel;

const USAGE: &str = "usage: csi_compare [--existing 100,1000,10000] [--ops 200] [--clients 8] [--rounds 3] [--berth PATH] [--upstream PATH] [--out DIR]";

/// How the upstream side is named in results.
const UPSTREAM: &str = "csi-test mock driver v4.2.0 (in-memory, no real volumes; csi-driver-host-path is not served by the Go module proxy)";

/// Volumes the mock driver holds from the start ("Mock Volume 1" to "3"):
/// they count towards its existing volumes, so its fill creates that many
/// fewer.
const MOCK_PRESEEDED: usize = 3;

struct Opts {
    existing: Vec<usize>,
    ops: usize,
    clients: usize,
    rounds: usize,
    berth: PathBuf,
    upstream: PathBuf,
    out: PathBuf,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        existing: vec![100, 1_000, 10_000],
        ops: 200,
        clients: 8,
        rounds: 3,
        berth: std::env::var_os("BERTH_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target/release/berth")),
        upstream: peer_bin("csi-mock-driver"),
        out: results_dir(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        let number = |s: String, what: &str| {
            s.parse::<usize>()
                .map_err(|e| format!("{what}: {e}"))
                .map(|n| n.max(1))
        };
        match a.as_str() {
            "--existing" => o.existing = parse_list(&val()?)?,
            "--ops" => o.ops = number(val()?, "--ops")?,
            "--clients" => o.clients = number(val()?, "--clients")?,
            "--rounds" => o.rounds = number(val()?, "--rounds")?,
            "--berth" => o.berth = PathBuf::from(val()?),
            "--upstream" => o.upstream = PathBuf::from(val()?),
            "--out" => o.out = PathBuf::from(val()?),
            _ => return Err(USAGE.into()),
        }
    }
    o.existing.sort_unstable();
    o.existing.dedup();
    Ok(o)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Berth,
    Upstream,
}

/// One driver process, its directory and its client.
struct Driver {
    name: &'static str,
    child: Child,
    ctrl: ControllerClient<Channel>,
    /// Volumes created and not yet deleted (the fill).
    existing: usize,
    _dir: tempfile::TempDir,
}

impl Driver {
    async fn start(side: Side, o: &Opts) -> Result<Driver, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let sock = dir.path().join("csi.sock");
        let endpoint = format!("unix://{}", sock.display());
        let (name, bin) = match side {
            Side::Berth => ("berth", &o.berth),
            Side::Upstream => ("csi-mock-driver", &o.upstream),
        };
        if !bin.is_file() {
            let hint = match side {
                Side::Berth => "cargo build --release -p berth",
                Side::Upstream => "bench/peers/build.sh mock",
            };
            return Err(format!(
                "{name}: {} not found (build it with `{hint}` or pass its path)",
                bin.display()
            ));
        }
        let mut cmd = Command::new(bin);
        match side {
            Side::Berth => {
                cmd.arg("csi")
                    .arg("--endpoint")
                    .arg(&endpoint)
                    .args(["--node-id", "bench-node", "--capacity", "1Pi"])
                    .arg("--state-dir")
                    .arg(dir.path().join("state"))
                    .arg("--data-dir")
                    .arg(dir.path().join("data"))
                    .env("BERTH_LOG", "warn");
            }
            Side::Upstream => {
                // The mock takes its socket from the environment only; its
                // per-call JSON log line is at -v=3, so the default level
                // prints nothing per call (it still marshals the line).
                cmd.env("CSI_ENDPOINT", &endpoint).arg("-v=0");
            }
        }
        let existing = match side {
            Side::Berth => 0,
            Side::Upstream => MOCK_PRESEEDED,
        };
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("{name}: starting {}: {e}", bin.display()))?;
        let channel = match connect(&sock).await {
            Ok(c) => c,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
                return Err(format!("{name} did not serve its socket ({status}): {e}"));
            }
        };
        Ok(Driver {
            name,
            child,
            ctrl: ControllerClient::new(channel),
            existing,
            _dir: dir,
        })
    }

    fn check_alive(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(format!("{} exited ({status})", self.name)),
            Err(e) => Err(format!("{}: {e}", self.name)),
        }
    }

    /// Creates volumes (untimed) until `target` exist.
    async fn fill(&mut self, target: usize) -> Result<(), String> {
        if target > self.existing {
            create_many(&self.ctrl, "fill-", self.existing..target, 16)
                .await
                .map_err(|e| format!("{} fill: {e}", self.name))?;
            self.existing = target;
        }
        self.check_alive()
    }

    /// One measured round: create `ops` volumes, then delete them.
    async fn round(
        &mut self,
        tag: &str,
        ops: usize,
        clients: usize,
    ) -> Result<(Stat, Stat), String> {
        let (create, ids) = create_many(&self.ctrl, &format!("bench-{tag}-"), 0..ops, clients)
            .await
            .map_err(|e| format!("{}: {e}", self.name))?;
        let delete = delete_many(&self.ctrl, ids, clients)
            .await
            .map_err(|e| format!("{}: {e}", self.name))?;
        self.check_alive()?;
        Ok((create, delete))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // SIGTERM first so both drivers get to close their state cleanly.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child by its pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let _ = self.child.wait();
    }
}

/// The four metrics of one round, per side.
#[derive(Default)]
struct Rounds {
    create_tput: Vec<Round>,
    create_p99: Vec<Round>,
    delete_tput: Vec<Round>,
    delete_p99: Vec<Round>,
}

fn comparisons(o: &Opts, existing: usize, r: Rounds) -> Vec<Comparison> {
    let notes = vec![
        format!(
            "{} volumes of 1 MiB created then deleted per round, {} calls in flight, on top of {existing} existing volumes",
            o.ops, o.clients
        ),
        "berth's real driver (a directory and durable state per volume) against an in-memory reference that does no I/O: \
         read it as how close berth's RPC path gets to a driver that does no I/O"
            .to_string(),
        format!(
            "the mock keeps its volumes in one list behind a lock: a name or id lookup scans the whole list, \
             DeleteVolume shifts the rest of it; its {MOCK_PRESEEDED} built-in volumes count towards the {existing}"
        ),
    ];
    let make = |metric: &str, what: &str, unit: &str, better, rounds: Vec<Round>| Comparison {
        id: format!("csi-{metric}-{existing}"),
        group: "csi-driver".into(),
        title: format!("{what} with {existing} existing volumes"),
        upstream: UPSTREAM.into(),
        unit: unit.into(),
        better,
        size: existing as u64,
        rounds,
        notes: notes.clone(),
    };
    vec![
        make(
            "create-throughput",
            "CreateVolume throughput",
            "ops/s",
            Better::Higher,
            r.create_tput,
        ),
        make(
            "create-p99",
            "CreateVolume p99 latency",
            "ms",
            Better::Lower,
            r.create_p99,
        ),
        make(
            "delete-throughput",
            "DeleteVolume throughput",
            "ops/s",
            Better::Higher,
            r.delete_tput,
        ),
        make(
            "delete-p99",
            "DeleteVolume p99 latency",
            "ms",
            Better::Lower,
            r.delete_p99,
        ),
    ]
}

async fn run(o: &Opts) -> Result<Vec<Comparison>, String> {
    let mut berth = Driver::start(Side::Berth, o).await?;
    let mut upstream = Driver::start(Side::Upstream, o).await?;
    // Warm-up: connection, allocator, page cache, the state files' growth.
    for d in [&mut berth, &mut upstream] {
        d.round("warmup", 32, o.clients).await?;
    }
    let mut out = Vec::new();
    for &existing in &o.existing {
        berth.fill(existing).await?;
        upstream.fill(existing).await?;
        // The fill is untimed, and so is its writeback: without this the
        // first round pays for flushing berth's fill directories.
        // SAFETY: sync(2) takes no arguments and touches no memory of ours.
        unsafe { libc::sync() };
        let mut r = Rounds::default();
        for i in 0..o.rounds {
            let tag = format!("{existing}-{i}");
            let (b, u) = if i % 2 == 0 {
                let b = berth.round(&tag, o.ops, o.clients).await?;
                (b, upstream.round(&tag, o.ops, o.clients).await?)
            } else {
                let u = upstream.round(&tag, o.ops, o.clients).await?;
                (berth.round(&tag, o.ops, o.clients).await?, u)
            };
            eprintln!(
                "csi {existing} existing, round {}: create {:.0} vs {:.0} ops/s, p99 {:.2} vs {:.2} ms; delete {:.0} vs {:.0} ops/s, p99 {:.2} vs {:.2} ms (berth vs upstream)",
                i + 1,
                b.0.ops_per_sec,
                u.0.ops_per_sec,
                b.0.p99_ms,
                u.0.p99_ms,
                b.1.ops_per_sec,
                u.1.ops_per_sec,
                b.1.p99_ms,
                u.1.p99_ms
            );
            let pair = |b: f64, u: f64| Round {
                berth: b,
                upstream: u,
            };
            r.create_tput.push(pair(b.0.ops_per_sec, u.0.ops_per_sec));
            r.create_p99.push(pair(b.0.p99_ms, u.0.p99_ms));
            r.delete_tput.push(pair(b.1.ops_per_sec, u.1.ops_per_sec));
            r.delete_p99.push(pair(b.1.p99_ms, u.1.p99_ms));
        }
        out.extend(comparisons(o, existing, r));
    }
    Ok(out)
}

fn write_all(comparisons: &[Comparison], dir: &Path) -> Result<(), String> {
    for c in comparisons {
        let path = c.write(dir).map_err(|e| format!("writing {}: {e}", c.id))?;
        println!(
            "{}: berth {:.2} {unit}, upstream {:.2} {unit} (median of {}) -> {}",
            c.id,
            c.berth_median().unwrap_or(f64::NAN),
            c.upstream_median().unwrap_or(f64::NAN),
            c.rounds.len(),
            path.display(),
            unit = c.unit,
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("csi_compare: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Results are written only once every size ran on both sides.
    match rt
        .block_on(run(&opts))
        .and_then(|c| write_all(&c, &opts.out))
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("csi_compare: {e}");
            ExitCode::FAILURE
        }
    }
}
