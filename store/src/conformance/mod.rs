//! The store conformance suite: every test runs twice, on a fresh SQLite file and on a fresh
//! PostgreSQL database (`sqlite::<trait>::<test>` and `postgres::<trait>::<test>` in the test
//! output). PostgreSQL is required: without it these tests fail, they are never skipped.
//!
//! One file per store trait holds its tests; each test is listed in `suite!` at the bottom (a
//! test left out of the list is dead code, which the lints refuse). [`conformance_suite!`]
//! (`tests/conformance.rs`) turns the list into one `#[test]` per test and backend.
//!
//! [`conformance_suite!`]: crate::conformance_suite

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod accounts;
mod attachments;
mod avatars;
mod backups;
mod blocks;
mod calls;
mod cloud;
mod codes;
mod conversations;
mod delivery;
mod guilds;
mod inbox;
mod instance;
mod keys;
mod pairings;
mod push;
mod rate_limits;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use kitsulan_testkit::postgres::TestDatabase;

use crate::{ConnectOptions, DatabaseUrl, Store, connect};

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A SQLite file in a temporary directory.
    Sqlite,
    /// A database of its own on the test PostgreSQL server.
    Postgres,
}

/// A store on a database of its own (migrated unless asked otherwise), dropped with it.
pub struct Fresh {
    kind: Kind,
    store: Arc<dyn Store>,
    url: DatabaseUrl,
    _keep: Keep,
}

enum Keep {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] TestDatabase),
}

impl Fresh {
    async fn new(kind: Kind) -> anyhow::Result<Self> {
        let db = Self::unmigrated(kind).await?;
        db.store.migrate().await?;
        Ok(db)
    }

    async fn unmigrated(kind: Kind) -> anyhow::Result<Self> {
        let (url, keep) = match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir()?;
                (DatabaseUrl::Sqlite(dir.path().join("kitsulan.db")), Keep::Sqlite(dir))
            }
            Kind::Postgres => {
                let db = TestDatabase::create().await?;
                (DatabaseUrl::Postgres(db.url().to_owned()), Keep::Postgres(db))
            }
        };
        let store = connect(&url, &ConnectOptions::default()).await?;
        Ok(Self { kind, store, url, _keep: keep })
    }

    /// A second, independent connection pool to the same database, as another process has.
    async fn reopen(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(connect(&self.url, &ConnectOptions::default()).await?)
    }
}

/// What a test of the suite returns: an error fails it.
pub type TestResult = anyhow::Result<()>;

/// One test of the suite, running on the database it is given.
pub type TestFuture<'a> = Pin<Box<dyn Future<Output = TestResult> + 'a>>;

/// Runs one test on a fresh, migrated database of `kind`, on a runtime of two worker threads
/// (as `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` would).
pub fn run(kind: Kind, test: fn(&Fresh) -> TestFuture<'_>) -> TestResult {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(async { test(&Fresh::new(kind).await?).await })
}

/// Makes, from the list of every test by the file it is in, [`cases`] (each test as a function
/// [`run`] takes) and [`conformance_suite!`](crate::conformance_suite).
macro_rules! suite {
    ($($section:ident: [$($test:ident),* $(,)?]),* $(,)?) => {
        /// Every test of the suite, by store trait, as a function [`run`] takes.
        pub mod cases {
            $(
                pub mod $section {
                    $(
                        pub fn $test(db: &super::super::Fresh) -> super::super::TestFuture<'_> {
                            Box::pin(super::super::$section::$test(db))
                        }
                    )*
                }
            )*
        }

        /// Runs every store conformance test on SQLite and on PostgreSQL, as one `#[test]` each:
        /// `sqlite::<trait>::<test>` and `postgres::<trait>::<test>`. Invoke it once, at the top
        /// level of a test binary (`tests/conformance.rs`).
        #[macro_export]
        macro_rules! conformance_suite {
            () => {
                mod sqlite {
                    $(
                        mod $section {
                            $(
                                #[test]
                                fn $test() -> $crate::conformance::TestResult {
                                    $crate::conformance::run(
                                        $crate::conformance::Kind::Sqlite,
                                        $crate::conformance::cases::$section::$test,
                                    )
                                }
                            )*
                        }
                    )*
                }
                mod postgres {
                    $(
                        mod $section {
                            $(
                                #[test]
                                fn $test() -> $crate::conformance::TestResult {
                                    $crate::conformance::run(
                                        $crate::conformance::Kind::Postgres,
                                        $crate::conformance::cases::$section::$test,
                                    )
                                }
                            )*
                        }
                    )*
                }
            };
        }
    };
}

