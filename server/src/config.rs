//! Settings: command-line flags, then environment variables, then a `.env` file in the working
//! directory, in that order of precedence. Every setting is validated here, at the edge, so an
//! invalid one stops start-up with one line that names it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::store::DatabaseUrl;

/// `kitsulan`: a self-hosted, end-to-end encrypted messenger.
#[derive(Debug, Parser)]
#[command(name = "kitsulan", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings shared by every subcommand: where the data lives and how to log.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Directory for the SQLite database and local files.
    #[arg(long, env = "KITSULAN_DATA_DIR", default_value = "data", global = true)]
    pub data_dir: PathBuf,

    /// Database to use: `postgres://user:pass@host/db` for PostgreSQL, or `sqlite://path`.
    /// Unset: a SQLite file `kitsulan.db` in the data dir.
    #[arg(long, env = "DATABASE_URL", value_parser = DatabaseUrl::parse, global = true, hide_env_values = true)]
    pub database_url: Option<DatabaseUrl>,

    /// Largest number of open database connections.
    #[arg(long, env = "KITSULAN_DB_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub db_max_connections: u32,

    /// Log format: `pretty` for people, `json` for log collectors.
    #[arg(long, env = "KITSULAN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,

    /// Log filter in `tracing` syntax, e.g. `info` or `info,kitsulan_server=debug`.
    #[arg(long, env = "KITSULAN_LOG", default_value = "info", value_parser = parse_log_filter, global = true)]
    pub log: String,
}

// Parsed once at start-up: the size of the `Serve` variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: API, gateway and web app on one port.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate,
    /// Administer users and devices (works on the same database while `serve` runs).
    Admin(AdminArgs),
    /// Ask the server on this machine whether it is ready (`GET /readyz` on loopback): exit 0 if
    /// it is, 1 if not. For container health checks, where there is no curl.
    Healthcheck(HealthcheckArgs),
}

/// `kitsulan healthcheck`: the same listen settings as `serve`, to find its port.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The address `serve` listens on; an unspecified one (0.0.0.0, ::) is asked on loopback.
    #[arg(long, env = "KITSULAN_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    /// `serve`'s admin address: when set, `/readyz` is there.
    #[arg(long, env = "KITSULAN_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,
    /// Seconds to wait for the answer.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub timeout_seconds: u64,
}

/// `kitsulan admin …`
#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Accounts: create, list, import, help people back in, disable.
    #[command(subcommand)]
    User(UserCommand),
    /// Signed-in devices: list and revoke.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Copy the database (SQLite, online: the server may keep running) and the data dir's
    /// files and keys into a new directory, with a manifest of SHA-256 sums.
    Backup(BackupArgs),
    /// Put a backup into an empty (or missing) data dir, after checking every file's SHA-256.
    /// Stop the server first.
    Restore(RestoreArgs),
}

/// `kitsulan admin backup …`
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The directory to write: it must not exist yet, or be empty.
    pub dest: PathBuf,
    /// On PostgreSQL: back up only the data dir's files and keys (the database itself is
    /// backed up with pg_dump, see docs/admin.md).
    #[arg(long)]
    pub files_only: bool,
}

/// `kitsulan admin restore …`
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory `kitsulan admin backup` wrote.
    pub src: PathBuf,
    /// Restore into a data dir that is not empty: what it holds is deleted (after the backup
    /// has been checked and copied beside it).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account. Prints a generated password unless --password-stdin is given.
    Create {
        /// The username (3-32 of a-z 0-9 . _ -).
        username: String,
        /// Display name [default: the username].
        #[arg(long)]
        display_name: Option<String>,
        /// Email address (unverified until the person verifies it).
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List every account.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create many accounts from a CSV file (`username[,display_name[,email]]` per line) and
    /// print their generated passwords, e.g. for the guests of a LAN party.
    Import {
        /// The CSV file (`-` for standard input).
        file: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print a one-time sign-in code (valid 24 hours) for someone who forgot their password.
    ResetPassword {
        username: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Disable an account: no sign-in, and its sessions stop working.
    Disable { username: String },
    /// Enable a disabled account again.
    Enable { username: String },
    /// Turn TOTP off for someone who lost their authenticator.
    RemoveTotp { username: String },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// List a person's devices.
    List {
        username: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Sign a device out; its tokens stop working at once.
    Revoke {
        /// The device id (from `device list`).
        device_id: String,
    },
}

/// Settings of `kitsulan serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port to listen on (HTTP/1.1, HTTP/2 cleartext, gRPC and gRPC-Web).
    #[arg(long, env = "KITSULAN_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// Address for `/metrics` and gRPC reflection (plus `/healthz` and `/readyz`), e.g.
    /// `127.0.0.1:9090`. Set: they are served there only, not on KITSULAN_LISTEN; keep it on
    /// loopback or a private network. Unset: everything is on KITSULAN_LISTEN.
    #[arg(long, env = "KITSULAN_ADMIN_LISTEN")]
    pub admin_listen: Option<SocketAddr>,

    /// The name this server shows to people.
    #[arg(long, env = "KITSULAN_SERVER_NAME", default_value = "KitsuLAN", value_parser = parse_server_name)]
    pub server_name: String,

    /// Seconds to let in-flight requests finish after SIGINT/SIGTERM before closing anyway.
    #[arg(long, env = "KITSULAN_SHUTDOWN_GRACE_SECONDS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace_seconds: u64,

    /// Bus between several nodes sharing one PostgreSQL database, so a device connected to one
    /// node gets events made through another: `nats://host:4222`. Unset: one process.
    #[arg(long, env = "KITSULAN_BUS_URL", value_parser = parse_bus_url, hide_env_values = true)]
    pub bus_url: Option<String>,

    /// Announce this server on the LAN over mDNS/DNS-SD (`_kitsulan._tcp`, `<host>.local`):
    /// `auto` is on with SQLite (Lite) and off with PostgreSQL (Pro), which usually runs in a
    /// data centre or behind a load balancer.
    #[arg(long, env = "KITSULAN_MDNS", value_enum, default_value_t = MdnsMode::Auto)]
    pub mdns: MdnsMode,

    /// The `.local` name announced over mDNS (`kitsulan` → `kitsulan.local`). If another device
    /// on the LAN already has it, the server takes `kitsulan-2.local` and logs it.
    #[arg(long, env = "KITSULAN_MDNS_HOSTNAME", default_value = "kitsulan",
          value_parser = parse_mdns_hostname)]
    pub mdns_hostname: String,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub smtp: SmtpArgs,

    #[command(flatten)]
    pub turn: TurnArgs,

    #[command(flatten)]
    pub sfu: SfuArgs,

    #[command(flatten)]
    pub attachments: AttachmentArgs,

    #[command(flatten)]
    pub e2ee: E2eeArgs,

    #[command(flatten)]
    pub conversations: ConversationArgs,

    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(flatten)]
    pub push: PushArgs,

    #[command(flatten)]
    pub acme: AcmeArgs,
}

fn parse_bus_url(raw: &str) -> Result<String, String> {
    let url = raw.trim();
    if ["nats://", "tls://"].iter().any(|scheme| url.starts_with(scheme)) && url.len() > 7 {
        Ok(url.to_owned())
    } else {
        Err("expected a NATS URL such as nats://127.0.0.1:4222".into())
    }
}

