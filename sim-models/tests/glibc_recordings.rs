//! The resolver model against the real glibc: every case recorded by
//! `validation/glibc/record.py` (resolv.conf, scripted server, lookups in
//! one thread) is replayed through [`Lookup`] with the same server script,
//! and the model must send the same queries and take the same time.
//!
//! Held exactly: per lookup, the sequence of queries (name, type,
//! nameserver, and which socket, as the order in which source ports first
//! appear) and the outcome (`gai_strerror` text, or whether A and AAAA
//! records came back). Held within [`TOLERANCE`]: each query's time from its
//! lookup's first query, and each lookup's duration from its first query to
//! its return. The recordings measure from the first query because the
//! first lookup of a process spends 0.1-7 ms loading NSS modules before it
//! (the server stamps packets with the kernel's receive time,
//! SO_TIMESTAMPNS). The tolerance is 10 ms plus 0.5% of the time measured:
//! every expired `poll` timeout in glibc overshoots, by 2.5-3 ms per 1 s
//! timeout here (the kernel's poll slack is 0.1% of the timeout,
//! fs/select.c `select_estimate_accuracy`, plus the wake-up on a busy
//! 2-core machine), which the model, counting exact seconds, does not
//! have. Both stay far below the resolver's whole-second timeouts, so any
//! timeout the model takes where glibc does not (or the other way) fails
//! the test.
//!
//! With `rotate`, glibc starts its process-wide nameserver counter at a
//! random value: the replay starts the counter at the nameserver the
//! recording's first query went to, then advances it by the names each
//! lookup tried.

use serde::Deserialize;
use sim_core::{SimDuration, SimTime};
use sim_models::resolver::{
    Lookup, LookupOutcome, QType, QueryTypes, Rcode, Reply, ResolvConf, ResolverAction, ThreadState,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;

/// Time tolerance: this many ms plus [`TOLERANCE_SHARE`] of the time
/// measured (see the module doc).
const TOLERANCE_MS: f64 = 10.0;
/// The share of the time measured added to [`TOLERANCE_MS`].
const TOLERANCE_SHARE: f64 = 0.005;

/// Whether a model time agrees with a recorded one.
fn agrees(model_ms: f64, glibc_ms: f64) -> bool {
    (model_ms - glibc_ms).abs() <= TOLERANCE_MS + TOLERANCE_SHARE * glibc_ms
}
/// One-way delay between client and server in the replay (veth, measured
/// round trips 0.1-0.4 ms) \[ns\].
const ONE_WAY_NS: u64 = 100_000;

#[derive(Deserialize)]
struct Recording {
    case: String,
    glibc: String,
    resolv_conf: String,
    script: Option<Vec<Rule>>,
    lookups: Vec<RecLookup>,
    queries: Vec<RecQuery>,
}

#[derive(Deserialize, Clone)]
struct Rule {
    qtype: Option<String>,
    name: Option<String>,
    action: String,
    count: Option<u32>,
    delay_ms: Option<f64>,
}

#[derive(Deserialize)]
struct RecLookup {
    name: String,
    family: String,
    start_ms: f64,
    duration_ms: f64,
    outcome: RecOutcome,
}

#[derive(Deserialize, Debug, PartialEq)]
#[serde(untagged)]
enum RecOutcome {
    Addresses { a: u32, aaaa: u32 },
    Error { error: String },
}

#[derive(Deserialize)]
struct RecQuery {
    t_ms: f64,
    name: String,
    qtype: String,
    server: String,
    src_port: u32,
}

/// What one lookup did, in the recording's terms.
#[derive(Debug, Default)]
struct Seen {
    /// (ms from the lookup's first query, name, type, server, socket index).
    queries: Vec<(f64, String, String, String, usize)>,
    /// ms from the first query to the return.
    duration_ms: f64,
    outcome: Option<RecOutcome>,
}

fn recordings() -> Vec<(PathBuf, Recording)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../validation/glibc/recordings");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let rec: Recording =
                serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, rec)
        })
        .collect()
}

/// resolv.conf as the harness writes it.
fn parse_conf(text: &str) -> ResolvConf {
    let mut conf = ResolvConf::glibc_default(Vec::new());
    for line in text.lines() {
        let mut w = line.split_whitespace();
        match w.next() {
            Some("nameserver") => conf.nameservers.push(w.next().unwrap().parse().unwrap()),
            Some("search") => conf.search = w.map(str::to_string).collect(),
            Some("options") => {
                for o in w {
                    let (k, v) = o.split_once(':').unwrap_or((o, ""));
                    match k {
                        "ndots" => conf.ndots = v.parse().unwrap(),
                        "timeout" => conf.timeout = SimDuration::from_secs(v.parse().unwrap()),
                        "attempts" => conf.attempts = v.parse().unwrap(),
                        "rotate" => conf.rotate = true,
                        "single-request" => conf.single_request = true,
                        "single-request-reopen" => conf.single_request_reopen = true,
                        other => panic!("option {other} not handled by the replay"),
                    }
                }
            }
            _ => {}
        }
    }
    conf
}

