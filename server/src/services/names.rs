//! The names people choose and type: usernames, display and device names, email addresses and
//! passwords, group titles. Each is parsed once, at the edge, into a type that can only hold a valid value;
//! the rules are documented in docs/api.md.
//!
//! # Security
//! Usernames are restricted to lower-case ASCII so two accounts can never look alike
//! ("аlice" with a Cyrillic `а` is refused, not stored beside "alice"). Display names and group
//! titles may use any script but not invisible formatting characters, which could hide or
//! reorder text.

use super::{Error, ErrorReason};

/// A valid, normalised username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Trims, lower-cases and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let name = raw.trim().to_ascii_lowercase();
        let invalid = |message: &str| Error::invalid(ErrorReason::UsernameInvalid, "username", message);
        if name.is_empty() {
            return Err(invalid("a username is required"));
        }
        if !name.is_ascii() {
            return Err(invalid("usernames use only a-z, 0-9, '.', '_' and '-'"));
        }
        if !(3..=32).contains(&name.len()) {
            return Err(invalid("usernames are 3 to 32 characters long"));
        }
        if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)) {
            return Err(invalid("usernames use only a-z, 0-9, '.', '_' and '-'"));
        }
        let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
        if !alnum(name.bytes().next()) || !alnum(name.bytes().last()) {
            return Err(invalid("usernames start and end with a letter or digit"));
        }
        Ok(Self(name))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Characters that are invisible or change text direction: refused in names.
fn is_invisible_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{17B4}' | '\u{17B5}'
        | '\u{180B}'..='\u{180F}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}' | '\u{3164}' | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}'
        | '\u{FFF0}'..='\u{FFFB}' | '\u{E0000}'..='\u{E007F}')
}

fn visible_name(raw: &str, reason: ErrorReason, field: &'static str, what: &str) -> Result<String, Error> {
    visible_text(raw, 64, reason, field, what)
}

/// `raw` trimmed, if it is 1 to `max` characters with nothing invisible or direction-changing.
fn visible_text(
    raw: &str,
    max: usize,
    reason: ErrorReason,
    field: &'static str,
    what: &str,
) -> Result<String, Error> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(Error::invalid(reason, field, format!("a {what} is required")));
    }
    if name.chars().count() > max {
        return Err(Error::invalid(reason, field, format!("a {what} is at most {max} characters")));
    }
    if name.chars().any(|c| c.is_control() || is_invisible_format(c)) {
        return Err(Error::invalid(
            reason,
            field,
            format!("a {what} cannot contain control or invisible formatting characters"),
        ));
    }
    Ok(name.to_owned())
}

/// A valid display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Trims and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        visible_name(raw, ErrorReason::DisplayNameInvalid, "display_name", "display name").map(Self)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid device name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceName(String);

impl DeviceName {
    /// Trims and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        visible_name(raw, ErrorReason::DeviceNameInvalid, "device_name", "device name").map(Self)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A valid group title: like a display name (any script, nothing invisible or
/// direction-changing, which could make one group pass for another), up to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTitle(String);

impl GroupTitle {
    /// Trims and checks `raw`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        visible_text(raw, 100, ErrorReason::TitleInvalid, "title", "group title").map(Self)
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A guild's, channel's or role's name (the rules of group titles), for request field `field`.
pub fn guild_name(raw: &str, field: &'static str, what: &str) -> Result<String, Error> {
    visible_text(raw, 100, ErrorReason::TitleInvalid, field, what)
}

/// Free text people write beside a name (a description, a topic, a reason): trimmed, possibly
/// empty, at most `max` characters, line breaks allowed but no other control character and
/// nothing invisible or direction-changing.
pub fn free_text(raw: &str, max: usize, field: &'static str, what: &str) -> Result<String, Error> {
    let text = raw.trim();
    if text.chars().count() > max {
        return Err(Error::invalid(
            ErrorReason::TextInvalid,
            field,
            format!("a {what} is at most {max} characters"),
        ));
    }
    if text.chars().any(|c| (c.is_control() && c != '\n') || is_invisible_format(c)) {
        return Err(Error::invalid(
            ErrorReason::TextInvalid,
            field,
            format!("a {what} cannot contain control or invisible formatting characters"),
        ));
    }
    Ok(text.to_owned())
}

/// A plausible, normalised email address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Trims, lower-cases and checks `raw`. (Whether it exists is for the verification code
    /// to find out.)
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let email = raw.trim().to_ascii_lowercase();
        let invalid = || Error::invalid(ErrorReason::EmailInvalid, "email", "not a valid email address");
        if email.is_empty() || email.len() > 254 || !email.is_ascii() {
            return Err(invalid());
        }
        let Some((local, domain)) = email.split_once('@') else { return Err(invalid()) };
        let ok_local = !local.is_empty()
            && local.len() <= 64
            && local.bytes().all(|b| b.is_ascii_graphic() && !b"@\"(),:;<>[\\]".contains(&b));
        let ok_domain = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !label.starts_with('-')
                    && !label.ends_with('-')
            });
        if !ok_local || !ok_domain {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    /// The normalised text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the rules (checked, never stored: only its hash is).
pub struct Password<'a>(&'a str);

