//! Conformance of `BackupStore`: key backup versions and their session keys.

use super::Fresh;
use super::accounts::new_account;
use crate::ids::{AccountId, BackupVersionId};
use crate::{
    BackupPage, BackupSessionRecord, ConnectOptions, CreateVersionOutcome, DatabaseUrl, DeleteVersionOutcome,
    PostgresStore, PutSessionsOutcome, SqliteStore, now_ms,
};

/// The service's limit; the tests that reach a limit pass a small one instead.
const LIMIT: i64 = 200_000;
/// The service's limit of versions an account keeps.
const VERSIONS: i64 = 3;

async fn account(db: &Fresh, username: &str) -> anyhow::Result<AccountId> {
    let account = new_account(username);
    db.store.create_account_without_device(&account).await?;
    Ok(account.id)
}

async fn version(db: &Fresh, account: AccountId, byte: u8) -> anyhow::Result<BackupVersionId> {
    let version = BackupVersionId::generate();
    let created = db
        .store
        .create_backup_version(account, version, &[byte; 40], &[byte.wrapping_add(1); 60], now_ms(), VERSIONS)
        .await?;
    match created {
        CreateVersionOutcome::Created(v) => assert_eq!((v.version, v.session_count), (version, 0)),
        other => panic!("version {byte} not created: {other:?}"),
    }
    Ok(version)
}

/// How many versions `account` keeps, counted in the table.
async fn stored_versions(db: &Fresh, account: AccountId) -> anyhow::Result<i64> {
    const COUNT: &str = "SELECT COUNT(*) FROM backup_versions WHERE account_id = $1";
    Ok(match &db.url {
        DatabaseUrl::Sqlite(path) => {
            let raw = SqliteStore::open(path, &ConnectOptions::default()).await?;
            let count = sqlx::query_scalar(COUNT).bind(account.as_uuid()).fetch_one(&raw.pool).await?;
            raw.pool.close().await;
            count
        }
        DatabaseUrl::Postgres(url) => {
            let raw = PostgresStore::connect(url, &ConnectOptions::default()).await?;
            let count = sqlx::query_scalar(COUNT).bind(account.as_uuid()).fetch_one(&raw.pool).await?;
            raw.pool.close().await;
            count
        }
    })
}

fn session(id: &str, byte: u8) -> BackupSessionRecord {
    BackupSessionRecord { session_id: id.to_owned(), data: vec![byte; 100] }
}

fn sessions(ids: &[&str], byte: u8) -> Vec<BackupSessionRecord> {
    ids.iter().map(|id| session(id, byte)).collect()
}

/// Every session key of `version`, read page by page (`page` at a time).
async fn all_sessions(
    db: &Fresh,
    account: AccountId,
    version: BackupVersionId,
    page: u32,
) -> anyhow::Result<Option<Vec<BackupSessionRecord>>> {
    let mut all: Vec<BackupSessionRecord> = Vec::new();
    loop {
        let after = all.last().map(|s| s.session_id.clone()).unwrap_or_default();
        let Some(BackupPage { sessions, more }) =
            db.store.backup_sessions(account, version, &after, page).await?
        else {
            return Ok(None);
        };
        assert!(sessions.len() <= usize::try_from(page)?, "a page over its limit");
        if more {
            assert_eq!(sessions.len(), usize::try_from(page)?, "a short page with more after it");
        }
        all.extend(sessions);
        if !more {
            return Ok(Some(all));
        }
    }
}

async fn put(
    db: &Fresh,
    account: AccountId,
    version: BackupVersionId,
    put: &[BackupSessionRecord],
    max: i64,
) -> anyhow::Result<PutSessionsOutcome> {
    Ok(db.store.put_backup_sessions(account, version, put, max).await?)
}

