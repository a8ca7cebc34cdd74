//! Accounts, devices and signing in, tested from outside: the real `kitsulan` binary, reached
//! over native gRPC as apps reach it, with `kitsulan admin` run beside it as an operator runs
//! it, email caught by a real SMTP server and TOTP codes from a test authenticator. What is
//! checked is what docs/api.md promises: the stable error reasons and their status codes,
//! names, sessions, one-time codes, TOTP and rate limits. Brute-force tests at the end print
//! how many guesses an attacker gets.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A test that cannot go on should stop loudly.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kitsulan_client::assert_refused_with;
use kitsulan_client::client::Refusal;
use kitsulan_client::people::signed_up;
use kitsulan_client::{Authenticator, Client, Database, Options, SmtpSink, TestServer, assert_refused};
use kitsulan_proto::v1::{
    BeginTotpEnrollmentRequest, ChangePasswordRequest, ConfirmTotpEnrollmentRequest, DisableTotpRequest,
    GetAuthMethodsRequest, GetProfilesRequest, ListDevicesRequest, LookupAccountRequest, RefreshRequest,
    RenameDeviceRequest, RequestSignInCodeRequest, SetEmailRequest, SignInRequest, SignOutDeviceRequest,
    SignUpRequest, UpdateProfileRequest, VerifyEmailRequest,
};
use serde_json::Value;

const PASSWORD: &str = "correct horse battery staple";
const MAIL_WAIT: Duration = Duration::from_secs(20);

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn is_uuid_v7(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7)
}

async fn client(server: &TestServer) -> Client {
    Client::connect(&server.url()).await.unwrap()
}

/// SetEmail as the owner sends it: with the current password.
fn owner_sets_email(email: impl Into<String>) -> SetEmailRequest {
    SetEmailRequest { email: email.into(), current_password: PASSWORD.into(), ..Default::default() }
}

/// `admin user list --json`.
async fn admin_users(server: &TestServer) -> Vec<Value> {
    let out = server.admin(&["user", "list", "--json"]).await.unwrap().ok().unwrap();
    out.json().unwrap().as_array().cloned().unwrap_or_else(|| panic!("not a JSON array: {}", out.stdout))
}

fn find_user<'a>(users: &'a [Value], username: &str) -> Option<&'a Value> {
    users.iter().find(|u| u["username"] == username)
}

/// Enrols TOTP on the signed-in account and returns the authenticator holding its secret.
async fn enrol_totp(client: &Client) -> Authenticator {
    Authenticator::enrol(client, PASSWORD).await.unwrap().0
}

/// Waits for the next mail to `to` and returns the code in it.
async fn mailed_code(sink: &SmtpSink, to: &str) -> String {
    let mail = sink.wait_for_mail(to, MAIL_WAIT).await.unwrap();
    assert!(mail.subject.contains("KitsuLAN"), "subject {:?}", mail.subject);
    mail.code().unwrap()
}

/// A six-digit guess that differs from `real`.
fn wrong_guess(real: &str, n: u32) -> String {
    let real: u32 = real.parse().unwrap();
    format!("{:06}", (real + 1 + n * 7919) % 1_000_000)
}

// ---------------------------------------------------------------------------------------------
// Signing up

#[tokio::test]
async fn sign_up_sign_in_refresh_and_sign_out_on_sqlite_and_postgres() -> anyhow::Result<()> {
    for database in [Database::Sqlite, Database::FreshPostgres] {
        let server = TestServer::start(database).await?;
        let mut laptop = client(&server).await;
        let methods = laptop.auth().get_auth_methods(GetAuthMethodsRequest {}).await?.into_inner();
        assert!(methods.password && methods.sign_up_open && !methods.email_code, "{methods:?}");

        let before = now_ms();
        let session = laptop
            .sign_up_with(SignUpRequest {
                username: "  Alice ".into(),
                password: PASSWORD.into(),
                display_name: "Alice Liddell".into(),
                email: String::new(),
                device_name: "Laptop".into(),
            })
            .await?;
        assert!(is_uuid_v7(&session.account_id) && is_uuid_v7(&session.device_id), "{session:?}");
        assert!(session.access_token.starts_with("kat_"), "{session:?}");
        assert!(session.refresh_token.starts_with("krt_"), "{session:?}");
        assert_ne!(session.access_token, session.refresh_token);
        // Defaults: 15 minutes and 30 days.
        let after = now_ms();
        assert!((before + 895_000..=after + 905_000).contains(&session.access_expires_at_ms), "{session:?}");
        let thirty_days = 30 * 24 * 3600 * 1000;
        assert!(
            (before + thirty_days - 60_000..=after + thirty_days + 60_000)
                .contains(&session.refresh_expires_at_ms),
            "{session:?}"
        );
        assert_eq!(session.password_reset_until_ms, 0);

        let account = laptop.my_account().await?;
        assert_eq!(account.id, session.account_id);
        assert_eq!(account.username, "alice", "trimmed and lower-cased");
        assert_eq!(account.display_name, "Alice Liddell");
        assert_eq!(
            (account.email.as_str(), account.email_verified, account.totp_enabled),
            ("", false, false)
        );
        assert!((before - 5_000..=now_ms() + 5_000).contains(&account.created_at_ms), "{account:?}");

        // No display name means the username.
        let bob = signed_up(&server, "bob").await;
        assert_eq!(bob.my_account().await?.display_name, "bob");

        // A second device of Alice's, signed in with the password, typed in any case.
        let mut phone = laptop.another_device();
        let phone_session = phone.sign_in_as("ALICE", PASSWORD, "Phone").await?;
        assert_eq!(phone_session.account_id, session.account_id);
        assert_ne!(phone_session.device_id, session.device_id);
        let devices = laptop.devices().list_devices(ListDevicesRequest {}).await?.into_inner().devices;
        let names: Vec<(&str, bool)> = devices.iter().map(|d| (d.name.as_str(), d.current)).collect();
        assert_eq!(names, [("Laptop", true), ("Phone", false)]);

        // Refresh: new tokens that work.
        let refreshed = phone.refresh().await?;
        assert_eq!(refreshed.device_id, phone_session.device_id);
        assert_ne!(refreshed.access_token, phone_session.access_token);
        assert_ne!(refreshed.refresh_token, phone_session.refresh_token);
        assert_eq!(phone.my_account().await?.username, "alice");

        // Signing the phone out ends its session only.
        phone.sign_out().await?;
        phone.set_session(Some(refreshed));
        assert_refused(phone.my_account().await, "SESSION_INVALID");
        assert_eq!(laptop.my_account().await?.username, "alice");

        // The operator sees both accounts, on the same database.
        let users = admin_users(&server).await;
        assert_eq!(find_user(&users, "alice").unwrap()["display_name"], "Alice Liddell");
        assert!(find_user(&users, "bob").is_some(), "{users:?}");
    }
    Ok(())
}

/// (case, username, password, display name, email, device name, reason, refused field)
type BadSignUp<'a> = (&'a str, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str, &'a str);

