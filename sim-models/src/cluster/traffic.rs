//! # Traffic: arrivals, retries, connections, servers, outcomes
//!
//! Connections are explicit ([`crate::connections`]): per traffic source,
//! a new connection per request, keep-alive pools, long-lived connections
//! pinned to the endpoint picked at connect time, or client-side
//! balancing. The Service's endpoint is picked per connection. When
//! [`ClusterConfig::conntrack`] is set, every new connection's SYN needs an
//! entry in the client node's conntrack table ([`crate::conntrack`]); a SYN
//! dropped there (`nf_conntrack: table full, dropping packet`, an event per
//! node) is retransmitted after 1 s, 3 s, 7 s... until the client's timeout
//! or `tcp_syn_retries`, and a closed connection leaves a TIME_WAIT entry.
//!
//!
//! Requests arrive as Poisson processes per source; each try resolves (unless
//! the application's cache answers), connects or reuses a connection, queues at
//! the server pod ([`crate::app`]) and ends in one [`crate::app::Outcome`]; the
//! application retries failed tries.
//!
//! ## How chains are bounded
//! A try can fail at the instant it begins (kube-dns has no endpoint, a
//! cached answer names a pod that is gone, the Service has no endpoint, the
//! server rejects it), and a request may have any number of retries. So no
//! follow-up of simulated work is a nested call: a failed try's retry is an
//! event (`Ev::Retry`) scheduled at the instant of the failure, begun after
//! the events already due then; a dropped SYN's retransmission
//! (`Ev::SynRetry`), a give-up (`Ev::ClientGiveUp`, `Ev::SynGiveUp`, ...)
//! and the first packet's arrival are events too; a broken pooled
//! connection is replaced in a loop, not a call. The stack depth of one event's handling is
//! therefore bounded by the model's code paths, whatever the counts
//! (`retries`, rates, replicas) in the file; a chain of 1,000 failing tries
//! at one instant is 1,000 events (sim-scenarios' `no_recursion` test runs
//! one on a 256 KiB stack).

use super::*;

/// An exponential variate with the given mean \[s\].
pub(crate) fn exponential(rng: &mut SimRng, mean_s: f64) -> SimDuration {
    let u: f64 = rng.random();
    SimDuration::from_secs_f64(-mean_s * (1.0 - u).ln())
}

