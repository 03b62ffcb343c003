//! # resolver: a pod's stub resolver (glibc `getaddrinfo` over resolv.conf)
//!
//! ## Scope
//! What one `getaddrinfo()` call in a pod puts on the wire and how long it
//! takes, message by message: which names it tries (resolv.conf(5) `search`
//! and `ndots`), which queries it sends (A, AAAA, together or one after the
//! other), to which nameserver, from which socket (source port), when it
//! gives up, and what the application is told. Request-level: one DNS message
//! is one event. The network between the pod and its nameserver belongs to
//! the caller, who delivers replies, loses them, or reports an ICMP port
//! unreachable.
//!
//! The semantics are glibc's (2.34 to 2.39), read from `resolv/res_query.c`
//! (`__res_context_search`, `__res_context_query`) and `resolv/res_send.c`
//! (`__res_context_send`, `send_dg`), not measured on a live system:
//!
//! **Names tried** ([`candidates`]). Let `dots` be the number of `.` in the
//! name (a trailing dot counts).
//! - A trailing dot makes the name absolute: it is queried once, alone.
//! - `dots >= ndots`: the name as-is first; if that fails, for any reason,
//!   the search list.
//! - otherwise the search list first, then the name as-is.
//!
//! The walk stops at the first name with an answer (A or AAAA). NXDOMAIN,
//! NODATA or SERVFAIL on a search name moves to the next search domain; any
//! other failure ends the search-list walk: every try timed out, or was
//! REFUSED or NOTIMP, and the last reply in glibc's answer buffer is not a
//! SERVFAIL (`hp->rcode`); or a FORMERR. glibc still queries the name as-is
//! afterwards when it has not yet (`res_query.c` applies that last step
//! whatever ended the walk). If every exchange for a search name ended in an
//! ICMP error (errno `ECONNREFUSED`: no server listening), the lookup ends at
//! once with `EAI_AGAIN`.
//!
//! **Per name** (one `res_send`): for each try in `0..attempts`, each
//! nameserver in order (with `rotate`, starting at an offset that advances by
//! one per name sent, glibc's process-wide `nameserver_offset`), one exchange
//! (`send_dg`). An exchange with nameserver index `i` waits
//! `(timeout << i) / nameservers` whole seconds for `i > 0` and `timeout` for
//! `i = 0`, at least 1 s. The doubling follows the *server index*, not the
//! try: with the default `timeout:5`, every exchange waits 5 s with one or
//! two nameservers (5, 10/2) and 5, 3, 6 s with three. A name that never gets
//! a reply is abandoned after 10 s (one nameserver, `attempts:2`), 20 s (two)
//! or 28 s (three). A SERVFAIL, REFUSED or NOTIMP reply moves to the next
//! nameserver (or the next try) at once.
//!
//! **A and AAAA** ([`QueryTypes::AAndAaaa`], what `getaddrinfo(AF_UNSPEC)`
//! asks). By default both are sent together on one socket (`sendmmsg`); the
//! exchange ends when both replies are in. If the timeout expires with one
//! reply, glibc sets `single-request` in the resolver state and restarts the
//! exchange on the same socket with a fresh timeout: A, then AAAA once A is
//! answered. A lost AAAA reply therefore costs one timeout plus two round
//! trips: the `dns_conntrack_race` symptom, lookups taking exactly 5 s more.
//! A second such timeout switches to `single-request-reopen`; a third
//! returns the one answer it has.
//! - `single-request`: A, then AAAA after A's reply, on the same socket.
//! - `single-request-reopen`: A, then close the socket and open a new one
//!   (new source port) for AAAA. glibc's code makes this option imply
//!   `single-request` (resolv.conf(5) describes it as reopening "if two
//!   requests from the same port are not handled correctly"). The two
//!   queries never share a 5-tuple nor overlap in time, so the conntrack
//!   insert race cannot happen; a lost AAAA reply is not retried: when the
//!   timeout (counted from the exchange's start) expires, the lookup returns
//!   the A answer alone.
//! - Quirk kept from the code: in the one-at-a-time modes a SERVFAIL for A
//!   leaves the exchange waiting, until its timeout, for an AAAA reply it
//!   never asked for (`send_dg` goes back to `wait` without sending).
//!
//! **Sockets.** One per nameserver per name, opened on first use, kept
//! across the tries of that name, closed when the name is done, on an ICMP
//! error, on a SERVFAIL in A-only mode and on the reopen fallbacks. A late
//! reply is accepted while its socket is open: every try of a name reuses
//! the query's DNS ID, so the answer to try 1 arriving during try 2 ends the
//! exchange. A reply for an open socket that is not being polled is kept and
//! read when that socket is polled again; a reply for a closed socket is
//! dropped (the kernel answers it with a port unreachable).
//!
//! Limitations: replies are reduced to an rcode and an answer count; no
//! truncation and TCP fallback, no EDNS0, no `/etc/hosts`, no `no-tld-query`
//! or `use-vc`; the referral check (`NOERROR`, no answer, no AA/RA bits) is
//! not modelled. glibc keeps the `single-request` switch in the thread's
//! resolver state for later lookups; here it lasts one lookup, and
//! [`Lookup::fell_back_to_single_request`] tells the caller when to carry it
//! over. musl (Alpine images) queries all nameservers in parallel and is not
//! modelled.
//!
//! ## Parameters
//! [`ResolvConf`], from resolv.conf(5) and calibration.md "DNS", row "glibc
//! resolver" (conf H): `timeout` 5 s (`RES_TIMEOUT`, at most 30), `attempts`
//! 2 (`RES_DFLRETRY`, at most 5), `ndots` 1 (at most 15), at most 3
//! nameservers (`MAXNS`). A Kubernetes pod with `dnsPolicy: ClusterFirst`
//! ([`ResolvConf::kubernetes_pod`]) gets the cluster DNS Service as its only
//! nameserver, `search <ns>.svc.cluster.local svc.cluster.local
//! cluster.local` plus the node's own search domains, and `ndots:5` (same
//! row: 3-4 search domains).
//!
//! ## What it emits
//! [`ResolverAction`]s for the caller's event loop: queries to send (name,
//! type, server, socket), timers to set and cancel, and one
//! [`LookupResult`]: the answer, or the error the application sees, in
//! glibc's `gai_strerror` words (`Temporary failure in name resolution` for
//! `EAI_AGAIN`), with its latency and the queries it sent by type.
//!
//! ## Validation
//! Tests pin: the names tried and queries sent per lookup for external and
//! cluster names over ndots 1..5 and 3..6 search domains (4 search domains,
//! `ndots:5`, A only: 5 queries per external name, as Scaling_CoreDNS.md
//! states; 10 with AAAA, Zalando's figure); the story's "1,000 pods x 10
//! external lookups/s -> 50,000 wasted queries/s"; the give-up times against
//! a silent server (10 s, 20 s, 28 s for 1, 2, 3 nameservers, 20 s for a
//! relative name); the +5 s of a lost AAAA reply and how `single-request` and
//! `single-request-reopen` change it; SERVFAIL and ICMP handling.
//!
//! ## References
//! resolv.conf(5); glibc `resolv/res_query.c`, `resolv/res_send.c`;
//! coredns/deployment `kubernetes/Scaling_CoreDNS.md`; kubernetes#56903
//! (conntrack race); Kubernetes docs "DNS for Services and Pods".

use sim_core::{SimDuration, SimTime};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

/// glibc's default per-exchange timeout (`RES_TIMEOUT`).
pub const DEFAULT_TIMEOUT: SimDuration = SimDuration::from_secs(5);
/// glibc's default number of tries per nameserver (`RES_DFLRETRY`).
pub const DEFAULT_ATTEMPTS: u8 = 2;
/// glibc's default `ndots`.
pub const DEFAULT_NDOTS: u8 = 1;
/// `ndots` a Kubernetes pod gets with `dnsPolicy: ClusterFirst`.
pub const KUBERNETES_NDOTS: u8 = 5;
/// Most nameservers glibc uses (`MAXNS`).
pub const MAX_NAMESERVERS: usize = 3;
/// Largest `ndots` glibc accepts (`RES_MAXNDOTS`).
pub const MAX_NDOTS: u8 = 15;
/// Largest `timeout` glibc accepts (`RES_MAXRETRANS`) \[s\].
pub const MAX_TIMEOUT_SECS: u64 = 30;
/// Largest `attempts` glibc accepts (`RES_MAXRETRY`).
pub const MAX_ATTEMPTS: u8 = 5;

const NS_PER_S: u64 = 1_000_000_000;

/// The resolver configuration of one pod: `/etc/resolv.conf`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines, in order (1 to 3).
    pub nameservers: Vec<IpAddr>,
    /// `search` domains, in order (`.` is the root).
    pub search: Vec<String>,
    /// `options ndots:n`: names with at least this many dots are tried as-is first.
    pub ndots: u8,
    /// `options timeout:n`: the first exchange's timeout [whole seconds, 1..=30].
    pub timeout: SimDuration,
    /// `options attempts:n`: tries per nameserver (1..=5).
    pub attempts: u8,
    /// `options rotate`: spread names over the nameservers.
    pub rotate: bool,
    /// `options single-request`: A, then AAAA, never together.
    pub single_request: bool,
    /// `options single-request-reopen`: A, then AAAA from a new socket.
    pub single_request_reopen: bool,
}