#[tokio::test]
async fn bad_sign_ups_are_refused_whole_and_leave_no_account() -> anyhow::Result<()> {
    // SMTP is there so an email address is not refused for want of it; sign-ups are not limited
    // here, since this test makes many.
    let sink = SmtpSink::start().await?;
    let server = TestServer::start_with(
        Options::new(Database::Sqlite).smtp(&sink).env("KITSULAN_RATE_LIMIT_SIGN_UP", "1000/1h"),
    )
    .await?;
    let mut client = client(&server).await;

    let long_password = "p".repeat(257);
    let (a33, e65, d65) = ("a".repeat(33), "é".repeat(65), "d".repeat(65));
    let cases: Vec<BadSignUp<'_>> = vec![
        ("empty username", "", PASSWORD, "", "", "Laptop", "USERNAME_INVALID", "username"),
        ("two characters", "ab", PASSWORD, "", "", "Laptop", "USERNAME_INVALID", "username"),
        ("33 characters", &a33, PASSWORD, "", "", "Laptop", "USERNAME_INVALID", "username"),
        ("Cyrillic а", "\u{430}lice", PASSWORD, "", "", "Laptop", "USERNAME_INVALID", "username"),
        ("Greek ο", "b\u{3bf}b", PASSWORD, "", "", "Laptop", "USERNAME_INVALID", "username"),
        ("zero-width space", "ali\u{200b}ce", PASSWORD, "", "", "Laptop", "USERNAME_INVALID", "username"),
        ("space inside", "alice smith", PASSWORD, "", "", "Laptop", "USERNAME_INVALID", "username"),
        ("starts with a dot", ".alice", PASSWORD, "", "", "Laptop", "USERNAME_INVALID", "username"),
        ("ends with a dash", "alice-", PASSWORD, "", "", "Laptop", "USERNAME_INVALID", "username"),
        ("at sign", "alice@home", PASSWORD, "", "", "Laptop", "USERNAME_INVALID", "username"),
        ("7-character password", "user1", "seven77", "", "", "Laptop", "PASSWORD_INVALID", "password"),
        ("257-character password", "user2", &long_password, "", "", "Laptop", "PASSWORD_INVALID", "password"),
        (
            "password = username",
            "user3password",
            "user3password",
            "",
            "",
            "Laptop",
            "PASSWORD_INVALID",
            "password",
        ),
        (
            "RTL override",
            "user4",
            PASSWORD,
            "\u{202e}evil",
            "",
            "Laptop",
            "DISPLAY_NAME_INVALID",
            "display_name",
        ),
        (
            "bidi isolate",
            "user5",
            PASSWORD,
            "a\u{2066}b",
            "",
            "Laptop",
            "DISPLAY_NAME_INVALID",
            "display_name",
        ),
        ("65 characters", "user6", PASSWORD, &e65, "", "Laptop", "DISPLAY_NAME_INVALID", "display_name"),
        ("bell", "user7", PASSWORD, "a\u{7}b", "", "Laptop", "DISPLAY_NAME_INVALID", "display_name"),
        (
            "zero-width joiner",
            "user8",
            PASSWORD,
            "a\u{200d}b",
            "",
            "Laptop",
            "DISPLAY_NAME_INVALID",
            "display_name",
        ),
        ("no at sign", "user9", PASSWORD, "", "user9.kitsulan.test", "Laptop", "EMAIL_INVALID", "email"),
        ("two at signs", "user10", PASSWORD, "", "a@b@kitsulan.test", "Laptop", "EMAIL_INVALID", "email"),
        (
            "non-ASCII email",
            "user11",
            PASSWORD,
            "",
            "jürgen@kitsulan.test",
            "Laptop",
            "EMAIL_INVALID",
            "email",
        ),
        ("RTL device", "user12", PASSWORD, "", "", "\u{202e}potpaL", "DEVICE_NAME_INVALID", "device_name"),
        ("65-char device", "user13", PASSWORD, "", "", &d65, "DEVICE_NAME_INVALID", "device_name"),
    ];
    for (case, username, password, display_name, email, device_name, reason, field) in &cases {
        let result = client
            .sign_up_with(SignUpRequest {
                username: (*username).into(),
                password: (*password).into(),
                display_name: (*display_name).into(),
                email: (*email).into(),
                device_name: (*device_name).into(),
            })
            .await;
        let refusal = Refusal::of(result.as_ref().err().unwrap_or_else(|| panic!("{case}: accepted")));
        assert_eq!(refusal.reason, *reason, "{case}: {refusal:?}");
        assert_refused(result, reason);
        assert_eq!(refusal.field(), Some(*field), "{case}: the refused field is named");
    }

    // Nothing was stored: no account, no mail, and every valid username is still free.
    assert_eq!(admin_users(&server).await, Vec::<Value>::new());
    assert!(sink.untaken().is_empty(), "mail was sent for a refused sign-up: {:?}", sink.untaken());
    for (case, username, ..) in &cases {
        if username.starts_with("user") {
            let mut fresh = client.another_device();
            fresh
                .sign_up(username, PASSWORD)
                .await
                .unwrap_or_else(|s| panic!("{case}: {:?}", Refusal::of(&s)));
        }
    }

    // The limits themselves are allowed.
    let edge_cases = [
        ("abc", "8chars!!", "x"),
        (&*"a".repeat(32), &*"p".repeat(256), &*"ё".repeat(64)),
        ("a.b_c-9", PASSWORD, "Алиса 🦊 أليس"),
    ];
    for (username, password, display_name) in edge_cases {
        let mut fresh = client.another_device();
        fresh
            .sign_up_with(SignUpRequest {
                username: username.into(),
                password: password.into(),
                display_name: display_name.into(),
                device_name: "Laptop".into(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|s| panic!("{username}: {:?}", Refusal::of(&s)));
        assert_eq!(fresh.my_account().await?.display_name, display_name);
    }
    Ok(())
}

#[tokio::test]
async fn a_username_is_taken_whatever_its_case() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    signed_up(&server, "alice").await;
    let mut other = client(&server).await;
    for username in ["alice", "ALICE", "  Alice  "] {
        assert_refused(other.sign_up(username, "another password").await, "USERNAME_TAKEN");
    }
    // The first Alice keeps her password; nobody else got in.
    let users = admin_users(&server).await;
    assert_eq!(users.len(), 1, "{users:?}");
    assert_refused(other.sign_in("alice", "another password").await, "INVALID_CREDENTIALS");
    other.sign_in("alice", PASSWORD).await?;
    Ok(())
}

#[tokio::test]
async fn sign_up_can_be_closed() -> anyhow::Result<()> {
    let server =
        TestServer::start_with(Options::new(Database::Sqlite).env("KITSULAN_SIGN_UP", "closed")).await?;
    let mut client = client(&server).await;
    let methods = client.auth().get_auth_methods(GetAuthMethodsRequest {}).await?.into_inner();
    assert!(!methods.sign_up_open && methods.password, "{methods:?}");
    assert_refused(client.sign_up("alice", PASSWORD).await, "SIGN_UP_CLOSED");
    assert!(admin_users(&server).await.is_empty());

    // The operator still creates accounts.
    server
        .admin_with_stdin(&["user", "create", "alice", "--password-stdin"], &format!("{PASSWORD}\n"))
        .await?
        .ok()?;
    client.sign_in("alice", PASSWORD).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Signing in, sessions and devices

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    signed_up(&server, "alice").await;
    let mut client = client(&server).await;
    let (mut wrong, mut unknown) = (Vec::new(), Vec::new());
    for i in 0..5 {
        let started = Instant::now();
        let a = assert_refused(
            client.sign_in("alice", &format!("wrong password {i}")).await,
            "INVALID_CREDENTIALS",
        );
        wrong.push(started.elapsed());
        let started = Instant::now();
        let b = assert_refused(client.sign_in(&format!("nobody{i}"), PASSWORD).await, "INVALID_CREDENTIALS");
        unknown.push(started.elapsed());
        assert_eq!(a.code, b.code);
        assert_eq!(a.message, b.message, "the message tells the two apart");
    }
    // "In comparable time": an unknown user must cost a password hash too, or timing tells
    // who is registered. Medians, with a wide margin for a busy machine.
    wrong.sort();
    unknown.sort();
    let (wrong, unknown) = (wrong[2], unknown[2]);
    println!("median sign-in refusal: wrong password {wrong:?}, unknown user {unknown:?}");
    assert!(
        unknown * 3 >= wrong && wrong * 3 >= unknown,
        "wrong password {wrong:?} vs unknown user {unknown:?}"
    );
    client.sign_in("alice", PASSWORD).await?;
    Ok(())
}

#[tokio::test]
async fn refresh_rotates_tokens_and_a_reused_refresh_token_signs_the_device_out() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let mut laptop = signed_up(&server, "alice").await;
    let mut phone = laptop.another_device();
    phone.sign_in("alice", PASSWORD).await?;

    let first = phone.session().unwrap().clone();
    let second = phone.refresh().await?;
    assert_eq!(second.device_id, first.device_id);
    assert!(second.access_token.starts_with("kat_") && second.refresh_token.starts_with("krt_"));
    assert_ne!(second.access_token, first.access_token);
    assert_ne!(second.refresh_token, first.refresh_token);
    assert!(second.access_expires_at_ms >= first.access_expires_at_ms);
    phone.my_account().await?;
    // The new refresh token rotates again.
    let third = phone.refresh().await?;
    phone.my_account().await?;

    // Someone presents the first refresh token again: it was stolen, the phone is signed out.
    let replay = phone.auth().refresh(RefreshRequest { refresh_token: first.refresh_token.clone() }).await;
    assert_refused(replay, "REFRESH_TOKEN_REUSED");
    assert_refused(phone.my_account().await, "SESSION_INVALID");
    let after = phone.auth().refresh(RefreshRequest { refresh_token: third.refresh_token.clone() }).await;
    assert_refused_with(after, &["REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED"]);
    let devices = laptop.devices().list_devices(ListDevicesRequest {}).await?.into_inner().devices;
    assert_eq!(devices.len(), 1, "the phone is still listed: {devices:?}");

    // The laptop is untouched; a made-up refresh token is simply invalid.
    laptop.my_account().await?;
    laptop.refresh().await?;
    laptop.my_account().await?;
    let made_up =
        laptop.auth().refresh(RefreshRequest { refresh_token: "krt_not-a-real-token".into() }).await;
    assert_refused(made_up, "REFRESH_TOKEN_INVALID");

    // No token, a made-up one, or the refresh token in place of the access token: no session.
    let mut anonymous = laptop.another_device();
    assert_refused(anonymous.my_account().await, "SESSION_INVALID");
    anonymous.set_session(Some(kitsulan_proto::v1::Session {
        access_token: "kat_made-up".into(),
        ..third.clone()
    }));
    assert_refused(anonymous.my_account().await, "SESSION_INVALID");
    let laptop_session = laptop.session().unwrap().clone();
    anonymous.set_session(Some(kitsulan_proto::v1::Session {
        access_token: laptop_session.refresh_token.clone(),
        ..laptop_session
    }));
    assert_refused(anonymous.my_account().await, "SESSION_INVALID");
    Ok(())
}

