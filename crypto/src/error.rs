//! The crate's single error type, [`Error`], and the stable code of each variant.
//!
//! One variant per failure a caller may want to tell apart, each documented with when it
//! happens. [`Error::code`] gives a stable `snake_case` string per variant: the WASM layer puts
//! it on the thrown JS `Error` as `code`, and servers and clients may log or match on it.
//! Messages never contain key material or plaintext.

/// Everything that can go wrong in `kitsulan-crypto`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A public key (Curve25519 or Ed25519) had the wrong length, or an Ed25519 key was not a
    /// valid curve point. The payload names which key.
    #[error("invalid {0} public key")]
    InvalidPublicKey(&'static str),
    /// A fixed-size input (named in the payload: a pickle key, an id, a key seed) had the wrong
    /// length, or an input that must not be empty (a backup passphrase) was.
    #[error("{0} has the wrong length")]
    InvalidLength(&'static str),
    /// A signature was not 64 bytes long.
    #[error("malformed signature")]
    MalformedSignature,
    /// Text that should have been base64 (standard alphabet, with or without padding) was not.
    #[error("invalid base64")]
    InvalidBase64,
    /// Device certificate bytes do not follow `FORMAT.md` (wrong length or magic).
    #[error("malformed device certificate")]
    MalformedCertificate,
    /// A device certificate has a version this build does not know.
    #[error("unsupported device certificate version {0}")]
    UnsupportedCertificateVersion(u8),
    /// A device certificate names a different account key than the one the verifier trusts
    /// for that person (a certificate from another account, or an account-key change).
    #[error("device certificate is signed by a different account key")]
    CertificateAccountKeyMismatch,
    /// The account key's signature on a device certificate does not verify.
    #[error("device certificate signature is invalid")]
    CertificateSignature,
    /// The device key's signature on a one-time key does not verify.
    #[error("one-time key signature is invalid")]
    OneTimeKeySignature,
    /// The device key's signature on a fallback key does not verify.
    #[error("fallback key signature is invalid")]
    FallbackKeySignature,
    /// Olm message bytes are malformed: empty, an unknown message type, or an undecodable body.
    #[error("malformed Olm message")]
    MalformedOlmMessage,
    /// An inbound Olm session can only be created from a pre-key message.
    #[error("expected an Olm pre-key message")]
    NotPreKeyMessage,
    /// A pre-key message names a one-time key this device does not hold: never ours, or
    /// already used up by an earlier session.
    #[error("the pre-key message uses an unknown one-time key")]
    UnknownOneTimeKey,
    /// An Olm session could not be created: the sender identity key does not match the
    /// pre-key message, a key was non-contributory, or the session version is not ours.
    #[error("could not create the Olm session")]
    OlmSessionCreation,
    /// An Olm message did not decrypt: bad MAC or padding, a message key already used or
    /// dropped, too large a gap, or not a message of this session.
    #[error("Olm decryption failed")]
    OlmDecryption,
    /// An Olm message could not be encrypted (a non-contributory ratchet key).
    #[error("Olm encryption failed")]
    OlmEncryption,
    /// Megolm message bytes are malformed (bad version, lengths or body).
    #[error("malformed Megolm message")]
    MalformedMegolmMessage,
    /// A Megolm session key (shared or exported) is malformed or its signature is invalid.
    #[error("malformed Megolm session key")]
    MalformedMegolmSessionKey,
    /// A Megolm message did not authenticate: bad signature, MAC or padding, or it belongs to
    /// another session.
    #[error("Megolm decryption failed")]
    MegolmDecryption,
    /// A Megolm message's index lies before the first index this inbound session can decrypt.
    #[error("Megolm message index {index} is before the first known index {first_known}")]
    MegolmUnknownIndex {
        /// The first index the session knows.
        first_known: u32,
        /// The index of the refused message.
        index: u32,
    },
    /// The exact Megolm message was already decrypted by this session (a replay). Re-reading
    /// history uses `InboundGroupSession::decrypt_history`, which allows it.
    #[error("Megolm message index {0} was already decrypted (replay)")]
    MegolmReplay(u32),
    /// A different, validly signed ciphertext arrived at a Megolm index this session already
    /// decrypted: the sender reused a ratchet state (its session state was cloned or rolled
    /// back). Refused even when re-reading history.
    #[error("a different Megolm message was already decrypted at index {0}")]
    MegolmIndexConflict(u32),
    /// The inbound session has tracked the maximum number of distinct indices; the sender
    /// should have rotated long ago.
    #[error("the Megolm session has seen too many messages")]
    MegolmTooManyMessages,
    /// SAS key agreement failed: the other side's key was invalid or non-contributory.
    #[error("SAS key agreement failed")]
    SasKeyAgreement,
    /// A SAS MAC of a key did not verify: the keys differ or someone is in the middle.
    #[error("SAS MAC mismatch")]
    SasMacMismatch,
    /// A verification message (`verification.rs`) has an unknown version or type, or the
    /// wrong length; or bytes given as a request are not one.
    #[error("malformed verification message")]
    MalformedVerificationMessage,
    /// A verification request was sent too long ago (or too far in the future) to accept.
    #[error("the verification request expired")]
    VerificationRequestExpired,
    /// A verification step was asked for at the wrong time (accepting twice, confirming before
    /// the emoji are known or after a cancel).
    #[error("not the next verification step")]
    UnexpectedVerificationStep,
    /// A pairing QR payload, PIN or channel message is malformed.
    #[error("malformed pairing data")]
    MalformedPairingData,
    /// The pairing channel could not be established (invalid or non-contributory key).
    #[error("pairing channel key agreement failed")]
    PairingKeyAgreement,
    /// A pairing channel message did not decrypt: tampered, out of order, replayed, or from
    /// someone else.
    #[error("pairing channel decryption failed")]
    PairingDecryption,
    /// The SHA-256 of a downloaded attachment's ciphertext differs from the one in the message.
    #[error("attachment hash mismatch")]
    AttachmentHashMismatch,
    /// An attachment reference (key, IV, hash) does not follow `FORMAT.md`.
    #[error("malformed attachment reference")]
    MalformedAttachmentReference,
    /// A backup blob, key backup auth data, identity or session entry is truncated, too long,
    /// has the wrong magic or an unknown version, or holds something other than it claims (a
    /// session entry whose session has another id; a passphrase wrap of another key).
    #[error("malformed backup blob")]
    MalformedBackup,
    /// A backup blob asks for key-derivation parameters outside the accepted range (too weak,
    /// or so large they would exhaust memory).
    #[error("backup key-derivation parameters out of range")]
    BackupParamsOutOfRange,
    /// A backup blob did not decrypt: wrong passphrase or key, or the blob was tampered with.
    #[error("backup decryption failed (wrong passphrase or key, or tampered)")]
    BackupDecryption,
    /// Argon2id itself failed (it cannot with our fixed parameters; kept for completeness).
    #[error("key derivation failed")]
    KeyDerivation,
    /// A pickle did not decrypt under the given pickle key: wrong key, or corrupted.
    #[error("pickle decryption failed (wrong pickle key or corrupted)")]
    PickleDecryption,
    /// A pickle decrypted but its content is malformed, or is a pickle of another kind of
    /// object.
    #[error("malformed pickle")]
    MalformedPickle,
    /// A backup key (a recovery key) is not the key of this backup: its key check in the auth
    /// data differs.
    #[error("wrong recovery key")]
    WrongRecoveryKey,
    /// A passphrase did not open the backup's passphrase wrap (checked after Argon2id).
    #[error("wrong passphrase")]
    WrongPassphrase,
    /// Text given as a recovery key is not one: wrong length, a character outside Crockford
    /// base32, or a wrong checksum (a typo).
    #[error("malformed recovery key")]
    RecoveryKeyMalformed,
    /// The backup has no passphrase (its auth data has no passphrase wrap): use the recovery key.
    #[error("this backup has no passphrase")]
    NoPassphrase,
}

impl Error {
    /// A stable, `snake_case` code for this error, for the JS `Error.code` and for logs.
    ///
    /// These strings are API: never rename one; add new ones for new variants.
    pub const fn code(&self) -> &'static str {
        match self {
            Error::InvalidPublicKey(_) => "invalid_public_key",
            Error::InvalidLength(_) => "invalid_length",
            Error::MalformedSignature => "malformed_signature",
            Error::InvalidBase64 => "invalid_base64",
            Error::MalformedCertificate => "malformed_certificate",
            Error::UnsupportedCertificateVersion(_) => "unsupported_certificate_version",
            Error::CertificateAccountKeyMismatch => "certificate_account_key_mismatch",
            Error::CertificateSignature => "certificate_signature",
            Error::OneTimeKeySignature => "one_time_key_signature",
            Error::FallbackKeySignature => "fallback_key_signature",
            Error::MalformedOlmMessage => "malformed_olm_message",
            Error::NotPreKeyMessage => "not_pre_key_message",
            Error::UnknownOneTimeKey => "unknown_one_time_key",
            Error::OlmSessionCreation => "olm_session_creation",
            Error::OlmDecryption => "olm_decryption",
            Error::OlmEncryption => "olm_encryption",
            Error::MalformedMegolmMessage => "malformed_megolm_message",
            Error::MalformedMegolmSessionKey => "malformed_megolm_session_key",
            Error::MegolmDecryption => "megolm_decryption",
            Error::MegolmUnknownIndex { .. } => "megolm_unknown_index",
            Error::MegolmReplay(_) => "megolm_replay",
            Error::MegolmIndexConflict(_) => "megolm_index_conflict",
            Error::MegolmTooManyMessages => "megolm_too_many_messages",
            Error::SasKeyAgreement => "sas_key_agreement",
            Error::SasMacMismatch => "sas_mac_mismatch",
            Error::MalformedVerificationMessage => "malformed_verification_message",
            Error::VerificationRequestExpired => "verification_request_expired",
            Error::UnexpectedVerificationStep => "unexpected_verification_step",
            Error::MalformedPairingData => "malformed_pairing_data",
            Error::PairingKeyAgreement => "pairing_key_agreement",
            Error::PairingDecryption => "pairing_decryption",
            Error::AttachmentHashMismatch => "attachment_hash_mismatch",
            Error::MalformedAttachmentReference => "malformed_attachment_reference",
            Error::MalformedBackup => "malformed_backup",
            Error::BackupParamsOutOfRange => "backup_params_out_of_range",
            Error::BackupDecryption => "backup_decryption",
            Error::KeyDerivation => "key_derivation",
            Error::PickleDecryption => "pickle_decryption",
            Error::MalformedPickle => "malformed_pickle",
            Error::WrongRecoveryKey => "wrong_recovery_key",
            Error::WrongPassphrase => "wrong_passphrase",
            Error::RecoveryKeyMalformed => "recovery_key_malformed",
            Error::NoPassphrase => "no_passphrase",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::Error;

    /// One value of every variant. `variant_index` below has no wildcard arm, so adding a
    /// variant without extending this list (and the expected codes) fails to compile.
    fn every_variant() -> Vec<(Error, &'static str)> {
        vec![
            (Error::InvalidPublicKey("Ed25519"), "invalid_public_key"),
            (Error::MalformedSignature, "malformed_signature"),
            (Error::InvalidLength("pickle key"), "invalid_length"),
            (Error::InvalidBase64, "invalid_base64"),
            (Error::MalformedCertificate, "malformed_certificate"),
            (Error::UnsupportedCertificateVersion(9), "unsupported_certificate_version"),
            (Error::CertificateAccountKeyMismatch, "certificate_account_key_mismatch"),
            (Error::CertificateSignature, "certificate_signature"),
            (Error::OneTimeKeySignature, "one_time_key_signature"),
            (Error::FallbackKeySignature, "fallback_key_signature"),
            (Error::MalformedOlmMessage, "malformed_olm_message"),
            (Error::NotPreKeyMessage, "not_pre_key_message"),
            (Error::UnknownOneTimeKey, "unknown_one_time_key"),
            (Error::OlmSessionCreation, "olm_session_creation"),
            (Error::OlmDecryption, "olm_decryption"),
            (Error::OlmEncryption, "olm_encryption"),
            (Error::MalformedMegolmMessage, "malformed_megolm_message"),
            (Error::MalformedMegolmSessionKey, "malformed_megolm_session_key"),
            (Error::MegolmDecryption, "megolm_decryption"),
            (Error::MegolmUnknownIndex { first_known: 3, index: 1 }, "megolm_unknown_index"),
            (Error::MegolmReplay(4), "megolm_replay"),
            (Error::MegolmIndexConflict(4), "megolm_index_conflict"),
            (Error::MegolmTooManyMessages, "megolm_too_many_messages"),
            (Error::SasKeyAgreement, "sas_key_agreement"),
            (Error::SasMacMismatch, "sas_mac_mismatch"),
            (Error::MalformedVerificationMessage, "malformed_verification_message"),
            (Error::VerificationRequestExpired, "verification_request_expired"),
            (Error::UnexpectedVerificationStep, "unexpected_verification_step"),
            (Error::MalformedPairingData, "malformed_pairing_data"),
            (Error::PairingKeyAgreement, "pairing_key_agreement"),
            (Error::PairingDecryption, "pairing_decryption"),
            (Error::AttachmentHashMismatch, "attachment_hash_mismatch"),
            (Error::MalformedAttachmentReference, "malformed_attachment_reference"),
            (Error::MalformedBackup, "malformed_backup"),
            (Error::BackupParamsOutOfRange, "backup_params_out_of_range"),
            (Error::BackupDecryption, "backup_decryption"),
            (Error::KeyDerivation, "key_derivation"),
            (Error::PickleDecryption, "pickle_decryption"),
            (Error::MalformedPickle, "malformed_pickle"),
            (Error::WrongRecoveryKey, "wrong_recovery_key"),
            (Error::WrongPassphrase, "wrong_passphrase"),
            (Error::RecoveryKeyMalformed, "recovery_key_malformed"),
            (Error::NoPassphrase, "no_passphrase"),
        ]
    }

    const VARIANT_COUNT: usize = 43;

    fn variant_index(e: &Error) -> usize {
        match e {
            Error::InvalidPublicKey(_) => 0,
            Error::MalformedSignature => 1,
            Error::InvalidBase64 => 2,
            Error::MalformedCertificate => 3,
            Error::UnsupportedCertificateVersion(_) => 4,
            Error::CertificateAccountKeyMismatch => 5,
            Error::CertificateSignature => 6,
            Error::OneTimeKeySignature => 7,
            Error::FallbackKeySignature => 8,
            Error::MalformedOlmMessage => 9,
            Error::NotPreKeyMessage => 10,
            Error::UnknownOneTimeKey => 11,
            Error::OlmSessionCreation => 12,
            Error::OlmDecryption => 13,
            Error::OlmEncryption => 14,
            Error::MalformedMegolmMessage => 15,
            Error::MalformedMegolmSessionKey => 16,
            Error::MegolmDecryption => 17,
            Error::MegolmUnknownIndex { .. } => 18,
            Error::MegolmReplay(_) => 19,
            Error::MegolmIndexConflict(_) => 20,
            Error::MegolmTooManyMessages => 21,
            Error::SasKeyAgreement => 22,
            Error::SasMacMismatch => 23,
            Error::MalformedPairingData => 24,
            Error::PairingKeyAgreement => 25,
            Error::PairingDecryption => 26,
            Error::AttachmentHashMismatch => 27,
            Error::MalformedAttachmentReference => 28,
            Error::MalformedBackup => 29,
            Error::BackupParamsOutOfRange => 30,
            Error::BackupDecryption => 31,
            Error::KeyDerivation => 32,
            Error::PickleDecryption => 33,
            Error::MalformedPickle => 34,
            Error::InvalidLength(_) => 35,
            Error::MalformedVerificationMessage => 36,
            Error::VerificationRequestExpired => 37,
            Error::UnexpectedVerificationStep => 38,
            Error::WrongRecoveryKey => 39,
            Error::WrongPassphrase => 40,
            Error::RecoveryKeyMalformed => 41,
            Error::NoPassphrase => 42,
        }
    }

    #[test]
    fn every_variant_has_its_stable_code() {
        let all = every_variant();
        let covered: HashSet<usize> = all.iter().map(|(e, _)| variant_index(e)).collect();
        assert_eq!(covered.len(), VARIANT_COUNT, "every variant listed exactly once");
        assert_eq!(all.len(), VARIANT_COUNT);
        let mut codes = HashSet::new();
        for (error, expected) in &all {
            assert_eq!(error.code(), *expected, "{error:?}");
            assert!(codes.insert(error.code()), "duplicate code {}", error.code());
            assert!(error.code().bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'));
            assert!(!error.to_string().is_empty());
        }
    }
}
