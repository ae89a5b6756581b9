//! Live capture through libpcap (feature `live`); the only module that touches libpcap.
//!
//! ```text
//! capture thread                                  analysis thread (the caller)
//! libpcap ring --dispatch--> Batch --sync_channel--> LiveSource: PacketSource --> run::analyze_source
//!                               ^                         |                        (same as files)
//!                               +------ free batches -----+
//! ```
//!
//! [`LiveCapture::open`] opens the interface with a large kernel buffer ([`DEFAULT_BUFFER_MIB`]), a
//! snap length of [`SNAPLEN`], promiscuous, non-blocking, packets delivered within
//! [`DELIVERY_TIMEOUT_MS`], and applies the BPF filter. [`LiveCapture::start`] moves the handle to
//! its own thread, which copies packets in batches (one byte arena per batch, recycled over a
//! return channel, so there is no allocation per packet) and sends them over a bounded channel of
//! [`CHANNEL_BATCHES`] batches to the analysis thread. The returned [`LiveSource`] is an ordinary
//! [`PacketSource`] named `live:<interface>`: the pipeline is the very same one that reads files.
//!
//! Why not libpcap's immediate mode by default: on Linux it switches the ring from TPACKET_V3
//! (variable-size packets packed into blocks) to TPACKET_V2 (one fixed-size frame per packet). On
//! an interface with segmentation offload (veth, most NICs) a frame is sized for 64 KiB packets,
//! so a 256 MiB buffer holds only about 2000 packets: measured on a loaded 2-core machine,
//! replaying 200 000 packets at about 140 000 packets/s lost 5 % of them in immediate mode, none
//! with TPACKET_V3 and a 64 MiB buffer at 460 000 packets/s. TPACKET_V3 hands over a block when
//! it is full or after the delivery timeout, so a packet reaches the analysis within
//! [`DELIVERY_TIMEOUT_MS`]: immediate for a person watching the table or `tail -f`.
//! `--immediate` ([`LiveOptions::immediate`]) is there for platforms or uses that want it.
//!
//! Back-pressure: when the analysis thread falls behind and the channel is full, the capture thread
//! blocks on the send instead of dropping in user space. The kernel ring then fills and the kernel
//! drops, which libpcap counts and the `summary` reports as `dropped`: every loss is counted at one
//! place, and the channel plus the kernel ring form one large buffer for bursts.
//!
//! Stopping: the capture thread checks the stop flag (set by SIGINT/SIGTERM, or when the
//! `LiveSource` is dropped) at least every [`POLL_MS`] ms, whether or not packets arrive; it then
//! drains what the kernel had accepted by then (for at most [`DRAIN_AFTER_STOP`]; anything left is
//! reported as a `capture_stopped` anomaly), reads the final statistics
//! and ends the channel. The analysis thread then finishes the engine: open calls are reported
//! `unanswered` and the final summary carries the drop counters.

use std::io::{self, Write};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use pcap::{Active, Capture, PacketHeader};

use super::pcapng_writer::PcapNgWriter;
use super::{
    CaptureError, CaptureErrorKind, CaptureStats, LinkType, Next, Notice, PacketSource, RawPacket,
};
use crate::time::Ts;

/// Snap length: bytes kept per packet. 65535 holds any IPv4 packet, including the large segments
/// that TSO/GRO hand to a capture on the host itself, so TCP reassembly never sees a cut packet.
pub const SNAPLEN: u32 = 65_535;

pub use super::DEFAULT_LIVE_BUFFER_MIB as DEFAULT_BUFFER_MIB;

/// Longest time a packet waits in the kernel before it is handed over (libpcap's read timeout,
/// which is the TPACKET_V3 block timeout on Linux).
pub const DELIVERY_TIMEOUT_MS: i32 = 10;

/// The capture thread wakes at least this often (ms) to look at the stop flag and the summary timer.
pub const POLL_MS: u16 = 100;

/// Packets taken from libpcap per `pcap_dispatch` call and sent as one batch.
pub const BATCH_PACKETS: usize = 512;

/// Batches the channel to the analysis thread holds before the capture thread waits.
pub const CHANNEL_BATCHES: usize = 512;

/// A recycled batch keeps at most this much arena capacity (a burst of large packets is not held
/// for ever).
pub const MAX_KEPT_ARENA: usize = 4 << 20;

/// After a stop request, the packets the kernel had accepted by then are still read and analysed,
/// for at most this long (a second Ctrl-C exits at once).
pub const DRAIN_AFTER_STOP: Duration = Duration::from_secs(10);

