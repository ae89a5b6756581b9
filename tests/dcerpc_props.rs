//! Property tests: the session yields the same events however the two byte streams are segmented
//! and interleaved (consistently with causality), and no input makes any parser or the session panic.

#[path = "common/dcerpc_encoder.rs"]
mod enc;
#[path = "common/dcerpc_feed.rs"]
mod feed;
#[path = "common/dcerpc_vectors.rs"]
mod vectors;

use feed::{Feeder, mask};
use kmsscope::Direction::{self, ToClient, ToServer};
use kmsscope::dcerpc::*;
use proptest::prelude::*;
use vectors::hex;

/// One message of a conversation: its direction, bytes (one or more PDUs), and the index of the
/// opposite-direction message it waits for (everything before that one is then done too).
struct Msg {
    dir: Direction,
    bytes: Vec<u8>,
    after: Option<usize>,
}

/// A KMS connection exercising contexts, both NDR flavours, pipelining, fragments, a refusal, a
/// fault, an unknown context, an unanswered call and a control PDU.
fn conversation() -> Vec<Msg> {
    let c = ToServer;
    let s = ToClient;
    let kms6 = hex(vectors::TV6A_REQUEST)[32..].to_vec();
    let kms_resp = hex(vectors::TV6A_RESPONSE)[36..296].to_vec();
    let m = |dir, bytes, after| Msg { dir, bytes, after };
    vec![
        m(c, hex(vectors::BIND_3CTX), None),              // 0
        m(s, hex(vectors::BIND_ACK_NDR64), Some(0)),      // 1
        m(c, hex(vectors::ALTER_CONTEXT_NDR32), Some(1)), // 2
        m(s, hex(vectors::ALTER_CONTEXT_RESP), Some(2)),  // 3
        m(c, hex(vectors::TV6A_REQUEST), Some(3)),        // 4
        m(s, hex(vectors::TV6A_RESPONSE), Some(4)),       // 5
        m(c, hex(vectors::TV6B_REQUEST), Some(5)),        // 6
        // Pipelined: call 4 (three fragments) is sent before call 3's response arrives.
        m(
            c,
            enc::request(
                4,
                1,
                0,
                &enc::kms_request_stub(&kms6, TransferSyntax::Ndr64),
                Some(100),
            )
            .concat(),
            Some(5),
        ), // 7
        m(s, hex(vectors::TV6B_RESPONSE), Some(6)), // 8
        m(
            s,
            enc::response(
                4,
                1,
                &enc::kms_response_stub(&kms_resp, 0, TransferSyntax::Ndr64),
                Some(120),
            )
            .concat(),
            Some(7),
        ), // 9
        m(
            c,
            enc::kms_request(5, 0, &kms6, TransferSyntax::Ndr32),
            Some(9),
        ), // 10
        m(
            s,
            enc::kms_refusal(5, 0, 0xc004_f042, TransferSyntax::Ndr32),
            Some(10),
        ), // 11
        m(
            c,
            enc::kms_request(6, 7, &kms6, TransferSyntax::Ndr32),
            Some(11),
        ), // 12
        m(s, enc::fault(6, 0, 0x1c01_0003), Some(12)), // 13
        m(
            c,
            enc::kms_request(7, 1, &kms6, TransferSyntax::Ndr64),
            Some(13),
        ), // 14
        m(s, enc::control(PacketType::SHUTDOWN, 0), Some(14)), // 15
    ]
}

/// Per direction: the stream, and for each byte the index of the message it belongs to.
struct Streams {
    bytes: [Vec<u8>; 2],
    owner: [Vec<usize>; 2],
    /// End offset (in its direction's stream) of each message.
    end: Vec<usize>,
    /// Offsets where a chunk must end (a message waits for a different opposite message).
    forced: [Vec<usize>; 2],
}

fn streams(msgs: &[Msg]) -> Streams {
    let mut st = Streams {
        bytes: [Vec::new(), Vec::new()],
        owner: [Vec::new(), Vec::new()],
        end: Vec::new(),
        forced: [Vec::new(), Vec::new()],
    };
    let mut last_after: [Option<Option<usize>>; 2] = [None, None];
    for (i, m) in msgs.iter().enumerate() {
        let d = m.dir.index();
        if let Some(prev) = last_after[d]
            && prev != m.after
        {
            st.forced[d].push(st.bytes[d].len());
        }
        last_after[d] = Some(m.after);
        st.bytes[d].extend_from_slice(&m.bytes);
        st.owner[d].extend(std::iter::repeat_n(i, m.bytes.len()));
        st.end.push(st.bytes[d].len());
    }
    st
}

