//! `ctl exec`: runs a command in a container, through the masters. The
//! command's exit code becomes ctl's. With `-it` on a terminal the session
//! is interactive: the local terminal is put in raw mode and resizes are
//! passed on.

use std::io::{IsTerminal, Read};

use bosun_proto::api::pods_client::PodsClient;
use bosun_proto::api::{exec_request, exec_response, ExecRequest, ExecStart, TerminalSize};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::container::target_container;
use super::{namespace_or_default, target_pod};
use crate::cli::ExecArgs;
use crate::{Client, CtlError, Io};

/// Messages to the master queued before ctl waits.
const INPUT: usize = 64;

fn message(input: exec_request::Input) -> ExecRequest {
    ExecRequest { input: Some(input) }
}

fn terminal_size() -> Option<TerminalSize> {
    crossterm::terminal::size().ok().map(|(width, height)| TerminalSize {
        width: u32::from(width),
        height: u32::from(height),
    })
}

/// Restores the terminal when the session ends, however it ends.
struct RawMode;

impl RawMode {
    fn enable() -> Option<RawMode> {
        crossterm::terminal::enable_raw_mode().ok().map(|()| RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// Where a session's stdin comes from.
pub(super) enum Stdin {
    /// None: the command's stdin is closed.
    None,
    /// The local terminal, as the user types.
    Terminal,
    /// These bytes, then the end.
    Bytes(Vec<u8>),
}

/// # Errors
/// [`CtlError::Exit`] with the command's exit code when it is not 0, or
/// why the command could not run.
pub async fn run(client: &Client, args: &ExecArgs, namespace: Option<&str>, io: &mut Io<'_>) -> Result<(), CtlError> {
    let interactive = args.stdin && std::io::stdin().is_terminal();
    let tty = args.tty && interactive;
    let namespace = namespace_or_default(namespace);
    let stdin = match (args.stdin, interactive) {
        (false, _) => Stdin::None,
        (true, true) => Stdin::Terminal,
        (true, false) => {
            // Piped input: pass it all on, then end it.
            let mut data = Vec::new();
            io.stdin.read_to_end(&mut data)?;
            Stdin::Bytes(data)
        }
    };
    let name = target_pod(client, &namespace, &args.pod, io).await?;
    let container = target_container(client, &namespace, &name, args.container.as_deref(), io).await?;
    let start = ExecStart {
        name,
        namespace,
        container,
        command: args.command.clone(),
        stdin: args.stdin,
        tty,
        size: if tty { terminal_size() } else { None },
    };
    session(client, start, stdin, io).await
}

/// Runs one exec session to its end: output to `io`, the command's exit
/// code as [`CtlError::Exit`] when not 0.
pub(super) async fn session(client: &Client, start: ExecStart, stdin: Stdin, io: &mut Io<'_>) -> Result<(), CtlError> {
    let tty = start.tty;
    let interactive = matches!(stdin, Stdin::Terminal);
    let (input, outbound) = mpsc::channel(INPUT);
    input
        .send(message(exec_request::Input::Start(start)))
        .await
        .map_err(|_| CtlError::Invalid("exec input closed".into()))?;
    if interactive {
        // A terminal: read it as the user types, on a thread of its own.
        let keys = input.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buffer) {
                if n == 0
                    || keys
                        .blocking_send(message(exec_request::Input::Stdin(buffer[..n].to_vec())))
                        .is_err()
                {
                    break;
                }
            }
            let _ = keys.blocking_send(message(exec_request::Input::CloseStdin(true)));
        });
    } else if let Stdin::Bytes(data) = stdin {
        for chunk in data.chunks(64 * 1024) {
            let _ = input.send(message(exec_request::Input::Stdin(chunk.to_vec()))).await;
        }
        let _ = input.send(message(exec_request::Input::CloseStdin(true))).await;
    }
    if !interactive {
        drop(input);
    }
    let mut responses = PodsClient::new(client.channel().await?)
        .exec(ReceiverStream::new(outbound))
        .await?
        .into_inner();
    let _raw = if tty { RawMode::enable() } else { None };
    let mut exit_code = 0;
    while let Some(response) = responses.message().await? {
        match response.output {
            Some(exec_response::Output::Stdout(bytes)) => {
                io.stdout.write_all(&bytes)?;
                io.stdout.flush()?;
            }
            Some(exec_response::Output::Stderr(bytes)) => {
                io.stderr.write_all(&bytes)?;
                io.stderr.flush()?;
            }
            Some(exec_response::Output::ExitCode(code)) => exit_code = code,
            None => {}
        }
    }
    if exit_code == 0 {
        Ok(())
    } else {
        Err(CtlError::Exit(exit_code))
    }
}
