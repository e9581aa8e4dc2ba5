//! The command encoding: golden bytes for each kind (the format is on disk: a change
//! must be deliberate), round trips of arbitrary commands, rejection of every
//! truncation, of trailing or unknown bytes and of the headerless format 1, always as
//! `Error::Corruption`, and the unstamped format 2, still decoded with stamp 0.

use crate::single_leader::command::{COMMAND_OVERHEAD_MAX_BYTES, kind_name};
use crate::single_leader::message::Command;
use crate::single_leader::{RaftConfig, STORE_WRITE_ALLOWANCE_BYTES};
use proptest::prelude::*;
use replikv_core::error::Error;
use replikv_core::limits::{KEY_SIZE_MAX_BYTES, VALUE_SIZE_MAX_BYTES};
use replikv_core::{
    ClientId, ExpireCondition, Expiry, Key, LogIndex, NodeId, RequestId, Value, Version,
};
use replikv_storage::log::PAYLOAD_SIZE_MAX_BYTES;
use replikv_storage::store::StoreWrite;

fn key(text: &str) -> Key {
    Key::new(text.as_bytes()).expect("key")
}

fn value(text: &str) -> Value {
    Value::new(text.as_bytes()).expect("value")
}

/// A write proposed by node 3 for request c5#0x0102.
fn write(write: StoreWrite) -> Command {
    Command::Write {
        origin: NodeId(3),
        request_id: RequestId {
            client: ClientId(5),
            sequence: 0x0102,
        },
        write,
        stamp_unix_ms: 0x0a_0b0c,
    }
}

/// The golden header of a configuration entry: origin 3, client 5, sequence 0x0102,
/// little-endian.
const CONFIG_HEADER: [u8; 24] = [
    3, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0, 0, 0, 0,
];

/// The golden stamp of [`write`], little-endian.
const STAMP: [u8; 8] = [0x0c, 0x0b, 0x0a, 0, 0, 0, 0, 0];

/// Format byte, tag, the golden header of [`write`] (stamp included), then `fields`.
fn with_header(tag: u8, fields: &[u8]) -> Vec<u8> {
    let mut bytes = vec![3, tag];
    bytes.extend_from_slice(&CONFIG_HEADER);
    bytes.extend_from_slice(&STAMP);
    bytes.extend_from_slice(fields);
    bytes
}

/// Format byte, tag, the golden header of a configuration entry, then `fields`.
fn with_config_header(tag: u8, fields: &[u8]) -> Vec<u8> {
    let mut bytes = vec![3, tag];
    bytes.extend_from_slice(&CONFIG_HEADER);
    bytes.extend_from_slice(fields);
    bytes
}

/// Every command kind and its exact bytes.
fn golden() -> Vec<(Command, Vec<u8>)> {
    vec![
        (Command::Noop, vec![3, 0]),
        (
            write(StoreWrite::Put {
                key: key("k"),
                value: value("vw"),
            }),
            with_header(1, &[1, 0, 0, 0, b'k', 2, 0, 0, 0, b'v', b'w']),
        ),
        (
            write(StoreWrite::Delete { key: key("k") }),
            with_header(2, &[1, 0, 0, 0, b'k']),
        ),
        (
            write(StoreWrite::CompareAndSetValue {
                key: key("k"),
                expected: None,
                new: value("n"),
            }),
            with_header(3, &[1, 0, 0, 0, b'k', 0, 1, 0, 0, 0, b'n']),
        ),
        (
            write(StoreWrite::CompareAndSetValue {
                key: key("k"),
                expected: Some(value("e")),
                new: value(""),
            }),
            with_header(3, &[1, 0, 0, 0, b'k', 1, 1, 0, 0, 0, b'e', 0, 0, 0, 0]),
        ),
        (
            write(StoreWrite::CompareAndSetVersion {
                key: key("k"),
                expected: Version(0x0102),
                new: value("n"),
            }),
            with_header(
                4,
                &[1, 0, 0, 0, b'k', 2, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, b'n'],
            ),
        ),
    ]
    .into_iter()
    .chain(golden_leases())
    .chain([golden_membership()])
    .chain(golden_expiry())
    .collect()
}

