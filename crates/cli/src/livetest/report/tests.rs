//! Tests of the whole picture: every rendered SVG is parsed by a real XML parser
//! (roxmltree), and the tests read the picture back from the parsed tree — points per
//! class, shading positions, tick order, text — rather than searching the text, so that
//! they check what a viewer would draw.

use super::frame::{NO_REPLY_BAND_HEIGHT, PLOT_LEFT, PLOT_RIGHT};
use super::*;
use proptest::prelude::*;
use replikv_check::{Function, Operation, OperationType};
use roxmltree::{Document, Node};

const SECOND: u64 = 1_000_000_000;
const MILLISECOND: u64 = 1_000_000;

fn operation(f: Function, kind: OperationType, invoke: u64, complete: Option<u64>) -> Operation {
    let value = match f {
        Function::Cas => serde_json::json!([1, 2]),
        _ => serde_json::json!(1),
    };
    Operation {
        process: 0,
        key: "k".into(),
        f,
        value,
        ok: (f == Function::Cas && kind == OperationType::Ok).then_some(true),
        kind,
        invoke,
        complete,
    }
}

fn window(kind: &str, target: &str, start_ns: u64, end_ns: Option<u64>) -> FaultWindow {
    FaultWindow {
        kind: kind.into(),
        target: target.into(),
        start_ns,
        end_ns,
    }
}

fn parse(svg: &str) -> Document<'_> {
    let document = Document::parse(svg).unwrap_or_else(|error| panic!("invalid SVG: {error}"));
    assert_eq!(document.root_element().tag_name().name(), "svg");
    assert!(
        !svg.contains("<script") && !svg.contains("href"),
        "not self-contained"
    );
    document
}

fn with_class<'a, 'input>(document: &'a Document<'input>, class: &str) -> Vec<Node<'a, 'input>> {
    document
        .descendants()
        .filter(|node| node.attribute("class") == Some(class))
        .collect()
}

fn float(node: &Node<'_, '_>, attribute: &str) -> f64 {
    node.attribute(attribute)
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {attribute} on {node:?}"))
}

/// The number of point elements per (function, outcome), read from the picture.
fn points_per_class(document: &Document<'_>) -> Vec<((String, String), usize)> {
    with_class(document, "points")
        .iter()
        .map(|group| {
            let class = (
                group.attribute("data-f").unwrap().to_string(),
                group.attribute("data-type").unwrap().to_string(),
            );
            (class, group.children().filter(Node::is_element).count())
        })
        .collect()
}

#[test]
fn an_empty_history_renders_a_valid_picture() {
    let svg = render_timeline_svg(&History::default(), &[], "empty");
    let document = parse(&svg);
    let classes = points_per_class(&document);
    assert_eq!(classes.len(), 12, "one group per function and outcome");
    assert!(classes.iter().all(|(_, count)| *count == 0));
    let texts: Vec<&str> = document
        .descendants()
        .filter_map(|node| node.text())
        .collect();
    assert!(texts.contains(&"no operations in the history"), "{texts:?}");
    assert!(
        with_class(&document, "rate").is_empty(),
        "no throughput line"
    );
}

