//! A cluster with a client password: the client's `ClientOptions::password` goes out
//! as a bearer token on every request, discovery included, and a client without it (or
//! with a wrong one) gets a definite refusal — never an "unknown outcome" and never a
//! retry loop, since nothing ran.

mod support;

use replikv_client::{Client, ClientError, ClientOptions, Consistency};

const PASSWORD: &str = "correct horse battery staple";

fn options(password: Option<&str>) -> ClientOptions {
    ClientOptions {
        attempts_max: 20,
        backoff_initial_ms: 10,
        backoff_max_ms: 100,
        password: password.map(str::to_owned),
        ..ClientOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_opens_the_cluster_and_its_absence_is_a_definite_refusal() {
    let directory = tempfile::tempdir().unwrap();
    let node = support::start_node(directory.path(), Some(PASSWORD)).await;
    let endpoint = node.http_address.unwrap().to_string();

    let client = Client::new(&[&endpoint], options(Some(PASSWORD))).unwrap();
    let written = client.put("k", "v").await.unwrap();
    assert_eq!(written.version, 1);
    let read = client.get("k", Consistency::Linearizable).await.unwrap();
    assert_eq!(read.unwrap().value, b"v");

    for password in [None, Some("wrong")] {
        let stranger = Client::new(&[&endpoint], options(password)).unwrap();
        let error = stranger.put("k", "intruder").await.unwrap_err();
        assert!(matches!(error, ClientError::Invalid(_)), "{error}");
        assert!(!error.outcome_unknown(), "{error}");
    }
    let read = client.get("k", Consistency::Linearizable).await.unwrap();
    assert_eq!(read.unwrap().version, 1, "a refused write was applied");
    node.shutdown().await.unwrap();
}
