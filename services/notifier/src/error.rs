//! Why a delivery could not be sent, and whether trying again may help.

/// A failed attempt at a delivery.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The notification cannot become a message (an address that does not
    /// parse): no attempt will do better.
    #[error("invalid notification: {0}")]
    Invalid(String),
    /// The relay refused it for good (a 5xx reply).
    #[error("refused by the relay: {0}")]
    Refused(#[source] lettre::transport::smtp::Error),
    /// The relay refused it for now (4xx), was away, timed out, or the
    /// connection failed: a later attempt may pass.
    #[error("not sent: {0}")]
    Transient(#[source] lettre::transport::smtp::Error),
}

impl From<lettre::transport::smtp::Error> for SendError {
    fn from(e: lettre::transport::smtp::Error) -> Self {
        if e.is_permanent() {
            SendError::Refused(e)
        } else {
            SendError::Transient(e)
        }
    }
}

impl SendError {
    /// Whether a later attempt may pass.
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Transient(_))
    }
}
