//! A shaped link for tests and benchmarks (cargo feature `test-client`): a
//! network namespace of the caller's own, joined to the root namespace by a
//! veth pair with a private /30 between them, and a `tbf` qdisc on the root
//! end that holds what is sent into the namespace to a rate. Needs root (or
//! `CAP_NET_ADMIN`) and `ip` and `tc` from iproute2; see [`is_root`].

use std::net::IpAddr;
use std::process::Command;

/// Whether this process runs as root, which making namespaces takes.
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Runs `cmd` with `args`; its standard error when it fails.
pub fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A veth pair from the root namespace into a namespace of the caller's
/// own; removed on drop.
pub struct Veth {
    /// The namespace's name (`/run/netns/{ns}`).
    pub ns: String,
    /// The root end's interface, where [`Veth::shape`] holds traffic.
    pub outer: String,
    /// The root end's address.
    pub outer_ip: IpAddr,
    /// The namespace end's address.
    pub inner_ip: IpAddr,
}

impl Veth {
    /// Makes namespace `{name}-{pid}` and the pair into it, on
    /// `10.{subnet}.x.0/30` (each user its own `subnet`, so that a test and a
    /// benchmark can run at once); `short` (at most 9 bytes) names the root
    /// end, `inner` the namespace end.
    pub fn create(name: &str, short: &str, subnet: u8, inner: &str) -> Result<Self, String> {
        let id = std::process::id();
        let net = id % 250 + 1;
        let parse = |s: String| s.parse::<IpAddr>().map_err(|e| format!("{s}: {e}"));
        let veth = Veth {
            ns: format!("{name}-{id}"),
            // Interface names have at most 15 bytes.
            outer: format!("{short}{}", id % 1_000_000),
            outer_ip: parse(format!("10.{subnet}.{net}.1"))?,
            inner_ip: parse(format!("10.{subnet}.{net}.2"))?,
        };
        run("ip", &["netns", "add", &veth.ns])?;
        // From here on, dropping `veth` removes what was made.
        run(
            "ip",
            &[
                "link",
                "add",
                &veth.outer,
                "type",
                "veth",
                "peer",
                "name",
                inner,
                "netns",
                &veth.ns,
            ],
        )?;
        let (outer_net, inner_net) = (
            format!("{}/30", veth.outer_ip),
            format!("{}/30", veth.inner_ip),
        );
        run("ip", &["addr", "add", &outer_net, "dev", &veth.outer])?;
        run("ip", &["link", "set", &veth.outer, "up"])?;
        run(
            "ip",
            &["-n", &veth.ns, "addr", "add", &inner_net, "dev", inner],
        )?;
        run("ip", &["-n", &veth.ns, "link", "set", inner, "up"])?;
        run("ip", &["-n", &veth.ns, "link", "set", "lo", "up"])?;
        Ok(veth)
    }

    /// Holds what is sent into the namespace to `rate` (`tc` units, such as
    /// `500kbit`): a token bucket of 4 kB that queues at most 100 ms.
    pub fn shape(&self, rate: &str) -> Result<(), String> {
        run(
            "tc",
            &[
                "qdisc",
                "add",
                "dev",
                &self.outer,
                "root",
                "tbf",
                "rate",
                rate,
                "burst",
                "4kb",
                "latency",
                "100ms",
            ],
        )
    }

    /// What the root end's qdisc passed into the namespace and dropped so far, as `tc -s`
    /// counts it.
    pub fn counters(&self) -> Result<QdiscCounters, String> {
        let out = Command::new("tc")
            .args(["-s", "qdisc", "show", "dev", &self.outer])
            .output()
            .map_err(|e| format!("tc: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        QdiscCounters::parse(&text).ok_or_else(|| format!("no counters in {text:?}"))
    }

    /// Lifts [`Veth::shape`].
    pub fn lift(&self) -> Result<(), String> {
        run("tc", &["qdisc", "del", "dev", &self.outer, "root"])
    }
}

/// A qdisc's counters: `Sent B bytes P pkt (dropped D, ...)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QdiscCounters {
    /// Bytes passed on.
    pub bytes: u64,
    /// Packets passed on.
    pub packets: u64,
    /// Packets dropped.
    pub dropped: u64,
}

impl QdiscCounters {
    /// Reads the first qdisc's counters from `tc -s qdisc show` output.
    pub fn parse(text: &str) -> Option<Self> {
        let sent = text.split("Sent ").nth(1)?;
        let mut words = sent.split_whitespace();
        let bytes = words.next()?.parse().ok()?;
        let packets = words.nth(1)?.parse().ok()?;
        let dropped = sent
            .split("dropped ")
            .nth(1)?
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()?;
        Some(Self {
            bytes,
            packets,
            dropped,
        })
    }

    /// What happened between `before` and `self`.
    pub fn since(self, before: Self) -> Self {
        Self {
            bytes: self.bytes.saturating_sub(before.bytes),
            packets: self.packets.saturating_sub(before.packets),
            dropped: self.dropped.saturating_sub(before.dropped),
        }
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        // Deleting one end deletes the pair.
        let _ = run("ip", &["link", "del", &self.outer]);
        let _ = run("ip", &["netns", "del", &self.ns]);
    }
}

#[cfg(test)]
mod tests {
    use super::QdiscCounters;

    #[test]
    fn tc_counters_are_read() {
        let text = "qdisc tbf 8001: root refcnt 2 rate 500Kbit burst 4Kb lat 100ms \n \
                    Sent 1874563 bytes 3021 pkt (dropped 57, overlimits 880 requeues 0) \n \
                    backlog 0b 0p requeues 0\n";
        let c = QdiscCounters::parse(text).expect("counters");
        assert_eq!((c.bytes, c.packets, c.dropped), (1_874_563, 3021, 57));
        let later = QdiscCounters {
            bytes: 2_000_000,
            packets: 3100,
            dropped: 60,
        };
        assert_eq!(
            later.since(c),
            QdiscCounters {
                bytes: 125_437,
                packets: 79,
                dropped: 3
            }
        );
        assert_eq!(QdiscCounters::parse("qdisc noqueue 0: root"), None);
    }
}
