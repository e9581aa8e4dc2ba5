//! Preallocated segment files: the zeros the log keeps ahead of its records, on both
//! disks, and power failures in the middle of each step that writes or removes them.
//!
//! The log extends its last segment's file with zeros so that a sync does not change the
//! file's size (see "Preallocation" in the `log` module documentation). These tests pin
//! down what the files look like after each operation (the length the bookkeeping
//! records, zeros past the records, no zeros in a segment that is not the last), that a
//! reopen keeps the zeros and continues right after the last record, and, with the
//! simulated disk failing before each disk operation in turn, that an extending sync, the
//! cut of a rolled-over segment and a suffix truncation inside a preallocated file each
//! leave a log recovery accepts and that holds every synced entry.

use super::crash_tests::{
    assert_synced_and_a_prefix, check_appendable_with, crash_everywhere_in_truncation,
    crash_everywhere_with, expected_entries, open_error, synced_log,
};
use super::tests::{all_entries, append_entries, each_disk, entry, last_segment, tiny_segments};
use super::*;

const STEP: u64 = SEGMENT_PREALLOCATION_STEP_BYTES;

/// Segments of 4 KiB, less than a preallocation step: a segment's first sync extends its
/// file to the full segment size.
fn small_segments() -> LogOptions {
    LogOptions {
        segment_size_max_bytes: 4096,
        ..LogOptions::default()
    }
}

fn records_size_bytes(entries: &[Entry]) -> u64 {
    entries
        .iter()
        .map(|entry| record::record_size_bytes(entry.payload.len()) as u64)
        .sum()
}

fn assert_zeros(file: &crate::disk::File, from: u64, to: u64) {
    let mut bytes = vec![0xff; usize::try_from(to - from).unwrap()];
    file.read_exact_at(from, &mut bytes).unwrap();
    assert!(
        bytes.iter().all(|&byte| byte == 0),
        "non-zero in {from}..{to}"
    );
}

/// The first extension of a file in default-sized segments: the smallest step.
#[test]
fn a_short_log_is_extended_by_the_first_step() {
    each_disk(|disk| {
        let mut log = Log::open(disk.clone(), LogOptions::default()).unwrap();
        append_entries(&mut log, 1, 5);
        log.sync().unwrap();
        let (_, file) = last_segment(disk);
        assert_eq!(file.len().unwrap(), SEGMENT_PREALLOCATION_FIRST_STEP_BYTES);
        log.assert_segment_files_exact();
    });
}

#[test]
fn a_synced_segment_is_extended_with_zeros_and_reopens_where_its_records_end() {
    each_disk(|disk| {
        let mut log = Log::open(disk.clone(), small_segments()).unwrap();
        let first = append_entries(&mut log, 1, 5);
        log.sync().unwrap();
        let records_end = records_size_bytes(&first);
        let (_, file) = last_segment(disk);
        assert_eq!(file.len().unwrap(), 4096);
        assert_zeros(&file, records_end, 4096);
        log.assert_segment_files_exact();
        drop(log);

        let mut log = Log::open(disk.clone(), small_segments()).unwrap();
        assert_eq!(all_entries(&log), first);
        assert_eq!(file.len().unwrap(), 4096, "recovery cut the zeros");
        log.assert_segment_files_exact();
        let second = append_entries(&mut log, 2, 3);
        log.sync().unwrap();
        assert_eq!(file.len().unwrap(), 4096, "the sync changed the size");
        let mut bytes = vec![0; records_size_bytes(&second[..1]) as usize];
        file.read_exact_at(records_end, &mut bytes).unwrap();
        let record = record::decode(&bytes).unwrap();
        assert_eq!(record.position, second[0].position, "not appended in place");
        drop(log);

        let log = Log::open(disk.clone(), small_segments()).unwrap();
        assert_eq!(all_entries(&log), [first, second].concat());
        log.assert_segment_files_exact();
    });
}