#[tokio::test]
async fn an_expired_access_token_is_refused_until_refreshed() -> anyhow::Result<()> {
    let server = TestServer::start_with(
        Options::new(Database::Sqlite)
            .env("KITSULAN_ACCESS_TOKEN_TTL_SECONDS", "60")
            .env("KITSULAN_REFRESH_TOKEN_TTL_DAYS", "2"),
    )
    .await?;
    let before = now_ms();
    let mut alice = signed_up(&server, "alice").await;
    let session = alice.session().unwrap().clone();
    assert!((before + 59_000..=now_ms() + 61_000).contains(&session.access_expires_at_ms), "{session:?}");
    let two_days = 2 * 24 * 3600 * 1000;
    assert!(
        (before + two_days - 60_000..=now_ms() + two_days + 60_000).contains(&session.refresh_expires_at_ms)
    );
    alice.my_account().await?;

    let wait = u64::try_from(session.access_expires_at_ms - now_ms()).unwrap_or(0) + 1_500;
    tokio::time::sleep(Duration::from_millis(wait)).await;
    assert_refused(alice.my_account().await, "SESSION_INVALID");
    alice.refresh().await?;
    assert_eq!(alice.my_account().await?.username, "alice");
    Ok(())
}

#[tokio::test]
async fn devices_are_listed_renamed_and_signed_out() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let laptop = signed_up(&server, "alice").await;
    let mut phone = laptop.another_device();
    phone.sign_in_as("alice", PASSWORD, "Phone").await?;
    let mut tablet = laptop.another_device();
    tablet.sign_in_as("alice", PASSWORD, "Tablet").await?;
    let bob = signed_up(&server, "bob").await;

    let list = |client: &Client| {
        let mut devices = client.devices();
        async move { devices.list_devices(ListDevicesRequest {}).await.unwrap().into_inner().devices }
    };
    let devices = list(&laptop).await;
    let seen: Vec<(&str, &str, bool)> =
        devices.iter().map(|d| (d.id.as_str(), d.name.as_str(), d.current)).collect();
    assert_eq!(
        seen,
        [
            (laptop.device_id(), "Laptop", true),
            (phone.device_id(), "Phone", false),
            (tablet.device_id(), "Tablet", false)
        ],
        "oldest first, only the caller current"
    );
    for device in &devices {
        assert!(device.created_at_ms > 0 && device.last_seen_at_ms >= device.created_at_ms, "{device:?}");
    }
    assert_eq!(list(&bob).await.len(), 1, "Bob sees only his own device");

    // Rename the phone from the laptop; the phone sees it, and sees itself as current.
    let renamed = laptop
        .devices()
        .rename_device(RenameDeviceRequest {
            device_id: phone.device_id().into(),
            name: "  Alice’s phone  ".into(),
        })
        .await?
        .into_inner()
        .device
        .unwrap();
    assert_eq!(renamed.name, "Alice’s phone");
    let from_phone = list(&phone).await;
    let me = from_phone.iter().find(|d| d.current).unwrap();
    assert_eq!((me.id.as_str(), me.name.as_str()), (phone.device_id(), "Alice’s phone"));

    let rename = |device_id: &str, name: &str| {
        let mut devices = laptop.devices();
        let request = RenameDeviceRequest { device_id: device_id.into(), name: name.into() };
        async move { devices.rename_device(request).await }
    };
    assert_refused(rename(phone.device_id(), "\u{202e}enohp").await, "DEVICE_NAME_INVALID");
    assert_refused(rename(phone.device_id(), "").await, "DEVICE_NAME_INVALID");
    assert_refused(rename("not-an-id", "x").await, "ID_INVALID");
    assert_refused(rename(&uuid::Uuid::now_v7().to_string(), "x").await, "DEVICE_NOT_FOUND");
    // Bob's device is not Alice's to touch.
    assert_refused(rename(bob.device_id(), "mine now").await, "DEVICE_NOT_FOUND");
    let sign_out = |device_id: &str| {
        let mut devices = laptop.devices();
        let request = SignOutDeviceRequest { device_id: device_id.into() };
        async move { devices.sign_out_device(request).await }
    };
    assert_refused(sign_out(bob.device_id()).await, "DEVICE_NOT_FOUND");
    bob.my_account().await?;
    assert_eq!(list(&bob).await[0].name, "Laptop");
    assert_refused(sign_out(laptop.device_id()).await, "CANNOT_SIGN_OUT_CURRENT_DEVICE");

    // Signing the phone out from the laptop: the phone's tokens fail at once.
    sign_out(phone.device_id()).await?;
    assert_refused(phone.my_account().await, "SESSION_INVALID");
    assert_refused_with(phone.refresh().await, &["REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED"]);
    assert_refused(sign_out(phone.device_id()).await, "DEVICE_NOT_FOUND");

    // The tablet signs itself out.
    let tablet_session = tablet.session().cloned();
    tablet.sign_out().await?;
    tablet.set_session(tablet_session);
    assert_refused(tablet.my_account().await, "SESSION_INVALID");
    let names: Vec<String> = list(&laptop).await.into_iter().map(|d| d.name).collect();
    assert_eq!(names, ["Laptop"]);
    laptop.my_account().await?;
    Ok(())
}

#[tokio::test]
async fn signing_out_makes_this_devices_tokens_fail_at_once() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let mut alice = signed_up(&server, "alice").await;
    let session = alice.session().unwrap().clone();
    alice.sign_out().await?;
    let mut old = alice.another_device();
    old.set_session(Some(session.clone()));
    assert_refused(old.my_account().await, "SESSION_INVALID");
    assert_refused_with(old.refresh().await, &["REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED"]);
    assert_refused(old.sign_out().await, "SESSION_INVALID");
    Ok(())
}

#[tokio::test]
async fn profile_and_password_changes() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let alice = signed_up(&server, "alice").await;
    let update = |name: &str| {
        let mut account = alice.account();
        let request = UpdateProfileRequest { display_name: name.into() };
        async move { account.update_profile(request).await }
    };
    let account = update(" Alice in Wonderland ").await?.into_inner().account.unwrap();
    assert_eq!(account.display_name, "Alice in Wonderland");
    assert_refused(update("\u{feff}BOM").await, "DISPLAY_NAME_INVALID");
    assert_refused(update("   ").await, "DISPLAY_NAME_INVALID");
    assert_refused(update("").await, "DISPLAY_NAME_INVALID");
    assert_refused(update("soft\u{ad}hyphen").await, "DISPLAY_NAME_INVALID");
    assert_eq!(alice.my_account().await?.display_name, "Alice in Wonderland");

    let change = |current: &str, new: &str| {
        let mut account = alice.account();
        let request = ChangePasswordRequest {
            current_password: current.into(),
            new_password: new.into(),
            ..Default::default()
        };
        async move { account.change_password(request).await }
    };
    // Without a reset window, the current password is needed.
    assert_refused(change("", "a new password").await, "PASSWORD_REQUIRED");
    assert_refused(change("wrong password", "a new password").await, "PASSWORD_REQUIRED");
    assert_refused(change(PASSWORD, "short").await, "PASSWORD_INVALID");
    change(PASSWORD, "a new password").await?;
    let mut other = alice.another_device();
    assert_refused(other.sign_in("alice", PASSWORD).await, "INVALID_CREDENTIALS");
    other.sign_in("alice", "a new password").await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// TOTP

