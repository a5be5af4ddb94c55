//! A user's restrictions as the checks see them, and whether they allow
//! an action while some rules are suspended.

use super::rules::{Capability, Rule};

/// A user's restrictions as the checks see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Restrictions {
    pub is_active: bool,
    pub scam_flags: bool,
    pub card_zip_ratio: bool,
    pub chargeback_ratio: bool,
}

impl Restrictions {
    pub fn get(&self, rule: Rule) -> bool {
        match rule {
            Rule::ScamFlags => self.scam_flags,
            Rule::CardZipRatio => self.card_zip_ratio,
            Rule::ChargebackRatio => self.chargeback_ratio,
        }
    }

    /// May the user do `what`, given which rules are suspended? A suspended
    /// rule's restrictions are ignored; the others still apply, and a
    /// deactivated account may do nothing.
    pub fn allows(&self, what: Capability, is_suspended: impl Fn(Rule) -> bool) -> bool {
        self.is_active
            && Rule::ALL
                .into_iter()
                .filter(|r| r.capability() == what)
                .all(|r| !self.get(r) || is_suspended(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspended_rule_is_ignored_but_other_rules_and_deactivation_still_apply() {
        let r = Restrictions {
            is_active: true,
            scam_flags: true,
            card_zip_ratio: true,
            chargeback_ratio: false,
        };
        let none = |_: Rule| false;
        let scam = |x: Rule| x == Rule::ScamFlags;
        assert!(!r.allows(Capability::Message, none));
        assert!(r.allows(Capability::Message, scam));
        assert!(!r.allows(Capability::Purchase, scam));
        assert!(r.allows(Capability::Purchase, |x| x == Rule::CardZipRatio));
        let inactive = Restrictions {
            is_active: false,
            ..Restrictions::default()
        };
        assert!(!inactive.allows(Capability::Message, |_| true));
        assert!(Restrictions {
            is_active: true,
            ..Restrictions::default()
        }
        .allows(Capability::Purchase, none));
    }
}
