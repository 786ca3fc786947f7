//! `@name@domain`: a person or Space as known across instances.

use std::fmt;

use crate::error::{Error, Result};

/// A federated address. `name` is lowercased ASCII; `domain` is a lowercased host with an
/// optional port (test instances are `localhost:PORT`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Address {
    name: String,
    domain: String,
}

impl Address {
    /// Parses `@name@domain`, `name@domain` or `acct:name@domain`.
    pub fn parse(input: &str) -> Result<Self> {
        let bad = || Error::BadAddress(input.chars().take(100).collect());
        let raw = input.trim();
        let raw = raw.strip_prefix("acct:").unwrap_or(raw);
        let raw = raw.strip_prefix('@').unwrap_or(raw);
        let (name, domain) = raw.split_once('@').ok_or_else(bad)?;
        let name = name.to_ascii_lowercase();
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(bad());
        }
        Ok(Self {
            name,
            domain: normalize_domain(domain)?,
        })
    }

    pub fn new(name: &str, domain: &str) -> Result<Self> {
        Self::parse(&format!("{name}@{domain}"))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The WebFinger resource: `acct:name@domain`.
    pub fn acct(&self) -> String {
        format!("acct:{}@{}", self.name, self.domain)
    }

    /// Whether this address belongs to the instance at `domain`.
    pub fn is_local_to(&self, domain: &str) -> bool {
        normalize_domain(domain).is_ok_and(|d| d == self.domain)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}@{}", self.name, self.domain)
    }
}

/// Lowercases and checks a host name with an optional port.
pub fn normalize_domain(input: &str) -> Result<String> {
    let bad = || Error::BadDomain(input.chars().take(100).collect());
    let domain = input.trim().trim_end_matches('.').to_ascii_lowercase();
    let (host, port) = match domain.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain.as_str(), None),
    };
    if let Some(port) = port
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        return Err(bad());
    }
    let labels_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !labels_ok {
        return Err(bad());
    }
    Ok(domain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_parses_to_one_address() -> Result<()> {
        let a = Address::parse("@Ada@Convene.Example.org")?;
        assert_eq!(a, Address::parse("ada@convene.example.org")?);
        assert_eq!(a, Address::parse("acct:ada@convene.example.org")?);
        assert_eq!(a.to_string(), "@ada@convene.example.org");
        assert_eq!(a.acct(), "acct:ada@convene.example.org");
        assert!(a.is_local_to("CONVENE.example.org"));
        assert!(!a.is_local_to("other.example.org"));
        assert_eq!(
            Address::parse("@bob@localhost:8081")?.domain(),
            "localhost:8081"
        );
        Ok(())
    }

    #[test]
    fn malformed_addresses_are_refused() {
        for bad in [
            "",
            "ada",
            "@ada",
            "ada@",
            "@@x.org",
            "a b@x.org",
            "ada@x..org",
            "ada@-x.org",
            "ada@x.org:0",
            "ada@x.org:99999",
            "ada@x.org/path",
            "ada@[::1]",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