#[tokio::test]
async fn totp_enrolment_then_sign_in_needs_a_fresh_code() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let alice = signed_up(&server, "alice").await;
    let mut account = alice.account();

    assert_refused(
        account.confirm_totp_enrollment(ConfirmTotpEnrollmentRequest { code: "123456".into() }).await,
        "TOTP_NOT_PENDING",
    );
    let wrong_password =
        account.begin_totp_enrollment(BeginTotpEnrollmentRequest { password: "nope nope".into() }).await;
    assert_refused(wrong_password, "PASSWORD_REQUIRED");
    let begin = account
        .begin_totp_enrollment(BeginTotpEnrollmentRequest { password: PASSWORD.into() })
        .await?
        .into_inner();
    // The URI for a QR code carries the same secret, SHA-1, 6 digits, 30 s.
    let from_uri = totp_rs::Totp::from_url_unchecked(&begin.otpauth_uri)?;
    let mut app = Authenticator::from_base32(&begin.secret_base32)?;
    assert_eq!(
        from_uri.generate(1_000_000_000).to_string(),
        app.code_at(1_000_000_000),
        "{}",
        begin.otpauth_uri
    );
    assert!(begin.otpauth_uri.starts_with("otpauth://totp/"), "{}", begin.otpauth_uri);
    // Not on until confirmed.
    assert!(!alice.my_account().await?.totp_enabled);
    alice.another_device().sign_in("alice", PASSWORD).await?;

    assert_refused(
        account.confirm_totp_enrollment(ConfirmTotpEnrollmentRequest { code: app.wrong_code(1) }).await,
        "TOTP_INVALID",
    );
    let enrol_code = app.fresh_code().await;
    account.confirm_totp_enrollment(ConfirmTotpEnrollmentRequest { code: enrol_code.clone() }).await?;
    assert!(alice.my_account().await?.totp_enabled);
    let again = account.begin_totp_enrollment(BeginTotpEnrollmentRequest { password: PASSWORD.into() }).await;
    assert_refused(again, "TOTP_ALREADY_ENABLED");

    let sign_in = |password: &str, totp_code: &str| {
        let mut device = alice.another_device();
        let request = SignInRequest {
            username: "alice".into(),
            password: password.into(),
            device_name: "Phone".into(),
            totp_code: totp_code.into(),
        };
        async move { device.sign_in_with(request).await }
    };
    assert_refused(sign_in(PASSWORD, "").await, "TOTP_REQUIRED");
    // A wrong password never reveals that the account has TOTP (or that the password was wrong
    // but the code right).
    assert_refused(sign_in("wrong password", "").await, "INVALID_CREDENTIALS");
    assert_refused(sign_in("wrong password", &app.now().1).await, "INVALID_CREDENTIALS");
    assert_refused(sign_in(PASSWORD, &app.wrong_code(2)).await, "TOTP_INVALID");
    // The code that confirmed enrolment was accepted once: never again.
    assert_refused(sign_in(PASSWORD, &enrol_code).await, "TOTP_INVALID");

    let code = app.fresh_code().await;
    let session = sign_in(PASSWORD, &code).await?;
    assert_eq!(session.account_id, alice.session().unwrap().account_id);
    assert_refused(sign_in(PASSWORD, &code).await, "TOTP_INVALID");

    // Turning it off needs the password and a code the server has not seen.
    let disable = |password: &str, code: &str| {
        let mut account = alice.account();
        let request = DisableTotpRequest { password: password.into(), code: code.into() };
        async move { account.disable_totp(request).await }
    };
    assert_refused(disable(PASSWORD, &code).await, "TOTP_INVALID");
    assert_refused(disable(PASSWORD, &app.wrong_code(3)).await, "TOTP_INVALID");
    let next = app.fresh_code().await;
    assert_refused(disable("wrong password", &next).await, "PASSWORD_REQUIRED");
    let account_after = disable(PASSWORD, &next).await?.into_inner().account.unwrap();
    assert!(!account_after.totp_enabled);
    assert_refused(disable(PASSWORD, &app.now().1).await, "TOTP_NOT_ENABLED");
    sign_in(PASSWORD, "").await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Email

#[tokio::test]
async fn an_email_address_is_verified_with_the_code_mailed_to_it() -> anyhow::Result<()> {
    let sink = SmtpSink::start().await?;
    let server = TestServer::start_with(
        Options::new(Database::Sqlite).smtp(&sink).env("KITSULAN_RATE_LIMIT_CODE_REQUESTS", "100/1h"),
    )
    .await?;
    let alice = signed_up(&server, "alice").await;
    let methods = alice.auth().get_auth_methods(GetAuthMethodsRequest {}).await?.into_inner();
    assert!(methods.email_code && methods.password, "{methods:?}");

    let mut account = alice.account();
    assert_refused(account.verify_email(VerifyEmailRequest { code: "123456".into() }).await, "NO_EMAIL");
    assert_refused(account.set_email(owner_sets_email("not an address")).await, "EMAIL_INVALID");
    let set = account.set_email(owner_sets_email(" Alice@KitsuLAN.test ")).await?;
    let set = set.into_inner().account.unwrap();
    assert_eq!((set.email.as_str(), set.email_verified), ("alice@kitsulan.test", false));

    let mail = sink.wait_for_mail("alice@kitsulan.test", MAIL_WAIT).await?;
    assert!(mail.subject.contains("KitsuLAN"), "{mail:?}");
    assert!(mail.from.contains("noreply@kitsulan.test"), "{mail:?}");
    let code = mail.code()?;
    assert_refused(
        account.verify_email(VerifyEmailRequest { code: wrong_guess(&code, 0) }).await,
        "ONE_TIME_CODE_INVALID",
    );
    let verified =
        account.verify_email(VerifyEmailRequest { code: code.clone() }).await?.into_inner().account.unwrap();
    assert!(verified.email_verified);
    assert!(alice.my_account().await?.email_verified);

    // A verified address is Alice's: Bob cannot make it his, in any case. The server may refuse
    // at once, or take it unverified and mail the code to that address (Alice's mailbox); even
    // if Bob got hold of that code, verifying it must fail.
    let bob = signed_up(&server, "bob").await;
    let claim = bob.account().set_email(owner_sets_email("ALICE@kitsulan.test")).await;
    match claim {
        Err(status) => {
            assert_refused(Err::<(), _>(status), "EMAIL_TAKEN");
        }
        Ok(response) => {
            let claimed = response.into_inner().account.unwrap();
            assert!(!claimed.email_verified, "{claimed:?}");
            let code = mailed_code(&sink, "alice@kitsulan.test").await;
            let verify = bob.account().verify_email(VerifyEmailRequest { code }).await;
            assert_refused(verify, "EMAIL_TAKEN");
            assert!(!bob.my_account().await?.email_verified);
        }
    }
    let alice_now = alice.my_account().await?;
    assert_eq!((alice_now.email.as_str(), alice_now.email_verified), ("alice@kitsulan.test", true));

    // An address given at sign-up is mailed a code too.
    let mut carol = client(&server).await;
    carol
        .sign_up_with(SignUpRequest {
            username: "carol".into(),
            password: PASSWORD.into(),
            email: "carol@kitsulan.test".into(),
            device_name: "Laptop".into(),
            ..Default::default()
        })
        .await?;
    let account = carol.my_account().await?;
    assert_eq!((account.email.as_str(), account.email_verified), ("carol@kitsulan.test", false));
    let code = mailed_code(&sink, "carol@kitsulan.test").await;
    carol.account().verify_email(VerifyEmailRequest { code }).await?;
    assert!(carol.my_account().await?.email_verified);
    Ok(())
}