#[test]
fn every_operation_is_one_point_of_its_class() {
    let table = [
        (Function::Read, OperationType::Ok, 7),
        (Function::Read, OperationType::Info, 2),
        (Function::Write, OperationType::Ok, 5),
        (Function::Write, OperationType::Fail, 3),
        (Function::Cas, OperationType::Ok, 4),
        (Function::Cas, OperationType::Info, 1),
        (Function::Delete, OperationType::Fail, 1),
    ];
    let mut operations = Vec::new();
    for (row, (f, kind, count)) in table.iter().enumerate() {
        for index in 0..*count {
            let invoke = (row as u64 * 10 + index) * 100 * MILLISECOND;
            // Info operations alternate between timed out (completed) and never replied.
            let complete = (*kind != OperationType::Info || index % 2 == 0)
                .then_some(invoke + (index + 1) * MILLISECOND);
            operations.push(operation(*f, *kind, invoke, complete));
        }
    }
    let history = History { operations };
    let svg = render_timeline_svg(&history, &[], "known operations");
    let document = parse(&svg);
    for ((f, kind), drawn) in points_per_class(&document) {
        let expected = table
            .iter()
            .find(|(tf, tk, _)| {
                points::function_name(*tf) == f && points::outcome_name(*tk) == kind
            })
            .map_or(0, |row| row.2 as usize);
        assert_eq!(drawn, expected, "{f} {kind}");
    }
    // Only circles (reads) have a centre to read back: the reads that never replied
    // must be exactly the points in the band along the top.
    let band_bottom = frame::Layout::new(0).latency_top + NO_REPLY_BAND_HEIGHT;
    let circles_in_band = document
        .descendants()
        .filter(|node| node.has_tag_name("circle"))
        .filter(|node| node.parent().and_then(|p| p.attribute("class")) == Some("points"))
        .filter(|node| float(node, "cy") < band_bottom)
        .count();
    let reads_unanswered = history
        .operations
        .iter()
        .filter(|o| o.f == Function::Read && o.complete.is_none())
        .count();
    assert!(reads_unanswered > 0);
    assert_eq!(circles_in_band, reads_unanswered);
}

#[test]
fn quantile_lines_lie_on_the_points_when_every_latency_is_equal() {
    let latency = 12 * MILLISECOND;
    let operations = (0..100u64)
        .map(|index| {
            let invoke = index * 30 * MILLISECOND;
            operation(
                Function::Read,
                OperationType::Ok,
                invoke,
                Some(invoke + latency),
            )
        })
        .collect();
    let svg = render_timeline_svg(&History { operations }, &[], "equal latencies");
    let document = parse(&svg);
    let heights: Vec<f64> = with_class(&document, "points")
        .iter()
        .flat_map(|group| group.children().filter(Node::is_element))
        .map(|point| float(&point, "cy"))
        .collect();
    assert_eq!(heights.len(), 100);
    assert!(heights.windows(2).all(|pair| pair[0] == pair[1]));
    let lines = with_class(&document, "quantile");
    let names: Vec<&str> = lines
        .iter()
        .filter_map(|line| line.attribute("data-quantile"))
        .collect();
    assert_eq!(names, ["p50", "p99"]);
    for line in lines {
        let path = line.attribute("d").unwrap();
        // "M x y L x y L x y ...": every second number is a height.
        let numbers: Vec<f64> = path
            .split(['M', 'L', ' '])
            .filter(|part| !part.is_empty())
            .map(|part| part.parse().unwrap())
            .collect();
        assert!(numbers.len() >= 4, "{path}");
        for height in numbers.iter().skip(1).step_by(2) {
            assert!((height - heights[0]).abs() <= 0.1, "{path}");
        }
    }
}

#[test]
fn fault_windows_are_shaded_at_their_times() {
    let history = History {
        operations: vec![
            operation(Function::Write, OperationType::Ok, 0, Some(MILLISECOND)),
            operation(
                Function::Read,
                OperationType::Ok,
                9 * SECOND,
                Some(10 * SECOND),
            ),
        ],
    };
    let faults = [
        window("kill-leader", "n2", 2 * SECOND, Some(5 * SECOND)),
        window("pause", "n3", 7 * SECOND, None),
    ];
    let svg = render_timeline_svg(&history, &faults, "faults");
    let document = parse(&svg);
    let width = PLOT_RIGHT - PLOT_LEFT;
    let expected = [
        ("kill-leader", PLOT_LEFT + 0.2 * width, 0.3 * width),
        ("pause", PLOT_LEFT + 0.7 * width, 0.3 * width),
    ];
    let shades = with_class(&document, "fault-shade");
    assert_eq!(shades.len(), 2 * faults.len(), "each window in both plots");
    for (index, shade) in shades.iter().enumerate() {
        let (kind, x, shade_width) = expected[index % faults.len()];
        assert_eq!(shade.attribute("data-kind"), Some(kind));
        assert!((float(shade, "x") - x).abs() <= 0.1, "{shade:?}");
        assert!(
            (float(shade, "width") - shade_width).abs() <= 0.2,
            "{shade:?}"
        );
    }
    let bars = with_class(&document, "fault-bar");
    assert_eq!(bars.len(), faults.len());
    let tooltip = bars[0].first_element_child().and_then(|title| title.text());
    assert_eq!(tooltip, Some("kill-leader n2: 2.000 s to 5.000 s"));
    let lanes: Vec<f64> = bars.iter().map(|bar| float(bar, "y")).collect();
    assert!(
        lanes[0] < lanes[1],
        "one lane per kind, in order of appearance"
    );
}

