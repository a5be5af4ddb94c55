//! Signed tokens: Ed25519 (EdDSA) keys, JWKS, signing, and verification
//! with the algorithm pinned, the `typ` checked (a session token is never
//! an access token), and keys found by `kid`, locally or in a remote JWKS
//! that is cached and refetched when an unknown `kid` shows up.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64URL, Engine};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex as AsyncMutex;

pub use contracts::claims::{
    session_still_valid, AccessClaims, SessionClaims, ACCESS_TYP, END_USER_ADDRESS_HEADER,
    LOGIN_RELAY_SCOPE, SESSION_TYP,
};

/// A public key as served in a JWKS (RFC 7517, OKP per RFC 8037).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

/// An Ed25519 private key with its `kid` (the RFC 7638 thumbprint).
pub struct SigningKey {
    kid: String,
    /// Parsed once: jsonwebtoken's `encode` parses the PKCS#8 document
    /// (deriving the public key) for every signature, which nearly doubled
    /// its cost (14,700 against 26,400 to 33,500 signatures/s per core here).
    pair: Ed25519KeyPair,
    public: Vec<u8>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

fn pem_blocks(pem: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut body: Option<String> = None;
    for line in pem.lines().map(str::trim) {
        if line == "-----BEGIN PRIVATE KEY-----" {
            body = Some(String::new());
        } else if line == "-----END PRIVATE KEY-----" {
            let b = body.take().context("PEM END without BEGIN")?;
            out.push(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .context("PEM body is not base64")?,
            );
        } else if let Some(b) = body.as_mut() {
            b.push_str(line);
        }
    }
    if out.is_empty() {
        bail!("no '-----BEGIN PRIVATE KEY-----' block (expected a PKCS#8 Ed25519 key)");
    }
    Ok(out)
}

fn to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).expect("base64 is ascii"));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// RFC 7638 thumbprint of an Ed25519 public key.
fn thumbprint(x_b64: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x_b64}"}}"#);
    B64URL.encode(Sha256::digest(canonical.as_bytes()))
}

impl SigningKey {
    pub fn from_pkcs8_der(der: &[u8]) -> anyhow::Result<Self> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
            .map_err(|e| anyhow::anyhow!("not a PKCS#8 Ed25519 key: {e}"))?;
        let public = pair.public_key().as_ref().to_vec();
        Ok(Self {
            kid: thumbprint(&B64URL.encode(&public)),
            pair,
            public,
        })
    }

    /// Every key in a PEM text (one or more PKCS#8 blocks).
    pub fn all_from_pem(pem: &str) -> anyhow::Result<Vec<Self>> {
        pem_blocks(pem)?
            .iter()
            .map(|d| Self::from_pkcs8_der(d))
            .collect()
    }

    /// A fresh key and its PEM, for development.
    pub fn generate() -> anyhow::Result<(Self, String)> {
        let rng = ring::rand::SystemRandom::new();
        let doc = Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|e| anyhow::anyhow!("generating an Ed25519 key: {e}"))?;
        let pem = to_pem(doc.as_ref());
        Ok((Self::from_pkcs8_der(doc.as_ref())?, pem))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn jwk(&self) -> Jwk {
        Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(B64URL.encode(&self.public)),
            kid: Some(self.kid.clone()),
            alg: Some("EdDSA".into()),
            use_: Some("sig".into()),
        }
    }
}

/// The key that signs plus retired keys still published for verification.
#[derive(Debug)]
pub struct KeyRing {
    active: SigningKey,
    retired: Vec<SigningKey>,
}

impl KeyRing {
    pub fn new(active: SigningKey, retired: Vec<SigningKey>) -> Self {
        let retired = retired
            .into_iter()
            .filter(|k| k.kid != active.kid)
            .collect();
        Self { active, retired }
    }

