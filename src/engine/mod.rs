//! The pipeline of one source: packets in, events out. Every stage is a plain function call on one
//! thread (house style): decode → flow table + TCP reassembly → DCE/RPC session → KMS decode and
//! validation → `kms` event; UDP/TCP DNS → pairing → `dns` event; all events → analysis state and
//! the sinks. Offline the clock is packet time, so timeouts and `rtt_ms` are reproducible.
//!
//! For a run of packets ([`Engine::packet_batched`]) the bind_acks and calls wait in a batch of
//! [`KEPT_BATCH`] and go through the later stages together: all their KMS decodes, then all their
//! sink writes, then all their analysis. Each stage's code then stays in the instruction cache,
//! where one call through every stage needs more code than the cache holds. The events and their
//! order are those of [`Engine::packet`].

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

mod convert;

use crate::Direction;
use crate::analysis::State;
use crate::capture::{Notice, RawPacket};
use crate::dcerpc::{
    BindNak, Call, CloseReason, KmsReply, Reply, RpcEvent, Session, SessionState, SyntaxId,
    TransferSyntax,
};
use crate::decode::{Decoded, Decoder, TcpSegment, Transport, UdpDatagram};
use crate::dns::{self, DnsTracker};
use crate::event::{self, Anomaly, Body, Endpoint, Event, Hresult, KmsCall, RpcInfo, Summary};
use crate::flow::stream::{SegmentOutcome, Stream};
use crate::flow::{Flow, FlowKey, FlowTable, FxMap, Handshake, HashedKey};
use crate::kms;
use crate::time::Ts;

/// The default KMS port (kms-protocol.md §1).
pub const KMS_PORT: u16 = 1688;
/// At most this many anomalies of one kind are emitted per source; the rest are counted in the
/// summary and announced by one `anomaly_limit` anomaly.
pub const MAX_ANOMALIES_PER_KIND: u64 = 1000;
/// Most bytes held at once by the application state of all connections of one source: the
/// DCE/RPC and DNS-over-TCP state of each connection and its TCP reassembly buffers (32 MiB: 64
/// connections at their per-direction limit
/// [`MAX_BUFFERED_PER_DIRECTION`](crate::flow::stream::MAX_BUFFERED_PER_DIRECTION) in both
/// directions, or about 100,000 DCE/RPC connections holding a partial header). Two crafted
/// segments make one connection hold 256 KiB, so without this bound a small capture of many such
/// connections would take gigabytes. Over it (a `memory_limit` anomaly), the connection that grew
/// gives up on its holes, and a connection that just started is not followed; KMS traffic,
/// parsed as it arrives, holds almost nothing.
pub const MAX_FLOW_STATE_BYTES: usize = 32 << 20;
/// Most server-to-client bytes held back while the client-to-server stream has a hole (see
/// [`defer_reply`]); beyond it they are parsed anyway. A KMS exchange is under 2 KiB.
pub const MAX_DEFERRED_REPLY_BYTES: usize = 64 * 1024;

/// At most this many SRV-advertised ports are watched for connection outcomes.
pub const MAX_WATCHED_PORTS: usize = 1024;

/// Options of the pipeline.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Ports treated as KMS even without a captured bind (content detection applies everywhere).
    pub kms_ports: Vec<u16>,
    /// Time after which an unanswered DNS query is reported `unanswered` (packet time).
    pub dns_timeout_ns: i64,
    /// Policy inputs of the checks.
    pub policy: crate::analysis::Policy,
    /// Keep the KMS message bytes and their decryptions in `KmsCall::raw` (the terminal UI's hex
    /// view sets this; JSON and table runs do not pay for the copies).
    pub keep_payloads: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            kms_ports: vec![KMS_PORT],
            dns_timeout_ns: dns::DEFAULT_TIMEOUT_NS,
            policy: crate::analysis::Policy::default(),
            keep_payloads: false,
        }
    }
}

/// Application state of a TCP flow.
enum App {
    /// No payload seen yet.
    Probing,
    /// DCE/RPC (KMS or not): both directions reassembled and parsed.
    Rpc(Box<RpcApp>),
    /// DNS over TCP.
    DnsTcp(Box<[Stream; 2]>),
    /// Neither: only the handshake is followed.
    Ignored,
}

struct RpcApp {
    streams: [Stream; 2],
    session: Session,
}

/// DCE/RPC connection states kept for reuse when connections end (a KMS client opens a
/// connection per activation, so each would otherwise allocate the box, the session's lists and
/// its stub buffers anew). Bounded: the streams of a kept state hold no buffer, its session at
/// most a few small lists ([`Session::reset`]).
const MAX_SPARE_RPC: usize = 64;
/// Stub buffers of reported calls kept for the next reassemblies (see `Core::spare_stubs`): at
/// least the two of each call of a batch, which a batch hands back at once (see
/// [`Core::flush_kept`]).
const MAX_SPARE_STUBS: usize = 64;
const _: () = assert!(MAX_SPARE_STUBS >= 2 * KEPT_BATCH);
/// Largest stub buffer kept for reuse (KMS stubs are under 400 bytes).
const MAX_SPARE_STUB_CAPACITY: usize = 4096;

/// The ports watched for connection outcomes: a bitmap (8 KiB), since every TCP packet of a
/// connection not yet known as watched tests its server port.
struct PortSet {
    bits: Box<[u64; 1024]>,
    len: usize,
}

impl PortSet {
    fn new() -> PortSet {
        PortSet {
            bits: Box::new([0; 1024]),
            len: 0,
        }
    }

    fn contains(&self, port: u16) -> bool {
        self.bits
            .get(usize::from(port >> 6))
            .is_some_and(|w| w & (1 << (port & 63)) != 0)
    }

    fn insert(&mut self, port: u16) {
        if let Some(w) = self.bits.get_mut(usize::from(port >> 6)) {
            let bit = 1 << (port & 63);
            if *w & bit == 0 {
                *w |= bit;
                self.len += 1;
            }
        }
    }

    fn len(&self) -> usize {
        self.len
    }
}

/// The `status` values of `kms` events (see [`kms_call`]), in the order of [`Stats::kms_by_status`].
const KMS_STATUSES: [&str; 4] = ["answered", "fault", "refused", "unanswered"];

/// Counters of one source.
#[derive(Default)]
struct Stats {
    packets: u64,
    bytes: u64,
    first_ts: Option<Ts>,
    last_ts: Ts,
    last_frame: u64,
    kms_calls: u64,
    /// `kms` events by `status`, counted per [`KMS_STATUSES`] entry (an array slot per call
    /// instead of a map lookup by string; the summary's map is built from it).
    kms_by_status: [u64; KMS_STATUSES.len()],
    /// Any other status (none is produced today; kept so that a new one is still counted).
    kms_by_other_status: BTreeMap<&'static str, u64>,
    dns_queries: u64,
    anomalies: u64,
    /// Fx, unseeded, is safe here: the keys are the engine's own `&'static str` kind names, not
    /// values from the capture (which can only choose how often each kind occurs).
    anomaly_kinds: FxMap<&'static str, u64>,
    findings: BTreeMap<&'static str, u64>,
}

/// The analysis pipeline of one source.
pub struct Engine {
    decoder: Decoder,
    core: Core,
}

struct Core {
    source: Arc<str>,
    cfg: EngineConfig,
    flows: FlowTable<App>,
    dns: DnsTracker,
    state: State,
    stats: Stats,
    watched_ports: PortSet,
    rpc_buf: Vec<RpcEvent>,
    dns_buf: Vec<dns::Exchange>,
    /// Drops reported by a live capture (`dropped`, `if_dropped` of the summary); `None` for files.
    capture_drops: Option<(u64, u64)>,
    /// Bytes held by the application state of all flows (see [`MAX_FLOW_STATE_BYTES`]).
    flow_state_bytes: usize,
    /// States of ended DCE/RPC connections, for reuse (see [`MAX_SPARE_RPC`]).
    #[expect(
        clippy::vec_box,
        reason = "the boxes themselves are reused: `App::Rpc` holds a `Box<RpcApp>`"
    )]
    spare_rpc: Vec<Box<RpcApp>>,
    /// Empty stub buffers of calls already reported, lent to the session parsing a segment
    /// ([`Session::with_stub_pool`]) so that reassembling a call allocates nothing.
    spare_stubs: Vec<Vec<u8>>,
    /// The `rpc` events of bind_acks and the `kms` events of calls, built in events kept for
    /// reuse and handed on in batches (see [`KeptEvents`]).
    kept: KeptEvents,
    /// Texts remembered between events (see [`convert::Texts`]).
    texts: convert::Texts,
}

