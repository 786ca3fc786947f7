//! Validated values. Each has a `parse` constructor that is the only way to make one, so the
//! rest of the code never re-checks them.

use std::fmt;

use serde::Serialize;

/// Why a value was refused, phrased for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);

macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_value!(
    /// A Passport's name on its home instance (`ada` in `@ada@convene.example.org`):
    /// 1–30 lowercase ASCII letters, digits and underscores, starting with a letter.
    Handle
);
string_value!(
    /// A lowercased email address with one `@`, a local part and a dotted domain.
    Email
);
string_value!(
    /// A Space's or Room's name in URLs: 2–40 lowercase letters, digits and single dashes.
    Slug
);
string_value!(
    /// A human name for a person, Space or Room: 1–80 characters after trimming, no control
    /// characters.
    DisplayName
);
string_value!(
    /// A locked Room's access code: 4–64 visible characters, compared exactly.
    AccessCode
);

/// Handles that would collide with routes or confuse people.
const RESERVED_HANDLES: &[&str] = &[
    "admin",
    "administrator",
    "api",
    "convene",
    "instance",
    "me",
    "operator",
    "root",
    "static",
    "support",
    "system",
];

/// Slugs that would collide with fixed routes under `/spaces` and `/rooms`.
const RESERVED_SLUGS: &[&str] = &["new", "edit", "delete", "members", "invitations", "api"];

impl Handle {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let handle = input.trim().trim_start_matches('@').to_ascii_lowercase();
        if handle.is_empty() {
            return Err(Invalid("Choose a handle."));
        }
        if handle.len() > 30 {
            return Err(Invalid("A handle has at most 30 characters."));
        }
        if !handle.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(Invalid("A handle starts with a letter."));
        }
        if !handle
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(Invalid(
                "A handle uses only letters, digits and underscores.",
            ));
        }
        if RESERVED_HANDLES.contains(&handle.as_str()) {
            return Err(Invalid("That handle is reserved; choose another."));
        }
        Ok(Self(handle))
    }

    /// Rebuilds a handle read back from the database, where it was stored after `parse`.
    pub(crate) fn from_db(s: String) -> Self {
        Self(s)
    }
}

impl Email {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let email = input.trim().to_lowercase();
        if email.is_empty() {
            return Err(Invalid("Enter your email address."));
        }
        if email.len() > 254 {
            return Err(Invalid("That email address is too long."));
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err(Invalid("Enter an email address like name@example.org."));
        };
        let valid_local = !local.is_empty()
            && local.len() <= 64
            && local
                .chars()
                .all(|c| !c.is_whitespace() && !c.is_control() && !"<>()[]\\,;:\"@".contains(c));
        let valid_domain = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '.');
        if !valid_local || !valid_domain {
            return Err(Invalid("Enter an email address like name@example.org."));
        }
        Ok(Self(email))
    }

    pub(crate) fn from_db(s: String) -> Self {
        Self(s)
    }
}

impl Slug {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let slug = input.trim().to_ascii_lowercase();
        if slug.len() < 2 {
            return Err(Invalid("Use at least 2 characters."));
        }
        if slug.len() > 40 {
            return Err(Invalid("Use at most 40 characters."));
        }
        if !slug
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(Invalid("Use lowercase letters, digits and dashes."));
        }
        if slug.starts_with('-') || slug.ends_with('-') || slug.contains("--") {
            return Err(Invalid(
                "Dashes go between letters or digits, one at a time.",
            ));
        }
        if RESERVED_SLUGS.contains(&slug.as_str()) {
            return Err(Invalid("That address is reserved; choose another."));
        }
        Ok(Self(slug))
    }

    /// Suggests a slug from a name ("Book Club!" → "book-club"), for forms left blank.
    pub fn suggest(name: &str) -> String {
        let mut out = String::new();
        for c in name.trim().to_lowercase().chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        out.trim_end_matches('-')
            .chars()
            .take(40)
            .collect::<String>()
            .trim_end_matches('-')
            .to_string()
    }

    pub(crate) fn from_db(s: String) -> Self {
        Self(s)
    }
}

impl DisplayName {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let name = input.trim();
        if name.is_empty() {
            return Err(Invalid("Enter a name."));
        }
        if name.chars().count() > 80 {
            return Err(Invalid("Use at most 80 characters."));
        }
        if name
            .chars()
            .any(|c| c.is_control() || c == char::REPLACEMENT_CHARACTER)
        {
            return Err(Invalid("Use printable characters only."));
        }
        if hides_or_reorders(name) {
            return Err(Invalid(
                "Use visible characters only: no invisible, direction-changing or line-separating characters.",
            ));
        }
        Ok(Self(name.to_string()))
    }

    pub(crate) fn from_db(s: String) -> Self {
        Self(s)
    }
}

impl AccessCode {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let code = input.trim();
        if code.chars().count() < 4 {
            return Err(Invalid("An access code has at least 4 characters."));
        }
        if code.chars().count() > 64 {
            return Err(Invalid("An access code has at most 64 characters."));
        }
        if code.chars().any(|c| c.is_control()) {
            return Err(Invalid("Use printable characters only."));
        }
        Ok(Self(code.to_string()))
    }

    /// Compares in constant time so that response timing does not reveal a prefix.
    pub fn matches(&self, attempt: &str) -> bool {
        let a = self.0.as_bytes();
        let b = attempt.trim().as_bytes();
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    pub(crate) fn from_db(s: String) -> Self {
        Self(s)
    }
}

