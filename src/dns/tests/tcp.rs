//! DNS-over-TCP framing: consumed/needed contract, cuts at every byte, zero-length frames.

use super::builder::*;
use crate::dns::message::{class, rtype};
use crate::dns::*;

fn framed(msgs: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in msgs {
        out.extend_from_slice(&(m.len() as u16).to_be_bytes());
        out.extend_from_slice(m);
    }
    out
}

fn sample() -> Vec<Vec<u8>> {
    vec![
        Msg::new(1, RD, [1, 0, 0, 0])
            .question("_VLMCS._TCP.corp.example", rtype::SRV, class::IN)
            .build(),
        Msg::new(1, QR | RD | RA, [1, 1, 0, 0])
            .question("_VLMCS._TCP.corp.example", rtype::SRV, class::IN)
            .ptr(12)
            .rr_tail(
                rtype::SRV,
                class::IN,
                600,
                &srv_rdata(0, 0, 1688, "kms1.corp.example"),
            )
            .build(),
        Msg::new(2, OP_UPDATE, [1, 0, 0, 0])
            .question("corp.example", rtype::SOA, class::IN)
            .build(),
    ]
}

#[test]
fn whole_stream() {
    let msgs = sample();
    let stream = framed(&msgs);
    let f = split_tcp_messages(&stream);
    assert_eq!(
        f.messages,
        msgs.iter().map(Vec::as_slice).collect::<Vec<_>>()
    );
    assert_eq!((f.consumed, f.needed), (stream.len(), 0));
    for m in &f.messages {
        parse_message(m).expect("parses");
    }
}

#[test]
fn consumed_and_needed_on_partial_input() {
    let msgs = sample();
    let stream = framed(&msgs);
    let first = 2 + msgs[0].len();
    assert_eq!(split_tcp_messages(&[]), TcpFrames::default());
    let f = split_tcp_messages(&stream[..1]);
    assert_eq!((f.messages.len(), f.consumed, f.needed), (0, 0, 1));
    let f = split_tcp_messages(&stream[..2]);
    assert_eq!(
        (f.messages.len(), f.consumed, f.needed),
        (0, 0, msgs[0].len())
    );
    let f = split_tcp_messages(&stream[..first + 5]);
    assert_eq!(f.messages.len(), 1);
    assert_eq!(f.consumed, first);
    assert_eq!(f.needed, msgs[1].len() - 3);
}

#[test]
fn every_cut_gives_the_same_messages() {
    let msgs = sample();
    let stream = framed(&msgs);
    for a in 0..=stream.len() {
        for b in a..=stream.len() {
            let mut buf = Vec::new();
            let mut got = Vec::new();
            for chunk in [&stream[..a], &stream[a..b], &stream[b..]] {
                buf.extend_from_slice(chunk);
                let f = split_tcp_messages(&buf);
                got.extend(f.messages.iter().map(|m| m.to_vec()));
                let consumed = f.consumed;
                buf.drain(..consumed);
            }
            assert_eq!(got, msgs, "cuts {a} {b}");
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn zero_length_frame_is_reported_as_an_empty_message() {
    let f = split_tcp_messages(&[0, 0, 0, 0]);
    assert_eq!(f.messages, vec![&[0u8; 0][..], &[0u8; 0][..]]);
    assert_eq!(f.consumed, 4);
    assert_eq!(
        parse_message(f.messages[0]),
        Err(DnsError::TooShort { len: 0 })
    );
}

#[test]
fn maximum_length_prefix() {
    let f = split_tcp_messages(&[0xFF, 0xFF, 1, 2, 3]);
    assert_eq!((f.messages.len(), f.consumed, f.needed), (0, 0, 65_532));
}
