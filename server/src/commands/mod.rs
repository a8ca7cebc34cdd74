//! The subcommands: `serve`, `migrate` and `admin`.

mod admin;
mod backup;
mod healthcheck;
mod settings;

use std::io::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::blobs::{BlobStore, DiskBlobs, S3Blobs};
use crate::bus::{self, NoticeSink};
use crate::config::{Cli, Command, GlobalArgs, MdnsMode, ServeArgs, SignUp, TurnArgs, TurnMode};
use crate::mail::{Mailer, SmtpMailer};
use crate::services::totp::{self, TotpKey};
use crate::services::{AuthPolicy, BlobSetup, Hub, Push, ServerInfo, Services, StorageBackend, TurnSettings};
use crate::store::{self, ConnectOptions, DatabaseUrl, Store};
use crate::{telemetry, tls, transport};

/// Runs the chosen subcommand to completion and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    // The admin CLI talks to people: only warnings and errors go to the log.
    let log = if matches!(cli.command, Command::Admin(_) | Command::Healthcheck(_)) {
        "warn"
    } else {
        cli.global.log.as_str()
    };
    if let Err(e) = telemetry::init(cli.global.log_format, log) {
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
            Command::Admin(args) => admin::run(&cli.global, args).await,
            Command::Healthcheck(args) => healthcheck::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !matches!(cli.command, Command::Admin(_) | Command::Healthcheck(_)) {
                error!("{e:#}");
            }
            eprintln!("kitsulan: {e:#}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) async fn open_store(global: &GlobalArgs) -> anyhow::Result<Arc<dyn Store>> {
    // It holds the database, keys and blobs: this user's only.
    let tightened = crate::data_dir::private_dir(&global.data_dir).with_context(|| {
        format!("cannot create the data dir {} (KITSULAN_DATA_DIR)", global.data_dir.display())
    })?;
    if tightened {
        info!(dir = %global.data_dir.display(), "made the data dir readable by this user only (0700)");
    }
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
    let totp_key = Arc::new(
        TotpKey::load_or_create(&global.data_dir.join("totp-key"))
            .context("the key that seals TOTP secrets")?,
    );
    let sealed = totp::seal_stored_secrets(store.as_ref(), &totp_key).await?;
    if sealed > 0 {
        info!(sealed, "sealed TOTP secrets stored in plaintext by an earlier version");
    }
    let mailer: Option<Arc<dyn Mailer>> = match args.smtp.settings().map_err(anyhow::Error::msg)? {
        Some(smtp) => {
            info!(host = %smtp.host, port = smtp.port(), tls = ?smtp.tls, "email enabled");
            Some(Arc::new(SmtpMailer::new(&smtp).context("invalid SMTP settings")?))
        }
        None => {
            info!("email disabled (KITSULAN_SMTP_HOST is not set): sign-in by password only");
            None
        }
    };
    let policy = AuthPolicy {
        sign_up_open: args.auth.sign_up == SignUp::Open,
        access_ttl: Duration::from_secs(args.auth.access_token_ttl_seconds),
        refresh_ttl: Duration::from_secs(args.auth.refresh_token_ttl_days * 86_400),
        limits: settings::limits(&args.auth, &args.e2ee),
        totp_key,
        hash_pool: settings::hash_pool(&args.auth),
    };
    info!(threads = policy.hash_pool.threads, queue = policy.hash_pool.queue, "password hashing");
    let (blobs, storage) = open_blobs(global, args).await?;
    let blob_origins: Vec<String> = args
        .attachments
        .s3()
        .map_err(anyhow::Error::msg)?
        .and_then(|s3| s3.browser_origin())
        .into_iter()
        .collect();
    // Before anything else starts: a bad certificate stops start-up with one line.
    let tls = tls::setup(&args.tls, &args.acme, &global.data_dir, &args.server_name).await?;
    let (turn, relay) = start_turn(global, &args.turn).await?;
    let hub = Hub::new();
    let sink: Arc<dyn NoticeSink> = hub.clone();
    let bus = bus::connect(args.bus_url.as_deref(), instance.id.as_uuid(), sink).await?;
    info!(bus = bus.name(), "live events between nodes");
    let mut services = Services::new(
        store.clone(),
        ServerInfo {
            name: args.server_name.clone(),
            version: env!("CARGO_PKG_VERSION"),
            instance_id: instance.id,
            database: store.backend(),
            storage,
            attachment_ttl_choices: args.attachments.ttl_choices.clone(),
            local_ca_sha256: tls.as_ref().and_then(|tls| tls.local_ca_sha256()),
            retention_days: args.conversations.retention_days,
            delete_messages_with_account: args.conversations.deleted_account_messages
                == crate::config::DeletedAccountMessages::Delete,
        },
        policy,
        mailer,
        (bus, hub),
        turn,
        blobs,
    );
    if let Some((node, dropped)) = start_sfu(&args.sfu).await? {
        services.voice.start(node, dropped);
    }
    services.conversations.settings = settings::conversations(&args.conversations);
    services.accounts.delete_messages_with_account = services.server_info.delete_messages_with_account;
    if let Some(push) = start_push(global, args, store.clone(), services.delivery.hub().clone())? {
        services.conversations.push = push.clone();
        services.push = push;
    }
    let services = Arc::new(services);
    let housekeeping = tokio::spawn(services.clone().housekeeping(Duration::from_secs(600)));
    let sweep = Duration::from_secs(args.attachments.sweep_seconds);
    let attachments = tokio::spawn(services.attachments.clone().housekeeping(sweep));
    let revocations = tokio::spawn(services.delivery.clone().watch_revocations(Duration::from_millis(500)));
    let presence = tokio::spawn(services.delivery.clone().keep_presence());
    let messages = tokio::spawn(services.conversations.clone().housekeeping(Duration::from_secs(1)));
    let ring = Duration::from_secs(args.turn.ring_seconds);
    let unanswered = tokio::spawn(services.calls.clone().end_unanswered(ring, Duration::from_secs(1)));
    let services_hub = services.delivery.hub().clone();
    let transport::Routers { main: router, admin, health } = transport::router(
        services,
        transport::Options {
            trust_forwarded_for: args.auth.trust_forwarded_for,
            separate_admin: args.admin_listen.is_some(),
            blob_origins,
            local_ca: tls.as_ref().and_then(|tls| tls.local_ca.clone()),
            acme_challenges: tls.as_ref().and_then(|tls| tls.challenges.clone()),
        },
    )
    .await?;
    let admin_listener = match args.admin_listen {
        Some(at) => Some(
            TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} (KITSULAN_ADMIN_LISTEN)"))?,
        ),
        None => None,
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (KITSULAN_LISTEN)", args.listen))?;
    let addr = listener.local_addr()?;
    let redirect_listener = match args.tls.redirect_listen {
        Some(at) => Some(
            TcpListener::bind(at)
                .await
                .with_context(|| format!("cannot listen on {at} (KITSULAN_HTTP_REDIRECT_LISTEN)"))?,
        ),
        None => None,
    };

    let (stop_tx, mut stop_rx) = watch::channel(false);
    // Plain HTTP that only redirects to HTTPS (and answers ACME challenges and `/ca.crt`).
    let redirect_server = match (redirect_listener, &tls) {
        (Some(listener), Some(tls)) => {
            info!(addr = %listener.local_addr()?, "redirecting plain HTTP to HTTPS");
            let router = transport::plain_router(
                transport::RedirectTo::Port(addr.port()),
                tls.local_ca.clone(),
                tls.challenges.clone(),
            );
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                };
                if let Err(e) = transport::serve(listener, router, stopped).await {
                    error!(error = %e, "the HTTP redirect listener failed");
                }
            }))
        }
        _ => None,
    };
    // `/metrics` and reflection on their own address: stops with the rest, its failure is logged.
    let admin_server = match (admin_listener, admin) {
        (Some(listener), Some(router)) => {
            let admin_addr = listener.local_addr()?;
            if !admin_addr.ip().is_loopback() {
                warn!(addr = %admin_addr, "the admin address is not loopback: keep it off the internet");
            }
            info!(addr = %admin_addr, "admin listening (/metrics, gRPC reflection)");
            let mut stop = stop_rx.clone();
            Some(tokio::spawn(async move {
                let stopped = async move {
                    let _ = stop.wait_for(|stop| *stop).await;
                };
                if let Err(e) = transport::serve(listener, router, stopped).await {
                    error!(error = %e, "the admin listener failed");
                }
            }))
        }
        _ => None,
    };
    let mdns = start_mdns(args, addr, store.backend(), tls.is_some());
    let stopped = async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    };
    let server = match &tls {
        Some(tls) => {
            let config = tls.server_config()?;
            let plain = transport::plain_router(
                transport::RedirectTo::SamePort,
                tls.local_ca.clone(),
                tls.challenges.clone(),
            );
            info!(%addr, version = env!("CARGO_PKG_VERSION"), instance = %instance.id, https = true,
                  local_ca_sha256 = %tls.local_ca_sha256().unwrap_or_default(), "listening");
            tokio::spawn(transport::serve_https(listener, config, router, plain, stopped))
        }
        None => {
            info!(%addr, version = env!("CARGO_PKG_VERSION"), instance = %instance.id, "listening");
            tokio::spawn(transport::serve(listener, router, stopped))
        }
    };
    let server_abort = server.abort_handle();

    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => {
            // The server stopped on its own: that is an error (e.g. the listener failed).
            if let Some(mdns) = mdns {
                mdns.stop().await;
            }
            housekeeping.abort();
            attachments.abort();
            revocations.abort();
            unanswered.abort();
            presence.abort();
            messages.abort();
            close_relay(relay).await;
            store.close().await;
            return result.context("server task failed")?.context("server failed");
        }
        signal = shutdown_signal() => info!(signal, "shutting down: finishing in-flight requests"),
    }
    health.set_not_serving().await;
    // Nobody new should find a server that is going away.
    if let Some(mdns) = mdns {
        mdns.stop().await;
    }
    // Gateway connections never finish on their own: close them (clients resume elsewhere).
    services_hub.shut_down();
    let _ = stop_tx.send(true);
    let grace = args.shutdown_grace();
    match tokio::time::timeout(grace, &mut server).await {
        Ok(result) => result.context("server task failed")?.context("server failed")?,
        Err(_) => {
            warn!(grace_seconds = grace.as_secs(), "grace period over: closing remaining connections");
            server_abort.abort();
        }
    }
    if let Some(admin_server) = admin_server {
        admin_server.abort();
    }
    if let Some(redirect_server) = redirect_server {
        redirect_server.abort();
    }
    for task in tls.iter().flat_map(|tls| &tls.tasks) {
        task.abort();
    }
    housekeeping.abort();
    attachments.abort();
    revocations.abort();
    unanswered.abort();
    presence.abort();
    messages.abort();
    close_relay(relay).await;
    tokio::time::timeout(Duration::from_secs(5), store.close()).await.ok();
    info!("shutdown complete");
    Ok(())
}