/// How a live capture is opened.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// Interface name (see [`interfaces`]).
    pub interface: String,
    /// BPF filter in tcpdump syntax.
    pub filter: String,
    /// Kernel buffer size in bytes.
    pub buffer_bytes: u32,
    /// Put the interface in promiscuous mode (needed on a mirror/SPAN port).
    pub promiscuous: bool,
    /// libpcap immediate mode: every packet is delivered at once, but on Linux the ring then has
    /// fixed-size frames (see [`DELIVERY_TIMEOUT_MS`]). Off by default.
    pub immediate: bool,
}

impl LiveOptions {
    /// Options for `interface` with the default filter and buffer, promiscuous.
    pub fn new(interface: &str) -> LiveOptions {
        LiveOptions {
            interface: interface.to_owned(),
            filter: super::DEFAULT_LIVE_FILTER.to_owned(),
            buffer_bytes: DEFAULT_BUFFER_MIB << 20,
            promiscuous: true,
            immediate: false,
        }
    }
}

/// Why a live capture could not start. `Display` is the one line to print after `kmsscope: `.
#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    /// Not root and no CAP_NET_RAW / CAP_NET_ADMIN.
    #[error(
        "cannot capture on {iface}: permission denied (run as root or `sudo setcap cap_net_raw,cap_net_admin=eip $(which kmsscope)`)"
    )]
    PermissionDenied { iface: String },
    /// The interface does not exist; `available` lists those that do.
    #[error("no interface named {iface}; capture interfaces: {}", if available.is_empty() { "none found".to_string() } else { available.join(", ") })]
    NoSuchDevice {
        iface: String,
        available: Vec<String>,
    },
    /// The filter does not compile.
    #[error("bad capture filter {filter:?}: {message}")]
    Filter { filter: String, message: String },
    /// Any other libpcap failure while opening.
    #[error("cannot capture on {iface}: {message}")]
    Open { iface: String, message: String },
    /// The interface list could not be read.
    #[error("cannot list capture interfaces: {0}")]
    List(String),
    /// The capture thread could not be started.
    #[error("cannot start the capture thread: {0}")]
    Thread(io::Error),
}

/// One capture interface as `kmsscope interfaces` shows it.
#[derive(Clone, Debug)]
pub struct Interface {
    pub name: String,
    pub description: Option<String>,
    pub addresses: Vec<IpAddr>,
    /// `up`, `running`, `loopback`, `wireless`.
    pub flags: Vec<&'static str>,
}

/// The interfaces libpcap can capture on (`pcap_findalldevs`), in its order.
pub fn interfaces() -> Result<Vec<Interface>, LiveError> {
    let devs = pcap::Device::list().map_err(|e| LiveError::List(e.to_string()))?;
    Ok(devs
        .into_iter()
        .map(|d| {
            let mut flags = Vec::new();
            if d.flags.is_up() {
                flags.push("up");
            }
            if d.flags.is_running() {
                flags.push("running");
            }
            if d.flags.is_loopback() {
                flags.push("loopback");
            }
            if d.flags.is_wireless() {
                flags.push("wireless");
            }
            Interface {
                name: d.name,
                description: d.desc,
                addresses: d.addresses.iter().map(|a| a.addr).collect(),
                flags,
            }
        })
        .collect())
}

/// Sorts a libpcap open error into the messages users need.
fn open_error(iface: &str, message: String) -> LiveError {
    let lower = message.to_ascii_lowercase();
    if lower.contains("permission") || lower.contains("not permitted") {
        return LiveError::PermissionDenied {
            iface: iface.to_owned(),
        };
    }
    let names: Option<Vec<String>> = interfaces()
        .ok()
        .map(|l| l.into_iter().map(|i| i.name).collect());
    let missing = names
        .as_ref()
        .is_some_and(|n| !n.iter().any(|x| x == iface));
    if lower.contains("no such device") || missing {
        return LiveError::NoSuchDevice {
            iface: iface.to_owned(),
            available: names.unwrap_or_default(),
        };
    }
    LiveError::Open {
        iface: iface.to_owned(),
        message,
    }
}

/// An open capture handle, filter applied, not yet reading.
pub struct LiveCapture {
    cap: Capture<Active>,
    iface: String,
    link: LinkType,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveCapture")
            .field("iface", &self.iface)
            .field("link", &self.link)
            .finish()
    }
}