/// A rate setting: "at most `count` per `period`", written `10/1h`, `30/10m`, `5/30s`,
/// `100/1d`. `commands` hands it to the services as the limit they enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// How many in one period (also the largest burst).
    pub count: u32,
    /// The period.
    pub period: Duration,
}

impl std::str::FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("expected N/PERIOD like 10/1h, 30/10m or 5/30s, got {s:?}");
        let (count, period) = s.trim().split_once('/').ok_or_else(err)?;
        let count: u32 = count.trim().parse().map_err(|_| err())?;
        let period = period.trim();
        let split = period.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
        let (amount, unit) = period.split_at(split);
        let amount: u64 = if amount.is_empty() { 1 } else { amount.parse().map_err(|_| err())? };
        let seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            _ => return Err(err()),
        };
        if count == 0 || amount == 0 {
            return Err("count and period must be at least 1".into());
        }
        if amount.saturating_mul(seconds) > 30 * 86_400 {
            return Err("the period is at most 30 days".into());
        }
        Ok(Self { count, period: Duration::from_secs(amount * seconds) })
    }
}

/// Who may sign up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SignUp {
    /// Anyone who reaches the server.
    Open,
    /// Nobody; the admin creates accounts (`kitsulan admin user create` / `import`).
    Closed,
}

/// Sessions and sign-in limits.
#[derive(Debug, Args)]
#[command(next_help_heading = "Accounts and sign-in")]
pub struct AuthArgs {
    /// Whether anyone may create an account here.
    #[arg(long, env = "KITSULAN_SIGN_UP", value_enum, default_value_t = SignUp::Open)]
    pub sign_up: SignUp,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "KITSULAN_ACCESS_TOKEN_TTL_SECONDS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub access_token_ttl_seconds: u64,

    /// Lifetime of refresh tokens, in days (a device unused this long must sign in again).
    #[arg(long, env = "KITSULAN_REFRESH_TOKEN_TTL_DAYS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=365))]
    pub refresh_token_ttl_days: u64,

    /// Take the client address from the last `X-Forwarded-For` entry (only behind a reverse
    /// proxy that sets it; otherwise clients could pick their own address).
    #[arg(long, env = "KITSULAN_TRUST_FORWARDED_FOR", default_value_t = false, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub trust_forwarded_for: bool,

    /// Sign-ups per client address on the internet, as N/PERIOD (s, m, h, d).
    #[arg(long, env = "KITSULAN_RATE_LIMIT_SIGN_UP", default_value = "10/1h")]
    pub rate_limit_sign_up: Rate,

    /// Sign-ups per client address on a private network (RFC 1918, link-local, IPv6 ULA; not
    /// loopback), where a LAN party shares one NAT address.
    #[arg(long, env = "KITSULAN_RATE_LIMIT_SIGN_UP_PRIVATE", default_value = "50/1h")]
    pub rate_limit_sign_up_private: Rate,

    /// Sign-in attempts of any kind per client address.
    #[arg(long, env = "KITSULAN_RATE_LIMIT_SIGN_IN", default_value = "30/10m")]
    pub rate_limit_sign_in: Rate,

    /// Failed password, TOTP or code checks per account from one client address (sign-in and
    /// the checks behind a session alike), so a stranger elsewhere cannot lock the owner out;
    /// failed TOTP and one-time codes also per account from all addresses together.
    #[arg(long, env = "KITSULAN_RATE_LIMIT_SIGN_IN_FAILURES", default_value = "10/15m")]
    pub rate_limit_sign_in_failures: Rate,

    /// Failed password, TOTP or code checks per account from all addresses together: the
    /// ceiling for guessing spread over many addresses.
    #[arg(long, env = "KITSULAN_RATE_LIMIT_ACCOUNT_FAILURES", default_value = "100/1h")]
    pub rate_limit_account_failures: Rate,

    /// Refresh-token exchanges per client address (signed-in devices refresh every few minutes).
    #[arg(long, env = "KITSULAN_RATE_LIMIT_REFRESH", default_value = "120/1m")]
    pub rate_limit_refresh: Rate,

    /// Emailed codes per client address and per email address.
    #[arg(long, env = "KITSULAN_RATE_LIMIT_CODE_REQUESTS", default_value = "5/1h")]
    pub rate_limit_code_requests: Rate,

    /// One-time code checks per client address.
    #[arg(long, env = "KITSULAN_RATE_LIMIT_CODE_CHECKS", default_value = "20/10m")]
    pub rate_limit_code_checks: Rate,

    /// Device-pairing PIN lookups per account and per client address.
    #[arg(long, env = "KITSULAN_RATE_LIMIT_PAIRING_LOOKUPS", default_value = "10/10m")]
    pub rate_limit_pairing_lookups: Rate,

    /// Threads that hash passwords and codes (Argon2id, 19 MiB each while busy). Unset: one
    /// per CPU, at most 4.
    #[arg(long, env = "KITSULAN_PASSWORD_HASH_THREADS",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub password_hash_threads: Option<u16>,

    /// Password hashes that may wait for a thread; past it, callers wait up to 2 s for a place
    /// and then get "the server is busy; try again". Unset: 16 per thread.
    #[arg(long, env = "KITSULAN_PASSWORD_HASH_QUEUE",
          value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub password_hash_queue: Option<u16>,
}

/// Limits that keep strangers from draining one-time keys and flooding to-device inboxes
/// (docs/e2ee.md, "Limits against draining and flooding").
#[derive(Debug, Args)]
#[command(next_help_heading = "End-to-end encryption (key claims, to-device inboxes, key backup)")]
pub struct E2eeArgs {
    /// Devices one account may name in key claims, as N/PERIOD; a claim over it is refused
    /// whole (keep N at least 100, the most devices one claim may name).
    #[arg(long, env = "KITSULAN_RATE_LIMIT_KEY_CLAIMS", default_value = "2000/1h")]
    pub rate_limit_key_claims: Rate,

    /// One-time keys one account may take from one device; past it, that device's fallback
    /// key is handed out.
    #[arg(long, env = "KITSULAN_RATE_LIMIT_KEY_CLAIMS_PER_DEVICE", default_value = "10/1h")]
    pub rate_limit_key_claims_per_device: Rate,

    /// One-time keys all accounts sharing no conversation with a device's owner may take from
    /// that device together; past it, its fallback key is handed out.
    #[arg(long, env = "KITSULAN_RATE_LIMIT_STRANGER_KEY_CLAIMS", default_value = "20/1h")]
    pub rate_limit_stranger_key_claims: Rate,

