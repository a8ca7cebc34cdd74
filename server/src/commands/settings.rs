//! The settings `config` parsed, turned into what the services take. `config` knows only the
//! command line and the environment; the services know only their own types: this is where
//! the two meet, so neither imports the other.

use std::time::Duration;

use crate::config::{AttachmentArgs, AuthArgs, ConversationArgs, E2eeArgs, PushArgs, Rate};
use crate::services::rate_limits::{Limit, Limits};
use crate::services::to_device::InboxLimits;
use crate::services::{AttachmentSettings, ConversationSettings, HashPoolSize, PushSettings};

fn limit(rate: Rate) -> Limit {
    Limit::new(rate.count, rate.period)
}

/// The password-hashing pool: `KITSULAN_PASSWORD_HASH_THREADS` (default one per CPU, at most
/// 4) and `KITSULAN_PASSWORD_HASH_QUEUE` (default 16 per thread).
pub(super) fn hash_pool(auth: &AuthArgs) -> HashPoolSize {
    let default = HashPoolSize::default_for_this_machine();
    let threads = auth.password_hash_threads.map_or(default.threads, usize::from);
    let queue = auth.password_hash_queue.map_or(threads * 16, usize::from);
    HashPoolSize { threads, queue }
}

/// Every rate limit and the to-device inbox limits.
pub(super) fn limits(auth: &AuthArgs, e2ee: &E2eeArgs) -> Limits {
    Limits {
        sign_up: limit(auth.rate_limit_sign_up),
        sign_up_private: limit(auth.rate_limit_sign_up_private),
        sign_in: limit(auth.rate_limit_sign_in),
        sign_in_failures: limit(auth.rate_limit_sign_in_failures),
        account_failures: limit(auth.rate_limit_account_failures),
        refresh: limit(auth.rate_limit_refresh),
        code_requests: limit(auth.rate_limit_code_requests),
        code_checks: limit(auth.rate_limit_code_checks),
        pairing_lookups: limit(auth.rate_limit_pairing_lookups),
        key_claims: limit(e2ee.rate_limit_key_claims),
        key_claims_per_device: limit(e2ee.rate_limit_key_claims_per_device),
        stranger_key_claims: limit(e2ee.rate_limit_stranger_key_claims),
        inbox: InboxLimits {
            messages: e2ee.to_device_inbox_messages,
            bytes: e2ee.to_device_inbox_bytes,
            per_sender: e2ee.to_device_pending_per_sender,
            stranger_percent: e2ee.to_device_stranger_percent,
        },
        backup_versions: limit(e2ee.rate_limit_backup_versions),
    }
}

/// The attachment limits and timings.
pub(super) fn attachments(args: &AttachmentArgs) -> AttachmentSettings {
    AttachmentSettings {
        max_bytes: args.max_bytes,
        quota_bytes: args.quota_bytes,
        url_ttl: Duration::from_secs(args.url_ttl_seconds),
        download_url_ttl: Duration::from_secs(args.download_url_ttl_seconds),
        orphan_grace: Duration::from_secs(args.orphan_grace_seconds),
        stray_grace: Duration::from_secs(args.stray_grace_seconds),
        avatar_max_bytes: args.avatar_max_bytes,
    }
}

/// The caps on groups.
pub(super) fn conversations(args: &ConversationArgs) -> ConversationSettings {
    ConversationSettings {
        max_group_members: args.group_max_members,
        group_creations: limit(args.rate_limit_group_creations),
        retention: args.retention_days.map(|days| Duration::from_secs(u64::from(days) * 24 * 3600)),
    }
}

/// How pushes are paced and signed.
pub(super) fn push(args: &PushArgs) -> PushSettings {
    PushSettings {
        contact: args.contact.clone(),
        min_interval: Duration::from_secs(args.min_interval_seconds),
        ..PushSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cli, Command, ConfigError, load_from};

    #[test]
    fn e2ee_limits_default_to_the_services_defaults() {
        let Ok(Cli { command: Command::Serve(serve), .. }) = load_from(["kitsulan", "serve"]) else {
            panic!("serve parses");
        };
        let limits = limits(&serve.auth, &serve.e2ee);
        assert_eq!(limits, Limits::default());
        let Err(ConfigError::Invalid(line)) =
            load_from(["kitsulan", "serve", "--to-device-stranger-percent", "101"])
        else {
            panic!("expected an invalid-setting error");
        };
        assert!(line.contains("KITSULAN_TO_DEVICE_STRANGER_PERCENT"), "{line}");
    }

    #[test]
    fn group_settings_default_to_the_services_defaults() {
        let Ok(Cli { command: Command::Serve(serve), .. }) = load_from(["kitsulan", "serve"]) else {
            panic!("serve parses");
        };
        let settings = conversations(&serve.conversations);
        let defaults = ConversationSettings::default();
        assert_eq!(
            (settings.max_group_members, settings.group_creations),
            (defaults.max_group_members, defaults.group_creations)
        );
    }
}
