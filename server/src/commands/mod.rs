//! The subcommands: `serve`, `migrate` and `admin`.

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::CommandFactory as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::{Cli, Command, DatabaseUrl, GlobalArgs, ServeArgs};
use crate::services::{ServerInfo, Services, StorageBackend};
use crate::store::{self, ConnectOptions, Store};
use crate::{telemetry, transport};

/// Runs the chosen subcommand to completion and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    if let Command::Admin = cli.command {
        return admin_help();
    }
    if let Err(e) = telemetry::init(cli.global.log_format, &cli.global.log) {
        eprintln!("kitsulan: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kitsulan: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            Command::Serve(args) => serve(&cli.global, args).await,
            Command::Migrate => migrate(&cli.global).await,
            Command::Admin => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            eprintln!("kitsulan: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn open_store(global: &GlobalArgs) -> anyhow::Result<Arc<dyn Store>> {
    std::fs::create_dir_all(&global.data_dir).with_context(|| {
        format!("cannot create the data dir {} (KITSULAN_DATA_DIR)", global.data_dir.display())
    })?;
    let url = DatabaseUrl::resolve(global.database_url.as_ref(), &global.data_dir);
    info!(database = %url, "opening database");
    let options = ConnectOptions { max_connections: global.db_max_connections, ..ConnectOptions::default() };
    store::connect(&url, &options)
        .await
        .with_context(|| format!("cannot open the database {url} (DATABASE_URL)"))
}

async fn migrate(global: &GlobalArgs) -> anyhow::Result<()> {
    let store = open_store(global).await?;
    let report = store.migrate().await?;
    store.close().await;
    let mut text = if report.applied.is_empty() {
        format!("The database is up to date ({} migrations).\n", report.total)
    } else {
        format!("Applied {} migration(s):\n", report.applied.len())
    };
    for migration in &report.applied {
        text.push_str(&format!("  {migration}\n"));
    }
    // A closed pipe (`kitsulan migrate | head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(text.as_bytes());
    Ok(())
}

async fn serve(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<()> {
    let store = open_store(global).await?;
    let report = store.migrate().await?;
    if !report.applied.is_empty() {
        info!(applied = ?report.applied, "applied database migrations");
    }
    let instance = store.instance().await?;
    let services = Arc::new(Services::new(
        store.clone(),
        ServerInfo {
            name: args.server_name.clone(),
            version: env!("CARGO_PKG_VERSION"),
            instance_id: instance.id,
            database: store.backend(),
            storage: StorageBackend::Local,
        },
    ));
    let (router, health) = transport::router(services).await?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (KITSULAN_LISTEN)", args.listen))?;
    let addr = listener.local_addr()?;
    info!(%addr, version = env!("CARGO_PKG_VERSION"), instance = %instance.id, "listening");

    let (stop_tx, mut stop_rx) = watch::channel(false);
    let server = tokio::spawn(transport::serve(listener, router, async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    let server_abort = server.abort_handle();

    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => {
            // The server stopped on its own: that is an error (e.g. the listener failed).
            store.close().await;
            return result.context("server task failed")?.context("server failed");
        }
        signal = shutdown_signal() => info!(signal, "shutting down: finishing in-flight requests"),
    }
    health.set_not_serving().await;
    let _ = stop_tx.send(true);
    let grace = args.shutdown_grace();
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => result.context("server task failed")?.context("server failed")?,
        Err(_) => {
            warn!(grace_seconds = grace.as_secs(), "grace period over: closing remaining connections");
            server_abort.abort();
        }
    }
    tokio::time::timeout(Duration::from_secs(5), store.close()).await.ok();
    info!("shutdown complete");
    Ok(())
}

async fn shutdown_signal() -> &'static str {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => "SIGINT",
        () = terminate => "SIGTERM",
    }
}

fn admin_help() -> ExitCode {
    let mut cmd = Cli::command();
    cmd.build();
    let help = cmd.find_subcommand_mut("admin").map(|admin| admin.render_long_help().to_string());
    let text = format!(
        "{}\nNo admin commands exist yet: user and device commands arrive with accounts.\n",
        help.unwrap_or_default()
    );
    let _ = std::io::stdout().write_all(text.as_bytes());
    ExitCode::SUCCESS
}