    /// Messages that may wait in one device's to-device inbox.
    #[arg(long, env = "KITSULAN_TO_DEVICE_INBOX_MESSAGES", default_value_t = 10_000,
          value_parser = clap::value_parser!(u32).range(100..=1_000_000))]
    pub to_device_inbox_messages: u32,

    /// Bytes of ciphertext that may wait in one device's to-device inbox (default 64 MiB).
    #[arg(long, env = "KITSULAN_TO_DEVICE_INBOX_BYTES", default_value_t = 64 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024 * 1024..=1024 * 1024 * 1024))]
    pub to_device_inbox_bytes: u64,

    /// Messages one account may have waiting in one device's to-device inbox.
    #[arg(long, env = "KITSULAN_TO_DEVICE_PENDING_PER_SENDER", default_value_t = 500,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub to_device_pending_per_sender: u32,

    /// Percent of an inbox's messages and bytes that accounts sharing no conversation with the
    /// device's owner may fill together (0: they cannot send to it).
    #[arg(long, env = "KITSULAN_TO_DEVICE_STRANGER_PERCENT", default_value_t = 10,
          value_parser = clap::value_parser!(u8).range(0..=100))]
    pub to_device_stranger_percent: u8,

    /// New key backup versions one account may create (the first set-up and each rotation of
    /// the recovery key), as N/PERIOD.
    #[arg(long, env = "KITSULAN_RATE_LIMIT_BACKUP_VERSIONS", default_value = "10/1h")]
    pub rate_limit_backup_versions: Rate,
}

/// How to talk to the SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587).
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption (port 25; only for a server on the same host or a trusted LAN).
    None,
}

/// A secret setting: never printed, not even in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Whether the server announces itself on the LAN over mDNS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MdnsMode {
    /// On with SQLite (Lite), off with PostgreSQL (Pro).
    Auto,
    /// Always.
    On,
    /// Never.
    Off,
}

/// Which TURN relay calls use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TurnMode {
    /// The relay built into this binary (Lite).
    Embedded,
    /// Another TURN server (coturn) sharing `KITSULAN_TURN_SECRET`, at `KITSULAN_TURN_URLS`.
    External,
    /// None: calls connect directly or not at all.
    Off,
}

/// Voice channels through the selective forwarding unit built into this binary.
#[derive(Debug, Args)]
#[command(next_help_heading = "Voice channels (SFU)")]
pub struct SfuArgs {
    /// Run the SFU (`on`, the default) or not (`off`: voice channels cannot be joined).
    #[arg(id = "sfu", long = "sfu", env = "KITSULAN_SFU", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub enabled: bool,

    /// UDP address of the SFU (every participant's media, on this one port; open it in the
    /// firewall).
    #[arg(
        id = "sfu_listen",
        long = "sfu-listen",
        env = "KITSULAN_SFU_LISTEN",
        default_value = "0.0.0.0:3479"
    )]
    pub listen: SocketAddr,

    /// Address devices reach the SFU at. Unset: the listen address, or the host's outbound
    /// address when listening on all interfaces.
    #[arg(long = "sfu-advertise-ip", env = "KITSULAN_SFU_ADVERTISE_IP")]
    pub advertise_ip: Option<std::net::IpAddr>,

    /// People in one voice channel at most (2 to 500).
    #[arg(long = "sfu-room-max", env = "KITSULAN_SFU_ROOM_MAX", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(2..=500))]
    pub room_max: u32,

    /// Voices each person hears at once in a voice channel: the loudest, when more speak (1 to
    /// 16). The web app asks for 6.
    #[arg(long = "sfu-voices", env = "KITSULAN_SFU_VOICES", default_value_t = 6,
          value_parser = clap::value_parser!(u32).range(1..=16))]
    pub voices: u32,

    /// People in voice channels on this server at most, over all channels (1 to 10000).
    #[arg(long = "sfu-max-participants", env = "KITSULAN_SFU_MAX_PARTICIPANTS", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_participants: u32,

    /// Seconds after which someone whose connection went silent (no ICE check, no packet: the
    /// app was killed or the network went) is taken out of the voice channel (2 to 300).
    #[arg(long = "sfu-drop-after-seconds", env = "KITSULAN_SFU_DROP_AFTER_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(2..=300))]
    pub drop_after_seconds: u64,
}

/// TURN for calls: the embedded relay (default) or an external coturn.
#[derive(Debug, Args)]
#[command(next_help_heading = "Calls (TURN)")]
pub struct TurnArgs {
    /// Which TURN relay to hand out credentials for.
    #[arg(long = "turn", env = "KITSULAN_TURN", value_enum, default_value_t = TurnMode::Embedded)]
    pub mode: TurnMode,

    /// Secret shared with the relay (at least 16 characters). Unset with the embedded relay:
    /// generated once and kept in the data dir (`turn-secret`). Required for `external`.
    #[arg(long = "turn-secret", env = "KITSULAN_TURN_SECRET", hide_env_values = true)]
    pub secret: Option<Secret>,

    /// UDP address of the embedded relay (TURN and STUN).
    #[arg(
        id = "turn_listen",
        long = "turn-listen",
        env = "KITSULAN_TURN_LISTEN",
        default_value = "0.0.0.0:3478"
    )]
    pub listen: SocketAddr,

    /// Address peers reach relayed ports at. Unset: the listen address, or the host's outbound
    /// address when listening on all interfaces.
    #[arg(long = "turn-relay-ip", env = "KITSULAN_TURN_RELAY_IP")]
    pub relay_ip: Option<std::net::IpAddr>,

    /// UDP ports for relayed addresses (only even ones are used); open them in the firewall.
    #[arg(long = "turn-relay-ports", env = "KITSULAN_TURN_RELAY_PORTS", default_value = "49160-49359")]
    pub relay_ports: kitsulan_turn::PortRange,

    /// Relay allocations at once, at most (1 to 10000).
    #[arg(long = "turn-max-allocations", env = "KITSULAN_TURN_MAX_ALLOCATIONS", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_allocations: u32,

    /// Relay allocations one account may hold at once (1 to 10000): a device in a full call (6
    /// devices) needs one per other device; beyond it the relay answers 486.
    #[arg(long = "turn-max-allocations-per-account", env = "KITSULAN_TURN_MAX_ALLOCATIONS_PER_ACCOUNT",
          default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub max_allocations_per_account: u32,

    /// Let the embedded relay reach private (RFC 1918), CGNAT, link-local and unique-local
    /// peers, for LAN parties whose devices cannot reach each other directly. Off: only public
    /// peers and the relay's own ports (this host's other addresses are refused either way).
    #[arg(long = "turn-allow-lan-peers", env = "KITSULAN_TURN_ALLOW_LAN_PEERS", default_value_t = false,
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_lan_peers: bool,

    /// TURN/STUN URLs of the external relay, comma-separated (e.g.
    /// `turn:turn.example.org:3478?transport=udp,stun:turn.example.org:3478`).
    #[arg(long = "turn-urls", env = "KITSULAN_TURN_URLS", value_delimiter = ',')]
    pub urls: Vec<String>,

    /// How long TURN credentials can start new relay allocations, in seconds (they cannot be
    /// revoked). Calls outlive them: an allocation keeps working with the credentials it was
    /// made with, and clients fetch fresh ones before these run out.
    #[arg(long = "turn-credential-ttl-seconds", env = "KITSULAN_TURN_CREDENTIAL_TTL_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(60..=604_800))]
    pub credential_ttl_seconds: u64,

    /// Seconds a call rings before it ends unanswered.
    #[arg(long = "call-ring-seconds", env = "KITSULAN_CALL_RING_SECONDS", default_value_t = 45,
          value_parser = clap::value_parser!(u64).range(2..=600))]
    pub ring_seconds: u64,
}