impl<'a> Password<'a> {
    /// Checks length (8-256 characters) and that it is not the username.
    pub fn parse(raw: &'a str, field: &'static str, username: Option<&Username>) -> Result<Self, Error> {
        let chars = raw.chars().count();
        let invalid = |message: &str| Error::invalid(ErrorReason::PasswordInvalid, field, message);
        if chars < 8 {
            return Err(invalid("passwords are at least 8 characters long"));
        }
        if chars > 256 {
            return Err(invalid("passwords are at most 256 characters long"));
        }
        if username.is_some_and(|u| raw.trim().eq_ignore_ascii_case(u.as_str())) {
            return Err(invalid("the password cannot be the username"));
        }
        Ok(Self(raw))
    }

    /// The password text.
    pub fn expose(&self) -> &'a str {
        self.0
    }
}

impl std::fmt::Debug for Password<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason<T>(result: Result<T, Error>) -> Option<ErrorReason> {
        result.err().map(|e| e.reason())
    }

    #[test]
    fn usernames() {
        let ok = [("alice", "alice"), ("  Bob.Smith_2 ", "bob.smith_2"), ("a-1", "a-1"), ("x9z", "x9z")];
        for (raw, want) in ok {
            assert_eq!(Username::parse(raw).map(|u| u.0).ok().as_deref(), Some(want), "{raw:?}");
        }
        let bad = [
            "",
            "   ",
            "ab",
            "a".repeat(33).as_str(),
            "аlice",
            "alice\u{200B}",
            "al ice",
            "-alice",
            "alice.",
            "al@ice",
            "ålice",
            "ａｌｉｃｅ",
        ]
        .map(str::to_owned);
        for raw in bad {
            assert_eq!(reason(Username::parse(&raw)), Some(ErrorReason::UsernameInvalid), "{raw:?}");
        }
    }

    #[test]
    fn display_and_device_names() {
        assert_eq!(DisplayName::parse("  Алиса 🦊 ").map(|n| n.0).ok().as_deref(), Some("Алиса 🦊"));
        assert_eq!(
            DeviceName::parse("Firefox on Linux").map(|n| n.0).ok().as_deref(),
            Some("Firefox on Linux")
        );
        for raw in ["", "  ", "evil\u{202E}gnp.exe", "zero\u{200B}width", "tab\there", &"x".repeat(65)] {
            assert_eq!(reason(DisplayName::parse(raw)), Some(ErrorReason::DisplayNameInvalid), "{raw:?}");
            assert_eq!(reason(DeviceName::parse(raw)), Some(ErrorReason::DeviceNameInvalid), "{raw:?}");
        }
        assert!(DisplayName::parse(&"я".repeat(64)).is_ok());
    }

    #[test]
    fn group_titles() {
        assert_eq!(GroupTitle::parse("  LAN party 🦊 ").map(|t| t.0).ok().as_deref(), Some("LAN party 🦊"));
        assert!(GroupTitle::parse(&"я".repeat(100)).is_ok());
        for raw in
            ["", "  ", "Admins\u{202E}nimdA", "Family\u{200B}", "a\u{2066}b", "new\nline", &"x".repeat(101)]
        {
            assert_eq!(reason(GroupTitle::parse(raw)), Some(ErrorReason::TitleInvalid), "{raw:?}");
        }
    }

    #[test]
    fn guild_names_and_free_text() {
        assert_eq!(guild_name(" general ", "name", "channel name").ok().as_deref(), Some("general"));
        assert_eq!(reason(guild_name("", "name", "channel name")), Some(ErrorReason::TitleInvalid));
        assert_eq!(free_text("  two\nlines ", 10, "topic", "topic").ok().as_deref(), Some("two\nlines"));
        assert_eq!(free_text("", 10, "topic", "topic").ok().as_deref(), Some(""));
        for raw in [&"x".repeat(11), "tab\there", "rtl\u{202E}", "nul\0"] {
            assert_eq!(
                reason(free_text(raw, 10, "topic", "topic")),
                Some(ErrorReason::TextInvalid),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse(" Alice@Example.ORG ").map(|e| e.0).ok().as_deref(),
            Some("alice@example.org")
        );
        for raw in
            ["", "alice", "alice@", "@example.org", "a@b", "a@@b.org", "a b@c.org", "a@-x.org", "ä@x.org"]
        {
            assert_eq!(reason(Email::parse(raw)), Some(ErrorReason::EmailInvalid), "{raw:?}");
        }
    }

    #[test]
    fn passwords() {
        let alice = Username::parse("alice").ok();
        assert!(Password::parse("correct horse", "password", alice.as_ref()).is_ok());
        for raw in ["short", &"x".repeat(257)] {
            assert_eq!(reason(Password::parse(raw, "password", None)), Some(ErrorReason::PasswordInvalid));
        }
        let username_as_password = Username::parse("alice123").ok();
        assert_eq!(
            reason(Password::parse("Alice123", "password", username_as_password.as_ref())),
            Some(ErrorReason::PasswordInvalid)
        );
        assert_eq!(format!("{:?}", Password::parse("secret-pass", "p", None).ok()), "Some(Password(***))");
    }
}
