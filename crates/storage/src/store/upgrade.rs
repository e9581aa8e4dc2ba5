//! The store's format versions, and the in-place upgrade of older ones on opening.
//!
//! Every store records the version of its layout in its meta table. A store of an
//! unknown version is refused as corrupt rather than misread. The versions this code
//! still reads, and what changed at each step:
//!
//! - **2**: sessions as one row per client in `sessions`, plus a table `session_order`
//!   with their eviction order (now kept in memory only, [`super::session`]);
//! - **3**: the same without `session_order`;
//! - **4**: data entries may carry an expiry time (tag 2, [`super::encoding`]) and an
//!   expiry index `expiry` keeps them in time order;
//! - **5** (current): the sessions are kept as base chunks plus one delta per commit
//!   ([`super::session_log`]) instead of one row per client.
//!
//! Opening an older store upgrades it in one transaction, which opening then makes
//! durable with its first sync; a crash before that leaves the old format, upgraded
//! again at the next opening. Each step is small: drop `session_order` (2), create the
//! empty expiry index (2, 3: no older entry expires), and move the session rows into
//! base chunks and drop their table (2, 3, 4).

use super::encoding::storage_error;
use super::session::{SESSION_ORDER, SESSIONS, all_sessions};
use super::session_log;
use super::{EXPIRY, META, META_FORMAT, Store};
use redb::Durability;
use replikv_core::error::Result;

/// Version of the layout described in [`super::encoding`] and [`super::session_log`].
pub(super) const FORMAT_VERSION: u64 = 5;

/// Sessions as one row per client (see the module documentation).
pub(super) const FORMAT_VERSION_SESSION_ROWS: u64 = 4;

/// Format 4 without expiry times and the expiry index.
pub(super) const FORMAT_VERSION_NO_EXPIRY: u64 = 3;

/// Format 3 plus the table `session_order`.
pub(super) const FORMAT_VERSION_SESSION_ORDER: u64 = 2;

/// Every format a store may have on opening.
pub(super) const FORMATS_READ: [u64; 4] = [
    FORMAT_VERSION,
    FORMAT_VERSION_SESSION_ROWS,
    FORMAT_VERSION_NO_EXPIRY,
    FORMAT_VERSION_SESSION_ORDER,
];

impl Store {
    /// Upgrades a store of format `from` (one of [`FORMATS_READ`], older than the
    /// current) to the current format, in one commit.
    pub(super) fn upgrade(&mut self, from: u64) -> Result<()> {
        assert!(FORMATS_READ.contains(&from) && from < FORMAT_VERSION);
        let transaction = self.begin_write(Durability::None)?;
        if from == FORMAT_VERSION_SESSION_ORDER {
            transaction
                .delete_table(SESSION_ORDER)
                .map_err(storage_error)?;
        }
        if from <= FORMAT_VERSION_NO_EXPIRY {
            transaction.open_table(EXPIRY).map_err(storage_error)?;
        }
        let sessions = {
            let rows = transaction.open_table(SESSIONS).map_err(storage_error)?;
            all_sessions(&rows)?
        };
        transaction.delete_table(SESSIONS).map_err(storage_error)?;
        session_log::rewrite_in(&transaction, &sessions)?;
        transaction
            .open_table(META)
            .map_err(storage_error)?
            .insert(META_FORMAT, &FORMAT_VERSION.to_be_bytes()[..])
            .map_err(storage_error)?;
        self.commit(transaction)
    }
}
