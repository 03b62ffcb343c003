//! Addresses: what an IP is in the topology, by arithmetic on its block.

use super::{ip_add, Addr, Dev, Sim, UNDERLAY};
use std::net::Ipv4Addr;

impl Sim<'_> {
    pub(super) fn node_ip(&self, n: usize) -> Ipv4Addr {
        ip_add(UNDERLAY, 16 + n as u64)
    }

    pub(super) fn gateway_ip(&self, s: usize) -> Ipv4Addr {
        ip_add(UNDERLAY, 2 + s as u64)
    }

    pub(super) fn classify(&self, ip: Ipv4Addr) -> Addr {
        let cfg = self.cfg;
        if cfg.cluster_cidr.contains(ip) {
            let off = u64::from(u32::from(ip) - u32::from(cfg.cluster_cidr.network()));
            let node = (off >> self.host_bits) as usize;
            if node >= cfg.nodes {
                return Addr::Unknown;
            }
            let host = off & ((1 << self.host_bits) - 1);
            let ep = host
                .checked_sub(2)
                .and_then(|k| self.node_pods[node].get(k as usize).copied());
            return Addr::Pod { node, ep };
        }
        let o = ip.octets();
        let base = UNDERLAY.octets();
        if o[0] == base[0] && o[1] == base[1] {
            let off = (u64::from(o[2]) << 8) | u64::from(o[3]);
            if off >= 16 && ((off - 16) as usize) < cfg.nodes {
                return Addr::Node((off - 16) as usize);
            }
            if (2..16).contains(&off) && ((off - 2) as usize) < cfg.sites.len() {
                return Addr::Gateway((off - 2) as usize);
            }
            return Addr::Unknown;
        }
        if o[0] == 192 && o[1] == 168 && (o[2] as usize) < cfg.sites.len() {
            let s = o[2] as usize;
            if o[3] == 1 {
                return Addr::SiteRouter(s);
            }
            let h = usize::from(o[3]).wrapping_sub(10);
            if h < cfg.sites[s].hosts.len() {
                let ep = cfg.pods.len()
                    + cfg.sites[..s].iter().map(|x| x.hosts.len()).sum::<usize>()
                    + h;
                return Addr::Host { site: s, ep };
            }
        }
        match self.service_ips.get(&ip) {
            Some(&svc) => Addr::Service(svc),
            None => Addr::Unknown,
        }
    }

    pub(super) fn name_of(&self, ip: Ipv4Addr) -> String {
        match self.classify(ip) {
            Addr::Pod { ep: Some(ep), .. } | Addr::Host { ep, .. } => self.stacks[ep].name.clone(),
            Addr::Node(n) => format!("node-{}", n + 1),
            Addr::Gateway(s) => format!("{}-gw", self.cfg.sites[s].name),
            Addr::SiteRouter(s) => format!("{}-router", self.cfg.sites[s].name),
            Addr::Service(s) => format!("svc/{}", self.cfg.services.services[s].name),
            _ => ip.to_string(),
        }
    }

    pub(super) fn dev_ip(&self, dev: Dev) -> Ipv4Addr {
        match dev {
            Dev::Stack(ep) => self.stacks[ep].ip,
            Dev::Node(n) => self.node_ip(n),
            Dev::Fabric => ip_add(UNDERLAY, 1),
            Dev::Gateway(s) => self.gateway_ip(s),
            Dev::SiteRouter(s) => Ipv4Addr::new(192, 168, s as u8, 1),
        }
    }

    pub(super) fn dev_name(&self, dev: Dev) -> String {
        match dev {
            Dev::Stack(ep) => self.stacks[ep].name.clone(),
            Dev::Node(n) => format!("node-{}", n + 1),
            Dev::Fabric => "vpc".into(),
            Dev::Gateway(s) => format!("{}-gw", self.cfg.sites[s].name),
            Dev::SiteRouter(s) => format!("{}-router", self.cfg.sites[s].name),
        }
    }
}