#[test]
fn axis_ticks_are_monotonic() {
    let operations = (0..200u64)
        .map(|index| {
            let latency = 10u64.pow((index % 7) as u32) * 1000;
            operation(
                Function::Read,
                OperationType::Ok,
                index * 50 * MILLISECOND,
                Some(index * 50 * MILLISECOND + latency),
            )
        })
        .collect();
    let svg = render_timeline_svg(&History { operations }, &[], "ticks");
    let document = parse(&svg);
    let latency_ticks: Vec<(f64, f64)> = with_class(&document, "latency-tick")
        .iter()
        .map(|tick| (float(tick, "y"), tick.text().unwrap().parse().unwrap()))
        .collect();
    assert!(latency_ticks.len() >= 7, "{latency_ticks:?}");
    for pair in latency_ticks.windows(2) {
        assert!(pair[0].0 > pair[1].0 && pair[0].1 < pair[1].1, "{pair:?}");
        assert!(
            (pair[1].1 / pair[0].1 - 10.0).abs() < 1e-9,
            "a decade apart: {pair:?}"
        );
    }
    let time_axis = with_class(&document, "time-axis");
    assert_eq!(time_axis.len(), 2, "under both plots");
    let time_ticks: Vec<(f64, f64)> = time_axis[0]
        .children()
        .filter(|node| node.has_tag_name("text"))
        .map(|tick| (float(&tick, "x"), tick.text().unwrap().parse().unwrap()))
        .collect();
    assert!(time_ticks.len() >= 5);
    for pair in time_ticks.windows(2) {
        assert!(pair[0].0 < pair[1].0 && pair[0].1 < pair[1].1, "{pair:?}");
    }
}

#[test]
fn text_from_outside_is_escaped() {
    let hostile = "a <b> & \"c\" 'd' </svg>\u{1}";
    let faults = [window(hostile, hostile, 0, Some(SECOND))];
    let svg = render_timeline_svg(&History::default(), &faults, hostile);
    let document = parse(&svg);
    let title = with_class(&document, "title")[0].text().unwrap();
    assert_eq!(title, "a <b> & \"c\" 'd' </svg>\u{FFFD}");
    let shade = &with_class(&document, "fault-shade")[0];
    assert_eq!(shade.attribute("data-kind"), Some(title));
}

