//! Benchmark: deciding a 100,000-operation register history.
//!
//! The history comes from a simulated linearizable register (see
//! tests/support/register_workload.rs): 10 processes, 100 keys, overlapping operations,
//! 1% `info` and 1% `fail` outcomes, unique values. The target is under 10 s in the
//! release profile; the whole check (split by key, search every key) is measured. A
//! second case breaks one read of that history so that it is not linearizable, and
//! measures finding the violation and shrinking it to a witness.
//! Run with `cargo bench -p replikv-check`.

#[path = "../tests/support/register_workload.rs"]
mod register_workload;

use criterion::{Criterion, criterion_group, criterion_main};
use register_workload::{RegisterWorkload, perturb};
use replikv_check::{Budget, check_registers};
use std::hint::black_box;
use std::time::Duration;

fn workload() -> RegisterWorkload {
    RegisterWorkload {
        processes: 10,
        keys: 100,
        operations: 100_000,
        values: None,
        info_probability: 0.01,
        fail_probability: 0.01,
        duration_max_ns: 1_000,
        pause_max_ns: 100,
    }
}

fn linearizability(criterion: &mut Criterion) {
    let history = workload().generate(42);
    assert!(check_registers(&history, &Budget::unlimited()).is_valid());
    let mut group = criterion.benchmark_group("linearizability");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("100k_ops_100_keys_10_processes", |bencher| {
        bencher.iter(|| check_registers(black_box(&history), &Budget::unlimited()));
    });
    let broken = broken_history();
    group.bench_function("100k_ops_one_broken_read_with_witness", |bencher| {
        bencher.iter(|| check_registers(black_box(&broken), &Budget::unlimited()));
    });
    group.finish();
}

/// The benchmark history with one read changed so that it is not linearizable.
fn broken_history() -> replikv_check::History {
    for seed in 0.. {
        let mut history = workload().generate(42);
        if perturb(&mut history, seed, 1_000)
            && check_registers(&history, &Budget::unlimited()).is_invalid()
        {
            return history;
        }
    }
    unreachable!("some perturbation breaks linearizability")
}

criterion_group!(benches, linearizability);
criterion_main!(benches);
