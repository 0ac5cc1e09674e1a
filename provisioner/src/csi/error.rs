//! The driver's single error type and the one place that decides which gRPC
//! status code each failure becomes, following the CSI spec's error tables.

use tonic::{Code, Status};

#[derive(Debug, thiserror::Error)]
pub enum CsiError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    /// Another RPC holds the in-flight lock on the same volume, snapshot or
    /// name.
    #[error("an operation on {0} is already in progress")]
    InProgress(String),
    #[error("invalid starting token {0:?}")]
    BadToken(String),
    #[error("{0}")]
    OutOfRange(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("state store: {0}")]
    Store(String),
    /// The state store could not write because its file system is full.
    #[error("state store: {0}")]
    StoreFull(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {errno}")]
    Sys {
        context: String,
        errno: nix::errno::Errno,
    },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("configuration: {0}")]
    Config(String),
    #[error("server: {0}")]
    Server(String),
}

impl CsiError {
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> CsiError {
        let context = context.into();
        move |source| CsiError::Io { context, source }
    }
    pub fn sys(context: impl Into<String>) -> impl FnOnce(nix::errno::Errno) -> CsiError {
        let context = context.into();
        move |errno| CsiError::Sys { context, errno }
    }

    /// Whether the failure is a full disk (or an exhausted quota) under
    /// the data or state directory rather than a fault of the driver.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            CsiError::StoreFull(_) => true,
            CsiError::Io { source, .. } => io_out_of_space(source),
            CsiError::Sys { errno, .. } => {
                matches!(errno, nix::errno::Errno::ENOSPC | nix::errno::Errno::EDQUOT)
            }
            // A helper (`cp`, `mkfs`) only tells its errno in its message,
            // as strerror's text; these are glibc's and musl's words.
            CsiError::Command { detail, .. } => {
                detail.contains("No space left on device") || detail.contains("Disk quota exceeded")
            }
            _ => false,
        }
    }
}

/// ENOSPC or EDQUOT.
pub fn io_out_of_space(e: &std::io::Error) -> bool {
    e.raw_os_error()
        .is_some_and(|n| n == nix::libc::ENOSPC || n == nix::libc::EDQUOT)
}

impl From<CsiError> for Status {
    fn from(e: CsiError) -> Status {
        let code = match &e {
            // A full disk is the node's lack of room, not the driver's
            // fault: RESOURCE_EXHAUSTED sends a claim back to the scheduler
            // (another node may have room) and the CO retries later, where
            // INTERNAL would read as a bug. Nothing was made (every create
            // and expand undoes its work on failure), so a retry is safe.
            e if e.is_out_of_space() => Code::ResourceExhausted,
            CsiError::InvalidArgument(_) => Code::InvalidArgument,
            CsiError::NotFound(_) => Code::NotFound,
            CsiError::AlreadyExists(_) => Code::AlreadyExists,
            // The spec reserves ABORTED for "operation pending for volume" so
            // the CO retries with backoff instead of treating it as fatal.
            CsiError::InProgress(_) => Code::Aborted,
            // The spec's ListVolumes/ListSnapshots table maps an invalid
            // starting_token to ABORTED, not INVALID_ARGUMENT.
            CsiError::BadToken(_) => Code::Aborted,
            CsiError::OutOfRange(_) => Code::OutOfRange,
            CsiError::ResourceExhausted(_) => Code::ResourceExhausted,
            CsiError::FailedPrecondition(_) => Code::FailedPrecondition,
            CsiError::Unimplemented(_) => Code::Unimplemented,
            CsiError::Store(_)
            | CsiError::StoreFull(_)
            | CsiError::Io { .. }
            | CsiError::Sys { .. }
            | CsiError::Command { .. }
            | CsiError::Config(_)
            | CsiError::Server(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_resource_exhausted_wherever_it_is_met() {
        let enospc = || std::io::Error::from_raw_os_error(nix::libc::ENOSPC);
        let cases: Vec<(&str, CsiError, Code)> = vec![
            (
                "mkdir",
                CsiError::io("creating v")(enospc()),
                Code::ResourceExhausted,
            ),
            (
                "quota",
                CsiError::io("writing v")(std::io::Error::from_raw_os_error(nix::libc::EDQUOT)),
                Code::ResourceExhausted,
            ),
            (
                "ioctl",
                CsiError::sys("LOOP_SET_FD")(nix::errno::Errno::ENOSPC),
                Code::ResourceExhausted,
            ),
            (
                "cp",
                CsiError::Command {
                    command: "cp".into(),
                    detail: "cp: error writing 'x': No space left on device".into(),
                },
                Code::ResourceExhausted,
            ),
            (
                "store",
                CsiError::StoreFull("full".into()),
                Code::ResourceExhausted,
            ),
            (
                "other I/O",
                CsiError::io("reading v")(std::io::Error::from_raw_os_error(nix::libc::EIO)),
                Code::Internal,
            ),
            ("store fault", CsiError::Store("bad".into()), Code::Internal),
        ];
        for (name, e, want) in cases {
            assert_eq!(Status::from(e).code(), want, "{name}");
        }
    }
}
