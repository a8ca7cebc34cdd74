//! Taking an account over: a thief holding a copied access or refresh token, and a stranger
//! guessing passwords. What a thief could do before this was closed: set their own email
//! address with the access token alone, verify it, sign in by emailed code and set a new
//! password, locking the owner out for good; keep reading live messages after the stolen
//! refresh token was detected; guess the password behind the session without limit; lock the
//! owner out of signing in with ten wrong guesses from anywhere.

use std::time::Duration;

use futures_util::future::join_all;
use kitsulan_client::client::reason;
use kitsulan_client::gateway::{CLOSE_SIGNED_OUT, GatewayClient};
use kitsulan_client::people::{PASSWORD, signed_in, signed_up};
use kitsulan_client::{Authenticator, Client, Database, Options, SmtpSink, TestServer, assert_refused};
use kitsulan_proto::v1::{
    BeginTotpEnrollmentRequest, ChangePasswordRequest, DisableTotpRequest, ListDevicesRequest,
    SetEmailRequest, VerifyEmailRequest,
};

const MAIL_WAIT: Duration = Duration::from_secs(20);
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// What a thief who copied `victim`'s tokens holds: the same session, used from elsewhere.
fn copy_of(victim: &Client) -> Client {
    let mut thief = victim.another_device();
    thief.set_session(victim.session().cloned());
    thief
}

async fn set_email(client: &Client, email: &str, password: &str, totp: &str) -> Result<(), tonic::Status> {
    let request =
        SetEmailRequest { email: email.into(), current_password: password.into(), totp_code: totp.into() };
    client.account().set_email(request).await.map(|_| ())
}

async fn change_password(
    client: &Client,
    current: &str,
    new: &str,
    keep_other_devices: bool,
) -> Result<u32, tonic::Status> {
    let request = ChangePasswordRequest {
        current_password: current.into(),
        new_password: new.into(),
        totp_code: String::new(),
        keep_other_devices,
    };
    client.account().change_password(request).await.map(|r| r.into_inner().devices_signed_out)
}

async fn connected(server: &TestServer, client: &Client) -> GatewayClient {
    GatewayClient::connect(&server.url(), client.access_token(), None).await.unwrap()
}

async fn expect_signed_out(gateway: &mut GatewayClient, who: &str) {
    let (code, why) = gateway
        .wait_closed(CLOSE_WAIT)
        .await
        .unwrap_or_else(|e| panic!("{who}: the socket stayed open: {e:#}"));
    assert_eq!(code, CLOSE_SIGNED_OUT, "{who}: closed with {code} ({why})");
}

#[tokio::test]
async fn a_copied_access_token_cannot_change_the_email_password_or_totp() {
    let sink = SmtpSink::start().await.unwrap();
    let server = TestServer::start_with(Options::new(Database::Sqlite).smtp(&sink)).await.unwrap();
    let alice = signed_up(&server, "alice").await;
    set_email(&alice, "alice@kitsulan.test", PASSWORD, "").await.unwrap();
    let code = sink.wait_for_mail("alice@kitsulan.test", MAIL_WAIT).await.unwrap().code().unwrap();
    alice.account().verify_email(VerifyEmailRequest { code }).await.unwrap();

    // The thief has Alice's access token, not her password.
    let thief = copy_of(&alice);
    for guess in ["", "not her password"] {
        assert_refused(set_email(&thief, "thief@evil.test", guess, "").await, "PASSWORD_REQUIRED");
        assert_refused(
            change_password(&thief, guess, "the thief's password", false).await,
            "PASSWORD_REQUIRED",
        );
        let totp = thief
            .account()
            .begin_totp_enrollment(BeginTotpEnrollmentRequest { password: guess.into() })
            .await;
        assert_refused(totp, "PASSWORD_REQUIRED");
    }
    let account = alice.my_account().await.unwrap();
    assert_eq!(account.email, "alice@kitsulan.test", "the thief changed the email address");
    assert!(account.email_verified && !account.totp_enabled);
    assert_eq!(sink.count_for("thief@evil.test"), 0, "a code went to the thief's mailbox");
    let mut laptop = Client::connect(&server.url()).await.unwrap();
    laptop.sign_in("alice", PASSWORD).await.expect("Alice's password still works");

    // Alice herself, with her password, moves to a new address; the old one is told.
    set_email(&alice, "alice@new.test", PASSWORD, "").await.unwrap();
    let notice = sink.wait_for_mail("alice@kitsulan.test", MAIL_WAIT).await.unwrap();
    assert!(notice.body.contains("alice@new.test"), "the old address was not told: {notice:?}");
    assert!(notice.code().is_err(), "the notice to the old address carries a code: {notice:?}");
    sink.wait_for_mail("alice@new.test", MAIL_WAIT).await.unwrap().code().unwrap();

    // With TOTP on, the thief needs the authenticator too, even with the password.
    let (mut app, _) = Authenticator::enrol(&alice, PASSWORD).await.unwrap();
    assert_refused(set_email(&thief, "thief@evil.test", PASSWORD, "").await, "TOTP_REQUIRED");
    assert_refused(change_password(&thief, PASSWORD, "the thief's password", false).await, "TOTP_REQUIRED");
    let off = thief
        .account()
        .disable_totp(DisableTotpRequest { password: PASSWORD.into(), code: app.wrong_code(1) })
        .await;
    assert_refused(off, "TOTP_INVALID");
    let code = app.fresh_code().await;
    set_email(&alice, "alice@third.test", PASSWORD, &code).await.expect("password and a fresh code");
    assert_eq!(alice.my_account().await.unwrap().email, "alice@third.test");
}

