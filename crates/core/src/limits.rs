//! The bounds every layer enforces. Nothing in replikv is unbounded: a key, a value, a
//! batch, a queue each has a limit, checked where data enters (client or peer) and
//! asserted where it is stored. Servers may configure lower limits, never higher ones.

/// Largest key, in bytes.
pub const KEY_SIZE_MAX_BYTES: usize = 4 * 1024;

/// Largest value, in bytes.
pub const VALUE_SIZE_MAX_BYTES: usize = 1024 * 1024;

/// Room a log record keeps for a command's encoding and the record's framing, beyond the
/// keys and values it carries.
pub const LOG_RECORD_OVERHEAD_MAX_BYTES: usize = 64 * 1024;

/// Largest single record in the replication log, in bytes. The largest command is a
/// compare-and-set carrying two values of the maximum size and a key, so a record must
/// hold that plus its encoding and framing; a smaller limit would make a request that
/// passes every client-side check fail inside replication.
pub const LOG_RECORD_SIZE_MAX_BYTES: usize =
    2 * VALUE_SIZE_MAX_BYTES + KEY_SIZE_MAX_BYTES + LOG_RECORD_OVERHEAD_MAX_BYTES;

/// Largest number of entries carried in one replication message.
pub const REPLICATION_BATCH_ENTRIES_MAX: usize = 1024;

/// Largest number of outputs a node may buffer between two polls before it must stop
/// accepting new client requests.
pub const NODE_OUTPUT_QUEUE_MAX: usize = 64 * 1024;
