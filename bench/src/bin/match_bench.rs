//! Comparison 1, matching: berth's binding core against upstream's
//! `FindMatchingVolume` (k8s.io/component-helpers v0.36.3) replayed the way
//! the PV controller and the scheduler call it (`bench/peers/matching`, see
//! its header for what is replayed and which unspecified orders it fixes).
//!
//! For each size N: generates N PVs × N PVCs (`berth_bench::describe`),
//! writes the manifest once, and has both sides read that same file outside
//! the timed region: berth parses it into a `Snapshot` in process, the peer
//! decodes it into client-go types. Rounds then alternate which side goes
//! first; berth's figure is the wall time of `berth::binding::plan_with`
//! (the whole plan: admission, reclaim, matching, the scheduler's volume
//! binding for pods with a node, near-miss hints, limits and warnings),
//! upstream's is the wall time of its index build and matching only. Neither
//! side predicts where pods without a node will go (the peer has no
//! scheduler filters), so berth runs with `schedule_pods` off. Both run on the same single CPU (`GOMAXPROCS=1` for Go).
//!
//! Afterwards the bindings of both sides are compared claim by claim; every
//! claim whose volume differs (or that only one side binds) is a mismatch,
//! the first few are printed, and the count goes into the notes, with the
//! number of upstream decisions that were ties (where upstream's own map
//! orders could have picked another volume). Any mismatch makes the run
//! exit non-zero once the results are written: the two sides must agree.
//!
//! Usage: match_bench [--sizes 1000,10000,50000] [--rounds 3] [--seed 1]
//!                    [--peer PATH] [--show 10] [--ties-max 10000] [--no-pin]
//!                    [--budget-secs 300] [--out DIR]
//!
//! Rounds stop early, after at least one, once a size's rounds have taken
//! `--budget-secs` (default 300) in all: upstream needs minutes per round at
//! 50k. The table's rounds column shows how many ran.
//!
//! Counting ties replays upstream once more with extra calls, untimed; it is
//! done for sizes up to `--ties-max` (0: never), as it takes minutes at 50k.
//!
//! Writes `matching-N.json` (see `berth_bench::report`) per size; exits
//! non-zero if the peer fails to start, dies, or prints no figure.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::time::Instant;

use berth::binding::{BindHow, Options, Snapshot, plan_with};
use berth_bench::report::{Better, Comparison, Round, results_dir};
use serde_json::Value;

const USAGE: &str = "usage: match_bench [--sizes 1000,10000,50000] [--rounds 3] [--seed 1] [--peer PATH] [--show 10] [--ties-max 10000] [--no-pin] [--budget-secs 300] [--out DIR]";

const UPSTREAM: &str = "FindMatchingVolume (k8s.io/component-helpers v0.36.3)";

struct Opts {
    sizes: Vec<usize>,
    rounds: usize,
    seed: u64,
    peer: PathBuf,
    show: usize,
    ties_max: usize,
    budget_secs: f64,
    pin: bool,
    out: PathBuf,
}

fn parse_opts() -> Result<Opts, String> {
    let mut o = Opts {
        sizes: vec![1_000, 10_000, 50_000],
        rounds: 3,
        seed: 1,
        peer: berth_bench::cli::peer_bin("matching"),
        show: 10,
        ties_max: 10_000,
        budget_secs: 300.0,
        pin: true,
        out: results_dir(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--sizes" => o.sizes = berth_bench::cli::parse_list(&val()?)?,
            "--rounds" => {
                o.rounds = val()?
                    .parse::<usize>()
                    .map_err(|e| format!("--rounds: {e}"))?
                    .max(1)
            }
            "--seed" => o.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--peer" => o.peer = PathBuf::from(val()?),
            "--show" => o.show = val()?.parse().map_err(|e| format!("--show: {e}"))?,
            "--ties-max" => o.ties_max = val()?.parse().map_err(|e| format!("--ties-max: {e}"))?,
            "--budget-secs" => {
                o.budget_secs = val()?.parse().map_err(|e| format!("--budget-secs: {e}"))?
            }
            "--no-pin" => o.pin = false,
            "--out" => o.out = PathBuf::from(val()?),
            _ => return Err(USAGE.into()),
        }
    }
    Ok(o)
}

