//! Both disks must behave alike in everything but crashes; the simulated one must lose
//! exactly what was not synced.

use super::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

fn each_disk(test: impl Fn(&Disk)) {
    let directory = tempfile::tempdir().unwrap();
    test(&Disk::os(directory.path()).unwrap());
    test(&Disk::simulated());
}

#[test]
fn read_write_length_and_names() {
    each_disk(|disk| {
        let file = disk.open("log/a.seg").unwrap();
        assert!(file.is_empty().unwrap());
        file.write_all_at(0, b"hello").unwrap();
        file.write_all_at(7, b"!").unwrap();
        assert_eq!(file.len().unwrap(), 8);
        let mut buffer = [0u8; 8];
        file.read_exact_at(0, &mut buffer).unwrap();
        assert_eq!(&buffer, b"hello\0\0!");
        assert!(file.read_exact_at(4, &mut [0u8; 5]).is_err());
        file.set_len(2).unwrap();
        assert_eq!(file.len().unwrap(), 2);
        file.sync_data().unwrap();

        disk.open("log/b.seg").unwrap();
        disk.open("top").unwrap();
        assert_eq!(disk.list("log").unwrap(), ["log/a.seg", "log/b.seg"]);
        assert_eq!(disk.list("").unwrap(), ["top"]);
        assert_eq!(disk.list("missing").unwrap(), Vec::<String>::new());
        disk.rename("log/b.seg", "log/c.seg").unwrap();
        disk.remove("log/a.seg").unwrap();
        disk.sync_directory("log").unwrap();
        assert_eq!(disk.list("log").unwrap(), ["log/c.seg"]);
        assert!(disk.exists("log/c.seg").unwrap());
        assert!(!disk.exists("log/a.seg").unwrap());
        assert!(disk.remove("log/a.seg").is_err());
    });
}

/// Writes that append, leave a hole, overwrite inside and overwrite past the end read
/// back alike on both disks, and the simulated one's synced image (what a crash keeps
/// once everything is synced) is the same bytes.
#[test]
fn overlapping_writes_read_back_alike() {
    let writes: [(u64, &[u8]); 6] = [
        (0, b"abcdef"),
        (6, b"gh"),
        (12, b"mn"),
        (2, b"XY"),
        (10, b"KLMNOP"),
        (15, b"-"),
    ];
    let expected = b"abXYefgh\0\0KLMNO-";
    each_disk(|disk| {
        let file = disk.open("f").unwrap();
        for (offset, data) in writes {
            file.write_all_at(offset, data).unwrap();
        }
        let mut buffer = [0u8; 16];
        file.read_exact_at(0, &mut buffer).unwrap();
        assert_eq!(&buffer, expected);
        file.sync_data().unwrap();
    });
    let disk = SimDisk::new();
    let file = disk.open("f").unwrap();
    for (offset, data) in writes {
        file.write_all_at(offset, data).unwrap();
    }
    file.sync_data().unwrap();
    disk.sync_directory("").unwrap();
    assert_eq!(
        disk.crash(&mut ChaCha8Rng::seed_from_u64(1)),
        CrashReport::default()
    );
    let file = disk.open("f").unwrap();
    let mut buffer = [0u8; 16];
    file.read_exact_at(0, &mut buffer).unwrap();
    assert_eq!(&buffer, expected);
}

#[test]
fn names_that_escape_the_root_are_rejected() {
    each_disk(|disk| {
        for name in ["", "/abs", "a/../b", "..", "a//b", "dir/"] {
            assert!(disk.open(name).is_err(), "{name:?} accepted");
        }
    });
}

#[test]
fn crash_keeps_synced_data_and_names() {
    let disk = SimDisk::new();
    let file = disk.open("f").unwrap();
    file.write_all_at(0, b"durable").unwrap();
    file.sync_data().unwrap();
    disk.sync_directory("").unwrap();
    let mut random = ChaCha8Rng::seed_from_u64(7);
    let report = disk.crash(&mut random);
    assert_eq!(report, CrashReport::default());
    let file = disk.open("f").unwrap();
    let mut buffer = [0u8; 7];
    file.read_exact_at(0, &mut buffer).unwrap();
    assert_eq!(&buffer, b"durable");
}

