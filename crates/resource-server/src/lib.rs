//! What the platform's OAuth2 resource servers share: the task, accounting
//! and analytics services each verify the safekeeper's access tokens,
//! check a scope and refuse deactivated users the same way.
//!
//! - [`auth`]: the [`Caller`](auth::Caller) and
//!   [`UserCaller`](auth::UserCaller) extractors and
//!   [`Authenticated`](auth::Authenticated), generic over a service's state
//!   ([`ResourceServer`](auth::ResourceServer), declared with
//!   [`resource_server!`]) and over the scope asked for ([`Scope`], named
//!   with [`scope!`]).
//! - [`users`]: the users read model (table `users`, which each service's
//!   own migrations create) and the application of `iam.user.v1` and
//!   `iam.user-role.v1` to it.
//!
//! Its place in the crate graph: above `contracts` and `platform`, below
//! the services that serve access tokens' holders; it does I/O (the
//! service's database, the safekeeper's JWKS through `platform::jwt`) only
//! when a service calls it. Each service keeps its own scopes and rules
//! (who may read which ledger, which moves need a user) in its `auth.rs`.

pub mod auth;
pub mod users;

/// A scope as a type, so a handler's signature says what it needs.
pub trait Scope {
    /// The scope's name as tokens carry it (`read:analytics`).
    const NAME: &'static str;
}

/// Declares a scope as a type: `scope!(ReadTask, READ);`, with doc
/// comments before the name if wanted. It becomes a unit struct
/// implementing [`Scope`].
#[macro_export]
macro_rules! scope {
    ($(#[$meta:meta])* $ty:ident, $name:expr) => {
        $(#[$meta])*
        pub struct $ty;
        impl $crate::Scope for $ty {
            const NAME: &'static str = $name;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::Scope;
    use crate::{auth::AuthError, users::still_holds};
    use actix_web::{http::StatusCode, ResponseError};

    crate::scope!(
        /// A scope for the test.
        ReadThings,
        "read:things"
    );

    #[test]
    fn a_scope_declared_with_the_macro_carries_its_name() {
        assert_eq!(ReadThings::NAME, "read:things");
    }

    #[test]
    fn a_user_without_grant_events_holds_what_the_token_says() {
        assert!(still_holds(None, "read:things"));
    }

    #[test]
    fn a_user_whose_grants_lack_a_scope_no_longer_holds_it() {
        let grants = vec!["edit:things".to_owned()];
        assert!(!still_holds(Some(&grants), "read:things"));
        assert!(still_holds(Some(&grants), "edit:things"));
    }

    #[test]
    fn refusals_answer_401_403_and_503() {
        let status = |e: AuthError| e.status_code();
        assert_eq!(
            status(AuthError::Unauthenticated("no".into())),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(AuthError::MissingScope("read:things")),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(AuthError::Unavailable("no keys".into())),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