/// A configuration entry: voters 1 and 2, learner 4.
fn golden_membership() -> (Command, Vec<u8>) {
    let membership =
        replikv_storage::store::Membership::new(vec![NodeId(2), NodeId(1)], vec![NodeId(4)])
            .expect("valid");
    let command = Command::Membership {
        origin: NodeId(3),
        request_id: RequestId {
            client: ClientId(5),
            sequence: 0x0102,
        },
        membership,
    };
    let fields = [
        &[2, 0, 0, 0][..],
        &[1, 0, 0, 0, 0, 0, 0, 0],
        &[2, 0, 0, 0, 0, 0, 0, 0],
        &[1, 0, 0, 0],
        &[4, 0, 0, 0, 0, 0, 0, 0],
    ]
    .concat();
    (command, with_config_header(11, &fields))
}

/// The fenced and lease commands and their exact bytes.
fn golden_leases() -> Vec<(Command, Vec<u8>)> {
    const K: [u8; 5] = [1, 0, 0, 0, b'k'];
    const L: [u8; 5] = [1, 0, 0, 0, b'l'];
    let number = |n: u8| [n, 0, 0, 0, 0, 0, 0, 0];
    let fields = |parts: &[&[u8]]| parts.concat();
    vec![
        (
            write(StoreWrite::PutFenced {
                key: key("k"),
                value: value("v"),
                lease: key("l"),
                token: 3,
            }),
            with_header(5, &fields(&[&K, &[1, 0, 0, 0, b'v'], &L, &number(3)])),
        ),
        (
            write(StoreWrite::DeleteFenced {
                key: key("k"),
                lease: key("l"),
                token: 3,
            }),
            with_header(6, &fields(&[&K, &L, &number(3)])),
        ),
        (
            write(StoreWrite::AcquireLease {
                name: key("l"),
                holder: ClientId(9),
                ttl_ms: 7,
            }),
            with_header(7, &fields(&[&L, &number(9), &number(7)])),
        ),
        (
            write(StoreWrite::RenewLease {
                name: key("l"),
                holder: ClientId(9),
                token: 2,
            }),
            with_header(8, &fields(&[&L, &number(9), &number(2)])),
        ),
        (
            write(StoreWrite::ReleaseLease {
                name: key("l"),
                holder: ClientId(9),
                token: 2,
            }),
            with_header(9, &fields(&[&L, &number(9), &number(2)])),
        ),
        (
            write(StoreWrite::ExpireLease {
                name: key("l"),
                token: 2,
                renewed_at: LogIndex(4),
            }),
            with_header(10, &fields(&[&L, &number(2), &number(4)])),
        ),
    ]
}

#[test]
fn each_kind_encodes_to_its_golden_bytes_and_back() {
    let names = [
        "noop",
        "put",
        "delete",
        "cas",
        "cas",
        "casv",
        "put-fenced",
        "delete-fenced",
        "acquire",
        "renew",
        "release",
        "expire",
        "config",
        "put-expiring",
        "put-expiring",
        "set-expiry",
        "set-expiry",
        "delete-expired",
    ];
    assert_eq!(golden().len(), names.len());
    for ((command, bytes), name) in golden().into_iter().zip(names) {
        assert_eq!(command.encode(), bytes, "{command:?}");
        assert_eq!(Command::decode(&bytes).expect("decodes"), command);
        assert_eq!(kind_name(&bytes), name);
    }
}

/// The expiry commands and their exact bytes.
fn golden_expiry() -> Vec<(Command, Vec<u8>)> {
    const K: [u8; 5] = [1, 0, 0, 0, b'k'];
    const V: [u8; 5] = [1, 0, 0, 0, b'v'];
    let number = |n: u8| [n, 0, 0, 0, 0, 0, 0, 0];
    let put = |expected_version, expiry| {
        write(StoreWrite::PutWithExpiry {
            key: key("k"),
            value: value("v"),
            expected_version,
            expiry,
        })
    };
    let expire = |expiry, condition| {
        write(StoreWrite::Expire {
            key: key("k"),
            expiry,
            condition,
        })
    };
    vec![
        (
            put(None, Expiry::AfterMs(7)),
            with_header(12, &[&K[..], &V, &[0, 2], &number(7)].concat()),
        ),
        (
            put(Some(Version(4)), Expiry::Keep),
            with_header(12, &[&K[..], &V, &[1], &number(4), &[1]].concat()),
        ),
        (
            expire(Expiry::AtUnixMs(9), ExpireCondition::IfLater),
            with_header(13, &[&K[..], &[3], &number(9), &[3]].concat()),
        ),
        (
            expire(Expiry::Clear, ExpireCondition::IfSome),
            with_header(13, &[&K[..], &[0, 2]].concat()),
        ),
        (
            write(StoreWrite::DeleteExpired {
                key: key("k"),
                expires_at_unix_ms: 5,
            }),
            with_header(14, &[&K[..], &number(5)].concat()),
        ),
    ]
}