pub(super) async fn a_new_version_becomes_current_and_older_ones_stay(db: &Fresh) -> anyhow::Result<()> {
    let alice = account(db, "alice").await?;
    assert_eq!(db.store.current_backup(alice).await?, None);
    let before = now_ms();
    let first = version(db, alice, 1).await?;
    let current = db.store.current_backup(alice).await?.expect("a current version");
    assert_eq!((current.version, current.session_count), (first, 0));
    assert_eq!((&current.auth_data, &current.identity), (&vec![1; 40], &vec![2; 60]));
    assert!(current.created_at_ms >= before, "{current:?}");
    assert_eq!(
        put(db, alice, first, &sessions(&["s1", "s2"], 7), LIMIT).await?,
        PutSessionsOutcome::Stored { session_count: 2 }
    );

    let second = version(db, alice, 3).await?;
    let current = db.store.current_backup(alice).await?.expect("a current version");
    assert_eq!((current.version, current.session_count, current.auth_data), (second, 0, vec![3; 40]));
    // The older version is still readable, so a rotation cut short loses nothing.
    assert_eq!(all_sessions(db, alice, first, 10).await?, Some(sessions(&["s1", "s2"], 7)));
    assert_eq!(all_sessions(db, alice, second, 10).await?, Some(Vec::new()));

    // There is no such account.
    let nobody = AccountId::generate();
    assert_eq!(
        db.store
            .create_backup_version(nobody, BackupVersionId::generate(), b"a", b"i", now_ms(), VERSIONS)
            .await?,
        CreateVersionOutcome::NoAccount
    );
    assert_eq!(db.store.current_backup(nobody).await?, None);
    Ok(())
}

pub(super) async fn another_accounts_versions_are_invisible_and_untouchable(
    db: &Fresh,
) -> anyhow::Result<()> {
    let alice = account(db, "alice").await?;
    let mallory = account(db, "mallory").await?;
    let old = version(db, alice, 1).await?;
    put(db, alice, old, &sessions(&["old"], 1), LIMIT).await?;
    let current = version(db, alice, 2).await?;
    put(db, alice, current, &sessions(&["a", "b"], 2), LIMIT).await?;
    let own = version(db, mallory, 9).await?;

    assert_eq!(db.store.current_backup(mallory).await?.map(|v| v.version), Some(own));
    for theirs in [old, current] {
        assert_eq!(db.store.backup_sessions(mallory, theirs, "", 500).await?, None, "read");
        assert_eq!(
            put(db, mallory, theirs, &sessions(&["a", "x"], 66), LIMIT).await?,
            PutSessionsOutcome::NotFound
        );
        for delete_current in [false, true] {
            assert_eq!(
                db.store.delete_backup_version(mallory, theirs, delete_current).await?,
                DeleteVersionOutcome::NotFound
            );
        }
    }
    // Alice's backup is as she left it, and Mallory's own is untouched by her attempts.
    assert_eq!(
        db.store.current_backup(alice).await?.map(|v| (v.version, v.session_count)),
        Some((current, 2))
    );
    assert_eq!(all_sessions(db, alice, current, 10).await?, Some(sessions(&["a", "b"], 2)));
    assert_eq!(all_sessions(db, alice, old, 10).await?, Some(sessions(&["old"], 1)));
    assert_eq!(all_sessions(db, mallory, own, 10).await?, Some(Vec::new()));
    Ok(())
}

pub(super) async fn puts_to_a_version_that_is_not_current_are_refused(db: &Fresh) -> anyhow::Result<()> {
    let alice = account(db, "alice").await?;
    let first = version(db, alice, 1).await?;
    put(db, alice, first, &sessions(&["s1"], 1), LIMIT).await?;
    let second = version(db, alice, 2).await?;
    // A device that has not seen the rotation yet: refused whole, nothing written anywhere.
    assert_eq!(put(db, alice, first, &sessions(&["s1", "s2"], 5), LIMIT).await?, PutSessionsOutcome::Stale);
    assert_eq!(all_sessions(db, alice, first, 10).await?, Some(sessions(&["s1"], 1)));
    assert_eq!(all_sessions(db, alice, second, 10).await?, Some(Vec::new()));
    assert_eq!(db.store.current_backup(alice).await?.map(|v| v.session_count), Some(0));
    // An unknown version is not found (not stale).
    assert_eq!(
        put(db, alice, BackupVersionId::generate(), &sessions(&["s1"], 1), LIMIT).await?,
        PutSessionsOutcome::NotFound
    );
    Ok(())
}

