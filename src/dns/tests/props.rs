//! Property tests: arbitrary input never panics, and well-formed input round-trips.

use proptest::prelude::*;

use super::builder::*;
use crate::dns::message::{class, rtype};
use crate::dns::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..700)) {
        let _ = parse_message(&data);
        let _ = parse_header(&data);
        let _ = looks_like_dns(&data);
        let _ = looks_like_dns_tcp(&data);
        let f = split_tcp_messages(&data);
        prop_assert!(f.consumed <= data.len());
        for m in f.messages {
            let _ = parse_message(m);
        }
    }

    /// Random bytes after a plausible header reach deep into the name and record decoders.
    #[test]
    fn dns_shaped_garbage_never_panics(
        flags in any::<u16>(),
        counts in proptest::array::uniform4(0u16..6),
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut m = Msg::new(0x4242, flags, counts).raw(&body).build();
        let _ = parse_message(&m);
        let _ = looks_like_dns(&m);
        // Sprinkle compression pointers.
        for i in (12..m.len()).step_by(7) {
            m[i] = 0xC0;
        }
        let _ = parse_message(&m);
        let _ = looks_like_dns(&m);
    }

    /// Every message the detector accepts is one the parser accepts.
    #[test]
    fn detector_implies_parser(
        labels in proptest::collection::vec("[A-Za-z0-9_-]{1,20}", 1..5),
        qtype in 1u16..300,
        id in any::<u16>(),
    ) {
        let name = labels.join(".");
        let msg = Msg::new(id, RD, [1, 0, 0, 0]).question(&name, qtype, class::IN).build();
        prop_assert!(looks_like_dns(&msg));
        let parsed = parse_message(&msg).expect("parses");
        prop_assert_eq!(&parsed.questions[0].name, &name);
        prop_assert_eq!(parsed.questions[0].qtype, qtype);
    }

    /// Any label bytes survive: the rendered name maps back to the wire labels.
    #[test]
    fn label_bytes_round_trip(labels in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..20), 1..6)) {
        let mut m = Msg::new(1, 0, [1, 0, 0, 0]);
        for l in &labels {
            m = m.label(l);
        }
        let bytes = m.raw(&[0]).u16(rtype::A).u16(class::IN).build();
        let parsed = parse_message(&bytes).expect("parses");
        prop_assert_eq!(unescape(&parsed.questions[0].name), labels);
    }

    #[test]
    fn tcp_split_any_cut(msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..5), cut in any::<prop::sample::Index>()) {
        let mut stream = Vec::new();
        for m in &msgs {
            stream.extend_from_slice(&(m.len() as u16).to_be_bytes());
            stream.extend_from_slice(m);
        }
        let at = cut.index(stream.len() + 1);
        let mut buf = stream[..at].to_vec();
        let first = split_tcp_messages(&buf);
        let mut got: Vec<Vec<u8>> = first.messages.iter().map(|m| m.to_vec()).collect();
        let consumed = first.consumed;
        buf.drain(..consumed);
        buf.extend_from_slice(&stream[at..]);
        let second = split_tcp_messages(&buf);
        got.extend(second.messages.iter().map(|m| m.to_vec()));
        prop_assert_eq!(second.consumed, buf.len());
        prop_assert_eq!(got, msgs);
    }
}

/// Inverse of the name rendering (test helper): `\.`, `\\` and `\DDD` escapes, `.` separators.
fn unescape(name: &str) -> Vec<Vec<u8>> {
    if name == "." {
        return Vec::new();
    }
    let mut labels = vec![Vec::new()];
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '.' => labels.push(Vec::new()),
            '\\' => {
                let next = chars.next().expect("escape");
                let last = labels.last_mut().expect("label");
                if next.is_ascii_digit() {
                    let d: String = [next, chars.next().expect("d2"), chars.next().expect("d3")]
                        .iter()
                        .collect();
                    last.push(d.parse().expect("byte"));
                } else {
                    let mut b = [0; 4];
                    last.extend_from_slice(next.encode_utf8(&mut b).as_bytes());
                }
            }
            c => {
                let mut b = [0; 4];
                labels
                    .last_mut()
                    .expect("label")
                    .extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    labels
}