    /// Loads the signing key from `pem` or, in development, from (or into)
    /// `dev_key_path`. `require` refuses to make one up.
    pub fn load(
        pem: Option<&str>,
        retired_pem: Option<&str>,
        dev_key_path: &Path,
        require: bool,
    ) -> anyhow::Result<Self> {
        let active = match pem {
            Some(pem) => SigningKey::all_from_pem(pem)
                .context("SIGNING_KEY")?
                .into_iter()
                .next()
                .expect("at least one block"),
            None if require => bail!(
                "no signing key: set SIGNING_KEY or SIGNING_KEY_FILE (REQUIRE_SIGNING_KEY is on)"
            ),
            None => {
                if let Ok(existing) = std::fs::read_to_string(dev_key_path) {
                    SigningKey::all_from_pem(&existing)
                        .with_context(|| format!("reading {}", dev_key_path.display()))?
                        .into_iter()
                        .next()
                        .expect("at least one block")
                } else {
                    let (key, pem) = SigningKey::generate()?;
                    if let Some(dir) = dev_key_path.parent() {
                        std::fs::create_dir_all(dir)?;
                    }
                    write_private(dev_key_path, &pem)?;
                    key
                }
            }
        };
        if pem.is_none() {
            tracing::warn!(
                path = %dev_key_path.display(),
                "USING A DEVELOPMENT SIGNING KEY kept on local disk; set SIGNING_KEY_FILE (and REQUIRE_SIGNING_KEY=1) in production"
            );
        }
        let retired = match retired_pem {
            Some(p) => SigningKey::all_from_pem(p).context("PREVIOUS_SIGNING_KEYS")?,
            None => Vec::new(),
        };
        Ok(Self::new(active, retired))
    }

    pub fn active_kid(&self) -> &str {
        &self.active.kid
    }

    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: std::iter::once(&self.active)
                .chain(&self.retired)
                .map(SigningKey::jwk)
                .collect(),
        }
    }

    /// A compact JWS (RFC 7515) of `claims`, `alg: EdDSA` (RFC 8037), with
    /// `typ` and the active key's `kid` in its header.
    pub fn sign<C: Serialize>(&self, typ: &str, claims: &C) -> anyhow::Result<String> {
        #[derive(Serialize)]
        struct JwsHeader<'a> {
            alg: &'static str,
            typ: &'a str,
            kid: &'a str,
        }
        let header = JwsHeader {
            alg: "EdDSA",
            typ,
            kid: &self.active.kid,
        };
        let mut token = String::with_capacity(512);
        B64URL.encode_string(serde_json::to_vec(&header)?, &mut token);
        token.push('.');
        B64URL.encode_string(serde_json::to_vec(claims)?, &mut token);
        let signature = self.active.pair.sign(token.as_bytes());
        token.push('.');
        B64URL.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }

    /// Decoding keys of every published key, by `kid`.
    pub fn decoding_keys(&self) -> HashMap<String, DecodingKey> {
        self.jwks()
            .keys
            .iter()
            .filter_map(|k| Some((k.kid.clone()?, decoding_key(k)?)))
            .collect()
    }
}

#[cfg(unix)]
fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(pem.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, pem: &str) -> anyhow::Result<()> {
    Ok(std::fs::write(path, pem)?)
}

/// Only Ed25519 OKP keys are accepted from a JWKS: the algorithm is pinned.
fn decoding_key(jwk: &Jwk) -> Option<DecodingKey> {
    if jwk.kty != "OKP" || jwk.crv.as_deref() != Some("Ed25519") {
        return None;
    }
    if jwk.alg.as_deref().is_some_and(|a| a != "EdDSA") {
        return None;
    }
    DecodingKey::from_ed_components(jwk.x.as_deref()?).ok()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's algorithm is not allowed")]
    Algorithm,
    #[error("the token is of the wrong type (expected {0})")]
    WrongType(&'static str),
    #[error("the token was signed by an unknown key")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token is invalid: {0}")]
    Invalid(String),
    #[error("the issuer's keys could not be fetched")]
    KeysUnavailable,
}

/// Where a verifier finds keys.
#[derive(Clone)]
pub enum KeySource {
    Local(Arc<HashMap<String, DecodingKey>>),
    Remote(Arc<RemoteJwks>),
}

/// The longest a JWKS is kept without `JWKS_CACHE_TTL_SECONDS`.
pub const DEFAULT_JWKS_MAX_TTL: Duration = Duration::from_secs(300);
/// The least it is kept: fetching once a second per process at most.
const JWKS_MIN_TTL: Duration = Duration::from_secs(1);

/// How long the issuer lets a JWKS response be kept, from its
/// `Cache-Control` (and `Age`, when a cache served it): `None` when it does
/// not say; zero for `no-store`, `no-cache` or `max-age=0`.
fn issuer_freshness(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let mut max_age: Option<u64> = None;
    for value in headers.get_all(reqwest::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',').map(str::trim) {
            let (name, arg) = match directive.split_once('=') {
                Some((n, a)) => (n.trim(), Some(a.trim().trim_matches('"'))),
                None => (directive, None),
            };
            if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
                return Some(Duration::ZERO);
            }
            if name.eq_ignore_ascii_case("max-age") {
                // A malformed max-age makes the response stale (RFC 9111 4.2.1).
                let secs = arg.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
                max_age = Some(max_age.map_or(secs, |m| m.min(secs)));
            }
        }
    }
    let age = headers
        .get(reqwest::header::AGE)
        .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
        .unwrap_or(0);
    max_age.map(|m| Duration::from_secs(m.saturating_sub(age)))
}