pub(super) async fn a_put_replaces_the_entry_of_the_same_session_id(db: &Fresh) -> anyhow::Result<()> {
    let alice = account(db, "alice").await?;
    let v = version(db, alice, 1).await?;
    assert_eq!(
        put(db, alice, v, &sessions(&["a", "b"], 1), LIMIT).await?,
        PutSessionsOutcome::Stored { session_count: 2 }
    );
    // "a" again (a better copy of the session, from an earlier index) and one new id.
    let again = vec![session("a", 9), session("c", 3)];
    assert_eq!(put(db, alice, v, &again, LIMIT).await?, PutSessionsOutcome::Stored { session_count: 3 });
    assert_eq!(
        put(db, alice, v, &[session("b", 8)], LIMIT).await?,
        PutSessionsOutcome::Stored { session_count: 3 }
    );
    assert_eq!(
        all_sessions(db, alice, v, 10).await?,
        Some(vec![session("a", 9), session("b", 8), session("c", 3)])
    );
    assert_eq!(db.store.current_backup(alice).await?.map(|c| c.session_count), Some(3));
    Ok(())
}

pub(super) async fn sessions_come_in_pages_in_byte_order(db: &Fresh) -> anyhow::Result<()> {
    let alice = account(db, "alice").await?;
    let v = version(db, alice, 1).await?;
    // Upper case before lower case, digits before letters, "é" (0xC3 0xA9) after "z": the UTF-8
    // byte order, not a locale's order.
    let ids = ["b", "B", "a", "Z9", "aa", "0", "z", "é", "a+/=", "AAAA"];
    put(db, alice, v, &sessions(&ids, 4), LIMIT).await?;
    let mut expected: Vec<&str> = ids.to_vec();
    expected.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
    for page in [1, 3, 4, 10, 500] {
        let listed = all_sessions(db, alice, v, page).await?.expect("found");
        let listed: Vec<&str> = listed.iter().map(|s| s.session_id.as_str()).collect();
        assert_eq!(listed, expected, "pages of {page}");
    }
    let first = db.store.backup_sessions(alice, v, "", 3).await?.expect("found");
    assert!(first.more);
    assert_eq!(first.sessions.iter().map(|s| s.session_id.as_str()).collect::<Vec<_>>(), ["0", "AAAA", "B"]);
    // After an id that is not stored: the next ones.
    let middle = db.store.backup_sessions(alice, v, "Y", 2).await?.expect("found");
    assert_eq!(middle.sessions.iter().map(|s| s.session_id.as_str()).collect::<Vec<_>>(), ["Z9", "a"]);
    assert!(middle.more);
    // Exactly the last ones: no more.
    let last = db.store.backup_sessions(alice, v, "b", 2).await?.expect("found");
    assert_eq!(last.sessions.iter().map(|s| s.session_id.as_str()).collect::<Vec<_>>(), ["z", "é"]);
    assert!(!last.more);
    let past = db.store.backup_sessions(alice, v, "é", 5).await?.expect("found");
    assert_eq!(past, BackupPage { sessions: Vec::new(), more: false });
    assert_eq!(db.store.backup_sessions(alice, BackupVersionId::generate(), "", 5).await?, None);
    Ok(())
}

pub(super) async fn a_version_holds_at_most_its_limit(db: &Fresh) -> anyhow::Result<()> {
    let alice = account(db, "alice").await?;
    let v = version(db, alice, 1).await?;
    let max = 3;
    assert_eq!(
        put(db, alice, v, &sessions(&["a", "b"], 1), max).await?,
        PutSessionsOutcome::Stored { session_count: 2 }
    );
    // Two new ids would make 4: refused whole, "c" is not stored either.
    assert_eq!(put(db, alice, v, &sessions(&["c", "d"], 1), max).await?, PutSessionsOutcome::Full);
    assert_eq!(db.store.current_backup(alice).await?.map(|c| c.session_count), Some(2));
    assert_eq!(all_sessions(db, alice, v, 10).await?, Some(sessions(&["a", "b"], 1)));
    // A replacement and one new id: exactly at the limit.
    let fits = vec![session("a", 2), session("c", 2)];
    assert_eq!(put(db, alice, v, &fits, max).await?, PutSessionsOutcome::Stored { session_count: 3 });
    assert_eq!(put(db, alice, v, &sessions(&["d"], 1), max).await?, PutSessionsOutcome::Full);
    // At the limit, replacing still works.
    assert_eq!(
        put(db, alice, v, &sessions(&["b", "c"], 5), max).await?,
        PutSessionsOutcome::Stored { session_count: 3 }
    );
    assert_eq!(
        all_sessions(db, alice, v, 10).await?,
        Some(vec![session("a", 2), session("b", 5), session("c", 5)])
    );
    // The limit is per version: a new version starts empty.
    let next = version(db, alice, 2).await?;
    assert_eq!(
        put(db, alice, next, &sessions(&["x", "y", "z"], 1), max).await?,
        PutSessionsOutcome::Stored { session_count: 3 }
    );
    Ok(())
}

