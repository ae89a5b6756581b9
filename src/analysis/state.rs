//! What the wire tells about KMS hosts and clients: the host counters `slmgr /dlv` shows on a host
//! (count per product group, requests by license status, refusals), rebuilt from `kms` events, and
//! per-client facts. Feeds the `summary` event and the checks.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;

use crate::event::{Endpoint, Event, HostApp, HostSummary, KmsCall};

/// Per host (address and port) state.
#[derive(Debug, Default)]
pub struct HostState {
    pub epids: BTreeSet<String>,
    /// ePIDs per KMS counted id, in order of first appearance, with the frame of first appearance.
    pub epids_by_kms: BTreeMap<String, Vec<(String, u64)>>,
    pub hwids: BTreeSet<String>,
    pub apps: BTreeMap<String, AppState>,
    pub first_frame: u64,
}

/// Per host and counted product group.
#[derive(Debug, Default)]
pub struct AppState {
    pub app_id: String,
    pub app_name: Option<&'static str>,
    pub kms_name: Option<&'static str>,
    /// (frame, returned count, required count) in capture order.
    pub counts: Vec<(u64, u32, u32)>,
    pub required_count: u32,
    pub requests: u64,
    pub refused: u64,
    pub failed: u64,
    pub cmids: HashSet<String>,
    /// Distinct CMIDs at the time of each answered response, paired with the count returned.
    pub growth: Vec<(u64, usize, u32)>,
    pub by_license_status: BTreeMap<String, u64>,
}

/// Per client machine (CMID) state.
#[derive(Debug, Default)]
pub struct ClientState {
    pub workstations: BTreeSet<String>,
    pub addresses: BTreeSet<IpAddr>,
    pub products: BTreeSet<String>,
    pub frames: Vec<u64>,
    pub last_outcome: &'static str,
    pub last_server: Option<Endpoint>,
}

/// State rebuilt from the event stream of one source.
#[derive(Debug, Default)]
pub struct State {
    pub hosts: BTreeMap<Endpoint, HostState>,
    pub clients: HashMap<String, ClientState>,
}

/// Bound on the number of frames remembered per client (evidence lists stay short).
const MAX_FRAMES_PER_CLIENT: usize = 16;
/// Bound on count samples kept per host and product group.
const MAX_COUNT_SAMPLES: usize = 4096;

impl State {
    /// Folds one event into the state.
    pub fn observe(&mut self, ev: &Event) {
        if let crate::event::Body::Kms(call) = &ev.body {
            self.observe_kms(ev, call);
        }
    }

    fn observe_kms(&mut self, ev: &Event, call: &KmsCall) {
        let (Some(server), Some(req)) = (ev.server, call.request.as_ref()) else {
            return;
        };
        let host = self.hosts.entry(server).or_default();
        if host.first_frame == 0 {
            host.first_frame = ev.frame;
        }
        let app = host.apps.entry(req.kms_id.clone()).or_default();
        app.app_id.clone_from(&req.app_id);
        app.app_name = req.app_name;
        app.kms_name = req.kms_name;
        app.required_count = app.required_count.max(req.required_count);
        app.requests += 1;
        *app.by_license_status
            .entry(req.license_status.clone())
            .or_insert(0) += 1;
        match call.status {
            "refused" => app.refused += 1,
            "answered" if call.integrity.response == Some("valid") => {}
            _ => app.failed += 1,
        }
        app.cmids.insert(req.cmid.clone());
        if let Some(resp) = &call.response {
            if app.counts.len() < MAX_COUNT_SAMPLES {
                app.counts.push((
                    call.response_frame.unwrap_or(ev.frame),
                    resp.current_count,
                    req.required_count,
                ));
                app.growth
                    .push((ev.frame, app.cmids.len(), resp.current_count));
            }
            host.epids.insert(resp.epid.clone());
            let list = host.epids_by_kms.entry(req.kms_id.clone()).or_default();
            if list.len() < MAX_COUNT_SAMPLES && !list.iter().any(|(e, _)| e == &resp.epid) {
                list.push((resp.epid.clone(), ev.frame));
            }
            if let Some(h) = &resp.hwid {
                host.hwids.insert(h.clone());
            }
        }
        let client = self.clients.entry(req.cmid.clone()).or_default();
        client.workstations.insert(req.workstation.clone());
        if let Some(c) = ev.client {
            client.addresses.insert(c.ip);
        }
        client.products.insert(
            req.sku_name
                .map(str::to_string)
                .unwrap_or_else(|| req.sku_id.clone()),
        );
        if client.frames.len() < MAX_FRAMES_PER_CLIENT {
            client.frames.push(ev.frame);
        }
        client.last_outcome = call.outcome;
        client.last_server = Some(server);
    }

    /// The `hosts` array of the summary event.
    pub fn host_summaries(&self) -> Vec<HostSummary> {
        self.hosts
            .iter()
            .map(|(ep, h)| HostSummary {
                ip: ep.ip,
                port: ep.port,
                epids: h.epids.iter().cloned().collect(),
                hwid: h.hwids.iter().next().cloned(),
                apps: h
                    .apps
                    .iter()
                    .map(|(kms_id, a)| HostApp {
                        app_id: a.app_id.clone(),
                        app_name: a.app_name,
                        kms_id: kms_id.clone(),
                        kms_name: a.kms_name,
                        last_count: a.counts.last().map(|c| c.1),
                        max_count: a.counts.iter().map(|c| c.1).max(),
                        required_count: a.required_count,
                        requests: a.requests,
                        refused: a.refused,
                        failed: a.failed,
                        distinct_cmids: a.cmids.len() as u64,
                        by_license_status: a.by_license_status.clone(),
                    })
                    .collect(),
            })
            .collect()
    }
}
