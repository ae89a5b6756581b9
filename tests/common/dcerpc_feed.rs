//! TEST-ONLY: drives a `dcerpc::Session` the way the flow layer does, keeping the unconsumed bytes of
//! each direction (the consumed/needed contract of `Session::on_data`).

#![allow(dead_code)]

use kmsscope::Direction;
use kmsscope::dcerpc::{Call, CloseReason, RpcEvent, Session};
use kmsscope::time::Ts;

/// A session plus the caller-side buffers and the collected events.
pub struct Feeder {
    pub session: Session,
    pub bufs: [Vec<u8>; 2],
    pub out: Vec<RpcEvent>,
}

impl Feeder {
    pub fn new(server_port_is_kms: bool) -> Feeder {
        Feeder {
            session: Session::new(server_port_is_kms),
            bufs: [Vec::new(), Vec::new()],
            out: Vec::new(),
        }
    }

    /// Appends `bytes` to `dir`'s buffer, feeds it, drops what was consumed. `ts` = frame × 1 ms.
    pub fn feed(&mut self, dir: Direction, bytes: &[u8], frame: u64) {
        let buf = &mut self.bufs[dir.index()];
        buf.extend_from_slice(bytes);
        let n = self
            .session
            .on_data(dir, buf, frame, ts_of(frame), &mut self.out);
        assert!(n <= buf.len(), "consumed more than given");
        buf.drain(..n);
    }

    /// A TCP gap: the caller discards its unconsumed bytes, then tells the session.
    pub fn gap(&mut self, dir: Direction, missing: u64, frame: u64) {
        self.bufs[dir.index()].clear();
        self.session
            .on_gap(dir, missing, frame, ts_of(frame), &mut self.out);
    }

    pub fn close(&mut self, reason: CloseReason, frame: u64) {
        self.session
            .on_close(reason, frame, ts_of(frame), &mut self.out);
    }

    pub fn calls(&self) -> Vec<&Call> {
        self.out
            .iter()
            .filter_map(|e| match e {
                RpcEvent::Call(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    pub fn anomaly_kinds(&self) -> Vec<&'static str> {
        self.out
            .iter()
            .filter_map(|e| match e {
                RpcEvent::Anomaly { kind, .. } => Some(*kind),
                _ => None,
            })
            .collect()
    }
}

pub fn ts_of(frame: u64) -> Ts {
    Ts(1_795_447_125_000_000_000 + frame as i64 * 1_000_000)
}

/// The event with every frame number and timestamp zeroed, for comparisons across segmentations.
pub fn mask(e: &RpcEvent) -> RpcEvent {
    let mut e = e.clone();
    match &mut e {
        RpcEvent::Bind { frame, ts, .. }
        | RpcEvent::BindAck { frame, ts, .. }
        | RpcEvent::BindNak { frame, ts, .. }
        | RpcEvent::Control { frame, ts, .. }
        | RpcEvent::Anomaly { frame, ts, .. } => {
            *frame = 0;
            *ts = Ts(0);
        }
        RpcEvent::Call(c) => {
            if let Some(h) = c.request.as_mut() {
                h.frame = 0;
                h.ts = Ts(0);
                h.first_frame = 0;
                h.first_ts = Ts(0);
            }
            match &mut c.reply {
                kmsscope::dcerpc::Reply::Response(h) => {
                    h.frame = 0;
                    h.ts = Ts(0);
                    h.first_frame = 0;
                    h.first_ts = Ts(0);
                }
                kmsscope::dcerpc::Reply::Fault { frame, ts, .. } => {
                    *frame = 0;
                    *ts = Ts(0);
                }
                kmsscope::dcerpc::Reply::Missing(_) => {}
            }
        }
    }
    e
}