pub(super) async fn versions_are_deleted_by_the_rules(db: &Fresh) -> anyhow::Result<()> {
    let alice = account(db, "alice").await?;
    let old = version(db, alice, 1).await?;
    put(db, alice, old, &sessions(&["o1", "o2"], 1), LIMIT).await?;
    let current = version(db, alice, 2).await?;
    put(db, alice, current, &sessions(&["c1"], 2), LIMIT).await?;

    // The current one only with delete_current: nothing changed.
    assert_eq!(db.store.delete_backup_version(alice, current, false).await?, DeleteVersionOutcome::Current);
    assert_eq!(db.store.current_backup(alice).await?.map(|v| v.version), Some(current));
    assert_eq!(all_sessions(db, alice, current, 10).await?, Some(sessions(&["c1"], 2)));

    // An older one (after a rotation re-encrypted everything), with its session keys.
    assert_eq!(db.store.delete_backup_version(alice, old, false).await?, DeleteVersionOutcome::Deleted);
    assert_eq!(db.store.backup_sessions(alice, old, "", 10).await?, None);
    assert_eq!(db.store.delete_backup_version(alice, old, false).await?, DeleteVersionOutcome::NotFound);
    assert_eq!(put(db, alice, old, &sessions(&["o3"], 1), LIMIT).await?, PutSessionsOutcome::NotFound);
    assert_eq!(db.store.current_backup(alice).await?.map(|v| v.version), Some(current));

    // delete_current on an older version deletes just that one.
    let newest = version(db, alice, 3).await?;
    assert_eq!(db.store.delete_backup_version(alice, current, true).await?, DeleteVersionOutcome::Deleted);
    assert_eq!(db.store.current_backup(alice).await?.map(|v| v.version), Some(newest));

    // Turning backup off: no current version, and the next one starts afresh.
    assert_eq!(db.store.delete_backup_version(alice, newest, true).await?, DeleteVersionOutcome::Deleted);
    assert_eq!(db.store.current_backup(alice).await?, None);
    assert_eq!(put(db, alice, newest, &sessions(&["n"], 1), LIMIT).await?, PutSessionsOutcome::NotFound);
    assert_eq!(db.store.delete_backup_version(alice, newest, true).await?, DeleteVersionOutcome::NotFound);
    let again = version(db, alice, 4).await?;
    assert_eq!(db.store.current_backup(alice).await?.map(|v| (v.version, v.session_count)), Some((again, 0)));
    Ok(())
}

