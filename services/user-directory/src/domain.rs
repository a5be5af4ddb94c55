//! Input parsed once, at the edge: a value of these types is valid.

use contracts::email;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// A field that broke a rule: the platform's one field error
/// ([`contracts::FieldError`], answered 400 `invalid-field`).
pub type Invalid = contracts::FieldError;

/// An organization's name: 2 to 64 of `A-Z a-z 0-9 _ -`, unique
/// regardless of case (the database enforces that part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationName(String);

impl OrganizationName {
    pub fn parse(field: &str, raw: &str) -> Result<Self, Invalid> {
        let ok = (2..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(
                field,
                "organization_name_format",
                format!("{field} must be 2 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"),
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

    /// The authenticator logs in by username: one derived from the email,
    /// the same every time (sanitized local part and a short hash of the
    /// lowercased address), so two addresses never share one.
    pub fn derived_username(&self) -> String {
        let lower = self.0.to_lowercase();
        let local = lower.split('@').next().unwrap_or_default();
        let mut base: String = local
            .chars()
            .map(|c| match c {
                'a'..='z' | '0'..='9' | '.' | '_' | '-' => c,
                _ => '-',
            })
            .take(40)
            .collect();
        if base.is_empty() {
            base.push_str("user");
        }
        let digest = Sha256::digest(lower.as_bytes());
        format!("{base}-{}", hex::encode(&digest[..4]))
    }
}

/// A person's name part: 1 to 100 characters, no control characters.
pub fn parse_name(field: &str, raw: &str) -> Result<String, Invalid> {
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

/// A password the providers will take: the platform's policy
/// (`platform::credentials`, the same the authenticator applies): 8
/// characters to 72 bytes (bcrypt ignores the rest, so longer is refused,
/// never truncated), not common, mixing three of lower, upper, digits and
/// symbols unless 16 characters or longer.
pub struct NewPassword(SecretString);

impl NewPassword {
    pub fn parse(raw: SecretString) -> Result<Self, Invalid> {
        contracts::credentials::check_password(raw.expose_secret(), None)
            .map_err(|v| Invalid::new("password", v.rule, v.message))?;
        Ok(Self(raw))
    }

    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

/// A bcrypt hash made elsewhere (an import): the format the authenticator
/// accepts (`platform::credentials`).
pub fn parse_bcrypt_hash(raw: &str) -> Result<String, Invalid> {
    contracts::credentials::check_bcrypt_hash(raw)
        .map_err(|v| Invalid::new("password_hash", v.rule, v.message))?;
    Ok(raw.to_owned())
}

/// An organization role of the file, as written there (400 naming
/// `role` otherwise).
pub fn parse_role(
    config: &crate::directory_config::DirectoryConfig,
    raw: &str,
) -> Result<String, Invalid> {
    config.role(raw).map(str::to_owned).ok_or_else(|| {
        Invalid::new(
            "role",
            "configured_role",
            format!("role {raw:?} is not one of the configured roles"),
        )
    })
}

/// An environment role of the file, as written there (400 naming
/// `environment_role` otherwise).
pub fn parse_environment_role(
    config: &crate::directory_config::DirectoryConfig,
    raw: &str,
) -> Result<String, Invalid> {
    config
        .environment_role(raw)
        .map(str::to_owned)
        .ok_or_else(|| {
            Invalid::new(
                "environment_role",
                "configured_environment_role",
                format!("environment_role {raw:?} is not one of the configured environment roles"),
            )
        })
}

/// A new directory user, valid against the current roles and
/// organizations file.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub first_name: String,
    pub last_name: String,
    /// As written in the configuration file.
    pub organization: String,
    pub role: String,
    /// The environment role (the file's default unless asked for).
    pub environment_role: String,
    /// A bcrypt hash to import, or none: an invitation.
    pub password_hash: Option<String>,
}

/// The raw fields of a user, as a request or an import row carries them.
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct UserFields {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub first_name: String,
    #[serde(default)]
    pub last_name: String,
    #[serde(default)]
    pub organization: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub password_hash: Option<String>,
    #[serde(default)]
    pub password_hash_type: Option<String>,
    /// Optional: the file's `default_environment_role` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_role: Option<String>,
}

impl UserFields {
    pub fn parse(
        self,
        config: &crate::directory_config::DirectoryConfig,
    ) -> Result<NewUser, Invalid> {
        let email = Email::parse(&self.email)?;
        let first_name = parse_name("first_name", &self.first_name)?;
        let last_name = parse_name("last_name", &self.last_name)?;
        let organization = config
            .organization(self.organization.trim())
            .ok_or_else(|| {
                Invalid::new(
                    "organization",
                    "configured_organization",
                    format!(
                        "organization {:?} is not one of the configured organizations",
                        self.organization
                    ),
                )
            })?
            .name
            .clone();
        let role = config
            .roles
            .iter()
            .find(|r| r.eq_ignore_ascii_case(self.role.trim()))
            .ok_or_else(|| {
                Invalid::new(
                    "role",
                    "configured_role",
                    format!("role {:?} is not one of the configured roles", self.role),
                )
            })?
            .clone();
        let environment_role = parse_environment_role(
            config,
            self.environment_role
                .as_deref()
                .filter(|r| !r.trim().is_empty())
                .unwrap_or(config.default_environment_role()),
        )?;
        let hash = self.password_hash.filter(|h| !h.trim().is_empty());
        let password_hash = match (hash, self.password_hash_type.as_deref().map(str::trim)) {
            (None, _) => None,
            (Some(h), None | Some("") | Some("bcrypt")) => Some(parse_bcrypt_hash(h.trim())?),
            (Some(_), Some(other)) => {
                return Err(Invalid::new(
                    "password_hash_type",
                    "supported_hash_type",
                    format!("password_hash_type {other:?} is not supported; use bcrypt"),
                ))
            }
        };
        Ok(NewUser {
            email,
            first_name,
            last_name,
            organization,
            role,
            environment_role,
            password_hash,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organization_names_follow_the_seed_alphabet() {
        assert!(OrganizationName::parse("n", "a").is_err());
        assert!(OrganizationName::parse("n", "acme corp").is_err());
        assert!(OrganizationName::parse("n", &"a".repeat(65)).is_err());
        assert!(OrganizationName::parse("n", "Acme_Corp-2").is_ok());
    }

    #[test]
    fn derived_usernames_are_stable_valid_and_distinct() {
        let a = Email::parse("Ada.Lovelace+x@Example.com").unwrap();
        let b = Email::parse("ada.lovelace+x@example.com").unwrap();
        let c = Email::parse("ada.lovelace+y@example.com").unwrap();
        assert_eq!(a.derived_username(), b.derived_username());
        assert_ne!(a.derived_username(), c.derived_username());
        let u = a.derived_username();
        assert!(u.starts_with("ada.lovelace-x-"), "{u}");
        assert!((3..=64).contains(&u.len()));
        assert!(u
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)));
    }

    #[test]
    fn passwords_name_the_rule_they_break() {
        let p = |s: &str| NewPassword::parse(SecretString::from(s.to_owned()));
        assert_eq!(p(&"Aa1!".repeat(19)).err().unwrap().rule, "max_bytes");
        assert_eq!(p("Aa1!").err().unwrap().rule, "min_length");
        assert_eq!(p("abcdefghij").err().unwrap().rule, "character_classes");
        assert!(p("Acme-Passw0rd!").is_ok());
    }

    #[test]
    fn imported_hashes_must_be_bcrypt() {
        let h = bcrypt::hash("Imported-Passw0rd!", 4).unwrap();
        assert_eq!(parse_bcrypt_hash(&h).unwrap(), h);
        assert!(parse_bcrypt_hash("$2b$12$short").is_err());
        assert!(parse_bcrypt_hash("plain").is_err());
    }
}
