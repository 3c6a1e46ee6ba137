//! `node-agent`: parses flags, sets up logging, binds the listener and runs
//! (or runs the simulation, or cleans up with `--cleanup`).

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

/// mimalloc: less CPU per allocation than glibc's malloc under many
/// threads, and memory returned to the system instead of fragmenting.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = bosun_node_agent::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    if let Some(bosun_node_agent::config::Command::Simulate(simulate)) = cli.command {
        return bosun_node_agent::simulate::run(cli.agent, simulate, shutdown_signal())
            .await
            .map_err(anyhow::Error::msg);
    }
    if cli.cleanup {
        bosun_node_agent::agent::cleanup(cli.agent).await?;
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(cli.agent.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cli.agent.listen))?;
    bosun_node_agent::run(cli.agent, listener, shutdown_signal()).await?;
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
