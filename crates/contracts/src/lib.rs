//! The platform's contracts: what its services agree on across process
//! boundaries, in one place, so that a producer and its consumers (or a
//! token's issuer and its verifiers) cannot drift apart.
//!
//! - [`envelope`]: the envelope every event carries;
//! - [`topics`]: the topics, who writes each, and their payloads;
//! - [`claims`]: the claims of session and access tokens;
//! - [`credentials`] and [`email`]: the password policy, the bcrypt-hash
//!   format and the email syntax every service accepts;
//! - [`field`]: the one error a request with an invalid field gets.
//!
//! Types and pure functions only: no I/O, no framework.

pub mod claims;
pub mod credentials;
pub mod email;
pub mod envelope;
pub mod field;
pub mod topics;

pub use envelope::{Envelope, Op, Source};
pub use field::FieldError;
