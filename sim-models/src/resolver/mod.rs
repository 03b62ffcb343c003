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
//! resolver state for later lookups: [`Lookup::thread_state`] hands it to
//! the caller, who passes it to the thread's next lookup with
//! [`Lookup::in_thread`] (cluster runs keep it per client thread). musl (Alpine images) queries all nameservers in parallel and is not
//! modelled.
//!
//! ## Parameters
//! [`ResolvConf`], from resolv.conf(5) and docs/calibration.md, row
//! `dns-glibc-resolver` (conf H): `timeout` 5 s (`RES_TIMEOUT`, at most 30), `attempts`
//! 2 (`RES_DFLRETRY`, at most 5), `ndots` 1 (at most 15), at most 3
//! nameservers (`MAXNS`). A Kubernetes pod with `dnsPolicy: ClusterFirst`
//! ([`ResolvConf::kubernetes_pod`]) gets the cluster DNS Service as its only
//! nameserver, `search <ns>.svc.cluster.local svc.cluster.local
//! cluster.local` plus the node's own search domains, and `ndots:5`
//! (docs/calibration.md, row `dns-pod-resolv-conf`: 3-4 search domains).
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
//! states; 10 with AAAA, Zalando's figure: validation, the walk is glibc's,
//! not fitted to them, docs/calibration.md, row `dns-ndots-amplification`);
//! the story's "1,000 pods x 10
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
    /// Which glibc reads this file: how a SERVFAIL in the one-at-a-time
    /// modes is handled.
    pub glibc: GlibcVersion,
}

/// The glibc generation whose `send_dg` a pod runs: they differ in what a
/// SERVFAIL, REFUSED or NOTIMP reply to the A query does in the
/// one-at-a-time modes (`single-request`, `single-request-reopen`, or the
/// thread's fallback to them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GlibcVersion {
    /// The older `send_dg`: the rejected A query leaves the exchange
    /// waiting, until its timeout, for the AAAA reply it never asked for
    /// (`recvresp1 = 1; goto wait` with `buf2` set). The incidents of
    /// 2017-2020 ran on it.
    Legacy,
    /// Today's glibc, with the fix of sourceware bug 30081 (glibc's test
    /// `Test parallel failure/success responses (bug 30081)` is dated 2024;
    /// the first release carrying it was not confirmed), as measured on
    /// Debian 2.36-9+deb12u14
    /// (validation/glibc/recordings/servfail_single_request*.json): the
    /// rejected A query closes the socket and moves to the next nameserver
    /// or try at once, without sending the AAAA query; a lookup against a
    /// server answering SERVFAIL to everything returns in milliseconds
    /// (docs/calibration.md, row `dns-glibc-servfail-one-at-a-time`).
    #[default]
    Current,
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
            glibc: GlibcVersion::Current,
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

/// What glibc keeps between the lookups of one thread: the per-thread
/// resolver state (`_res`) carries the `single-request` switches a timeout
/// with one reply turned on (docs/calibration.md, row
/// `dns-glibc-thread-fallback`). The default is a fresh thread.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThreadState {
    /// `RES_SNGLKUP`: A, then AAAA.
    pub single_request: bool,
    /// `RES_SNGLKUPREOP`: A, then AAAA from a new socket.
    pub single_request_reopen: bool,
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
    glibc: GlibcVersion,
    two: bool,
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
            glibc: conf.glibc,
            two: qtypes == QueryTypes::AAndAaaa,
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
            self.begin_round(now, ns, socket, &mut out);
        } else if !self.reopen {
            // Still one reply: a new socket before each second query (RES_SNGLKUPREOP).
            self.reopen = true;
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

    /// The calling thread's resolver state after this lookup (glibc's
    /// `_res.options` of the thread): the `single-request` and
    /// `single-request-reopen` switches a timeout with one reply turned on
    /// stay for every later lookup of the thread (`send_dg` sets
    /// `RES_SNGLKUP` / `RES_SNGLKUPREOP` in `statp->options`, which is the
    /// thread's `_res`). Pass it to [`Lookup::in_thread`] for the thread's
    /// next lookup.
    pub fn thread_state(&self) -> ThreadState {
        ThreadState {
            single_request: self.single_request,
            single_request_reopen: self.reopen,
        }
    }

    /// This lookup runs in a thread whose resolver state is `thread` (from
    /// an earlier lookup's [`Lookup::thread_state`]): its switches add to
    /// resolv.conf's options.
    pub fn in_thread(mut self, thread: ThreadState) -> Lookup {
        self.single_request |= thread.single_request || thread.single_request_reopen;
        self.reopen |= thread.single_request_reopen;
        self
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
            // One at a time, the AAAA query is not sent yet: today's glibc
            // gives up on this server at once, the older one waits.
            let alone = self.single_request && self.glibc == GlibcVersion::Current;
            if two && !alone {
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
mod tests;
