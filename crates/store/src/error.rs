//! The store's error type. Messages read like Docker's because clients and scripts grep them.

use std::io;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No image matches the name, id or reference given (the string is the name as given).
    #[error("No such image: {0}")]
    ImageNotFound(String),
    /// Something named inside an image or archive is not there (containerd's `not found`:
    /// no manifest for this platform); the message is the whole text.
    #[error("{0}")]
    NotFound(String),
    /// The reference does not parse; the message is Docker's full text.
    #[error("{0}")]
    InvalidReference(String),
    /// The operation conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// The layer archive is malformed or hostile.
    #[error("invalid tar archive: {0}")]
    InvalidArchive(String),
    /// An argument (such as a rootfs key) is not acceptable.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// On-disk state that should be well formed is not.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// A filesystem or syscall error.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The metadata database failed.
    #[error("database: {0}")]
    Db(#[from] redb::Error),
}

// redb splits its errors by operation; they all fold into `redb::Error` so callers see one variant.
macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Self {
                Error::Db(redb::Error::from(e))
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

impl From<nix::Error> for Error {
    fn from(e: nix::Error) -> Self {
        Error::Io(io::Error::from(e))
    }
}

/// Adds the path (or other context) to an I/O error without losing its kind.
pub(crate) fn ctx(e: impl Into<io::Error>, what: impl std::fmt::Display) -> Error {
    let e: io::Error = e.into();
    Error::Io(io::Error::new(e.kind(), format!("{what}: {e}")))
}
