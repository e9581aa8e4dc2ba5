//! DDIA's shopping cart (ch. 5, Figure 5-13, "Capturing the happens-before relationship"),
//! replayed step by step on [`Siblings`].
//!
//! Two clients add items to one cart on a single replica, each unaware of the other's
//! latest write. The book (and seed 000's retelling) gives, after every step, the version
//! the server assigns and the siblings it keeps; on one replica a version vector has one
//! entry, the book's version number, and a dot's counter is the version of the value it
//! created. Each client behaves as in the book: it sends back the version it last
//! received, with the union of the values it last received plus its new item. The table
//! below is the book's figure; the test checks the clients' values against it (so the
//! narrative is consistent) and the server's state against it after every step.

use replikv_core::NodeId;
use replikv_core::clock::{Siblings, VersionVector};
use std::collections::BTreeSet;

const SERVER: NodeId = NodeId(1);

type Cart = BTreeSet<&'static str>;

/// One request of Figure 5-13 and the server's state after it.
struct Step {
    client: usize,
    /// The version the client sends (`None`: it has read nothing yet).
    sends_version: Option<u64>,
    /// The item the client adds.
    adds: &'static str,
    /// The cart the client sends, as the book prints it.
    sends_cart: &'static [&'static str],
    /// The version the server assigns to the write.
    assigned_version: u64,
    /// The siblings after the write: (version, cart).
    siblings: &'static [(u64, &'static [&'static str])],
}

const FIGURE_5_13: &[Step] = &[
    Step {
        client: 1,
        sends_version: None,
        adds: "milk",
        sends_cart: &["milk"],
        assigned_version: 1,
        siblings: &[(1, &["milk"])],
    },
    Step {
        client: 2,
        sends_version: None,
        adds: "eggs",
        sends_cart: &["eggs"],
        assigned_version: 2,
        siblings: &[(1, &["milk"]), (2, &["eggs"])],
    },
    Step {
        client: 1,
        sends_version: Some(1),
        adds: "flour",
        sends_cart: &["milk", "flour"],
        assigned_version: 3,
        siblings: &[(2, &["eggs"]), (3, &["milk", "flour"])],
    },
    Step {
        client: 2,
        sends_version: Some(2),
        adds: "ham",
        sends_cart: &["eggs", "milk", "ham"],
        assigned_version: 4,
        siblings: &[(3, &["milk", "flour"]), (4, &["eggs", "milk", "ham"])],
    },
    Step {
        client: 1,
        sends_version: Some(3),
        adds: "bacon",
        sends_cart: &["milk", "flour", "eggs", "bacon"],
        assigned_version: 5,
        siblings: &[
            (4, &["eggs", "milk", "ham"]),
            (5, &["milk", "flour", "eggs", "bacon"]),
        ],
    },
];

/// What a client remembers from its last response.
#[derive(Default)]
struct Client {
    context: VersionVector,
    received: Vec<Cart>,
}

fn cart(items: &[&'static str]) -> Cart {
    items.iter().copied().collect()
}

/// The book's "version k" on a single replica.
fn version(counter: Option<u64>) -> VersionVector {
    let mut vector = VersionVector::new();
    for _ in 0..counter.unwrap_or(0) {
        vector.increment(SERVER);
    }
    vector
}

#[test]
fn figure_5_13_two_clients_fill_one_cart() {
    let mut server: Siblings<Cart> = Siblings::new();
    let mut clients = [Client::default(), Client::default(), Client::default()];
    for (number, step) in FIGURE_5_13.iter().enumerate() {
        let client = &mut clients[step.client];
        // The client merges what it last received and adds its item.
        let mut sends: Cart = client.received.iter().flatten().copied().collect();
        sends.insert(step.adds);
        assert_eq!(sends, cart(step.sends_cart), "step {number}: client's cart");
        assert_eq!(
            client.context,
            version(step.sends_version),
            "step {number}: client's version"
        );

        let dot = server.write(&client.context, sends, SERVER).unwrap();
        assert_eq!(dot.node, SERVER);
        assert_eq!(dot.counter, step.assigned_version, "step {number}: version");

        let expected: Vec<(u64, Cart)> = step
            .siblings
            .iter()
            .map(|&(version, items)| (version, cart(items)))
            .collect();
        let actual: Vec<(u64, Cart)> = server
            .siblings()
            .iter()
            .map(|sibling| (sibling.dot.counter, sibling.value.clone().unwrap()))
            .collect();
        assert_eq!(actual, expected, "step {number}: siblings");

        // The response: every sibling and the latest version.
        let (values, context) = server.read();
        assert_eq!(context, version(Some(step.assigned_version)));
        client.received = values.into_iter().cloned().collect();
        client.context = context;
    }
    // The book's final state: two siblings, [milk, flour, eggs, bacon] and
    // [eggs, milk, ham], for the client to merge on its next read.
    let (values, _) = server.read();
    let finals: BTreeSet<Cart> = values.into_iter().cloned().collect();
    let book: BTreeSet<Cart> = [
        cart(&["milk", "flour", "eggs", "bacon"]),
        cart(&["eggs", "milk", "ham"]),
    ]
    .into();
    assert_eq!(finals, book);
}

#[test]
fn the_cart_converges_when_replayed_across_two_replicas() {
    // The same five writes, alternately coordinated by two replicas that exchange state
    // after every step, end in the same two siblings: dots generalise the book's
    // single-replica version numbers.
    let replicas = [NodeId(1), NodeId(2)];
    let mut states: [Siblings<Cart>; 2] = [Siblings::new(), Siblings::new()];
    let mut clients = [Client::default(), Client::default(), Client::default()];
    for (number, step) in FIGURE_5_13.iter().enumerate() {
        let client = &mut clients[step.client];
        let mut sends: Cart = client.received.iter().flatten().copied().collect();
        sends.insert(step.adds);
        let at = number % 2;
        states[at]
            .write(&client.context, sends, replicas[at])
            .unwrap();
        let (values, context) = states[at].read();
        client.received = values.into_iter().cloned().collect();
        client.context = context;
        let copy = states[at].clone();
        states[1 - at].merge(&copy).unwrap();
        assert_eq!(states[0], states[1], "step {number}: replicas diverged");
    }
    let (values, _) = states[0].read();
    let finals: BTreeSet<Cart> = values.into_iter().cloned().collect();
    let expected: BTreeSet<Cart> = FIGURE_5_13[4]
        .siblings
        .iter()
        .map(|&(_, items)| cart(items))
        .collect();
    assert_eq!(finals, expected);
}
