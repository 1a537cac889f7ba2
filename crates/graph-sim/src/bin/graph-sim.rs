//! `graph-sim`: runs the Graph simulator until interrupted.

use clap::Parser;

/// Command line of the simulator.
#[derive(Parser)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (ready, server) = graph_sim::start(args.listen)?;
    println!("{}", serde_json::to_string(&ready)?);
    server.await?;
    Ok(())
}
