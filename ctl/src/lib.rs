//! `ctl`: Bosun's command line, in kubectl's habits.
//!
//! [`execute`] runs one command line against the masters and writes to the
//! given streams; the `ctl` binary is a thin wrapper, and tests drive
//! `execute` directly. Modules:
//! - [`cli`]: flags and subcommands.
//! - [`manifest`]: reading `-f` files, directories and stdin.
//! - [`commands`]: one module per subcommand (start here: `commands/mod.rs`
//!   dispatches them); the workload commands (`scale`, `set image`,
//!   `rollout`) share `commands/workload.rs`.
//! - [`output`]: kubectl-style tables, ages and names.
//! - [`pod_template`], [`tabwriter`]: kubectl's text for pod templates and
//!   its tab alignment, for `describe` and `rollout history`.
//! - [`duration`]: Go-style durations for flags such as `--timeout 5m`.
//! - [`suggest`]: kubectl's "unknown command ... Did you mean this?".
//! - [`unserved`]: warnings for objects stored but not acted on yet.

use std::io::{Read, Write};

use clap::{CommandFactory, FromArgMatches};

pub mod cli;
pub mod commands;
pub mod duration;
pub mod jsonpath;
pub mod manifest;
pub mod output;
pub mod pod_template;
pub mod suggest;
pub mod tabwriter;
pub mod unserved;

pub use bosun_proto::client::Client;
pub use cli::Cli;

/// The streams a command reads and writes.
pub struct Io<'a> {
    pub stdin: &'a mut dyn Read,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// Why a command failed. The text is what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Usage(String),
    #[error("error: cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("error: {0}")]
    Manifest(#[from] bosun_proto::codec::DecodeError),
    #[error("error: {origin}: no objects found (is the file empty?)")]
    NoObjects { origin: String },
    #[error("error: cannot reach any master ({}); start one with `master`, or point ctl at one with --server HOST:PORT or BOSUN_SERVER", tried.join("; "))]
    Unreachable { tried: Vec<String> },
    #[error("Error from server ({}): {message}", reason(*code))]
    Api { code: tonic::Code, message: String },
    #[error("error: {0}")]
    Invalid(String),
    #[error("error: {failed} of {total} objects failed (see above)")]
    SomeFailed { failed: usize, total: usize },
    /// `ctl drain` found pods it may not delete: one line per reason,
    /// with the pods.
    #[error("{}", problems.iter().map(|p| format!("error: cannot delete {p}")).collect::<Vec<_>>().join("\n"))]
    DrainRefused { problems: Vec<String> },
    /// `ctl apply` of an object whose last-applied record would pass the
    /// annotation limit.
    #[error("error: {kind} {name:?} is too big for apply: metadata.annotations[{annotation}] would be {bytes} bytes, over the {limit}-byte limit; use 'ctl create -f' or 'ctl replace -f' instead", annotation = commands::LAST_APPLIED, limit = commands::LAST_APPLIED_LIMIT)]
    TooBigForApply { kind: String, name: String, bytes: usize },
    /// `ctl diff` failed: the error, with kubectl's exit code for it (2,
    /// as 1 means "there are differences").
    #[error("{0}")]
    DiffFailed(Box<CtlError>),
    #[error("error: cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// A remote command ended with this exit code (not an error message:
    /// the code is passed through).
    #[error("command terminated with exit code {0}")]
    Exit(i32),
}

impl From<bosun_proto::client::ClientError> for CtlError {
    fn from(error: bosun_proto::client::ClientError) -> Self {
        match error {
            bosun_proto::client::ClientError::Unreachable { tried } => CtlError::Unreachable { tried },
            bosun_proto::client::ClientError::Status(status) => status.into(),
        }
    }
}

impl From<tonic::Status> for CtlError {
    fn from(status: tonic::Status) -> Self {
        CtlError::Api {
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}

impl CtlError {
    /// Whether the error is about the object (so other objects may still
    /// succeed) rather than about reaching the cluster.
    pub fn is_per_object(&self) -> bool {
        matches!(self, CtlError::Api { code, .. } if *code != tonic::Code::Unavailable)
            || matches!(self, CtlError::TooBigForApply { .. })
    }

    /// The exit code for this error: 2 for `ctl diff`'s (kubectl's), the
    /// remote command's for [`CtlError::Exit`], else 1.
    pub fn exit_code(&self) -> u8 {
        match self {
            CtlError::DiffFailed(_) => 2,
            CtlError::Exit(code) => u8::try_from(*code).unwrap_or(1),
            _ => 1,
        }
    }

    /// Whether the output's reader went away (`ctl get pods | head -1`):
    /// not worth a message, as kubectl prints none.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CtlError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// The gRPC code, for API errors.
    pub fn code(&self) -> Option<tonic::Code> {
        match self {
            CtlError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// kubectl's words for API error codes.
fn reason(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::Aborted => "Conflict",
        Code::InvalidArgument => "Invalid",
        Code::FailedPrecondition => "Forbidden",
        Code::OutOfRange => "Gone",
        Code::Unavailable => "ServiceUnavailable",
        Code::DeadlineExceeded => "Timeout",
        _ => "InternalError",
    }
}

/// Runs one ctl command line (`args` without the program name).
///
/// # Errors
/// [`CtlError`], whose text is meant for the user.
pub async fn execute<I, T>(args: I, io: &mut Io<'_>) -> Result<(), CtlError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    let parsed = Cli::command()
        .try_get_matches_from(std::iter::once("ctl".into()).chain(args.iter().cloned()))
        .and_then(|matches| Ok((Cli::from_arg_matches(&matches)?, matches)));
    let cli = match parsed {
        Ok((mut cli, matches)) => {
            cli.server_source = match matches.value_source("server") {
                Some(clap::parser::ValueSource::CommandLine) => cli::ServerSource::Flag,
                Some(clap::parser::ValueSource::EnvVariable) => cli::ServerSource::Env,
                _ => cli::ServerSource::Default,
            };
            cli
        }
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            write!(io.stdout, "{e}")?;
            return Ok(());
        }
        Err(e) => {
            let typed = (e.kind() == clap::error::ErrorKind::InvalidSubcommand)
                .then(|| e.get(clap::error::ContextKind::InvalidSubcommand))
                .flatten()
                .map(|typed| typed.to_string());
            let kubectls = typed.and_then(|typed| suggest::unknown_command(&Cli::command(), &args, &typed));
            return Err(CtlError::Usage(
                kubectls.unwrap_or_else(|| e.render().to_string().trim_end().to_string()),
            ));
        }
    };
    commands::run(cli, io).await
}