/// Records of 300 KiB in segments of two and a half steps: the file grows to the power of
/// two above its records up to one step, then a whole step at a time; the last step stops
/// at the segment size, the record that crosses it is written past it, and the next
/// segment starts over.
#[test]
fn the_file_grows_by_steps_up_to_the_segment_size() {
    let options = LogOptions {
        segment_size_max_bytes: 5 * STEP / 2,
        ..LogOptions::default()
    };
    let record_size = 300 * 1024;
    // After each sync: (segment files, length of the last one).
    let expected = [
        (1, STEP / 2),
        (1, STEP),
        (1, STEP),
        (1, 2 * STEP),
        (1, 2 * STEP),
        (1, 2 * STEP),
        (1, 5 * STEP / 2),
        (1, 5 * STEP / 2),
        (1, 9 * record_size),
        (2, STEP / 2),
    ];
    each_disk(|disk| {
        let mut log = Log::open(disk.clone(), options.clone()).unwrap();
        for (index, &(files, length)) in (1u64..).zip(&expected) {
            let payload = vec![index as u8; record_size as usize - record::FRAMING_SIZE_BYTES];
            log.append(&[Entry::new(1, index, payload)]).unwrap();
            log.sync().unwrap();
            let (_, file) = last_segment(disk);
            let names = disk.list(LOG_DIRECTORY).unwrap();
            let segments = names.iter().filter(|name| name.ends_with(".seg")).count();
            assert_eq!((segments, file.len().unwrap()), (files, length), "{index}");
            log.assert_segment_files_exact();
        }
        let first_file = log.segments[0].file.as_ref().unwrap();
        assert_eq!(first_file.len().unwrap(), 9 * record_size);
    });
}

/// A segment preallocated under larger segments (the options changed between runs) is
/// cut to its records when the next segment begins: with pending records of its own in
/// that sync (2 entries, then 6 more) and without (8 entries, then 2 more).
#[test]
fn a_rolled_over_segment_is_cut_to_its_records() {
    for (synced, batch) in [(2, 6), (8, 2)] {
        each_disk(|disk| {
            let mut log = Log::open(disk.clone(), small_segments()).unwrap();
            synced_log(synced)(&mut log);
            drop(log);
            let mut log = Log::open(disk.clone(), tiny_segments()).unwrap();
            append_entries(&mut log, 1, batch);
            log.sync().unwrap();
            assert!(log.segments.len() >= 2);
            for segment in &log.segments[..log.segments.len() - 1] {
                let file = segment.file.as_ref().unwrap();
                assert_eq!(file.len().unwrap(), segment.durable_length_bytes);
            }
            log.assert_segment_files_exact();
            drop(log);
            let log = Log::open(disk.clone(), tiny_segments()).unwrap();
            assert_eq!(all_entries(&log), expected_entries(synced + batch, 1));
        });
    }
}

/// A zero tail longer than a recovery scan window is read through and kept; a stray byte
/// at its very end is corruption, reported at the end of the records.
#[test]
fn a_multi_mib_zero_tail_is_kept_and_a_stray_byte_after_it_is_corruption() {
    each_disk(|disk| {
        let mut log = Log::open(disk.clone(), small_segments()).unwrap();
        synced_log(5)(&mut log);
        drop(log);
        let records_end = records_size_bytes(&expected_entries(5, 1));
        let (name, file) = last_segment(disk);
        let length = 4096 + 5 * STEP;
        file.write_all_at(4096, &vec![0; 5 * STEP as usize])
            .unwrap();
        file.sync_data().unwrap();

        let mut log = Log::open(disk.clone(), small_segments()).unwrap();
        assert_eq!(all_entries(&log), expected_entries(5, 1));
        assert_eq!(file.len().unwrap(), length);
        log.assert_segment_files_exact();
        // Enough entries to fill the segment: the next one begins, this one is cut.
        append_entries(&mut log, 1, 80);
        log.sync().unwrap();
        log.assert_segment_files_exact();
        assert!(file.len().unwrap() < length);
        check_appendable_with(&small_segments(), disk, &mut log);
        drop(log);

        let mut log = Log::open(disk.clone(), small_segments()).unwrap();
        log.truncate_suffix(LogIndex(5)).unwrap();
        drop(log);
        file.write_all_at(length - 1, &[1]).unwrap();
        let message = open_error(disk);
        assert!(
            message.contains(&format!("{name} offset {records_end}")),
            "{message}"
        );
    });
}