/// The keys of the last fetch and until when they may be used.
struct CachedKeys {
    keys: HashMap<String, DecodingKey>,
    fresh_until: Option<Instant>,
}

impl CachedKeys {
    fn fresh(&self, now: Instant) -> bool {
        self.fresh_until.is_some_and(|t| now < t)
    }
}

/// A JWKS fetched over HTTP and cached no longer than the issuer's
/// `Cache-Control: max-age` allows, nor than a ceiling (`max_ttl`, by
/// default `JWKS_CACHE_TTL_SECONDS` or 300 s); `no-store`, `no-cache` or
/// `max-age=0` keep it for `min_refetch` (5 s). Once that time has passed
/// the next verification refetches it (one fetch at a time), so a key the
/// issuer no longer publishes stops verifying; if that fetch fails, the
/// expired keys are not used (`KeysUnavailable`; retried after 1 s). A
/// `kid` the cache lacks refetches at most every `min_refetch`.
pub struct RemoteJwks {
    url: String,
    http: reqwest::Client,
    keys: RwLock<CachedKeys>,
    last_fetch: AsyncMutex<Option<Instant>>,
    min_refetch: Duration,
    max_ttl: Duration,
}

impl RemoteJwks {
    pub fn new(url: impl Into<String>, http: reqwest::Client) -> Self {
        Self {
            url: url.into(),
            http,
            keys: RwLock::new(CachedKeys {
                keys: HashMap::new(),
                fresh_until: None,
            }),
            last_fetch: AsyncMutex::new(None),
            min_refetch: Duration::from_secs(5),
            max_ttl: crate::config::jwks_cache_ttl().unwrap_or(DEFAULT_JWKS_MAX_TTL),
        }
    }

    /// The longest the keys are kept, whatever the issuer allows (at least
    /// 1 s).
    pub fn with_max_ttl(mut self, max_ttl: Duration) -> Self {
        self.max_ttl = max_ttl.max(JWKS_MIN_TTL);
        self
    }

    /// A fresh cached key; `Err(true)` when the cache has expired.
    fn cached(&self, kid: &str) -> Result<DecodingKey, bool> {
        let Ok(c) = self.keys.read() else {
            return Err(true);
        };
        if !c.fresh(Instant::now()) {
            return Err(true);
        }
        c.keys.get(kid).cloned().ok_or(false)
    }

    async fn key(&self, kid: &str) -> Result<DecodingKey, TokenError> {
        if let Ok(k) = self.cached(kid) {
            return Ok(k);
        }
        let mut last = self.last_fetch.lock().await;
        // Someone may have fetched while we waited for the lock.
        let expired = match self.cached(kid) {
            Ok(k) => return Ok(k),
            Err(expired) => expired,
        };
        if let Some(t) = *last {
            // Unknown kid, fresh keys: at most every `min_refetch`. Expired
            // keys: after a fetch that failed, retry after a second.
            if !expired && t.elapsed() < self.min_refetch {
                return Err(TokenError::UnknownKey);
            }
            if expired && t.elapsed() < JWKS_MIN_TTL {
                return Err(TokenError::KeysUnavailable);
            }
        }
        let started = Instant::now();
        *last = Some(started);
        let fetched = async {
            let resp = self
                .http
                .get(&self.url)
                .timeout(Duration::from_secs(3))
                .send()
                .await?
                .error_for_status()?;
            let freshness = issuer_freshness(resp.headers());
            Ok::<_, reqwest::Error>((resp.json::<Jwks>().await?, freshness))
        }
        .await;
        let (jwks, freshness) = fetched.map_err(|e| {
            tracing::warn!(url = %self.url, error = %crate::problem::chain(&e), "fetching JWKS failed");
            TokenError::KeysUnavailable
        })?;
        let ttl = match freshness {
            Some(Duration::ZERO) => self.min_refetch.min(self.max_ttl),
            Some(d) => d.min(self.max_ttl),
            None => self.max_ttl,
        }
        .max(JWKS_MIN_TTL);
        let fresh: HashMap<_, _> = jwks
            .keys
            .iter()
            .filter_map(|k| Some((k.kid.clone()?, decoding_key(k)?)))
            .collect();
        let found = fresh.get(kid).cloned();
        if let Ok(mut w) = self.keys.write() {
            // Counted from the request: the issuer's max-age runs from then.
            *w = CachedKeys {
                keys: fresh,
                fresh_until: Some(started + ttl),
            };
        }
        found.ok_or(TokenError::UnknownKey)
    }
}

