//! How fast the simulator runs: a 3-node cluster, 5 clients, 60 virtual seconds of the
//! register model under network faults. The bar is under one second of wall time in
//! release; a seed sweep of thousands of runs depends on it.
//!
//! Run with `cargo bench -p replikv-sim`.

use criterion::{Criterion, criterion_group, criterion_main};
use replikv_sim::{FaultPreset, Model, SimulationOptions};
use std::hint::black_box;
use std::time::Duration;

fn sixty_virtual_seconds(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("simulation");
    group.sample_size(10);
    let mut seed = 0;
    group.bench_function("register_3_nodes_5_clients_60s_network", |bencher| {
        bencher.iter(|| {
            seed += 1;
            let mut options = SimulationOptions::new(seed, FaultPreset::Network);
            options.duration = Duration::from_secs(60);
            let report = Model::Register.simulate(black_box(&options));
            assert!(report.passed(), "{}", report.summary());
            black_box(report.stats.events)
        });
    });
    group.finish();
}

criterion_group!(benches, sixty_virtual_seconds);
criterion_main!(benches);