impl LiveCapture {
    /// Opens the interface: kernel buffer, snap length, promiscuous mode, delivery timeout (or
    /// immediate mode), non-blocking, then the filter. Needs root or CAP_NET_RAW + CAP_NET_ADMIN.
    pub fn open(opts: &LiveOptions) -> Result<LiveCapture, LiveError> {
        let iface = opts.interface.as_str();
        let inactive = Capture::from_device(iface).map_err(|e| open_error(iface, e.to_string()))?;
        let buffer = i32::try_from(opts.buffer_bytes).unwrap_or(i32::MAX);
        let cap = inactive
            .immediate_mode(opts.immediate)
            .buffer_size(buffer)
            .snaplen(SNAPLEN as i32)
            .promisc(opts.promiscuous)
            .timeout(DELIVERY_TIMEOUT_MS)
            .open()
            .map_err(|e| open_error(iface, e.to_string()))?;
        let mut cap = cap.setnonblock().map_err(|e| LiveError::Open {
            iface: iface.to_owned(),
            message: format!("cannot make the capture non-blocking: {e}"),
        })?;
        cap.filter(&opts.filter, true)
            .map_err(|e| LiveError::Filter {
                filter: opts.filter.clone(),
                message: e.to_string(),
            })?;
        let link = LinkType(u32::try_from(cap.get_datalink().0).unwrap_or(u32::MAX));
        Ok(LiveCapture {
            cap,
            iface: iface.to_owned(),
            link,
        })
    }

    /// Link-layer type of the interface.
    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// Starts the capture thread and returns the source to analyse, named `live:<interface>`.
    /// Setting `stop` ends the capture (after draining what the kernel holds); so does dropping
    /// the source. With `summary_every`, the source yields a [`Next::Tick`] that often. With
    /// `pcap_out`, every packet handed to the analysis is also written there as pcapng.
    pub fn start(
        self,
        stop: Arc<AtomicBool>,
        summary_every: Option<Duration>,
        pcap_out: Option<Box<dyn Write + Send>>,
    ) -> Result<LiveSource, LiveError> {
        let name = format!("live:{}", self.iface);
        let writer = match pcap_out {
            Some(w) => Some(
                PcapNgWriter::new(w, self.link, SNAPLEN, Some(&self.iface))
                    .map_err(LiveError::Thread)?,
            ),
            None => None,
        };
        let (tx, rx) = mpsc::sync_channel(CHANNEL_BATCHES);
        let (free_tx, free_rx) = mpsc::channel();
        let stop2 = stop.clone();
        let cap = self.cap;
        let thread = std::thread::Builder::new()
            .name(format!("capture {}", self.iface))
            .spawn(move || capture_thread(cap, tx, free_rx, stop2, summary_every))
            .map_err(LiveError::Thread)?;
        Ok(LiveSource {
            name,
            link: self.link,
            rx: Some(rx),
            free: free_tx,
            cur: Batch::default(),
            idx: 0,
            frame: 0,
            stats: None,
            ended: false,
            stop,
            thread: Some(thread),
            writer,
            notices: Vec::new(),
        })
    }
}

/// Where one packet of a [`Batch`] lies in its arena.
#[derive(Clone, Copy, Debug)]
struct Meta {
    ts: Ts,
    start: usize,
    len: usize,
    orig_len: u32,
}

/// Packets copied out of the kernel ring by one `pcap_dispatch` call: one byte arena plus the
/// position of each packet in it. Batches go back to the capture thread for reuse.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    pkts: Vec<Meta>,
}

impl Batch {
    // `time_t` and `suseconds_t` are i64 on some platforms and i32 on others.
    #[allow(clippy::useless_conversion)]
    fn push(&mut self, h: &PacketHeader, d: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(d);
        let secs = i64::from(h.ts.tv_sec);
        let micros = i64::from(h.ts.tv_usec);
        self.pkts.push(Meta {
            ts: Ts::from_parts(secs, micros.saturating_mul(1000)),
            start,
            len: d.len(),
            orig_len: h.len,
        });
    }

    fn clear(&mut self) {
        self.data.clear();
        self.pkts.clear();
        if self.data.capacity() > MAX_KEPT_ARENA {
            self.data.shrink_to(MAX_KEPT_ARENA);
        }
    }
}

/// What the capture thread tells the analysis thread.
enum Msg {
    Packets(Batch),
    /// A periodic summary is due; statistics of this moment.
    Tick(CaptureStats),
    /// The capture ended cleanly; final statistics, and how many packets the kernel had accepted
    /// before the stop but were not read in time.
    End(CaptureStats, u64),
    /// The capture failed (interface gone, read error).
    Failed(String, CaptureStats),
}