/// Why a [`ResolvConf`] is not one glibc would run with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolvConfError {
    /// No nameserver line.
    #[error("resolv.conf has no nameserver (glibc would fall back to 127.0.0.1; state one)")]
    NoNameserver,
    /// More than [`MAX_NAMESERVERS`].
    #[error(
        "resolv.conf has {0} nameservers: glibc uses at most 3 (MAXNS) and Kubernetes rejects more"
    )]
    TooManyNameservers(usize),
    /// `ndots` above [`MAX_NDOTS`].
    #[error("ndots:{0} is out of range: glibc accepts 0 to 15")]
    Ndots(u8),
    /// `timeout` not a whole number of seconds in 1..=30.
    #[error("timeout {0} is not a whole number of seconds from 1 to 30 (glibc counts whole seconds, at most RES_MAXRETRANS = 30)")]
    Timeout(SimDuration),
    /// `attempts` outside 1..=5.
    #[error("attempts:{0} is out of range: glibc accepts 1 to 5 (RES_MAXRETRY)")]
    Attempts(u8),
    /// A search domain that cannot be one.
    #[error("search domain `{0}` is not a domain name (write `.` for the root)")]
    SearchDomain(String),
}

/// Why a lookup cannot start.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// The configuration is invalid.
    #[error(transparent)]
    Conf(#[from] ResolvConfError),
    /// The name is not a host name.
    #[error("`{name}` is not a host name: {why}")]
    Name {
        /// What was asked.
        name: String,
        /// What is wrong with it.
        why: &'static str,
    },
}

impl ResolvConf {
    /// glibc's defaults with these nameservers: no search list, `ndots:1`,
    /// `timeout:5`, `attempts:2`, A and AAAA in parallel.
    pub fn glibc_default(nameservers: Vec<IpAddr>) -> Self {
        ResolvConf {
            nameservers,
            search: Vec::new(),
            ndots: DEFAULT_NDOTS,
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            rotate: false,
            single_request: false,
            single_request_reopen: false,
        }
    }

    /// What the kubelet writes for a pod in `namespace` with `dnsPolicy:
    /// ClusterFirst`: `nameserver <cluster_dns>`, `search
    /// <namespace>.svc.cluster.local svc.cluster.local cluster.local` then
    /// the node's own search domains (`host_search`, e.g. `ec2.internal`),
    /// `options ndots:5`, glibc's timeout and attempts.
    pub fn kubernetes_pod(namespace: &str, cluster_dns: IpAddr, host_search: &[&str]) -> Self {
        let mut search = vec![
            format!("{namespace}.svc.cluster.local"),
            "svc.cluster.local".to_string(),
            "cluster.local".to_string(),
        ];
        search.extend(host_search.iter().map(|d| d.to_string()));
        ResolvConf {
            search,
            ndots: KUBERNETES_NDOTS,
            ..ResolvConf::glibc_default(vec![cluster_dns])
        }
    }

    /// Checks every field against what glibc accepts.
    pub fn validate(&self) -> Result<(), ResolvConfError> {
        if self.nameservers.is_empty() {
            return Err(ResolvConfError::NoNameserver);
        }
        if self.nameservers.len() > MAX_NAMESERVERS {
            return Err(ResolvConfError::TooManyNameservers(self.nameservers.len()));
        }
        if self.ndots > MAX_NDOTS {
            return Err(ResolvConfError::Ndots(self.ndots));
        }
        let t = self.timeout.as_nanos();
        if t.checked_rem(NS_PER_S) != Some(0) || t == 0 || t / NS_PER_S > MAX_TIMEOUT_SECS {
            return Err(ResolvConfError::Timeout(self.timeout));
        }
        if self.attempts == 0 || self.attempts > MAX_ATTEMPTS {
            return Err(ResolvConfError::Attempts(self.attempts));
        }
        for d in &self.search {
            if d != "." && check_name(d.trim_end_matches('.')).is_err() {
                return Err(ResolvConfError::SearchDomain(d.clone()));
            }
        }
        Ok(())
    }

    /// How long an exchange with nameserver `index` waits (`send_dg`):
    /// `timeout` for index 0, `(timeout << index) / nameservers` whole
    /// seconds after, at least 1 s.
    pub fn exchange_timeout(&self, index: usize) -> SimDuration {
        let retrans = self.timeout.as_nanos() / NS_PER_S;
        let n = self.nameservers.len().max(1) as u64;
        let shift = index.min(8) as u32;
        let mut secs = retrans << shift;
        if index > 0 {
            secs /= n;
        }
        SimDuration::from_secs(secs.max(1))
    }
}

/// Checks a name without its trailing dot.
fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 253 {
        return Err("it is longer than 253 characters");
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err("it has an empty label (two dots in a row, or a leading dot)");
        }
        if label.len() > 63 {
            return Err("a label is longer than 63 characters");
        }
        if label.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("it contains whitespace");
        }
    }
    Ok(())
}

/// One entry of the search walk.
#[derive(Clone, Debug)]
enum SearchEntry {
    /// `name.domain`.
    Domain(Arc<str>),
    /// The root domain: the name as-is.
    Root,
}

/// The names a lookup may try, precomputed.
#[derive(Clone, Debug)]
struct Plan {
    as_is: Arc<str>,
    trailing_dot: bool,
    as_is_first: bool,
    searching: bool,
    search: Vec<SearchEntry>,
}

impl Plan {
    fn new(name: &str, conf: &ResolvConf) -> Result<Plan, LookupError> {
        let trailing_dot = name.ends_with('.');
        let bare = name.strip_suffix('.').unwrap_or(name);
        check_name(bare).map_err(|why| LookupError::Name {
            name: name.to_string(),
            why,
        })?;
        let dots = name.bytes().filter(|&b| b == b'.').count();
        let search = conf
            .search
            .iter()
            .map(|d| {
                let d = d.trim_end_matches('.');
                if d.is_empty() {
                    SearchEntry::Root
                } else {
                    SearchEntry::Domain(Arc::from(format!("{bare}.{d}")))
                }
            })
            .collect();
        Ok(Plan {
            as_is: Arc::from(bare),
            trailing_dot,
            as_is_first: dots >= usize::from(conf.ndots) || trailing_dot,
            // RES_DEFNAMES and RES_DNSRCH are always on.
            searching: dots == 0 || !trailing_dot,
            search,
        })
    }

    /// Every name, in order, when each one fails with NXDOMAIN.
    fn all(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.as_is_first {
            out.push(self.as_is.to_string());
            if self.trailing_dot {
                return out;
            }
        }
        let mut root_on_list = false;
        if self.searching {
            for e in &self.search {
                match e {
                    SearchEntry::Domain(n) => out.push(n.to_string()),
                    SearchEntry::Root => {
                        root_on_list = true;
                        out.push(self.as_is.to_string());
                    }
                }
            }
        }
        if !self.as_is_first && !root_on_list {
            out.push(self.as_is.to_string());
        }
        out
    }
}

/// The names glibc queries for `name`, in order, when none of them exists
/// (each answered NXDOMAIN): the longest walk. A lookup stops at the first
/// name that has an answer. Query names carry no trailing dot.
pub fn candidates(name: &str, conf: &ResolvConf) -> Result<Vec<String>, LookupError> {
    conf.validate()?;
    Ok(Plan::new(name, conf)?.all())
}

/// Queries one lookup of `name` sends when every reply arrives and a name
/// has an answer exactly when `exists(name)` (NXDOMAIN otherwise): one query
/// per name tried, two with A and AAAA. The pure form of the amplification
/// the [`Lookup`] state machine produces with a prompt, loss-free server.
pub fn count_queries(
    name: &str,
    conf: &ResolvConf,
    qtypes: QueryTypes,
    exists: impl Fn(&str) -> bool,
) -> Result<QueryCounts, LookupError> {
    let mut counts = QueryCounts::default();
    for n in candidates(name, conf)? {
        counts.a += 1;
        if qtypes == QueryTypes::AAndAaaa {
            counts.aaaa += 1;
        }
        if exists(&n) {
            break;
        }
    }
    Ok(counts)
}

/// A DNS query type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QType {
    /// IPv4 address.
    A,
    /// IPv6 address.
    Aaaa,
}

impl fmt::Display for QType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            QType::A => "A",
            QType::Aaaa => "AAAA",
        })
    }
}

/// Which address families the application asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryTypes {
    /// `getaddrinfo(AF_INET)`: A queries only.
    AOnly,
    /// `getaddrinfo(AF_UNSPEC)`: A and AAAA for each name.
    AAndAaaa,
}

/// A DNS response code (RFC 1035 section 4.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rcode {
    /// No error (with or without answers).
    NoError,
    /// The server could not parse the query.
    FormErr,
    /// The server failed to answer.
    ServFail,
    /// The name does not exist.
    NxDomain,
    /// The server does not implement the query.
    NotImp,
    /// The server will not answer.
    Refused,
}

impl Rcode {
    /// The replies after which glibc tries the next nameserver at once.
    fn rejects(self) -> bool {
        matches!(self, Rcode::ServFail | Rcode::NotImp | Rcode::Refused)
    }
}

