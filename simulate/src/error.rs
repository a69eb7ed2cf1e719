//! Why a simulation could not run, or did not deliver everything. The messages are what
//! `ynni simulate` prints, each followed by its cause.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// Arguments that cannot make a sensible run; the message names them.
    #[error("{0}")]
    Args(String),
    #[error("reading {}", .path.display())]
    ReadAccounts {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{}: expected the JSON of `ynni user list --with-keys` ([{{\"username\":…,\"apikey_write\":…}}])",
        .path.display()
    )]
    AccountsFormat {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// An HTTP request of the named step failed.
    #[error("{step}")]
    Http {
        step: &'static str,
        #[source]
        source: reqwest::Error,
    },
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    #[error("subscribing to a feed")]
    Subscribe(#[source] Box<rumqttc::ClientError>),
    #[error("device task")]
    Task(#[source] tokio::task::JoinError),
    /// The server did not do what a setup or counting request asked; the message says what
    /// it answered.
    #[error("{0}")]
    Server(String),
    #[error("counting stored points")]
    Counting(#[source] Box<SimulateError>),
    #[error("the broker refused the connection or the login")]
    Refused,
    #[error("nothing was sent")]
    NothingSent,
    #[error("{0} errors (see the summary)")]
    Errors(u64),
    #[error("{missing} of {expected} values sent were not stored")]
    NotStored { missing: u64, expected: u64 },
    #[error("writing the acknowledgement log {}", .path.display())]
    AckLog {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl SimulateError {
    pub(crate) fn args(message: impl Into<String>) -> Self {
        SimulateError::Args(message.into())
    }
}
