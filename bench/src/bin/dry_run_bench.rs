//! Figures for `berth dry-run` on generated clusters of N PVs × N PVCs:
//! input size, in-process load (read + parse + convert) and plan times, and
//! the real CLI's wall time, CPU time and peak RSS when pinned to one core.
//! The point to check: planning 100k × 100k takes under a second, and memory
//! per object stays flat as the cluster grows (linear memory).
//!
//! Usage: dry_run_bench [--sizes 1000,10000,100000] [--seed 1] [--runs 3]
//!                      [--berth PATH] [--no-pin] [--keep DIR]
//!
//! `--keep DIR` also saves each generated manifest as `DIR/cluster-N.json`,
//! for profiling the CLI by hand.
//!
//! Exits non-zero if the CLI fails, prints something that is not a plan, or
//! disagrees with the in-process plan.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use berth::binding::{Plan, plan};

struct Opts {
    sizes: Vec<usize>,
    seed: u64,
    runs: usize,
    berth: PathBuf,
    pin: bool,
    keep: Option<PathBuf>,
}

const USAGE: &str = "usage: dry_run_bench [--sizes 1000,10000,100000] [--seed 1] [--runs 3] [--berth PATH] [--no-pin] [--keep DIR]";

fn parse_opts() -> Result<Opts, String> {
    // The CLI sits next to this binary in target/release; fall back to the
    // workspace layout when run from elsewhere.
    let default_berth = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|d| d.join("berth")))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/berth"));
    let mut o = Opts {
        sizes: vec![1_000, 10_000, 100_000],
        seed: 1,
        runs: 3,
        berth: default_berth,
        pin: true,
        keep: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--sizes" => {
                o.sizes = val()?
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<usize>()
                            .map_err(|e| format!("--sizes {s:?}: {e}"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--seed" => o.seed = val()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "--runs" => {
                o.runs = val()?
                    .parse::<usize>()
                    .map_err(|e| format!("--runs: {e}"))?
                    .max(1)
            }
            "--berth" => o.berth = PathBuf::from(val()?),
            "--no-pin" => o.pin = false,
            "--keep" => o.keep = Some(PathBuf::from(val()?)),
            _ => return Err(USAGE.into()),
        }
    }
    Ok(o)
}

/// Pins the calling thread to CPU 0, so in-process figures are one-core
/// figures like the CLI's (`taskset -c 0`).
fn pin_self_to_cpu0() -> bool {
    // SAFETY: cpu_set_t is plain data; sched_setaffinity reads it only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// CPU time of the calling thread: on a shared machine wall time includes
/// waiting for the core, CPU time does not.
fn thread_cpu() -> Duration {
    // SAFETY: timespec is plain data that clock_gettime fills in.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: valid clock id and out-pointer.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Counts of the plan's lists, as both the library and the JSON report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Counts {
    bound: usize,
    provisioned: usize,
    pending: usize,
    rejected: usize,
    reclaim: usize,
}

impl Counts {
    fn of(p: &Plan) -> Counts {
        Counts {
            bound: p.bindings.len(),
            provisioned: p.provisioning.len(),
            pending: p.pending.len(),
            rejected: p.rejected.len(),
            reclaim: p.reclaim.len(),
        }
    }

    fn of_json(v: &serde_json::Value) -> Result<Counts, String> {
        let len = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_array())
                .map(Vec::len)
                .ok_or_else(|| format!("CLI output has no {k:?} array"))
        };
        Ok(Counts {
            bound: len("bindings")?,
            provisioned: len("provisioning")?,
            pending: len("pending")?,
            rejected: len("rejected")?,
            reclaim: len("reclaim")?,
        })
    }
}

struct Row {
    size: usize,
    objects: usize,
    input_bytes: usize,
    load: Duration,
    /// CPU time of load, and of its first part (read, split, syntax scan).
    load_cpu: Duration,
    scan_cpu: Duration,
    plan_best: Duration,
    plan_median: Duration,
    plan_cpu: Duration,
    cli_wall: Duration,
    cli_cpu: Duration,
    peak_rss_kb: i64,
    counts: Counts,
}

/// What the CLI run gave: wall time, CPU time, peak RSS and stdout.
struct CliRun {
    wall: Duration,
    cpu: Duration,
    max_rss_kb: i64,
    stdout: Vec<u8>,
}