/// Feeds the conversation cut at `cuts` (per direction, any offsets) and interleaved by `choices`
/// (true = prefer the client when both directions can go), then closes. Returns the events.
fn run(msgs: &[Msg], st: &Streams, cuts: [&[usize]; 2], choices: &[bool]) -> Vec<RpcEvent> {
    // Chunk boundaries per direction.
    let mut chunks: [Vec<(usize, usize)>; 2] = [Vec::new(), Vec::new()];
    for d in 0..2 {
        let len = st.bytes[d].len();
        let mut b: Vec<usize> = cuts[d]
            .iter()
            .copied()
            .filter(|&c| c > 0 && c < len)
            .chain(st.forced[d].iter().copied())
            .collect();
        b.push(len);
        b.sort_unstable();
        b.dedup();
        let mut start = 0;
        for e in b {
            chunks[d].push((start, e));
            start = e;
        }
    }
    let mut next = [0usize, 0usize];
    let mut fed = [0usize, 0usize];
    let mut f = Feeder::new(true);
    let mut step = 0usize;
    let mut frame = 0u64;
    loop {
        let feedable = |d: usize, fed: &[usize; 2], next: &[usize; 2]| -> bool {
            let Some(&(_, e)) = chunks[d].get(next[d]) else {
                return false;
            };
            let m = st.owner[d][e - 1];
            match msgs[m].after {
                None => true,
                Some(a) => fed[msgs[a].dir.index()] >= st.end[a],
            }
        };
        let can = [feedable(0, &fed, &next), feedable(1, &fed, &next)];
        let d = match can {
            [false, false] => break,
            [true, false] => 0,
            [false, true] => 1,
            [true, true] => {
                let prefer_client = choices
                    .get(step % choices.len().max(1))
                    .copied()
                    .unwrap_or(true);
                step += 1;
                if prefer_client { 0 } else { 1 }
            }
        };
        let (s, e) = chunks[d][next[d]];
        next[d] += 1;
        fed[d] = e;
        frame += 1;
        let dir = if d == 0 { ToServer } else { ToClient };
        f.feed(dir, &st.bytes[d][s..e], frame);
    }
    assert_eq!(
        next[0],
        chunks[0].len(),
        "client stream not fully fed (deadlock)"
    );
    assert_eq!(
        next[1],
        chunks[1].len(),
        "server stream not fully fed (deadlock)"
    );
    assert!(
        f.bufs[0].is_empty() && f.bufs[1].is_empty(),
        "bytes left over"
    );
    f.close(CloseReason::ConnectionClosed, frame + 1);
    f.out.iter().map(mask).collect()
}

fn reference(msgs: &[Msg]) -> Vec<RpcEvent> {
    let mut f = Feeder::new(true);
    for (i, m) in msgs.iter().enumerate() {
        f.feed(m.dir, &m.bytes, i as u64 + 1);
    }
    f.close(CloseReason::ConnectionClosed, 100);
    f.out.iter().map(mask).collect()
}

#[test]
fn reference_events_are_as_expected() {
    let msgs = conversation();
    let ev = reference(&msgs);
    let kinds: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            RpcEvent::Anomaly { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, vec![anomaly_kind::UNKNOWN_CONTEXT]);
    let calls: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            RpcEvent::Call(c) => Some(c),
            _ => None,
        })
        .collect();
    let summary: Vec<_> = calls
        .iter()
        .map(|c| {
            let reply = match &c.reply {
                Reply::Response(h) => format!("response/{}", h.frags),
                Reply::Fault { status, .. } => format!("fault/{status:#x}"),
                Reply::Missing(r) => format!("missing/{}", r.as_str()),
            };
            (c.call_id, c.ndr, c.request.as_ref().map(|r| r.frags), reply)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, TransferSyntax::Ndr32, Some(1), "response/1".to_string()),
            (3, TransferSyntax::Ndr64, Some(1), "response/1".to_string()),
            (4, TransferSyntax::Ndr64, Some(3), "response/3".to_string()),
            (5, TransferSyntax::Ndr32, Some(1), "response/1".to_string()),
            (
                6,
                TransferSyntax::Unknown,
                Some(1),
                "fault/0x1c010003".to_string()
            ),
            (
                7,
                TransferSyntax::Ndr64,
                Some(1),
                "missing/connection_closed".to_string()
            ),
        ]
    );
    for c in &calls[..4] {
        assert!(c.kms_request().unwrap().is_ok());
        assert!(c.kms_reply().unwrap().is_ok());
    }
    assert_eq!(
        calls[3].kms_reply().unwrap(),
        Ok(KmsReply::Refused {
            hresult: 0xc004_f042
        })
    );
    assert!(matches!(ev.last(), Some(RpcEvent::Call(_))));
    assert!(
        ev.iter().any(
            |e| matches!(e, RpcEvent::Control { ptype, .. } if *ptype == PacketType::SHUTDOWN)
        )
    );
}