impl fmt::Display for Rcode {
    /// As `dig` prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rcode::NoError => "NOERROR",
            Rcode::FormErr => "FORMERR",
            Rcode::ServFail => "SERVFAIL",
            Rcode::NxDomain => "NXDOMAIN",
            Rcode::NotImp => "NOTIMP",
            Rcode::Refused => "REFUSED",
        })
    }
}

/// A DNS reply, reduced to what the resolver acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Response code.
    pub rcode: Rcode,
    /// Records in the answer section.
    pub answers: u16,
}

impl Reply {
    /// `NOERROR` with `n` records.
    pub const fn answer(n: u16) -> Reply {
        Reply {
            rcode: Rcode::NoError,
            answers: n,
        }
    }
    /// `NOERROR` without records: the name exists, not with this type.
    pub const NODATA: Reply = Reply::answer(0);
    /// The name does not exist.
    pub const NXDOMAIN: Reply = Reply {
        rcode: Rcode::NxDomain,
        answers: 0,
    };
    /// The server failed.
    pub const SERVFAIL: Reply = Reply {
        rcode: Rcode::ServFail,
        answers: 0,
    };
}

/// One transmitted query, numbered from 0 within its lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub u32);
/// One UDP socket (one source port), numbered from 0 within its lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SocketId(pub u32);
/// One timer, numbered from 0 within its lookup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimerToken(pub u32);

/// Queries sent, by type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueryCounts {
    /// A queries.
    pub a: u32,
    /// AAAA queries.
    pub aaaa: u32,
}

impl QueryCounts {
    /// A and AAAA together.
    pub fn total(&self) -> u32 {
        self.a + self.aaaa
    }
}

/// What the application is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LookupOutcome {
    /// Addresses: the A and AAAA records of the name that answered.
    Answered {
        /// A records.
        a: u16,
        /// AAAA records.
        aaaa: u16,
    },
    /// `EAI_NONAME`: every name tried was NXDOMAIN.
    NotFound,
    /// `EAI_NODATA`: a name exists, without addresses.
    NoData,
    /// `EAI_AGAIN`: timeouts, SERVFAIL or REFUSED from every try, or no
    /// server listening.
    TryAgain,
    /// `EAI_FAIL`: a FORMERR reply.
    NoRecovery,
}

impl fmt::Display for LookupOutcome {
    /// glibc's `gai_strerror` text, as applications log it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupOutcome::Answered { a, aaaa } => write!(f, "{a} A + {aaaa} AAAA records"),
            LookupOutcome::NotFound => f.write_str("Name or service not known"),
            LookupOutcome::NoData => f.write_str("No address associated with hostname"),
            LookupOutcome::TryAgain => f.write_str("Temporary failure in name resolution"),
            LookupOutcome::NoRecovery => f.write_str("Non-recoverable failure in name resolution"),
        }
    }
}

/// How one lookup ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LookupResult {
    /// What the application is told.
    pub outcome: LookupOutcome,
    /// When `getaddrinfo` was called.
    pub started: SimTime,
    /// When it returned.
    pub finished: SimTime,
    /// The name that answered, if any.
    pub answered_name: Option<Arc<str>>,
    /// Queries sent, by type.
    pub queries: QueryCounts,
    /// Names tried (`res_send` calls; advance a `rotate` offset by this).
    pub names_tried: u32,
}

impl LookupResult {
    /// How long the application waited.
    pub fn latency(&self) -> SimDuration {
        self.finished - self.started
    }
}

/// What the caller's event loop must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolverAction {
    /// Send one query now. Two `Send`s with the same socket in one call are
    /// the parallel A/AAAA pair: the packets that can lose the conntrack
    /// insert race.
    Send {
        /// Quote it in [`Lookup::on_reply`] or [`Lookup::on_unreachable`].
        query_id: QueryId,
        /// Query name, without trailing dot.
        name: Arc<str>,
        /// Query type.
        qtype: QType,
        /// Destination nameserver.
        server: IpAddr,
        /// Source socket: a new socket is a new source port.
        socket: SocketId,
    },
    /// Call [`Lookup::on_timer`] with `token` at `at`.
    SetTimer {
        /// When.
        at: SimTime,
        /// Which timer.
        token: TimerToken,
    },
    /// A timer set earlier is no longer needed (ignoring it is also fine).
    CancelTimer {
        /// Which timer.
        token: TimerToken,
    },
    /// The lookup is over; later calls return nothing.
    Done(LookupResult),
}

/// glibc's `h_errno` for a failed name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HErrno {
    HostNotFound,
    NoData,
    TryAgain,
    NoRecovery,
}

impl HErrno {
    fn outcome(self) -> LookupOutcome {
        match self {
            HErrno::HostNotFound => LookupOutcome::NotFound,
            HErrno::NoData => LookupOutcome::NoData,
            HErrno::TryAgain => LookupOutcome::TryAgain,
            HErrno::NoRecovery => LookupOutcome::NoRecovery,
        }
    }
}

/// How one name ended.
enum NameOutcome {
    Answered {
        a: u16,
        aaaa: u16,
    },
    Failed {
        herrno: HErrno,
        /// The answer buffer holds a SERVFAIL (`hp->rcode == SERVFAIL`).
        servfail: bool,
        /// errno `ECONNREFUSED`: no exchange timed out or got a reply.
        refused: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    NotStarted,
    AsIsFirst,
    Search(usize),
    AsIsLast,
    Finished,
}

#[derive(Clone, Copy, Debug)]
struct Tx {
    slot: usize,
    socket: SocketId,
}

/// Something that arrived on an open socket nobody is polling.
#[derive(Clone, Copy, Debug)]
enum Held {
    Reply {
        socket: SocketId,
        slot: usize,
        reply: Reply,
    },
    Error {
        socket: SocketId,
    },
}

impl Held {
    fn socket(&self) -> SocketId {
        match *self {
            Held::Reply { socket, .. } | Held::Error { socket } => socket,
        }
    }
}

/// One `send_dg` round: the queries on one socket under one deadline.
#[derive(Clone, Debug)]
struct Round {
    ns: usize,
    socket: SocketId,
    timer: TimerToken,
    /// `recvresp1`, `recvresp2` (AAAA preset when not asked).
    recv: [bool; 2],
    /// Usable replies by slot (0 = A, 1 = AAAA).
    good: [Option<Reply>; 2],
    /// `resplen > 1`: the first reply of the round was usable.
    first_good: bool,
    /// The slot whose reply sits in the first answer buffer.
    first_slot: usize,
}

/// One name's `res_send`.
#[derive(Clone, Debug)]
struct NameState {
    name: Arc<str>,
    try_no: u32,
    shift: usize,
    offset: usize,
    gotsomewhere: bool,
    buf1_servfail: bool,
    sockets: Vec<Option<SocketId>>,
    held: Vec<Held>,
    round: Option<Round>,
}

/// Where a reply leaves the round.
enum Step {
    Wait,
    Success,
    NextServer { close: bool },
}

/// One `getaddrinfo()` call: an event-driven state machine.
///
/// ```
/// # use sim_models::resolver::*;
/// # use sim_core::SimTime;
/// let conf = ResolvConf::kubernetes_pod("prod", "10.96.0.10".parse().unwrap(), &[]);
/// let mut lookup = Lookup::new(&conf, "api.stripe.com", QueryTypes::AOnly).unwrap();
/// let actions = lookup.start(SimTime::ZERO);
/// // The first name tried is the first search domain: ndots:5.
/// let first = actions.iter().find_map(|a| match a {
///     ResolverAction::Send { name, .. } => Some(name.to_string()),
///     _ => None,
/// });
/// assert_eq!(first.as_deref(), Some("api.stripe.com.prod.svc.cluster.local"));
/// ```
#[derive(Clone, Debug)]
pub struct Lookup {
    servers: Vec<IpAddr>,
    timeouts: Vec<SimDuration>,
    attempts: u32,
    rotate: bool,
    single_request: bool,
    reopen: bool,
    two: bool,
    fell_back: bool,
    plan: Plan,
    rotation: usize,
    phase: Phase,
    started: SimTime,
    tx: Vec<Tx>,
    next_socket: u32,
    next_timer: u32,
    live_timer: Option<TimerToken>,
    counts: QueryCounts,
    names_tried: u32,
    saved_herrno: Option<HErrno>,
    got_nodata: bool,
    got_servfail: bool,
    last_herrno: HErrno,
    tried_as_is: bool,
    root_on_list: bool,
    cur: Option<NameState>,
}

impl Lookup {
    /// A lookup of `name` under `conf`, not yet started.
    pub fn new(conf: &ResolvConf, name: &str, qtypes: QueryTypes) -> Result<Lookup, LookupError> {
        conf.validate()?;
        let plan = Plan::new(name, conf)?;
        Ok(Lookup {
            servers: conf.nameservers.clone(),
            timeouts: (0..conf.nameservers.len())
                .map(|i| conf.exchange_timeout(i))
                .collect(),
            attempts: u32::from(conf.attempts),
            rotate: conf.rotate,
            single_request: conf.single_request || conf.single_request_reopen,
            reopen: conf.single_request_reopen,
            two: qtypes == QueryTypes::AAndAaaa,
            fell_back: false,
            plan,
            rotation: 0,
            phase: Phase::NotStarted,
            started: SimTime::ZERO,
            tx: Vec::new(),
            next_socket: 0,
            next_timer: 0,
            live_timer: None,
            counts: QueryCounts::default(),
            names_tried: 0,
            saved_herrno: None,
            got_nodata: false,
            got_servfail: false,
            last_herrno: HErrno::HostNotFound,
            tried_as_is: false,
            root_on_list: false,
            cur: None,
        })
    }

