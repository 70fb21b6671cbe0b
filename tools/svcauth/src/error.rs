//! The tool's one error type, and the one place exit codes are decided.

use keystore_ssm::SsmStoreError;

/// Exit codes of `svcauth`. Documented in `--help` ([`EXIT_CODES_HELP`]) and
/// `docs/keys.md`; decided only in [`Error::exit_code`] and [`crate::exit_code`].
pub mod exit {
    /// Done.
    pub const OK: u8 = 0;
    /// `keys check` refused the key (`access explain`: no proof allows the call;
    /// `access check`: an expectation does not hold), or there was nothing to do.
    pub const NOT_ACCEPTED: u8 = 1;
    /// Wrong arguments or input; nothing was written.
    pub const USAGE: u8 = 2;
    /// AWS access: credentials, IAM/KMS permission, region, endpoint or network.
    pub const AWS: u8 = 3;
    /// A service, key id, parameter or file does not exist.
    pub const NOT_FOUND: u8 = 4;
    /// The store is invalid or inconsistent, or concurrent writes kept conflicting.
    pub const STORE: u8 = 5;
    /// A new key could not be handed over.
    pub const DELIVERY: u8 = 6;
}

/// The exit-code table shown at the end of every command's `--help`.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  done
  1  not accepted (keys check; access explain, access check), or nothing to do
     (already revoked, already imported, nothing to prune)
  2  usage: wrong arguments or input; nothing was written
  3  AWS access: credentials, IAM or KMS permission, region, endpoint or network
  4  not found: service, key id, parameter or file (also: wrong --env, --path or region)
  5  store: invalid or conflicting store content, or concurrent writes retried too often
  6  delivery failed: the new key was not handed over (the message says whether its
     record was revoked again and what to run if not)";

/// Everything that stops a command. Messages say what to do next and never hold a key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Aws(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Store(String),
    #[error("{0}")]
    Delivery(String),
    #[error(transparent)]
    Ssm(#[from] SsmStoreError),
    /// An error with a note on what was already done and how to finish.
    #[error("{source}\n{note}")]
    Context { source: Box<Error>, note: String },
}

impl Error {
    /// Adds what was already done and how to finish; keeps the exit code.
    pub fn with_note(self, note: impl Into<String>) -> Self {
        Self::Context {
            source: Box::new(self),
            note: note.into(),
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage(_) => exit::USAGE,
            Self::Aws(_) => exit::AWS,
            Self::NotFound(_) => exit::NOT_FOUND,
            Self::Store(_) => exit::STORE,
            Self::Delivery(_) => exit::DELIVERY,
            Self::Context { source, .. } => source.exit_code(),
            Self::Ssm(e) => match e {
                SsmStoreError::BadPath(_) => exit::USAGE,
                SsmStoreError::AccessDenied { .. }
                | SsmStoreError::Timeout(_)
                | SsmStoreError::Sdk { .. } => exit::AWS,
                SsmStoreError::NotFound(_) => exit::NOT_FOUND,
                _ => exit::STORE,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_in_the_help_table() {
        for code in [
            exit::OK,
            exit::NOT_ACCEPTED,
            exit::USAGE,
            exit::AWS,
            exit::NOT_FOUND,
            exit::STORE,
            exit::DELIVERY,
        ] {
            assert!(EXIT_CODES_HELP.contains(&format!("\n  {code}  ")), "{code}");
        }
    }

    #[test]
    fn notes_keep_the_exit_code() {
        let e = Error::NotFound("x".into()).with_note("then do y");
        assert_eq!(e.exit_code(), exit::NOT_FOUND);
        assert_eq!(e.to_string(), "x\nthen do y");
        assert_eq!(
            Error::Ssm(SsmStoreError::TooManyConflicts("p".into())).exit_code(),
            exit::STORE
        );
        assert_eq!(
            Error::Ssm(SsmStoreError::Timeout("op")).exit_code(),
            exit::AWS
        );
    }
}