#[tokio::test]
async fn a_new_password_signs_every_other_device_out_unless_kept() {
    let server = TestServer::start(Database::Sqlite).await.unwrap();
    let laptop = signed_up(&server, "alice").await;
    // A thief's copy of the phone's session, connected and listening.
    let phone = signed_in(&server, "alice").await;
    let tablet = signed_in(&server, "alice").await;
    let mut phone_socket = connected(&server, &phone).await;
    let mut tablet_socket = connected(&server, &tablet).await;
    let mut laptop_socket = connected(&server, &laptop).await;

    // Keeping the other devices is a choice; they stay.
    assert_eq!(change_password(&laptop, PASSWORD, "second password here", true).await.unwrap(), 0);
    phone.my_account().await.expect("kept devices stay signed in");

    assert_eq!(
        change_password(&laptop, "second password here", "third password here", false).await.unwrap(),
        2
    );
    expect_signed_out(&mut phone_socket, "the phone").await;
    expect_signed_out(&mut tablet_socket, "the tablet").await;
    assert_refused(phone.my_account().await, "SESSION_INVALID");
    assert_refused(tablet.my_account().await, "SESSION_INVALID");
    let devices = laptop.devices().list_devices(ListDevicesRequest {}).await.unwrap().into_inner().devices;
    assert_eq!(devices.len(), 1, "{devices:?}");
    laptop.my_account().await.expect("the device that changed the password stays");
    assert!(laptop_socket.closed().is_none(), "the laptop's own socket was closed");
    laptop_socket.heartbeat(7).unwrap();
    laptop_socket.expect_heartbeat_ack(7, CLOSE_WAIT).await.unwrap();
}

#[tokio::test]
async fn a_reused_refresh_token_cuts_the_thief_off_on_every_node() {
    const BUS: &str = "nats://127.0.0.1:4222";
    let node_a = TestServer::start_with(Options::new(Database::FreshPostgres).env("KITSULAN_BUS_URL", BUS))
        .await
        .unwrap();
    let url = node_a.database_url().unwrap().to_owned();
    let node_b =
        TestServer::start_with(Options::new(Database::Url(url)).env("KITSULAN_BUS_URL", BUS)).await.unwrap();
    let mut alice = signed_up(&node_a, "alice").await;
    // The thief copied the refresh token and used it first, from node A; now they listen.
    let mut thief = copy_of(&alice);
    thief.refresh().await.unwrap();
    let mut thief_socket = connected(&node_a, &thief).await;

    // Alice's app refreshes with the token it holds, through node B: a used token, so theft.
    let mut alice_on_b = Client::connect(&node_b.url()).await.unwrap();
    alice_on_b.set_session(alice.session().cloned());
    assert_refused(alice_on_b.refresh().await, "REFRESH_TOKEN_REUSED");
    expect_signed_out(&mut thief_socket, "the thief's socket on the other node").await;
    assert_refused(thief.my_account().await, "SESSION_INVALID");
    assert_refused(thief.refresh().await, "REFRESH_TOKEN_INVALID");

    // Alice signs in again with her password; the thief's copy is worth nothing.
    alice.sign_in("alice", PASSWORD).await.unwrap();
    alice.my_account().await.unwrap();
}