    /// With `rotate`, the process-wide nameserver offset at the first name
    /// (glibc starts it at a random value and adds one per name sent).
    pub fn rotation_offset(mut self, offset: u32) -> Lookup {
        self.rotation = offset as usize;
        self
    }

    /// Calls `getaddrinfo` at `now`. A second call does nothing.
    pub fn start(&mut self, now: SimTime) -> Vec<ResolverAction> {
        let mut out = Vec::new();
        if self.phase != Phase::NotStarted {
            return out;
        }
        self.started = now;
        if self.plan.as_is_first {
            self.phase = Phase::AsIsFirst;
            let name = self.plan.as_is.clone();
            self.start_name(now, name, &mut out);
        } else {
            self.enter_search(now, 0, &mut out);
        }
        out
    }

    /// A reply to `query` arrived at `now`.
    pub fn on_reply(&mut self, now: SimTime, query: QueryId, reply: Reply) -> Vec<ResolverAction> {
        let mut out = Vec::new();
        let Some(&Tx { slot, socket }) = self.tx.get(query.0 as usize) else {
            return out;
        };
        let Some(cur) = self.cur.as_mut() else {
            return out;
        };
        if !cur.sockets.contains(&Some(socket)) {
            return out; // closed: the kernel drops it
        }
        if cur.round.as_ref().map(|r| r.socket) != Some(socket) {
            cur.held.push(Held::Reply {
                socket,
                slot,
                reply,
            });
            return out;
        }
        let step = self.handle_reply(slot, reply, &mut out);
        self.after_step(now, step, &mut out);
        out
    }

    /// An ICMP port unreachable for `query` arrived at `now` (nothing
    /// listens at the server address, or a REJECT rule answered for it).
    pub fn on_unreachable(&mut self, now: SimTime, query: QueryId) -> Vec<ResolverAction> {
        let mut out = Vec::new();
        let Some(&Tx { socket, .. }) = self.tx.get(query.0 as usize) else {
            return out;
        };
        let Some(cur) = self.cur.as_mut() else {
            return out;
        };
        if !cur.sockets.contains(&Some(socket)) {
            return out;
        }
        if cur.round.as_ref().map(|r| r.socket) != Some(socket) {
            cur.held.push(Held::Error { socket });
            return out;
        }
        // POLLERR: close_and_return_error, next nameserver.
        self.after_step(now, Step::NextServer { close: true }, &mut out);
        out
    }

    /// The timer `token` fired at `now`; stale tokens are ignored.
    pub fn on_timer(&mut self, now: SimTime, token: TimerToken) -> Vec<ResolverAction> {
        let mut out = Vec::new();
        if self.live_timer != Some(token) {
            return out;
        }
        self.live_timer = None;
        let two = self.two;
        let Some(cur) = self.cur.as_mut() else {
            return out;
        };
        let Some(round) = cur.round.as_ref() else {
            return out;
        };
        let (ns, socket) = (round.ns, round.socket);
        let one_reply = round.first_good && (round.recv[0] || (two && round.recv[1]));
        if !one_reply {
            cur.gotsomewhere = true;
            self.next_server(now, &mut out);
        } else if !self.single_request {
            // Broken server or firewall: go one query at a time (RES_SNGLKUP).
            self.single_request = true;
            self.fell_back = true;
            self.begin_round(now, ns, socket, &mut out);
        } else if !self.reopen {
            // Still one reply: a new socket before each second query (RES_SNGLKUPREOP).
            self.reopen = true;
            self.fell_back = true;
            self.close_all();
            let socket = self.open_socket(ns);
            self.begin_round(now, ns, socket, &mut out);
        } else {
            // Give up on the second reply: answer with the first (*resplen2 = 1).
            if let Some(r) = cur.round.as_mut() {
                let keep = r.first_slot;
                r.good[1 - keep] = None;
            }
            self.name_success(now, &mut out);
        }
        out
    }

    /// Whether glibc switched this lookup to one query at a time after a
    /// timeout with one reply; it keeps that in the thread's resolver state,
    /// so a caller modelling a long-lived thread can set `single_request`
    /// (`single_request_reopen` after a second switch) for later lookups.
    pub fn fell_back_to_single_request(&self) -> bool {
        self.fell_back
    }

    fn new_timer(&mut self, at: SimTime, out: &mut Vec<ResolverAction>) -> TimerToken {
        if let Some(old) = self.live_timer.take() {
            out.push(ResolverAction::CancelTimer { token: old });
        }
        let token = TimerToken(self.next_timer);
        self.next_timer += 1;
        self.live_timer = Some(token);
        out.push(ResolverAction::SetTimer { at, token });
        token
    }

    fn open_socket(&mut self, ns: usize) -> SocketId {
        let id = SocketId(self.next_socket);
        self.next_socket += 1;
        if let Some(cur) = self.cur.as_mut() {
            cur.sockets[ns] = Some(id);
        }
        id
    }

    /// `__res_iclose`: every socket of the name closes; what they held is lost.
    fn close_all(&mut self) {
        if let Some(cur) = self.cur.as_mut() {
            cur.sockets.iter_mut().for_each(|s| *s = None);
            cur.held.clear();
        }
    }

    fn send(&mut self, slot: usize, ns: usize, socket: SocketId, out: &mut Vec<ResolverAction>) {
        let Some(cur) = self.cur.as_ref() else {
            return;
        };
        let query_id = QueryId(self.tx.len() as u32);
        self.tx.push(Tx { slot, socket });
        let qtype = if slot == 0 { QType::A } else { QType::Aaaa };
        match qtype {
            QType::A => self.counts.a += 1,
            QType::Aaaa => self.counts.aaaa += 1,
        }
        out.push(ResolverAction::Send {
            query_id,
            name: cur.name.clone(),
            qtype,
            server: self.servers[ns],
            socket,
        });
    }

    fn start_name(&mut self, now: SimTime, name: Arc<str>, out: &mut Vec<ResolverAction>) {
        let n = self.servers.len();
        let offset = if self.rotate && n > 1 {
            (self.rotation + self.names_tried as usize) % n
        } else {
            0
        };
        self.names_tried += 1;
        self.cur = Some(NameState {
            name,
            try_no: 0,
            shift: 0,
            offset,
            gotsomewhere: false,
            buf1_servfail: false,
            sockets: vec![None; n],
            held: Vec::new(),
            round: None,
        });
        self.enter_exchange(now, out);
    }

    /// `send_dg` entry for the current (try, nameserver).
    fn enter_exchange(&mut self, now: SimTime, out: &mut Vec<ResolverAction>) {
        let n = self.servers.len();
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        let ns = (cur.shift + cur.offset) % n;
        let existing = cur.sockets[ns];
        let socket = match existing {
            Some(s) => s,
            None => self.open_socket(ns),
        };
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        // A pending ICMP error makes the send itself fail.
        if let Some(i) = cur
            .held
            .iter()
            .position(|h| matches!(h, Held::Error { socket: s } if *s == socket))
        {
            cur.held.remove(i);
            cur.round = None;
            self.close_all();
            self.next_server(now, out);
            return;
        }
        self.begin_round(now, ns, socket, out);
    }

    /// `retry:` in `send_dg`: a fresh deadline, nothing received, send.
    fn begin_round(
        &mut self,
        now: SimTime,
        ns: usize,
        socket: SocketId,
        out: &mut Vec<ResolverAction>,
    ) {
        let at = now + self.timeouts[ns];
        let timer = self.new_timer(at, out);
        let two = self.two;
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        cur.round = Some(Round {
            ns,
            socket,
            timer,
            recv: [false, !two],
            good: [None, None],
            first_good: false,
            first_slot: 0,
        });
        self.send(0, ns, socket, out);
        if two && !self.single_request {
            self.send(1, ns, socket, out);
        }
        // Replies already waiting in this socket are read at once.
        loop {
            let Some(cur) = self.cur.as_mut() else {
                return;
            };
            if cur.round.as_ref().map(|r| r.timer) != Some(timer) {
                return;
            }
            let Some(i) = cur.held.iter().position(|h| h.socket() == socket) else {
                return;
            };
            let Held::Reply { slot, reply, .. } = cur.held.remove(i) else {
                continue;
            };
            let step = self.handle_reply(slot, reply, out);
            if !matches!(step, Step::Wait) {
                self.after_step(now, step, out);
                return;
            }
        }
    }