impl TurnArgs {
    /// The one line saying what is wrong with the external relay's settings, if anything.
    pub fn check(&self) -> Result<(), String> {
        if self.mode != TurnMode::External {
            return Ok(());
        }
        if self.secret.is_none() {
            return Err(
                "invalid setting KITSULAN_TURN_SECRET (--turn-secret): required with KITSULAN_TURN=external"
                    .into(),
            );
        }
        if self.urls.iter().all(|u| u.trim().is_empty()) {
            return Err(
                "invalid setting KITSULAN_TURN_URLS (--turn-urls): required with KITSULAN_TURN=external"
                    .into(),
            );
        }
        if let Some(bad) =
            self.urls.iter().find(|u| !["turn:", "turns:", "stun:"].iter().any(|s| u.trim().starts_with(s)))
        {
            return Err(format!(
                "invalid setting KITSULAN_TURN_URLS (--turn-urls) {bad:?}: expected turn:, turns: or stun: URLs"
            ));
        }
        Ok(())
    }
}

/// Email delivery. Without `KITSULAN_SMTP_HOST`, email features are off.
#[derive(Debug, Args)]
#[command(next_help_heading = "Email (SMTP)")]
pub struct SmtpArgs {
    /// SMTP server host name. Unset: no email (sign-in by password only).
    #[arg(long = "smtp-host", env = "KITSULAN_SMTP_HOST")]
    pub host: Option<String>,

    /// SMTP port [default: 587 for starttls, 465 for tls, 25 for none].
    #[arg(long = "smtp-port", env = "KITSULAN_SMTP_PORT")]
    pub port: Option<u16>,

    /// Transport security.
    #[arg(long = "smtp-tls", env = "KITSULAN_SMTP_TLS", value_enum, default_value_t = SmtpTls::Starttls)]
    pub tls: SmtpTls,

    /// SMTP user name, if the server wants one.
    #[arg(long = "smtp-username", env = "KITSULAN_SMTP_USERNAME")]
    pub username: Option<String>,

    /// SMTP password.
    #[arg(long = "smtp-password", env = "KITSULAN_SMTP_PASSWORD", hide_env_values = true)]
    pub password: Option<Secret>,

    /// Sender address, e.g. `KitsuLAN <noreply@example.org>`.
    #[arg(long = "smtp-from", env = "KITSULAN_SMTP_FROM")]
    pub from: Option<String>,
}

/// Complete SMTP settings.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    /// Host name.
    pub host: String,
    /// Port, if not the default for `tls`.
    pub port: Option<u16>,
    /// Transport security.
    pub tls: SmtpTls,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Secret>,
    /// Sender address.
    pub from: String,
}

impl SmtpSettings {
    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        })
    }
}

impl SmtpArgs {
    /// The settings if SMTP is configured, or the one line saying what is missing.
    pub fn settings(&self) -> Result<Option<SmtpSettings>, String> {
        let Some(host) = self.host.as_ref().map(|h| h.trim()).filter(|h| !h.is_empty()) else {
            return Ok(None);
        };
        let from = self.from.as_ref().map(|f| f.trim()).filter(|f| !f.is_empty()).ok_or(
            "invalid setting KITSULAN_SMTP_FROM (--smtp-from): required when KITSULAN_SMTP_HOST is set",
        )?;
        if from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(format!(
                "invalid setting KITSULAN_SMTP_FROM (--smtp-from) {from:?}: not an email address"
            ));
        }
        Ok(Some(SmtpSettings {
            host: host.to_owned(),
            port: self.port,
            tls: self.tls,
            username: self.username.clone().filter(|u| !u.is_empty()),
            password: self.password.clone(),
            from: from.to_owned(),
        }))
    }
}

/// Where attachment blobs are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BlobsMode {
    /// Files in the data dir (`blobs/`), served by this binary through signed URLs (Lite).
    Disk,
    /// A bucket of any S3 API (`KITSULAN_S3_*`); clients use presigned URLs (Pro).
    S3,
}

/// Attachments: where their blobs live and how big they may be.
#[derive(Debug, Args)]
#[command(next_help_heading = "Attachments")]
pub struct AttachmentArgs {
    /// Where blobs are kept.
    #[arg(long = "blobs", env = "KITSULAN_BLOBS", value_enum, default_value_t = BlobsMode::Disk)]
    pub blobs: BlobsMode,

    /// Largest attachment, in bytes of ciphertext (default 100 MiB; at most 5 GiB, S3's limit
    /// for one upload).
    #[arg(long = "attachment-max-bytes", env = "KITSULAN_ATTACHMENT_MAX_BYTES", default_value_t = 100 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=5 * 1024 * 1024 * 1024))]
    pub max_bytes: u64,

    /// Bytes of attachments each account may keep at once (default 2 GiB).
    #[arg(long = "attachment-quota-bytes", env = "KITSULAN_ATTACHMENT_QUOTA_BYTES", default_value_t = 2 * 1024 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=(1 << 50)))]
    pub quota_bytes: u64,

    /// How long upload and download URLs work, in seconds.
    #[arg(long = "attachment-url-ttl-seconds", env = "KITSULAN_ATTACHMENT_URL_TTL_SECONDS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub url_ttl_seconds: u64,

    /// How long attachment download URLs work, in seconds (the web app uses one at once). Short,
    /// so a URL handed to someone who then leaves or is removed soon stops working.
    #[arg(long = "attachment-download-url-ttl-seconds", env = "KITSULAN_ATTACHMENT_DOWNLOAD_URL_TTL_SECONDS",
          default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub download_url_ttl_seconds: u64,

    /// Seconds an attachment may stay unsent (no message carries it) before it is deleted.
    #[arg(long = "attachment-orphan-grace-seconds", env = "KITSULAN_ATTACHMENT_ORPHAN_GRACE_SECONDS",
          default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(1..=2_592_000))]
    pub orphan_grace_seconds: u64,

    /// Seconds a stray blob (a file or object with no attachment row: an upload that raced its
    /// deletion, a presigned S3 URL used after its attachment went) stays before housekeeping
    /// deletes it. Blobs are listed at most once per this period.
    #[arg(long = "attachment-stray-grace-seconds", env = "KITSULAN_ATTACHMENT_STRAY_GRACE_SECONDS",
          default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=2_592_000))]
    pub stray_grace_seconds: u64,

    /// How often expired, deleted and unsent attachments are looked for, in seconds.
    #[arg(long = "attachment-sweep-seconds", env = "KITSULAN_ATTACHMENT_SWEEP_SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub sweep_seconds: u64,

    /// The attachment TTLs clients offer in their picker, in seconds, comma-separated (besides
    /// "none"; 1 s to 30 days each). Default: 1 hour, 1 day, 1 week.
    #[arg(long = "attachment-ttl-choices", env = "KITSULAN_ATTACHMENT_TTL_CHOICES", value_delimiter = ',',
          default_value = "3600,86400,604800", value_parser = clap::value_parser!(u32).range(1..=2_592_000))]
    pub ttl_choices: Vec<u32>,

    /// Largest avatar image a client may upload, in bytes (default 5 MiB); it is resized to
    /// 256x256 and stored as PNG.
    #[arg(long = "avatar-max-bytes", env = "KITSULAN_AVATAR_MAX_BYTES", default_value_t = 5 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024))]
    pub avatar_max_bytes: u64,

    /// S3 endpoint, e.g. `https://s3.eu-central-1.amazonaws.com` or `http://garage:3900`.
    #[arg(long = "s3-endpoint", env = "KITSULAN_S3_ENDPOINT")]
    pub s3_endpoint: Option<String>,

    /// S3 region (what the store expects; Garage's default is `garage`).
    #[arg(long = "s3-region", env = "KITSULAN_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,

    /// S3 bucket (made at start-up when it does not exist).
    #[arg(long = "s3-bucket", env = "KITSULAN_S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// S3 access key id.
    #[arg(long = "s3-access-key-id", env = "KITSULAN_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,

    /// S3 secret access key.
    #[arg(long = "s3-secret-access-key", env = "KITSULAN_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<Secret>,

    /// Path-style S3 URLs (`host/bucket/key`), as Garage, MinIO and most self-hosted stores
    /// want; `false` for virtual-hosted style (`bucket.host/key`).
    #[arg(long = "s3-path-style", env = "KITSULAN_S3_PATH_STYLE", default_value_t = true, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new())]
    pub s3_path_style: bool,
}