impl Engine {
    /// A pipeline for the source named `source` (file name as given, `archive.zip:member`, `live:eth0`).
    pub fn new(source: &str, cfg: EngineConfig) -> Engine {
        let mut watched_ports = PortSet::new();
        for p in &cfg.kms_ports {
            watched_ports.insert(*p);
        }
        // The state applies the policy's KMS-02 margin and RPC-06 limit while folding events in.
        let state = State::with_policy(&cfg.policy);
        Engine {
            decoder: Decoder::new(),
            core: Core {
                source: Arc::from(source),
                dns: DnsTracker::new(cfg.dns_timeout_ns),
                cfg,
                flows: FlowTable::default(),
                state,
                stats: Stats::default(),
                watched_ports,
                rpc_buf: Vec::new(),
                dns_buf: Vec::new(),
                capture_drops: None,
                flow_state_bytes: 0,
                spare_rpc: Vec::new(),
                spare_stubs: Vec::new(),
                kept: KeptEvents::default(),
                texts: convert::Texts::default(),
            },
        }
    }

    /// The source name.
    pub fn source(&self) -> &Arc<str> {
        &self.core.source
    }

    /// The host and client state rebuilt so far.
    pub fn state(&self) -> &State {
        &self.core.state
    }

    /// Processes one packet; events go to `out`.
    pub fn packet(&mut self, pkt: &RawPacket<'_>, out: &mut dyn Out) {
        self.flush(out);
        self.core.kept.defer = false;
        self.packet_in(pkt, out);
    }

    /// [`Engine::packet`] for a run of packets: the `rpc` events of bind_acks and the `kms`
    /// events of calls may wait to be handed on in a batch (up to [`KEPT_BATCH`]) until the batch
    /// is full, another event is emitted, or [`Engine::flush`] (which the caller calls at the end
    /// of the run) or any other method but [`Engine::packet_batched`] is called. The events and
    /// their order are those of [`Engine::packet`]; only when they reach `out` differs, and
    /// [`Engine::state`] lags by the events waiting.
    pub fn packet_batched(&mut self, pkt: &RawPacket<'_>, out: &mut dyn Out) {
        self.core.kept.defer = true;
        self.packet_in(pkt, out);
    }

    /// Hands on the events waiting after [`Engine::packet_batched`].
    pub fn flush(&mut self, out: &mut dyn Out) {
        self.core.flush_kept(out);
    }

    fn packet_in(&mut self, pkt: &RawPacket<'_>, out: &mut dyn Out) {
        let core = &mut self.core;
        core.stats.packets += 1;
        core.stats.bytes += u64::from(pkt.orig_len);
        core.stats.first_ts.get_or_insert(pkt.ts);
        if pkt.ts > core.stats.last_ts {
            core.stats.last_ts = pkt.ts;
        }
        core.stats.last_frame = pkt.frame;
        if core.flows.sweep_due(pkt.ts) {
            core.sweep(pkt.ts, pkt.frame, out);
        }
        if let Some(d) = self.decoder.decode_fast(pkt) {
            // The common packet, decoded in place.
            core.transport(d, pkt, out);
        } else {
            match self.decoder.decode_slow(pkt) {
                Err(a) => {
                    let detail = a.detail;
                    core.anomaly(pkt.frame, pkt.ts, None, None, a.layer, a.kind, detail, out);
                }
                Ok(None) => {}
                Ok(Some(d)) => core.transport(d, pkt, out),
            }
        }
        if self.decoder.has_queued_anomalies() {
            for a in self.decoder.take_anomalies() {
                core.anomaly(
                    pkt.frame, pkt.ts, None, None, a.layer, a.kind, a.detail, out,
                );
            }
        }
    }

    /// A non-fatal notice from the capture reader becomes an `anomaly`.
    pub fn notice(&mut self, n: &Notice, out: &mut dyn Out) {
        self.flush(out);
        let core = &mut self.core;
        let ts = core.stats.last_ts;
        let detail = match (n.offset, n.frame) {
            (Some(o), _) => format!("{} (offset {o})", n.detail),
            _ => n.detail.clone(),
        };
        core.anomaly(
            n.frame.unwrap_or(0),
            ts,
            None,
            None,
            Notice::LAYER,
            n.kind,
            detail,
            out,
        );
    }

    /// A fatal read error ended the source early: reported as an `anomaly` so that the JSON log says
    /// why the analysis stops there.
    pub fn read_error(&mut self, message: &str, out: &mut dyn Out) {
        self.flush(out);
        let core = &mut self.core;
        let ts = core.stats.last_ts;
        core.anomaly(
            0,
            ts,
            None,
            None,
            "capture",
            "read_error",
            message.to_string(),
            out,
        );
    }

    /// Live sources: the capture's drop counters (cumulative), shown as `dropped` (by the kernel)
    /// and `if_dropped` (by the interface) in every later `summary`. File sources never call this,
    /// so their summaries have neither field.
    pub fn set_capture_drops(&mut self, dropped: u64, if_dropped: u64) {
        self.core.capture_drops = Some((dropped, if_dropped));
    }

    /// A periodic `summary` (`last` false) of the counters so far, for `--summary-every` in live
    /// mode. Unlike [`finish`](Self::finish) it closes nothing and runs no checks, so it can be
    /// called any number of times without changing what the final summary says.
    pub fn summary_now(&mut self, out: &mut dyn Out) {
        self.flush(out);
        let core = &mut self.core;
        let summary = core.summary(false);
        core.emit(
            Event {
                ts: core.stats.last_ts,
                event: "summary",
                source: core.source.clone(),
                frame: 0,
                client: None,
                server: None,
                body: Body::Summary(Box::new(summary)),
            },
            out,
        );
    }

    /// End of the source: closes every flow (open calls become `unanswered`), flushes DNS, runs the
    /// checks and writes the `summary`.
    pub fn finish(&mut self, out: &mut dyn Out) {
        self.flush(out);
        let core = &mut self.core;
        self.decoder.finish();
        for a in self.decoder.take_anomalies() {
            let (frame, ts) = (core.stats.last_frame, core.stats.last_ts);
            core.anomaly(frame, ts, None, None, a.layer, a.kind, a.detail, out);
        }
        let (frame, ts) = (core.stats.last_frame, core.stats.last_ts);
        for key in core.flows.all_keys() {
            if let Some(f) = core.flows.take(&key, || App::Probing) {
                core.close_flow(f, CloseReason::CaptureEnded, frame, ts, out);
            }
        }
        let mut ex = std::mem::take(&mut core.dns_buf);
        core.dns.finish(&mut ex);
        core.emit_dns(&mut ex, out);
        core.dns_buf = ex;
        if core.flows.refused_flows > 0 {
            let n = core.flows.refused_flows;
            core.anomaly(
                frame,
                ts,
                None,
                None,
                "tcp",
                "flow_limit",
                format!(
                    "{n} connections were not tracked because the flow table was full ({} \
                     connections, of which at most {} seen only as SYNs)",
                    crate::flow::MAX_FLOWS,
                    crate::flow::MAX_SYN_ONLY
                ),
                out,
            );
        }
        core.report_suppressed(frame, ts, out);
        core.findings(ts, out);
        let summary = core.summary(true);
        core.emit(
            Event {
                ts,
                event: "summary",
                source: core.source.clone(),
                frame: 0,
                client: None,
                server: None,
                body: Body::Summary(Box::new(summary)),
            },
            out,
        );
    }
}

fn ep(ip: IpAddr, port: u16) -> Endpoint {
    Endpoint { ip, port }
}

/// A cheap test of whether bytes start like a DCE/RPC connection-oriented PDU header.
fn looks_like_dcerpc(b: &[u8]) -> bool {
    b.len() >= 10 && b[0] == 5 && b[1] <= 1 && b[2] <= 19 && (b[4] & 0xe0) == 0 && b[5] <= 3 && {
        let le = b[4] & 0x10 != 0;
        let len = if le {
            u16::from_le_bytes([b[8], b[9]])
        } else {
            u16::from_be_bytes([b[8], b[9]])
        };
        len >= 16
    }
}

impl Core {
    /// An event of this source (the envelope of docs/events.md).
    fn event(
        &self,
        event: &'static str,
        ts: Ts,
        frame: u64,
        client: Option<Endpoint>,
        server: Option<Endpoint>,
        body: Body,
    ) -> Event {
        Event {
            ts,
            event,
            source: self.source.clone(),
            frame,
            client,
            server,
            body,
        }
    }

    /// Queues the event readied by [`KeptEvents::next`]; a full batch is handed on.
    fn commit_kept(&mut self, out: &mut dyn Out) {
        self.kept.pending += 1;
        if !self.kept.defer || self.kept.pending == KEPT_BATCH {
            self.flush_kept(out);
        }
    }

