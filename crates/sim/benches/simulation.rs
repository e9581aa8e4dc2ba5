//! How fast the simulator runs: a 3-node cluster, 5 clients, 60 virtual seconds of the
//! register model under network faults, measured for the run alone and for the run plus
//! every checker the model claims. The bar is under one second of wall time in release;
//! a seed sweep of thousands of runs depends on it.
//!
//! Run with `cargo bench -p replikv-sim`.

use criterion::{Criterion, criterion_group, criterion_main};
use replikv_sim::reference::register::Register;
use replikv_sim::{FaultPreset, Model, SimulationOptions, run};
use std::hint::black_box;
use std::time::Duration;

fn options(seed: u64) -> SimulationOptions {
    let mut options = SimulationOptions::new(seed, FaultPreset::Network);
    options.duration = Duration::from_secs(60);
    options
}

fn sixty_virtual_seconds(criterion: &mut Criterion) {
    let mut group = criterion.benchmark_group("simulation");
    group.sample_size(10);
    let mut seed = 0;
    group.bench_function("register_3_nodes_5_clients_60s_network_run", |bencher| {
        bencher.iter(|| {
            seed += 1;
            let report = run(black_box(&options(seed)), Register::open);
            assert!(report.passed(), "{}", report.summary());
            black_box(report.stats.events)
        });
    });
    group.bench_function(
        "register_3_nodes_5_clients_60s_network_run_and_check",
        |bencher| {
            bencher.iter(|| {
                seed += 1;
                let report = Model::Register.simulate(black_box(&options(seed)));
                assert!(report.passed(), "{}", report.summary());
                black_box(report.stats.events)
            });
        },
    );
    group.finish();
}

criterion_group!(benches, sixty_virtual_seconds);
criterion_main!(benches);
