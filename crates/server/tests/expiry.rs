//! Key expiry through the real server, in-process: Redis's expiry commands and reply
//! conventions over RESP, the HTTP `ttl-ms` write and TTL header, and expiry driven by
//! the testing clock offset (the endpoint that issue 5's nemesis uses for clock skew),
//! which answers 404 unless the node runs with testing faults enabled.

mod support;

use support::{Cluster, body, http, query, start_cluster};

fn single_node(testing_faults: bool) -> Cluster {
    let cluster = start_cluster(1, |config| config.testing_faults = testing_faults);
    cluster.wait_for_leader();
    cluster
}

#[test]
fn redis_expiry_commands_follow_redis_conventions() {
    let cluster = single_node(false);
    let mut redis = cluster.client(0);
    let integer =
        |redis: &mut redis::Connection, words: &[&str]| -> i64 { query(redis, words).unwrap() };
    assert_eq!(integer(&mut redis, &["TTL", "absent"]), -2);
    let ok: String = query(&mut redis, &["SET", "k", "v", "PX", "100000"]).unwrap();
    assert_eq!(ok, "OK");
    let ttl = integer(&mut redis, &["TTL", "k"]);
    assert!((99..=100).contains(&ttl), "TTL {ttl}");
    let pttl = integer(&mut redis, &["PTTL", "k"]);
    assert!((90_000..=100_000).contains(&pttl), "PTTL {pttl}");
    // SET without options clears the expiry; KEEPTTL keeps it.
    let _: String = query(&mut redis, &["SET", "k", "w", "EX", "50"]).unwrap();
    let _: String = query(&mut redis, &["SET", "k", "x", "KEEPTTL"]).unwrap();
    assert!(integer(&mut redis, &["TTL", "k"]) > 0);
    let _: String = query(&mut redis, &["SET", "k", "y"]).unwrap();
    assert_eq!(integer(&mut redis, &["TTL", "k"]), -1);
    // EXPIRE and its conditions, PERSIST.
    assert_eq!(integer(&mut redis, &["EXPIRE", "k", "100", "XX"]), 0);
    assert_eq!(integer(&mut redis, &["EXPIRE", "k", "100"]), 1);
    assert_eq!(integer(&mut redis, &["EXPIRE", "k", "50", "GT"]), 0);
    assert_eq!(integer(&mut redis, &["PEXPIRE", "k", "50000", "LT"]), 1);
    assert!(integer(&mut redis, &["TTL", "k"]) <= 50);
    assert_eq!(integer(&mut redis, &["PERSIST", "k"]), 1);
    assert_eq!(integer(&mut redis, &["PERSIST", "k"]), 0);
    assert_eq!(integer(&mut redis, &["EXPIRE", "absent", "10"]), 0);
    // SETEX, PSETEX; SET NX on a present key; a past EXPIREAT deletes.
    let _: String = query(&mut redis, &["SETEX", "s", "30", "v"]).unwrap();
    assert!((29..=30).contains(&integer(&mut redis, &["TTL", "s"])));
    let _: String = query(&mut redis, &["PSETEX", "p", "30000", "v"]).unwrap();
    assert!(integer(&mut redis, &["PTTL", "p"]) > 0);
    let refused: Option<String> = query(&mut redis, &["SET", "s", "new", "NX", "EX", "5"]).unwrap();
    assert_eq!(refused, None);
    assert_eq!(integer(&mut redis, &["EXPIREAT", "s", "1"]), 1);
    let gone: Option<String> = query(&mut redis, &["GET", "s"]).unwrap();
    assert_eq!(gone, None);
    let set_nx: String = query(&mut redis, &["SET", "s", "again", "NX", "PX", "60000"]).unwrap();
    assert_eq!(set_nx, "OK");
    // Bad times are Redis's errors.
    for words in [
        &["SET", "k", "v", "EX", "0"][..],
        &["SET", "k", "v", "PX", "-5"],
        &["SET", "k", "v", "EX", "10", "PX", "10"],
        &["SETEX", "k", "0", "v"],
        &["EXPIRE", "k", "notanumber"],
        &["EXPIRE", "k", "10", "SOON"],
    ] {
        assert!(query::<String>(&mut redis, words).is_err(), "{words:?}");
    }
    cluster.shutdown();
}

#[test]
fn a_clock_offset_expires_keys_and_http_shows_the_ttl() {
    let cluster = single_node(true);
    let address = cluster.http(0);
    let mut redis = cluster.client(0);
    let (status, _) = http(address, "PUT", "/v1/kv/h?ttl-ms=60000", "", "v");
    assert_eq!(status, 200);
    let (status, response) = http(address, "GET", "/v1/kv/h", "", "");
    assert_eq!((status, body(&response)), (200, "v"));
    let ttl_line = response
        .lines()
        .find(|line| line.to_ascii_lowercase().starts_with("x-replikv-ttl-ms:"))
        .unwrap_or_else(|| panic!("no TTL header in {response}"));
    let ttl: u64 = ttl_line.split(':').nth(1).unwrap().trim().parse().unwrap();
    assert!((50_000..=60_000).contains(&ttl), "{ttl}");
    let (status, _) = http(address, "PUT", "/v1/kv/h?ttl-ms=0", "", "v");
    assert_eq!(status, 400);
    // Two minutes later on this node's clock, the key is gone.
    let (status, _) = http(
        address,
        "PUT",
        "/v1/admin/testing/clock-offset",
        "",
        r#"{"offset_ms": 120000}"#,
    );
    assert_eq!(status, 200);
    let (status, _) = http(address, "GET", "/v1/kv/h", "", "");
    assert_eq!(status, 404);
    let ttl: i64 = query(&mut redis, &["TTL", "h"]).unwrap();
    assert_eq!(ttl, -2);
    let (status, _) = http(
        address,
        "PUT",
        "/v1/admin/testing/clock-offset",
        "",
        r#"{"offset_ms": 999999999999}"#,
    );
    assert_eq!(status, 400);
    cluster.shutdown();

    let without_faults = single_node(false);
    let (status, _) = http(
        without_faults.http(0),
        "PUT",
        "/v1/admin/testing/clock-offset",
        "",
        r#"{"offset_ms": 1}"#,
    );
    assert_eq!(status, 404);
    without_faults.shutdown();
}