fn read_stats(cap: &mut Capture<Active>) -> CaptureStats {
    match cap.stats() {
        Ok(s) => CaptureStats {
            received: u64::from(s.received),
            dropped: u64::from(s.dropped),
            if_dropped: u64::from(s.if_dropped),
        },
        Err(_) => CaptureStats::default(),
    }
}

/// Waits until the capture descriptor is readable or `POLL_MS` passed (a signal also wakes it).
fn wait_readable(cap: &Capture<Active>) {
    let mut fds = [PollFd::new(cap.as_fd(), PollFlags::POLLIN)];
    if poll(&mut fds, PollTimeout::from(POLL_MS)).is_err() {
        // EINTR from a signal: the loop looks at the stop flag next. Anything else: do not spin.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// What is left to read after a stop request: the packets the kernel had accepted into the ring
/// by then (its counters include the drops), and until when to wait for them.
struct Drain {
    target: u64,
    until: Instant,
    idle_since: Option<Instant>,
}

impl Drain {
    fn new(cap: &mut Capture<Active>) -> Drain {
        let st = read_stats(cap);
        Drain {
            target: st.received.saturating_sub(st.dropped),
            until: Instant::now() + DRAIN_AFTER_STOP,
            idle_since: None,
        }
    }

    /// True when draining should end: everything counted was read, the time is up, or nothing
    /// came for longer than a block of the ring can wait in the kernel.
    fn done(&mut self, taken: u64, got_packets: bool) -> bool {
        let now = Instant::now();
        if got_packets {
            self.idle_since = None;
        } else if self.idle_since.is_none() {
            self.idle_since = Some(now);
        }
        let idle_limit =
            Duration::from_millis(u64::from(DELIVERY_TIMEOUT_MS.unsigned_abs()) * 5 + 100);
        taken >= self.target
            || now >= self.until
            || self
                .idle_since
                .is_some_and(|t| now.duration_since(t) >= idle_limit)
    }
}

/// The capture thread: reads the kernel ring in batches until stopped, then drains what the kernel
/// had accepted by the stop and reports the final statistics. Exits early when the analysis thread
/// has gone (a send fails).
fn capture_thread(
    mut cap: Capture<Active>,
    tx: SyncSender<Msg>,
    free: Receiver<Batch>,
    stop: Arc<AtomicBool>,
    summary_every: Option<Duration>,
) {
    let mut spare: Option<Batch> = None;
    let mut drain: Option<Drain> = None;
    let mut taken: u64 = 0;
    let mut next_tick = summary_every.map(|d| Instant::now() + d);
    loop {
        if drain.is_none() && stop.load(Ordering::SeqCst) {
            drain = Some(Drain::new(&mut cap));
        }
        let mut batch = spare
            .take()
            .or_else(|| free.try_recv().ok())
            .unwrap_or_default();
        batch.clear();
        let res = cap.dispatch(Some(BATCH_PACKETS), |p| batch.push(p.header, p.data));
        let got = match res {
            Err(e) => {
                let st = read_stats(&mut cap);
                let _ = tx.send(Msg::Failed(e.to_string(), st));
                return;
            }
            Ok(_) if batch.pkts.is_empty() => {
                spare = Some(batch);
                false
            }
            Ok(_) => {
                taken += batch.pkts.len() as u64;
                if tx.send(Msg::Packets(batch)).is_err() {
                    return;
                }
                true
            }
        };
        if let Some(d) = &mut drain
            && d.done(taken, got)
        {
            break;
        }
        if !got {
            wait_readable(&cap);
        }
        if let (Some(t), Some(every)) = (next_tick, summary_every) {
            let now = Instant::now();
            if now >= t && drain.is_none() {
                next_tick = Some(now + every);
                if tx.send(Msg::Tick(read_stats(&mut cap))).is_err() {
                    return;
                }
            }
        }
    }
    let st = read_stats(&mut cap);
    let left = drain.map_or(0, |d| d.target.saturating_sub(taken));
    let _ = tx.send(Msg::End(st, left));
}

/// The analysis side of a live capture: a [`PacketSource`] fed by the capture thread.
pub struct LiveSource {
    name: String,
    link: LinkType,
    rx: Option<Receiver<Msg>>,
    free: Sender<Batch>,
    cur: Batch,
    idx: usize,
    frame: u64,
    stats: Option<CaptureStats>,
    ended: bool,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    writer: Option<PcapNgWriter<Box<dyn Write + Send>>>,
    notices: Vec<Notice>,
}

impl std::fmt::Debug for LiveSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSource")
            .field("name", &self.name)
            .field("frame", &self.frame)
            .field("stats", &self.stats)
            .finish()
    }
}

