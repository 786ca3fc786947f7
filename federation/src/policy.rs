//! Partner policy: which instances this one federates with.
//!
//! | mode       | a domain on the list | any other domain |
//! |------------|----------------------|------------------|
//! | open       | allowed              | allowed          |
//! | allow-list | allowed (a partner)  | refused          |
//! | block-list | refused              | allowed          |
//!
//! In every mode a domain on the block list is refused, so switching from block-list to
//! allow-list never lets a blocked instance in by accident. Refused domains get 403 on
//! their requests and nothing is delivered to them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::address::normalize_domain;
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum PolicyMode {
    /// Federate with every instance not blocked.
    #[default]
    Open,
    /// Federate with partners only.
    AllowList,
    /// Federate with every instance except blocked ones.
    BlockList,
}

/// The admins' federation choice, with its two lists of normalized domains.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerPolicy {
    pub mode: PolicyMode,
    partners: BTreeSet<String>,
    blocked: BTreeSet<String>,
}

impl PartnerPolicy {
    pub fn new(mode: PolicyMode) -> Self {
        Self {
            mode,
            ..Self::default()
        }
    }

    /// Adds a partner (and lifts a block on it).
    pub fn add_partner(&mut self, domain: &str) -> Result<()> {
        let domain = normalize_domain(domain)?;
        self.blocked.remove(&domain);
        self.partners.insert(domain);
        Ok(())
    }

    /// Blocks a domain (and ends any partnership with it).
    pub fn block(&mut self, domain: &str) -> Result<()> {
        let domain = normalize_domain(domain)?;
        self.partners.remove(&domain);
        self.blocked.insert(domain);
        Ok(())
    }

    pub fn partners(&self) -> impl Iterator<Item = &str> {
        self.partners.iter().map(String::as_str)
    }

    pub fn blocked(&self) -> impl Iterator<Item = &str> {
        self.blocked.iter().map(String::as_str)
    }

    /// May `domain` send us activities, and may we deliver to it? A malformed domain may not.
    pub fn allows(&self, domain: &str) -> bool {
        let Ok(domain) = normalize_domain(domain) else {
            return false;
        };
        if self.blocked.contains(&domain) {
            return false;
        }
        match self.mode {
            PolicyMode::Open | PolicyMode::BlockList => true,
            PolicyMode::AllowList => self.partners.contains(&domain),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_mode_follows_the_table() -> Result<()> {
        let mut policy = PartnerPolicy::new(PolicyMode::Open);
        policy.add_partner("friends.example")?;
        policy.block("spam.example")?;
        assert!(policy.allows("friends.example"));
        assert!(policy.allows("stranger.example"));
        assert!(!policy.allows("SPAM.example"));

        policy.mode = PolicyMode::AllowList;
        assert!(policy.allows("Friends.Example"));
        assert!(!policy.allows("stranger.example"));
        assert!(!policy.allows("spam.example"));

        policy.mode = PolicyMode::BlockList;
        assert!(policy.allows("stranger.example"));
        assert!(!policy.allows("spam.example"));
        assert!(!policy.allows("not a domain"));
        Ok(())
    }

    #[test]
    fn blocking_a_partner_ends_the_partnership() -> Result<()> {
        let mut policy = PartnerPolicy::new(PolicyMode::AllowList);
        policy.add_partner("a.example")?;
        policy.block("a.example")?;
        assert!(!policy.allows("a.example"));
        assert_eq!(policy.partners().count(), 0);
        policy.add_partner("a.example")?;
        assert!(policy.allows("a.example"));
        assert_eq!(policy.blocked().count(), 0);
        Ok(())
    }
}
