//! `kitsulan admin`: user and device administration from the shell, on the same database as
//! `serve` (SQLite in WAL mode and PostgreSQL both allow it while the server runs). Output is
//! a readable table or, with `--json`, JSON for scripts.

use std::io::{BufRead as _, Write as _};
use std::sync::Arc;

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use super::open_store;
use crate::bus::{Bus, InProcessBus};
use crate::config::{AdminArgs, AdminCommand, DeviceCommand, GlobalArgs, UserCommand};
use crate::ids::DeviceId;
use crate::services::{AuthPolicy, BlobSetup, Hub, ServerInfo, Services, StorageBackend};
use crate::store::{AccountRecord, DeviceRecord};

pub async fn run(global: &GlobalArgs, args: &AdminArgs) -> anyhow::Result<()> {
    // Backup and restore work on files, not through the services (restore has no database yet).
    match &args.command {
        AdminCommand::Backup(backup) => return super::backup::backup(global, backup).await,
        AdminCommand::Restore(restore) => return super::backup::restore(global, restore).await,
        _ => {}
    }
    let store = open_store(global).await?;
    store.migrate().await?;
    let instance = store.instance().await?;
    let info = ServerInfo {
        name: "KitsuLAN".into(),
        version: env!("CARGO_PKG_VERSION"),
        instance_id: instance.id,
        database: store.backend(),
        storage: StorageBackend::Local,
        attachment_ttl_choices: Vec::new(),
        local_ca_sha256: None,
        retention_days: None,
        delete_messages_with_account: false,
    };
    // Connections live in `serve`; what the admin changes reaches them through the database.
    let hub = Hub::new();
    let bus: Arc<dyn Bus> = Arc::new(InProcessBus::new(hub.clone()));
    let services = Arc::new(Services::new(
        store.clone(),
        info,
        AuthPolicy::default(),
        None,
        (bus, hub),
        None,
        BlobSetup::none(),
    ));
    let result = dispatch(&services, &args.command).await;
    store.close().await;
    result
}

async fn dispatch(services: &Services, command: &AdminCommand) -> anyhow::Result<()> {
    let admin = &services.admin;
    match command {
        AdminCommand::User(UserCommand::Create { username, display_name, email, password_stdin, json }) => {
            let password = if *password_stdin { Some(read_password()?) } else { None };
            let created = admin
                .create_user(username, display_name.as_deref(), email.as_deref(), password.as_deref())
                .await?;
            if *json {
                let mut value = account_json(&created.account);
                if let Some(password) = &created.generated_password {
                    value["password"] = json!(password);
                }
                print_json(&value);
            } else {
                let mut text = format!("Created {} ({}).\n", created.account.username, created.account.id);
                if let Some(password) = &created.generated_password {
                    text.push_str(&format!(
                        "Password: {password}\n(Hand it over privately; they can change it.)\n"
                    ));
                }
                print(&text);
            }
        }
        AdminCommand::User(UserCommand::List { json }) => {
            let accounts = admin.list_users().await?;
            if *json {
                print_json(&Value::Array(accounts.iter().map(account_json).collect()));
            } else {
                let rows = accounts
                    .iter()
                    .map(|a| {
                        vec![
                            a.username.clone(),
                            a.display_name.clone(),
                            match (&a.email, a.email_verified) {
                                (Some(e), true) => e.clone(),
                                (Some(e), false) => format!("{e} (unverified)"),
                                (None, _) => "-".into(),
                            },
                            yes_no(a.totp_secret.is_some()),
                            yes_no(a.disabled),
                            a.id.to_string(),
                        ]
                    })
                    .collect();
                print(&table(&["USERNAME", "DISPLAY NAME", "EMAIL", "TOTP", "DISABLED", "ID"], rows));
            }
        }
        AdminCommand::User(UserCommand::Import { file, json }) => import(services, file, *json).await?,
        AdminCommand::User(UserCommand::ResetPassword { username, json }) => {
            let (account, code) = admin.reset_password(username).await?;
            if *json {
                print_json(&json!({
                    "username": account.username, "code": code.code, "expires_at_ms": code.expires_at_ms,
                }));
            } else {
                print(&format!(
                    "One-time sign-in code for {} (works once, valid for 24 hours):\n\n    {}\n\n\
                     They sign in with \"use a one-time code\" (username + this code), then set a new\n\
                     password within 15 minutes. An enrolled authenticator is still needed; if they\n\
                     lost it, run `kitsulan admin user remove-totp {}` too.\n",
                    account.username, code.code, account.username
                ));
            }
        }
        AdminCommand::User(UserCommand::Disable { username }) => {
            let account = admin.set_disabled(username, true).await?;
            print(&format!("Disabled {}: no sign-in, and its sessions stopped working.\n", account.username));
        }
        AdminCommand::User(UserCommand::Enable { username }) => {
            let account = admin.set_disabled(username, false).await?;
            print(&format!("Enabled {}.\n", account.username));
        }
        AdminCommand::User(UserCommand::RemoveTotp { username }) => {
            let account = admin.remove_totp(username).await?;
            print(&format!("Removed TOTP from {}: the password alone signs in now.\n", account.username));
        }
        AdminCommand::Device(DeviceCommand::List { username, json }) => {
            let (account, devices) = admin.list_devices(username).await?;
            if *json {
                print_json(&Value::Array(devices.iter().map(device_json).collect()));
            } else {
                let rows = devices
                    .iter()
                    .map(|d| {
                        vec![d.id.to_string(), d.name.clone(), time(d.created_at_ms), time(d.last_seen_at_ms)]
                    })
                    .collect();
                print(&format!("Devices of {}:\n", account.username));
                print(&table(&["ID", "NAME", "SIGNED IN", "LAST SEEN"], rows));
            }
        }
        AdminCommand::Device(DeviceCommand::Revoke { device_id }) => {
            let id: DeviceId =
                device_id.parse().with_context(|| format!("{device_id:?} is not a device id"))?;
            let device = admin.revoke_device(id).await?;
            print(&format!("Signed out {} ({}).\n", device.name, device.id));
        }
        AdminCommand::Backup(_) | AdminCommand::Restore(_) => {
            bail!("backup and restore run before the services start")
        }
    }
    Ok(())
}