#[test]
fn every_cut_position_same_events() {
    let msgs = conversation();
    let st = streams(&msgs);
    let want = reference(&msgs);
    for d in 0..2 {
        for c in 1..st.bytes[d].len() {
            let cut = [c];
            let cuts: [&[usize]; 2] = if d == 0 { [&cut, &[]] } else { [&[], &cut] };
            for choice in [true, false] {
                let got = run(&msgs, &st, cuts, &[choice]);
                assert_eq!(
                    got, want,
                    "direction {d}, cut at {c}, prefer client {choice}"
                );
            }
        }
    }
}

#[test]
fn byte_by_byte_same_events() {
    let msgs = conversation();
    let st = streams(&msgs);
    let want = reference(&msgs);
    let all: [Vec<usize>; 2] = [
        (1..st.bytes[0].len()).collect(),
        (1..st.bytes[1].len()).collect(),
    ];
    for choices in [
        vec![true],
        vec![false],
        vec![true, false],
        vec![false, false, true],
    ] {
        assert_eq!(run(&msgs, &st, [&all[0], &all[1]], &choices), want);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn random_segmentation_and_interleaving_same_events(
        c_cuts in proptest::collection::vec(0usize..2000, 0..60),
        s_cuts in proptest::collection::vec(0usize..2000, 0..60),
        choices in proptest::collection::vec(any::<bool>(), 1..64),
    ) {
        let msgs = conversation();
        let st = streams(&msgs);
        let want = reference(&msgs);
        let got = run(&msgs, &st, [&c_cuts, &s_cuts], &choices);
        prop_assert_eq!(got, want);
    }

    #[test]
    fn framing_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_header(&data);
        if let Ok((_, pdu)) = parse_pdu_raw(&data) {
            prop_assert!(pdu.bytes.len() >= 16 && pdu.bytes.len() <= data.len());
            let _ = parse_bind(&pdu);
            let _ = parse_bind_ack(&pdu);
            let _ = parse_bind_nak(&pdu);
            let _ = parse_request(&pdu);
            let _ = parse_response(&pdu);
            let _ = parse_fault(&pdu);
        }
    }

    #[test]
    fn bodies_never_panic(
        ptype in prop_oneof![Just(0u8), Just(2), Just(3), Just(11), Just(12), Just(13), Just(14), Just(15), any::<u8>()],
        flags in any::<u8>(),
        big_endian in any::<bool>(),
        auth_length in prop_oneof![Just(0u16), any::<u16>(), 0u16..40],
        body in proptest::collection::vec(any::<u8>(), 0..400),
    ) {
        let len = (16 + body.len()) as u16;
        let mut b = vec![5, 0, ptype, flags, if big_endian { 0 } else { 0x10 }, 0, 0, 0];
        let (l, a) = if big_endian { (len.to_be_bytes(), auth_length.to_be_bytes()) } else { (len.to_le_bytes(), auth_length.to_le_bytes()) };
        b.extend_from_slice(&l);
        b.extend_from_slice(&a);
        b.extend_from_slice(&[1, 0, 0, 0]);
        b.extend_from_slice(&body);
        let (rest, pdu) = parse_pdu_raw(&b).unwrap();
        prop_assert!(rest.is_empty());
        let _ = parse_bind(&pdu).map(|x| x.contexts.len());
        let _ = parse_bind_ack(&pdu).map(|x| x.sec_addr_text());
        let _ = parse_bind_nak(&pdu);
        if let Ok(r) = parse_request(&pdu) {
            prop_assert!(r.stub.len() + r.auth.len() <= body.len());
        }
        let _ = parse_response(&pdu);
        let _ = parse_fault(&pdu);
    }

    #[test]
    fn stubs_never_panic(stub in proptest::collection::vec(any::<u8>(), 0..300), sizes in any::<(u32, u32, u64)>()) {
        let mut shaped = stub.clone();
        for (i, b) in sizes.0.to_le_bytes().iter().chain(&sizes.1.to_le_bytes()).chain(&sizes.2.to_le_bytes()).enumerate() {
            if let Some(x) = shaped.get_mut(i) { *x = *b; }
        }
        for s in [&stub, &shaped] {
            for ndr in [TransferSyntax::Ndr32, TransferSyntax::Ndr64, TransferSyntax::Unknown] {
                if let Ok(k) = parse_kms_request_stub(s, ndr) {
                    prop_assert!(k.len() <= s.len());
                }
                match parse_kms_response_stub(s, ndr) {
                    Ok(KmsReply::Success { kms, .. }) => prop_assert!(kms.len() <= s.len()),
                    Ok(KmsReply::Refused { .. }) => {}
                    Err(e) => { let _ = e.to_string(); }
                }
                let _ = is_plausible_kms_request(s, ndr);
            }
            let _ = detect_request_ndr(s);
            let _ = detect_response_ndr(s);
        }
    }

    #[test]
    fn session_never_panics_on_arbitrary_input(
        ops in proptest::collection::vec(
            (0u8..8, any::<bool>(), proptest::collection::vec(any::<u8>(), 0..200)),
            0..40,
        ),
        port_kms in any::<bool>(),
    ) {
        let mut f = Feeder::new(port_kms);
        for (i, (op, to_server, bytes)) in ops.iter().enumerate() {
            let dir = if *to_server { ToServer } else { ToClient };
            match op {
                0 => f.gap(dir, bytes.len() as u64, i as u64),
                1 => {
                    // A plausible header in front of random bytes reaches the PDU handlers.
                    let mut b = vec![5, 0, bytes.first().copied().unwrap_or(0) % 20, 3, 0x10, 0, 0, 0];
                    b.extend_from_slice(&((16 + bytes.len()) as u16).to_le_bytes());
                    b.extend_from_slice(&[0, 0, 2, 0, 0, 0]);
                    b.extend_from_slice(bytes);
                    f.feed(dir, &b, i as u64);
                }
                _ => f.feed(dir, bytes, i as u64),
            }
        }
        f.close(CloseReason::CaptureEnded, 1000);
        prop_assert_eq!(f.session.open_calls(), 0);
    }

    #[test]
    fn session_never_panics_on_mutated_conversation(
        flips in proptest::collection::vec((any::<bool>(), 0usize..2000, any::<u8>()), 1..12),
        c_cuts in proptest::collection::vec(0usize..2000, 0..20),
        s_cuts in proptest::collection::vec(0usize..2000, 0..20),
    ) {
        let msgs = conversation();
        let mut st = streams(&msgs);
        for (client, pos, val) in flips {
            let d = usize::from(!client);
            let len = st.bytes[d].len();
            st.bytes[d][pos % len] = val;
        }
        // Plain alternate feeding (causality does not matter for robustness).
        let mut f = Feeder::new(true);
        let mut cuts = [c_cuts, s_cuts];
        for (c, b) in cuts.iter_mut().zip(&st.bytes) {
            c.push(b.len());
            c.sort_unstable();
        }
        let mut pos = [0usize, 0usize];
        for round in 0..cuts[0].len().max(cuts[1].len()) {
            for d in 0..2 {
                if let Some(&e) = cuts[d].get(round) {
                    let e = e.min(st.bytes[d].len());
                    if e > pos[d] {
                        let dir = if d == 0 { ToServer } else { ToClient };
                        f.feed(dir, &st.bytes[d][pos[d]..e], round as u64);
                        pos[d] = e;
                    }
                }
            }
        }
        f.close(CloseReason::ConnectionClosed, 9999);
        prop_assert_eq!(f.session.open_calls(), 0);
    }
}
