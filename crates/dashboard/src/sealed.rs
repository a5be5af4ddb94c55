//! A session's tokens, sealed at rest under a key only its cookie gives.
//!
//! The session row keeps the access and refresh tokens the dashboard acts
//! with, and the row is found by the SHA-256 of the session id, which only
//! the browser's cookie holds. The tokens are sealed (AES-256-GCM) under a
//! key derived from that id (HMAC-SHA256 keyed with the id, a fixed label as
//! the message: not computable from the stored digest), so a copy of the
//! database, a backup or a read-only SQL injection yields no token anyone can
//! use; each token's kind is authenticated with it, so an access token
//! cannot be passed off as a refresh token. A value that does not open (a
//! tampered row, or one sealed under another id) ends the session.

use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64URL, Engine};
use ring::{
    aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN},
    hmac,
    rand::{SecureRandom, SystemRandom},
};

/// What a sealed value starts with: the scheme's version.
const PREFIX: &str = "v1.";

/// The label the key is derived with.
const LABEL: &[u8] = b"platform dashboard session tokens v1";

/// Which token a value is (authenticated with it).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Access,
    Refresh,
}

impl Kind {
    fn aad(self) -> &'static [u8] {
        match self {
            Self::Access => b"access_token",
            Self::Refresh => b"refresh_token",
        }
    }
}

/// Seals and opens one session's tokens.
pub struct Sealer {
    key: LessSafeKey,
}

impl Sealer {
    /// The sealer of the session whose cookie holds `session_id`.
    pub fn of_session(session_id: &str) -> Self {
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, session_id.as_bytes()),
            LABEL,
        );
        let key = UnboundKey::new(&AES_256_GCM, derived.as_ref())
            .expect("HMAC-SHA256 gives the 32 bytes AES-256 takes");
        Self {
            key: LessSafeKey::new(key),
        }
    }

    /// `token` sealed: `v1.` and the base64url of a random nonce, the
    /// ciphertext and its tag. `None` only when the system has no
    /// randomness to give.
    pub fn seal(&self, kind: Kind, token: &str) -> Option<String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).ok()?;
        let mut sealed = token.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(kind.aad()),
                &mut sealed,
            )
            .ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(format!("{PREFIX}{}", B64URL.encode(out)))
    }

    /// The token `sealed` holds, if it was sealed by this session as `kind`
    /// and not altered since.
    pub fn open(&self, kind: Kind, sealed: &str) -> Option<String> {
        let bytes = B64URL.decode(sealed.strip_prefix(PREFIX)?).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut rest = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(kind.aad()), &mut rest)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_opens_only_under_its_session_and_as_its_kind() {
        let mine = Sealer::of_session("session-a");
        let sealed = mine.seal(Kind::Refresh, "the-refresh-token").unwrap();
        assert!(sealed.starts_with("v1."));
        assert!(!sealed.contains("the-refresh-token"));
        assert_eq!(
            mine.open(Kind::Refresh, &sealed).as_deref(),
            Some("the-refresh-token")
        );
        // Another session's key, the other kind, or an altered value: no.
        assert_eq!(
            Sealer::of_session("session-b").open(Kind::Refresh, &sealed),
            None
        );
        assert_eq!(mine.open(Kind::Access, &sealed), None);
        let mut altered = sealed.clone().into_bytes();
        let last = altered.len() - 2;
        altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            mine.open(Kind::Refresh, &String::from_utf8(altered).unwrap()),
            None
        );
        // A token stored in plain text does not open either.
        assert_eq!(mine.open(Kind::Refresh, "the-refresh-token"), None);
        // Two seals of one token differ (a fresh nonce each).
        assert_ne!(
            mine.seal(Kind::Refresh, "t").unwrap(),
            mine.seal(Kind::Refresh, "t").unwrap()
        );
    }
}
