//! The rules that restrict users: what each takes away, whether it finds
//! against a user on their facts and why, and what an event changes.

use std::fmt;

use serde::Serialize;

use super::{events::EventKind, thresholds::RulesConfig, values::Cents};

/// What a restriction takes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Message,
    Purchase,
}

/// The rules that restrict users, each with its own tripwire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Scam flags at or above the limit: no messaging.
    ScamFlags,
    /// Enough cards in too many zips: no purchasing.
    CardZipRatio,
    /// Chargebacks above a share of the cards' total spend: no purchasing.
    ChargebackRatio,
}

impl Rule {
    pub const ALL: [Rule; 3] = [Rule::ScamFlags, Rule::CardZipRatio, Rule::ChargebackRatio];

    pub fn as_str(self) -> &'static str {
        match self {
            Rule::ScamFlags => "scam_flags",
            Rule::CardZipRatio => "card_zip_ratio",
            Rule::ChargebackRatio => "chargeback_ratio",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    pub fn capability(self) -> Capability {
        match self {
            Rule::ScamFlags => Capability::Message,
            Rule::CardZipRatio | Rule::ChargebackRatio => Capability::Purchase,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the rules look at for one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Facts {
    pub scam_flags: i64,
    pub card_count: i64,
    pub zip_count: i64,
    pub total_spend_cents: i64,
    pub chargeback_cents: i64,
}

/// Whether `rule` finds against the user on these facts.
pub fn holds(rule: Rule, f: &Facts, cfg: &RulesConfig) -> bool {
    match rule {
        Rule::ScamFlags => f.scam_flags >= cfg.scam_flag_limit,
        Rule::CardZipRatio => {
            f.card_count >= cfg.card_min_count
                && cfg.zip_ratio_limit.exceeded_by(f.zip_count, f.card_count)
        }
        Rule::ChargebackRatio => cfg
            .chargeback_ratio_limit
            .exceeded_by(f.chargeback_cents, f.total_spend_cents),
    }
}

/// Why `rule` finds (or would find) against the user, for operators.
pub fn reason(rule: Rule, f: &Facts, cfg: &RulesConfig) -> String {
    match rule {
        Rule::ScamFlags => format!(
            "{} scam flags (restricted at {} or more)",
            f.scam_flags, cfg.scam_flag_limit
        ),
        Rule::CardZipRatio => format!(
            "{} cards in {} zips (restricted at {} or more cards with distinct zips / cards > {})",
            f.card_count,
            f.zip_count,
            cfg.card_min_count,
            cfg.zip_ratio_limit.as_f64()
        ),
        Rule::ChargebackRatio => format!(
            "chargebacks of {} against a total card spend of {} (restricted above {} %)",
            Cents(f.chargeback_cents),
            Cents(f.total_spend_cents),
            cfg.chargeback_ratio_limit.as_f64() * 100.0
        ),
    }
}

/// The rules an event may change, and whether it can make each one find
/// against the user (`true`) or only clear it (`false`). A duplicate card
/// changes nothing. More spend can only lower the chargeback ratio, so a
/// card never restricts under that rule: a restriction an operator lifted
/// comes back only with new evidence of its own kind.
pub fn affected_rules(kind: &EventKind, card_added: bool) -> &'static [(Rule, bool)] {
    match kind {
        EventKind::FlagScamMessage => &[(Rule::ScamFlags, true)],
        EventKind::AddCreditCard { .. } if card_added => {
            &[(Rule::CardZipRatio, true), (Rule::ChargebackRatio, false)]
        }
        EventKind::AddCreditCard { .. } => &[],
        EventKind::Chargeback { .. } => &[(Rule::ChargebackRatio, true)],
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Restrict,
    Lift,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Restrict => "restrict",
            Change::Lift => "lift",
        }
    }
}

/// What an event does to one rule's restriction of a user.
pub fn decide(restricted: bool, holds: bool, may_restrict: bool) -> Option<Change> {
    match (restricted, holds) {
        (false, true) if may_restrict => Some(Change::Restrict),
        (true, false) => Some(Change::Lift),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::Event;

    fn cfg() -> RulesConfig {
        RulesConfig::default()
    }

    #[test]
    fn two_scam_flags_restrict_messaging() {
        let f = |n| Facts {
            scam_flags: n,
            ..Facts::default()
        };
        assert!(!holds(Rule::ScamFlags, &f(1), &cfg()));
        assert!(holds(Rule::ScamFlags, &f(2), &cfg()));
        assert!(holds(Rule::ScamFlags, &f(100), &cfg()));
    }

    #[test]
    fn three_cards_in_three_zips_restrict_but_four_cards_in_three_zips_do_not() {
        let f = |cards, zips| Facts {
            card_count: cards,
            zip_count: zips,
            ..Facts::default()
        };
        assert!(
            !holds(Rule::CardZipRatio, &f(2, 2), &cfg()),
            "too few cards"
        );
        assert!(holds(Rule::CardZipRatio, &f(3, 3), &cfg()));
        assert!(
            !holds(Rule::CardZipRatio, &f(4, 3), &cfg()),
            "0.75 is not above 0.75"
        );
        assert!(holds(Rule::CardZipRatio, &f(5, 4), &cfg()));
        assert!(!holds(Rule::CardZipRatio, &f(3, 1), &cfg()));
    }

    #[test]
    fn chargebacks_above_ten_percent_of_spend_restrict_purchasing() {
        let f = |spend, cb| Facts {
            total_spend_cents: spend,
            chargeback_cents: cb,
            ..Facts::default()
        };
        assert!(!holds(Rule::ChargebackRatio, &f(800_000, 70_000), &cfg()));
        assert!(
            !holds(Rule::ChargebackRatio, &f(800_000, 80_000), &cfg()),
            "exactly 10 %"
        );
        assert!(holds(Rule::ChargebackRatio, &f(800_000, 80_001), &cfg()));
        assert!(holds(Rule::ChargebackRatio, &f(800_000, 90_000), &cfg()));
        assert!(
            holds(Rule::ChargebackRatio, &f(0, 1), &cfg()),
            "no spend at all"
        );
        assert!(!holds(Rule::ChargebackRatio, &f(0, 0), &cfg()));
    }

    #[test]
    fn decisions_restrict_on_evidence_and_lift_when_the_rule_clears() {
        assert_eq!(decide(false, true, true), Some(Change::Restrict));
        assert_eq!(
            decide(false, true, false),
            None,
            "a card never restricts on chargebacks"
        );
        assert_eq!(decide(true, true, true), None, "already restricted");
        assert_eq!(decide(true, false, false), Some(Change::Lift));
        assert_eq!(decide(false, false, true), None);
    }

    #[test]
    fn only_a_new_card_re_evaluates_card_rules() {
        let card = json!({"name": "add_credit_card", "event_properties":
            {"user_id": "u1", "zip_code": "1", "last_four_digits": "1111", "total_spend": 1.0}});
        let kind = Event::parse(&card).unwrap().kind;
        assert!(affected_rules(&kind, false).is_empty());
        assert_eq!(affected_rules(&kind, true).len(), 2);
    }
}