/// Format 2 payloads, written before stamps, still decode, with stamp 0; the expiry
/// tags, which format 2 never had, are refused in it.
#[test]
fn unstamped_format_2_payloads_decode_with_stamp_zero() {
    let mut old_put = vec![2, 1];
    old_put.extend_from_slice(&CONFIG_HEADER);
    old_put.extend_from_slice(&[1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v']);
    let mut expected = write(StoreWrite::Put {
        key: key("k"),
        value: value("v"),
    });
    if let Command::Write { stamp_unix_ms, .. } = &mut expected {
        *stamp_unix_ms = 0;
    }
    assert_eq!(Command::decode(&old_put).expect("decodes"), expected);
    assert_eq!(kind_name(&old_put), "put");
    let mut old_config = golden_membership().1;
    old_config[0] = 2;
    assert!(matches!(
        Command::decode(&old_config),
        Ok(Command::Membership { .. })
    ));
    assert!(Command::is_membership(&old_config));
    let mut old_expire = vec![2, 14];
    old_expire.extend_from_slice(&CONFIG_HEADER);
    old_expire.extend_from_slice(&[1, 0, 0, 0, b'k', 5, 0, 0, 0, 0, 0, 0, 0]);
    assert_corrupt(&old_expire);
}

fn assert_corrupt(bytes: &[u8]) {
    match Command::decode(bytes) {
        Err(Error::Corruption(_)) => {}
        other => panic!("{bytes:?} decoded as {other:?}"),
    }
}

#[test]
fn every_truncation_and_every_trailing_byte_is_rejected() {
    for (_, bytes) in golden() {
        for length in 0..bytes.len() {
            assert_corrupt(&bytes[..length]);
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_corrupt(&longer);
    }
}

#[test]
fn malformed_headers_and_fields_are_rejected() {
    let cases: Vec<Vec<u8>> = vec![
        vec![4, 0],                                             // unknown format
        vec![1, 0],                                             // format 1: refused
        vec![1, 2, 1, 0, 0, 0, b'k'],                           // format 1 delete
        vec![3, 5],                                             // unknown tag
        vec![3, 255],                                           // unknown tag
        with_header(13, &[1, 0, 0, 0, b'k', 4]),                // expiry byte 4
        with_header(13, &[1, 0, 0, 0, b'k', 0, 5]),             // condition byte 5
        with_header(12, &[1, 0, 0, 0, b'k', 0, 0, 0, 0, 2, 0]), // option byte 2
        with_header(2, &[0, 0, 0, 0]),                          // empty key
        with_header(2, &[255, 255, 255, 255, b'k']),            // length beyond the bytes
        with_header(3, &[1, 0, 0, 0, b'k', 2, 0, 0, 0, 0]),     // option byte 2
        with_header(5, &[1, 0, 0, 0, b'k', 1, 0, 0, 0, b'v']),  // unknown tag, header
    ];
    for bytes in &cases {
        assert_corrupt(bytes);
    }
    // A key one byte over the limit, with all its bytes present.
    let mut bytes = with_header(2, &[]);
    let length = u32::try_from(KEY_SIZE_MAX_BYTES + 1).expect("small");
    bytes.extend_from_slice(&length.to_le_bytes());
    bytes.resize(bytes.len() + KEY_SIZE_MAX_BYTES + 1, b'k');
    assert_corrupt(&bytes);
    assert_eq!(kind_name(&[4, 0]), "unknown");
    assert_eq!(kind_name(&[1, 1]), "unknown");
    assert_eq!(kind_name(&[]), "unknown");
}

/// The largest command fits in a log record, and the encoding stays within its stated
/// overhead; the store never counts a write above its payload plus the allowance the
/// config's apply bound assumes.
#[test]
fn the_largest_command_fits_in_a_log_record() {
    let big = |byte: u8| Value::new(vec![byte; VALUE_SIZE_MAX_BYTES]).expect("max value");
    let store_write = StoreWrite::CompareAndSetValue {
        key: Key::new(vec![b'k'; KEY_SIZE_MAX_BYTES]).expect("max key"),
        expected: Some(big(b'a')),
        new: big(b'b'),
    };
    let command = write(store_write.clone());
    let bytes = command.encode();
    assert!(
        bytes.len() <= PAYLOAD_SIZE_MAX_BYTES,
        "{} bytes",
        bytes.len()
    );
    assert!(
        bytes.len() <= 2 * VALUE_SIZE_MAX_BYTES + KEY_SIZE_MAX_BYTES + COMMAND_OVERHEAD_MAX_BYTES
    );
    assert!(store_write.size_bytes() <= bytes.len() + STORE_WRITE_ALLOWANCE_BYTES);
    assert_eq!(Command::decode(&bytes).expect("decodes"), command);
    RaftConfig::default()
        .validate()
        .expect("the defaults are valid");
}

fn bytes_up_to(length_max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=length_max)
}

fn any_key() -> impl Strategy<Value = Key> {
    prop::collection::vec(any::<u8>(), 1..=24).prop_map(|bytes| Key::new(bytes).expect("key"))
}

fn any_value() -> impl Strategy<Value = Value> {
    bytes_up_to(24).prop_map(|bytes| Value::new(bytes).expect("value"))
}

fn any_expiry() -> impl Strategy<Value = Expiry> {
    prop_oneof![
        Just(Expiry::Clear),
        Just(Expiry::Keep),
        any::<u64>().prop_map(Expiry::AfterMs),
        any::<u64>().prop_map(Expiry::AtUnixMs),
    ]
}

fn any_condition() -> impl Strategy<Value = ExpireCondition> {
    prop_oneof![
        Just(ExpireCondition::Always),
        Just(ExpireCondition::IfNone),
        Just(ExpireCondition::IfSome),
        Just(ExpireCondition::IfLater),
        Just(ExpireCondition::IfEarlier),
    ]
}

fn any_expiry_write() -> impl Strategy<Value = StoreWrite> {
    prop_oneof![
        (
            any_key(),
            any_value(),
            prop::option::of(any::<u64>()),
            any_expiry()
        )
            .prop_map(|(key, value, expected, expiry)| StoreWrite::PutWithExpiry {
                key,
                value,
                expected_version: expected.map(Version),
                expiry,
            }),
        (any_key(), any_expiry(), any_condition()).prop_map(|(key, expiry, condition)| {
            StoreWrite::Expire {
                key,
                expiry,
                condition,
            }
        }),
        (any_key(), any::<u64>()).prop_map(|(key, expires_at_unix_ms)| {
            StoreWrite::DeleteExpired {
                key,
                expires_at_unix_ms,
            }
        }),
    ]
}

fn any_store_write() -> impl Strategy<Value = StoreWrite> {
    prop_oneof![
        any_expiry_write(),
        (any_key(), any_value()).prop_map(|(key, value)| StoreWrite::Put { key, value }),
        any_key().prop_map(|key| StoreWrite::Delete { key }),
        (any_key(), prop::option::of(any_value()), any_value())
            .prop_map(|(key, expected, new)| StoreWrite::CompareAndSetValue { key, expected, new }),
        (any_key(), any::<u64>(), any_value()).prop_map(|(key, expected, new)| {
            StoreWrite::CompareAndSetVersion {
                key,
                expected: Version(expected),
                new,
            }
        }),
        (any_key(), any_value(), any_key(), any::<u64>()).prop_map(|(key, value, lease, token)| {
            StoreWrite::PutFenced {
                key,
                value,
                lease,
                token,
            }
        }),
        (any_key(), any_key(), any::<u64>())
            .prop_map(|(key, lease, token)| StoreWrite::DeleteFenced { key, lease, token }),
        (any_key(), any::<u64>(), any::<u64>(), 0..4u8).prop_map(|(name, holder, number, kind)| {
            let holder = ClientId(holder);
            match kind {
                0 => StoreWrite::AcquireLease {
                    name,
                    holder,
                    ttl_ms: number,
                },
                1 => StoreWrite::RenewLease {
                    name,
                    holder,
                    token: number,
                },
                2 => StoreWrite::ReleaseLease {
                    name,
                    holder,
                    token: number,
                },
                _ => StoreWrite::ExpireLease {
                    name,
                    token: number,
                    renewed_at: LogIndex(holder.0),
                },
            }
        }),
    ]
}

fn any_command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Noop),
        (any::<u64>(), any::<u64>(), any::<u64>(), any_store_write()).prop_map(
            |(origin, client, sequence, write)| Command::Write {
                origin: NodeId(origin),
                request_id: RequestId {
                    client: ClientId(client),
                    sequence,
                },
                write,
                stamp_unix_ms: origin ^ client,
            }
        ),
    ]
}