impl AttachmentArgs {
    /// The S3 settings with `KITSULAN_BLOBS=s3`, or the one line saying what is missing.
    pub fn s3(&self) -> Result<Option<crate::blobs::S3Settings>, String> {
        if self.blobs != BlobsMode::S3 {
            return Ok(None);
        }
        let required =
            |value: Option<&str>, name: &str, flag: &str| {
                value.map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned).ok_or_else(|| {
                    format!("invalid setting {name} (--{flag}): required with KITSULAN_BLOBS=s3")
                })
            };
        let endpoint = required(self.s3_endpoint.as_deref(), "KITSULAN_S3_ENDPOINT", "s3-endpoint")?;
        if !(endpoint.starts_with("https://") || endpoint.starts_with("http://")) {
            return Err(format!(
                "invalid setting KITSULAN_S3_ENDPOINT (--s3-endpoint) {endpoint:?}: expected an http:// or https:// URL"
            ));
        }
        let bucket = required(self.s3_bucket.as_deref(), "KITSULAN_S3_BUCKET", "s3-bucket")?;
        let access_key_id =
            required(self.s3_access_key_id.as_deref(), "KITSULAN_S3_ACCESS_KEY_ID", "s3-access-key-id")?;
        let secret = required(
            self.s3_secret_access_key.as_ref().map(Secret::expose),
            "KITSULAN_S3_SECRET_ACCESS_KEY",
            "s3-secret-access-key",
        )?;
        Ok(Some(crate::blobs::S3Settings {
            endpoint,
            region: self.s3_region.trim().to_owned(),
            bucket,
            access_key_id,
            secret_access_key: Secret(secret),
            path_style: self.s3_path_style,
        }))
    }
}

/// Caps on groups, so one account cannot flood others with requests.
#[derive(Debug, Args)]
#[command(next_help_heading = "Conversations")]
pub struct ConversationArgs {
    /// Members one group holds at most, its owner included.
    #[arg(long, env = "KITSULAN_GROUP_MAX_MEMBERS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(2..=10_000))]
    pub group_max_members: u32,

    /// Groups one account may create, as N/PERIOD (s, m, h, d).
    #[arg(long, env = "KITSULAN_RATE_LIMIT_GROUP_CREATIONS", default_value = "10/1h")]
    pub rate_limit_group_creations: Rate,

    /// Delete the content of every message older than this many days, in every conversation
    /// (E2EE ciphertext and cloud content; a tombstone stays). Empty: kept until deleted.
    #[arg(long, env = "KITSULAN_RETENTION_DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub retention_days: Option<u32>,

    /// What happens to the messages of an account its owner deletes: `anonymize` keeps them
    /// (shown as from a deleted account), `delete` deletes their ciphertext or content.
    #[arg(long, env = "KITSULAN_DELETED_ACCOUNT_MESSAGES", value_enum, default_value_t = DeletedAccountMessages::Anonymize)]
    pub deleted_account_messages: DeletedAccountMessages,
}

/// What happens to a deleted account's messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeletedAccountMessages {
    /// Kept, from an account that no longer exists.
    Anonymize,
    /// Their ciphertext or content is deleted (tombstones stay).
    Delete,
}

/// How the main port speaks HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TlsMode {
    /// Plain HTTP only (behind a reverse proxy that does TLS, or on localhost).
    Off,
    /// The admin's certificate and key (`KITSULAN_TLS_CERT`, `KITSULAN_TLS_KEY`).
    Files,
    /// A CA made at first start in the data dir, and a server certificate it signs for this
    /// host's names and addresses: for a LAN with no internet.
    Local,
    /// A certificate from an ACME CA (Let's Encrypt) for a public DNS name.
    Acme,
}

/// A name the local CA's server certificate is made for: a DNS name or an IP address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TlsName {
    Dns(String),
    Ip(std::net::IpAddr),
}

impl std::fmt::Display for TlsName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dns(name) => f.write_str(name),
            Self::Ip(ip) => write!(f, "{ip}"),
        }
    }
}

impl std::str::FromStr for TlsName {
    type Err = String;

    /// An IP address, or a DNS name of letters, digits and hyphens (no wildcards), in lower case.
    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if let Ok(ip) = raw.trim_start_matches('[').trim_end_matches(']').parse() {
            return Ok(Self::Ip(ip));
        }
        let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
        let label_ok = |label: &str| {
            (1..=63).contains(&label.len())
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
            return Err(format!("{raw:?} is not a DNS name or IP address"));
        }
        Ok(Self::Dns(name))
    }
}

/// HTTPS on the main port (one port serves HTTPS and, for loopback clients, plain HTTP).
#[derive(Debug, Args)]
#[command(next_help_heading = "HTTPS")]
pub struct TlsArgs {
    /// `off`, `files` (your certificate), `local` (a local CA made in the data dir, for a LAN)
    /// or `acme` (Let's Encrypt or another ACME CA).
    #[arg(id = "tls_mode", long = "tls", env = "KITSULAN_TLS", value_enum, default_value_t = TlsMode::Off)]
    pub mode: TlsMode,

    /// With `files`: the certificate chain, PEM (the server's certificate first).
    #[arg(id = "tls_cert", long = "tls-cert", env = "KITSULAN_TLS_CERT")]
    pub cert: Option<PathBuf>,

    /// With `files`: the certificate's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    #[arg(id = "tls_key", long = "tls-key", env = "KITSULAN_TLS_KEY")]
    pub key: Option<PathBuf>,

    /// With `local`: more DNS names and IP addresses for the server certificate, comma-separated,
    /// besides the defaults (`<host name>.local`, `kitsulan.local`, `localhost` and every
    /// address of this machine's interfaces).
    #[arg(id = "tls_names", long = "tls-names", env = "KITSULAN_TLS_NAMES", value_delimiter = ',')]
    pub names: Vec<TlsName>,

