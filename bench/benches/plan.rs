//! Criterion benchmark of `berth::binding::plan` on generated clusters of
//! 1k, 10k and 100k PVs × PVCs (see `berth_bench::describe` for the mix).
//!
//! Run: `cargo bench -p berth-bench --bench plan` (add `-- --quick` for a
//! shorter run). The target is 100k × 100k in under a second on one core.

use std::hint::black_box;
use std::time::Duration;

use berth::binding::{Options, plan, plan_with};
use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};

const SEED: u64 = 1;

fn bench_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("plan");
    for n in [1_000usize, 10_000, 100_000] {
        // Generated once, outside the timed loop: only planning is measured.
        let snapshot = berth_bench::cluster(n, n, SEED);
        group.throughput(Throughput::Elements(n as u64));
        if n >= 100_000 {
            // A plan here takes a good fraction of a second: flat sampling and
            // the minimum sample count keep the whole group near a minute.
            group.sampling_mode(SamplingMode::Flat);
            group.sample_size(10);
            group.warm_up_time(Duration::from_secs(2));
            group.measurement_time(Duration::from_secs(20));
        } else if n >= 10_000 {
            group.sampling_mode(SamplingMode::Flat);
            group.sample_size(20);
            group.warm_up_time(Duration::from_secs(2));
            group.measurement_time(Duration::from_secs(10));
        } else {
            group.sampling_mode(SamplingMode::Auto);
            group.sample_size(50);
            group.warm_up_time(Duration::from_secs(1));
            group.measurement_time(Duration::from_secs(5));
        }
        group.bench_with_input(BenchmarkId::new("default", n), &snapshot, |b, s| {
            b.iter(|| plan(black_box(s)))
        });
        // Near-miss hints are extra work done only for pending claims; this
        // line shows what they cost.
        let no_hints = Options {
            near_misses: false,
            ..Options::default()
        };
        group.bench_with_input(BenchmarkId::new("no-near-misses", n), &snapshot, |b, s| {
            b.iter(|| plan_with(black_box(s), &no_hints))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_plan);
criterion_main!(benches);
