//! # Protocol: the transport protocols policies name and packets carry
//!
//! ## Scope
//! One enum for both levels: NetworkPolicy ports and Service ports name TCP,
//! UDP or SCTP ([`crate::netpol`]; a rule for one never admits another), and
//! packet-level runs carry TCP, UDP or ICMP ([`crate::datapath::packet`]).
//! SCTP never appears in a packet (the packet model has no SCTP header);
//! ICMP is not a NetworkPolicy protocol, so [`Protocol::parse`] does not
//! accept it.
//!
//! ## Parameters
//! | protocol | IP protocol number | API / tcpdump spelling | source |
//! |---|---|---|---|
//! | TCP | 6 | `TCP` | RFC 9293; `core/v1` `Protocol` |
//! | UDP | 17 | `UDP` | RFC 768; `core/v1` `Protocol` |
//! | SCTP | 132 | `SCTP` | RFC 9260; `core/v1` `Protocol` |
//! | ICMP | 1 | `ICMP` | RFC 792 |
//!
//! ## What it emits
//! The spelling ([`Protocol::name`], also its `Display`) and the IP protocol
//! number ([`Protocol::number`]).
//!
//! ## Validation
//! Unit tests pin the spellings, the numbers and that parsing round-trips
//! the API spellings (case-sensitive, as upstream).

use std::fmt;

/// A transport protocol. The variant order (TCP, UDP, SCTP, ICMP) is the
/// order tables sort by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP (6), the API server's default for a port entry without `protocol`.
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132); policies and Services only.
    Sctp,
    /// ICMP (1); packets only.
    Icmp,
}

impl Protocol {
    /// Parses the API spelling (`TCP`, `UDP`, `SCTP`; case-sensitive, as upstream).
    pub fn parse(text: &str) -> Option<Protocol> {
        match text {
            "TCP" => Some(Protocol::Tcp),
            "UDP" => Some(Protocol::Udp),
            "SCTP" => Some(Protocol::Sctp),
            _ => None,
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Sctp => 132,
            Protocol::Icmp => 1,
        }
    }

    /// The name as the Kubernetes API, tcpdump and hubble spell it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Icmp => "ICMP",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::Protocol;

    const ALL: [Protocol; 4] = [Protocol::Tcp, Protocol::Udp, Protocol::Sctp, Protocol::Icmp];

    #[test]
    fn spellings_and_numbers() {
        let got: Vec<(String, u8)> = ALL.iter().map(|p| (p.to_string(), p.number())).collect();
        let want = [("TCP", 6), ("UDP", 17), ("SCTP", 132), ("ICMP", 1)];
        assert_eq!(
            got,
            want.map(|(n, k)| (n.to_string(), k)).to_vec(),
            "spelling and IP protocol number of each"
        );
    }

    #[test]
    fn parse_takes_the_api_spellings_only() {
        for p in [Protocol::Tcp, Protocol::Udp, Protocol::Sctp] {
            assert_eq!(Protocol::parse(p.name()), Some(p));
        }
        for text in ["ICMP", "tcp", "Udp", "", "TCP "] {
            assert_eq!(Protocol::parse(text), None, "{text:?}");
        }
    }
}
