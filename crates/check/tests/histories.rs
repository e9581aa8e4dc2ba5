//! Data-driven tests: every history in tests/histories/ with its expected verdicts.
//!
//! Each `NAME.jsonl` is a history named for what it shows (`good_…`: every property
//! holds; `bad_…`: at least one does not, or the input cannot be judged). Its `NAME.expected` gives the model, one line
//! per property `check_all` reports for that model — `valid`, `unknown`, or `invalid`
//! followed by the line numbers of the witness operations — and `lost N`, the exact
//! number of lost acknowledged writes the durability report must count. The test fails
//! on any difference, including a property missing from the expectation, so adding a
//! checker means revisiting every history.

use replikv_check::{
    Budget, History, Model, NamedVerdict, Operation, Verdict, check_all, lost_register_writes,
    lost_set_writes,
};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq)]
enum Expected {
    Valid,
    Unknown,
    Invalid(Vec<usize>),
}

struct Expectation {
    model: Model,
    verdicts: BTreeMap<String, Expected>,
    lost: Option<usize>,
}

fn directory() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/histories")
}

fn parse_expectation(text: &str) -> Expectation {
    let mut model = None;
    let mut verdicts = BTreeMap::new();
    let mut lost = None;
    for line in text.lines().filter(|line| !line.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["model", "register"] => model = Some(Model::Register),
            ["model", "set"] => model = Some(Model::Set),
            ["lost", count] => lost = Some(count.parse().unwrap()),
            [property, "valid"] => {
                verdicts.insert((*property).to_string(), Expected::Valid);
            }
            [property, "unknown"] => {
                verdicts.insert((*property).to_string(), Expected::Unknown);
            }
            [property, "invalid", lines @ ..] => {
                let lines = lines.iter().map(|line| line.parse().unwrap()).collect();
                verdicts.insert((*property).to_string(), Expected::Invalid(lines));
            }
            _ => panic!("bad expectation line: {line}"),
        }
    }
    Expectation {
        model: model.expect("an expectation names its model"),
        verdicts,
        lost,
    }
}

/// The 1-based line of each witness operation in the history file.
fn witness_lines(lines: &[Operation], witness: &[Operation]) -> Vec<usize> {
    let mut numbers: Vec<usize> = witness
        .iter()
        .map(|operation| {
            1 + lines
                .iter()
                .position(|line| line == operation)
                .expect("witness operations come from the history")
        })
        .collect();
    numbers.sort_unstable();
    numbers
}

fn actual(lines: &[Operation], verdict: &Verdict) -> Expected {
    match verdict {
        Verdict::Valid => Expected::Valid,
        Verdict::Unknown { .. } => Expected::Unknown,
        Verdict::Invalid(violation) => {
            Expected::Invalid(witness_lines(lines, &violation.operations))
        }
    }
}

fn check_file(path: &Path) -> Vec<String> {
    let name = path.file_stem().unwrap().to_string_lossy().to_string();
    let text = fs::read_to_string(path).unwrap();
    assert!(
        !text.lines().any(|line| line.trim().is_empty()),
        "{name}: blank lines would shift line numbers"
    );
    let history = History::read_jsonl(text.as_bytes()).unwrap();
    let expectation =
        parse_expectation(&fs::read_to_string(path.with_extension("expected")).unwrap());
    let verdicts: Vec<NamedVerdict> =
        check_all(&history, expectation.model, &Budget::steps(1_000_000));
    let mut problems = Vec::new();
    let reported: Vec<&str> = verdicts.iter().map(|named| named.property).collect();
    let expected: Vec<&str> = expectation.verdicts.keys().map(String::as_str).collect();
    let mut reported_sorted = reported.clone();
    reported_sorted.sort_unstable();
    if reported_sorted != expected {
        problems.push(format!(
            "{name}: properties reported {reported:?}, expected {expected:?}"
        ));
    }
    for named in &verdicts {
        let got = actual(&history.operations, &named.verdict);
        match expectation.verdicts.get(named.property) {
            Some(want) if *want == got => {}
            want => problems.push(format!(
                "{name}: {} expected {want:?}, got {got:?}: {}",
                named.property, named.verdict
            )),
        }
    }
    let all_valid = verdicts.iter().all(|named| named.verdict.is_valid());
    if name.starts_with("good_") != all_valid
        || !(name.starts_with("good_") || name.starts_with("bad_"))
    {
        problems.push(format!(
            "{name}: the name must say good_ (all valid) or bad_ (not all valid)"
        ));
    }
    if let Some(lost) = expectation.lost {
        let report = match expectation.model {
            Model::Register => lost_register_writes(&history),
            Model::Set => lost_set_writes(&history),
        };
        let count = report.map(|report| report.lost_count());
        if count != Ok(lost) {
            problems.push(format!(
                "{name}: lost writes expected {lost}, got {count:?}"
            ));
        }
    }
    problems
}

#[test]
fn every_history_gets_exactly_its_expected_verdicts_and_witnesses() {
    let mut files: Vec<PathBuf> = fs::read_dir(directory())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "jsonl")
        })
        .collect();
    files.sort();
    assert!(files.len() >= 20, "histories are missing: {files:?}");
    let problems: Vec<String> = files.iter().flat_map(|path| check_file(path)).collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_expectation_has_its_history() {
    for entry in fs::read_dir(directory()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "expected")
        {
            assert!(
                path.with_extension("jsonl").exists(),
                "{path:?} has no history"
            );
        }
    }
}