/// Starts the mDNS announcement when `KITSULAN_MDNS` asks for it (`auto`: with SQLite only).
/// A responder that cannot start is logged, not fatal: the server works without it.
fn start_mdns(
    args: &ServeArgs,
    listening: std::net::SocketAddr,
    backend: store::Backend,
    https: bool,
) -> Option<transport::mdns::Announcer> {
    let on = match args.mdns {
        MdnsMode::On => true,
        MdnsMode::Off => false,
        MdnsMode::Auto => backend == store::Backend::Sqlite,
    };
    if !on {
        info!(setting = ?args.mdns, "not announcing on the LAN over mDNS (KITSULAN_MDNS)");
        return None;
    }
    if args.mdns == MdnsMode::Auto && listening.ip().is_loopback() {
        info!(%listening, "not announcing on the LAN over mDNS: the server listens on loopback only");
        return None;
    }
    let what = transport::mdns::Announcement {
        instance: args.server_name.clone(),
        hostname: args.mdns_hostname.clone(),
        listen: listening,
        tls: https,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    match transport::mdns::Announcer::start(&what) {
        Ok(announcer) => Some(announcer),
        Err(e) => {
            warn!("not announcing on the LAN (KITSULAN_MDNS): {e:#}");
            None
        }
    }
}

/// The blob store the settings choose: the data dir (Lite) or an S3 bucket (Pro).
async fn open_blobs(global: &GlobalArgs, args: &ServeArgs) -> anyhow::Result<(BlobSetup, StorageBackend)> {
    let settings = settings::attachments(&args.attachments);
    match args.attachments.s3().map_err(anyhow::Error::msg)? {
        Some(s3) => {
            let blobs = S3Blobs::connect(&s3).await.with_context(|| {
                format!("cannot use the S3 bucket {:?} at {} (KITSULAN_S3_*)", s3.bucket, s3.endpoint)
            })?;
            info!(endpoint = %s3.endpoint, bucket = %s3.bucket, region = %s3.region, path_style = s3.path_style,
                  max_bytes = settings.max_bytes, "attachments: S3 bucket");
            let store: Arc<dyn BlobStore> = Arc::new(blobs);
            Ok((BlobSetup { store, disk: None, settings }, StorageBackend::S3))
        }
        None => {
            let disk = Arc::new(DiskBlobs::open(&global.data_dir)?);
            info!(dir = %disk.root().display(), max_bytes = settings.max_bytes, "attachments: files in the data dir");
            let store: Arc<dyn BlobStore> = disk.clone();
            Ok((BlobSetup { store, disk: Some(disk), settings }, StorageBackend::Local))
        }
    }
}

/// Web Push when it is on: the VAPID key (made at first start in the data dir), the endpoint
/// rules and the HTTP client.
fn start_push(
    global: &GlobalArgs,
    args: &ServeArgs,
    store: Arc<dyn Store>,
    hub: Arc<Hub>,
) -> anyhow::Result<Option<Push>> {
    use crate::webpush::{EndpointPolicy, PushClient, VapidKey};
    if !args.push.enabled {
        info!("push notifications off (KITSULAN_PUSH=off): apps notify only while open");
        return Ok(None);
    }
    let path = global.data_dir.join("vapid-key");
    let (key, made) = VapidKey::load_or_create(&path).context("the VAPID key for push notifications")?;
    if made {
        info!(path = %path.display(), "made the VAPID key for push notifications");
    }
    let policy = Arc::new(
        EndpointPolicy::new(&args.push.allowed_origins)
            .map_err(|e| anyhow::anyhow!("invalid setting KITSULAN_PUSH_ALLOWED_ORIGINS: {e}"))?,
    );
    let extra_roots = match &args.push.extra_roots {
        None => Vec::new(),
        Some(path) => {
            use rustls::pki_types::pem::PemObject as _;
            let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    anyhow::anyhow!("KITSULAN_PUSH_EXTRA_ROOTS: cannot read {}: {e}", path.display())
                })?;
            if certs.is_empty() {
                anyhow::bail!("KITSULAN_PUSH_EXTRA_ROOTS: {} holds no certificate", path.display());
            }
            certs
        }
    };
    let client = PushClient::new(policy.clone(), extra_roots).context("KITSULAN_PUSH_EXTRA_ROOTS")?;
    let pacing = settings::push(&args.push);
    info!(key = %key.public_key_b64(), min_interval_seconds = pacing.min_interval.as_secs(),
          "push notifications on (they need the internet to reach browsers' push services)");
    Ok(Some(Push::start(store, hub, key, policy, client, pacing)))
}

