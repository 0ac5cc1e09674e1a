//! Turns the comparisons' result files into what a reader looks at:
//! `comparisons.md` (one table row per [`Comparison`], the machine, how to
//! rerun, which comparisons failed) and one PNG per group plotting berth's
//! median advantage against size.
//!
//! A failed comparison gets a line saying why and never a number: the table
//! is built only from result files, and the entry point clears those before
//! a run, so a figure cannot survive from an earlier run. It records each
//! failure as `<group>.failed` next to the results, so rendering the
//! directory again gives the same document.
//!
//! Plots are drawn by `plotters` into a bitmap; text is rasterised by
//! `ab_glyph` from a TrueType file read at run time (DejaVu Sans, or
//! `BENCH_FONT`), so no fontconfig or system font library is linked. Without
//! a font the plots fail with a message saying so.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::report::{Better, Comparison};

/// Groups in the order the issue lists the five comparisons.
pub const GROUPS: [&str; 5] = [
    "matching",
    "static-binding",
    "provisioning",
    "csi-driver",
    "ceiling",
];

/// A comparison that produced no result, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub what: String,
    pub reason: String,
}

/// Reads every `*.json` result in `dir`, in table order.
pub fn load_dir(dir: &Path) -> std::io::Result<Vec<Comparison>> {
    let mut out = Vec::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                out.push(Comparison::read(&path)?);
            }
        }
    }
    sort(&mut out);
    Ok(out)
}

/// Reads the `<what>.failed` files the entry point leaves in `dir` for
/// comparisons that did not run (the file holds the reason), by name.
pub fn load_failures(dir: &Path) -> std::io::Result<Vec<Failure>> {
    let mut out = Vec::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "failed") {
                let what = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let reason = std::fs::read_to_string(&path)?.trim().to_string();
                out.push(Failure { what, reason });
            }
        }
    }
    out.sort_by_key(|f| (group_rank(&f.what), f.what.clone()));
    Ok(out)
}

fn group_rank(group: &str) -> usize {
    GROUPS
        .iter()
        .position(|g| *g == group)
        .unwrap_or(GROUPS.len())
}

/// The metric a comparison measures, without its size: `csi-create-p99-1000`
/// → `csi-create-p99`. Comparisons of one series differ only in size.
pub fn series(c: &Comparison) -> &str {
    let suffix = format!("-{}", c.size);
    c.id.strip_suffix(&suffix).unwrap_or(&c.id)
}

/// Table order: group (as [`GROUPS`]), series, size.
pub fn sort(comparisons: &mut [Comparison]) {
    comparisons.sort_by(|a, b| {
        (group_rank(&a.group), &a.group, series(a), a.size).cmp(&(
            group_rank(&b.group),
            &b.group,
            series(b),
            b.size,
        ))
    });
}

/// Three significant figures at most, no exponent for everyday magnitudes.
pub fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 0.001 {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

/// [`number`] without trailing zeros, for axis ticks: `9.00` → `9`.
fn tick(v: f64) -> String {
    let s = number(v);
    if s.contains('.') && !s.contains('e') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Tick values 1, 2 and 5 × 10^k between `lo` and `hi`, for a log axis.
fn ticks_125(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if (lo..=hi).contains(&t) {
                out.push(t);
            }
        }
        decade *= 10.0;
    }
    out
}

/// Line colours that stay distinct on white (no yellow).
const COLORS: [RGBColor; 7] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
];

