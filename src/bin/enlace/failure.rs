//! How the binary's errors reach the person at the terminal.
//!
//! Commands return [`anyhow::Result`]. [`report`] prints a failure once, on
//! stderr, with its context chain on one line (`error: cannot read x: No
//! such file or directory`), and chooses the exit code from the error's
//! type, never from its words: [`EXIT_CONFIG`] for an [`InvalidConfig`],
//! 1 for anything else. (Exit code 2, a bad command line, is clap's.) A
//! write to a stdout whose reader has gone (`enlace audit export | head`)
//! is no failure: the command ends quietly with 0.
//!
//! The library keeps its typed errors; they enter here through
//! [`Spelled::spelled`].

use std::fmt::{Debug, Display};
use std::process::ExitCode;

/// Exit code for an invalid configuration (EX_USAGE).
pub const EXIT_CONFIG: u8 = 64;

/// The node's configuration is invalid: the command stops with
/// [`EXIT_CONFIG`] before anything binds. The message is the
/// configuration's own report of every problem.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct InvalidConfig(String);

impl InvalidConfig {
    /// Marks `problem`, as the configuration loader or the doctor
    /// reported it, as a configuration error.
    pub fn new(problem: impl Display) -> Self {
        Self(problem.to_string())
    }
}

/// A library error, or a library's message, as one anyhow error.
///
/// NOTE: the library's errors already write their cause into their own
/// message (`"store I/O failed: {0}"`). Handed to anyhow as they are, its
/// `{:#}` would print each cause a second time; as a message (still
/// downcastable to its type) they print exactly as they spell themselves.
pub trait Spelled<T> {
    /// The error, if any, as one anyhow error that prints as its message.
    fn spelled(self) -> anyhow::Result<T>;
}

impl<T, E> Spelled<T> for Result<T, E>
where
    E: Display + Debug + Send + Sync + 'static,
{
    fn spelled(self) -> anyhow::Result<T> {
        self.map_err(anyhow::Error::msg)
    }
}

/// Marks a failure that was already written to the log (a running node's
/// last words, in its log format): [`report`] does not print it again.
#[derive(Debug)]
pub struct Logged;

impl Display for Logged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("already logged")
    }
}

/// Logs `e` as `what` at ERROR, and marks it [`Logged`].
pub fn logged(e: anyhow::Error, what: &'static str) -> anyhow::Error {
    tracing::error!(error = %format!("{e:#}"), "{what}");
    e.context(Logged)
}

/// The exit code for a command's outcome; a failure is printed first,
/// unless it was [`Logged`].
pub fn report(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away (`| head`): that is how it says
        // "enough", not a failure; end quietly, as `main`'s panic hook does
        // for `println!`.
        Err(e) if reader_gone(&e) => ExitCode::SUCCESS,
        Err(e) => {
            if e.downcast_ref::<Logged>().is_none() {
                eprintln!("error: {e:#}");
            }
            exit_code(&e)
        }
    }
}

/// Whether `e` is a write to a pipe whose reader has closed it.
fn reader_gone(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// [`EXIT_CONFIG`] if the failure is an invalid configuration, else 1.
fn exit_code(e: &anyhow::Error) -> ExitCode {
    if e.chain().any(|cause| cause.is::<InvalidConfig>()) {
        ExitCode::from(EXIT_CONFIG)
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_exit_code_follows_the_type_not_the_words() {
        let config = anyhow::Error::new(InvalidConfig::new("node.toml: bad"));
        assert_eq!(exit_code(&config), ExitCode::from(EXIT_CONFIG));
        let wrapped = Err::<(), _>(config).context("while checking").unwrap_err();
        assert_eq!(exit_code(&wrapped), ExitCode::from(EXIT_CONFIG));
        let words = anyhow::anyhow!("invalid configuration");
        assert_eq!(exit_code(&words), ExitCode::FAILURE);
    }

    #[test]
    fn a_closed_pipe_is_not_a_failure() {
        let gone = Err::<(), _>(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("cannot write to stdout")
            .unwrap_err();
        assert!(reader_gone(&gone));
        assert_eq!(report(Err(gone)), ExitCode::SUCCESS);
        let other = Err::<(), _>(std::io::Error::other("disk full"))
            .context("cannot write to stdout")
            .unwrap_err();
        assert!(!reader_gone(&other));
    }

    #[test]
    fn a_spelled_error_prints_its_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("store I/O failed: {0}")]
        struct StoreError(#[from] std::io::Error);
        let io = std::io::Error::other("disk full");
        let e = Err::<(), _>(StoreError::from(io))
            .spelled()
            .context("cannot open the store of node gt")
            .unwrap_err();
        assert_eq!(
            format!("{e:#}"),
            "cannot open the store of node gt: store I/O failed: disk full"
        );
        assert!(e.downcast_ref::<StoreError>().is_some());
    }
}
