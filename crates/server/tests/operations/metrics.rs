//! `GET /metrics`: the exposition parses, and the counters move with the traffic.

use super::support::{Cluster, body, http, query, start_cluster};
use std::collections::HashMap;

/// Parses Prometheus's text exposition: every line is a `# HELP`/`# TYPE` comment or a
/// sample `name{labels} value`. Panics (failing the test) on anything else.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split(' ').next().unwrap();
            assert!(kind == "HELP" || kind == "TYPE", "bad comment {line:?}");
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            name.starts_with("replikv_")
                && name
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_'),
            "bad metric name in {line:?}"
        );
        let labels = &series[name_end..];
        assert!(
            labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
            "bad labels in {line:?}"
        );
        for pair in labels
            .trim_matches(['{', '}'])
            .split("\",")
            .filter(|p| !p.is_empty())
        {
            let (label, quoted) = pair.split_once('=').unwrap_or_else(|| panic!("{line:?}"));
            assert!(quoted.starts_with('"'), "unquoted label value in {line:?}");
            assert!(
                label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
            );
        }
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            other => other
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "{line:?} twice"
        );
    }
    samples
}

pub(super) fn scrape(cluster: &Cluster, index: usize) -> HashMap<String, f64> {
    let (status, response) = http(cluster.http(index), "GET", "/metrics", "", b"");
    assert_eq!(status, 200, "{response}");
    assert!(response.contains("text/plain; version=0.0.4"), "{response}");
    parse_exposition(body(&response))
}

pub(super) fn sample(samples: &HashMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

#[test]
fn metrics_parse_as_prometheus_text_and_move_with_the_traffic() {
    let cluster = start_cluster(3, |_| {});
    let leader = cluster.wait_for_leader();
    let follower = (leader + 1) % 3;
    let before = scrape(&cluster, leader);
    let sets = r#"replikv_client_requests_total{api="resp",command="set",outcome="ok"}"#;
    assert!(!before.contains_key(sets), "no SET yet");
    let mut connection = cluster.client(leader);
    for round in 0..10 {
        let _: () = query(&mut connection, &["SET", "k", &round.to_string()]).unwrap();
    }
    assert!(query::<()>(&mut connection, &["BOGUS"]).is_err());
    let mut on_follower = cluster.client(follower);
    let _: () = query(&mut on_follower, &["SET", "via", "follower"]).unwrap();
    let (status, _) = http(cluster.http(leader), "PUT", "/v1/kv/h", "", b"v");
    assert_eq!(status, 200);

    let after = scrape(&cluster, leader);
    assert_eq!(sample(&after, sets), 10.0);
    let bogus = r#"replikv_client_requests_total{api="resp",command="other",outcome="invalid"}"#;
    assert_eq!(sample(&after, bogus), 1.0);
    let put =
        r#"replikv_client_requests_total{api="http",command="PUT /v1/kv/{key}",outcome="ok"}"#;
    assert_eq!(sample(&after, put), 1.0);
    let set_latency = r#"replikv_client_request_duration_seconds_count{api="resp",command="set"}"#;
    assert_eq!(sample(&after, set_latency), 10.0);
    // Ten SETs, the follower's forwarded SET and the HTTP PUT committed on the leader.
    assert!(sample(&after, "replikv_commit_duration_seconds_count") >= 12.0);
    assert!(sample(&after, "replikv_flush_duration_seconds_count") > 0.0);
    // The writes reached the leader's log through group commits, each fsync covering
    // one entry or more.
    let fsyncs = sample(&after, "replikv_log_fsync_duration_seconds_count");
    let last_index = sample(&after, "replikv_last_index");
    assert!(
        fsyncs >= 1.0 && fsyncs <= last_index,
        "{fsyncs} fsyncs, {last_index} entries"
    );
    assert!(sample(&after, "replikv_batch_inputs_sum") >= 12.0);
    assert_eq!(sample(&after, r#"replikv_role{role="leader"}"#), 1.0);
    assert_eq!(sample(&after, r#"replikv_role{role="follower"}"#), 0.0);
    assert!(sample(&after, "replikv_commit_index") >= 12.0);
    assert!(sample(&after, "replikv_term") >= 1.0);
    for server in &cluster.servers {
        if server.id != cluster.servers[leader].id {
            let lag = format!(
                "replikv_follower_lag_entries{{follower=\"{}\"}}",
                server.id.0
            );
            assert!(sample(&after, &lag) >= 0.0);
        }
    }
    assert_eq!(sample(&after, "replikv_writes_discarded_total"), 0.0);
    // The leader won an election (counted on the leader itself).
    assert!(sample(&after, "replikv_leaderships_won_total") >= 1.0);
    assert!(sample(&after, "replikv_elections_started_total") >= 1.0);
    // The follower counted its own client's SET, and has no followers of its own.
    let on_follower_node = scrape(&cluster, follower);
    assert_eq!(sample(&on_follower_node, sets), 1.0);
    assert_eq!(
        sample(&on_follower_node, r#"replikv_role{role="follower"}"#),
        1.0
    );
    assert!(
        !on_follower_node
            .keys()
            .any(|series| series.starts_with("replikv_follower_lag_entries")),
        "a follower knows no lag"
    );
    cluster.shutdown();
}
