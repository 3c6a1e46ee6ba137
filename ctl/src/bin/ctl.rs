//! `ctl`: runs one command line and exits non-zero with a message on stderr
//! when it fails.

use std::process::ExitCode;

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
        Err(bosun_ctl::CtlError::Exit(code)) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
