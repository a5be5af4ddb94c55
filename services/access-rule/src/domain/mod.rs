//! Input parsed once, at the edge, and the rules as pure functions: no I/O
//! here, so every decision the service makes is unit-tested beside it.
//!
//! One file per concept: `values` the validated values and [`Invalid`];
//! `events` an event; `thresholds` the rules' settings; `rules` the rules
//! and what they decide; `restrictions` a user's restrictions as the
//! checks see them; `tripwire` the tripwire's window and suspension.
//! Callers use the re-exports below.

mod events;
mod restrictions;
mod rules;
mod thresholds;
mod tripwire;
mod values;

pub use events::{Event, EventKind, EVENT_NAMES};
pub use restrictions::Restrictions;
pub use rules::{affected_rules, decide, holds, reason, Capability, Change, Facts, Rule};
pub use thresholds::{Ratio, RulesConfig, TripwireConfig};
pub use tripwire::{suspended, trips, window_start};
pub use values::{Cents, EventId, Invalid, LastFour, UserId, ZipCode};