#[test]
fn sampling_kicks_in_above_the_bound_and_is_deterministic() {
    let total = POINTS_MAX + 10_000;
    let mut operations: Vec<Operation> = (0..total as u64)
        .map(|index| {
            operation(
                Function::Read,
                OperationType::Ok,
                index * MILLISECOND,
                Some(index * MILLISECOND + 300_000),
            )
        })
        .collect();
    for index in 0..50 {
        operations.push(operation(
            Function::Write,
            OperationType::Info,
            index * SECOND,
            None,
        ));
    }
    let history = History { operations };
    let svg = render_timeline_svg(&history, &[], "many");
    assert!(svg.len() < 4 << 20, "{} bytes", svg.len());
    let document = parse(&svg);
    let classes = points_per_class(&document);
    let drawn: usize = classes.iter().map(|(_, count)| count).sum();
    assert!(
        drawn <= POINTS_MAX && drawn > POINTS_MAX * 9 / 10,
        "{drawn}"
    );
    let infos = classes
        .iter()
        .find(|(class, _)| class.0 == "write" && class.1 == "info");
    assert_eq!(
        infos.map(|(_, count)| *count),
        Some(50),
        "rare classes drawn whole"
    );
    let subtitle = with_class(&document, "subtitle")[0]
        .text()
        .unwrap()
        .to_string();
    assert!(subtitle.contains("sampled"), "{subtitle}");
    assert_eq!(
        render_timeline_svg(&history, &[], "many"),
        svg,
        "deterministic"
    );

    let unsampled = render_with_bound(&history, &[], "all", total + 50);
    let subtitle = with_class(&parse(&unsampled), "subtitle")[0]
        .text()
        .unwrap()
        .to_string();
    assert!(!subtitle.contains("sampled"), "{subtitle}");
}

#[test]
fn fault_windows_past_the_bound_are_left_out_and_said_so() {
    let faults: Vec<FaultWindow> = (0..FAULT_WINDOWS_DRAWN_MAX as u64 + 5)
        .map(|index| window("pause", "n1", index * SECOND, Some(index * SECOND + 10)))
        .collect();
    let svg = render_timeline_svg(&History::default(), &faults, "many faults");
    let document = parse(&svg);
    assert_eq!(
        with_class(&document, "fault-bar").len(),
        FAULT_WINDOWS_DRAWN_MAX
    );
    let subtitle = with_class(&document, "subtitle")[0]
        .text()
        .unwrap()
        .to_string();
    assert!(
        subtitle.contains("only the first 2,000 fault windows"),
        "{subtitle}"
    );
}

#[test]
fn counts_are_grouped_by_thousands() {
    for (count, text) in [
        (0, "0"),
        (999, "999"),
        (1000, "1,000"),
        (1_234_567, "1,234,567"),
    ] {
        assert_eq!(grouped(count), text);
    }
}

fn any_function() -> impl Strategy<Value = Function> {
    prop_oneof![
        Just(Function::Read),
        Just(Function::Write),
        Just(Function::Cas),
        Just(Function::Delete)
    ]
}

fn any_outcome() -> impl Strategy<Value = OperationType> {
    prop_oneof![
        Just(OperationType::Ok),
        Just(OperationType::Fail),
        Just(OperationType::Info)
    ]
}

/// Any time, with the edges of the clock's range likely.
fn any_time() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(u64::MAX), 0u64..100 * SECOND, any::<u64>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever a caller builds in memory — unvalidated histories that complete before
    /// they start, times at the ends of the clock, hostile text — the picture is drawn,
    /// parses, and has one point per operation.
    #[test]
    fn any_history_and_faults_draw_a_valid_picture(
        operations in proptest::collection::vec(
            (any_function(), any_outcome(), any_time(), proptest::option::of(any_time())),
            0..60,
        ),
        faults in proptest::collection::vec(
            (".{0,40}", ".{0,40}", any_time(), proptest::option::of(any_time())),
            0..12,
        ),
        title in ".{0,200}",
    ) {
        let history = History {
            operations: operations
                .iter()
                .map(|(f, kind, invoke, complete)| operation(*f, *kind, *invoke, *complete))
                .collect(),
        };
        let faults: Vec<FaultWindow> = faults
            .iter()
            .map(|(kind, target, start_ns, end_ns)| window(kind, target, *start_ns, *end_ns))
            .collect();
        let svg = render_timeline_svg(&history, &faults, &title);
        let document = parse(&svg);
        let drawn: usize = points_per_class(&document).iter().map(|(_, count)| count).sum();
        prop_assert_eq!(drawn, history.operations.len());
        prop_assert_eq!(with_class(&document, "fault-bar").len(), faults.len());
    }
}