/// Suffix truncation in a preallocated segment, among the synced records and among the
/// pending ones: new entries of a later term follow the cut, and no stale entry of the
/// old tail comes back after a reopen.
#[test]
fn suffix_truncation_inside_a_preallocated_segment_leaves_no_stale_entry() {
    for (synced, pending, after) in [(12, 0, 4), (12, 3, 13), (12, 3, 12), (12, 3, 7)] {
        each_disk(|disk| {
            let mut log = Log::open(disk.clone(), small_segments()).unwrap();
            synced_log(synced)(&mut log);
            append_entries(&mut log, 1, pending);
            log.truncate_suffix(LogIndex(after)).unwrap();
            log.assert_segment_files_exact();
            let added = append_entries(&mut log, 2, 2);
            log.sync().unwrap();
            drop(log);
            let log = Log::open(disk.clone(), small_segments()).unwrap();
            let kept: Vec<Entry> = (1..=after).map(|index| entry(1, index)).collect();
            assert_eq!(all_entries(&log), [kept, added].concat(), "after {after}");
            log.assert_segment_files_exact();
        });
    }
}

/// Power fails inside a sync whose records outgrow the file: zeros are written past the
/// batch, then the batch, then both synced. Every outcome keeps the synced entries and a
/// prefix of the batch.
#[test]
fn interrupted_sync_that_extends_the_file() {
    let options = LogOptions {
        segment_size_max_bytes: 2 * STEP,
        ..LogOptions::default()
    };
    let large_entry = |index: u64| {
        let payload_size = 300 * 1024 - record::FRAMING_SIZE_BYTES;
        Entry::new(1, index, vec![index as u8 | 0x80; payload_size])
    };
    let synced: Vec<Entry> = (1..=3).map(large_entry).collect();
    let batch: Vec<Entry> = (4..=5).map(large_entry).collect();
    let appended = [synced.clone(), batch.clone()].concat();
    let outcomes = crash_everywhere_with(
        &options,
        |log| {
            log.append(&synced).unwrap();
            log.sync().unwrap();
            assert_eq!(log.segments[0].file_length_bytes, STEP);
            log.append(&batch).unwrap();
        },
        |log| log.sync().map(|_| ()),
        |log, completed| {
            assert_synced_and_a_prefix(log, &synced, &appended, completed);
            if completed {
                assert_eq!(log.segments[0].file_length_bytes, 2 * STEP);
            }
        },
    );
    // The zeros, the records, the sync.
    assert_eq!(outcomes.interrupted, 3, "{outcomes:?}");
    // Lost and kept whole at least (a tear inside the records is left to chance).
    assert!(outcomes.distinct_logs.len() >= 2, "{outcomes:?}");
    outcomes.assert_writes_kept_lost_and_torn();
}

/// Power fails anywhere in a sync that cuts the zeros off a segment and creates the next
/// one, with and without pending records in the old segment: recovery accepts every
/// intermediate state and keeps every synced entry.
#[test]
fn interrupted_rollover_cut() {
    for (synced, batch) in [(2, 6), (8, 2)] {
        let durable = expected_entries(synced, 1);
        let appended = expected_entries(synced + batch, 1);
        let outcomes = crash_everywhere_with(
            &tiny_segments(),
            |log| {
                let disk = log.disk.clone();
                let mut wide = Log::open(disk.clone(), small_segments()).unwrap();
                synced_log(synced)(&mut wide);
                drop(wide);
                *log = Log::open(disk, tiny_segments()).unwrap();
                assert!(log.segments[0].file_length_bytes > log.segments[0].length_bytes());
                append_entries(log, 1, batch);
            },
            |log| log.sync().map(|_| ()),
            |log, completed| {
                assert_synced_and_a_prefix(log, &durable, &appended, completed);
            },
        );
        assert!(outcomes.distinct_logs.len() >= 2, "{outcomes:?}");
        // The cut and its sync, two creations or one and their directory syncs, writes
        // (the last segment's zeros, then its records) and syncs: 12 operations with
        // pending records in the old segment, 7 without.
        let operations = if synced == 2 { 12 } else { 7 };
        assert_eq!(outcomes.interrupted, operations, "{outcomes:?}");
        outcomes.assert_writes_kept_lost_and_torn();
    }
}

/// Power fails anywhere in a suffix truncation inside a preallocated file: a prefix of the
/// old log that still holds the kept entries, and exactly them once it returned.
#[test]
fn interrupted_suffix_truncation_inside_a_preallocated_segment() {
    for after in [4, 0] {
        let outcomes = crash_everywhere_in_truncation(&small_segments(), 12, after);
        assert!(outcomes.distinct_logs.len() >= 2, "{outcomes:?}");
    }
}