    /// An extra plain-HTTP address, e.g. `0.0.0.0:80`, that only redirects to HTTPS on
    /// KITSULAN_LISTEN (and answers ACME challenges and `/ca.crt`). Needs KITSULAN_TLS.
    #[arg(id = "http_redirect_listen", long = "http-redirect-listen", env = "KITSULAN_HTTP_REDIRECT_LISTEN")]
    pub redirect_listen: Option<SocketAddr>,
}

impl TlsArgs {
    /// Settings that are only invalid together.
    pub fn check(&self) -> Result<(), String> {
        let files = self.mode == TlsMode::Files;
        for (value, name, flag) in
            [(&self.cert, "KITSULAN_TLS_CERT", "tls-cert"), (&self.key, "KITSULAN_TLS_KEY", "tls-key")]
        {
            match (files, value) {
                (true, None) => {
                    return Err(format!(
                        "invalid setting {name} (--{flag}): required with KITSULAN_TLS=files"
                    ));
                }
                (false, Some(_)) => {
                    return Err(format!(
                        "invalid setting {name} (--{flag}): only used with KITSULAN_TLS=files"
                    ));
                }
                _ => {}
            }
        }
        if self.mode != TlsMode::Local && !self.names.is_empty() {
            return Err(
                "invalid setting KITSULAN_TLS_NAMES (--tls-names): only used with KITSULAN_TLS=local".into(),
            );
        }
        if self.mode == TlsMode::Off && self.redirect_listen.is_some() {
            return Err("invalid setting KITSULAN_HTTP_REDIRECT_LISTEN (--http-redirect-listen): \
                        there is no HTTPS to redirect to with KITSULAN_TLS=off"
                .into());
        }
        Ok(())
    }
}

/// Web Push: a content-free "new message" to devices whose app is closed, through the
/// browsers' push services on the internet (docs/admin.md, "Push notifications").
#[derive(Debug, Args)]
#[command(next_help_heading = "Push notifications")]
pub struct PushArgs {
    /// Send push notifications: `on` or `off`. They need the internet (the browsers' push
    /// services); without it the app notifies only while it is open.
    #[arg(long = "push", env = "KITSULAN_PUSH", default_value = "on", action = clap::ArgAction::Set,
          value_parser = parse_on_off)]
    pub enabled: bool,

    /// How push services can reach the admin (VAPID `sub`): a `mailto:` or `https:` URL.
    #[arg(long = "push-contact", env = "KITSULAN_PUSH_CONTACT", default_value = "mailto:admin@kitsulan.invalid",
          value_parser = parse_push_contact)]
    pub contact: String,

    /// At most one push per device per this many seconds; messages in between are merged
    /// into the next push.
    #[arg(long = "push-min-interval-seconds", env = "KITSULAN_PUSH_MIN_INTERVAL_SECONDS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub min_interval_seconds: u64,

    /// Origins (`https://host[:port]`, comma-separated) push endpoints may use although they
    /// are on a private network or another port than 443: a push service on your LAN. Never
    /// needed for browsers' own push services. Still https only.
    #[arg(long = "push-allowed-origins", env = "KITSULAN_PUSH_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// A PEM file of extra CA certificates to trust for push endpoints (besides the usual
    /// public ones): for a push service with a private CA.
    #[arg(long = "push-extra-roots", env = "KITSULAN_PUSH_EXTRA_ROOTS")]
    pub extra_roots: Option<PathBuf>,
}

fn parse_on_off(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "on" | "true" | "1" | "yes" => Ok(true),
        "off" | "false" | "0" | "no" => Ok(false),
        _ => Err("expected on or off".into()),
    }
}

fn parse_push_contact(raw: &str) -> Result<String, String> {
    let contact = raw.trim();
    if (contact.starts_with("mailto:") || contact.starts_with("https://"))
        && contact.len() > 8
        && contact.len() <= 256
    {
        Ok(contact.to_owned())
    } else {
        Err("expected a mailto: or https: URL (at most 256 characters)".into())
    }
}

impl ServeArgs {
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

fn parse_log_filter(raw: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::try_new(raw)
        .map(|_| raw.to_owned())
        .map_err(|e| format!("not a valid log filter ({e})"))
}

/// A host label for `.local` (letters, digits and inner hyphens, at most 63), given with or
/// without `.local`; lowercased, without the suffix.
pub fn parse_mdns_hostname(raw: &str) -> Result<String, String> {
    let lower = raw.trim().to_ascii_lowercase();
    let label = lower.trim_end_matches('.').trim_end_matches(".local");
    let valid = !label.is_empty()
        && label.len() <= 63
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !label.starts_with('-')
        && !label.ends_with('-');
    if valid {
        Ok(label.to_owned())
    } else {
        Err("must be one DNS label: letters, digits and inner hyphens, at most 63 (e.g. `kitsulan`)".into())
    }
}

fn parse_server_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("must not be empty".into());
    }
    if name.chars().count() > 64 {
        return Err("must be at most 64 characters".into());
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(name.to_owned())
}

/// Let's Encrypt's production directory, the default ACME CA.
pub const LETS_ENCRYPT_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// HTTPS certificates from an ACME CA (`KITSULAN_TLS=acme`): Let's Encrypt by default, or any
/// RFC 8555 server. Validation is http-01, so port 80 of every name must reach this server.
#[derive(Debug, Args)]
#[command(next_help_heading = "HTTPS certificates by ACME (Let's Encrypt)")]
pub struct AcmeArgs {
    /// Public DNS names the certificate is for, comma-separated (e.g. `chat.example.org`).
    /// Required with KITSULAN_TLS=acme.
    #[arg(long = "acme-domains", env = "KITSULAN_ACME_DOMAINS", value_delimiter = ',', value_parser = parse_dns_name)]
    pub domains: Vec<String>,

    /// The ACME CA's directory URL (https). The default is Let's Encrypt's production CA; use
    /// `https://acme-staging-v02.api.letsencrypt.org/directory` to try a setup out.
    #[arg(long = "acme-directory", env = "KITSULAN_ACME_DIRECTORY", default_value = LETS_ENCRYPT_DIRECTORY,
          value_parser = parse_acme_directory)]
    pub directory: String,

    /// Contact email given to the CA for its notices about the account. Optional.
    #[arg(long = "acme-email", env = "KITSULAN_ACME_EMAIL", value_parser = parse_acme_email)]
    pub email: Option<String>,

    /// A PEM file of extra root certificates to trust for the CA's own HTTPS API (a private or
    /// test CA such as pebble). The usual public roots are always trusted.
    #[arg(long = "acme-ca-roots", env = "KITSULAN_ACME_CA_ROOTS")]
    pub ca_roots: Option<PathBuf>,
}

/// Complete ACME settings.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// DNS names for the certificate, lowercase, no duplicates.
    pub domains: Vec<String>,
    /// Directory URL of the CA.
    pub directory: String,
    /// Contact email, if any.
    pub email: Option<String>,
    /// Extra roots to trust for the CA's API.
    pub ca_roots: Option<PathBuf>,
}

/// The most names one certificate may carry (Let's Encrypt's limit).
pub const ACME_MAX_DOMAINS: usize = 100;

