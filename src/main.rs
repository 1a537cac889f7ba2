//! `backhome`: the command line and the service entry point.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// Backhome for Microsoft 365.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the service that the DSM desktop app and the portal talk to.
    Serve {
        /// Address to listen on (loopback only).
        #[arg(long, default_value = "127.0.0.1:8418")]
        listen: SocketAddr,
    },
    /// Starts a simulated tenant, backs it up and serves the app on localhost.
    #[cfg(feature = "demo")]
    Demo {
        /// Address to listen on (loopback only).
        #[arg(long, default_value = "127.0.0.1:8418")]
        listen: SocketAddr,
    },
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { listen } => serve(listen).await,
        #[cfg(feature = "demo")]
        Command::Demo { listen } => {
            let sim = graph_sim::Simulator::start(graph_sim::SimOptions::new(graph_sim::Profile::Demo)).await?;
            tracing::info!(graph = %sim.ready().graph_endpoint, "simulated tenant started");
            let result = serve(listen).await;
            sim.stop().await;
            result
        }
    }
}

async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let app =
        backhome::api::Application::build(listen).with_context(|| format!("binding {listen}"))?;
    println!("http://127.0.0.1:{}/", app.port());
    app.run().await.context("service failed")
}