/// Free text such as a Space description or Room topic: trimmed, at most `max` characters.
pub fn parse_text(input: &str, max: usize) -> Result<String, Invalid> {
    let text = input.trim();
    if text.chars().count() > max {
        return Err(Invalid("That text is too long."));
    }
    if hides_or_reorders(text) {
        return Err(Invalid(
            "Use visible characters only: no invisible, direction-changing or line-separating characters.",
        ));
    }
    // U+FFFD marks bytes that were not valid UTF-8 when the form was decoded.
    if text.chars().any(|c| {
        (c.is_control() && c != '\n' && c != '\r' && c != '\t') || c == char::REPLACEMENT_CHARACTER
    }) {
        return Err(Invalid("Use printable characters only."));
    }
    Ok(text.replace("\r\n", "\n"))
}

/// True when `text` holds characters that let one name pass for another or disturb the text
/// around it (Unicode's security guidance for identifiers, UTS #39): direction overrides and
/// isolates, zero-width and other invisible format characters, invisible fillers, tags, and
/// line or paragraph separators. Zero-width joiners and non-joiners are kept where scripts
/// and emoji sequences need them: between two non-ASCII, non-space characters.
pub fn hides_or_reorders(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| match c {
        '\u{200C}' | '\u{200D}' => {
            let joins = |n: Option<&char>| n.is_some_and(|n| !n.is_ascii() && !n.is_whitespace());
            !(i > 0 && joins(chars.get(i - 1)) && joins(chars.get(i + 1)))
        }
        '\u{00AD}'
        | '\u{034F}'
        | '\u{061C}'
        | '\u{115F}'
        | '\u{1160}'
        | '\u{17B4}'
        | '\u{17B5}'
        | '\u{180B}'..='\u{180F}'
        | '\u{200B}'
        | '\u{200E}'
        | '\u{200F}'
        | '\u{2028}'..='\u{202E}'
        | '\u{2060}'..='\u{206F}'
        | '\u{3164}'
        | '\u{FE00}'..='\u{FE0E}'
        | '\u{FEFF}'
        | '\u{FFA0}'
        | '\u{FFF9}'..='\u{FFFB}'
        | '\u{1BCA0}'..='\u{1BCA3}'
        | '\u{1D173}'..='\u{1D17A}'
        | '\u{E0000}'..='\u{E0FFF}' => true,
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Guards issue 10 (item 7): names cannot hide characters or turn text around.
    #[test]
    fn names_refuse_invisible_and_reordering_characters() {
        for evil in [
            "Olive\u{202E}renwO",
            "Ol\u{200B}ive",
            "Olive\u{2028}Owner",
            "\u{2066}Olive\u{2069}",
            "Olive\u{FEFF}",
            "O\u{200D}live",
            "\u{3164}",
            "Olive\u{E0041}",
        ] {
            assert!(DisplayName::parse(evil).is_err(), "{evil:?}");
            assert!(parse_text(evil, 100).is_err(), "{evil:?}");
        }
        // Scripts and emoji that need joiners still work.
        for fine in [
            "\u{0645}\u{06CC}\u{200C}\u{062E}\u{0648}\u{0627}\u{0647}\u{0645}",
            "\u{1F469}\u{200D}\u{1F4BB} Ada",
            "Zoë Ångström",
            "\u{0928}\u{094D}\u{200D}\u{092F}",
        ] {
            assert!(DisplayName::parse(fine).is_ok(), "{fine:?}");
        }
    }

    #[test]
    fn handles_are_lowercased_and_checked() {
        assert_eq!(Handle::parse("@Ada_1").map(|h| h.0), Ok("ada_1".into()));
        assert!(Handle::parse("1ada").is_err());
        assert!(Handle::parse("ada lovelace").is_err());
        assert!(Handle::parse("admin").is_err());
        assert!(Handle::parse(&"a".repeat(31)).is_err());
        assert!(Handle::parse("").is_err());
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert_eq!(
            Email::parse(" Ada@Example.ORG ").map(|e| e.0),
            Ok("ada@example.org".into())
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.org",
            "ada@example",
            "a b@x.org",
            "a@x..org",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn slugs_are_url_safe() {
        assert!(Slug::parse("book-club").is_ok());
        for bad in ["a", "Book Club", "-x", "x-", "a--b", "new", "é-t"] {
            assert!(Slug::parse(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(Slug::suggest("  Book Club! 2026 "), "book-club-2026");
        assert_eq!(Slug::suggest("Ünïcode"), "n-code");
    }

    #[test]
    fn access_codes_match_exactly() {
        let code = AccessCode::parse("open sesame").expect("valid code");
        assert!(code.matches("open sesame"));
        assert!(code.matches(" open sesame "));
        assert!(!code.matches("open sesam"));
        assert!(!code.matches("Open sesame"));
        assert!(AccessCode::parse("abc").is_err());
    }

    #[test]
    fn display_names_refuse_control_characters() {
        assert!(DisplayName::parse("Ada Lovelace").is_ok());
        assert!(DisplayName::parse("Ada\u{0007}").is_err());
        assert!(DisplayName::parse("   ").is_err());
    }
}