    /// `send_dg`'s handling of one reply on the polled socket.
    fn handle_reply(&mut self, slot: usize, reply: Reply, out: &mut Vec<ResolverAction>) -> Step {
        let two = self.two;
        let Some(cur) = self.cur.as_mut() else {
            return Step::Wait;
        };
        let Some(r) = cur.round.as_mut() else {
            return Step::Wait;
        };
        if slot > 1 || r.recv[slot] || (!two && slot == 1) {
            return Step::Wait; // no matching query outstanding
        }
        let to_buf1 = !two || (!r.recv[0] && !r.recv[1]);
        cur.gotsomewhere = true;
        if to_buf1 {
            cur.buf1_servfail = reply.rcode == Rcode::ServFail;
        }
        if reply.rcode.rejects() {
            if r.recv[0] || (two && r.recv[1]) {
                return if r.first_good {
                    Step::Success
                } else {
                    Step::NextServer { close: false }
                };
            }
            if two {
                r.first_good = false;
                r.recv[slot] = true;
                return Step::Wait;
            }
            return Step::NextServer { close: true };
        }
        r.recv[slot] = true;
        r.good[slot] = Some(reply);
        if to_buf1 {
            r.first_good = true;
            r.first_slot = slot;
        }
        if r.recv[0] && r.recv[1] {
            return Step::Success;
        }
        if self.single_request {
            // POLLOUT: the second query (glibc writes buf2 on every later write).
            let ns = r.ns;
            let socket = if self.reopen {
                self.close_all();
                let s = self.open_socket(ns);
                if let Some(r) = self.cur.as_mut().and_then(|c| c.round.as_mut()) {
                    r.socket = s;
                }
                s
            } else {
                r.socket
            };
            self.send(1, ns, socket, out);
        }
        Step::Wait
    }

    fn after_step(&mut self, now: SimTime, step: Step, out: &mut Vec<ResolverAction>) {
        match step {
            Step::Wait => {}
            Step::Success => self.name_success(now, out),
            Step::NextServer { close } => {
                if close {
                    self.close_all();
                }
                self.next_server(now, out);
            }
        }
    }

    /// The exchange gave nothing usable: next nameserver, next try, or the name failed.
    fn next_server(&mut self, now: SimTime, out: &mut Vec<ResolverAction>) {
        let n = self.servers.len();
        let attempts = self.attempts;
        let Some(cur) = self.cur.as_mut() else {
            return;
        };
        cur.round = None;
        cur.shift += 1;
        if cur.shift >= n {
            cur.shift = 0;
            cur.try_no += 1;
        }
        if cur.try_no >= attempts {
            let outcome = NameOutcome::Failed {
                herrno: HErrno::TryAgain,
                servfail: cur.buf1_servfail,
                refused: !cur.gotsomewhere,
            };
            self.name_done(now, outcome, out);
        } else {
            self.enter_exchange(now, out);
        }
    }

    /// Both replies (or the one kept) are in: `__res_context_query`'s verdict.
    fn name_success(&mut self, now: SimTime, out: &mut Vec<ResolverAction>) {
        let Some(r) = self.cur.as_ref().and_then(|c| c.round.clone()) else {
            return;
        };
        let first = r.good[r.first_slot].or(r.good[1 - r.first_slot]);
        let second = r.good[1 - r.first_slot].or(first);
        let Some(hp) = first else {
            self.next_server(now, out);
            return;
        };
        let hp2 = second.unwrap_or(hp);
        let has = |x: Option<Reply>| {
            x.filter(|x| x.rcode == Rcode::NoError)
                .map_or(0, |x| x.answers)
        };
        let (a, aaaa) = (has(r.good[0]), has(r.good[1]));
        let outcome = if a > 0 || aaaa > 0 {
            NameOutcome::Answered { a, aaaa }
        } else {
            let code = if hp.rcode == Rcode::NoError {
                hp2.rcode
            } else {
                hp.rcode
            };
            let herrno = match code {
                Rcode::NxDomain => HErrno::HostNotFound,
                Rcode::ServFail => HErrno::TryAgain,
                Rcode::NoError => HErrno::NoData,
                Rcode::FormErr | Rcode::NotImp | Rcode::Refused => HErrno::NoRecovery,
            };
            NameOutcome::Failed {
                herrno,
                servfail: code == Rcode::ServFail,
                refused: false,
            }
        };
        self.name_done(now, outcome, out);
    }

    /// `__res_context_search`: what one name's result means for the walk.
    fn name_done(&mut self, now: SimTime, outcome: NameOutcome, out: &mut Vec<ResolverAction>) {
        self.close_all();
        let name = self.cur.take().map(|c| c.name);
        let (herrno, servfail, refused) = match outcome {
            NameOutcome::Answered { a, aaaa } => {
                self.finish(now, LookupOutcome::Answered { a, aaaa }, name, out);
                return;
            }
            NameOutcome::Failed {
                herrno,
                servfail,
                refused,
            } => (herrno, servfail, refused),
        };
        self.last_herrno = herrno;
        match self.phase {
            Phase::AsIsFirst => {
                if self.plan.trailing_dot {
                    self.finish(now, herrno.outcome(), None, out);
                    return;
                }
                self.saved_herrno = Some(herrno);
                self.tried_as_is = true;
                self.enter_search(now, 0, out);
            }
            Phase::Search(i) => {
                if refused {
                    self.finish(now, LookupOutcome::TryAgain, None, out);
                    return;
                }
                let keep_going = match herrno {
                    HErrno::NoData => {
                        self.got_nodata = true;
                        true
                    }
                    HErrno::HostNotFound => true,
                    HErrno::TryAgain if servfail => {
                        self.got_servfail = true;
                        true
                    }
                    _ => false,
                };
                if keep_going {
                    self.enter_search(now, i + 1, out);
                } else {
                    self.final_as_is(now, out);
                }
            }
            Phase::AsIsLast => self.give_up(now, out),
            Phase::NotStarted | Phase::Finished => {}
        }
    }

    fn enter_search(&mut self, now: SimTime, i: usize, out: &mut Vec<ResolverAction>) {
        if !self.plan.searching || i >= self.plan.search.len() {
            self.final_as_is(now, out);
            return;
        }
        self.phase = Phase::Search(i);
        let name = match &self.plan.search[i] {
            SearchEntry::Domain(n) => n.clone(),
            SearchEntry::Root => {
                self.root_on_list = true;
                self.plan.as_is.clone()
            }
        };
        self.start_name(now, name, out);
    }

    fn final_as_is(&mut self, now: SimTime, out: &mut Vec<ResolverAction>) {
        if self.tried_as_is || self.root_on_list {
            self.give_up(now, out);
        } else {
            self.phase = Phase::AsIsLast;
            self.tried_as_is = true;
            let name = self.plan.as_is.clone();
            self.start_name(now, name, out);
        }
    }

    fn give_up(&mut self, now: SimTime, out: &mut Vec<ResolverAction>) {
        let herrno = if let Some(h) = self.saved_herrno {
            h
        } else if self.got_nodata {
            HErrno::NoData
        } else if self.got_servfail {
            HErrno::TryAgain
        } else {
            self.last_herrno
        };
        self.finish(now, herrno.outcome(), None, out);
    }

