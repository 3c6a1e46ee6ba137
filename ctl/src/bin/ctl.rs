//! `ctl`: runs one command line and exits non-zero with a message on stderr
//! when it fails.

use std::process::ExitCode;

/// The exit code when the reader of stdout went away: the shell's code
/// for a process ended by SIGPIPE (128 + 13), which is how kubectl ends
/// (Go's runtime dies of SIGPIPE on a write to a closed stdout). Rust
/// ignores SIGPIPE, so the write fails with EPIPE instead and ctl exits
/// quietly with the same code.
const BROKEN_PIPE: u8 = 128 + 13;

#[tokio::main]
async fn main() -> ExitCode {
    let (mut stdin, mut stdout, mut stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let mut io = bosun_ctl::Io {
        stdin: &mut stdin,
        stdout: &mut stdout,
        stderr: &mut stderr,
    };
    match bosun_ctl::execute(std::env::args_os().skip(1), &mut io).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e @ bosun_ctl::CtlError::Exit(_)) => ExitCode::from(e.exit_code()),
        Err(e) if e.is_broken_pipe() => ExitCode::from(BROKEN_PIPE),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}
