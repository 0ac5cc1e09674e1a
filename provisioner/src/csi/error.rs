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
}

impl From<CsiError> for Status {
    fn from(e: CsiError) -> Status {
        let code = match &e {
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
            | CsiError::Io { .. }
            | CsiError::Sys { .. }
            | CsiError::Command { .. }
            | CsiError::Config(_)
            | CsiError::Server(_) => Code::Internal,
        };
        Status::new(code, e.to_string())
    }
}