#[cfg(test)]
mod remote_jwks_tests {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    };

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::TcpListener,
    };

    use super::*;

    /// What the fake issuer answers: status line, `Cache-Control`, body.
    type Answer = (&'static str, &'static str, String);

    /// A minimal issuer on 127.0.0.1: answers every request with the
    /// current answer and counts them.
    async fn issuer(answer: Arc<Mutex<Answer>>, fetches: Arc<AtomicUsize>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/.well-known/jwks.json",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let (status, cache, body) = answer.lock().unwrap().clone();
                fetches.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let resp = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                         Cache-Control: {cache}\r\nContent-Length: {}\r\n\
                         Connection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(resp.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        url
    }

    fn publishing(ring: &KeyRing) -> Answer {
        (
            "200 OK",
            "public, max-age=1",
            serde_json::to_string(&ring.jwks()).unwrap(),
        )
    }

    fn token(ring: &KeyRing) -> String {
        let now = chrono::Utc::now().timestamp();
        let claims = serde_json::json!({
            "iss": "https://issuer.test", "sub": "u1", "iat": now, "exp": now + 600, "jti": "j1",
        });
        ring.sign(SESSION_TYP, &claims).unwrap()
    }

    #[tokio::test]
    async fn a_key_the_issuer_removed_stops_verifying_once_its_max_age_has_passed() {
        let a = KeyRing::new(SigningKey::generate().unwrap().0, vec![]);
        let b = KeyRing::new(SigningKey::generate().unwrap().0, vec![]);
        let answer = Arc::new(Mutex::new(publishing(&a)));
        let fetches = Arc::new(AtomicUsize::new(0));
        let url = issuer(answer.clone(), fetches.clone()).await;
        let jwks = RemoteJwks::new(url, reqwest::Client::new());
        let verifier = Verifier::new(
            KeySource::Remote(Arc::new(jwks)),
            "https://issuer.test",
            SESSION_TYP,
        );
        let verify = |t: String| {
            let v = verifier.clone();
            async move { v.verify::<serde_json::Value>(&t).await.map(|_| ()) }
        };
        let fetched_at = Instant::now();
        assert_eq!(verify(token(&a)).await, Ok(()));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);

        // The issuer rotates A out: it publishes B only.
        *answer.lock().unwrap() = publishing(&b);
        tokio::time::sleep_until((fetched_at + Duration::from_millis(1100)).into()).await;
        let refetched_at = Instant::now();
        assert_eq!(verify(token(&a)).await, Err(TokenError::UnknownKey));
        assert_eq!(verify(token(&b)).await, Ok(()));
        assert_eq!(fetches.load(Ordering::SeqCst), 2, "one refetch for both");

        // Expired keys are not used when the issuer cannot be reached.
        *answer.lock().unwrap() = ("503 Service Unavailable", "no-store", "{}".into());
        tokio::time::sleep_until((refetched_at + Duration::from_millis(1100)).into()).await;
        assert_eq!(verify(token(&b)).await, Err(TokenError::KeysUnavailable));
    }

    #[test]
    fn the_issuers_cache_control_sets_how_long_keys_are_kept() {
        let of = |pairs: &[(&'static str, &'static str)]| {
            let mut h = reqwest::header::HeaderMap::new();
            for (k, v) in pairs {
                h.append(*k, v.parse().unwrap());
            }
            issuer_freshness(&h)
        };
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(of(&[]), None);
        assert_eq!(of(&[("cache-control", "public, max-age=300")]), secs(300));
        assert_eq!(of(&[("cache-control", "Max-Age=\"60\"")]), secs(60));
        assert_eq!(
            of(&[("cache-control", "max-age=300"), ("age", "280")]),
            secs(20)
        );
        assert_eq!(
            of(&[("cache-control", "max-age=10"), ("age", "99")]),
            secs(0)
        );
        assert_eq!(of(&[("cache-control", "max-age=300, no-cache")]), secs(0));
        assert_eq!(of(&[("cache-control", "no-store")]), secs(0));
        assert_eq!(of(&[("cache-control", "max-age=soon")]), secs(0));
        assert_eq!(of(&[("cache-control", "public")]), None);
    }
}

