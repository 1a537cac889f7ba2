//! `backhome`: the command line and the service entry point.

use backhome::cli::{Cli, Command, TaskCommand, commands, data_dir};
use clap::Parser;

#[tokio::main]
async fn main() {
    // Before the run allocates anything large (see `backhome_malloc`).
    backhome_malloc::tune();
    let cli = Cli::parse();
    // `serve` and `demo` install the service's logging (file, syslog, store); commands log to stderr.
    #[cfg(feature = "demo")]
    let service = matches!(cli.command, Command::Serve { .. } | Command::Demo { .. });
    #[cfg(not(feature = "demo"))]
    let service = matches!(cli.command, Command::Serve { .. });
    if !service {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("BACKHOME_LOG")
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_writer(std::io::stderr)
            .init();
    }
    let code = match dispatch(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    #[cfg(feature = "demo")]
    let explicit_data = cli.data_dir.clone();
    let data = data_dir(cli.data_dir);
    match cli.command {
        Command::Serve { listen, ui_dir } => {
            backhome::serve::run(data, listen, ui_dir).await.map(|()| 0)
        }
        #[cfg(feature = "demo")]
        Command::Demo { listen, ui_dir } => backhome::demo::run(listen, explicit_data, ui_dir)
            .await
            .map(|()| 0),
        Command::Task { command } => match command {
            TaskCommand::Create(a) => commands::task_create(&data, *a).map(|()| 0),
            TaskCommand::List => commands::task_list(&data).map(|()| 0),
            TaskCommand::Show { name } => commands::task_show(&data, &name).map(|()| 0),
            TaskCommand::Delete { name } => commands::task_delete(&data, &name).map(|()| 0),
        },
        Command::Backup { task, json } => commands::backup(&data, &task, json).await,
        Command::Runs { task, json } => commands::runs(&data, &task, json).map(|()| 0),
        Command::Verify { task, full } => commands::verify(&data, &task, full),
        Command::Ls {
            task,
            at,
            json,
            recursive,
            path,
        } => commands::ls(
            &data,
            &task,
            at.as_deref(),
            json,
            recursive,
            path.as_deref(),
        )
        .map(|()| 0),
        Command::Cat { task, at, path } => {
            commands::cat(&data, &task, at.as_deref(), &path).map(|()| 0)
        }
        Command::Export {
            task,
            at,
            format,
            out,
            paths,
        } => backhome::cli::export::export(&data, &task, at.as_deref(), format, &out, &paths)
            .map(|()| 0),
        Command::Restore(a) => backhome::cli::restore::restore(&data, a).await,
    }
}
