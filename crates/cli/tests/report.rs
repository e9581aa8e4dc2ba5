//! Runs the built `replikv report` on history and fault files and checks what it writes
//! and how it exits: 0 with a parseable picture of every operation for good files, 2
//! with the file and line named (and no picture written) for a malformed one.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const HISTORY: &str = r#"{"process":0,"key":"k","f":"write","value":1,"type":"ok","invoke":1000000,"complete":3000000}
{"process":1,"key":"k","f":"read","value":1,"type":"ok","invoke":2000000000,"complete":2004000000}
{"process":2,"key":"k","f":"cas","value":[1,2],"type":"info","invoke":3000000000,"complete":null}
{"process":3,"key":"k","f":"write","value":3,"type":"fail","invoke":4000000000,"complete":4000500000}
"#;

const FAULTS: &str = r#"{"kind":"kill-leader","target":"n1","start_ns":1500000000,"end_ns":3500000000}
{"kind":"pause","target":"n2","start_ns":3800000000,"end_ns":null}
"#;

fn replikv_report(arguments: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_replikv"))
        .arg("report")
        .args(arguments)
        .output()
        .expect("the replikv binary runs")
}

fn path_text(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn draws_every_operation_and_fault_window_from_the_files() {
    let directory = tempfile::tempdir().unwrap();
    let history = directory.path().join("history.jsonl");
    let faults = directory.path().join("faults.jsonl");
    let output = directory.path().join("timeline.svg");
    fs::write(&history, HISTORY).unwrap();
    fs::write(&faults, FAULTS).unwrap();
    let run = replikv_report(&[
        "--history",
        path_text(&history),
        "--faults",
        path_text(&faults),
        "--output",
        path_text(&output),
        "--title",
        "run <1> & co",
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert!(text(&run.stdout).contains("4 operations, 2 fault windows"));
    let svg = fs::read_to_string(&output).unwrap();
    let document = roxmltree::Document::parse(&svg).unwrap();
    let points = document
        .descendants()
        .filter(|node| node.attribute("class") == Some("points"))
        .flat_map(|group| group.children().filter(|child| child.is_element()))
        .count();
    assert_eq!(points, HISTORY.lines().count());
    let bars = document
        .descendants()
        .filter(|node| node.attribute("class") == Some("fault-bar"))
        .count();
    assert_eq!(bars, FAULTS.lines().count());
    let title = document
        .descendants()
        .find(|node| node.attribute("class") == Some("title"))
        .and_then(|node| node.text());
    assert_eq!(title, Some("run <1> & co"));
}

#[test]
fn a_malformed_file_is_named_with_its_line_and_nothing_is_written() {
    let directory = tempfile::tempdir().unwrap();
    let history = directory.path().join("history.jsonl");
    let faults = directory.path().join("faults.jsonl");
    let output = directory.path().join("timeline.svg");
    fs::write(&history, HISTORY).unwrap();
    fs::write(&faults, format!("{FAULTS}{{\"kind\":\"pause\"}}\n")).unwrap();
    let arguments = [
        "--history",
        path_text(&history),
        "--faults",
        path_text(&faults),
        "--output",
        path_text(&output),
    ];
    let run = replikv_report(&arguments);
    assert_eq!(run.status.code(), Some(2));
    let stderr = text(&run.stderr);
    assert!(stderr.contains("faults.jsonl: faults line 3:"), "{stderr}");
    assert!(!output.exists());

    fs::write(&faults, FAULTS).unwrap();
    fs::write(&history, format!("{HISTORY}not json\n")).unwrap();
    let run = replikv_report(&arguments);
    assert_eq!(run.status.code(), Some(2));
    let stderr = text(&run.stderr);
    assert!(stderr.contains("history line 5"), "{stderr}");
    assert!(!output.exists());
}