/// Access tokens verified already, with their claims, until they expire:
/// a token's signature is checked once, not on every request. A hit needs
/// the very same token text, so nothing unverified ever matches; what may
/// change after issue (revocation, the user's state) is still checked by
/// the caller on every request.
pub struct TokenCache {
    capacity: usize,
    map: RwLock<HashMap<String, AccessClaims>>,
}

impl TokenCache {
    /// About `capacity` tokens (0: disabled).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            map: RwLock::new(HashMap::new()),
        }
    }

    /// The claims of `token` if it was verified and has not expired.
    pub fn get(&self, token: &str) -> Option<AccessClaims> {
        if self.capacity == 0 {
            return None;
        }
        let claims = self.map.read().ok()?.get(token).cloned()?;
        (claims.exp > chrono::Utc::now().timestamp()).then_some(claims)
    }

    /// Remembers a verified token (when full, everything is forgotten).
    pub fn put(&self, token: &str, claims: &AccessClaims) {
        if self.capacity == 0 {
            return;
        }
        if let Ok(mut m) = self.map.write() {
            if m.len() >= self.capacity {
                m.clear();
            }
            m.insert(token.to_owned(), claims.clone());
        }
    }
}

/// Verifies one kind of token from one issuer.
#[derive(Clone)]
pub struct Verifier {
    keys: KeySource,
    issuer: String,
    typ: &'static str,
    audience: Option<String>,
}

impl Verifier {
    pub fn new(keys: KeySource, issuer: impl Into<String>, typ: &'static str) -> Self {
        Self {
            keys,
            issuer: issuer.into(),
            typ,
            audience: None,
        }
    }