suite! {
    guilds: [
        guilds_are_made_with_everyone_their_owner_and_channels,
        roles_keep_one_order_and_a_cap,
        channels_are_arranged_overwritten_and_capped,
        invites_admit_until_used_up_expired_or_revoked_and_bans_hold,
        racing_joins_cannot_exceed_an_invites_uses,
        the_audit_log_records_each_change_with_it,
        read_marks_move_forward_within_the_channel,
        deleting_the_owners_account_hands_the_guild_on,
        channel_messages_count_mentions_search_files_and_a_bans_sweep,
        members_are_found_among_accounts_and_presence_reaches_small_guilds,
        an_icon_is_set_replaced_and_removed_with_its_audit,
        private_e2ee_channels_keep_members_who_are_in_the_guild,
        adds_to_private_channels_wait_for_racing_writers,
    ],
    cloud: [
        cloud_messages_keep_their_content,
        search_finds_inflected_forms_in_the_callers_conversations,
        reactions_are_counted_and_limited,
        pins_are_listed_and_limited,
        timers_expire_messages_and_retention_sweeps_old_ones,
        mentions_count_until_read,
        deleting_an_account_deletes_or_keeps_its_messages,
        deletions_wait_for_racing_writers,
    ],
    instance: [
        migrations_are_idempotent,
        fresh_database_reports_every_migration,
        ping_answers,
        instance_is_created_once,
        instance_survives_reconnect,
        concurrent_instance_creation_agrees,
    ],
    accounts: [
        account_and_device_are_created_together,
        verified_email_belongs_to_one_account,
        totp_steps_are_accepted_once_and_in_order,
        totp_secrets_are_replaced_only_while_unchanged,
        access_tokens_authenticate_until_expiry_or_sign_out,
        refresh_tokens_rotate_once_and_reuse_signs_out,
        other_devices_are_signed_out_together,
        expired_refresh_tokens_do_not_rotate,
        racing_refreshes_of_one_token_rotate_at_most_once,
        devices_are_listed_renamed_and_scoped_to_their_account,
    ],
    codes: [
        codes_allow_limited_tries_and_one_use,
        parallel_guesses_cannot_exceed_the_tries,
    ],
    rate_limits: [
        rate_limits_allow_the_burst_then_refuse,
        rate_limits_take_several_at_once_and_give_back,
        racing_requests_cannot_slip_past_a_limit,
    ],
    keys: [
        account_keys_are_set_once_unless_replaced,
        key_uploads_are_all_or_nothing_and_idempotent,
        one_time_keys_are_claimed_once_even_when_racing,
        one_time_keys_can_be_withheld_for_the_fallback_key,
        contacts_of_a_device_are_its_owner_and_who_shares_a_conversation,
        removing_a_device_removes_its_keys_and_moves_the_version,
    ],
    inbox: [
        to_device_messages_wait_until_acknowledged,
        to_device_batches_are_refused_whole,
        inbox_quotas_hold_per_sender_for_strangers_and_in_all,
        racing_sends_cannot_overshoot_an_inbox_quota,
    ],
    pairings: [
        pairings_are_taken_by_one_device_and_approved_once,
    ],
    conversations: [
        a_pair_has_one_direct_conversation,
        messages_are_numbered_without_gaps_even_when_racing,
        a_batch_of_sends_gives_each_its_own_outcome,
        message_ids_are_unique_per_conversation,
        history_pages_both_ways,
        edits_deletes_and_read_marks,
        owners_hand_over_when_they_leave,
        group_changes_write_system_entries,
        role_changes_racing_sends_all_succeed,
    ],
    delivery: [
        cursors_exist_exactly_while_the_account_is_a_member,
        message_changes_follow_the_latest_change_of_each_message,
        member_events_reach_the_right_accounts_and_keep_the_latest_state,
        acks_move_cursors_and_the_delivered_mark_forward_only,
        acks_cover_several_conversations_the_inbox_and_the_account_stream,
        device_lists_reach_everyone_sharing_a_conversation,
        sign_outs_and_disabled_accounts_are_revoked,
        racing_acks_of_one_account_keep_the_highest_delivered_mark,
        acks_of_several_devices_commit_together,
        racing_sends_edits_and_deletes_use_every_change_once,
        racing_read_and_delivered_marks_never_cross,
        racing_acks_of_several_conversations_all_apply,
        racing_joins_and_sign_ins_keep_cursors_in_step,
        racing_owner_departures_and_device_list_changes_all_apply,
    ],
    calls: [
        one_call_at_a_time_per_conversation_and_ids_are_never_reused,
        joins_are_bounded_idempotent_and_answer_the_call,
        leaving_and_ending_calls,
        unanswered_calls_end_after_the_ring_time,
        calls_of_a_device_are_the_calls_it_is_in_going_on,
        racing_joins_never_exceed_the_most_devices,
        racing_starts_in_one_conversation_start_one_call,
        racing_ends_and_sweeps_end_a_call_once,
        racing_answers_and_sweeps_either_answer_or_end_a_call,
    ],
    attachments: [
        attachments_are_reserved_by_members_within_the_quota,
        existing_attachments_names_the_ids_with_a_row,
        racing_reservations_never_exceed_the_quota,
        attachments_link_to_one_message_of_their_uploader_once_uploaded,
        due_attachments_are_expired_orphaned_or_of_deleted_messages,
        downloads_are_recorded_once_per_account,
    ],
    blocks: [
        strangers_join_as_requests_until_they_accept,
        blocks_take_the_blocker_out_and_keep_it_out,
        groups_never_exceed_their_cap_even_when_racing,
        conversation_lists_come_in_pages,
    ],
    avatars: [
        account_avatars_replace_each_other_and_count_versions,
        racing_avatar_changes_each_replace_one_blob,
        group_avatars_are_set_by_owners_and_admins,
    ],
    backups: [
        a_new_version_becomes_current_and_older_ones_stay,
        another_accounts_versions_are_invisible_and_untouchable,
        puts_to_a_version_that_is_not_current_are_refused,
        a_put_replaces_the_entry_of_the_same_session_id,
        sessions_come_in_pages_in_byte_order,
        a_version_holds_at_most_its_limit,
        versions_are_deleted_by_the_rules,
        racing_puts_never_take_a_version_past_its_limit,
        puts_racing_a_rotation_land_in_the_old_version_or_are_refused,
        deleting_an_account_deletes_its_backups,
        an_account_keeps_at_most_its_limit_of_versions,
        racing_creates_never_pass_the_limit_of_versions,
    ],
    push: [
        a_device_has_one_subscription_that_goes_with_it,
        a_gone_endpoint_deletes_only_that_subscription,
        push_devices_are_accepted_members_other_than_the_sender,
    ],
}