/// What calls use for TURN, starting the embedded relay when that is the choice.
async fn start_turn(
    global: &GlobalArgs,
    args: &TurnArgs,
) -> anyhow::Result<(Option<TurnSettings>, Option<kitsulan_turn::Relay>)> {
    let ttl = Duration::from_secs(args.credential_ttl_seconds);
    let configured = |secret: &crate::config::Secret| {
        kitsulan_turn::TurnSecret::new(secret.expose())
            .map_err(|e| anyhow::anyhow!("invalid setting KITSULAN_TURN_SECRET (--turn-secret): {e}"))
    };
    match args.mode {
        TurnMode::Off => {
            info!("calls: no TURN relay (KITSULAN_TURN=off); calls connect directly or not at all");
            Ok((None, None))
        }
        TurnMode::External => {
            let secret = args.secret.as_ref().map(configured).transpose()?.context("KITSULAN_TURN_SECRET")?;
            let urls: Vec<String> =
                args.urls.iter().map(|u| u.trim().to_owned()).filter(|u| !u.is_empty()).collect();
            info!(?urls, "calls: external TURN relay");
            Ok((Some(TurnSettings { secret, urls, ttl }), None))
        }
        TurnMode::Embedded => {
            let secret = match &args.secret {
                Some(secret) => configured(secret)?,
                None => stored_turn_secret(&global.data_dir)?,
            };
            let mut config = kitsulan_turn::RelayConfig::new(secret.clone());
            config.listen = args.listen;
            config.relay_ip = args.relay_ip;
            config.relay_ports = args.relay_ports;
            config.max_allocations = args.max_allocations as usize;
            config.max_allocations_per_account = args.max_allocations_per_account as usize;
            config.allow_lan_peers = args.allow_lan_peers;
            let relay = kitsulan_turn::start(config).await.with_context(|| {
                format!("cannot start the TURN relay on {} (KITSULAN_TURN_LISTEN)", args.listen)
            })?;
            let urls = relay.urls();
            info!(listen = %relay.local_addr(), ?urls, relay_ports = %args.relay_ports, "calls: embedded TURN relay started");
            Ok((Some(TurnSettings { secret, urls, ttl }), Some(relay)))
        }
    }
}