pub(super) async fn racing_puts_never_take_a_version_past_its_limit(db: &Fresh) -> anyhow::Result<()> {
    let alice = account(db, "alice").await?;
    let v = version(db, alice, 1).await?;
    let max = 10;
    let mut racers = tokio::task::JoinSet::new();
    for racer in 0..8u8 {
        let store = db.store.clone();
        let batch = vec![session(&format!("r{racer}a"), racer), session(&format!("r{racer}b"), racer)];
        racers.spawn(async move { store.put_backup_sessions(alice, v, &batch, max).await });
    }
    let (mut stored, mut full) = (0, 0);
    while let Some(done) = racers.join_next().await {
        match done?? {
            PutSessionsOutcome::Stored { .. } => stored += 1,
            PutSessionsOutcome::Full => full += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((stored, full), (5, 3));
    let listed = all_sessions(db, alice, v, 3).await?.expect("found");
    assert_eq!(listed.len(), 10);
    assert_eq!(db.store.current_backup(alice).await?.map(|c| c.session_count), Some(10));
    Ok(())
}

pub(super) async fn puts_racing_a_rotation_land_in_the_old_version_or_are_refused(
    db: &Fresh,
) -> anyhow::Result<()> {
    let alice = account(db, "alice").await?;
    let old = version(db, alice, 1).await?;
    let mut racers = tokio::task::JoinSet::new();
    for racer in 0..6u8 {
        let store = db.store.clone();
        let batch = vec![session(&format!("s{racer}"), racer)];
        racers.spawn(async move { (racer, store.put_backup_sessions(alice, old, &batch, LIMIT).await) });
    }
    let store = db.store.clone();
    let rotation = tokio::spawn(async move {
        store
            .create_backup_version(
                alice,
                BackupVersionId::generate(),
                b"auth",
                b"identity",
                now_ms(),
                VERSIONS,
            )
            .await
    });
    let mut landed = Vec::new();
    while let Some(done) = racers.join_next().await {
        let (racer, outcome) = done?;
        match outcome? {
            PutSessionsOutcome::Stored { .. } => landed.push(format!("s{racer}")),
            PutSessionsOutcome::Stale => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let CreateVersionOutcome::Created(new) = rotation.await?? else { panic!("the rotation was refused") };
    let new = new.version;
    landed.sort();
    let in_old: Vec<String> =
        all_sessions(db, alice, old, 10).await?.expect("found").into_iter().map(|s| s.session_id).collect();
    assert_eq!(in_old, landed, "exactly the accepted puts are in the old version");
    assert_eq!(all_sessions(db, alice, new, 10).await?, Some(Vec::new()));
    let counts = db.store.current_backup(alice).await?.map(|c| (c.version, c.session_count));
    assert_eq!(counts, Some((new, 0)));
    Ok(())
}

pub(super) async fn an_account_keeps_at_most_its_limit_of_versions(db: &Fresh) -> anyhow::Result<()> {
    let alice = account(db, "alice").await?;
    let bob = account(db, "bob").await?;
    let first = version(db, alice, 1).await?;
    put(db, alice, first, &sessions(&["a"], 1), LIMIT).await?;
    let second = version(db, alice, 2).await?;
    let third = version(db, alice, 3).await?;
    put(db, alice, third, &sessions(&["c"], 3), LIMIT).await?;

    // The attack: one more version (each could hold 200,000 session keys) while 3 are kept.
    let refused = BackupVersionId::generate();
    assert_eq!(
        db.store.create_backup_version(alice, refused, b"a", b"i", now_ms(), VERSIONS).await?,
        CreateVersionOutcome::TooManyVersions
    );
    // Nothing changed: the current version, the versions kept and their session keys.
    assert_eq!(db.store.current_backup(alice).await?.map(|v| (v.version, v.session_count)), Some((third, 1)));
    assert_eq!(stored_versions(db, alice).await?, 3);
    assert_eq!(db.store.backup_sessions(alice, refused, "", 10).await?, None);
    assert_eq!(all_sessions(db, alice, first, 10).await?, Some(sessions(&["a"], 1)));
    assert_eq!(
        put(db, alice, third, &sessions(&["d"], 3), LIMIT).await?,
        PutSessionsOutcome::Stored { session_count: 2 }
    );
    // The limit is per account.
    version(db, bob, 9).await?;

    // Deleting an older version (as a finished rotation does) makes room for the next one.
    assert_eq!(db.store.delete_backup_version(alice, first, false).await?, DeleteVersionOutcome::Deleted);
    let fourth = version(db, alice, 4).await?;
    assert_eq!(stored_versions(db, alice).await?, 3);

    // Turning backup off deletes every version, older ones included, so a device that lost
    // track of them (a rotation cut short) can always start afresh.
    assert_eq!(db.store.delete_backup_version(alice, fourth, true).await?, DeleteVersionOutcome::Deleted);
    assert_eq!(stored_versions(db, alice).await?, 0);
    for gone in [second, third, fourth] {
        assert_eq!(db.store.backup_sessions(alice, gone, "", 10).await?, None);
    }
    for byte in 5..8 {
        version(db, alice, byte).await?;
    }
    assert_eq!(stored_versions(db, bob).await?, 1);
    Ok(())
}

pub(super) async fn racing_creates_never_pass_the_limit_of_versions(db: &Fresh) -> anyhow::Result<()> {
    let alice = account(db, "alice").await?;
    let mut racers = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = db.store.clone();
        racers.spawn(async move {
            store
                .create_backup_version(alice, BackupVersionId::generate(), b"a", b"i", now_ms(), VERSIONS)
                .await
        });
    }
    let (mut created, mut refused) = (Vec::new(), 0);
    while let Some(done) = racers.join_next().await {
        match done?? {
            CreateVersionOutcome::Created(v) => created.push(v.version),
            CreateVersionOutcome::TooManyVersions => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((created.len(), refused), (3, 5));
    assert_eq!(stored_versions(db, alice).await?, 3);
    let current = db.store.current_backup(alice).await?.expect("a current version").version;
    assert!(created.contains(&current), "the current version is one that was created");
    for version in created {
        assert_eq!(all_sessions(db, alice, version, 10).await?, Some(Vec::new()));
    }
    Ok(())
}

/// Deletes the account row, as an admin's deletion does (no store call deletes accounts yet),
/// and counts what is left of its backups.
async fn delete_account_and_count_backup_rows(db: &Fresh, account: AccountId) -> anyhow::Result<(i64, i64)> {
    const DELETE: &str = "DELETE FROM accounts WHERE id = $1";
    const COUNT: &str = "SELECT (SELECT COUNT(*) FROM backup_versions WHERE account_id = $1) AS versions, \
                         (SELECT COUNT(*) FROM backup_sessions WHERE account_id = $1) AS sessions";
    use sqlx::Row as _;
    Ok(match &db.url {
        DatabaseUrl::Sqlite(path) => {
            let raw = SqliteStore::open(path, &ConnectOptions::default()).await?;
            let deleted = sqlx::query(DELETE).bind(account.as_uuid()).execute(&raw.pool).await?;
            assert_eq!(deleted.rows_affected(), 1);
            let row = sqlx::query(COUNT).bind(account.as_uuid()).fetch_one(&raw.pool).await?;
            let counts = (row.try_get("versions")?, row.try_get("sessions")?);
            raw.pool.close().await;
            counts
        }
        DatabaseUrl::Postgres(url) => {
            let raw = PostgresStore::connect(url, &ConnectOptions::default()).await?;
            let deleted = sqlx::query(DELETE).bind(account.as_uuid()).execute(&raw.pool).await?;
            assert_eq!(deleted.rows_affected(), 1);
            let row = sqlx::query(COUNT).bind(account.as_uuid()).fetch_one(&raw.pool).await?;
            let counts = (row.try_get("versions")?, row.try_get("sessions")?);
            raw.pool.close().await;
            counts
        }
    })
}

pub(super) async fn deleting_an_account_deletes_its_backups(db: &Fresh) -> anyhow::Result<()> {
    let alice = account(db, "alice").await?;
    let bob = account(db, "bob").await?;
    let old = version(db, alice, 1).await?;
    put(db, alice, old, &sessions(&["a", "b"], 1), LIMIT).await?;
    let current = version(db, alice, 2).await?;
    put(db, alice, current, &sessions(&["c"], 1), LIMIT).await?;
    let bobs = version(db, bob, 3).await?;
    put(db, bob, bobs, &sessions(&["a"], 3), LIMIT).await?;

    assert_eq!(delete_account_and_count_backup_rows(db, alice).await?, (0, 0));
    assert_eq!(db.store.current_backup(alice).await?, None);
    assert_eq!(db.store.backup_sessions(alice, old, "", 10).await?, None);
    // Bob's backup is untouched.
    assert_eq!(all_sessions(db, bob, bobs, 10).await?, Some(sessions(&["a"], 3)));
    Ok(())
}