proptest! {
    #[test]
    fn commands_round_trip(command in any_command()) {
        let bytes = command.encode();
        prop_assert_eq!(Command::decode(&bytes).expect("decodes"), command.clone());
        prop_assert!(bytes.len() <= COMMAND_OVERHEAD_MAX_BYTES + 3 * 24);
        for length in 0..bytes.len() {
            prop_assert!(matches!(Command::decode(&bytes[..length]), Err(Error::Corruption(_))));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in bytes_up_to(64)) {
        if let Ok(command) = Command::decode(&bytes).map_err(|_| ()).and_then(|command| {
            // Format 2 decodes too, and encodes back as format 3.
            if bytes.first() == Some(&3) { Ok(command) } else { Err(()) }
        }) {
            // Whatever decodes is canonical: it encodes back to the same bytes.
            prop_assert_eq!(command.encode(), bytes);
        }
    }
}

/// `Command::validate` accepts exactly what `Command::decode` accepts.
fn assert_validate_agrees(bytes: &[u8]) {
    let decoded = Command::decode(bytes);
    let validated = Command::validate(bytes);
    assert_eq!(
        validated.is_ok(),
        decoded.is_ok(),
        "{bytes:?}: validate {validated:?}, decode {decoded:?}"
    );
    if let Err(error) = validated {
        assert!(matches!(error, Error::Corruption(_)), "{error:?}");
    }
}

/// Every golden command, every truncation of it, and every one of its bytes replaced by
/// values that matter to the format (format numbers, tags, option and expiry bytes,
/// condition bytes, flipped bits): validation and decoding agree on each.
#[test]
fn validate_agrees_with_decode_on_golden_mutations() {
    let mut accepted = 0;
    for (_, bytes) in golden() {
        assert!(Command::validate(&bytes).is_ok());
        for length in 0..bytes.len() {
            assert_validate_agrees(&bytes[..length]);
        }
        for position in 0..bytes.len() {
            let original = bytes[position];
            let replacements = [0, 1, 2, 3, 4, 5, 6, 10, 11, 12, 13, 14, 15, 255];
            let flips = [original ^ 1, original ^ 0x80];
            for replacement in replacements.into_iter().chain(flips) {
                let mut mutated = bytes.clone();
                mutated[position] = replacement;
                assert_validate_agrees(&mutated);
                accepted += usize::from(Command::validate(&mutated).is_ok());
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_validate_agrees(&longer);
    }
    // The mutations reach both sides: many still decode, many do not.
    assert!(accepted > 100, "{accepted}");
}

#[test]
fn validate_checks_key_and_value_limits() {
    let delete_k = write(StoreWrite::Delete { key: key("k") }).encode();
    let mut empty_key = delete_k.clone();
    let key_at = delete_k.len() - 5;
    empty_key.truncate(key_at);
    empty_key.extend_from_slice(&0u32.to_le_bytes());
    assert_validate_agrees(&empty_key);
    assert!(Command::validate(&empty_key).is_err());
    let mut oversized = delete_k[..key_at].to_vec();
    let length = u32::try_from(KEY_SIZE_MAX_BYTES + 1).unwrap();
    oversized.extend_from_slice(&length.to_le_bytes());
    oversized.extend(std::iter::repeat_n(b'k', KEY_SIZE_MAX_BYTES + 1));
    assert!(Command::validate(&oversized).is_err());
    assert_validate_agrees(&oversized);
    let big_value = write(StoreWrite::Put {
        key: key("k"),
        value: Value::new(vec![7; VALUE_SIZE_MAX_BYTES]).unwrap(),
    })
    .encode();
    assert!(Command::validate(&big_value).is_ok());
}

proptest! {
    #[test]
    fn validate_agrees_with_decode(
        command in any_command(),
        position in any::<prop::sample::Index>(),
        replacement in any::<u8>(),
        noise in bytes_up_to(48),
    ) {
        let bytes = command.encode();
        prop_assert!(Command::validate(&bytes).is_ok());
        let mut mutated = bytes.clone();
        let at = position.index(mutated.len());
        mutated[at] = replacement;
        assert_validate_agrees(&mutated);
        assert_validate_agrees(&noise);
    }
}
