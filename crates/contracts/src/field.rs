//! The one error a request with an invalid field gets, in every service:
//! `400 Bad Request`, problem type `invalid-field`, naming the field and
//! the rule it broke.
//!
//! 400 rather than 422: four of the five services answered 400 from the
//! start, their clients and documents say so, and RFC 9110 leaves a server
//! free to answer any client error with 400. What tells a client which
//! field to fix is the body's `field` and `rule`, not the status.

use serde::Serialize;

/// The status of a [`FieldError`].
pub const STATUS: u16 = 400;
/// Its problem type (`/problems/invalid-field`).
pub const TYPE: &str = "invalid-field";
/// Its problem title.
pub const TITLE: &str = "A field is invalid";

/// A field that broke a rule: `message` says how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub field: String,
    pub rule: String,
    pub message: String,
}

impl FieldError {
    pub fn new(
        field: impl Into<String>,
        rule: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            rule: rule.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid {}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

impl From<(&str, crate::credentials::Violation)> for FieldError {
    /// A password or hash [`crate::credentials::Violation`], named by its
    /// field.
    fn from((field, v): (&str, crate::credentials::Violation)) -> Self {
        Self::new(field, v.rule, v.message)
    }
}