impl AcmeArgs {
    /// The settings for ACME mode, or the one line saying what is missing.
    pub fn settings(&self) -> Result<AcmeSettings, String> {
        let mut domains: Vec<String> = Vec::new();
        for name in &self.domains {
            if !domains.contains(name) {
                domains.push(name.clone());
            }
        }
        if domains.is_empty() {
            return Err(
                "invalid setting KITSULAN_ACME_DOMAINS (--acme-domains): required with KITSULAN_TLS=acme \
                        (the public DNS names of this server)"
                    .into(),
            );
        }
        if domains.len() > ACME_MAX_DOMAINS {
            return Err(format!(
                "invalid setting KITSULAN_ACME_DOMAINS (--acme-domains): {} names, at most {ACME_MAX_DOMAINS}",
                domains.len()
            ));
        }
        if let Some(path) = &self.ca_roots
            && !path.is_file()
        {
            return Err(format!(
                "invalid setting KITSULAN_ACME_CA_ROOTS (--acme-ca-roots) {:?}: no such file",
                path.display().to_string()
            ));
        }
        Ok(AcmeSettings {
            domains,
            directory: self.directory.clone(),
            email: self.email.clone(),
            ca_roots: self.ca_roots.clone(),
        })
    }
}

/// A DNS name a public CA can validate over http-01: letters, digits and hyphens in labels of
/// at most 63, two labels at least, no wildcard (http-01 cannot prove one), no IP address.
fn parse_dns_name(raw: &str) -> Result<String, String> {
    let name = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err("expected DNS names such as chat.example.org".into());
    }
    if name.starts_with("*.") {
        return Err("wildcard names need dns-01 validation, which is not supported".into());
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err("an IP address; ACME needs a DNS name".into());
    }
    let labels: Vec<&str> = name.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err("expected DNS names such as chat.example.org".into());
    }
    Ok(name)
}

fn parse_acme_directory(raw: &str) -> Result<String, String> {
    let url = raw.trim();
    match url.strip_prefix("https://") {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && url.len() <= 2048
                && !url.chars().any(|c| c.is_whitespace() || c.is_control()) =>
        {
            Ok(url.to_owned())
        }
        _ => Err("expected the CA's https:// directory URL".into()),
    }
}

fn parse_acme_email(raw: &str) -> Result<String, String> {
    let email = raw.trim();
    email.parse::<lettre::Address>().map(|_| email.to_owned()).map_err(|_| "not an email address".to_owned())
}

/// Why the settings could not be read.
#[derive(Debug)]
pub enum ConfigError {
    /// `--help` or `--version` was asked for, or no subcommand given: clap prints it.
    Clap(clap::Error),
    /// One setting is invalid: the message is one line that names it.
    Invalid(String),
}

/// Reads `.env` (if present), then parses flags and environment variables.
pub fn load() -> Result<Cli, ConfigError> {
    load_from(std::env::args_os())
}

/// As [`load`], with explicit arguments.
pub fn load_from<I, T>(args: I) -> Result<Cli, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    // `.env` never overrides variables already set, which gives flags > env > `.env`.
    match dotenvy::from_path(".env") {
        Ok(()) => {}
        Err(dotenvy::Error::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ConfigError::Invalid(format!("invalid .env file: {e}"))),
    }
    let cli = Cli::try_parse_from(args).map_err(|e| match e.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            ConfigError::Invalid(describe_invalid_setting(&e))
        }
        _ => ConfigError::Clap(e),
    })?;
    // Settings that are only invalid together.
    if let Command::Serve(serve) = &cli.command {
        serve.smtp.settings().map_err(ConfigError::Invalid)?;
        serve.turn.check().map_err(ConfigError::Invalid)?;
        serve.tls.check().map_err(ConfigError::Invalid)?;
        if serve.tls.mode == TlsMode::Acme {
            serve.acme.settings().map_err(ConfigError::Invalid)?;
        }
    }
    Ok(cli)
}

/// Turns clap's error into one line naming the setting by its environment variable and flag.
fn describe_invalid_setting(err: &clap::Error) -> String {
    let arg = match err.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    let long = arg.trim_start_matches("--").split([' ', '=']).next().unwrap_or_default().to_owned();
    let cmd = Cli::command();
    let mut env = None;
    let mut secret = false;
    let mut visit = vec![&cmd];
    while let Some(c) = visit.pop() {
        for a in c.get_arguments() {
            if a.get_long() == Some(long.as_str()) {
                env = a.get_env().map(|e| e.to_string_lossy().into_owned());
                secret = a.is_hide_env_values_set();
            }
        }
        visit.extend(c.get_subcommands());
    }
    let reason = match err.source() {
        Some(source) => source.to_string(),
        None => match err.kind() {
            ErrorKind::InvalidValue => match err.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(valid)) => format!("expected one of: {}", valid.join(", ")),
                _ => "not an accepted value".to_owned(),
            },
            _ => "not an accepted value".to_owned(),
        },
    };
    let value = match (secret, err.get(ContextKind::InvalidValue)) {
        (false, Some(ContextValue::String(v))) => format!(" {v:?}"),
        _ => String::new(),
    };
    match env {
        Some(env) => format!("invalid setting {env} (--{long}){value}: {reason}"),
        None => format!("invalid setting --{long}{value}: {reason}"),
    }
}