    fn finish(
        &mut self,
        now: SimTime,
        outcome: LookupOutcome,
        answered_name: Option<Arc<str>>,
        out: &mut Vec<ResolverAction>,
    ) {
        if let Some(t) = self.live_timer.take() {
            out.push(ResolverAction::CancelTimer { token: t });
        }
        self.cur = None;
        self.phase = Phase::Finished;
        out.push(ResolverAction::Done(LookupResult {
            outcome,
            started: self.started,
            finished: now,
            answered_name,
            queries: self.counts,
            names_tried: self.names_tried,
        }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sim_core::{Engine, EventId};
    use std::collections::HashMap;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn k8s(search_len: usize, ndots: u8) -> ResolvConf {
        let cloud = ["ec2.internal", "c.proj.internal", "google.internal"];
        let mut c = ResolvConf::kubernetes_pod("prod", ip("10.96.0.10"), &cloud[..search_len - 3]);
        c.ndots = ndots;
        c
    }

    /// Names that exist in the tests' world.
    fn exists(n: &str) -> bool {
        matches!(n, "api.stripe.com" | "checkout.prod.svc.cluster.local")
    }

    /// One sent query as the fake network saw it.
    #[derive(Clone, Debug)]
    struct Sent {
        at: SimTime,
        name: Arc<str>,
        qtype: QType,
        server: IpAddr,
        socket: SocketId,
    }

    #[derive(Clone, Copy)]
    enum Ev {
        Reply(QueryId, Reply),
        Unreachable(QueryId),
        Timer(TimerToken),
    }

    /// What the fake network does with a query: `None` loses it.
    enum Fate {
        Reply(SimDuration, Reply),
        Unreachable(SimDuration),
        Lost,
    }

    /// Runs one lookup against `net`, which sees each query with the number
    /// of earlier queries of the same name and type.
    fn run(
        mut lookup: Lookup,
        mut net: impl FnMut(&Sent, u32) -> Fate,
    ) -> (LookupResult, Vec<Sent>) {
        let mut eng: Engine<Ev> = Engine::new();
        let mut timers: HashMap<TimerToken, EventId> = HashMap::new();
        let mut sent: Vec<Sent> = Vec::new();
        let mut result = None;
        let mut actions = lookup.start(SimTime::ZERO);
        loop {
            for a in actions.drain(..) {
                match a {
                    ResolverAction::Send {
                        query_id,
                        name,
                        qtype,
                        server,
                        socket,
                    } => {
                        let s = Sent {
                            at: eng.now(),
                            name,
                            qtype,
                            server,
                            socket,
                        };
                        let seen = sent
                            .iter()
                            .filter(|x| x.name == s.name && x.qtype == s.qtype)
                            .count() as u32;
                        match net(&s, seen) {
                            Fate::Reply(d, r) => {
                                eng.schedule_in(d, Ev::Reply(query_id, r));
                            }
                            Fate::Unreachable(d) => {
                                eng.schedule_in(d, Ev::Unreachable(query_id));
                            }
                            Fate::Lost => {}
                        }
                        sent.push(s);
                    }
                    ResolverAction::SetTimer { at, token } => {
                        timers.insert(token, eng.schedule_at(at, Ev::Timer(token)));
                    }
                    ResolverAction::CancelTimer { token } => {
                        if let Some(id) = timers.remove(&token) {
                            eng.cancel(id);
                        }
                    }
                    ResolverAction::Done(r) => {
                        assert!(result.is_none(), "two results");
                        assert!(timers.is_empty(), "no timer left behind");
                        result = Some(r);
                    }
                }
            }
            let Some(ev) = eng.next_until(SimTime::ZERO + SimDuration::from_secs(3600)) else {
                break;
            };
            let now = eng.now();
            actions = match ev {
                Ev::Reply(q, r) => lookup.on_reply(now, q, r),
                Ev::Unreachable(q) => lookup.on_unreachable(now, q),
                Ev::Timer(t) => {
                    timers.remove(&t);
                    lookup.on_timer(now, t)
                }
            };
        }
        (result.expect("the lookup ended"), sent)
    }

    const RTT: SimDuration = SimDuration::from_micros(500);

    /// A prompt, loss-free server answering from `exists`.
    fn prompt(s: &Sent, _: u32) -> Fate {
        Fate::Reply(
            RTT,
            if exists(&s.name) {
                Reply::answer(1)
            } else {
                Reply::NXDOMAIN
            },
        )
    }

    fn secs(s: u64) -> SimDuration {
        SimDuration::from_secs(s)
    }

    #[test]
    fn names_tried_follow_ndots_and_the_search_list() {
        let c = k8s(3, 5);
        assert_eq!(
            candidates("api.stripe.com", &c).unwrap(),
            [
                "api.stripe.com.prod.svc.cluster.local",
                "api.stripe.com.svc.cluster.local",
                "api.stripe.com.cluster.local",
                "api.stripe.com",
            ]
        );
        assert_eq!(
            candidates("checkout.prod.svc.cluster.local.", &c).unwrap(),
            ["checkout.prod.svc.cluster.local"]
        );
        // Enough dots: as-is first, then the search list.
        let c1 = k8s(3, 1);
        assert_eq!(
            candidates("api.stripe.com", &c1).unwrap(),
            [
                "api.stripe.com",
                "api.stripe.com.prod.svc.cluster.local",
                "api.stripe.com.svc.cluster.local",
                "api.stripe.com.cluster.local",
            ]
        );
        // A single label is searched, then tried as a top-level name.
        assert_eq!(
            candidates("checkout", &c).unwrap().last().unwrap(),
            "checkout"
        );
        // The root on the search list stands for the as-is query.
        let mut r = k8s(3, 5);
        r.search.insert(1, ".".into());
        assert_eq!(
            candidates("db", &r).unwrap(),
            [
                "db.prod.svc.cluster.local",
                "db",
                "db.svc.cluster.local",
                "db.cluster.local"
            ]
        );
    }

    #[test]
    fn amplification_table() {
        // Queries per lookup, by name, ndots (rows 1..=5) and search-list
        // length (columns 3..=6), A only. The rule: a name with fewer dots
        // than ndots walks the whole search list (NXDOMAIN each) and then
        // the name as-is: search_len + 1 queries; otherwise one query.
        // A and AAAA: twice as many.
        let table = |name: &str, q: QueryTypes| -> Vec<Vec<u32>> {
            (1..=5u8)
                .map(|nd| {
                    (3..=6usize)
                        .map(|len| {
                            count_queries(name, &k8s(len, nd), q, exists)
                                .unwrap()
                                .total()
                        })
                        .collect()
                })
                .collect()
        };
        let ext = table("api.stripe.com", QueryTypes::AOnly);
        println!("api.stripe.com, A only (rows ndots 1..5, columns search 3..6): {ext:?}");
        assert_eq!(
            ext,
            [
                [1, 1, 1, 1],
                [1, 1, 1, 1],
                [4, 5, 6, 7],
                [4, 5, 6, 7],
                [4, 5, 6, 7]
            ]
        );
        let ext2 = table("api.stripe.com", QueryTypes::AAndAaaa);
        println!("api.stripe.com, A+AAAA: {ext2:?}");
        assert_eq!(ext2[4], [8, 10, 12, 14]);
        assert_eq!(ext2[0], [2, 2, 2, 2]);
        // A short cluster name answers at the first search domain.
        assert_eq!(table("checkout", QueryTypes::AOnly), vec![vec![1; 4]; 5]);
        // The FQDN without its dot has 4 dots: fine up to ndots:4, the whole walk at 5.
        let fq = table("checkout.prod.svc.cluster.local", QueryTypes::AOnly);
        println!("checkout.prod.svc.cluster.local, A only: {fq:?}");
        assert_eq!(fq[3], [1, 1, 1, 1]);
        assert_eq!(fq[4], [4, 5, 6, 7]);
        // With its trailing dot: always one query.
        assert_eq!(
            table("checkout.prod.svc.cluster.local.", QueryTypes::AAndAaaa),
            vec![vec![2; 4]; 5]
        );
        // Scaling_CoreDNS.md: search list of 4, ndots:5 -> "a single client
        // query actually generates 5 backend queries"; Zalando: 10 with AAAA.
        assert_eq!(ext[4][1], 5);
        assert_eq!(ext2[4][1], 10);
    }

    #[test]
    fn story_fifty_thousand_wasted_queries() {
        // "1,000 pods making 10 external DNS queries/second generates 50,000
        // wasted queries/second": 10,000 lookups/s x 5 wasted each.
        let lookups_per_s = 1_000 * 10;
        let wasted = |len: usize, q: QueryTypes| {
            let c = count_queries("api.stripe.com", &k8s(len, 5), q, exists).unwrap();
            (c.total() - if q == QueryTypes::AOnly { 1 } else { 2 }) * lookups_per_s
        };
        let total = |len: usize| {
            count_queries("api.stripe.com", &k8s(len, 5), QueryTypes::AOnly, exists)
                .unwrap()
                .total()
                * lookups_per_s
        };
        println!(
            "wasted/s, A only: 3 domains {}, 4 domains {}, 5 domains {}; A+AAAA 3 domains {}",
            wasted(3, QueryTypes::AOnly),
            wasted(4, QueryTypes::AOnly),
            wasted(5, QueryTypes::AOnly),
            wasted(3, QueryTypes::AAndAaaa)
        );
        // Exactly 50,000 wasted: A only with 5 search domains (3 cluster + 2
        // from the node, as on GCE); or 50,000 *total* with the 4 domains of
        // the CoreDNS benchmark (40,000 of them wasted).
        assert_eq!(wasted(5, QueryTypes::AOnly), 50_000);
        assert_eq!(total(4), 50_000);
        assert_eq!(wasted(4, QueryTypes::AOnly), 40_000);
        assert_eq!(wasted(3, QueryTypes::AAndAaaa), 60_000);
    }

    #[test]
    fn state_machine_matches_the_pure_count() {
        for nd in 1..=5 {
            for len in 3..=6 {
                for q in [QueryTypes::AOnly, QueryTypes::AAndAaaa] {
                    for name in [
                        "api.stripe.com",
                        "checkout",
                        "checkout.prod.svc.cluster.local",
                        "nope.example",
                    ] {
                        let c = k8s(len, nd);
                        let (r, sent) = run(Lookup::new(&c, name, q).unwrap(), prompt);
                        let want = count_queries(name, &c, q, exists).unwrap();
                        assert_eq!(r.queries, want, "{name} ndots {nd} search {len}");
                        assert_eq!(sent.len() as u32, want.total());
                        let names = candidates(name, &c).unwrap();
                        assert_eq!(
                            r.names_tried as usize,
                            names
                                .iter()
                                .position(|n| exists(n))
                                .map_or(names.len(), |i| i + 1)
                        );
                        if name == "nope.example" {
                            assert_eq!(r.outcome, LookupOutcome::NotFound);
                            assert_eq!(r.outcome.to_string(), "Name or service not known");
                        } else {
                            assert!(matches!(r.outcome, LookupOutcome::Answered { a: 1, .. }));
                            // Each name costs one round trip.
                            assert_eq!(r.latency(), RTT.saturating_mul(u64::from(r.names_tried)));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn silent_server_timeline_follows_send_dg() {
        let silent = |_: &Sent, _: u32| Fate::Lost;
        let mut one = ResolvConf::glibc_default(vec![ip("10.96.0.10")]);
        one.search = vec!["prod.svc.cluster.local".into()];
        // Absolute name, one nameserver: 5 s x 2 attempts.
        let (r, sent) = run(
            Lookup::new(&one, "db.prod.svc.cluster.local.", QueryTypes::AAndAaaa).unwrap(),
            silent,
        );
        assert_eq!(r.latency(), secs(10));
        assert_eq!(r.outcome, LookupOutcome::TryAgain);
        assert_eq!(
            r.outcome.to_string(),
            "Temporary failure in name resolution"
        );
        assert_eq!((r.queries.a, r.queries.aaaa), (2, 2));
        let times: Vec<u64> = sent
            .iter()
            .map(|s| s.at.as_nanos() / 1_000_000_000)
            .collect();
        assert_eq!(times, [0, 0, 5, 5]);
        // Both tries on the same socket: a late reply to try 1 would count.
        assert!(sent.iter().all(|s| s.socket == sent[0].socket));

        // Two nameservers: 5 s each ((5 << 1) / 2 for the second), two tries: 20 s.
        let mut two = one.clone();
        two.nameservers.push(ip("10.96.0.11"));
        assert_eq!(two.exchange_timeout(1), secs(5));
        let (r, sent) = run(
            Lookup::new(&two, "db.prod.svc.cluster.local.", QueryTypes::AOnly).unwrap(),
            silent,
        );
        assert_eq!(r.latency(), secs(20));
        let order: Vec<(u64, IpAddr)> = sent
            .iter()
            .map(|s| (s.at.as_nanos() / 1_000_000_000, s.server))
            .collect();
        assert_eq!(
            order,
            [
                (0, ip("10.96.0.10")),
                (5, ip("10.96.0.11")),
                (10, ip("10.96.0.10")),
                (15, ip("10.96.0.11"))
            ]
        );
        // Three nameservers: 5, 10/3 = 3, 20/3 = 6 s per try: 28 s.
        let mut three = two.clone();
        three.nameservers.push(ip("10.96.0.12"));
        let (r, _) = run(
            Lookup::new(&three, "db.prod.svc.cluster.local.", QueryTypes::AOnly).unwrap(),
            silent,
        );
        assert_eq!(r.latency(), secs(28));

        // A relative name: the timeout on the first search name ends the
        // search walk, but glibc still tries the name as-is: 2 x 10 s.
        let k = k8s(3, 5);
        let (r, sent) = run(
            Lookup::new(&k, "api.stripe.com", QueryTypes::AOnly).unwrap(),
            silent,
        );
        assert_eq!(r.latency(), secs(20));
        assert_eq!(r.outcome, LookupOutcome::TryAgain);
        let names: Vec<&str> = sent.iter().map(|s| &*s.name).collect();
        assert_eq!(
            names,
            [
                "api.stripe.com.prod.svc.cluster.local",
                "api.stripe.com.prod.svc.cluster.local",
                "api.stripe.com",
                "api.stripe.com"
            ]
        );
        // Enough dots (ndots:1): as-is, then the first search name, 20 s.
        let (r, _) = run(
            Lookup::new(&k8s(3, 1), "api.stripe.com", QueryTypes::AOnly).unwrap(),
            silent,
        );
        assert_eq!(r.latency(), secs(20));
    }

    #[test]
    fn lost_aaaa_reply_costs_five_seconds_in_parallel_mode() {
        let c = ResolvConf::kubernetes_pod("prod", ip("10.96.0.10"), &[]);
        let name = "checkout.prod.svc.cluster.local.";
        let (base, _) = run(Lookup::new(&c, name, QueryTypes::AAndAaaa).unwrap(), prompt);
        assert_eq!(base.latency(), RTT);
        // The first AAAA reply is lost (the conntrack insert race).
        let race = |s: &Sent, seen: u32| {
            if s.qtype == QType::Aaaa && seen == 0 {
                Fate::Lost
            } else {
                Fate::Reply(RTT, Reply::answer(1))
            }
        };
        let mut lookup = Lookup::new(&c, name, QueryTypes::AAndAaaa).unwrap();
        let first = lookup.start(SimTime::ZERO);
        let sockets: Vec<SocketId> = first
            .iter()
            .filter_map(|a| match a {
                ResolverAction::Send { socket, .. } => Some(*socket),
                _ => None,
            })
            .collect();
        assert_eq!(sockets.len(), 2, "A and AAAA leave together");
        assert_eq!(
            sockets[0], sockets[1],
            "on one socket: the race's precondition"
        );
        let (r, sent) = run(Lookup::new(&c, name, QueryTypes::AAndAaaa).unwrap(), race);
        // Timeout, then A and AAAA one after the other on the same socket.
        assert_eq!(r.latency(), secs(5) + RTT + RTT);
        assert_eq!(
            r.latency().as_nanos() - base.latency().as_nanos(),
            (secs(5) + RTT).as_nanos()
        );
        assert_eq!(r.outcome, LookupOutcome::Answered { a: 1, aaaa: 1 });
        assert_eq!((r.queries.a, r.queries.aaaa), (2, 2));
        assert!(sent.iter().all(|s| s.socket == sent[0].socket));
        assert_eq!(
            sent[3].at,
            SimTime::ZERO + secs(5) + RTT,
            "AAAA waits for A's reply"
        );
    }

    #[test]
    fn single_request_modes_recover_differently() {
        let name = "checkout.prod.svc.cluster.local.";
        let mut reopen = ResolvConf::kubernetes_pod("prod", ip("10.96.0.10"), &[]);
        reopen.single_request_reopen = true;
        // No loss: A, then AAAA from a new socket once A is answered.
        let (r, sent) = run(
            Lookup::new(&reopen, name, QueryTypes::AAndAaaa).unwrap(),
            prompt,
        );
        assert_eq!(r.latency(), RTT + RTT);
        assert_ne!(sent[0].socket, sent[1].socket, "new source port for AAAA");
        assert_eq!(
            sent[1].at,
            SimTime::ZERO + RTT,
            "never two queries in flight"
        );
        // A lost AAAA reply anyway (not the race: plain loss): no retry; at
        // the timeout the lookup returns the A answer alone.
        let lose_aaaa = |s: &Sent, _: u32| {
            if s.qtype == QType::Aaaa {
                Fate::Lost
            } else {
                Fate::Reply(RTT, Reply::answer(1))
            }
        };
        let (r, _) = run(
            Lookup::new(&reopen, name, QueryTypes::AAndAaaa).unwrap(),
            lose_aaaa,
        );
        assert_eq!(r.latency(), secs(5));
        assert_eq!(r.outcome, LookupOutcome::Answered { a: 1, aaaa: 0 });
        assert_eq!((r.queries.a, r.queries.aaaa), (1, 1));

        // single-request: same socket; a lost AAAA reply switches to reopen
        // and redoes both from a new socket: 5 s + 2 RTT, both answers.
        let mut single = reopen.clone();
        single.single_request_reopen = false;
        single.single_request = true;
        let once = |s: &Sent, seen: u32| {
            if s.qtype == QType::Aaaa && seen == 0 {
                Fate::Lost
            } else {
                Fate::Reply(RTT, Reply::answer(1))
            }
        };
        let (r, sent) = run(
            Lookup::new(&single, name, QueryTypes::AAndAaaa).unwrap(),
            once,
        );
        assert_eq!(r.latency(), secs(5) + RTT + RTT);
        assert_eq!(r.outcome, LookupOutcome::Answered { a: 1, aaaa: 1 });
        assert_eq!(sent[0].socket, sent[1].socket);
        assert_ne!(sent[2].socket, sent[0].socket);
        assert_ne!(sent[3].socket, sent[2].socket);

        // Default mode, AAAA always lost: single-request at 5 s, reopen at
        // 10 s, then the A answer alone at 15 s.
        let c = ResolvConf::kubernetes_pod("prod", ip("10.96.0.10"), &[]);
        let (r, _) = run(
            Lookup::new(&c, name, QueryTypes::AAndAaaa).unwrap(),
            lose_aaaa,
        );
        assert_eq!(r.latency(), secs(15));
        assert_eq!(r.outcome, LookupOutcome::Answered { a: 1, aaaa: 0 });
    }

    #[test]
    fn fallback_is_reported_for_the_thread() {
        let c = ResolvConf::kubernetes_pod("prod", ip("10.96.0.10"), &[]);
        let name = "checkout.prod.svc.cluster.local.";
        let mut l = Lookup::new(&c, name, QueryTypes::AAndAaaa).unwrap();
        let acts = l.start(SimTime::ZERO);
        let (mut a, mut timer) = (None, None);
        for x in &acts {
            match x {
                ResolverAction::Send {
                    query_id,
                    qtype: QType::A,
                    ..
                } => a = Some(*query_id),
                ResolverAction::SetTimer { token, .. } => timer = Some(*token),
                _ => {}
            }
        }
        let t = SimTime::ZERO + RTT;
        assert!(l.on_reply(t, a.unwrap(), Reply::answer(1)).is_empty());
        let acts = l.on_timer(SimTime::ZERO + secs(5), timer.unwrap());
        assert!(l.fell_back_to_single_request());
        // Only A is resent; AAAA follows its reply.
        let sends = acts
            .iter()
            .filter(|x| matches!(x, ResolverAction::Send { .. }))
            .count();
        assert_eq!(sends, 1);
    }

    #[test]
    fn servfail_skips_to_next_server_and_search_domain() {
        // SERVFAIL on every query: each name is sent attempts x servers
        // times at once, the walk goes on (got_servfail), result EAI_AGAIN.
        let c = k8s(3, 5);
        let (r, sent) = run(
            Lookup::new(&c, "api.stripe.com", QueryTypes::AOnly).unwrap(),
            |_, _| Fate::Reply(RTT, Reply::SERVFAIL),
        );
        assert_eq!(r.outcome, LookupOutcome::TryAgain);
        assert_eq!(sent.len(), 4 * 2);
        assert_eq!(r.latency(), RTT.saturating_mul(8));
        // A-only SERVFAIL closes the socket: the second try uses a new one.
        assert_ne!(sent[0].socket, sent[1].socket);
        // With A and AAAA, both SERVFAIL: next try on the same socket.
        let (r, sent) = run(
            Lookup::new(&c, "api.stripe.com", QueryTypes::AAndAaaa).unwrap(),
            |_, _| Fate::Reply(RTT, Reply::SERVFAIL),
        );
        assert_eq!(r.queries.total(), 16);
        assert_eq!(sent[0].socket, sent[2].socket);
        // SERVFAIL for the search names, then an answer as-is.
        let (r, _) = run(
            Lookup::new(&c, "api.stripe.com", QueryTypes::AOnly).unwrap(),
            |s, _| {
                if &*s.name == "api.stripe.com" {
                    Fate::Reply(RTT, Reply::answer(2))
                } else {
                    Fate::Reply(RTT, Reply::SERVFAIL)
                }
            },
        );
        assert_eq!(r.outcome, LookupOutcome::Answered { a: 2, aaaa: 0 });
        assert_eq!(r.answered_name.as_deref(), Some("api.stripe.com"));
        // REFUSED is retried like SERVFAIL but, not being SERVFAIL, ends the
        // walk; the as-is query still goes out. res_send fails: EAI_AGAIN.
        let (r, sent) = run(
            Lookup::new(&c, "api.stripe.com", QueryTypes::AOnly).unwrap(),
            |_, _| {
                Fate::Reply(
                    RTT,
                    Reply {
                        rcode: Rcode::Refused,
                        answers: 0,
                    },
                )
            },
        );
        assert_eq!(r.outcome, LookupOutcome::TryAgain);
        assert_eq!(
            sent.len(),
            4,
            "2 tries of the first search name, 2 of the name as-is"
        );
        // FORMERR is a final answer for the name: NO_RECOVERY, walk over, then as-is.
        let (r, sent) = run(
            Lookup::new(&c, "api.stripe.com", QueryTypes::AOnly).unwrap(),
            |_, _| {
                Fate::Reply(
                    RTT,
                    Reply {
                        rcode: Rcode::FormErr,
                        answers: 0,
                    },
                )
            },
        );
        assert_eq!(r.outcome, LookupOutcome::NoRecovery);
        assert_eq!(
            r.outcome.to_string(),
            "Non-recoverable failure in name resolution"
        );
        assert_eq!(sent.len(), 2);
        // NODATA everywhere: EAI_NODATA.
        let (r, _) = run(
            Lookup::new(&c, "api.stripe.com", QueryTypes::AOnly).unwrap(),
            |_, _| Fate::Reply(RTT, Reply::NODATA),
        );
        assert_eq!(r.outcome, LookupOutcome::NoData);
    }

    #[test]
    fn single_request_servfail_waits_for_the_timeout() {
        let mut c = ResolvConf::kubernetes_pod("prod", ip("10.96.0.10"), &[]);
        c.single_request = true;
        let (r, sent) = run(
            Lookup::new(&c, "x.example.", QueryTypes::AAndAaaa).unwrap(),
            |_, _| Fate::Reply(RTT, Reply::SERVFAIL),
        );
        // A only, each try waits out its 5 s for an AAAA never sent.
        assert_eq!(r.latency(), secs(10));
        assert_eq!((r.queries.a, r.queries.aaaa), (2, 0));
        assert_eq!(sent.len(), 2);
    }

    #[test]
    fn no_server_listening_fails_fast() {
        // Every query draws an ICMP port unreachable (a Service without
        // endpoints: kube-proxy REJECTs): ECONNREFUSED ends the lookup at the
        // first search name, in microseconds, with EAI_AGAIN.
        let c = k8s(3, 5);
        let (r, sent) = run(
            Lookup::new(&c, "api.stripe.com", QueryTypes::AAndAaaa).unwrap(),
            |_, _| Fate::Unreachable(RTT),
        );
        assert_eq!(r.outcome, LookupOutcome::TryAgain);
        assert_eq!(r.latency(), RTT.saturating_mul(2));
        assert_eq!(r.names_tried, 1);
        assert_eq!(sent.len(), 4);
    }

    #[test]
    fn late_reply_is_accepted_in_the_next_try() {
        // The server answers after 6 s: try 1 times out at 5 s, try 2 goes
        // out on the same socket, and try 1's answer ends the lookup at 6 s.
        let c = ResolvConf::glibc_default(vec![ip("10.96.0.10")]);
        let (r, sent) = run(
            Lookup::new(&c, "slow.example.", QueryTypes::AOnly).unwrap(),
            |s, _| {
                if s.at == SimTime::ZERO {
                    Fate::Reply(secs(6), Reply::answer(1))
                } else {
                    Fate::Lost
                }
            },
        );
        assert_eq!(r.latency(), secs(6));
        assert_eq!(r.outcome, LookupOutcome::Answered { a: 1, aaaa: 0 });
        assert_eq!(sent.len(), 2);
        // With two nameservers, the reply waits in socket 0 while socket 1
        // is polled, and is read when try 2 comes back to server 0.
        let mut two = c.clone();
        two.nameservers.push(ip("10.96.0.11"));
        let (r, sent) = run(
            Lookup::new(&two, "slow.example.", QueryTypes::AOnly).unwrap(),
            |s, _| {
                if s.at == SimTime::ZERO {
                    Fate::Reply(secs(6), Reply::answer(1))
                } else {
                    Fate::Lost
                }
            },
        );
        assert_eq!(r.latency(), secs(10));
        assert_eq!(sent.len(), 3);
    }

    #[test]
    fn rotate_starts_each_name_one_server_further() {
        let mut c = k8s(3, 5);
        c.nameservers = vec![ip("10.0.0.1"), ip("10.0.0.2")];
        c.rotate = true;
        let (_, sent) = run(
            Lookup::new(&c, "api.stripe.com", QueryTypes::AOnly)
                .unwrap()
                .rotation_offset(1),
            prompt,
        );
        let servers: Vec<IpAddr> = sent.iter().map(|s| s.server).collect();
        assert_eq!(
            servers,
            [
                ip("10.0.0.2"),
                ip("10.0.0.1"),
                ip("10.0.0.2"),
                ip("10.0.0.1")
            ]
        );
    }

    #[test]
    fn bad_configuration_and_names_are_errors() {
        let mut c = ResolvConf::glibc_default(vec![]);
        assert_eq!(c.validate(), Err(ResolvConfError::NoNameserver));
        c.nameservers = vec![ip("10.0.0.1"); 4];
        assert_eq!(c.validate(), Err(ResolvConfError::TooManyNameservers(4)));
        c.nameservers.truncate(1);
        c.timeout = SimDuration::from_millis(1500);
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("whole number of seconds"));
        c.timeout = secs(31);
        assert!(c.validate().is_err());
        c.timeout = secs(5);
        c.attempts = 0;
        assert_eq!(c.validate(), Err(ResolvConfError::Attempts(0)));
        c.attempts = 2;
        c.ndots = 16;
        assert_eq!(c.validate(), Err(ResolvConfError::Ndots(16)));
        c.ndots = 1;
        c.search = vec!["bad..domain".into()];
        assert!(matches!(
            c.validate(),
            Err(ResolvConfError::SearchDomain(_))
        ));
        c.search.clear();
        for bad in ["", ".", "a..b", ".lead", "has space.com"] {
            assert!(
                matches!(
                    Lookup::new(&c, bad, QueryTypes::AOnly),
                    Err(LookupError::Name { .. })
                ),
                "{bad:?}"
            );
        }
        let long = "a".repeat(64);
        assert!(Lookup::new(&c, &long, QueryTypes::AOnly).is_err());
        // Unknown ids and stale tokens are ignored, not panics.
        let mut l = Lookup::new(&c, "x.example", QueryTypes::AOnly).unwrap();
        assert!(l
            .on_reply(SimTime::ZERO, QueryId(99), Reply::NXDOMAIN)
            .is_empty());
        assert!(l.on_timer(SimTime::ZERO, TimerToken(7)).is_empty());
        assert!(l.on_unreachable(SimTime::ZERO, QueryId(3)).is_empty());
        assert!(!l.start(SimTime::ZERO).is_empty());
        assert!(
            l.start(SimTime::ZERO).is_empty(),
            "starting twice does nothing"
        );
    }
}
