//! The pipelined sync: [`Log::start_sync`] writes, the caller syncs, [`Log::finish_sync`]
//! takes the outcome back. See "Pipelined sync" in the module documentation for why the
//! write discipline is unchanged by it.

use super::{CompletedSync, Log, LogPosition, PendingSync, Result, WrittenSegment};
use replikv_core::{Error, LogIndex};

/// A sync handed out by [`Log::start_sync`] and not yet taken back.
#[derive(Debug)]
pub(super) struct InFlightSync {
    pub sequence: u64,
    /// The segment written (the last one when the sync started; appends while it is
    /// outstanding may have begun another after it).
    pub segment_first_index: LogIndex,
    pub written: WrittenSegment,
}

impl Log {
    /// Group commit without the wait: writes everything appended since the last sync,
    /// exactly as [`Log::sync`] does, but leaves the last segment's `sync_data` to the
    /// caller, who runs the returned [`PendingSync`] (on any thread) and hands its outcome
    /// to [`Log::finish_sync`]. Until then the durable position does not move, appends go
    /// on in memory, and no other sync may start (asserted). `None` when nothing is
    /// pending.
    pub fn start_sync(&mut self) -> Result<Option<PendingSync>> {
        self.check_usable()?;
        assert!(
            self.in_flight.is_none(),
            "a log sync is already outstanding"
        );
        if self.durable_index == self.last.index {
            return Ok(None);
        }
        let result = self.write_for_sync();
        let pending = self.record_failure(result)?;
        self.check_invariants();
        Ok(Some(pending))
    }

    /// Syncs every segment but the last one that needs it (rule 2), then writes the last
    /// one and hands out its sync.
    fn write_for_sync(&mut self) -> Result<PendingSync> {
        let last = self.segments.len().checked_sub(1).expect("entries pending");
        for position in 0..last {
            let segment = &self.segments[position];
            let trim = segment.file_length_bytes > segment.length_bytes();
            if !segment.pending.is_empty() || trim {
                self.flush_segment(position, false)?;
            }
        }
        assert!(
            !self.segments[last].pending.is_empty(),
            "the last entry is not durable, so the last segment has pending records"
        );
        let written = self.write_segment(last, true)?;
        let segment = &self.segments[last];
        let file = segment.file.as_ref().expect("written").try_clone()?;
        self.sync_sequence += 1;
        self.in_flight = Some(InFlightSync {
            sequence: self.sync_sequence,
            segment_first_index: segment.first_index,
            written,
        });
        Ok(PendingSync::new(self.sync_sequence, move || {
            file.sync_data()
        }))
    }

    /// Takes back the outcome of a sync from [`Log::start_sync`] and returns the durable
    /// position. On success the entries it covers are durable; a sync that an operation
    /// already completed on its own (see "Pipelined sync") changes nothing. A failed
    /// sync, even a stale one, makes the log unusable (rule 4).
    pub fn finish_sync(&mut self, completed: CompletedSync) -> Result<LogPosition> {
        self.check_usable()?;
        assert!(
            (1..=self.sync_sequence).contains(&completed.sequence),
            "sync {} was never started (last started: {})",
            completed.sequence,
            self.sync_sequence
        );
        if let Err(error) = completed.result {
            let error = Error::Io(format!("log sync {}: {error}", completed.sequence));
            return self.record_failure(Err(error));
        }
        let current = self
            .in_flight
            .as_ref()
            .is_some_and(|in_flight| in_flight.sequence == completed.sequence);
        if current {
            let in_flight = self.in_flight.take().expect("checked above");
            let position = self.position_of_segment(in_flight.segment_first_index);
            self.complete_segment(position, in_flight.written);
            self.check_invariants();
        }
        Ok(self.durable_position())
    }

    /// Whether a sync from [`Log::start_sync`] is outstanding.
    #[must_use]
    pub fn sync_outstanding(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Completes an outstanding sync here and now, with a `sync_data` of this thread's
    /// own; the caller's outcome, when it comes, is stale. Every operation that writes
    /// log files but [`Log::start_sync`] calls this first.
    pub(super) fn complete_in_flight(&mut self) -> Result<()> {
        let Some(in_flight) = self.in_flight.take() else {
            return Ok(());
        };
        let position = self.position_of_segment(in_flight.segment_first_index);
        let file = self.segments[position]
            .file
            .as_ref()
            .expect("a written segment has a file");
        let result = file.sync_data().map_err(Error::from);
        self.record_failure(result)?;
        self.complete_segment(position, in_flight.written);
        Ok(())
    }

    fn position_of_segment(&self, first_index: LogIndex) -> usize {
        self.segments
            .binary_search_by_key(&first_index, |segment| segment.first_index)
            .expect("the segment of an outstanding sync stays until it completes")
    }

    /// Cross-checks an outstanding sync against the bookkeeping.
    pub(super) fn check_in_flight_invariants(&self) {
        let Some(in_flight) = &self.in_flight else {
            return;
        };
        assert!(in_flight.sequence == self.sync_sequence);
        let position = self.position_of_segment(in_flight.segment_first_index);
        let segment = &self.segments[position];
        let written = &in_flight.written;
        assert!(segment.file.is_some());
        assert!(segment.pending.len() as u64 >= written.written_bytes);
        assert_eq!(
            segment.durable_length_bytes + written.written_bytes,
            written.data_end
        );
        let covered = written
            .covered_index
            .expect("a sync is handed out for records");
        assert!(self.durable_index < covered && covered <= self.last.index);
        assert!(
            self.segments[position + 1..]
                .iter()
                .all(|later| later.file.is_none()),
            "no file is created while a sync is outstanding"
        );
    }
}