#[tokio::test]
async fn signing_in_with_a_mailed_code_works_once() -> anyhow::Result<()> {
    let sink = SmtpSink::start().await?;
    let server = TestServer::start_with(
        Options::new(Database::Sqlite).smtp(&sink).env("KITSULAN_RATE_LIMIT_CODE_REQUESTS", "100/1h"),
    )
    .await?;
    let alice = signed_up(&server, "alice").await;
    alice.account().set_email(owner_sets_email("alice@kitsulan.test")).await?;
    let code = mailed_code(&sink, "alice@kitsulan.test").await;
    alice.account().verify_email(VerifyEmailRequest { code }).await?;

    // On a new device, Alice asks for a code and types it in from the mail.
    let mut phone = client(&server).await;
    phone
        .auth()
        .request_sign_in_code(RequestSignInCodeRequest { email: "Alice@kitsulan.test".into() })
        .await?;
    let code = mailed_code(&sink, "alice@kitsulan.test").await;
    let before = now_ms();
    let session = phone.sign_in_with_code("alice@kitsulan.test", &code, "").await?;
    assert_eq!(session.account_id, alice.session().unwrap().account_id);
    assert!(session.password_reset_until_ms > before, "a code sign-in opens the reset window: {session:?}");
    assert!(session.password_reset_until_ms <= now_ms() + 15 * 60 * 1000 + 5_000, "{session:?}");
    assert_eq!(phone.my_account().await?.username, "alice");
    // In that window, the password can be changed without the old one.
    phone
        .account()
        .change_password(ChangePasswordRequest {
            current_password: String::new(),
            new_password: "brand new pass".into(),
            ..Default::default()
        })
        .await?;
    phone.another_device().sign_in("alice", "brand new pass").await?;

    // The code works once.
    let mut thief = client(&server).await;
    assert_refused(thief.sign_in_with_code("alice@kitsulan.test", &code, "").await, "ONE_TIME_CODE_INVALID");

    // Asking for an address nobody verified answers OK all the same, and mails nothing.
    let bob = signed_up(&server, "bob").await;
    bob.account().set_email(owner_sets_email("bob@kitsulan.test")).await?;
    let _unverified = mailed_code(&sink, "bob@kitsulan.test").await;
    for email in ["nobody@kitsulan.test", "bob@kitsulan.test"] {
        thief.auth().request_sign_in_code(RequestSignInCodeRequest { email: email.into() }).await?;
    }
    // A mail to Alice afterwards is the marker that the server got through the requests above.
    thief
        .auth()
        .request_sign_in_code(RequestSignInCodeRequest { email: "alice@kitsulan.test".into() })
        .await?;
    sink.wait_for_mail("alice@kitsulan.test", MAIL_WAIT).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count_for("nobody@kitsulan.test"), 0);
    assert_eq!(sink.count_for("bob@kitsulan.test"), 0, "a sign-in code went to an unverified address");
    Ok(())
}

#[tokio::test]
async fn without_smtp_email_is_unavailable_but_passwords_work() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let mut alice = signed_up(&server, "alice").await;
    let methods = alice.auth().get_auth_methods(GetAuthMethodsRequest {}).await?.into_inner();
    assert!(!methods.email_code && methods.password, "{methods:?}");
    let request = RequestSignInCodeRequest { email: "alice@kitsulan.test".into() };
    assert_refused(alice.auth().request_sign_in_code(request).await, "EMAIL_UNAVAILABLE");
    let set = alice.account().set_email(owner_sets_email("alice@kitsulan.test")).await;
    assert_refused(set, "EMAIL_UNAVAILABLE");
    alice.sign_in("alice", PASSWORD).await?;
    alice.my_account().await?;

    // SMTP configured but not answering: the send fails, and says so.
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.local_addr()?.port()
    };
    let server = TestServer::start_with(
        Options::new(Database::Sqlite)
            .env("KITSULAN_SMTP_HOST", "127.0.0.1")
            .env("KITSULAN_SMTP_PORT", &closed_port.to_string())
            .env("KITSULAN_SMTP_TLS", "none")
            .env("KITSULAN_SMTP_FROM", "KitsuLAN <noreply@kitsulan.test>"),
    )
    .await?;
    let bob = signed_up(&server, "bob").await;
    let set = bob.account().set_email(owner_sets_email("bob@kitsulan.test")).await;
    assert_refused(set, "EMAIL_SEND_FAILED");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Rate limits

#[tokio::test]
async fn sign_in_attempts_are_rate_limited_per_address() -> anyhow::Result<()> {
    let server =
        TestServer::start_with(Options::new(Database::Sqlite).env("KITSULAN_RATE_LIMIT_SIGN_IN", "3/1m"))
            .await?;
    server
        .admin_with_stdin(&["user", "create", "alice", "--password-stdin"], &format!("{PASSWORD}\n"))
        .await?
        .ok()?;
    let mut client = client(&server).await;
    client.sign_in("alice", PASSWORD).await?;
    assert_refused(client.sign_in("alice", "wrong password").await, "INVALID_CREDENTIALS");
    client.sign_in("alice", PASSWORD).await?;
    // The fourth attempt in a minute, even with the right password.
    let limited = assert_refused(client.sign_in("alice", PASSWORD).await, "RATE_LIMITED");
    let after = limited.retry_after.unwrap();
    assert!((1..=60).contains(&after), "retry-after {after}");
    let delay = limited.retry_delay.unwrap();
    assert!(delay > Duration::ZERO && delay <= Duration::from_secs(60), "RetryInfo {delay:?}");
    // Other ways of signing in count too, and a made-up X-Forwarded-For does not help while
    // the server does not trust it.
    assert_refused(client.sign_in_with_code("alice", "AAAA-BBBB-CCCC-DDDD", "").await, "RATE_LIMITED");
    let mut spoofing = client.another_device().with_header("x-forwarded-for", "192.0.2.7")?;
    assert_refused(spoofing.sign_in("alice", PASSWORD).await, "RATE_LIMITED");
    // Signed-in devices keep working.
    client.my_account().await?;
    Ok(())
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_address_has_its_own_budget() -> anyhow::Result<()> {
    let server = TestServer::start_with(
        Options::new(Database::Sqlite)
            .env("KITSULAN_RATE_LIMIT_SIGN_IN", "2/1m")
            .env("KITSULAN_TRUST_FORWARDED_FOR", "true"),
    )
    .await?;
    signed_up(&server, "alice").await;
    let base = client(&server).await;
    let mut first = base.another_device().with_header("x-forwarded-for", "198.51.100.9, 192.0.2.1")?;
    first.sign_in("alice", PASSWORD).await?;
    first.sign_in("alice", PASSWORD).await?;
    assert_refused(first.sign_in("alice", PASSWORD).await, "RATE_LIMITED");
    // The last address is the client's; the one before it is whatever the client claimed.
    let mut same = base.another_device().with_header("x-forwarded-for", "203.0.113.5, 192.0.2.1")?;
    assert_refused(same.sign_in("alice", PASSWORD).await, "RATE_LIMITED");
    let mut second = base.another_device().with_header("x-forwarded-for", "192.0.2.2")?;
    second.sign_in("alice", PASSWORD).await?;
    Ok(())
}

#[tokio::test]
async fn sign_ups_are_rate_limited_per_address() -> anyhow::Result<()> {
    let server =
        TestServer::start_with(Options::new(Database::Sqlite).env("KITSULAN_RATE_LIMIT_SIGN_UP", "2/1h"))
            .await?;
    signed_up(&server, "alice").await;
    signed_up(&server, "bob").await;
    let mut client = client(&server).await;
    let limited = assert_refused(client.sign_up("carol", PASSWORD).await, "RATE_LIMITED");
    assert!(limited.retry_after.unwrap() <= 3600, "{limited:?}");
    let users = admin_users(&server).await;
    assert!(find_user(&users, "carol").is_none(), "{users:?}");
    Ok(())
}

/// A LAN party of 30 behind one NAT address all sign up, with the default limits; someone on
/// that LAN scripting sign-ups is still stopped at the private limit, and an internet address
/// at the strict one. Addresses come from a trusted proxy so one test can be many clients.
#[tokio::test]
async fn a_lan_party_behind_one_address_signs_up_and_the_internet_stays_strict() -> anyhow::Result<()> {
    let server =
        TestServer::start_with(Options::new(Database::Sqlite).env("KITSULAN_TRUST_FORWARDED_FOR", "true"))
            .await?;
    let from = |address: &str| {
        let url = server.url();
        let address = address.to_owned();
        async move { Client::connect(&url).await.unwrap().with_header("x-forwarded-for", &address).unwrap() }
    };
    // The default KITSULAN_RATE_LIMIT_SIGN_UP_PRIVATE is 50/1h: the party of 30, then the
    // rest of the budget, then refused.
    for i in 0..50 {
        from("192.168.1.20").await.sign_up(&format!("guest{i}"), PASSWORD).await?;
    }
    for _ in 0..2 {
        let limited =
            assert_refused(from("192.168.1.20").await.sign_up("guest50", PASSWORD).await, "RATE_LIMITED");
        assert!(limited.retry_after.unwrap() <= 3600, "{limited:?}");
    }
    // A ULA IPv6 address counts as a LAN too (per /64).
    for i in 0..15 {
        from(&format!("fd00:1:2:3::{i}")).await.sign_up(&format!("v6guest{i}"), PASSWORD).await?;
    }
    // The internet keeps the strict default (KITSULAN_RATE_LIMIT_SIGN_UP, 10/1h).
    for i in 0..10 {
        from("203.0.113.7").await.sign_up(&format!("stranger{i}"), PASSWORD).await?;
    }
    assert_refused(from("203.0.113.7").await.sign_up("stranger10", PASSWORD).await, "RATE_LIMITED");
    // So does loopback: what a reverse proxy on the same host looks like.
    for i in 0..10 {
        from("127.0.0.1").await.sign_up(&format!("local{i}"), PASSWORD).await?;
    }
    assert_refused(from("127.0.0.1").await.sign_up("local10", PASSWORD).await, "RATE_LIMITED");
    let users = admin_users(&server).await;
    for refused in ["guest50", "stranger10", "local10"] {
        assert!(find_user(&users, refused).is_none(), "{refused} was created: {users:?}");
    }
    Ok(())
}

#[tokio::test]
async fn emailed_codes_are_limited_per_address_and_per_mailbox() -> anyhow::Result<()> {
    // Two codes an hour; addresses come from a trusted proxy so the test can be several clients.
    let sink = SmtpSink::start().await?;
    let server = TestServer::start_with(
        Options::new(Database::Sqlite)
            .smtp(&sink)
            .env("KITSULAN_RATE_LIMIT_CODE_REQUESTS", "2/1h")
            .env("KITSULAN_TRUST_FORWARDED_FOR", "true"),
    )
    .await?;
    let from = |address: &str| {
        let url = server.url();
        let address = address.to_owned();
        async move { Client::connect(&url).await.unwrap().with_header("x-forwarded-for", &address).unwrap() }
    };
    let request = |client: &Client, email: &str| {
        let mut auth = client.auth();
        let request = RequestSignInCodeRequest { email: email.into() };
        async move { auth.request_sign_in_code(request).await }
    };

    // One mailbox gets at most two codes an hour, however many addresses ask for them.
    let mut alice = from("192.0.2.10").await;
    alice.sign_up("alice", PASSWORD).await?;
    alice.account().set_email(owner_sets_email("alice@kitsulan.test")).await?;
    let code = mailed_code(&sink, "alice@kitsulan.test").await;
    alice.account().verify_email(VerifyEmailRequest { code }).await?;
    request(&from("192.0.2.11").await, "alice@kitsulan.test").await?;
    mailed_code(&sink, "alice@kitsulan.test").await;
    assert_refused(request(&from("192.0.2.12").await, "alice@kitsulan.test").await, "RATE_LIMITED");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.count_for("alice@kitsulan.test"), 0, "a third code reached Alice's mailbox");

    // One address gets at most two codes an hour, whatever mailboxes it names...
    let asker = from("198.51.100.20").await;
    request(&asker, "x1@kitsulan.test").await?;
    request(&asker, "x2@kitsulan.test").await?;
    assert_refused(request(&asker, "x3@kitsulan.test").await, "RATE_LIMITED");

    // ...and verification codes are emailed codes too, whichever account asks for them.
    let mut sent = 0;
    let mut refusal = None;
    for (n, name) in ["bob", "carol", "dave"].into_iter().enumerate() {
        let mut client = from("203.0.113.30").await;
        client.sign_up(name, PASSWORD).await?;
        let email = format!("{name}@kitsulan.test");
        match client.account().set_email(owner_sets_email(email)).await {
            Ok(_) => sent += 1,
            Err(status) => {
                refusal = Some((n, assert_refused(Err::<(), _>(status), "RATE_LIMITED")));
                break;
            }
        }
    }
    assert!(
        refusal.is_some(),
        "{sent} verification codes were emailed for one address within an hour (limit 2 per address)"
    );
    Ok(())
}