/// Runs `berth dry-run -f FILE -o json`, pinned with `taskset -c 0` when
/// available. The child is reaped with `wait4`, whose rusage is that one
/// process's own (`ru_maxrss` survives the `exec` from taskset into berth,
/// which is much larger), unlike `RUSAGE_CHILDREN`, which is the maximum over
/// every child so far.
fn run_cli(berth: &Path, file: &Path, taskset: bool) -> Result<CliRun, String> {
    let mut cmd = if taskset {
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(berth);
        c
    } else {
        Command::new(berth)
    };
    cmd.arg("dry-run")
        .arg("-f")
        .arg(file)
        .args(["-o", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", berth.display()))?;
    // Drain both pipes concurrently: a full pipe would stall the child.
    let mut out = child.stdout.take().ok_or("no stdout pipe")?;
    let mut err = child.stderr.take().ok_or("no stderr pipe")?;
    let out_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        out.read_to_end(&mut b).map(|_| b)
    });
    let err_t = std::thread::spawn(move || {
        let mut b = Vec::new();
        err.read_to_end(&mut b).map(|_| b)
    });
    let pid = child.id() as libc::pid_t;
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let reaped = loop {
        // SAFETY: pid is our own unreaped child; the out-pointers are valid.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == -1 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        break r;
    };
    let wall = start.elapsed();
    if reaped != pid {
        return Err(format!("wait4 failed: {}", std::io::Error::last_os_error()));
    }
    let stdout = out_t
        .join()
        .map_err(|_| "stdout reader panicked")?
        .map_err(|e| format!("reading CLI stdout: {e}"))?;
    let stderr = err_t
        .join()
        .map_err(|_| "stderr reader panicked")?
        .map_err(|e| format!("reading CLI stderr: {e}"))?;
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !ok {
        return Err(format!(
            "`berth dry-run` failed (wait status {status:#x}):\n{}",
            String::from_utf8_lossy(&stderr)
        ));
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(CliRun {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kb: usage.ru_maxrss,
        stdout,
    })
}

fn measure(o: &Opts, n: usize, taskset: bool) -> Result<Row, String> {
    let cluster = berth_bench::describe(n, n, o.seed);
    let objects = cluster.object_count();
    let manifest = cluster.manifest_json();
    drop(cluster);
    let input_bytes = manifest.len();
    let mut file = tempfile::Builder::new()
        .prefix("berth-bench-")
        .suffix(".json")
        .tempfile()
        .map_err(|e| format!("temp file: {e}"))?;
    file.write_all(manifest.as_bytes())
        .and_then(|_| file.flush())
        .map_err(|e| format!("writing manifest: {e}"))?;
    if let Some(dir) = &o.keep {
        let kept = dir.join(format!("cluster-{n}.json"));
        std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&kept, &manifest))
            .map_err(|e| format!("saving {}: {e}", kept.display()))?;
    }
    drop(manifest);
    let path = file.path().to_path_buf();

    // In process: what the CLI does before planning (read the file, parse,
    // convert), then planning alone, best and median of `runs`.
    let (t, c) = (Instant::now(), thread_cpu());
    // The CLI's own path, on one thread (this one is pinned to one core).
    let loaded = berth::manifest::load(std::slice::from_ref(&path))
        .map_err(|e| format!("loading the generated manifest: {e}"))?;
    let scan_cpu = thread_cpu().saturating_sub(c);
    let snapshot = berth::manifest::to_snapshot_loaded(Vec::new(), loaded, 1)
        .map_err(|e| format!("converting the generated manifest: {e}"))?;
    let load = t.elapsed();
    let load_cpu = thread_cpu().saturating_sub(c);
    let mut times = Vec::with_capacity(o.runs);
    let mut cpu_best = Duration::MAX;
    let mut counts = Counts::default();
    for _ in 0..o.runs {
        let (t, c) = (Instant::now(), thread_cpu());
        let p = plan(std::hint::black_box(&snapshot));
        times.push(t.elapsed());
        cpu_best = cpu_best.min(thread_cpu().saturating_sub(c));
        counts = Counts::of(&p);
    }
    drop(snapshot);
    times.sort();

    let cli = run_cli(&o.berth, &path, taskset)?;
    let doc: serde_json::Value = serde_json::from_slice(&cli.stdout)
        .map_err(|e| format!("CLI output for {n} is not JSON: {e}"))?;
    let cli_counts = Counts::of_json(&doc)?;
    if cli_counts != counts {
        return Err(format!(
            "CLI and library disagree at {n}: CLI {cli_counts:?}, library {counts:?}"
        ));
    }
    Ok(Row {
        size: n,
        objects,
        input_bytes,
        load,
        load_cpu,
        scan_cpu,
        plan_best: times[0],
        plan_median: times[times.len() / 2],
        plan_cpu: cpu_best,
        cli_wall: cli.wall,
        cli_cpu: cli.cpu,
        peak_rss_kb: cli.max_rss_kb,
        counts,
    })
}