/// Pins this process (and so the peer it starts) to CPU 0: both sides are
/// single-threaded figures on the same core.
fn pin_to_cpu0() -> bool {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// The Go side, loaded once and driven line by line over stdin/stdout.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn start(bin: &Path, manifest: &Path, bindings: &Path) -> Result<Peer, String> {
        if !bin.is_file() {
            return Err(format!(
                "upstream peer {} not found: build it with bench/peers/build.sh (or pass --peer)",
                bin.display()
            ));
        }
        let mut child = Command::new(bin)
            .arg("-f")
            .arg(manifest)
            .arg("-bindings")
            .arg(bindings)
            .env("GOMAXPROCS", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("starting {}: {e}", bin.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().map(BufReader::new);
        let Some(stdout) = stdout else {
            return Err("peer has no stdout".into());
        };
        let mut peer = Peer {
            child,
            stdin,
            stdout,
        };
        let ready = peer.line()?;
        if ready.get("ready") != Some(&Value::Bool(true)) {
            return Err(format!("peer did not get ready: {ready}"));
        }
        Ok(peer)
    }

    /// The next JSON line; an error if the peer exits instead.
    fn line(&mut self) -> Result<Value, String> {
        let mut text = String::new();
        let n = self
            .stdout
            .read_line(&mut text)
            .map_err(|e| format!("reading from peer: {e}"))?;
        if n == 0 {
            let status = self.child.wait().map_err(|e| e.to_string())?;
            return Err(format!("peer exited ({status}) without an answer"));
        }
        serde_json::from_str(&text).map_err(|e| format!("peer printed {text:?}: {e}"))
    }

    fn ask(&mut self, cmd: &str) -> Result<Value, String> {
        let stdin = self.stdin.as_mut().ok_or("peer stdin closed")?;
        writeln!(stdin, "{cmd}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("writing to peer: {e}"))?;
        self.line()
    }

    /// Upstream's matching time for one round and the part of it spent in
    /// the scheduler path, in milliseconds.
    fn round(&mut self) -> Result<(f64, f64), String> {
        let answer = self.ask("run")?;
        let ms = |field: &str| answer.get(field).and_then(Value::as_f64).map(|ns| ns / 1e6);
        match (ms("ns"), ms("scheduler_ns")) {
            (Some(total), Some(scheduler)) => Ok((total, scheduler)),
            _ => Err(format!("peer answered {answer} to run")),
        }
    }

    /// Closes stdin so the peer writes its bindings and exits.
    fn finish(mut self) -> Result<(), String> {
        drop(self.stdin.take());
        let status = self.child.wait().map_err(|e| e.to_string())?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("peer exited with {status}"))
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// berth's plan time for one round, in milliseconds; also its bindings.
fn berth_round(snapshot: &Snapshot) -> (f64, BTreeMap<String, (String, BindHow)>) {
    let options = Options {
        schedule_pods: false,
        ..Options::default()
    };
    let start = Instant::now();
    let p = plan_with(snapshot, &options);
    let ms = start.elapsed().as_secs_f64() * 1e3;
    let bindings = p
        .bindings
        .into_iter()
        .map(|b| (b.claim.to_string(), (b.volume, b.how)))
        .collect();
    (ms, bindings)
}

fn how_word(how: &BindHow) -> String {
    match how {
        BindHow::AlreadyBound => "already bound".into(),
        BindHow::VolumeName => "spec.volumeName".into(),
        BindHow::PreBound => "claimRef".into(),
        BindHow::Matched => "matched".into(),
        BindHow::Scheduler { node } => format!("scheduler on {node}"),
    }
}

/// Claims whose volume differs between the two sides, as printable lines.
fn mismatches(
    berth: &BTreeMap<String, (String, BindHow)>,
    upstream: &BTreeMap<String, String>,
) -> Vec<String> {
    let mut claims: Vec<&String> = berth.keys().chain(upstream.keys()).collect();
    claims.sort();
    claims.dedup();
    claims
        .into_iter()
        .filter_map(|c| {
            let b = berth.get(c);
            let u = upstream.get(c);
            if b.map(|(v, _)| v) == u {
                return None;
            }
            let berth_says = b.map_or("unbound".to_string(), |(v, how)| {
                format!("{v} ({})", how_word(how))
            });
            let upstream_says = u.map_or("unbound", String::as_str);
            Some(format!("{c}: berth {berth_says}, upstream {upstream_says}"))
        })
        .collect()
}

/// One size's comparison and its number of mismatches.
fn compare_size(o: &Opts, n: usize, dir: &Path) -> Result<(Comparison, usize), String> {
    let manifest = dir.join(format!("cluster-{n}.json"));
    let bindings_path = dir.join(format!("upstream-bindings-{n}.json"));
    std::fs::write(&manifest, berth_bench::cluster_manifest_json(n, n, o.seed))
        .map_err(|e| format!("{}: {e}", manifest.display()))?;
    // berth reads the same bytes the peer does (not timed).
    let text = std::fs::read_to_string(&manifest).map_err(|e| e.to_string())?;
    let docs = berth::manifest::parse_str(&manifest.display().to_string(), &text)
        .map_err(|e| format!("berth cannot read {}: {e}", manifest.display()))?;
    let snapshot = berth::manifest::to_snapshot(docs)
        .map_err(|e| format!("berth cannot convert {}: {e}", manifest.display()))?;
    drop(text);

    let mut peer = Peer::start(&o.peer, &manifest, &bindings_path)?;
    let mut rounds = Vec::with_capacity(o.rounds);
    let mut berth_bindings = BTreeMap::new();
    let mut scheduler_share = Vec::with_capacity(o.rounds);
    for r in 0..o.rounds {
        // Alternate who goes first, so neither side always runs on the
        // other's leftover cache and allocator state.
        let (berth_ms, (upstream_ms, scheduler_ms)) = if r % 2 == 0 {
            let (b, bindings) = berth_round(&snapshot);
            berth_bindings = bindings;
            (b, peer.round()?)
        } else {
            let u = peer.round()?;
            let (b, bindings) = berth_round(&snapshot);
            berth_bindings = bindings;
            (b, u)
        };
        scheduler_share.push(scheduler_ms / upstream_ms);
        eprintln!(
            "matching {n}: round {}: berth {berth_ms:.1} ms, upstream {upstream_ms:.1} ms",
            r + 1
        );
        rounds.push(Round {
            berth: berth_ms,
            upstream: upstream_ms,
        });
        let spent: f64 = rounds.iter().map(|r| r.berth + r.upstream).sum::<f64>() / 1e3;
        if spent > o.budget_secs && r + 1 < o.rounds {
            eprintln!(
                "matching {n}: stopping after {} rounds ({spent:.0} s > --budget-secs {})",
                r + 1,
                o.budget_secs
            );
            break;
        }
    }
    let mut notes = Vec::new();
    if n <= o.ties_max {
        // The ties pass replays once more (untimed) and leaves its bindings,
        // which are the same as a timed run's.
        let answer = peer.ask("ties")?;
        let ties = answer
            .get("ties")
            .and_then(Value::as_u64)
            .ok_or_else(|| format!("peer answered {answer} to ties"))?;
        notes.push(format!(
            "{ties} upstream decisions were ties (another order of upstream's maps could pick another volume); fixed to berth's order: volumes by name, access-mode sets by bits"
        ));
    } else {
        notes.push(format!(
            "ties not counted above {} claims (--ties-max); upstream's orders fixed to berth's: volumes by name, access-mode sets by bits",
            o.ties_max
        ));
    }
    peer.finish()?;
    let text = std::fs::read_to_string(&bindings_path)
        .map_err(|e| format!("peer wrote no bindings ({}): {e}", bindings_path.display()))?;
    let upstream_bindings: BTreeMap<String, String> =
        serde_json::from_str(&text).map_err(|e| format!("peer bindings: {e}"))?;
    let diff = mismatches(&berth_bindings, &upstream_bindings);
    println!(
        "matching {n} x {n}: berth binds {}, upstream {}; {} mismatches",
        berth_bindings.len(),
        upstream_bindings.len(),
        diff.len()
    );
    for line in diff.iter().take(o.show) {
        println!("  mismatch {line}");
    }
    notes.insert(
        0,
        format!(
            "{} mismatches over {n} claims (berth binds {}, upstream {})",
            diff.len(),
            berth_bindings.len(),
            upstream_bindings.len()
        ),
    );
    if let Some(share) = berth_bench::report::median(&scheduler_share) {
        notes.push(format!(
            "upstream spends {:.0} % of its time in the scheduler path (FindMatchingVolume with a node, CheckNodeAffinity per volume of the class)",
            share * 100.0
        ));
    }
    if rounds.len() < o.rounds {
        notes.push(format!(
            "{} of {} rounds (--budget-secs {})",
            rounds.len(),
            o.rounds,
            o.budget_secs
        ));
    }
    notes.push("berth: whole berth::binding::plan in process; upstream: index build + matching in the Go peer; JSON decoding excluded on both sides".into());
    if o.pin {
        notes.push("both sides pinned to CPU 0, GOMAXPROCS=1".into());
    }
    let comparison = Comparison {
        id: format!("matching-{n}"),
        group: "matching".into(),
        title: format!("match {n} PVs × {n} PVCs"),
        upstream: UPSTREAM.into(),
        unit: "ms".into(),
        better: Better::Lower,
        size: n as u64,
        rounds,
        notes,
    };
    Ok((comparison, diff.len()))
}

fn run(o: &Opts) -> Result<(), String> {
    if o.pin && !pin_to_cpu0() {
        return Err("cannot pin to CPU 0 (pass --no-pin)".into());
    }
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let mut disagreeing = Vec::new();
    for &n in &o.sizes {
        let (c, mismatched) = compare_size(o, n, dir.path())?;
        if mismatched > 0 {
            disagreeing.push(format!("{mismatched} at {n}"));
        }
        let path = c
            .write(&o.out)
            .map_err(|e| format!("writing result: {e}"))?;
        println!(
            "matching {n} x {n}: berth {:.1} ms, upstream {:.1} ms (median of {}), berth {:.1}x faster -> {}",
            c.berth_median().unwrap_or(f64::NAN),
            c.upstream_median().unwrap_or(f64::NAN),
            c.rounds.len(),
            c.advantage_median().unwrap_or(f64::NAN),
            path.display()
        );
    }
    if disagreeing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "berth and upstream disagree: {} mismatches",
            disagreeing.join(", ")
        ))
    }
}

fn main() -> ExitCode {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("match_bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_bound_on_one_side_only_is_a_mismatch() {
        let berth = BTreeMap::from([
            ("a/x".to_string(), ("pv-1".to_string(), BindHow::Matched)),
            ("a/y".to_string(), ("pv-2".to_string(), BindHow::Matched)),
        ]);
        let upstream = BTreeMap::from([
            ("a/x".to_string(), "pv-1".to_string()),
            ("a/z".to_string(), "pv-3".to_string()),
        ]);
        let diff = mismatches(&berth, &upstream);
        assert_eq!(
            diff,
            vec![
                "a/y: berth pv-2 (matched), upstream unbound".to_string(),
                "a/z: berth unbound, upstream pv-3".to_string(),
            ]
        );
    }
}