#[tokio::test]
async fn invalid_account_settings_stop_start_up_naming_the_setting() -> anyhow::Result<()> {
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[("KITSULAN_ACCESS_TOKEN_TTL_SECONDS", "59")], "KITSULAN_ACCESS_TOKEN_TTL_SECONDS"),
        (&[("KITSULAN_RATE_LIMIT_SIGN_IN", "lots")], "KITSULAN_RATE_LIMIT_SIGN_IN"),
        (&[("KITSULAN_RATE_LIMIT_CODE_CHECKS", "20/1fortnight")], "KITSULAN_RATE_LIMIT_CODE_CHECKS"),
        (&[("KITSULAN_SIGN_UP", "maybe")], "KITSULAN_SIGN_UP"),
        (
            &[
                ("KITSULAN_SMTP_HOST", "127.0.0.1"),
                ("KITSULAN_SMTP_TLS", "ssl"),
                ("KITSULAN_SMTP_FROM", "a@b.c"),
            ],
            "KITSULAN_SMTP_TLS",
        ),
        (&[("KITSULAN_SMTP_HOST", "127.0.0.1")], "KITSULAN_SMTP_FROM"),
    ];
    for (env, want) in cases {
        let dir = tempfile::tempdir()?;
        let mut vars: Vec<(String, String)> =
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        vars.push(("KITSULAN_DATA_DIR".into(), dir.path().join("data").display().to_string()));
        vars.push(("KITSULAN_LISTEN".into(), "127.0.0.1:0".into()));
        let out = kitsulan_client::admin::run(&["serve"], &vars, dir.path(), None).await?;
        assert_eq!(out.code, Some(2), "{env:?}: {out:?}");
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{env:?}: {}", out.stderr);
        assert!(out.stderr.contains(&format!("invalid setting {want}")), "{env:?}: {}", out.stderr);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The operator: `kitsulan admin` beside the running server

#[tokio::test]
async fn admin_creates_lists_and_imports_users() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let created = server
        .admin(&[
            "user",
            "create",
            "Carol",
            "--display-name",
            "Carol Ann",
            "--email",
            "carol@kitsulan.test",
            "--json",
        ])
        .await?
        .ok()?
        .json()?;
    assert_eq!(created["username"], "carol");
    let password = created["password"].as_str().unwrap().to_owned();
    assert!(password.chars().count() >= 8, "{created}");
    let mut carol = client(&server).await;
    carol.sign_in("carol", &password).await?;
    let account = carol.my_account().await?;
    assert_eq!((account.display_name.as_str(), account.email.as_str()), ("Carol Ann", "carol@kitsulan.test"));
    assert_eq!(created["id"], account.id.as_str());

    // Without --json the generated password is printed for a person to pass on.
    let plain = server.admin(&["user", "create", "dan"]).await?.ok()?;
    let mut works = None;
    for word in plain.stdout.split_whitespace() {
        let word = word.trim_matches(|c: char| "\"'`:,;()[]".contains(c));
        if word.len() >= 8 && carol.another_device().sign_in("dan", word).await.is_ok() {
            works = Some(word.to_owned());
            break;
        }
    }
    assert!(works.is_some(), "no password that works in:\n{}", plain.stdout);

    server
        .admin_with_stdin(&["user", "create", "dave", "--password-stdin"], "dave's own password\n")
        .await?
        .ok()?;
    carol.another_device().sign_in("dave", "dave's own password").await?;

    // Mistakes are refused with a non-zero exit and a message.
    for args in [
        &["user", "create", "carol"][..],
        &["user", "create", "\u{430}lice"][..],
        &["user", "reset-password", "nobody"][..],
        &["user", "disable", "nobody"][..],
    ] {
        let out = server.admin(args).await?;
        assert!(!out.success() && !out.stderr.trim().is_empty(), "{args:?}: {out:?}");
    }

    // A small CSV: header, a full line, a username only, no email.
    let csv = tempfile::NamedTempFile::new()?;
    std::fs::write(
        csv.path(),
        "username,display_name,email\nerin,Erin Example,erin@kitsulan.test\nfrank\ngrace,Grace Hopper\n",
    )?;
    let imported =
        server.admin(&["user", "import", csv.path().to_str().unwrap(), "--json"]).await?.ok()?.json()?;
    let imported = imported.as_array().unwrap_or_else(|| panic!("not an array: {imported}"));
    let names: Vec<&str> = imported.iter().map(|u| u["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["erin", "frank", "grace"]);
    for (user, display_name) in imported.iter().zip(["Erin Example", "frank", "Grace Hopper"]) {
        let mut device = client(&server).await;
        device.sign_in(user["username"].as_str().unwrap(), user["password"].as_str().unwrap()).await?;
        assert_eq!(device.my_account().await?.display_name, display_name);
    }

    let users = admin_users(&server).await;
    let listed: Vec<&str> = users.iter().map(|u| u["username"].as_str().unwrap()).collect();
    for name in ["carol", "dan", "dave", "erin", "frank", "grace"] {
        assert!(listed.contains(&name), "{name} not in {listed:?}");
    }
    let erin = find_user(&users, "erin").unwrap();
    assert_eq!(erin["email"], "erin@kitsulan.test");
    assert_eq!(
        (erin["disabled"].as_bool(), erin["totp_enabled"].as_bool()),
        (Some(false), Some(false)),
        "{erin}"
    );
    // Without --json the list is for people.
    let table = server.admin(&["user", "list"]).await?.ok()?;
    assert!(table.stdout.contains("grace") && table.stdout.contains("Grace Hopper"), "{}", table.stdout);
    Ok(())
}

#[tokio::test]
async fn admin_reset_lets_a_locked_out_user_back_in() -> anyhow::Result<()> {
    // Alice forgot her password and lost the phone with her authenticator.
    let server = TestServer::start(Database::Sqlite).await?;
    let alice = signed_up(&server, "alice").await;
    enrol_totp(&alice).await;
    let mut phone = client(&server).await;
    assert_refused(phone.sign_in("alice", "what was it again").await, "INVALID_CREDENTIALS");

    let before = now_ms();
    let reset = server.admin(&["user", "reset-password", "alice", "--json"]).await?.ok()?.json()?;
    let code = reset["code"].as_str().unwrap().to_owned();
    assert!(is_admin_code(&code), "{reset}");
    let expires = reset["expires_at_ms"].as_i64().unwrap();
    let day = 24 * 3600 * 1000;
    assert!((before + day - 60_000..=now_ms() + day + 60_000).contains(&expires), "{reset}");
    // The code replaces the password, not the authenticator.
    assert_refused(phone.sign_in_with_code("alice", &code, "").await, "TOTP_REQUIRED");

    server.admin(&["user", "remove-totp", "alice"]).await?.ok()?;
    assert_eq!(find_user(&admin_users(&server).await, "alice").unwrap()["totp_enabled"], false);
    let reset = server.admin(&["user", "reset-password", "alice", "--json"]).await?.ok()?.json()?;
    let code = reset["code"].as_str().unwrap().to_owned();
    assert_refused(
        phone.sign_in_with_code("alice", "AAAA-BBBB-CCCC-DDDD", "").await,
        "ONE_TIME_CODE_INVALID",
    );
    let session = phone.sign_in_with_code("alice", &code, "").await?;
    assert!(session.password_reset_until_ms > now_ms(), "{session:?}");
    assert!(session.password_reset_until_ms <= now_ms() + 15 * 60 * 1000 + 5_000, "{session:?}");
    phone
        .account()
        .change_password(ChangePasswordRequest {
            current_password: String::new(),
            new_password: "a password I'll keep".into(),
            ..Default::default()
        })
        .await?;
    assert!(!phone.my_account().await?.totp_enabled);

    // Back in with the new password; the old one and the used code are dead.
    let mut laptop = client(&server).await;
    laptop.sign_in("alice", "a password I'll keep").await?;
    assert_refused(laptop.sign_in("alice", PASSWORD).await, "INVALID_CREDENTIALS");
    assert_refused(
        laptop.another_device().sign_in_with_code("alice", &code, "").await,
        "ONE_TIME_CODE_INVALID",
    );
    // A password session has no reset window: the current password is needed again.
    let change = laptop
        .account()
        .change_password(ChangePasswordRequest {
            current_password: String::new(),
            new_password: "yet another one".into(),
            ..Default::default()
        })
        .await;
    assert_refused(change, "PASSWORD_REQUIRED");
    Ok(())
}

fn is_admin_code(code: &str) -> bool {
    let groups: Vec<&str> = code.split('-').collect();
    groups.len() == 4 && groups.iter().all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[tokio::test]
async fn a_one_time_code_still_needs_the_totp_code() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let alice = signed_up(&server, "alice").await;
    let mut app = enrol_totp(&alice).await;
    let reset = server.admin(&["user", "reset-password", "alice", "--json"]).await?.ok()?.json()?;
    let code = reset["code"].as_str().unwrap().to_owned();
    let mut phone = client(&server).await;
    assert_refused(phone.sign_in_with_code("alice", &code, "").await, "TOTP_REQUIRED");
    assert_refused(phone.sign_in_with_code("alice", &code, &app.wrong_code(0)).await, "TOTP_INVALID");
    // Sent again with both, as TOTP_REQUIRED asks.
    let totp = app.fresh_code().await;
    let session = phone.sign_in_with_code("alice", &code, &totp).await?;
    assert!(session.password_reset_until_ms > now_ms());
    Ok(())
}

#[tokio::test]
async fn a_disabled_account_cannot_sign_in_and_its_sessions_stop() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let mut laptop = signed_up(&server, "alice").await;
    let bob = signed_up(&server, "bob").await;
    let mut phone = laptop.another_device();
    phone.sign_in("alice", PASSWORD).await?;

    server.admin(&["user", "disable", "alice"]).await?.ok()?;
    assert_eq!(find_user(&admin_users(&server).await, "alice").unwrap()["disabled"], true);
    let mut tablet = laptop.another_device();
    assert_refused(tablet.sign_in("alice", PASSWORD).await, "ACCOUNT_DISABLED");
    // Sessions already open stop at once, and cannot be refreshed back to life.
    assert_refused_with(laptop.my_account().await, &["ACCOUNT_DISABLED", "SESSION_INVALID"]);
    assert_refused_with(
        phone.devices().list_devices(ListDevicesRequest {}).await,
        &["ACCOUNT_DISABLED", "SESSION_INVALID"],
    );
    assert_refused_with(laptop.refresh().await, &["ACCOUNT_DISABLED", "REFRESH_TOKEN_INVALID"]);
    bob.my_account().await?;

    server.admin(&["user", "enable", "alice"]).await?.ok()?;
    assert_eq!(find_user(&admin_users(&server).await, "alice").unwrap()["disabled"], false);
    tablet.sign_in("alice", PASSWORD).await?;
    assert_eq!(tablet.my_account().await?.username, "alice");
    Ok(())
}

#[tokio::test]
async fn admin_lists_and_revokes_devices_while_the_server_runs() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let laptop = signed_up(&server, "alice").await;
    let mut phone = laptop.another_device();
    phone.sign_in_as("alice", PASSWORD, "Phone").await?;

    let listed = server.admin(&["device", "list", "alice", "--json"]).await?.ok()?.json()?;
    let listed: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {listed}"))
        .iter()
        .map(|d| (d["id"].as_str().unwrap(), d["name"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [(laptop.device_id(), "Laptop"), (phone.device_id(), "Phone")]);

    server.admin(&["device", "revoke", phone.device_id()]).await?.ok()?;
    assert_refused(phone.my_account().await, "SESSION_INVALID");
    assert_refused_with(phone.refresh().await, &["REFRESH_TOKEN_INVALID", "REFRESH_TOKEN_REUSED"]);
    laptop.my_account().await?;
    let listed = server.admin(&["device", "list", "alice", "--json"]).await?.ok()?.json()?;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let mine = laptop.devices().list_devices(ListDevicesRequest {}).await?.into_inner().devices;
    assert_eq!(mine.len(), 1);

    let out = server.admin(&["device", "revoke", &uuid::Uuid::now_v7().to_string()]).await?;
    assert!(!out.success(), "revoking an unknown device: {out:?}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Brute force: how far does guessing get?

#[tokio::test]
async fn guessing_an_emailed_code_is_stopped() -> anyhow::Result<()> {
    // Default limits: this is what an attacker on one address gets.
    let sink = SmtpSink::start().await?;
    let server = TestServer::start_with(Options::new(Database::Sqlite).smtp(&sink)).await?;
    let alice = signed_up(&server, "alice").await;
    let email = "alice@kitsulan.test";
    alice.account().set_email(owner_sets_email(email)).await?;
    let code = mailed_code(&sink, email).await;
    alice.account().verify_email(VerifyEmailRequest { code }).await?;

    let mut attacker = client(&server).await;
    attacker.auth().request_sign_in_code(RequestSignInCodeRequest { email: email.into() }).await?;
    let mut requests_ok = 1;
    let real = mailed_code(&sink, email).await;

    // Five wrong tries kill the code: then even the right one fails.
    let mut checks = 0; // SignInWithCode calls answered other than RATE_LIMITED
    // Wrong guesses at a code that was still live, i.e. guesses that could have been right.
    let mut live_guesses = 0;
    for n in 0..5 {
        let guess = wrong_guess(&real, n);
        assert_refused(attacker.sign_in_with_code(email, &guess, "").await, "ONE_TIME_CODE_INVALID");
        checks += 1;
        live_guesses += 1;
    }
    assert_refused(attacker.sign_in_with_code(email, &real, "").await, "ONE_TIME_CODE_INVALID");
    checks += 1;

    // New codes: at most 5 per hour (per address and per email), counting the first.
    let mut limited: Option<Refusal> = None;
    for _ in 0..10 {
        match attacker.auth().request_sign_in_code(RequestSignInCodeRequest { email: email.into() }).await {
            Ok(_) => requests_ok += 1,
            Err(status) => {
                limited = Some(assert_refused(Err::<(), _>(status), "RATE_LIMITED"));
                break;
            }
        }
    }
    let limited = limited.expect("code requests were never rate limited");
    assert!(requests_ok <= 5, "{requests_ok} sign-in codes were sent within an hour");
    println!(
        "code requests: {requests_ok} answered before RATE_LIMITED (retry after {:?} s)",
        limited.retry_after
    );

    // Keep guessing against the newest code: the account's failure budget (10 per 15 minutes)
    // stops it, and then the right code is refused too.
    let mut newest = None;
    while let Ok(mail) = sink.wait_for_mail(email, Duration::from_secs(2)).await {
        newest = Some(mail.code()?);
    }
    let newest = newest.expect("no mail for the accepted code requests");
    let mut tries_on_newest = 0;
    let stopped = loop {
        match attacker.sign_in_with_code(email, &wrong_guess(&newest, 100 + tries_on_newest), "").await {
            Err(status) if kitsulan_client::client::reason(&status).as_deref() == Some("RATE_LIMITED") => {
                break assert_refused(Err::<(), _>(status), "RATE_LIMITED");
            }
            result => {
                assert_refused(result, "ONE_TIME_CODE_INVALID");
                checks += 1;
                if tries_on_newest < 5 {
                    live_guesses += 1;
                }
            }
        }
        tries_on_newest += 1;
        assert!(tries_on_newest <= 30, "guessing Alice's codes was never stopped");
    };
    assert!(
        live_guesses <= 10,
        "{live_guesses} wrong guesses at live codes of one account before RATE_LIMITED"
    );
    assert_refused(attacker.sign_in_with_code(email, &newest, "").await, "RATE_LIMITED");
    println!(
        "email codes: {live_guesses} guesses at Alice's live codes before RATE_LIMITED (retry after \
         {:?} s); each code dies after 5 wrong tries; chance ≈ {live_guesses} in 10^6 per 15 minutes",
        stopped.retry_after
    );

    // Codes for other logins from the same address: at most 20 checks per 10 minutes in all.
    let mut n = 0;
    loop {
        let login = format!("nobody{n}@kitsulan.test");
        match attacker.sign_in_with_code(&login, "123456", "").await {
            Err(status) if kitsulan_client::client::reason(&status).as_deref() == Some("RATE_LIMITED") => {
                assert_refused(Err::<(), _>(status), "RATE_LIMITED");
                break;
            }
            result => {
                assert_refused(result, "ONE_TIME_CODE_INVALID");
                checks += 1;
            }
        }
        n += 1;
        assert!(checks <= 60, "one-time code checks were never limited per address");
    }
    assert!(checks <= 20, "{checks} one-time code checks from one address before RATE_LIMITED");
    println!("one-time code checks from one address: {checks} before RATE_LIMITED (limit 20 per 10 min)");
    // Alice herself is unaffected where she is signed in.
    alice.my_account().await?;
    Ok(())
}

#[tokio::test]
async fn guessing_totp_codes_is_stopped_per_account() -> anyhow::Result<()> {
    // The attacker knows the password and comes from a new address each time (the server trusts
    // a proxy's X-Forwarded-For), so only the per-account failure budget can stop it.
    let server =
        TestServer::start_with(Options::new(Database::Sqlite).env("KITSULAN_TRUST_FORWARDED_FOR", "true"))
            .await?;
    let alice = signed_up(&server, "alice").await;
    let mut app = enrol_totp(&alice).await;
    let base = client(&server).await;
    let attempt = |n: u32, totp_code: String| {
        let client =
            base.another_device().with_header("x-forwarded-for", &format!("192.0.2.{}", n % 250 + 1));
        async move { client.unwrap().sign_in_with(totp_sign_in(totp_code)).await }
    };
    let mut guesses = 0;
    let stopped = loop {
        let result = attempt(guesses, app.wrong_code(guesses)).await;
        if result.as_ref().err().and_then(kitsulan_client::client::reason).as_deref() == Some("RATE_LIMITED")
        {
            break assert_refused(result, "RATE_LIMITED");
        }
        assert_refused(result, "TOTP_INVALID");
        guesses += 1;
        assert!(guesses <= 100, "TOTP guessing was never stopped");
    };
    assert!(guesses <= 10, "{guesses} TOTP guesses before RATE_LIMITED");
    // Once stopped, the right code does not get through either.
    let right = app.fresh_code().await;
    assert_refused(attempt(999, right).await, "RATE_LIMITED");
    println!(
        "TOTP: {guesses} guesses out of 10^6 before RATE_LIMITED (retry after {:?} s); \
         with 3 codes valid at a time, chance ≈ {} in 10^6 per 15 minutes",
        stopped.retry_after,
        3 * guesses
    );
    alice.my_account().await?;
    Ok(())
}

fn totp_sign_in(totp_code: String) -> SignInRequest {
    SignInRequest { username: "alice".into(), password: PASSWORD.into(), device_name: "x".into(), totp_code }
}

#[tokio::test]
async fn guessing_passwords_is_stopped_per_account() -> anyhow::Result<()> {
    // Each address has its own budget of failures per account (docs/security.md); this is the
    // ceiling over all addresses together, made small here to keep the test short.
    let server = TestServer::start_with(
        Options::new(Database::Sqlite)
            .env("KITSULAN_TRUST_FORWARDED_FOR", "true")
            .env("KITSULAN_RATE_LIMIT_ACCOUNT_FAILURES", "20/1h"),
    )
    .await?;
    let alice = signed_up(&server, "alice").await;
    let base = client(&server).await;
    let mut guesses = 0;
    loop {
        let mut device =
            base.another_device().with_header("x-forwarded-for", &format!("198.51.100.{}", guesses + 1))?;
        let result = device.sign_in("alice", &format!("guess number {guesses}")).await;
        if result.as_ref().err().and_then(kitsulan_client::client::reason).as_deref() == Some("RATE_LIMITED")
        {
            assert_refused(result, "RATE_LIMITED");
            break;
        }
        assert_refused(result, "INVALID_CREDENTIALS");
        guesses += 1;
        assert!(guesses <= 100, "password guessing was never stopped");
    }
    assert!(guesses <= 20, "{guesses} password guesses before RATE_LIMITED");
    let mut device = base.another_device().with_header("x-forwarded-for", "203.0.113.200")?;
    assert_refused(device.sign_in("alice", PASSWORD).await, "RATE_LIMITED");
    println!("passwords: {guesses} guesses per account before RATE_LIMITED, from any number of addresses");
    alice.my_account().await?;
    Ok(())
}

#[tokio::test]
async fn people_find_each_other_by_username_and_see_public_profiles_only() -> anyhow::Result<()> {
    let server = TestServer::start(Database::Sqlite).await?;
    let alice = signed_up(&server, "alice").await;
    let bob = signed_up(&server, "bob").await;
    let bob_id = bob.my_account().await.unwrap().id;

    // Usernames are matched as they are normalised (case and surrounding space do not matter).
    let found = alice
        .account()
        .lookup_account(LookupAccountRequest { username: "  Bob ".into() })
        .await?
        .into_inner()
        .profile
        .expect("a profile");
    assert_eq!((found.account_id.as_str(), found.username.as_str()), (bob_id.as_str(), "bob"));
    assert_refused(
        alice.account().lookup_account(LookupAccountRequest { username: "nobody".into() }).await,
        "ACCOUNT_NOT_FOUND",
    );
    assert_refused(
        alice.account().lookup_account(LookupAccountRequest { username: "no/such".into() }).await,
        "USERNAME_INVALID",
    );
    assert_refused(
        client(&server).await.account().lookup_account(LookupAccountRequest { username: "bob".into() }).await,
        "SESSION_INVALID",
    );

    // Profiles of several ids at once: unknown ones are left out; the limit is enforced.
    let unknown = uuid::Uuid::now_v7().to_string();
    let profiles = alice
        .account()
        .get_profiles(GetProfilesRequest { account_ids: vec![bob_id.clone(), unknown] })
        .await?
        .into_inner()
        .profiles;
    assert_eq!(profiles.len(), 1);
    assert_eq!((profiles[0].username.as_str(), profiles[0].display_name.as_str()), ("bob", "bob"));
    let too_many = (0..1001).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    assert_refused(
        alice.account().get_profiles(GetProfilesRequest { account_ids: too_many }).await,
        "TOO_MANY_ACCOUNTS",
    );

    // A disabled account cannot be found by name.
    server.admin(&["user", "disable", "bob"]).await?.ok()?;
    assert_refused(
        alice.account().lookup_account(LookupAccountRequest { username: "bob".into() }).await,
        "ACCOUNT_NOT_FOUND",
    );
    Ok(())
}
