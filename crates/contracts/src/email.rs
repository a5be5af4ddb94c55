//! The syntax every service accepts for an email address.

/// The rule a refused address breaks, as a 4xx problem names it.
pub const RULE: &str = "email_format";
/// What a refused address is told.
pub const MESSAGE: &str = "email must be a valid address such as name@example.com";

/// `raw` without surrounding whitespace when it looks deliverable: at most
/// 254 characters, no inner whitespace or control characters, a local part
/// of 1 to 64 characters that neither starts nor ends with a dot nor has
/// two in a row, and a domain of two or more labels of letters, digits and
/// inner hyphens (1 to 63 characters each). `None` otherwise.
pub fn parse(raw: &str) -> Option<&str> {
    let raw = raw.trim();
    if raw.len() > 254 || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return None;
    }
    let (local, domain) = raw.rsplit_once('@')?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    (local_ok && domain_ok).then_some(raw)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn addresses_must_look_deliverable() {
        for bad in [
            "",
            "a",
            "a@b",
            "a@@b.c",
            "a b@c.d",
            "@b.cd",
            "a@-b.cd",
            "a..b@c.de",
            ".a@b.cd",
            "a.@b.cd",
        ] {
            assert_eq!(parse(bad), None, "{bad} should be refused");
        }
        assert_eq!(
            parse("  Alice.Smith+tag@Example.co.uk "),
            Some("Alice.Smith+tag@Example.co.uk")
        );
        assert_eq!(parse(&format!("{}@b.cd", "a".repeat(65))), None);
    }
}