/// What [`LiveSource::fill`] found instead of a packet.
enum NotPacket {
    Tick,
    End,
}

impl LiveSource {
    /// Packets written with `--write-pcap` so far.
    pub fn packets_written(&self) -> Option<u64> {
        self.writer.as_ref().map(|w| w.packets())
    }

    fn pcap_error(&mut self, what: &str, e: io::Error) {
        self.writer = None;
        self.notices.push(Notice {
            source: self.name.clone(),
            kind: "write_pcap_failed",
            offset: None,
            frame: Some(self.frame),
            detail: format!("{what} the --write-pcap file failed ({e}); no more packets are saved"),
        });
    }

    fn flush_writer(&mut self) {
        if let Some(w) = &mut self.writer
            && let Err(e) = w.flush()
        {
            self.pcap_error("flushing", e);
        }
    }

    /// Stops and joins the capture thread, flushes the pcapng file.
    fn end(&mut self) {
        self.ended = true;
        self.stop.store(true, Ordering::SeqCst);
        self.rx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.flush_writer();
    }

    /// Makes a packet available in `cur`, or says what comes instead.
    fn fill(&mut self) -> Result<Option<NotPacket>, CaptureError> {
        while self.idx >= self.cur.pkts.len() {
            if self.ended {
                return Ok(Some(NotPacket::End));
            }
            let msg = match &self.rx {
                Some(rx) => rx.recv().ok(),
                None => None,
            };
            match msg {
                Some(Msg::Packets(b)) => {
                    let done = std::mem::replace(&mut self.cur, b);
                    self.idx = 0;
                    // The capture thread may have gone already; the batch is then just freed.
                    let _ = self.free.send(done);
                }
                Some(Msg::Tick(st)) => {
                    self.stats = Some(st);
                    self.flush_writer();
                    return Ok(Some(NotPacket::Tick));
                }
                Some(Msg::End(st, left)) => {
                    self.stats = Some(st);
                    if left > 0 {
                        self.notices.push(Notice {
                            source: self.name.clone(),
                            kind: "capture_stopped",
                            offset: None,
                            frame: None,
                            detail: format!(
                                "{left} packets the kernel had buffered when the capture was \
                                 stopped were not analysed (draining stops after {} s)",
                                DRAIN_AFTER_STOP.as_secs()
                            ),
                        });
                    }
                    self.end();
                    return Ok(Some(NotPacket::End));
                }
                Some(Msg::Failed(e, st)) => {
                    self.stats = Some(st);
                    self.end();
                    return Err(CaptureError::new(&self.name, CaptureErrorKind::Live(e)));
                }
                None => {
                    self.end();
                    return Ok(Some(NotPacket::End));
                }
            }
        }
        Ok(None)
    }

    /// The packet at `idx` (call only after `fill` returned `Ok(None)`).
    fn take(&mut self) -> RawPacket<'_> {
        let m = self.cur.pkts.get(self.idx).copied().unwrap_or(Meta {
            ts: Ts::default(),
            start: 0,
            len: 0,
            orig_len: 0,
        });
        self.idx += 1;
        self.frame += 1;
        let data = self
            .cur
            .data
            .get(m.start..m.start + m.len)
            .unwrap_or_default();
        let pkt = RawPacket {
            frame: self.frame,
            ts: m.ts,
            link: self.link,
            data,
            orig_len: m.orig_len,
        };
        if let Some(w) = &mut self.writer
            && let Err(e) = w.write_packet(&pkt)
        {
            self.writer = None;
            self.notices.push(Notice {
                source: self.name.clone(),
                kind: "write_pcap_failed",
                offset: None,
                frame: Some(pkt.frame),
                detail: format!(
                    "writing the --write-pcap file failed ({e}); no more packets are saved"
                ),
            });
        }
        pkt
    }
}

impl PacketSource for LiveSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, CaptureError> {
        loop {
            match self.fill()? {
                Some(NotPacket::Tick) => continue,
                Some(NotPacket::End) => return Ok(None),
                None => break,
            }
        }
        Ok(Some(self.take()))
    }

    fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    fn has_notices(&self) -> bool {
        !self.notices.is_empty()
    }

    fn next_item(&mut self) -> Result<Next<'_>, CaptureError> {
        Ok(match self.fill()? {
            Some(NotPacket::Tick) => Next::Tick,
            Some(NotPacket::End) => Next::End,
            None => Next::Packet(self.take()),
        })
    }

    fn capture_stats(&self) -> Option<CaptureStats> {
        Some(self.stats.unwrap_or_default())
    }
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        if !self.ended {
            self.end();
        }
    }
}