    /// The issuer whose tokens it takes (an OAuth2 client also compares
    /// it with an authorization response's `iss`, RFC 9207).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn with_audience(mut self, aud: impl Into<String>) -> Self {
        self.audience = Some(aud.into());
        self
    }

    pub async fn verify<C: DeserializeOwned>(&self, token: &str) -> Result<C, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Algorithm);
        }
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case(self.typ))
        {
            return Err(TokenError::WrongType(self.typ));
        }
        let kid = header.kid.ok_or(TokenError::UnknownKey)?;
        let key = match &self.keys {
            KeySource::Local(m) => m.get(&kid).cloned().ok_or(TokenError::UnknownKey)?,
            KeySource::Remote(r) => r.key(&kid).await?,
        };
        let mut v = Validation::new(Algorithm::EdDSA);
        v.algorithms = vec![Algorithm::EdDSA];
        v.leeway = 30;
        v.set_issuer(&[&self.issuer]);
        v.set_required_spec_claims(&["exp", "iat", "iss", "sub"]);
        match &self.audience {
            Some(a) => v.set_audience(&[a]),
            None => v.validate_aud = false,
        }
        jsonwebtoken::decode::<C>(token, &key, &v)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => TokenError::Algorithm,
                other => TokenError::Invalid(format!("{other:?}")),
            })
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{EncodingKey, Header};

    use super::*;

    fn claims(exp_in: i64) -> SessionClaims {
        let now = chrono::Utc::now().timestamp();
        SessionClaims {
            iss: "https://issuer.test".into(),
            sub: "u1".into(),
            username: "alice".into(),
            iat: now,
            exp: now + exp_in,
            jti: "j1".into(),
            sep: 0,
        }
    }

    fn ring() -> KeyRing {
        KeyRing::new(SigningKey::generate().unwrap().0, vec![])
    }

    fn verifier(r: &KeyRing, typ: &'static str) -> Verifier {
        Verifier::new(
            KeySource::Local(Arc::new(r.decoding_keys())),
            "https://issuer.test",
            typ,
        )
    }

    #[tokio::test]
    async fn a_signed_session_token_verifies_and_round_trips_claims() {
        let r = ring();
        let t = r.sign(SESSION_TYP, &claims(60)).unwrap();
        let got: SessionClaims = verifier(&r, SESSION_TYP).verify(&t).await.unwrap();
        let want = SessionClaims {
            iat: got.iat,
            exp: got.exp,
            ..claims(60)
        };
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_session_token_is_not_an_access_token() {
        let r = ring();
        let t = r.sign(SESSION_TYP, &claims(60)).unwrap();
        let e = verifier(&r, ACCESS_TYP)
            .verify::<SessionClaims>(&t)
            .await
            .unwrap_err();
        assert_eq!(e, TokenError::WrongType(ACCESS_TYP));
    }

    #[tokio::test]
    async fn expired_tokens_and_foreign_keys_are_refused() {
        let r = ring();
        let t = r.sign(SESSION_TYP, &claims(-120)).unwrap();
        assert_eq!(
            verifier(&r, SESSION_TYP)
                .verify::<SessionClaims>(&t)
                .await
                .unwrap_err(),
            TokenError::Expired
        );
        let other = ring();
        let t = other.sign(SESSION_TYP, &claims(60)).unwrap();
        assert_eq!(
            verifier(&r, SESSION_TYP)
                .verify::<SessionClaims>(&t)
                .await
                .unwrap_err(),
            TokenError::UnknownKey
        );
    }

    #[tokio::test]
    async fn alg_none_and_hmac_tokens_are_refused() {
        let r = ring();
        let body = B64URL.encode(serde_json::to_vec(&claims(60)).unwrap());
        let none = format!(
            "{}.{body}.",
            B64URL.encode(format!(
                r#"{{"alg":"none","typ":"{SESSION_TYP}","kid":"{}"}}"#,
                r.active_kid()
            ))
        );
        assert!(verifier(&r, SESSION_TYP)
            .verify::<SessionClaims>(&none)
            .await
            .is_err());
        // HS256 keyed with the public key bytes: the classic confusion attack.
        let mut h = Header::new(Algorithm::HS256);
        h.typ = Some(SESSION_TYP.into());
        h.kid = Some(r.active_kid().into());
        let x = r.jwks().keys[0].x.clone().unwrap();
        let forged =
            jsonwebtoken::encode(&h, &claims(60), &EncodingKey::from_secret(x.as_bytes())).unwrap();
        assert_eq!(
            verifier(&r, SESSION_TYP)
                .verify::<SessionClaims>(&forged)
                .await
                .unwrap_err(),
            TokenError::Algorithm
        );
    }

    #[test]
    fn keys_survive_a_pem_round_trip_with_the_same_kid() {
        let (k, pem) = SigningKey::generate().unwrap();
        let again = SigningKey::all_from_pem(&pem).unwrap();
        assert_eq!(again[0].kid(), k.kid());
        let ring = KeyRing::new(
            again.into_iter().next().unwrap(),
            SigningKey::all_from_pem(&SigningKey::generate().unwrap().1).unwrap(),
        );
        assert_eq!(ring.jwks().keys.len(), 2);
    }
}

#[cfg(test)]
mod token_cache_tests {
    use super::*;

    #[test]
    fn a_token_is_found_only_until_it_expires() {
        let c = TokenCache::new(2);
        let now = chrono::Utc::now().timestamp();
        let claims = |exp| AccessClaims {
            iss: "i".into(),
            sub: "s".into(),
            aud: "a".into(),
            client_id: "c".into(),
            scope: "read:task".into(),
            iat: now,
            exp,
            jti: "j".into(),
            username: None,
            sid: None,
        };
        c.put("live", &claims(now + 60));
        c.put("old", &claims(now - 1));
        assert!(c.get("live").is_some());
        assert!(c.get("old").is_none());
        assert!(c.get("other").is_none());
        assert!(TokenCache::new(0).get("live").is_none());
    }
}
