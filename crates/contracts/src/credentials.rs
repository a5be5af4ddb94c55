//! The password policy and the bcrypt-hash format, shared by every service
//! that accepts a password or an imported hash, so that they agree with the
//! authenticator that stores it.

/// bcrypt reads only 72 bytes: longer passwords are refused, never cut.
pub const MAX_PASSWORD_BYTES: usize = 72;
pub const MIN_PASSWORD_CHARS: usize = 8;

/// A rule a value broke; the caller names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub message: String,
}

fn violation(rule: &'static str, message: impl Into<String>) -> Violation {
    Violation {
        rule,
        message: message.into(),
    }
}

/// A short list of the passwords that leaked lists start with; a real
/// deployment may add a breached-password check (k-anonymity API).
const COMMON: &[&str] = &[
    "password",
    "password1",
    "password123",
    "12345678",
    "123456789",
    "1234567890",
    "qwertyuiop",
    "iloveyou",
    "sunshine1",
    "princess1",
    "football1",
    "baseball1",
    "welcome1",
    "admin123",
    "letmein1",
    "trustno1",
    "qwerty123",
    "1q2w3e4r",
    "passw0rd",
    "p@ssw0rd",
    "changeme",
    "abc12345",
    "11111111",
    "00000000",
    "superman1",
    "whatever1",
    "password!",
];

/// NIST-like: 8 to 72 bytes, not a common password, not the username, and
/// three of lower case, upper case, digits and symbols unless 16+ chars.
pub fn check_password(p: &str, username: Option<&str>) -> Result<(), Violation> {
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(violation(
            "max_bytes",
            format!(
                "password must be at most {MAX_PASSWORD_BYTES} bytes (it is {} bytes); bcrypt would ignore the rest",
                p.len()
            ),
        ));
    }
    if p.chars().count() < MIN_PASSWORD_CHARS {
        return Err(violation(
            "min_length",
            format!("password must be at least {MIN_PASSWORD_CHARS} characters"),
        ));
    }
    let lower = p.to_lowercase();
    if COMMON.contains(&lower.as_str()) {
        return Err(violation("common_password", "password is too common"));
    }
    if username.is_some_and(|u| lower == u.to_lowercase()) {
        return Err(violation(
            "same_as_username",
            "password must not be the username",
        ));
    }
    let classes = [
        p.chars().any(|c| c.is_lowercase()),
        p.chars().any(|c| c.is_uppercase()),
        p.chars().any(|c| c.is_ascii_digit()),
        p.chars().any(|c| !c.is_alphanumeric()),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if classes < 3 && p.chars().count() < 16 {
        return Err(violation(
            "character_classes",
            "password must mix at least three of lower case, upper case, digits and symbols, or be 16 characters or longer",
        ));
    }
    Ok(())
}

/// A bcrypt hash made elsewhere (an import): `$2a$`, `$2b$` or `$2y$`, a
/// cost of 4 to 31, then 53 characters of bcrypt's base64.
pub fn check_bcrypt_hash(raw: &str) -> Result<(), Violation> {
    let bad = || {
        violation(
            "bcrypt_format",
            "password_hash must be a bcrypt hash ($2a$, $2b$ or $2y$)",
        )
    };
    let rest = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .find_map(|p| raw.strip_prefix(p))
        .ok_or_else(bad)?;
    let (cost, tail) = rest.split_once('$').ok_or_else(bad)?;
    let cost: u32 = cost.parse().map_err(|_| bad())?;
    let ok = (4..=31).contains(&cost)
        // two cost digits, '$', 53 characters
        && rest.len() == 56
        && tail.len() == 53
        && tail.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    if ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// The cost (log2 of the rounds) a bcrypt hash was made with, if `hash`
/// looks like one.
pub fn bcrypt_cost(hash: &str) -> Option<u32> {
    let rest = ["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .find_map(|p| hash.strip_prefix(p))?;
    rest.get(..2)?.parse().ok()
}

/// A bcrypt hash whose cost is above `max_cost` is refused: one
/// verification of a cost-31 hash keeps a core busy for more than a day,
/// so an import could stall every login.
pub fn check_bcrypt_cost(raw: &str, max_cost: u32) -> Result<(), Violation> {
    match bcrypt_cost(raw) {
        Some(c) if c > max_cost => Err(violation(
            "bcrypt_cost_max",
            "password_hash has a bcrypt cost above the highest this service accepts; \
             re-hash it at a lower cost (it is re-hashed at the configured cost at the first login)",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_is_named() {
        assert_eq!(
            check_password(&"Aa1!".repeat(19), None).unwrap_err().rule,
            "max_bytes"
        );
        assert_eq!(check_password("Aa1!", None).unwrap_err().rule, "min_length");
        assert_eq!(
            check_password("Password1", None).unwrap_err().rule,
            "common_password"
        );
        assert_eq!(
            check_password("alice.smith-1", Some("alice.smith-1"))
                .unwrap_err()
                .rule,
            "same_as_username"
        );
        assert_eq!(
            check_password("abcdefghij", None).unwrap_err().rule,
            "character_classes"
        );
        assert!(check_password("correct horse battery", None).is_ok());
        assert!(check_password(&format!("Aa1!{}", "x".repeat(68)), None).is_ok());
        assert_eq!(
            check_password(&format!("Aa1!{}", "é".repeat(35)), None)
                .unwrap_err()
                .rule,
            "max_bytes"
        );
    }

    #[test]
    fn bcrypt_hashes_are_recognised() {
        let h = "$2b$04$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234";
        assert!(check_bcrypt_hash(h).is_ok(), "{}", h.len());
        assert!(check_bcrypt_hash("$2b$12$short").is_err());
        assert!(check_bcrypt_hash("plain text").is_err());
        assert!(check_bcrypt_hash(&h.replacen("$04$", "$99$", 1)).is_err());
        assert_eq!(bcrypt_cost(h), Some(4));
        assert!(check_bcrypt_cost(h, 14).is_ok());
        let slow = h.replacen("$04$", "$31$", 1);
        assert_eq!(
            check_bcrypt_cost(&slow, 14).unwrap_err().rule,
            "bcrypt_cost_max"
        );
    }
}