#[tokio::test]
async fn guessing_the_password_behind_a_session_stops_like_signing_in() {
    let server =
        TestServer::start_with(Options::new(Database::Sqlite).env("KITSULAN_TRUST_FORWARDED_FOR", "true"))
            .await
            .unwrap();
    let alice = signed_up(&server, "alice").await;
    let thief = copy_of(&alice).with_header("x-forwarded-for", "198.51.100.66").unwrap();
    // Thirty guesses at once: checked one at a time, so no more than the limit are tried.
    let guesses =
        join_all((0..30).map(|n| {
            let thief = &thief;
            async move {
                change_password(thief, &format!("guess number {n}"), "the thief's password", false).await
            }
        }))
        .await;
    let wrong = guesses
        .iter()
        .filter(|r| r.as_ref().err().and_then(reason).as_deref() == Some("PASSWORD_REQUIRED"))
        .count();
    let limited = guesses
        .iter()
        .filter(|r| r.as_ref().err().and_then(reason).as_deref() == Some("RATE_LIMITED"))
        .count();
    assert_eq!(wrong + limited, 30, "{guesses:?}");
    assert!(wrong <= 10, "{wrong} passwords were tried behind the session");
    println!("behind a session: {wrong} password guesses before RATE_LIMITED (30 sent at once)");
    // The same budget as signing in: the thief's address cannot guess there either ...
    let mut at_the_door = Client::connect(&server.url())
        .await
        .unwrap()
        .with_header("x-forwarded-for", "198.51.100.66")
        .unwrap();
    assert_refused(at_the_door.sign_in("alice", PASSWORD).await, "RATE_LIMITED");
    let totp =
        thief.account().begin_totp_enrollment(BeginTotpEnrollmentRequest { password: PASSWORD.into() }).await;
    assert_refused(totp, "RATE_LIMITED");
    // ... while Alice, elsewhere, still signs in and changes her password.
    let mut phone =
        Client::connect(&server.url()).await.unwrap().with_header("x-forwarded-for", "203.0.113.5").unwrap();
    phone.sign_in("alice", PASSWORD).await.expect("the owner from her own address");
    change_password(&phone, PASSWORD, "a brand new password", false).await.unwrap();
}

#[tokio::test]
async fn a_strangers_wrong_guesses_do_not_lock_the_owner_out() {
    let server = TestServer::start_with(
        Options::new(Database::Sqlite)
            .env("KITSULAN_TRUST_FORWARDED_FOR", "true")
            .env("KITSULAN_RATE_LIMIT_ACCOUNT_FAILURES", "40/1h"),
    )
    .await
    .unwrap();
    let _alice = signed_up(&server, "alice").await;
    let base = Client::connect(&server.url()).await.unwrap();
    let mut stranger = base.another_device().with_header("x-forwarded-for", "198.51.100.7").unwrap();
    let mut tries = 0;
    while reason(&stranger.sign_in("alice", &format!("guess {tries}")).await.unwrap_err()).as_deref()
        == Some("INVALID_CREDENTIALS")
    {
        tries += 1;
        assert!(tries <= 10, "more than 10 guesses from one address");
    }
    assert_eq!(tries, 10);
    assert_refused(stranger.sign_in("alice", PASSWORD).await, "RATE_LIMITED");
    // Alice, at home, is not locked out by the stranger.
    let mut owner = base.another_device().with_header("x-forwarded-for", "203.0.113.5").unwrap();
    owner.sign_in("alice", PASSWORD).await.expect("the owner was locked out by a stranger");

    // Guessing spread over many addresses still stops at the account's ceiling.
    let mut spread = 0;
    loop {
        let mut device =
            base.another_device().with_header("x-forwarded-for", &format!("192.0.2.{}", spread + 1)).unwrap();
        let result = device.sign_in("alice", &format!("spread guess {spread}")).await;
        if reason(result.as_ref().unwrap_err()).as_deref() == Some("RATE_LIMITED") {
            break;
        }
        assert_refused(result, "INVALID_CREDENTIALS");
        spread += 1;
        assert!(spread <= 40, "guessing over many addresses was never stopped");
    }
    assert_eq!(spread, 40 - 10, "the account ceiling counts every address's failures");
}

#[tokio::test]
async fn refresh_is_rate_limited_per_address() {
    let server = TestServer::start_with(
        Options::new(Database::Sqlite)
            .env("KITSULAN_TRUST_FORWARDED_FOR", "true")
            .env("KITSULAN_RATE_LIMIT_REFRESH", "5/1m"),
    )
    .await
    .unwrap();
    let alice = signed_up(&server, "alice").await;
    let mut prober = alice.another_device().with_header("x-forwarded-for", "198.51.100.9").unwrap();
    for n in 0..5 {
        // A prober trying refresh tokens it made up (the attack this limit stops).
        let mut forged = alice.session().cloned().unwrap();
        forged.refresh_token = format!("krt_made_up_by_the_prober_{n}");
        prober.set_session(Some(forged));
        assert_refused(prober.refresh().await, "REFRESH_TOKEN_INVALID");
    }
    assert_refused(prober.refresh().await, "RATE_LIMITED");
    // Another address refreshes as usual.
    let mut app = alice.another_device().with_header("x-forwarded-for", "203.0.113.5").unwrap();
    app.set_session(alice.session().cloned());
    app.refresh().await.expect("a real refresh from another address");
    app.my_account().await.unwrap();
}
