//! Test-only KMS conversation builder: the DCE/RPC PDUs a vlmcs-style client and a host exchange
//! on one connection, with KMS payloads made by the KMS encoder, and a helper that runs the
//! library pipeline over an in-memory capture and returns the JSON events.
#![allow(dead_code)]

use std::cell::RefCell;
use std::io::Cursor;
use std::rc::Rc;

use kmsscope::capture::{self, Opened};
use kmsscope::dcerpc::{SyntaxId, TransferSyntax};
use kmsscope::event::Event;
use kmsscope::kms::{KmsRequest, KmsVersion, LicenseStatus};
use kmsscope::output::Sink;
use kmsscope::run::{RunOptions, analyze_source};

use super::dcerpc_encoder as rpc;
use super::kms_encoder as enc;

/// How the host answers one call.
#[derive(Clone, Debug)]
pub enum Answer {
    /// A valid response with this count.
    Count(u32),
    /// A refusal: NULL pointer and this HRESULT.
    Refuse(u32),
    /// An RPC fault with this status.
    Fault(u32),
    /// A response whose HMAC / MAC / hash is broken (one byte flipped in the encrypted payload).
    Tampered(u32),
    /// No reply at all.
    Silent,
}

/// One call of a conversation.
#[derive(Clone, Debug)]
pub struct CallSpec {
    pub major: u16,
    pub cmid: &'static str,
    pub workstation: String,
    pub required: u32,
    pub answer: Answer,
    pub ndr: TransferSyntax,
}

impl CallSpec {
    pub fn new(major: u16, answer: Answer) -> CallSpec {
        CallSpec {
            major,
            cmid: "3c9a6b1e-5d47-4f2a-9b0e-7a1c2d3e4f50",
            workstation: format!("kms-v{major}-client.example"),
            required: 25,
            answer,
            ndr: TransferSyntax::Ndr32,
        }
    }
}

/// FILETIME of 2026-11-23T15:10:00Z.
pub const CLIENT_TIME: u64 = 134_399_202_000_000_000;
pub const EPID: &str = "03612-00206-556-123727-03-1033-17763.0000-2972018";

/// A base request for `major` (Windows 10 Pro for v6/v5, Windows 7 Pro for v4).
pub fn request_for(spec: &CallSpec) -> KmsRequest {
    let (sku, kms) = match spec.major {
        4 => (
            "b92e9980-b9d5-4821-9c94-140f632f6312",
            "7fde5219-fbfa-484a-82c9-34d1ad53e856",
        ),
        5 => (
            "a98bcd6d-5343-4603-8afe-5908e4611112",
            "3c40b358-5948-45af-923b-53d21fcc7e79",
        ),
        _ => (
            "2de67392-b7a7-462a-b1ca-108dd189f588",
            "58e2134f-8e11-4d17-9cb2-91069c151148",
        ),
    };
    KmsRequest {
        version: KmsVersion {
            major: spec.major,
            minor: 0,
        },
        vm_info: 0,
        license_status: LicenseStatus(2),
        binding_expiration: 43_200,
        app_id: enc::guid("55c92734-d682-4d71-983e-d6ec3f16059f"),
        sku_id: enc::guid(sku),
        kms_id: enc::guid(kms),
        cmid: enc::guid(spec.cmid),
        required_count: spec.required,
        client_time: CLIENT_TIME,
        previous_cmid: enc::guid("00000000-0000-0000-0000-000000000000"),
        workstation: spec.workstation.as_str().into(),
    }
}

/// The PDUs of one connection in order: `(to_server, bytes)`. Bind offers NDR32, NDR64 and BTFN;
/// the host accepts NDR32 and NDR64.
pub fn conversation(calls: &[CallSpec]) -> Vec<(bool, Vec<u8>)> {
    let mut out = vec![
        (true, rpc::bind(2, &rpc::kms_contexts_3())),
        (
            false,
            rpc::bind_ack(
                2,
                0x1234_5678,
                Some("1688"),
                &[
                    rpc::accept(SyntaxId::NDR32),
                    rpc::accept(SyntaxId::NDR64),
                    rpc::negotiate_ack(3),
                ],
            ),
        ),
    ];
    for (i, spec) in calls.iter().enumerate() {
        let call_id = 2 + i as u32;
        let ctx = if spec.ndr == TransferSyntax::Ndr64 {
            1
        } else {
            0
        };
        let req = request_for(spec);
        let salt = [0x11u8.wrapping_add(i as u8); 16];
        let q = enc::encode_request(&req, salt);
        out.push((true, rpc::kms_request(call_id, ctx, &q, spec.ndr)));
        // A v5 host reuses the client's salt (kms-protocol.md §2.6); v6 picks its own.
        let server_salt = if spec.major == 5 {
            salt
        } else {
            [0x77u8.wrapping_add(i as u8); 16]
        };
        let secrets = enc::ResponseSecrets {
            random: [0x5a; 16],
            server_salt,
            hwid: [0x3a, 0x1c, 0x04, 0x96, 0x00, 0xb6, 0x00, 0x76],
            ..Default::default()
        };
        match &spec.answer {
            Answer::Count(n) | Answer::Tampered(n) => {
                let resp = enc::echo_response(&req, EPID, *n, 120, 10_080, Some(secrets.hwid));
                let mut a = enc::encode_response(&resp, salt, &secrets);
                if matches!(spec.answer, Answer::Tampered(_)) {
                    let last = a.len() - 20;
                    a[last] ^= 0x01;
                }
                out.push((false, rpc::kms_response(call_id, ctx, &a, 0, spec.ndr)));
            }
            Answer::Refuse(h) => out.push((false, rpc::kms_refusal(call_id, ctx, *h, spec.ndr))),
            Answer::Fault(s) => out.push((false, rpc::fault(call_id, ctx, *s))),
            Answer::Silent => {}
        }
    }
    out
}

/// Collects events as JSON values into a shared list.
#[derive(Default, Clone)]
pub struct Collect(pub Rc<RefCell<Vec<serde_json::Value>>>);

impl Sink for Collect {
    fn event(&mut self, ev: &Event) -> std::io::Result<()> {
        self.0
            .borrow_mut()
            .push(serde_json::to_value(ev).map_err(std::io::Error::other)?);
        Ok(())
    }
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs the pipeline over capture bytes and returns every event.
pub fn run_bytes(name: &str, bytes: Vec<u8>) -> Vec<serde_json::Value> {
    let sources = capture::open_reader(name, Box::new(Cursor::new(bytes))).expect("open capture");
    let col = Collect::default();
    let mut sinks: Vec<Box<dyn Sink>> = vec![Box::new(col.clone())];
    let opts = RunOptions::default();
    for s in sources {
        if let Ok(Opened::Source(src)) = s {
            analyze_source(src, &opts, &mut sinks).expect("analyse");
        }
    }
    col.0.take()
}

/// The `kms` events of a run.
pub fn kms_events(events: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    events.iter().filter(|e| e["event"] == "kms").collect()
}
