//! Input parsed once, at the edge: a value of these types is valid.

use contracts::email;
use secrecy::{ExposeSecret, SecretString};

/// A field that broke a rule: the platform's one field error
/// ([`contracts::FieldError`], answered 400 `invalid-field`).
pub type Invalid = contracts::FieldError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok_len = (3..=64).contains(&raw.len());
        let ok_chars = raw.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        });
        if ok_len && ok_chars {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(
                "username",
                "username_format",
                "username must be 3 to 64 characters of a-z, 0-9, '.', '_' and '-'",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let parsed = email::parse(raw).map(|e| Self(e.to_owned()));
        parsed.ok_or_else(|| Invalid::new("email", email::RULE, email::MESSAGE))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A person's name part: 1 to 100 characters, no control characters.
pub fn parse_name(field: &'static str, raw: &str) -> Result<String, Invalid> {
    let v = raw.trim();
    if v.is_empty() || v.chars().count() > 100 || v.chars().any(char::is_control) {
        return Err(Invalid::new(
            field,
            "name_format",
            format!("{field} must be 1 to 100 printable characters"),
        ));
    }
    Ok(v.to_owned())
}

/// Empty, or a phone number: digits with an optional leading '+' and the
/// usual separators, 5 to 20 digits.
pub fn parse_phone(raw: &str) -> Result<String, Invalid> {
    let v = raw.trim();
    if v.is_empty() {
        return Ok(String::new());
    }
    let digits = v.chars().filter(char::is_ascii_digit).count();
    let chars_ok = v.char_indices().all(|(i, c)| {
        c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.') || (c == '+' && i == 0)
    });
    if chars_ok && (5..=20).contains(&digits) && v.len() <= 32 {
        Ok(v.to_owned())
    } else {
        Err(Invalid::new(
            "phone",
            "phone_format",
            "phone must be 5 to 20 digits, optionally with a leading '+'",
        ))
    }
}

/// A password that meets the policy (`platform::credentials`).
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(raw: SecretString, username: Option<&str>) -> Result<Self, Invalid> {
        contracts::credentials::check_password(raw.expose_secret(), username)
            .map_err(|v| Invalid::new("password", v.rule, v.message))?;
        Ok(Self(raw))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// A bcrypt hash made elsewhere (an import), at a cost of at most
/// `max_cost` (lower costs are re-hashed at the first login).
pub fn parse_bcrypt_hash(raw: &str, max_cost: u32) -> Result<String, Invalid> {
    contracts::credentials::check_bcrypt_hash(raw)
        .and_then(|()| contracts::credentials::check_bcrypt_cost(raw, max_cost))
        .map_err(|v| Invalid::new("password_hash", v.rule, v.message))?;
    Ok(raw.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> Result<NewPassword, Invalid> {
        NewPassword::parse(SecretString::from(s.to_owned()), Some("alice"))
    }

    #[test]
    fn usernames_follow_the_documented_alphabet() {
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("Alice").is_err());
        assert!(Username::parse("al ice").is_err());
        assert!(Username::parse(&"a".repeat(65)).is_err());
        assert!(Username::parse("alice.b_c-9").is_ok());
    }

    #[test]
    fn a_refused_email_names_its_rule() {
        let e = Email::parse("a..b@c.de").unwrap_err();
        assert_eq!(
            (e.field.as_str(), e.rule.as_str()),
            ("email", "email_format")
        );
        assert_eq!(
            Email::parse(" Alice.Smith+tag@Example.co.uk")
                .unwrap()
                .as_str(),
            "Alice.Smith+tag@Example.co.uk"
        );
    }

    #[test]
    fn passwords_name_the_rule_they_break() {
        assert_eq!(pw(&"Aa1!".repeat(19)).err().unwrap().rule, "max_bytes");
        assert_eq!(pw("Aa1!").err().unwrap().rule, "min_length");
        assert_eq!(pw("Password1").err().unwrap().rule, "common_password");
        assert_eq!(
            NewPassword::parse(
                SecretString::from("alice.smith-1".to_owned()),
                Some("alice.smith-1")
            )
            .err()
            .unwrap()
            .rule,
            "same_as_username"
        );
        assert_eq!(pw("abcdefghij").err().unwrap().rule, "character_classes");
        assert!(pw("correct horse battery").is_ok());
        assert!(pw("Employer-Passw0rd!").is_ok());
        // 72 bytes exactly is fine; multi-byte characters count as bytes.
        assert!(pw(&format!("Aa1!{}", "x".repeat(68))).is_ok());
        assert_eq!(
            pw(&format!("Aa1!{}", "é".repeat(35))).err().unwrap().rule,
            "max_bytes"
        );
    }

    #[test]
    fn imported_hashes_must_be_bcrypt() {
        let h = bcrypt::hash("Imported-Passw0rd!", 4).unwrap();
        assert_eq!(parse_bcrypt_hash(&h, 14).unwrap(), h);
        assert!(parse_bcrypt_hash("$2b$12$short", 14).is_err());
        assert!(parse_bcrypt_hash("plain text", 14).is_err());
        assert!(parse_bcrypt_hash(&h.replacen("$2b$04$", "$2b$99$", 1), 14).is_err());
        assert_eq!(
            parse_bcrypt_hash(&h.replacen("$2b$04$", "$2b$31$", 1), 14)
                .unwrap_err()
                .rule,
            "bcrypt_cost_max"
        );
    }

    #[test]
    fn phones_are_optional_but_checked() {
        assert_eq!(parse_phone("").unwrap(), "");
        assert!(parse_phone("+1 (555) 010-9999").is_ok());
        assert!(parse_phone("call me").is_err());
        assert!(parse_phone("1+2345").is_err());
    }
}
