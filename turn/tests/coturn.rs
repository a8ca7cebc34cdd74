//! Our credentials against a real coturn (`turnserver` with `use-auth-secret`), the Pro setup:
//! what the KitsuLAN server issues, coturn accepts; expired or foreign ones it refuses.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, SystemTime};

use kitsulan_turn::{TurnCredentials, TurnSecret};
use support::{Coturn, REFUSED_BY_COTURN, Uclient};

const SECRET: &str = "coturn-shared-test-secret";
const ACCOUNT: &str = "0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6b";
const HOUR: Duration = Duration::from_secs(3600);

fn credentials(secret: &str, issued: SystemTime) -> TurnCredentials {
    TurnCredentials::generate_at(&TurnSecret::new(secret).unwrap(), ACCOUNT, HOUR, &[], issued).unwrap()
}

#[tokio::test]
async fn coturn_accepts_our_credentials_and_refuses_bad_ones() {
    let coturn = Coturn::start(SECRET).await;

    let good = credentials(SECRET, SystemTime::now());
    Uclient::run(coturn.addr, &good.username, &good.password, &["-y"]).await.assert_relayed();

    let expired = credentials(SECRET, SystemTime::now() - 2 * HOUR);
    Uclient::run(coturn.addr, &expired.username, &expired.password, &["-y"])
        .await
        .assert_refused(REFUSED_BY_COTURN);

    let foreign = credentials("not-the-coturn-secret", SystemTime::now());
    Uclient::run(coturn.addr, &foreign.username, &foreign.password, &["-y"])
        .await
        .assert_refused(REFUSED_BY_COTURN);

    let mut tampered = good.clone();
    tampered.username = good.username.replace(ACCOUNT, "0190a5b2-3c4d-7e8f-9a0b-1c2d3e4f5a6c");
    Uclient::run(coturn.addr, &tampered.username, &tampered.password, &["-y"])
        .await
        .assert_refused(REFUSED_BY_COTURN);

    // The refusals were coturn checking credentials, not coturn going away.
    let again = credentials(SECRET, SystemTime::now());
    Uclient::run(coturn.addr, &again.username, &again.password, &["-y"]).await.assert_relayed();
    let log = coturn.log_text();
    assert!(log.contains(&good.username), "coturn's log should show the accepted username:\n{log}");
}