/// `user import`: validates every line first, so a bad file creates nobody.
async fn import(services: &Services, file: &std::path::Path, json: bool) -> anyhow::Result<()> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?
    };
    let mut people = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if number == 0 && fields.first().is_some_and(|f| f.eq_ignore_ascii_case("username")) {
            continue;
        }
        if fields.len() > 3 {
            bail!(
                "line {}: expected username[,display_name[,email]], got {} fields",
                number + 1,
                fields.len()
            );
        }
        let field = |i: usize| fields.get(i).copied().filter(|f| !f.is_empty());
        let username = crate::services::names::Username::parse(field(0).unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("line {}: {e}", number + 1))?;
        if let Some(name) = field(1) {
            crate::services::names::DisplayName::parse(name)
                .map_err(|e| anyhow::anyhow!("line {}: {e}", number + 1))?;
        }
        if let Some(email) = field(2) {
            crate::services::names::Email::parse(email)
                .map_err(|e| anyhow::anyhow!("line {}: {e}", number + 1))?;
        }
        if people.iter().any(|(u, _, _): &(String, _, _)| u == username.as_str()) {
            bail!("line {}: {} appears twice", number + 1, username.as_str());
        }
        people.push((username.as_str().to_owned(), field(1).map(str::to_owned), field(2).map(str::to_owned)));
    }
    let existing: Vec<String> = services.admin.list_users().await?.into_iter().map(|a| a.username).collect();
    let taken: Vec<&str> =
        people.iter().map(|(u, _, _)| u.as_str()).filter(|u| existing.iter().any(|e| e == u)).collect();
    if !taken.is_empty() {
        bail!("these usernames are taken already, nothing was imported: {}", taken.join(", "));
    }

    let progress = indicatif::ProgressBar::new(people.len() as u64);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} accounts {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut created = Vec::new();
    for (username, display_name, email) in &people {
        progress.set_message(username.clone());
        let account = services
            .admin
            .create_user(username, display_name.as_deref(), email.as_deref(), None)
            .await
            .with_context(|| format!("creating {username} (the {} before it were created)", created.len()))?;
        created.push(account);
        progress.inc(1);
    }
    progress.finish_and_clear();
    if json {
        let list = created
            .iter()
            .map(|c| {
                let mut value = account_json(&c.account);
                value["password"] = json!(c.generated_password);
                value
            })
            .collect();
        print_json(&Value::Array(list));
    } else {
        let rows = created
            .iter()
            .map(|c| vec![c.account.username.clone(), c.generated_password.clone().unwrap_or_default()])
            .collect();
        print(&format!("Created {} accounts. Hand out the passwords privately:\n", created.len()));
        print(&table(&["USERNAME", "PASSWORD"], rows));
    }
    Ok(())
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn account_json(a: &AccountRecord) -> Value {
    json!({
        "id": a.id.to_string(),
        "username": a.username,
        "display_name": a.display_name,
        "email": a.email,
        "email_verified": a.email_verified,
        "totp_enabled": a.totp_secret.is_some(),
        "disabled": a.disabled,
        "created_at_ms": a.created_at_ms,
    })
}

fn device_json(d: &DeviceRecord) -> Value {
    json!({
        "id": d.id.to_string(),
        "account_id": d.account_id.to_string(),
        "name": d.name,
        "created_at_ms": d.created_at_ms,
        "last_seen_at_ms": d.last_seen_at_ms,
    })
}

fn yes_no(b: bool) -> String {
    if b { "yes" } else { "no" }.to_owned()
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM UTC`.
pub(super) fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", rest / 3600, rest % 3600 / 60)
}

/// Left-aligned columns, two spaces apart.
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut out = line(headers.iter().map(|h| (*h).to_owned()).collect());
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    for row in rows {
        out.push_str(&line(row));
    }
    out
}

pub(super) fn print(text: &str) {
    // A closed pipe (`… | head`) is not an error worth a panic.
    let _ = std::io::stdout().write_all(text.as_bytes());
}

fn print_json(value: &Value) {
    print(&format!("{}\n", serde_json::to_string_pretty(value).unwrap_or_default()));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_civil_utc() {
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        assert_eq!(time(1_709_251_200_000), "2024-03-01 00:00 UTC");
        assert_eq!(time(1_795_824_000_000 + 90_061_000), "2026-11-29 01:01 UTC");
    }

    #[test]
    fn tables_align() {
        let text = table(&["A", "LONGER"], vec![vec!["xyz".into(), "1".into()]]);
        assert_eq!(text, "A    LONGER\nxyz  1\n");
    }
}