fn ms(from: SimTime, to: SimTime) -> f64 {
    (to - from).as_nanos() as f64 / 1e6
}

enum Ev {
    Reply(u64, Reply),
    Unreachable(u64),
    Timer(sim_models::resolver::TimerToken),
}

/// fakedns.py's rules, in Rust.
struct Server {
    rules: Option<Vec<Rule>>,
    used: Vec<u32>,
}

impl Server {
    /// The action and reply delay for a query.
    fn decide(&mut self, name: &str, qtype: QType) -> (String, u64) {
        let Some(rules) = &self.rules else {
            return ("unreachable".into(), 0);
        };
        let t = qtype.to_string();
        for (i, r) in rules.iter().enumerate() {
            if r.qtype.as_deref().is_some_and(|q| q != "*" && q != t) {
                continue;
            }
            if let Some(suffix) = r.name.as_deref().filter(|s| *s != "*") {
                if name != suffix && !name.ends_with(&format!(".{suffix}")) {
                    continue;
                }
            }
            if r.count.is_some_and(|c| self.used[i] >= c) {
                continue;
            }
            self.used[i] += 1;
            let delay = (r.delay_ms.unwrap_or(0.0) * 1e6) as u64;
            return (r.action.clone(), delay);
        }
        ("nxdomain".into(), 0)
    }
}

fn reply_for(action: &str) -> Reply {
    match action {
        "answer" => Reply::answer(1),
        "nodata" => Reply::NODATA,
        "nxdomain" => Reply::NXDOMAIN,
        "servfail" => Reply::SERVFAIL,
        "refused" => Reply {
            rcode: Rcode::Refused,
            answers: 0,
        },
        other => panic!("action {other}"),
    }
}

/// Runs the recording's lookups one after the other in one thread.
fn replay(rec: &Recording) -> Vec<Seen> {
    let conf = parse_conf(&rec.resolv_conf);
    let mut server = Server {
        used: vec![0; rec.script.as_ref().map_or(0, Vec::len)],
        rules: rec.script.clone(),
    };
    let mut thread = ThreadState::default();
    // glibc's process-wide rotate counter, started where the recording's was.
    let mut rotation = rec.queries.first().map_or(0, |q| {
        let first: IpAddr = q.server.parse().unwrap();
        conf.nameservers
            .iter()
            .position(|s| *s == first)
            .unwrap_or(0) as u32
    });
    let mut now = SimTime::ZERO;
    let mut out = Vec::new();
    for lk in &rec.lookups {
        let qtypes = match lk.family.as_str() {
            "INET" => QueryTypes::AOnly,
            "UNSPEC" => QueryTypes::AAndAaaa,
            f => panic!("family {f}"),
        };
        let mut lookup = Lookup::new(&conf, &lk.name, qtypes)
            .unwrap()
            .in_thread(thread)
            .rotation_offset(rotation);
        let mut heap: BinaryHeap<Reverse<(SimTime, u64)>> = BinaryHeap::new();
        let mut events: BTreeMap<u64, Ev> = BTreeMap::new();
        let mut seq = 0u64;
        // Replies held by the server: (socket, name) -> when sent.
        let mut pending: HashMap<(u32, String), SimTime> = HashMap::new();
        let mut sockets: Vec<u32> = Vec::new();
        let mut seen = Seen::default();
        let mut first: Option<SimTime> = None;
        let mut actions = lookup.start(now);
        loop {
            for a in std::mem::take(&mut actions) {
                match a {
                    ResolverAction::Send {
                        query_id,
                        name,
                        qtype,
                        server: ns,
                        socket,
                    } => {
                        let sent = now;
                        let arrive = sent + SimDuration::from_nanos(ONE_WAY_NS);
                        let first_t = *first.get_or_insert(arrive);
                        let idx =
                            sockets
                                .iter()
                                .position(|s| *s == socket.0)
                                .unwrap_or_else(|| {
                                    sockets.push(socket.0);
                                    sockets.len() - 1
                                });
                        seen.queries.push((
                            ms(first_t, arrive),
                            name.to_string(),
                            qtype.to_string(),
                            ns.to_string(),
                            idx,
                        ));
                        let (mut action, delay) = server.decide(&name, qtype);
                        let key = (socket.0, name.to_string());
                        if action == "drop_if_parallel" {
                            let parallel = pending.get(&key).is_some_and(|t| *t > arrive);
                            action = if parallel {
                                "drop".into()
                            } else {
                                "answer".into()
                            };
                        }
                        let back = arrive + SimDuration::from_nanos(delay);
                        let ev = match action.as_str() {
                            "drop" => None,
                            "unreachable" => Some(Ev::Unreachable(u64::from(query_id.0))),
                            a => {
                                pending.insert(key, back);
                                Some(Ev::Reply(u64::from(query_id.0), reply_for(a)))
                            }
                        };
                        if let Some(ev) = ev {
                            let at = back + SimDuration::from_nanos(ONE_WAY_NS);
                            heap.push(Reverse((at, seq)));
                            events.insert(seq, ev);
                            seq += 1;
                        }
                    }
                    ResolverAction::SetTimer { at, token } => {
                        heap.push(Reverse((at, seq)));
                        events.insert(seq, Ev::Timer(token));
                        seq += 1;
                    }
                    ResolverAction::CancelTimer { .. } => {}
                    ResolverAction::Done(r) => {
                        seen.duration_ms = ms(first.unwrap_or(r.started), r.finished);
                        seen.outcome = Some(match r.outcome {
                            LookupOutcome::Answered { a, aaaa } => RecOutcome::Addresses {
                                a: u32::from(a),
                                aaaa: u32::from(aaaa),
                            },
                            o => RecOutcome::Error {
                                error: o.to_string(),
                            },
                        });
                        rotation += r.names_tried;
                    }
                }
            }
            if seen.outcome.is_some() {
                break;
            }
            let Reverse((at, s)) = heap.pop().expect("the lookup ends");
            now = at;
            actions = match events.remove(&s).unwrap() {
                Ev::Reply(q, reply) => {
                    lookup.on_reply(now, sim_models::resolver::QueryId(q as u32), reply)
                }
                Ev::Unreachable(q) => {
                    lookup.on_unreachable(now, sim_models::resolver::QueryId(q as u32))
                }
                Ev::Timer(t) => lookup.on_timer(now, t),
            };
        }
        thread = lookup.thread_state();
        out.push(seen);
    }
    out
}