/// The SFU of voice channels, unless it is off.
async fn start_sfu(
    args: &crate::config::SfuArgs,
) -> anyhow::Result<
    Option<(kitsulan_sfu::node::Node, tokio::sync::mpsc::Receiver<kitsulan_sfu::room::ParticipantId>)>,
> {
    if !args.enabled {
        info!("voice channels: no SFU (KITSULAN_SFU=off)");
        return Ok(None);
    }
    let advertise = match args.advertise_ip {
        Some(ip) => ip,
        None if !args.listen.ip().is_unspecified() => args.listen.ip(),
        None => kitsulan_turn::outbound_ip(args.listen.is_ipv4())
            .context("no address to give devices for the SFU: set KITSULAN_SFU_ADVERTISE_IP")?,
    };
    let (dropped, drops) = tokio::sync::mpsc::channel(256);
    let config = kitsulan_sfu::node::NodeConfig {
        bind: args.listen,
        advertise,
        room: kitsulan_sfu::room::RoomConfig {
            max_participants: args.room_max as usize,
            audio_slots: args.voices as usize,
            ..kitsulan_sfu::room::RoomConfig::default()
        },
        max_participants: args.max_participants as usize,
        drop_after: Duration::from_secs(args.drop_after_seconds),
        dropped: Some(dropped),
    };
    let node = kitsulan_sfu::node::Node::start(config)
        .await
        .with_context(|| format!("cannot start the SFU on {} (KITSULAN_SFU_LISTEN)", args.listen))?;
    info!(listen = %node.local_addr(), %advertise, room_max = args.room_max, "voice channels: SFU started");
    Ok(Some((node, drops)))
}

/// The embedded relay's secret kept in the data dir (`turn-secret`, readable by this user only),
/// made on first start.
fn stored_turn_secret(data_dir: &std::path::Path) -> anyhow::Result<kitsulan_turn::TurnSecret> {
    let path = data_dir.join("turn-secret");
    match crate::data_dir::read_private_file(&path) {
        Ok(text) => kitsulan_turn::TurnSecret::new(text.trim()).map_err(|e| {
            anyhow::anyhow!("{}: not a usable TURN secret ({e}); delete it to make a new one", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = kitsulan_turn::TurnSecret::generate().context("cannot make a TURN secret")?;
            crate::data_dir::write_private_file(&path, secret.expose().as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            info!(path = %path.display(), "made the TURN relay's secret");
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

async fn close_relay(relay: Option<kitsulan_turn::Relay>) {
    if let Some(relay) = relay
        && let Err(e) = relay.close().await
    {
        warn!(error = %e, "the TURN relay did not close cleanly");
    }
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