    /// Hands the waiting kept events on, in order: first each call is decoded into its event
    /// (counted, its stubs returned for reuse); then, up to each call with an anomaly (which goes
    /// out just before the call's event, as [`Engine::packet`] would emit it), the analysis'
    /// reads of each event are started, each is written to the sinks, and each is given to the
    /// analysis.
    fn flush_kept(&mut self, out: &mut dyn Out) {
        let n = self.kept.pending;
        if n == 0 {
            return;
        }
        // Nothing waits from here on: an anomaly emitted below does not come back here.
        self.kept.pending = 0;
        for i in 0..n {
            let Some(mut call) = self.kept.calls[i].take() else {
                continue;
            };
            let Body::Kms(kc) = &mut self.kept.slots[i].body else {
                continue;
            };
            let anomaly = kms_call(&call, self.cfg.keep_payloads, kc, &mut self.texts);
            self.stats.kms_calls += 1;
            let status = kc.status;
            match KMS_STATUSES.iter().position(|s| *s == status) {
                Some(k) => self.stats.kms_by_status[k] += 1,
                None => *self.stats.kms_by_other_status.entry(status).or_insert(0) += 1,
            }
            self.recycle_stubs(&mut call);
            if let Some(a) = anomaly {
                // Where the call stands: its anomaly is written when the batch is handed on.
                self.kept.anomalies.push((i, a));
            }
        }
        let mut start = 0;
        let mut found = std::mem::take(&mut self.kept.anomalies);
        for (i, (kind, detail)) in found.drain(..) {
            self.hand_on(start..i, out);
            let ev = &self.kept.slots[i];
            let (frame, ts, client, server) = (ev.frame, ev.ts, ev.client, ev.server);
            self.anomaly(frame, ts, client, server, "kms", kind, detail, out);
            start = i;
        }
        self.kept.anomalies = found;
        self.hand_on(start..n, out);
    }

    /// Hands the kept events of `range` on (see [`Core::flush_kept`]).
    fn hand_on(&mut self, range: std::ops::Range<usize>, out: &mut dyn Out) {
        if range.is_empty() {
            return;
        }
        let evs = &mut self.kept.slots[range];
        for ev in evs.iter() {
            self.state.prefetch(ev);
        }
        out.events(evs);
        for ev in evs.iter_mut() {
            self.state.observe(ev);
            // Kept for the next bind_ack, bounded (a hostile ack may list 255 results).
            if let Body::Rpc(info) = &mut ev.body
                && info.transfer_syntaxes.capacity() > 8
            {
                info.transfer_syntaxes = Vec::new();
            }
        }
    }

    /// The stub buffers of a call reported go back to the next connections' sessions (see
    /// `spare_stubs`).
    fn recycle_stubs(&mut self, call: &mut Call) {
        let reply = match &mut call.reply {
            Reply::Response(h) => Some(std::mem::take(&mut h.stub)),
            _ => None,
        };
        for stub in call.request.take().map(|h| h.stub).into_iter().chain(reply) {
            if self.spare_stubs.len() < MAX_SPARE_STUBS
                && stub.capacity() > 0
                && stub.capacity() <= MAX_SPARE_STUB_CAPACITY
            {
                let mut stub = stub;
                stub.clear();
                self.spare_stubs.push(stub);
            }
        }
    }

    fn emit(&mut self, ev: Event, out: &mut dyn Out) {
        self.emit_ref(&ev, out);
    }

    /// [`Self::emit`] for a caller that keeps the event afterwards (to reuse its buffers). The
    /// state's reads are started before the sinks' work and used after it (the two are
    /// independent: the sinks see the event, not the state).
    fn emit_ref(&mut self, ev: &Event, out: &mut dyn Out) {
        // The kept events waiting go first.
        self.flush_kept(out);
        self.state.prefetch(ev);
        out.event(ev);
        self.state.observe(ev);
    }

    #[allow(clippy::too_many_arguments)]
    fn anomaly(
        &mut self,
        frame: u64,
        ts: Ts,
        client: Option<Endpoint>,
        server: Option<Endpoint>,
        layer: &'static str,
        kind: &'static str,
        detail: String,
        out: &mut dyn Out,
    ) {
        self.stats.anomalies += 1;
        let n = self.stats.anomaly_kinds.entry(kind).or_insert(0);
        *n += 1;
        if *n > MAX_ANOMALIES_PER_KIND {
            return;
        }
        let ev = self.event(
            "anomaly",
            ts,
            frame,
            client,
            server,
            Body::Anomaly(Anomaly {
                layer,
                kind,
                detail,
            }),
        );
        self.emit(ev, out);
    }

