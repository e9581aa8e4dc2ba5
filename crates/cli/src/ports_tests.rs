//! Tests of `ports.rs`, kept apart so that they run once: the integration tests include
//! `ports.rs` itself by path, and would run any tests inside it in every test binary.

use crate::ports::{
    PORTS_IN_ROTATION, PORTS_IN_ROTATION_MIN, ROTATION_FIRST_MIN, Rotation, ephemeral_range,
    first_free, free_port, rotation_for,
};
use std::net::TcpListener;

#[test]
fn the_rotation_lies_below_the_ephemeral_range_when_it_can() {
    let rotation = rotation_for(Some((32_768, 60_999)));
    assert_eq!(
        rotation,
        Rotation {
            first: 32_768 - PORTS_IN_ROTATION,
            count: PORTS_IN_ROTATION,
            inside_ephemeral_range: false,
        }
    );
    // A range starting a little above the floor: a shorter rotation, still below it.
    let rotation = rotation_for(Some((ROTATION_FIRST_MIN + 2_000, 60_999)));
    assert_eq!(
        (rotation.first, rotation.count),
        (ROTATION_FIRST_MIN, 2_000)
    );
    assert!(!rotation.inside_ephemeral_range);
}

#[test]
fn a_range_starting_low_puts_the_rotation_above_it() {
    for low in [1_024, ROTATION_FIRST_MIN, ROTATION_FIRST_MIN + 100] {
        let rotation = rotation_for(Some((low, 40_000)));
        assert_eq!(rotation.first, 40_001, "range starting at {low}");
        assert_eq!(rotation.count, PORTS_IN_ROTATION);
        assert!(!rotation.inside_ephemeral_range);
    }
    let rotation = rotation_for(Some((1_024, 60_000)));
    assert_eq!(
        (rotation.first, rotation.count),
        (60_001, u16::MAX - 60_001)
    );
    assert!(rotation.count >= PORTS_IN_ROTATION_MIN);
}

#[test]
fn a_range_covering_nearly_everything_is_flagged() {
    let rotation = rotation_for(Some((1_024, 65_000)));
    assert!(rotation.inside_ephemeral_range);
    assert!(u32::from(rotation.first) + u32::from(rotation.count) <= u32::from(u16::MAX));
}

#[test]
fn drawn_ports_lie_in_the_rotation_and_differ() {
    let rotation = rotation_for(ephemeral_range());
    let ports: Vec<u16> = (0..64).map(|_| free_port().unwrap()).collect();
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        ports.len(),
        "a port was drawn twice: {ports:?}"
    );
    let end = u32::from(rotation.first) + u32::from(rotation.count);
    for port in &ports {
        let port = u32::from(*port);
        assert!(
            (u32::from(rotation.first)..end).contains(&port),
            "{port} outside"
        );
    }
}

#[test]
fn a_port_something_listens_on_is_skipped() {
    let held: Vec<TcpListener> = (0..3)
        .map(|_| TcpListener::bind(("127.0.0.1", free_port().unwrap())).unwrap())
        .collect();
    let mut candidates: Vec<u16> = held
        .iter()
        .map(|listener| listener.local_addr().unwrap().port())
        .collect();
    let free = free_port().unwrap();
    candidates.push(free);
    assert_eq!(first_free(candidates.iter().copied()), Some(free));
    assert_eq!(first_free(candidates[..3].iter().copied()), None);
}