fn label(n: usize) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "{:>13} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "PVs x PVCs",
        "objects",
        "input MB",
        "load ms",
        "load cpu",
        "plan ms",
        "(median)",
        "plan cpu",
        "CLI ms",
        "CLI cpu",
        "RSS MB",
        "KB/obj",
        "RSS/in",
        "bound",
        "provisn",
        "pending"
    );
    for r in rows {
        let rss_mb = r.peak_rss_kb as f64 / 1024.0;
        let input_mb = r.input_bytes as f64 / (1024.0 * 1024.0);
        println!(
            "{:>13} {:>8} {:>8.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8.2} {:>8.2} {:>8} {:>8} {:>8}",
            format!("{} x {}", label(r.size), label(r.size)),
            r.objects,
            input_mb,
            ms(r.load),
            ms(r.load_cpu),
            ms(r.plan_best),
            ms(r.plan_median),
            ms(r.plan_cpu),
            ms(r.cli_wall),
            ms(r.cli_cpu),
            rss_mb,
            r.peak_rss_kb as f64 / r.objects as f64,
            rss_mb / input_mb,
            r.counts.bound,
            r.counts.provisioned,
            r.counts.pending,
        );
    }
}

fn print_summary(rows: &[Row]) {
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let x = |p: f64, q: f64| if p > 0.0 { q / p } else { f64::NAN };
        // Marginal memory: the extra RSS per extra object strips the fixed
        // cost (binary, allocator arenas) that dominates small inputs.
        let marginal_kb =
            (b.peak_rss_kb - a.peak_rss_kb) as f64 / (b.objects as f64 - a.objects as f64);
        println!(
            "{} -> {}: input x{:.1}, plan time x{:.1}, load time x{:.1}, CLI wall x{:.1}, peak RSS x{:.1}; marginal RSS {:.2} KB/object",
            label(a.size),
            label(b.size),
            x(a.objects as f64, b.objects as f64),
            x(ms(a.plan_best), ms(b.plan_best)),
            x(ms(a.load), ms(b.load)),
            x(ms(a.cli_wall), ms(b.cli_wall)),
            x(a.peak_rss_kb as f64, b.peak_rss_kb as f64),
            marginal_kb,
        );
    }
    for r in rows {
        println!(
            "{} x {}: plan {:.0} ns/claim, load {:.0} ns/object; load CPU {:.1} ms = read+split+scan {:.1} + convert {:.1}; CLI CPU beyond load+plan {:.1} ms (output, start, exit)",
            label(r.size),
            label(r.size),
            r.plan_best.as_nanos() as f64 / r.size as f64,
            r.load.as_nanos() as f64 / r.objects as f64,
            ms(r.load_cpu),
            ms(r.scan_cpu),
            ms(r.load_cpu.saturating_sub(r.scan_cpu)),
            ms(r.cli_cpu) - ms(r.load_cpu) - ms(r.plan_cpu),
        );
    }
    if let Some(r) = rows.iter().find(|r| r.size == 100_000) {
        let t = ms(r.plan_best);
        println!(
            "100k x 100k plan time: {t:.1} ms (target < 1000 ms) {}; CPU {:.1} ms",
            if t < 1000.0 { "OK" } else { "MISSED" },
            ms(r.plan_cpu)
        );
    }
}

fn main() -> ExitCode {
    let o = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if !o.berth.is_file() {
        eprintln!(
            "{} not found: run `cargo build --release -p berth` or pass --berth",
            o.berth.display()
        );
        return ExitCode::FAILURE;
    }
    let taskset = o.pin && have_taskset();
    let pinned = o.pin && pin_self_to_cpu0();
    println!(
        "berth dry-run bench: seed {}, plan best of {} run(s); in-process {}; CLI {} ({})",
        o.seed,
        o.runs,
        if pinned {
            "pinned to CPU 0"
        } else {
            "not pinned"
        },
        if taskset {
            "under taskset -c 0"
        } else {
            "not pinned"
        },
        o.berth.display()
    );
    println!(
        "load = read + parse + convert (in process, one thread), wall and CPU; plan = berth::binding::plan (in process), wall best/median and CPU best; CLI = whole `berth dry-run -o json` run, wall and CPU; RSS = CLI peak (ru_maxrss); RSS/in = peak RSS / input size"
    );
    let mut rows = Vec::new();
    for &n in &o.sizes {
        match measure(&o, n, taskset) {
            Ok(r) => rows.push(r),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    print_table(&rows);
    print_summary(&rows);
    ExitCode::SUCCESS
}