impl Sim<'_> {
    pub(crate) fn schedule_arrival(&mut self, t: usize) {
        let tr = &mut self.traffic[t];
        if tr.rate > 0.0 {
            let gap = exponential(&mut tr.arrivals, 1.0 / tr.rate);
            tr.next = Some(self.engine.schedule_in(gap, Ev::Arrival(t as u32)));
        }
    }

    pub(crate) fn arrival(&mut self, t: usize) {
        let now = self.engine.now();
        let spec = &self.cfg.traffic[t];
        // Requests from a workload need a Ready pod of it to send them.
        let client = match spec.from {
            Some(w) => match self.deps[w].endpoints.pick(&mut self.traffic[t].pick) {
                // A pod on a stopped node (its zone failed, not yet
                // noticed) sends nothing.
                Some(c) if !self.pod_unreachable(c) => Some(c),
                _ => {
                    self.schedule_arrival(t);
                    return;
                }
            },
            None => None,
        };
        self.count_sent(t, now);
        self.next_request += 1;
        let path = self.draw_path(t);
        self.path_sent(t, path);
        let req = Request {
            source: t as u32,
            client: client.into(),
            id: self.next_request,
            attempt: 0,
            path,
            sent: now,
            deadline: now + spec.timeout,
            conn: OptU32::NONE,
        };
        self.begin_attempt(req);
        self.schedule_arrival(t);
    }

    /// One try of a request: resolve (unless the application's cache
    /// answers) and connect.
    pub(crate) fn begin_attempt(&mut self, req: Request) {
        let t = req.source as usize;
        let spec = &self.cfg.traffic[t];
        if spec.retries > 0 {
            self.open_attempts.insert(req.id);
            self.engine.schedule_at(req.deadline, Ev::ClientGiveUp(req));
        }
        if spec.ingress.is_some() && self.target_of(&req).is_none() {
            return self.outcome(req, Outcome::NotFound);
        }
        match (spec.resolve.is_some(), req.client.get()) {
            (true, Some(c)) => {
                let now = self.engine.now();
                let cached = self.dns.as_ref().and_then(|d| {
                    d.cache
                        .get(&(c, t as u32))
                        .filter(|(_, expires)| *expires > now)
                        .map(|(rdata, _)| *rdata)
                });
                match cached {
                    Some(rdata) if spec.dns_cache.is_some() => self.after_lookup(req, rdata),
                    _ => self.start_lookup(req, c),
                }
            }
            _ => self.after_lookup(req, 0),
        }
    }

    /// The application retries a failed try.
    pub(crate) fn retry(&mut self, req: Request) {
        let now = self.engine.now();
        let t = req.source as usize;
        self.traffic[t].totals.retried += 1;
        self.metrics.inc(self.traffic[t].counters.retried);
        let cfg = self.cfg;
        for (i, w) in cfg.windows.iter().enumerate() {
            if w.contains(now) {
                self.windows[i * cfg.traffic.len() + t].totals.retried += 1;
            }
        }
        self.next_request += 1;
        let next = Request {
            id: self.next_request,
            attempt: req.attempt + 1,
            deadline: now + cfg.traffic[t].timeout,
            ..req
        };
        if cfg.traffic[t].in_handler {
            self.call_retried(req.id, next.id);
        }
        self.begin_attempt(next);
    }

    /// The name is resolved (`rdata`: which address): connect, or for a
    /// lookup-only source, the request is done.
    pub(crate) fn after_lookup(&mut self, req: Request, rdata: u64) {
        let now = self.engine.now();
        match self.target_of(&req) {
            None => self.outcome(req, Outcome::Answered(now - req.sent)),
            Some(_) => self.connect(req, address_of(rdata)),
        }
    }

    /// Sends the request over a connection to a Ready endpoint of its
    /// Service (`addr` unset: through its ClusterIP), reusing an open one the
    /// client may reuse, or a new one ([`crate::connections`]); or to the
    /// pod address a headless Service's DNS answer gave.
    pub(crate) fn connect(&mut self, req: Request, addr: Option<Ipv4Addr>) {
        let t = req.source as usize;
        if let Some(i) = self.lb_of(t) {
            return self.lb_send(i, req);
        }
        let client = req.client.get();
        let Some(d) = self.target_of(&req) else {
            return;
        };
        let mut target = None;
        if let Some(ip) = addr {
            match self.ip_owner.get(&ip) {
                None => {
                    self.engine
                        .schedule_at(req.deadline, Ev::NoHostTimeout(req));
                    return;
                }
                Some(&p)
                    if self.pod_live_in(p, PodState::Ready)
                        && self.services.list[d]
                            .workloads
                            .contains(&(self.pods[p as usize].deployment as usize)) =>
                {
                    target = Some(p)
                }
                // Another pod holds the address now, or this one is not
                // serving: its kernel answers the SYN with a reset.
                Some(_) => return self.outcome(req, Outcome::Refused),
            }
        } else if client.is_some() && self.l7.on(t) {
            return self.l7_request(req);
        } else if let Some(c) = client {
            match self.reusable_connection(t, c) {
                Ok(conn) => return self.send_on(conn, req),
                Err(want) => target = want,
            }
        }
        let now = self.engine.now();
        self.dial(req, client, now, 0, target);
    }

    /// An open connection of client pod `c` the request may use, or the
    /// endpoint a new one must go to (client-side balancing), or neither.
    pub(crate) fn reusable_connection(&mut self, t: usize, c: u32) -> Result<u32, Option<u32>> {
        let mode = self.cfg.traffic[t].connections;
        let cc = self.traffic[t].clients.entry(c).or_default();
        let conn = match mode {
            ConnectionMode::PerRequest => return Err(None),
            ConnectionMode::KeepAlive { .. } => cc.idle.pop(),
            ConnectionMode::LongLived {
                per_client,
                max_age,
            } => {
                if (cc.open.len() as u32) < per_client {
                    return Err(None);
                }
                let i = cc.turn as usize % cc.open.len();
                cc.turn = cc.turn.wrapping_add(1);
                let conn = cc.open[i];
                let now = self.engine.now();
                let too_old = max_age
                    .is_some_and(|age| self.conns.get(conn).is_some_and(|x| x.opened + age <= now));
                if too_old {
                    // The server's GOAWAY: the client reconnects.
                    self.close(conn);
                    return Err(None);
                }
                Some(conn)
            }
            ConnectionMode::ClientSide => {
                let Some(p) = self.next_turn(t, c) else {
                    return Err(None);
                };
                match self.traffic[t]
                    .clients
                    .get(&c)
                    .and_then(|cc| cc.by_server.get(&p))
                {
                    Some(&conn) => Some(conn),
                    None => return Err(Some(p)),
                }
            }
        };
        let Some(conn) = conn else {
            return Err(None);
        };
        if let Some(timer) = self.conns.get_mut(conn).and_then(|x| x.idle_timer.take()) {
            self.engine.cancel(timer);
        }
        let server = self.conns.get(conn).map(|x| x.server);
        if server.is_some_and(|p| self.pod_live_in(p, PodState::Ready)) {
            return Ok(conn);
        }
        // The pod behind it is gone: the connection is found broken (RST or
        // GOAWAY) and a new one is opened.
        self.close(conn);
        match self.next_keepalive_idle(t, c) {
            Some(other) => Ok(other),
            None => Err(None),
        }
    }

    /// Another idle keep-alive connection whose pod still serves, closing
    /// broken ones on the way.
    pub(crate) fn next_keepalive_idle(&mut self, t: usize, c: u32) -> Option<u32> {
        loop {
            let conn = self.traffic[t].clients.get_mut(&c)?.idle.pop()?;
            if let Some(timer) = self.conns.get_mut(conn).and_then(|x| x.idle_timer.take()) {
                self.engine.cancel(timer);
            }
            let server = self.conns.get(conn).map(|x| x.server);
            if server.is_some_and(|p| self.pod_live_in(p, PodState::Ready)) {
                return Some(conn);
            }
            self.close(conn);
        }
    }

    /// Client-side balancing: the next Ready endpoint in turn.
    pub(crate) fn next_turn(&mut self, t: usize, c: u32) -> Option<u32> {
        let d = self.cfg.traffic[t].service?;
        let cc = self.traffic[t].clients.entry(c).or_default();
        let p = self.services.endpoints(&self.deps, d).nth(cc.turn as usize);
        cc.turn = cc.turn.wrapping_add(1);
        p
    }

    /// The request travels on an established connection.
    pub(crate) fn send_on(&mut self, conn: u32, mut req: Request) {
        let now = self.engine.now();
        let Some(x) = self.conns.get(conn).copied() else {
            return self.offer_lost(req);
        };
        if let Some((n, id)) = x.ct {
            self.path.tables.nodes[n as usize].touch(now, id);
        }
        if x.nat.is_some() && !self.egress_send(conn, req) {
            return;
        }
        req.conn = OptU32::some(conn);
        self.offer(x.server, req);
    }

    /// A request whose connection vanished before it was sent: never, since
    /// connections close only between requests; counted as timed out to
    /// keep conservation if it ever happens.
    pub(crate) fn offer_lost(&mut self, req: Request) {
        self.outcome(req, Outcome::TimedOut);
    }

    /// The Deployment whose pod `p` serves `req`: the one its traffic
    /// source targets (every endpoint, DNS answer and connection of the
    /// source is a pod of it), read from the source rather than from the
    /// pod, whose record is a cache miss at thousands of pods.
    fn serving_deployment(&self, p: u32, req: &Request) -> usize {
        let s = self.target_of(req);
        match s.and_then(|s| self.services.list[s].implicit) {
            Some(w) => {
                debug_assert_eq!(w, self.pods[p as usize].deployment as usize);
                w
            }
            None => self.pods[p as usize].deployment as usize,
        }
    }

    /// The request reaches pod `p`: through the mesh's proxies, if any
    /// are on its way, then to its server.
    pub(crate) fn offer(&mut self, p: u32, req: Request) {
        if self.proxy_closed(p) || req.client.get().is_some_and(|c| self.proxy_closed(c)) {
            // iptables sends the connection to a proxy port where nothing
            // listens (the server's inbound, or the client's own outbound):
            // RST.
            self.lb_end(p, &req);
            self.outcome(req, Outcome::ProxyReset);
            return self.request_done(req, false);
        }
        if self.mesh.is_some() && self.mesh_offer(p, req) {
            return;
        }
        self.offer_app(p, req);
    }

    /// Offers the request to pod `p`'s server.
    pub(crate) fn offer_app(&mut self, p: u32, req: Request) {
        if self.pod_unreachable(p) {
            self.lb_end(p, &req);
            return self.lost_with_node(req);
        }
        self.zone_request(p, &req);
        let d = self.serving_deployment(p, &req);
        let server_spec = &self.cfg.deployments[d].server;
        match self.servers[p as usize].offer(server_spec, req) {
            Admit::Start => self.start_service(p, req),
            Admit::Queued => {}
            Admit::Rejected => {
                self.lb_end(p, &req);
                self.outcome(req, Outcome::Rejected);
                self.request_done(req, true);
            }
        }
    }

    /// The request on a connection ended; `reusable`: the client still
    /// listens (answered, or a 503), so keep-alive may pool the connection.
    pub(crate) fn request_done(&mut self, req: Request, reusable: bool) {
        let Some(conn) = req.conn.get() else { return };
        let Some(x) = self.conns.get(conn).copied() else {
            return;
        };
        let t = x.traffic as usize;
        if self.l7.on(t) {
            // The proxy's pooled connection stays open for the next request.
            if let Some((n, id)) = x.ct {
                self.path.tables.nodes[n as usize].touch(self.engine.now(), id);
            }
            return;
        }
        match self.cfg.traffic[t].connections {
            ConnectionMode::KeepAlive {
                max_idle,
                idle_timeout,
            } if reusable => {
                let cc = self.traffic[t].clients.entry(x.client).or_default();
                if (cc.idle.len() as u32) < max_idle {
                    cc.idle.push(conn);
                    let timer = self
                        .engine
                        .schedule_in(idle_timeout, Ev::IdleClose { conn, gen: x.gen });
                    if let Some(c) = self.conns.get_mut(conn) {
                        c.idle_timer = Some(timer);
                    }
                } else {
                    self.close(conn);
                }
            }
            m if m.stays_open() => {
                if let Some((n, id)) = x.ct {
                    self.path.tables.nodes[n as usize].touch(self.engine.now(), id);
                }
            }
            _ => self.close(conn),
        }
    }

    /// A keep-alive connection was idle for its timeout.
    pub(crate) fn idle_close(&mut self, conn: u32, gen: u32) {
        let Some(x) = self.conns.get(conn).copied() else {
            return;
        };
        if x.gen != gen {
            return;
        }
        if let Some(cc) = self.traffic[x.traffic as usize].clients.get_mut(&x.client) {
            cc.idle.retain(|&i| i != conn);
        }
        self.close(conn);
    }

    /// The client closes a connection: its conntrack entry goes to TIME_WAIT.
    pub(crate) fn close(&mut self, conn: u32) {
        let now = self.engine.now();
        let Some(x) = self.conns.remove(conn) else {
            return;
        };
        if let Some(timer) = x.idle_timer {
            self.engine.cancel(timer);
        }
        if let (Some(mut h), Some(nat)) = (x.nat, self.path.nat_gateway.as_mut()) {
            nat.gateways.close(&mut h);
        }
        if let Some((n, id)) = x.ct {
            self.path.tables.nodes[n as usize].set_state(now, id, CtState::TimeWait);
        }
        if let Some(cc) = self.traffic[x.traffic as usize].clients.get_mut(&x.client) {
            cc.open.retain(|&i| i != conn);
            if cc.by_server.get(&x.server) == Some(&conn) {
                cc.by_server.remove(&x.server);
            }
        }
    }

    /// The SYN was dropped: TCP retransmits it (to `pod`'s address if the
    /// SYN went to one, not to a Service's), unless the client's timeout or
    /// `tcp_syn_retries` comes first.
    pub(crate) fn syn_dropped(
        &mut self,
        req: Request,
        first: SimTime,
        attempt: u32,
        pod: Option<u32>,
    ) {
        let next = attempt + 1;
        match syn_retransmit_offset(next).zip(u8::try_from(next).ok()) {
            Some((off, attempt)) if first + off < req.deadline => {
                let pod = pod.into();
                self.engine
                    .schedule_at(first + off, Ev::SynRetry { req, attempt, pod });
            }
            _ => {
                let give_up = (first + syn_give_up_offset()).min(req.deadline);
                self.engine.schedule_at(give_up, Ev::SynGiveUp(req));
            }
        }
    }

    /// TCP retransmits SYN number `attempt` of `req`'s client (the event
    /// fires exactly [`syn_retransmit_offset`] after the first SYN, which
    /// is therefore not carried): to the pod address `pod` the first went
    /// to (a client-side pick or a mesh proxy's), else to the Service again
    /// (the drop left no conntrack entry to pin an endpoint).
    pub(crate) fn syn_retry(&mut self, req: Request, attempt: u32, pod: Option<u32>) {
        let now = self.engine.now();
        let off = syn_retransmit_offset(attempt).unwrap_or(SimDuration::ZERO);
        let first = SimTime::from_nanos(now.as_nanos() - off.as_nanos());
        self.dial(req, req.client.get(), first, attempt, pod);
    }

    /// A worker of pod `p` takes `req`: its handler calls its dependency
    /// first, if it has one ([`Sim::call_out`]), then serves.
    pub(crate) fn start_service(&mut self, p: u32, req: Request) {
        let d = self.serving_deployment(p, &req);
        if self.call_out(p, d, req) {
            return;
        }
        self.serve(p, req);
    }

    /// The handler's own work on `req`: its service time.
    pub(crate) fn serve(&mut self, p: u32, req: Request) {
        let d = self.serving_deployment(p, &req);
        let mean = self.deps[d].service_time.as_secs_f64();
        let dt = exponential(&mut self.deps[d].service_time_rng, mean);
        let ev = Ev::Completed {
            pod: p,
            req,
            failed: false,
        };
        self.engine.schedule_in(dt, ev);
    }

    /// Pod `p` is done with `req`; `failed`: its handler's call failed and
    /// it answers 503.
    pub(crate) fn completed(&mut self, p: u32, req: Request, failed: bool) {
        let now = self.engine.now();
        if self.pod_unreachable(p) {
            // The pod stopped with its node: this request and every one
            // it queued get no answer.
            self.lb_end(p, &req);
            self.lost_with_node(req);
            let (mut held, mut gone) = (Vec::new(), Vec::new());
            while let Some(r) = self.servers[p as usize].finish(now, |r| gone.push(r)) {
                held.push(r);
            }
            for r in held.into_iter().chain(gone) {
                self.lb_end(p, &r);
                self.lost_with_node(r);
            }
            return;
        }
        if self.proxy_cut(p, &req) {
            self.lb_end(p, &req);
            self.outcome(req, Outcome::ProxyReset);
            self.request_done(req, false);
            return self.server_finished(p, now);
        }
        let mut o = completion_outcome(&req, now);
        if failed && matches!(o, Outcome::Answered(_)) {
            o = Outcome::DependencyFailed;
        }
        if self.lb_end(p, &req) && matches!(o, Outcome::Answered(_)) {
            // The load balancer cut the request off when the target's
            // deregistration ended.
            o = self.lb_cut_outcome(&req);
        }
        let t = req.source as usize;
        if matches!(o, Outcome::Answered(_)) && self.egress_reply_lost(req) {
            // The reply died at the NAT gateway: the client waits it out.
            self.engine
                .schedule_at(req.deadline.max(now), Ev::EgressDropped(req));
            self.request_done(req, false);
            return self.server_finished(p, now);
        }
        if let Outcome::Answered(_) = o {
            self.zone_response(p, &req);
            self.for_windows(t, now, |w| {
                *w.served.entry(p).or_default() += 1;
            });
        }
        self.outcome(req, o);
        self.request_done(req, matches!(o, Outcome::Answered(_)));
        self.server_finished(p, now);
    }

    /// Pod `p`'s server is done with a request: the next one starts, those
    /// whose clients left are dropped.
    fn server_finished(&mut self, p: u32, now: SimTime) {
        let mut abandoned = Vec::new();
        let next = self.servers[p as usize].finish(now, |r| abandoned.push(r));
        for r in abandoned {
            self.lb_end(p, &r);
            self.outcome(r, Outcome::TimedOut);
            self.request_done(r, false);
        }
        if let Some(r) = next {
            self.start_service(p, r);
        }
    }

    /// How one try ended: the request's outcome, or a retry. A try that
    /// already ended (its client gave up at the deadline) counts no more.
    pub(crate) fn outcome(&mut self, req: Request, o: Outcome) {
        self.lb_forget(&req);
        let t = req.source as usize;
        let (req, o) = if self.l7.on(t) {
            match self.l7_try_ended(req, o) {
                Some(ended) => ended,
                None => return,
            }
        } else {
            (req, o)
        };
        let retries = self.cfg.traffic[t].retries;
        if retries > 0 {
            if !self.open_attempts.remove(&req.id) {
                return;
            }
            if o.is_error() && o != Outcome::NotFound && u32::from(req.attempt) < retries {
                let now = self.engine.now();
                self.engine.schedule_at(now, Ev::Retry(req));
                return;
            }
        }
        if o == Outcome::TimedOut && self.resolving.contains(&req.id) {
            self.traffic[t].totals.resolving += 1;
            let now = self.engine.now();
            let cfg = self.cfg;
            for (i, w) in cfg.windows.iter().enumerate() {
                if w.contains(now) {
                    self.windows[i * cfg.traffic.len() + t].totals.resolving += 1;
                }
            }
        }
        self.count_outcome(t, o);
        self.mesh_response(t, o);
        self.path_outcome(t, req.path, o);
        if self.cfg.traffic[t].in_handler {
            self.call_ended(req, o);
        }
    }

    pub(crate) fn count_outcome(&mut self, t: usize, o: Outcome) {
        let now = self.engine.now();
        let tr = &mut self.traffic[t];
        tr.totals.count(o);
        tr.totals.in_flight -= 1;
        let counter = match o {
            Outcome::Answered(d) => {
                self.metrics.record(tr.latency, d);
                Some(tr.counters.answered)
            }
            Outcome::TimedOut => Some(tr.counters.timed_out),
            Outcome::AnsweredLate => {
                self.metrics.inc(tr.counters.wasted);
                Some(tr.counters.timed_out)
            }
            Outcome::Blocked => {
                self.metrics.inc(tr.counters.blocked);
                Some(tr.counters.timed_out)
            }
            Outcome::LookupFailed => Some(tr.counters.lookup_failed),
            Outcome::SynDropped => {
                self.metrics.inc(tr.counters.syn_dropped);
                Some(tr.counters.timed_out)
            }
            Outcome::StaleEndpoint => {
                self.metrics.inc(tr.counters.stale);
                Some(tr.counters.timed_out)
            }
            Outcome::NoHost => {
                self.metrics.inc(tr.counters.no_host);
                Some(tr.counters.timed_out)
            }
            Outcome::Refused
            | Outcome::PortClosed
            | Outcome::NatIdleReset
            | Outcome::LbBadGateway
            | Outcome::LbReset
            | Outcome::ProxyReset => Some(tr.counters.refused),
            Outcome::LbUnavailable | Outcome::MeshOverflow | Outcome::DependencyFailed => {
                Some(tr.counters.rejected)
            }
            Outcome::MeshTimeout => Some(tr.counters.timed_out),
            Outcome::LbGatewayTimeout | Outcome::LbConnectTimeout => Some(tr.counters.timed_out),
            Outcome::EdgeDropped | Outcome::NoLocalEndpoint => Some(tr.counters.timed_out),
            Outcome::Rejected => Some(tr.counters.rejected),
            Outcome::NatDropped | Outcome::NatPortAllocation => Some(tr.counters.timed_out),
            // Counted apart (`requests_not_found`, in `path_outcome`).
            Outcome::NotFound => None,
        };
        if let Some(counter) = counter {
            self.metrics.inc(counter);
        }
        let cfg = self.cfg;
        for (i, w) in cfg.windows.iter().enumerate() {
            if w.contains(now) {
                let ws = &mut self.windows[i * cfg.traffic.len() + t];
                ws.totals.count(o);
                if let Outcome::Answered(d) = o {
                    ws.latency.record(d);
                }
            }
        }
    }
}

// An event is copied several times on its way through the queue (a 16-byte
// header plus the event: one cache line).
const _: () = assert!(std::mem::size_of::<Request>() == 40);
const _: () = assert!(std::mem::size_of::<Ev>() <= 48);