use std::error::Error as _;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn mdns_host_names_are_single_labels() {
        assert_eq!(parse_mdns_hostname("kitsulan").unwrap(), "kitsulan");
        assert_eq!(parse_mdns_hostname("Party-Box.local.").unwrap(), "party-box");
        assert_eq!(parse_mdns_hostname("party.local").unwrap(), "party");
        for bad in ["", ".local", "-x", "x-", "a.b", "a b", "kitsü", &"a".repeat(64)] {
            assert!(parse_mdns_hostname(bad).is_err(), "{bad:?}");
        }
    }

    /// `.env.example` is where admins learn what they can set: every environment variable the
    /// binary reads (global and `serve` settings) must be in it, set or commented out.
    #[test]
    fn env_example_lists_every_setting() {
        let example = include_str!("../../.env.example");
        let listed: std::collections::HashSet<&str> = example
            .lines()
            .filter_map(|line| line.trim_start_matches('#').split_once('='))
            .map(|(name, _)| name.trim())
            .collect();
        let cli = Cli::command();
        let serve = cli.find_subcommand("serve").expect("a serve command");
        let missing: Vec<String> = cli
            .get_arguments()
            .chain(serve.get_arguments())
            .filter_map(|arg| arg.get_env())
            .map(|env| env.to_string_lossy().into_owned())
            .filter(|env| !listed.contains(env.as_str()))
            .collect();
        assert!(missing.is_empty(), ".env.example does not list {missing:?}");
    }

    #[test]
    fn invalid_setting_names_env_var_and_flag() {
        let Err(ConfigError::Invalid(line)) = load_from(["kitsulan", "serve", "--listen", "nope"]) else {
            panic!("expected an invalid-setting error");
        };
        assert!(line.starts_with("invalid setting KITSULAN_LISTEN (--listen) \"nope\""), "{line}");
        assert!(!line.contains('\n'));
    }

    #[test]
    fn invalid_database_url_never_echoes_it() {
        let Err(ConfigError::Invalid(line)) =
            load_from(["kitsulan", "migrate", "--database-url", "mysql://root:hunter2@x/db"])
        else {
            panic!("expected an invalid-setting error");
        };
        assert!(line.starts_with("invalid setting DATABASE_URL (--database-url)"), "{line}");
        assert!(!line.contains("hunter2"), "{line}");
    }

    #[test]
    fn out_of_range_numbers_are_refused() {
        let Err(ConfigError::Invalid(line)) = load_from(["kitsulan", "serve", "--db-max-connections", "0"])
        else {
            panic!("expected an invalid-setting error");
        };
        assert!(line.contains("KITSULAN_DB_MAX_CONNECTIONS"), "{line}");
    }

    #[test]
    fn rates_parse() {
        let cases = [
            ("10/1h", Some((10, 3600))),
            ("30/10m", Some((30, 600))),
            ("5/30s", Some((5, 30))),
            ("100/d", Some((100, 86_400))),
            (" 3 / 1m ", Some((3, 60))),
            ("0/1h", None),
            ("10/0m", None),
            ("10", None),
            ("ten/1h", None),
            ("10/1w", None),
            ("10/31d", None),
        ];
        for (raw, want) in cases {
            let got = raw.parse::<Rate>().ok().map(|l| (l.count, l.period.as_secs()));
            assert_eq!(got, want, "{raw:?}");
        }
    }

    #[test]
    fn acme_settings_are_checked() {
        let acme =
            |args: &[&str]| match load_from(["kitsulan", "serve"].into_iter().chain(args.iter().copied())) {
                Ok(Cli { command: Command::Serve(serve), .. }) => serve.acme.settings(),
                Ok(_) => panic!("not serve"),
                Err(ConfigError::Invalid(line)) => Err(line),
                Err(e) => panic!("{e:?}"),
            };
        let ok = acme(&["--acme-domains", "Chat.Example.org,www.example.org,chat.example.org."]).unwrap();
        assert_eq!(ok.domains, ["chat.example.org", "www.example.org"]);
        assert_eq!(ok.directory, LETS_ENCRYPT_DIRECTORY);
        assert_eq!(ok.email, None);
        // With KITSULAN_TLS=acme the names are required at start, in one line.
        let line = acme(&["--tls", "acme"]).unwrap_err();
        assert!(
            line.starts_with("invalid setting KITSULAN_ACME_DOMAINS (--acme-domains): required"),
            "{line}"
        );
        assert!(!line.contains('\n'), "{line}");
        let line = acme(&[]).unwrap_err();
        assert!(
            line.starts_with("invalid setting KITSULAN_ACME_DOMAINS (--acme-domains): required"),
            "{line}"
        );
        for bad in
            ["*.example.org", "192.168.1.2", "localhost", "a..b", "-a.example.org", "a b.org", "a_b.org"]
        {
            let line = acme(&[&format!("--acme-domains={bad}")]).unwrap_err();
            assert!(
                line.starts_with("invalid setting KITSULAN_ACME_DOMAINS (--acme-domains)"),
                "{bad}: {line}"
            );
            assert!(!line.contains('\n'), "{line}");
        }
        let many: Vec<String> = (0..=ACME_MAX_DOMAINS).map(|i| format!("n{i}.example.org")).collect();
        let line = acme(&["--acme-domains", &many.join(",")]).unwrap_err();
        assert!(line.contains("at most 100"), "{line}");
        for bad in ["http://ca.example/dir", "ca.example", "https://", "https:///dir"] {
            let line = acme(&["--acme-domains", "a.example.org", "--acme-directory", bad]).unwrap_err();
            assert!(line.starts_with("invalid setting KITSULAN_ACME_DIRECTORY (--acme-directory)"), "{line}");
        }
        let line = acme(&["--acme-domains", "a.example.org", "--acme-email", "not an address"]).unwrap_err();
        assert!(line.starts_with("invalid setting KITSULAN_ACME_EMAIL (--acme-email)"), "{line}");
        let line = acme(&["--acme-domains", "a.example.org", "--acme-ca-roots", "/nonexistent/roots.pem"])
            .unwrap_err();
        assert!(line.starts_with("invalid setting KITSULAN_ACME_CA_ROOTS (--acme-ca-roots)"), "{line}");
        let ok = acme(&["--acme-domains", "a.example.org", "--acme-email", "admin@example.org"]).unwrap();
        assert_eq!(ok.email.as_deref(), Some("admin@example.org"));
    }

    #[test]
    fn tls_settings_parse_and_are_checked_together() {
        let tls =
            |args: &[&str]| match load_from(["kitsulan", "serve"].into_iter().chain(args.iter().copied())) {
                Ok(Cli { command: Command::Serve(serve), .. }) => Ok(serve.tls),
                Ok(_) => panic!("not serve"),
                Err(ConfigError::Invalid(line)) => Err(line),
                Err(e) => panic!("{e:?}"),
            };
        assert_eq!(tls(&[]).unwrap().mode, TlsMode::Off);
        let local = tls(&["--tls", "local", "--tls-names", "Party.LAN.,10.0.0.5,[fe80::1]"]).unwrap();
        assert_eq!(
            local.names,
            vec![
                TlsName::Dns("party.lan".into()),
                TlsName::Ip("10.0.0.5".parse().unwrap()),
                TlsName::Ip("fe80::1".parse().unwrap())
            ]
        );
        let refused = [
            (&["--tls", "files"][..], "KITSULAN_TLS_CERT"),
            (&["--tls", "files", "--tls-cert", "c.pem"][..], "KITSULAN_TLS_KEY"),
            (&["--tls-cert", "c.pem"][..], "KITSULAN_TLS_CERT"),
            (&["--tls", "local", "--tls-names", "*.example.org"][..], "KITSULAN_TLS_NAMES"),
            (&["--tls", "local", "--tls-names=-bad.lan"][..], "KITSULAN_TLS_NAMES"),
            (&["--tls-names", "party.lan"][..], "KITSULAN_TLS_NAMES"),
            (&["--http-redirect-listen", "0.0.0.0:80"][..], "KITSULAN_HTTP_REDIRECT_LISTEN"),
            (&["--tls", "maybe"][..], "KITSULAN_TLS"),
        ];
        for (args, setting) in refused {
            let line = tls(args).unwrap_err();
            assert!(line.starts_with(&format!("invalid setting {setting} ")), "{args:?}: {line}");
            assert!(!line.contains('\n'));
        }
    }

    #[test]
    fn attachment_ttl_choices_default_parse_and_range() {
        let ttl_choices =
            |args: &[&str]| match load_from(["kitsulan", "serve"].into_iter().chain(args.iter().copied())) {
                Ok(Cli { command: Command::Serve(serve), .. }) => Ok(serve.attachments.ttl_choices),
                Ok(_) => panic!("not serve"),
                Err(ConfigError::Invalid(line)) => Err(line),
                Err(e) => panic!("{e:?}"),
            };
        assert_eq!(ttl_choices(&[]), Ok(vec![3600, 86_400, 604_800]));
        assert_eq!(ttl_choices(&["--attachment-ttl-choices", "60,3600"]), Ok(vec![60, 3600]));
        let line = ttl_choices(&["--attachment-ttl-choices", "60,0"]).unwrap_err();
        assert!(line.contains("KITSULAN_ATTACHMENT_TTL_CHOICES"), "{line}");
        assert!(ttl_choices(&["--attachment-ttl-choices", "2592001"]).is_err());
    }
}
