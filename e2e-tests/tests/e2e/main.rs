//! KitsuLAN's black-box tests, one binary (so the harness is linked once): each module is the
//! tests of one part of the product, run against the real `kitsulan` binary.

/// Runs `scenario` (an `async fn(Database)`) as two tests: on a fresh SQLite server and on a
/// fresh PostgreSQL one. Defined before the modules so each can use it.
macro_rules! on_both_databases {
    ($scenario:ident: $sqlite:ident, $postgres:ident) => {
        #[tokio::test]
        async fn $sqlite() {
            $scenario(kitsulan_client::Database::Sqlite).await;
        }

        #[tokio::test]
        async fn $postgres() {
            $scenario(kitsulan_client::Database::FreshPostgres).await;
        }
    };
}

mod accounts;
mod admin_backup;
mod arm64;
mod attachments;
mod avatars;
mod backup;
mod calls;
mod cloud;
mod conversations;
mod e2ee;
mod foundation;
mod gateway;
mod groups;
mod guilds;
mod https;
mod key_backup;
mod lan;
mod push;
mod security;
mod voice;
mod webrtc_calls;