/// `1000` → `1k`, `50000` → `50k`, `1500` → `1.5k`, `2000000` → `2M`.
pub fn size_label(n: u64) -> String {
    for (unit, suffix) in [(1_000_000, "M"), (1_000, "k")] {
        if n >= unit && n.is_multiple_of(unit) {
            return format!("{}{suffix}", n / unit);
        }
        if n >= unit && n.is_multiple_of(unit / 10) {
            return format!("{:.1}{suffix}", n as f64 / unit as f64);
        }
    }
    n.to_string()
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// How the ratio column reads: berth's median advantage and who won.
pub fn ratio_cell(c: &Comparison) -> String {
    match c.advantage_median() {
        None => "n/a".into(),
        Some(r) if r >= 1.0 => format!("{}× berth better", number(r)),
        Some(r) => format!("{}× upstream better", number(1.0 / r)),
    }
}

/// The results table, one row per comparison.
pub fn table(comparisons: &[Comparison]) -> String {
    let mut out = String::from(
        "| comparison | size | berth (median) | upstream (median) | median ratio | rounds | notes |\n\
         |---|---:|---:|---:|---|---:|---|\n",
    );
    for c in comparisons {
        let value =
            |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{} {}", number(v), c.unit));
        let better = match c.better {
            Better::Lower => "lower is better",
            Better::Higher => "higher is better",
        };
        let _ = writeln!(
            out,
            "| {} (`{}`; {}) | {} | {} | {} | {} | {} | {} |",
            cell(&c.title),
            cell(&c.id),
            better,
            size_label(c.size),
            value(c.berth_median()),
            value(c.upstream_median()),
            ratio_cell(c),
            c.rounds.len(),
            cell(&format!("vs {}. {}", c.upstream, c.notes.join("; "))),
        );
    }
    out
}

/// What the figures were measured on, from /proc.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
    let cpus = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or("unknown".to_string(), |kb| {
            format!("{} GiB", number(kb / 1024.0 / 1024.0))
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "{cpus} × {model}, {mem_gib} memory, Linux {}; load average at render time {}",
        kernel.trim(),
        load.join(" ")
    )
}

/// What `comparisons.md` says besides the table.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// When and with which command the run was made.
    pub generated: String,
    pub machine: String,
    /// The command that reproduces the run.
    pub rerun: String,
    pub failures: Vec<Failure>,
    /// File names of the plots, relative to the document.
    pub plots: Vec<String>,
}

/// The whole `comparisons.md`.
pub fn document(comparisons: &[Comparison], ctx: &Context) -> String {
    let mut out = String::from("# berth against upstream: side-by-side comparisons\n\n");
    if !ctx.generated.is_empty() {
        let _ = writeln!(out, "{}\n", ctx.generated);
    }
    let _ = writeln!(out, "Machine: {}.\n", ctx.machine);
    if !ctx.failures.is_empty() {
        out.push_str("**Failed** (no figures are shown for these):\n\n");
        for f in &ctx.failures {
            let _ = writeln!(out, "- {}: {}", f.what, cell(&f.reason));
        }
        out.push('\n');
    }
    if comparisons.is_empty() {
        out.push_str("No comparison produced a result.\n\n");
    } else {
        out.push_str(&table(comparisons));
        out.push_str(
            "\nEach round measures both sides on the same input, alternating which goes \
             first. The medians are over rounds; the ratio is the median of the per-round \
             ratios (upstream ÷ berth when lower is better, berth ÷ upstream when higher \
             is better), so it need not equal the ratio of the medians.\n\n",
        );
    }
    for p in &ctx.plots {
        let name = p.trim_end_matches(".png");
        let _ = writeln!(out, "![{name}]({p})\n");
    }
    if !ctx.rerun.is_empty() {
        let _ = writeln!(out, "## Rerun\n\n```sh\n{}\n```", ctx.rerun);
    }
    out
}

/// Registers a TrueType font for the plots' text, once per process.
fn font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("BENCH_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(
                [
                    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                    "/usr/share/fonts/TTF/DejaVuSans.ttf",
                    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                ]
                .map(PathBuf::from),
            )
            .collect();
        let Some((path, bytes)) = candidates
            .iter()
            .find_map(|p| std::fs::read(p).ok().map(|b| (p, b)))
        else {
            return Err(format!(
                "no TrueType font for the plots' text (looked for {}); install fonts-dejavu-core or set BENCH_FONT to a .ttf file",
                candidates
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{} is not a usable TrueType font", path.display()))
    })
    .clone()
}