/// The recording, split by lookup, in [`Seen`] terms.
fn recorded(rec: &Recording) -> Vec<Seen> {
    let mut out = Vec::new();
    for (i, lk) in rec.lookups.iter().enumerate() {
        let end = lk.start_ms + lk.duration_ms;
        let next = rec.lookups.get(i + 1).map_or(f64::INFINITY, |n| n.start_ms);
        // The server logs a packet up to 0.4 ms late: a query belongs to the
        // lookup running when it was sent, before the next one started.
        let qs: Vec<&RecQuery> = rec
            .queries
            .iter()
            .filter(|q| q.t_ms >= lk.start_ms && q.t_ms < next.min(end + 0.5).max(end))
            .collect();
        let first = qs.first().map_or(lk.start_ms, |q| q.t_ms);
        let mut ports: Vec<u32> = Vec::new();
        let queries = qs
            .iter()
            .map(|q| {
                let idx = ports
                    .iter()
                    .position(|p| *p == q.src_port)
                    .unwrap_or_else(|| {
                        ports.push(q.src_port);
                        ports.len() - 1
                    });
                (
                    q.t_ms - first,
                    q.name.clone(),
                    q.qtype.clone(),
                    q.server.clone(),
                    idx,
                )
            })
            .collect();
        out.push(Seen {
            queries,
            duration_ms: end - first,
            outcome: Some(match &lk.outcome {
                RecOutcome::Addresses { a, aaaa } => RecOutcome::Addresses {
                    a: (*a).min(1),
                    aaaa: (*aaaa).min(1),
                },
                RecOutcome::Error { error } => RecOutcome::Error {
                    error: error.clone(),
                },
            }),
        });
    }
    out
}

/// Differences between model and recording, one line each.
fn compare(rec: &Recording) -> Vec<String> {
    let mut bad = Vec::new();
    let model = replay(rec);
    let real = recorded(rec);
    for (i, (m, r)) in model.iter().zip(&real).enumerate() {
        let key = |s: &Seen| -> Vec<(String, String, String, usize)> {
            s.queries
                .iter()
                .map(|q| (q.1.clone(), q.2.clone(), q.3.clone(), q.4))
                .collect()
        };
        let tag = format!("{} lookup {i} ({})", rec.case, rec.lookups[i].name);
        if key(m) != key(r) {
            bad.push(format!(
                "{tag}: queries\n  model {:?}\n  glibc {:?}",
                key(m),
                key(r)
            ));
            continue;
        }
        if m.outcome != r.outcome {
            bad.push(format!(
                "{tag}: outcome model {:?}, glibc {:?}",
                m.outcome, r.outcome
            ));
        }
        for (qm, qr) in m.queries.iter().zip(&r.queries) {
            if !agrees(qm.0, qr.0) {
                bad.push(format!(
                    "{tag}: {} {} at {:.1} ms, glibc {:.1} ms",
                    qm.2, qm.1, qm.0, qr.0
                ));
            }
        }
        if !agrees(m.duration_ms, r.duration_ms) {
            bad.push(format!(
                "{tag}: took {:.1} ms, glibc {:.1} ms",
                m.duration_ms, r.duration_ms
            ));
        }
    }
    bad
}

#[test]
fn the_model_agrees_with_every_glibc_recording() {
    let recs = recordings();
    assert!(recs.len() >= 10, "recordings missing");
    let mut bad = Vec::new();
    for (path, rec) in &recs {
        assert!(
            rec.glibc.contains("GLIBC"),
            "{}: no glibc version",
            path.display()
        );
        bad.extend(compare(rec));
    }
    assert!(
        bad.is_empty(),
        "{} disagreements:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