#[test]
fn crash_outcomes_cover_kept_lost_and_torn_writes() {
    let mut seen_lengths = std::collections::BTreeSet::new();
    for seed in 0..64 {
        let disk = SimDisk::new();
        let file = disk.open("f").unwrap();
        file.write_all_at(0, b"base").unwrap();
        file.sync_data().unwrap();
        disk.sync_directory("").unwrap();
        file.write_all_at(4, b"unsynced-tail").unwrap();
        disk.crash(&mut ChaCha8Rng::seed_from_u64(seed));
        let file = disk.open("f").unwrap();
        let length = file.len().unwrap();
        assert!((4..=17).contains(&length), "length {length}");
        let mut prefix = [0u8; 4];
        file.read_exact_at(0, &mut prefix).unwrap();
        assert_eq!(&prefix, b"base", "synced bytes must survive (seed {seed})");
        seen_lengths.insert(length);
    }
    assert!(seen_lengths.contains(&4), "a lost write never happened");
    assert!(seen_lengths.contains(&17), "a kept write never happened");
    assert!(seen_lengths.len() > 2, "a torn write never happened");
}

#[test]
fn unsynced_creation_may_vanish_and_old_handles_die() {
    let mut vanished = false;
    let mut survived = false;
    for seed in 0..32 {
        let disk = SimDisk::new();
        let file = disk.open("new").unwrap();
        file.write_all_at(0, b"x").unwrap();
        file.sync_data().unwrap();
        disk.crash(&mut ChaCha8Rng::seed_from_u64(seed));
        assert!(file.write_all_at(0, b"y").is_err(), "stale handle wrote");
        assert!(file.len().is_err(), "stale handle read");
        if disk.exists("new").unwrap() {
            survived = true;
        } else {
            vanished = true;
        }
    }
    assert!(vanished && survived);
}

#[test]
fn directory_sync_is_per_directory() {
    let disk = SimDisk::new();
    disk.open("a/one").unwrap();
    disk.open("b/two").unwrap();
    disk.sync_directory("a").unwrap();
    // Seed chosen so that the crash keeps none of the pending name operations.
    let mut kept_b = false;
    for seed in 0..16 {
        let copy = SimDisk::new();
        copy.open("a/one").unwrap();
        copy.open("b/two").unwrap();
        copy.sync_directory("a").unwrap();
        copy.crash(&mut ChaCha8Rng::seed_from_u64(seed));
        assert!(copy.exists("a/one").unwrap());
        kept_b |= copy.exists("b/two").unwrap();
    }
    assert!(kept_b);
    assert!(disk.exists("a/one").unwrap());
}

#[test]
fn corrupt_bit_flips_durable_data() {
    let disk = SimDisk::new();
    let file = disk.open("f").unwrap();
    file.write_all_at(0, &[0u8; 4]).unwrap();
    file.sync_data().unwrap();
    disk.corrupt_bit("f", 2, 3).unwrap();
    let mut buffer = [0u8; 4];
    file.read_exact_at(0, &mut buffer).unwrap();
    assert_eq!(buffer, [0, 0, 8, 0]);
}

#[test]
fn scheduled_crash_strikes_before_the_chosen_operation() {
    let disk = SimDisk::new();
    let file = disk.open("f").unwrap();
    file.write_all_at(0, b"synced").unwrap();
    file.sync_data().unwrap();
    disk.sync_directory("").unwrap();
    let before = disk.mutation_count();
    assert_eq!(before, 4, "open (create), write, sync, directory sync");
    disk.schedule_crash(1, 99);
    file.write_all_at(6, b"-one").unwrap();
    let error = file.sync_data().unwrap_err();
    assert_eq!(error.to_string(), "simulated power failure");
    assert_eq!(disk.mutation_count(), before + 2);
    assert_eq!(disk.crash_count(), 1);
    assert!(disk.last_crash().is_some());
    assert!(
        file.write_all_at(0, b"x").is_err(),
        "handles die with the crash"
    );
    assert!(!disk.cancel_scheduled_crash(), "a crash strikes once");
    let file = disk.open("f").unwrap();
    let mut synced = [0u8; 6];
    file.read_exact_at(0, &mut synced).unwrap();
    assert_eq!(&synced, b"synced");
}

#[test]
fn scheduled_crash_is_deterministic_and_cancellable() {
    let run = |seed| {
        let disk = SimDisk::new();
        let file = disk.open("f").unwrap();
        disk.schedule_crash(5, seed);
        let mut offset = 0;
        while file.write_all_at(offset, b"0123456789").is_ok() {
            offset += 10;
        }
        let file = disk.open("f").unwrap();
        (disk.last_crash(), file.len().unwrap())
    };
    assert_eq!(run(3), run(3));
    let disk = SimDisk::new();
    disk.schedule_crash(0, 1);
    assert!(disk.cancel_scheduled_crash());
    disk.open("f").unwrap().write_all_at(0, b"fine").unwrap();
    assert_eq!(disk.crash_count(), 0);
}