/// One PNG per group that has results: berth's median advantage (log
/// scale) against size (log scale), one line per series, and the parity
/// line at 1. Returns the files written.
pub fn plots(comparisons: &[Comparison], dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut groups: Vec<&str> = comparisons.iter().map(|c| c.group.as_str()).collect();
    groups.dedup();
    let mut written = Vec::new();
    for group in groups {
        let mine: Vec<&Comparison> = comparisons.iter().filter(|c| c.group == group).collect();
        let path = dir.join(format!("{group}.png"));
        plot_group(group, &mine, &path)?;
        written.push(path);
    }
    Ok(written)
}

fn plot_group(group: &str, comparisons: &[&Comparison], path: &Path) -> Result<(), String> {
    font()?;
    let err = |e: &dyn std::fmt::Display| format!("plotting {}: {e}", path.display());
    let points: Vec<(&str, u64, f64)> = comparisons
        .iter()
        .filter_map(|c| {
            c.advantage_median()
                .filter(|r| *r > 0.0 && r.is_finite())
                .map(|r| (series(c), c.size, r))
        })
        .collect();
    if points.is_empty() {
        return Err(err(&"no comparison of this group has a ratio"));
    }
    // Sizes are few and far apart (1k, 10k, 50k): one evenly spaced
    // category each reads better than a log axis crowded with ticks.
    let mut sizes: Vec<u64> = points.iter().map(|p| p.1).collect();
    sizes.sort_unstable();
    sizes.dedup();
    let slot =
        |size: u64| SegmentValue::CenterOf(sizes.iter().position(|s| *s == size).unwrap_or(0));
    let (mut y0, mut y1) = (1.0f64, 1.0f64);
    for &(_, _, y) in &points {
        (y0, y1) = (y0.min(y), y1.max(y));
    }
    let (y0, y1) = (y0 / 2.0, y1 * 3.0);

    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{group}: berth's advantage over upstream (median of rounds)"),
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (0..sizes.len() - 1).into_segmented(),
            (y0..y1).log_scale().with_key_points(ticks_125(y0, y1)),
        )
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_desc("size")
        .y_desc("ratio (> 1: berth better, log scale)")
        .x_labels(sizes.len())
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => sizes.get(*i).map_or(String::new(), |s| size_label(*s)),
            _ => String::new(),
        })
        .y_label_formatter(&|y| format!("{}×", tick(*y)))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 18))
        .draw()
        .map_err(|e| err(&e))?;
    chart
        .draw_series(LineSeries::new(
            [(SegmentValue::Exact(0), 1.0), (SegmentValue::Last, 1.0)],
            BLACK.stroke_width(2),
        ))
        .map_err(|e| err(&e))?
        .label("parity (1×)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(2)));

    let mut names: Vec<&str> = points.iter().map(|p| p.0).collect();
    names.sort_unstable();
    names.dedup();
    for (i, name) in names.iter().enumerate() {
        let color = COLORS[i % COLORS.len()].to_rgba();
        let mut line: Vec<(u64, f64)> = points
            .iter()
            .filter(|p| p.0 == *name)
            .map(|p| (p.1, p.2))
            .collect();
        line.sort_by_key(|p| p.0);
        chart
            .draw_series(LineSeries::new(
                line.iter().map(|&(x, y)| (slot(x), y)),
                color.stroke_width(3),
            ))
            .map_err(|e| err(&e))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(3)));
        chart
            .draw_series(line.iter().map(|&(x, y)| {
                EmptyElement::at((slot(x), y))
                    + Circle::new((0, 0), 5, color.filled())
                    + Text::new(
                        format!("{}×", number(y)),
                        (8, -22),
                        ("sans-serif", 16).into_font(),
                    )
            }))
            .map_err(|e| err(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(("sans-serif", 16))
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Round;

    fn fixture(
        id: &str,
        group: &str,
        size: u64,
        better: Better,
        rounds: &[(f64, f64)],
    ) -> Comparison {
        Comparison {
            id: id.into(),
            group: group.into(),
            title: format!("{group} at {size}"),
            upstream: "upstream | peer".into(),
            unit: if better == Better::Lower {
                "ms"
            } else {
                "ops/s"
            }
            .into(),
            better,
            size,
            rounds: rounds
                .iter()
                .map(|&(berth, upstream)| Round { berth, upstream })
                .collect(),
            notes: vec!["0 mismatches".into()],
        }
    }

    fn fixtures() -> Vec<Comparison> {
        vec![
            fixture(
                "csi-create-throughput-1000",
                "csi-driver",
                1000,
                Better::Higher,
                &[(500.0, 1000.0)],
            ),
            fixture(
                "matching-10000",
                "matching",
                10_000,
                Better::Lower,
                &[(10.0, 300.0), (12.0, 240.0), (11.0, 330.0)],
            ),
            fixture(
                "matching-1000",
                "matching",
                1000,
                Better::Lower,
                &[(1.0, 30.0)],
            ),
        ]
    }

    #[test]
    fn rows_follow_group_then_series_then_size() {
        let mut c = fixtures();
        sort(&mut c);
        let ids: Vec<&str> = c.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "matching-1000",
                "matching-10000",
                "csi-create-throughput-1000"
            ]
        );
        assert_eq!(series(&c[2]), "csi-create-throughput");
    }

    #[test]
    fn table_prints_medians_ratio_and_escaped_notes() {
        let mut c = fixtures();
        sort(&mut c);
        let t = table(&c);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        // Per-round ratios 30, 20 and 30: the median is 30, not 300 / 11.
        assert!(lines[0].starts_with("| comparison | size | berth (median)"));
        assert_eq!(
            lines[3],
            "| matching at 10000 (`matching-10000`; lower is better) | 10k | 11.0 ms | 300 ms | 30.0× berth better | 3 | vs upstream \\| peer. 0 mismatches |"
        );
        assert!(
            lines[4].contains("| 500 ops/s | 1000 ops/s | 2.00× upstream better | 1 |"),
            "{}",
            lines[4]
        );
    }

    #[test]
    fn failures_are_listed_without_figures() {
        let ctx = Context {
            machine: "2 × test CPU".into(),
            rerun: "bench/compare.sh".into(),
            failures: vec![Failure {
                what: "csi-driver".into(),
                reason: "peer did not build".into(),
            }],
            ..Context::default()
        };
        let doc = document(&[], &ctx);
        assert!(doc.contains("- csi-driver: peer did not build"));
        assert!(doc.contains("No comparison produced a result."));
        assert!(!doc.contains("| comparison |"));
        assert!(doc.contains("```sh\nbench/compare.sh\n```"));
    }

    #[test]
    fn failures_are_read_from_their_files_in_group_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("csi-driver.failed"), "peer did not build\n")
            .expect("write");
        std::fs::write(dir.path().join("matching.failed"), "peer exited").expect("write");
        let f = load_failures(dir.path()).expect("read");
        let got: Vec<(&str, &str)> = f
            .iter()
            .map(|f| (f.what.as_str(), f.reason.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("matching", "peer exited"),
                ("csi-driver", "peer did not build")
            ]
        );
    }

    #[test]
    fn numbers_and_sizes_read_short() {
        assert_eq!(number(1234.5), "1234");
        assert_eq!(number(25.04), "25.0");
        assert_eq!(number(2.0), "2.00");
        assert_eq!(number(0.5), "0.500");
        assert_eq!(tick(9.0), "9");
        assert_eq!(ticks_125(0.4, 30.0), [0.5, 1.0, 2.0, 5.0, 10.0, 20.0]);
        assert_eq!(tick(0.5), "0.5");
        assert_eq!(tick(1.25), "1.25");
        assert_eq!(size_label(50_000), "50k");
        assert_eq!(size_label(1_500), "1.5k");
        assert_eq!(size_label(100), "100");
        assert_eq!(size_label(2_000_000), "2M");
    }

    #[test]
    fn plots_one_png_per_group() {
        if font().is_err() {
            eprintln!("skipping: no font for plots");
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = fixtures();
        sort(&mut c);
        let files = plots(&c, dir.path()).expect("plots");
        let names: Vec<String> = files
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        assert_eq!(names, ["matching.png", "csi-driver.png"]);
        for f in files {
            let bytes = std::fs::read(&f).expect("png");
            assert!(bytes.starts_with(b"\x89PNG"), "{}", f.display());
        }
    }
}