    fn report_suppressed(&mut self, frame: u64, ts: Ts, out: &mut dyn Out) {
        let mut over: Vec<(&'static str, u64)> = self
            .stats
            .anomaly_kinds
            .iter()
            .filter(|(_, n)| **n > MAX_ANOMALIES_PER_KIND)
            .map(|(k, n)| (*k, *n))
            .collect();
        over.sort();
        for (kind, n) in over {
            let ev = self.event("anomaly", ts, frame, None, None, Body::Anomaly(Anomaly {
                    layer: "capture",
                    kind: "anomaly_limit",
                    detail: format!(
                        "{n} anomalies of kind {kind}; only the first {MAX_ANOMALIES_PER_KIND} were reported individually"
                    ),
                }));
            self.emit(ev, out);
        }
    }

    fn is_watched(&self, port: u16) -> bool {
        self.watched_ports.contains(port)
    }

    fn sweep(&mut self, now: Ts, frame: u64, out: &mut dyn Out) {
        for key in self.flows.idle_keys(now) {
            if let Some(f) = self.flows.take(&key, || App::Probing) {
                self.close_flow(f, CloseReason::Timeout, frame, now, out);
            }
        }
        let mut ex = std::mem::take(&mut self.dns_buf);
        self.dns.expire(now, &mut ex);
        self.emit_dns(&mut ex, out);
        self.dns_buf = ex;
    }

    /// A decoded packet to the TCP or UDP handling. Inlined into [`Engine::packet`], which decodes
    /// the common packet in place: the flow key is built there from the decoded addresses while
    /// they are still in registers, and only the TCP header fields go through memory (as a
    /// copy of its own, so that the rest of `d` need not be written). Built from a `Decoded` in
    /// memory, the key's wide loads of the addresses waited for the narrow stores that wrote
    /// them (failed store forwarding: the hottest instructions of the TCP path natively).
    #[inline(always)]
    fn transport(&mut self, d: Decoded<'_>, pkt: &RawPacket<'_>, out: &mut dyn Out) {
        match d.transport {
            Transport::Tcp(seg) => {
                let (key, src_is_lo) =
                    FlowKey::with_side((d.src, seg.src_port), (d.dst, seg.dst_port));
                self.tcp(&key, src_is_lo, &seg, pkt.frame, pkt.ts, out);
            }
            Transport::Udp(u) => self.udp(d.src, d.dst, &u, pkt.frame, pkt.ts, out),
            Transport::Other { .. } => {}
        }
    }

    // ---------------------------------------------------------------------------------------
    // TCP

    /// A TCP segment of the connection `key`, sent by the key's lower endpoint when `src_is_lo`
    /// (as [`FlowKey::with_side`] says). Not inlined: [`Core::transport`] is inlined at two
    /// places of [`Engine::packet`].
    #[inline(never)]
    fn tcp(
        &mut self,
        key: &FlowKey,
        src_is_lo: bool,
        seg: &TcpSegment<'_>,
        frame: u64,
        ts: Ts,
        out: &mut dyn Out,
    ) {
        // The key is hashed once for whatever the packet does to the flow table.
        let hk = self.flows.hashed(*key);
        // One table lookup per packet of a known connection (the common case).
        let flow = match self.flows.get_mut(&hk) {
            Some(flow) => flow,
            None => {
                // A lone SYN opens no flow yet: the table keeps a compact entry while the
                // connection is only a handshake (SYNs, SYN-ACK), so SYN floods stay cheap (see
                // crate::flow).
                let bare = !seg.rst && !seg.fin && seg.payload.is_empty();
                if bare && seg.syn && !seg.ack_flag {
                    let watched = self.is_watched(seg.dst_port);
                    if self
                        .flows
                        .on_lone_syn(&hk, src_is_lo, seg.seq, frame, ts, watched)
                    {
                        return;
                    }
                }
                if bare
                    && seg.syn
                    && seg.ack_flag
                    && self.flows.on_syn_ack(&hk, src_is_lo, seg.seq, ts)
                {
                    return;
                }
                match self.flows.promote(&hk, || App::Probing) {
                    Some(flow) => flow,
                    None => {
                        if !self.new_flow(&hk, src_is_lo, seg, frame, ts) {
                            return;
                        }
                        let Some(flow) = self.flows.get_mut(&hk) else {
                            return;
                        };
                        flow
                    }
                }
            }
        };
        flow.last_ts = ts;
        // SRV answers may have added watched ports since the flow began.
        if !flow.watched {
            flow.watched = self.watched_ports.contains(flow.server.port);
        }
        if !(seg.syn || seg.fin || seg.rst) {
            // A connection not worth following (neither DCE/RPC nor DNS) stops here unless the
            // packet opens or ends it: everything below would only update the handshake
            // bookkeeping.
            if matches!(flow.app, App::Ignored) {
                if !seg.payload.is_empty() {
                    flow.hs.data_seen = true;
                }
                return;
            }
            // A bare ACK (about a third of a KMS connection's packets) changes nothing below
            // either: no handshake step, no bytes, no end. Except over the memory bound, where
            // any packet of a connection holding buffers makes it give them up (below).
            if seg.payload.is_empty() && self.flow_state_bytes <= MAX_FLOW_STATE_BYTES {
                return;
            }
        }
        let dir = flow.direction_from_side(src_is_lo);
        let hs = &mut flow.hs;
        if seg.syn && !seg.ack_flag && dir == Direction::ToServer {
            hs.syns += 1;
            hs.isn[0].get_or_insert(seg.seq);
        }
        if seg.syn && seg.ack_flag && dir == Direction::ToClient {
            hs.syn_ack = true;
            hs.isn[1].get_or_insert(seg.seq);
        }
        if !seg.payload.is_empty() {
            hs.data_seen = true;
        }
        if seg.fin {
            hs.fin[dir.index()] = true;
        }
        // Connection end, acted on last (after the packet's own bytes): an RST, or the second
        // FIN. Decided here, while the flow is at hand, so that the end needs no second lookup.
        let close = if seg.rst {
            hs.rst_from = Some(dir);
            Some(CloseReason::Reset)
        } else if seg.fin && hs.fin[0] && hs.fin[1] {
            Some(CloseReason::ConnectionClosed)
        } else {
            None
        };
        let heap_before = app_heap(&flow.app);
        let was_probing = matches!(flow.app, App::Probing);
        // Classify on the first payload bytes of the stream: when the handshake was seen, wait for
        // the segment that starts the stream (a reordered later segment says nothing).
        let at_start = match flow.hs.isn[dir.index()] {
            Some(isn) => seg.seq == isn.wrapping_add(1),
            None => true,
        };
        if matches!(flow.app, App::Probing) && !seg.payload.is_empty() && (at_start || flow.watched)
        {
            let server_port = flow.server.port;
            let mut streams = [Stream::new(), Stream::new()];
            for d in [Direction::ToServer, Direction::ToClient] {
                if let Some(isn) = flow.hs.isn[d.index()] {
                    streams[d.index()].on_syn(isn);
                }
            }
            flow.app = if looks_like_dcerpc(seg.payload) || flow.watched {
                let kms_port = self.cfg.kms_ports.contains(&server_port);
                let app = match self.spare_rpc.pop() {
                    Some(mut app) => {
                        app.streams = streams;
                        app.session.reset(kms_port);
                        app
                    }
                    None => Box::new(RpcApp {
                        streams,
                        // Bind events are not looked at here (`rpc_event`).
                        session: Session::new(kms_port).bind_events(false),
                    }),
                };
                App::Rpc(app)
            } else if dns::is_dns_port(server_port) {
                App::DnsTcp(Box::new(streams))
            } else {
                App::Ignored
            };
        }
        let (client, server) = (flow.client, flow.server);
        let hs_syn_seen = [flow.hs.syns > 0, flow.hs.syn_ack];
        let mut become_ignored = false;
        let mut tcp_anomalies: Vec<(&'static str, String)> = Vec::new();
        let mut dns_msgs: Vec<(bool, Vec<u8>)> = Vec::new();
        match &mut flow.app {
            App::Rpc(app) => {
                let app: &mut RpcApp = app;
                if seg.syn {
                    app.streams[dir.index()].on_syn(seg.seq);
                }
                let seq = if seg.syn {
                    seg.seq.wrapping_add(1)
                } else {
                    seg.seq
                };
                if !seg.payload.is_empty() || seg.fin {
                    if app.streams[dir.index()].next_seq().is_none()
                        && !seg.syn
                        && !hs_syn_seen[dir.index()]
                        && !seg.payload.is_empty()
                    {
                        // Capture started mid-connection in this direction: the session searches for
                        // the next PDU header instead of expecting one at the first byte.
                        app.session.on_gap(dir, 0, frame, ts, &mut self.rpc_buf);
                    }
                    // Data flowing the other way while bytes are missing in front of buffered data
                    // means the hole will not be filled (the peer already answered): give up on it
                    // now so the buffered PDUs are parsed in order with the answer. Only when this
                    // direction itself flows in order: if it has holes too, segments are being
                    // reordered (a capture of shuffled segments), and the reverse hole is more
                    // likely late than lost (the end of the connection gives up on it otherwise).
                    let rev = dir.reverse();
                    let this = &app.streams[dir.index()];
                    let in_order =
                        !this.has_pending_gap() && this.next_seq().is_none_or(|n| n == seq);
                    if !seg.payload.is_empty()
                        && in_order
                        && app.streams[rev.index()].has_pending_gap()
                    {
                        while let Some(n) = app.streams[rev.index()].skip_gap() {
                            tcp_anomalies.push(gap_anomaly(rev, n));
                            app.session.on_gap(rev, n, frame, ts, &mut self.rpc_buf);
                            drain_rpc(app, rev, frame, ts, &mut self.rpc_buf);
                            if !app.streams[rev.index()].has_pending_gap() {
                                break;
                            }
                        }
                    }
                    // When this segment's bytes will be parsed right away (below: always for the
                    // client's stream; for the server's unless replies wait for a hole in the
                    // client's stream, which this segment cannot change), the session parses them
                    // in place from the payload and only an incomplete PDU's tail is buffered.
                    let parse_now = dir == Direction::ToServer
                        || !app.streams[Direction::ToServer.index()].has_pending_gap();
                    let outcome = if parse_now {
                        let (session, rpc_buf) = (&mut app.session, &mut self.rpc_buf);
                        let stubs = &mut self.spare_stubs;
                        app.streams[dir.index()].on_segment_with(seq, seg.payload, seg.fin, |b| {
                            session.with_stub_pool(stubs, |s| s.on_data(dir, b, frame, ts, rpc_buf))
                        })
                    } else {
                        app.streams[dir.index()].on_segment(seq, seg.payload, seg.fin)
                    };
                    if let SegmentOutcome::LimitReached { .. } = outcome {
                        // Give up on the hole in front of the buffered data; resynchronise after it.
                        while let Some(n) = app.streams[dir.index()].skip_gap() {
                            tcp_anomalies.push(gap_anomaly(dir, n));
                            app.session.on_gap(dir, n, frame, ts, &mut self.rpc_buf);
                            if !app.streams[dir.index()].ready().is_empty()
                                || !app.streams[dir.index()].has_pending_gap()
                            {
                                break;
                            }
                        }
                        let _ = app.streams[dir.index()].on_segment(seq, seg.payload, seg.fin);
                    }
                    if let SegmentOutcome::Overlap { conflicting: true }
                    | SegmentOutcome::Duplicate { conflicting: true } = outcome
                    {
                        tcp_anomalies.push(gap_anomaly(dir, 0));
                    }
                    // Answers are parsed after what they answer: server-to-client bytes wait
                    // while the client's stream still misses bytes in front of buffered data
                    // (reordered segments), and are parsed once the hole fills.
                    if dir == Direction::ToServer || !defer_reply(app) {
                        drain_rpc(app, dir, frame, ts, &mut self.rpc_buf);
                    }
                    if dir == Direction::ToServer && !app.streams[dir.index()].has_pending_gap() {
                        drain_rpc(app, Direction::ToClient, frame, ts, &mut self.rpc_buf);
                    }
                    // Not DCE/RPC after all: stop reassembling (the session reported it).
                    become_ignored = app.session.state() == SessionState::NotDceRpc;
                }
            }
            App::DnsTcp(streams) => {
                if seg.syn {
                    streams[dir.index()].on_syn(seg.seq);
                }
                let seq = if seg.syn {
                    seg.seq.wrapping_add(1)
                } else {
                    seg.seq
                };
                if !seg.payload.is_empty() {
                    let st = &mut streams[dir.index()];
                    if let SegmentOutcome::LimitReached { .. } =
                        st.on_segment(seq, seg.payload, seg.fin)
                    {
                        while st.skip_gap().is_some() && st.has_pending_gap() {}
                    }
                    let frames = dns::split_tcp_messages(st.ready());
                    for m in &frames.messages {
                        dns_msgs.push((dir == Direction::ToServer, m.to_vec()));
                    }
                    let consumed = frames.consumed;
                    st.consume(consumed);
                }
            }
            App::Probing | App::Ignored => {}
        }
        if become_ignored {
            flow.app = App::Ignored;
        }
        // Total memory: the state of all connections (sessions and reassembly buffers) stays
        // under MAX_FLOW_STATE_BYTES. Over it, a connection that just started is not followed;
        // one already followed gives up on its holes at once (what waits behind them is parsed
        // after a gap, as when its own limit is hit) and its buffers shrink.
        self.flow_state_bytes =
            self.flow_state_bytes.saturating_sub(heap_before) + app_heap(&flow.app);
        if self.flow_state_bytes > MAX_FLOW_STATE_BYTES && app_heap(&flow.app) > 0 {
            let before = app_heap(&flow.app);
            let mut lost = 0u64;
            match &mut flow.app {
                // A connection classified by this very packet is not followed.
                App::Rpc(_) | App::DnsTcp(_) if was_probing => flow.app = App::Ignored,
                App::Rpc(app) => {
                    for d in [Direction::ToServer, Direction::ToClient] {
                        while let Some(n) = app.streams[d.index()].skip_gap() {
                            lost += n;
                            app.session.on_gap(d, n, frame, ts, &mut self.rpc_buf);
                            drain_rpc(app, d, frame, ts, &mut self.rpc_buf);
                        }
                        app.streams[d.index()].shrink();
                    }
                }
                // DNS over TCP is not worth the memory: stop following the connection.
                App::DnsTcp(_) => flow.app = App::Ignored,
                App::Probing | App::Ignored => {}
            }
            self.flow_state_bytes =
                self.flow_state_bytes.saturating_sub(before) + app_heap(&flow.app);
            let dropped = matches!(flow.app, App::Ignored);
            if dropped || lost > 0 {
                tcp_anomalies.push((
                    "memory_limit",
                    if dropped {
                        format!(
                            "connection state of all connections exceeds {MAX_FLOW_STATE_BYTES} \
                         bytes; this connection is not followed"
                        )
                    } else {
                        format!(
                            "connection state of all connections exceeds {MAX_FLOW_STATE_BYTES} \
                         bytes; this connection gave up waiting for {lost} missing bytes"
                        )
                    },
                ));
            }
        }
        for (kind, detail) in tcp_anomalies {
            self.anomaly(
                frame,
                ts,
                Some(client),
                Some(server),
                "tcp",
                kind,
                detail,
                out,
            );
        }
        for (to_server, m) in dns_msgs {
            let (from, to) = if to_server {
                (client, server)
            } else {
                (server, client)
            };
            self.dns_message(
                (from.ip, from.port),
                (to.ip, to.port),
                dns::Transport::Tcp,
                &m,
                true,
                frame,
                ts,
                out,
            );
        }
        self.process_rpc_events(client, server, out);
        if let Some(reason) = close
            && let Some(f) = self.flows.remove(&hk)
        {
            self.close_flow(f, reason, frame, ts, out);
        }
    }

    /// Creates the flow for a packet of an unknown connection. Returns false when the packet does
    /// not start anything worth tracking.
    fn new_flow(
        &mut self,
        hk: &HashedKey,
        src_is_lo: bool,
        seg: &TcpSegment<'_>,
        frame: u64,
        ts: Ts,
    ) -> bool {
        // A bare ACK starts nothing: it is what follows every close (the last ACK after both
        // FINs), and a flow made from it would sit idle until the timeout.
        if seg.rst || (seg.payload.is_empty() && !seg.syn && !seg.fin) {
            return false;
        }
        let key = hk.key();
        let (s, d) = if src_is_lo {
            (key.lo(), key.hi())
        } else {
            (key.hi(), key.lo())
        };
        // Who is the client: the SYN sender; else the side not on a KMS/watched port; else, for
        // DCE/RPC, the sender of a client PDU type; else the higher port.
        let (client, server) = if seg.syn && !seg.ack_flag {
            (s, d)
        } else if seg.syn && seg.ack_flag {
            (d, s)
        } else if self.is_watched(d.1) && !self.is_watched(s.1) {
            (s, d)
        } else if self.is_watched(s.1) && !self.is_watched(d.1) {
            (d, s)
        } else if looks_like_dcerpc(seg.payload) {
            // bind, alter_context, request, auth3, co_cancel, orphaned come from the client.
            if matches!(seg.payload[2], 0 | 11 | 14 | 16 | 18 | 19) {
                (s, d)
            } else {
                (d, s)
            }
        } else if seg.payload.is_empty() {
            return false;
        } else if s.1 >= d.1 {
            (s, d)
        } else {
            (d, s)
        };
        let watched = self.is_watched(server.1);
        let flow = Flow {
            client: ep(client.0, client.1),
            server: ep(server.0, server.1),
            last_ts: ts,
            hs: Handshake {
                first_frame: frame,
                first_ts: ts,
                ..Handshake::default()
            },
            watched,
            client_is_lo: key.is_lo(client),
            app: App::Probing,
        };
        self.flows.insert(hk, flow).is_ok()
    }

    fn close_flow(
        &mut self,
        mut f: Flow<App>,
        reason: CloseReason,
        frame: u64,
        ts: Ts,
        out: &mut dyn Out,
    ) {
        let (client, server) = (f.client, f.server);
        self.flow_state_bytes = self.flow_state_bytes.saturating_sub(app_heap(&f.app));
        let mut open_calls = 0;
        if let App::Rpc(app) = &mut f.app {
            // Deliver what is buffered behind holes before closing.
            for dir in [Direction::ToServer, Direction::ToClient] {
                let mut guard = 0;
                while app.streams[dir.index()].has_pending_gap() && guard < 64 {
                    guard += 1;
                    if let Some(n) = app.streams[dir.index()].skip_gap() {
                        app.session.on_gap(dir, n, frame, ts, &mut self.rpc_buf);
                    }
                    drain_rpc(app, dir, frame, ts, &mut self.rpc_buf);
                }
                // Server-to-client bytes held back by `defer_reply`.
                drain_rpc(app, dir, frame, ts, &mut self.rpc_buf);
            }
            open_calls = app.session.open_calls();
            app.session.on_close(reason, frame, ts, &mut self.rpc_buf);
        }
        self.process_rpc_events(client, server, out);
        // Connection outcomes towards watched ports.
        if f.watched && f.hs.syns > 0 && !f.hs.syn_ack && !f.hs.data_seen {
            let result = if f.hs.rst_from == Some(Direction::ToClient) {
                "refused"
            } else {
                "no_answer"
            };
            self.connect_event(&f, result, None, frame, ts, out);
        } else if reason == CloseReason::Reset && open_calls > 0 {
            let who = match f.hs.rst_from {
                Some(Direction::ToClient) => "the server",
                _ => "the client",
            };
            self.connect_event(
                &f,
                "reset",
                Some(format!(
                    "{who} reset the connection with {open_calls} call(s) open"
                )),
                frame,
                ts,
                out,
            );
        }
        if let App::Rpc(app) = f.app
            && self.spare_rpc.len() < MAX_SPARE_RPC
        {
            let mut app = app;
            // Free what the connection held now rather than when the state is reused.
            app.streams = [Stream::new(), Stream::new()];
            app.session.reset(false);
            self.spare_rpc.push(app);
        }
    }

    fn connect_event(
        &mut self,
        f: &Flow<App>,
        result: &'static str,
        detail: Option<String>,
        frame: u64,
        ts: Ts,
        out: &mut dyn Out,
    ) {
        let first_ts = if result == "reset" { ts } else { f.hs.first_ts };
        let first_frame = if result == "reset" {
            frame
        } else {
            f.hs.first_frame
        };
        let ev = self.event(
            "rpc",
            first_ts,
            first_frame,
            Some(f.client),
            Some(f.server),
            Body::Rpc(RpcInfo {
                pdu: "connect",
                result: Some(result),
                syn_count: Some(f.hs.syns),
                detail,
                ..RpcInfo::default()
            }),
        );
        self.emit(ev, out);
    }

    /// Turns the session events of the packet just parsed into output events. Inlined into the
    /// per-packet path for its test: most packets complete no PDU.
    #[inline(always)]
    fn process_rpc_events(&mut self, client: Endpoint, server: Endpoint, out: &mut dyn Out) {
        if !self.rpc_buf.is_empty() {
            self.process_rpc_buf(client, server, out);
        }
    }

    #[inline(never)]
    fn process_rpc_buf(&mut self, client: Endpoint, server: Endpoint, out: &mut dyn Out) {
        let mut events = std::mem::take(&mut self.rpc_buf);
        // Handled in place, not moved out: a session event is a few hundred bytes (the bind_ack
        // lists are inline), and a move per event was a memcpy each.
        for ev in &mut events {
            self.rpc_event(ev, client, server, out);
        }
        events.clear();
        self.rpc_buf = events;
    }

    fn rpc_event(
        &mut self,
        ev: &mut RpcEvent,
        client: Endpoint,
        server: Endpoint,
        out: &mut dyn Out,
    ) {
        match ev {
            RpcEvent::Bind { .. } | RpcEvent::Control { .. } => {}
            RpcEvent::BindAck {
                frame,
                ts,
                call_id,
                ptype,
                assoc_group,
                sec_addr,
                results,
                ..
            } => {
                let (frame, ts, call_id, ptype, assoc_group) =
                    (*frame, *ts, *call_id, *ptype, *assoc_group);
                let kms = results
                    .iter()
                    .any(|r| r.abstract_syntax.is_some_and(|s| s.is_kms()));
                if !kms && !self.cfg.kms_ports.contains(&server.port) {
                    return;
                }
                let interface = results.iter().find_map(|r| r.abstract_syntax);
                let ev = self.kept.next(
                    &self.source,
                    ("rpc", ts, frame, client, server),
                    |b| matches!(b, Body::Rpc(_)),
                    || Body::Rpc(RpcInfo::default()),
                );
                let Body::Rpc(info) = &mut ev.body else {
                    return;
                };
                // Every field set (destructured so that a new one cannot be left over from the
                // last connection's event).
                let RpcInfo {
                    pdu,
                    call_id: info_call_id,
                    interface: info_interface,
                    interface_name,
                    transfer_syntaxes,
                    assoc_group: info_assoc_group,
                    sec_addr: info_sec_addr,
                    status,
                    result,
                    syn_count,
                    detail,
                } = info;
                let texts = &mut self.texts;
                *pdu = ptype.known_name().unwrap_or("bind_ack");
                *info_call_id = Some(call_id);
                *info_interface = interface.map(|s| texts.guid(&s.uuid));
                *interface_name = interface.and_then(|s| s.is_kms().then_some("KMS"));
                transfer_syntaxes.clear();
                transfer_syntaxes.extend(results.iter().map(|r| {
                    let syntax = if r.ack.transfer_syntax.uuid.is_zero() {
                        r.proposed.first().copied().unwrap_or(r.ack.transfer_syntax)
                    } else {
                        r.ack.transfer_syntax
                    };
                    event::TransferSyntaxResult {
                        ctx_id: r.ctx_id,
                        syntax: texts.guid(&syntax.uuid),
                        syntax_name: syntax_name(&syntax),
                        result: ack_result_name(r.ack.result),
                        reason: r.ack.reason,
                    }
                }));
                *info_assoc_group = Some(assoc_group);
                *info_sec_addr = Some(std::mem::take(sec_addr));
                *status = None;
                *result = None;
                *syn_count = None;
                *detail = None;
                self.commit_kept(out);
            }
            RpcEvent::BindNak {
                frame,
                ts,
                call_id,
                reason,
                versions,
            } => {
                let (frame, ts, call_id, reason) = (*frame, *ts, *call_id, *reason);
                let versions = std::mem::take(versions);
                let name = BindNak { reason, versions }.reason_name();
                let info = RpcInfo {
                    pdu: "bind_nak",
                    call_id: Some(call_id),
                    status: Some(Hresult {
                        code: reason.to_string().into(),
                        name,
                        meaning: Some(
                            "the server rejected the association (bind_nak provider reject reason)",
                        ),
                    }),
                    ..RpcInfo::default()
                };
                let ev = self.event(
                    "rpc",
                    ts,
                    frame,
                    Some(client),
                    Some(server),
                    Body::Rpc(info),
                );
                self.emit(ev, out);
            }
            RpcEvent::Call(call) => self.call(call, client, server, out),
            RpcEvent::Anomaly {
                frame,
                ts,
                kind,
                detail,
                ..
            } => {
                self.anomaly(
                    *frame,
                    *ts,
                    Some(client),
                    Some(server),
                    "dcerpc",
                    kind,
                    std::mem::take(detail),
                    out,
                );
            }
        }
    }

    fn call(&mut self, call: &mut Call, client: Endpoint, server: Endpoint, out: &mut dyn Out) {
        self.call_events(call, client, server, out);
        // What the kms event did not take.
        self.recycle_stubs(call);
    }

    fn call_events(
        &mut self,
        call: &mut Call,
        client: Endpoint,
        server: Endpoint,
        out: &mut dyn Out,
    ) {
        let is_kms_iface = call.interface.is_some_and(|s| s.is_kms());
        let kms_port = self.cfg.kms_ports.contains(&server.port);
        if let Reply::Fault {
            frame, ts, status, ..
        } = &call.reply
        {
            let info = RpcInfo {
                pdu: "fault",
                call_id: Some(call.call_id),
                status: Some(hresult(*status)),
                ..RpcInfo::default()
            };
            let ev = self.event(
                "rpc",
                *ts,
                *frame,
                Some(client),
                Some(server),
                Body::Rpc(info),
            );
            self.emit(ev, out);
        }
        if !(is_kms_iface || (kms_port && call.interface.is_none()))
            || call.opnum.is_some_and(|o| o != 0)
        {
            return;
        }
        let (ts, frame) = match (&call.request, &call.reply) {
            (Some(r), _) => (r.ts, r.frame),
            (None, Reply::Response(h)) => (h.ts, h.frame),
            (None, Reply::Fault { ts, frame, .. }) => (*ts, *frame),
            (None, Reply::Missing(_)) => return,
        };
        // The event is built in a kept one, where it stands (see `KeptEvents`), and the call
        // (with its stubs) waits there to be decoded into it with the rest of the batch.
        let slot = self.kept.pending;
        self.kept.next(
            &self.source,
            ("kms", ts, frame, client, server),
            |b| matches!(b, Body::Kms(_)),
            || Body::Kms(Box::default()),
        );
        self.kept.calls[slot] = Some(Call {
            request: call.request.take(),
            reply: std::mem::replace(&mut call.reply, Reply::Missing(CloseReason::CaptureEnded)),
            ..*call
        });
        self.commit_kept(out);
    }

    // ---------------------------------------------------------------------------------------
    // UDP / DNS

    fn udp(
        &mut self,
        src: IpAddr,
        dst: IpAddr,
        u: &UdpDatagram<'_>,
        frame: u64,
        ts: Ts,
        out: &mut dyn Out,
    ) {
        let well_known = dns::is_dns_port(u.src_port) || dns::is_dns_port(u.dst_port);
        if !well_known && !dns::looks_like_dns(u.payload) {
            return;
        }
        self.dns_message(
            (src, u.src_port),
            (dst, u.dst_port),
            dns::Transport::Udp,
            u.payload,
            well_known,
            frame,
            ts,
            out,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn dns_message(
        &mut self,
        from: (IpAddr, u16),
        to: (IpAddr, u16),
        transport: dns::Transport,
        payload: &[u8],
        well_known: bool,
        frame: u64,
        ts: Ts,
        out: &mut dyn Out,
    ) {
        match dns::parse_message(payload) {
            Ok(msg) => {
                let mut ex = std::mem::take(&mut self.dns_buf);
                self.dns
                    .on_message(from, to, transport, msg, frame, ts, &mut ex);
                self.emit_dns(&mut ex, out);
                self.dns_buf = ex;
            }
            Err(e) => {
                if well_known {
                    let (c, s) = (ep(from.0, from.1), ep(to.0, to.1));
                    self.anomaly(
                        frame,
                        ts,
                        Some(c),
                        Some(s),
                        "dns",
                        e.kind(),
                        format!("malformed DNS message: {e}"),
                        out,
                    );
                }
            }
        }
    }

    fn emit_dns(&mut self, exchanges: &mut Vec<dns::Exchange>, out: &mut dyn Out) {
        for ex in exchanges.drain(..) {
            // SRV answers tell which ports to watch for connection outcomes.
            if let Some(resp) = &ex.response {
                for r in resp.answers.iter().chain(resp.additional.iter()) {
                    if let dns::RecordData::Srv { port, .. } = r.data
                        && self.watched_ports.len() < MAX_WATCHED_PORTS
                    {
                        self.watched_ports.insert(port);
                    }
                }
            }
            self.stats.dns_queries += 1;
            let (ev_body, frame, ts) = convert::dns_exchange(&ex);
            if ex.outcome == dns::Outcome::Evicted {
                // The pending-query limit was hit: say so before the query's `unanswered` event.
                let (c, s) = (ep(ex.client.0, ex.client.1), ep(ex.server.0, ex.server.1));
                self.anomaly(
                    frame,
                    ts,
                    Some(c),
                    Some(s),
                    "dns",
                    "pending_limit",
                    format!(
                        "more than {} DNS queries (or {} bytes of them) waiting for an answer at \
                         once; the oldest was ended as unanswered without waiting for its answer",
                        dns::MAX_PENDING_QUERIES,
                        dns::MAX_PENDING_QUERY_BYTES
                    ),
                    out,
                );
            }
            let (client, server) = (ep(ex.client.0, ex.client.1), ep(ex.server.0, ex.server.1));
            let ev = self.event(
                "dns",
                ts,
                frame,
                Some(client),
                Some(server),
                Body::Dns(Box::new(ev_body)),
            );
            self.emit(ev, out);
        }
    }

    /// Runs the checks over the state and emits the findings.
    fn findings(&mut self, ts: Ts, out: &mut dyn Out) {
        // The time-based checks (KMS-19/20, RPC-02, DNS-04) need the capture's span, not only the
        // span of the events.
        self.state.set_span(self.stats.first_ts, ts);
        let findings = crate::analysis::checks::run(&self.state, &self.cfg.policy);
        for f in findings {
            *self.stats.findings.entry(f.severity.as_str()).or_insert(0) += 1;
            let frame = f.frames.first().copied().unwrap_or(0);
            // The envelope's ts is the capture time of the first evidence packet.
            let first_ts = f.first_ts.unwrap_or(ts);
            let ev = self.event("finding", first_ts, frame, None, None, Body::Finding(f));
            self.emit(ev, out);
        }
    }

    fn summary(&self, last: bool) -> Summary {
        let duration_s = match self.stats.first_ts {
            Some(f) => (self.stats.last_ts.0.saturating_sub(f.0)) as f64 / 1e9,
            None => 0.0,
        };
        Summary {
            first_ts: self.stats.first_ts.map(|t| t.rfc3339_micros().to_string()),
            packets: self.stats.packets,
            bytes: self.stats.bytes,
            duration_s: (duration_s * 1e6).round() / 1e6,
            dropped: self.capture_drops.map(|d| d.0),
            if_dropped: self.capture_drops.map(|d| d.1),
            kms_calls: self.stats.kms_calls,
            kms_by_status: {
                let mut m = self.stats.kms_by_other_status.clone();
                for (name, n) in KMS_STATUSES.iter().zip(self.stats.kms_by_status) {
                    if n > 0 {
                        m.insert(name, n);
                    }
                }
                m
            },
            dns_queries: self.stats.dns_queries,
            anomalies: self.stats.anomalies,
            findings: self.stats.findings.clone(),
            hosts: self.state.host_summaries(),
            clients: self.state.clients.len() as u64 + self.state.clients_untracked,
            client_list: self.state.client_list(),
            last,
        }
    }
}

/// Bytes held by the application state of a flow: its boxed state and reassembly buffers.
fn app_heap(app: &App) -> usize {
    match app {
        App::Rpc(a) => {
            std::mem::size_of::<RpcApp>() + a.streams[0].heap_bytes() + a.streams[1].heap_bytes()
        }
        App::DnsTcp(s) => {
            std::mem::size_of::<[Stream; 2]>() + s[0].heap_bytes() + s[1].heap_bytes()
        }
        App::Probing | App::Ignored => 0,
    }
}

/// The `tcp_gap` anomaly for `n` bytes given up on in direction `dir`, or with `n` 0 the
/// `tcp_overlap_conflict` anomaly.
#[cold]
fn gap_anomaly(dir: Direction, n: u64) -> (&'static str, String) {
    if n == 0 {
        (
            "tcp_overlap_conflict",
            "a retransmitted or overlapping segment carried different bytes; the first copy was \
             kept"
                .to_string(),
        )
    } else {
        (
            "tcp_gap",
            format!(
                "{n} bytes missing in the {} stream; resynchronised on the next DCE/RPC header",
                dir_name(dir)
            ),
        )
    }
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::ToServer => "client-to-server",
        Direction::ToClient => "server-to-client",
    }
}

/// True when the server-to-client bytes of `app` should wait: the client-to-server stream misses
/// bytes in front of data it has buffered (a request not complete yet, its segments reordered),
/// and fewer than [`MAX_DEFERRED_REPLY_BYTES`] are waiting. A reply parsed before its request
/// would be an orphan and the request then unanswered.
fn defer_reply(app: &RpcApp) -> bool {
    app.streams[Direction::ToServer.index()].has_pending_gap()
        && app.streams[Direction::ToClient.index()].buffered_bytes() < MAX_DEFERRED_REPLY_BYTES
}

fn drain_rpc(app: &mut RpcApp, dir: Direction, frame: u64, ts: Ts, buf: &mut Vec<RpcEvent>) {
    let st = &mut app.streams[dir.index()];
    loop {
        let ready = st.ready();
        if ready.is_empty() {
            break;
        }
        let n = app.session.on_data(dir, ready, frame, ts, buf);
        st.consume(n);
        if n == 0 {
            break;
        }
    }
}

/// Short name of a transfer syntax in `rpc` events.
fn syntax_name(s: &SyntaxId) -> &'static str {
    if s.is_btfn() {
        "bind_time_feature_negotiation"
    } else if s.is_null() {
        "none"
    } else {
        match TransferSyntax::from_syntax(s) {
            TransferSyntax::Ndr32 => "ndr32",
            TransferSyntax::Ndr64 => "ndr64",
            TransferSyntax::Unknown => "other",
        }
    }
}

fn ack_result_name(r: u16) -> Cow<'static, str> {
    match r {
        0 => Cow::Borrowed("accepted"),
        1 => Cow::Borrowed("user_rejection"),
        2 => Cow::Borrowed("provider_rejection"),
        3 => Cow::Borrowed("negotiate_ack"),
        n => Cow::Owned(format!("result_{n}")),
    }
}

/// An HRESULT / RPC status with its name and meaning from the table.
pub fn hresult(code: u32) -> Hresult {
    let d = kms::hresult::describe(code);
    Hresult {
        code: kms::hresult::format_code(code),
        name: d.map(|d| d.0),
        meaning: d.map(|d| d.1),
    }
}

/// Decodes and validates the KMS request and reply of one RPC call (kms-protocol.md §2.8) into
/// `kc`, the payload of the call's `kms` event; returns the anomaly to report, if any. `kc` is
/// reused from the previous call: every field is set here. With `keep_payloads`, the KMS bytes
/// and plaintexts are kept in `raw` for the UI's hex view.
fn kms_call(
    call: &Call,
    keep_payloads: bool,
    kc: &mut KmsCall,
    texts: &mut convert::Texts,
) -> Option<(&'static str, String)> {
    // Destructured so that a field added to `KmsCall` cannot be left over from the last call.
    let KmsCall {
        version,
        call_id,
        ctx_id,
        ndr,
        response_frame,
        rtt_ms,
        status,
        reason,
        // Filled in place by `convert::kms_infos` at the end.
        request: _,
        response: _,
        hresult: hres,
        integrity,
        outcome,
        request_size,
        response_size,
        raw: kept,
    } = &mut *kc;
    *version = None;
    *call_id = call.call_id;
    *ctx_id = call.ctx_id;
    *ndr = match call.ndr {
        TransferSyntax::Ndr32 => "ndr32",
        TransferSyntax::Ndr64 => "ndr64",
        TransferSyntax::Unknown => "unknown",
    };
    *response_frame = None;
    *rtt_ms = None;
    *status = "";
    *reason = None;
    *hres = None;
    integrity.request = None;
    integrity.response = None;
    integrity.failures.clear();
    *outcome = "";
    *request_size = None;
    *response_size = None;
    *kept = None;
    let kms_reply = call.kms_reply();
    // UI only (keep_payloads): the bytes behind the event; filled as the halves are decoded.
    let mut raw = event::KmsRaw::default();
    if keep_payloads {
        raw.request = call.request.as_ref().map(|h| match call.kms_request() {
            Some(Ok(q)) => q.to_vec(),
            _ => h.stub.clone(),
        });
        if let Reply::Response(h) = &call.reply {
            raw.response = Some(match &kms_reply {
                Some(Ok(KmsReply::Success { kms: a, .. })) => a.to_vec(),
                _ => h.stub.clone(),
            });
        }
    }
    // Both halves are decoded together (a v4 call's two MACs run side by side).
    let kms_response = match &kms_reply {
        Some(Ok(KmsReply::Success { kms: a, .. })) => Some(*a),
        _ => None,
    };
    let request = call.kms_request();
    match &request {
        Some(Ok(q)) => kc.request_size = Some(q.len()),
        Some(Err(_)) => kc.integrity.request = Some("undecodable"),
        None => {}
    }
    let decoded = |anomaly, req, resp| {
        kms_call_decoded(
            call,
            keep_payloads,
            kc,
            texts,
            kms_reply,
            raw,
            anomaly,
            req,
            resp,
        )
    };
    // The decoded halves stay in this frame; the event takes what it needs by reference. Bound
    // by `let` in the branch that decodes, so that the decoder writes its large result straight
    // into it (an `Option` around it was built aside and copied in).
    match request {
        Some(Ok(q)) => {
            let mut d = kms::decode_call(q, kms_response, keep_payloads);
            decoded(None, Some(&mut d.0), d.1.as_mut())
        }
        Some(Err(e)) => decoded(
            Some(("stub_mismatch", format!("KMS request stub: {e}"))),
            None,
            None,
        ),
        None => decoded(None, None, None),
    }
}

/// The rest of [`kms_call`], with the decoded request and response (if any) and the anomaly found
/// so far.
#[allow(clippy::too_many_arguments)]
fn kms_call_decoded(
    call: &Call,
    keep_payloads: bool,
    kc: &mut KmsCall,
    texts: &mut convert::Texts,
    kms_reply: Option<Result<KmsReply<'_>, crate::dcerpc::StubError>>,
    mut raw: event::KmsRaw,
    mut anomaly: Option<(&'static str, String)>,
    mut req: Option<&mut kms::RequestDecode>,
    mut resp: Option<&mut kms::ResponseDecode>,
) -> Option<(&'static str, String)> {
    if let Some(r) = &mut req {
        if keep_payloads {
            raw.request_plain = r.plaintext.take();
        }
        kc.version = r.outer_version.map(convert::version_text);
        kc.integrity.request = Some(r.verdict.as_str());
        kc.integrity.failures.extend(r.failures.iter().copied());
        if let Some(e) = &r.error {
            anomaly.get_or_insert(("undecodable_request", format!("KMS request: {e}")));
        }
    } else if call.request.is_none() {
        kc.reason = Some("request_not_captured");
    }
    // The decoded response message; its event object is built with the request's at the end.
    let mut response = None;
    let first_ts = call.request.as_ref().map(|h| h.ts);
    match &call.reply {
        Reply::Response(h) => {
            kc.response_frame = Some(h.frame);
            kc.rtt_ms = first_ts.map(|t| round3(h.ts.millis_since(t)));
            match kms_reply {
                Some(Ok(KmsReply::Refused { hresult: code })) => {
                    kc.status = "refused";
                    kc.hresult = Some(hresult(code));
                    kc.outcome = "refused";
                }
                Some(Ok(KmsReply::Success {
                    kms: a,
                    return_code,
                })) => {
                    kc.status = "answered";
                    kc.response_size = Some(a.len());
                    if return_code != 0 {
                        kc.hresult = Some(hresult(return_code));
                    }
                    match (&req, resp.take()) {
                        (Some(r), Some(resp)) => {
                            if keep_payloads {
                                raw.response_plain = resp.plaintext.take();
                            }
                            kc.integrity.response = Some(resp.verdict.as_str());
                            for f in &resp.failures {
                                if !kc.integrity.failures.contains(f) {
                                    kc.integrity.failures.push(f);
                                }
                            }
                            kc.outcome = kms::outcome(r, resp).as_str();
                            if let Some(e) = &resp.error {
                                anomaly.get_or_insert((
                                    "undecodable_response",
                                    format!("KMS response: {e}"),
                                ));
                            }
                            response = resp.response.as_mut();
                        }
                        _ => {
                            kc.integrity.response = Some("undecodable");
                            kc.outcome = "invalid_response";
                        }
                    }
                }
                Some(Err(e)) => {
                    kc.status = "answered";
                    kc.integrity.response = Some("undecodable");
                    kc.outcome = "invalid_response";
                    anomaly.get_or_insert(("stub_mismatch", format!("KMS response stub: {e}")));
                }
                None => {
                    kc.status = "unanswered";
                    kc.outcome = "no_response";
                }
            }
        }
        Reply::Fault {
            frame, ts, status, ..
        } => {
            kc.status = "fault";
            kc.response_frame = Some(*frame);
            kc.rtt_ms = first_ts.map(|t| round3(ts.millis_since(t)));
            kc.hresult = Some(hresult(*status));
            kc.outcome = "refused";
        }
        Reply::Missing(reason) => {
            kc.status = "unanswered";
            kc.outcome = "no_response";
            kc.reason = Some(match reason {
                CloseReason::ConnectionClosed => "connection_closed",
                CloseReason::Reset => "connection_reset",
                CloseReason::Timeout => "idle_timeout",
                CloseReason::CaptureEnded => "capture_ended",
                CloseReason::Gap => "tcp_gap",
                other => other.as_str(),
            });
        }
    }
    convert::kms_infos(
        req.and_then(|r| r.request.as_mut()),
        response,
        &mut kc.request,
        &mut kc.response,
        texts,
    );
    if keep_payloads {
        kc.raw = Some(Arc::new(raw));
    }
    anomaly
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Where the engine's events go: one at a time, or a batch of them in order
/// ([`Engine::packet_batched`]). Any `FnMut(&Event)` is one.
pub trait Out {
    fn event(&mut self, ev: &Event);

    /// The events in order. A receiver that does several independent things with each event
    /// (writes a log, a table ...) may do each for the whole batch in turn.
    fn events(&mut self, evs: &[Event]) {
        for ev in evs {
            self.event(ev);
        }
    }
}

impl<F: FnMut(&Event)> Out for F {
    fn event(&mut self, ev: &Event) {
        self(ev)
    }
}

/// Kept events handed on at once: the sinks' work for all of them, then the analysis for all of
/// them, so that each stage's code stays in the instruction cache across the batch instead of
/// being evicted by the next stage at every event. The KMS calls of a batch are decrypted and
/// validated together too, when the batch is handed on.
pub const KEPT_BATCH: usize = 32;

/// The `rpc` events of bind_acks and the `kms` events of calls, built in events kept for reuse
/// (their lists and the ~1 KB call payload are not allocated again, and the envelope with its
/// shared `source` is not rebuilt per event) and handed on in order, in batches of up to
/// [`KEPT_BATCH`] (see [`Core::flush_kept`]). Any other event first hands on those waiting.
#[derive(Default)]
struct KeptEvents {
    /// The events, the first `pending` of them waiting to be handed on.
    slots: Vec<Event>,
    /// Per slot, a spare body of the other kind, so that a slot serves bind_acks and calls alike
    /// without reallocating.
    spares: Vec<Option<Body>>,
    /// Per slot, the call whose `kms` event the slot holds, until it is decoded into it (with
    /// the stubs that the call's reassembly filled).
    calls: Vec<Option<Call>>,
    /// The anomalies of the calls being handed on, by slot (see [`Core::flush_kept`]).
    anomalies: Vec<(usize, (&'static str, String))>,
    pending: usize,
    /// Hand each event on at once (see [`Engine::packet`]) rather than in batches.
    defer: bool,
}

impl KeptEvents {
    /// The next event, made on first use, readied as event `(kind, ts, frame, client, server)`.
    /// Its body is one it holds when `fits` accepts it (its buffers reused; the caller sets every
    /// field), else `fresh()`. [`Core::commit_kept`] queues it.
    fn next<'e>(
        &'e mut self,
        source: &Arc<str>,
        (kind, ts, frame, client, server): (&'static str, Ts, u64, Endpoint, Endpoint),
        fits: fn(&Body) -> bool,
        fresh: fn() -> Body,
    ) -> &'e mut Event {
        if self.pending == self.slots.len() {
            let ev = Event {
                ts,
                event: kind,
                source: source.clone(),
                frame,
                client: None,
                server: None,
                body: fresh(),
            };
            self.slots.push(ev);
            self.spares.push(None);
            self.calls.push(None);
        }
        let ev = &mut self.slots[self.pending];
        let spare = &mut self.spares[self.pending];
        ev.event = kind;
        ev.ts = ts;
        ev.frame = frame;
        ev.client = Some(client);
        ev.server = Some(server);
        if !fits(&ev.body) {
            if spare.as_ref().is_some_and(fits) {
                if let Some(b) = spare {
                    std::mem::swap(&mut ev.body, b);
                }
            } else {
                *spare = Some(std::mem::replace(&mut ev.body, fresh()));
            }
        }
        ev
    }
}
