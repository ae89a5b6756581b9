//! DNS over TCP framing (RFC 1035 section 4.2.2, RFC 7766 section 8): each message is preceded
//! by a two-byte big-endian length. Follows the project's consumed/needed contract: the caller
//! hands in the bytes it has buffered for one direction of a connection, drops the `consumed`
//! prefix, and keeps the rest until at least `needed` more bytes arrive. The prefix bounds a
//! message to [`MAX_MESSAGE_LEN`](super::message::MAX_MESSAGE_LEN) bytes, so the caller never has
//! to buffer more than 65,537 bytes per direction for DNS.

/// Length of the DNS-over-TCP length prefix.
pub const TCP_LENGTH_PREFIX: usize = 2;

/// Result of [`split_tcp_messages`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpFrames<'a> {
    /// Complete messages in stream order, without their length prefixes. A zero-length frame
    /// (legal framing, never a valid message) comes out as an empty slice, so that
    /// [`parse_message`](super::message::parse_message) reports it.
    pub messages: Vec<&'a [u8]>,
    /// Bytes of the input covered by `messages` (prefixes included); the caller drops them.
    pub consumed: usize,
    /// Minimum number of further bytes before the next message can complete; 0 when everything
    /// was consumed.
    pub needed: usize,
}

/// Splits a buffered TCP byte stream into DNS messages. Never panics; any input is framing-valid
/// (the prefix can say any length), so garbage shows up in the message parser, not here.
pub fn split_tcp_messages(data: &[u8]) -> TcpFrames<'_> {
    let mut frames = TcpFrames::default();
    let mut rest = data;
    loop {
        match rest {
            [] => break,
            [_] => {
                frames.needed = 1;
                break;
            }
            [hi, lo, body @ ..] => {
                let len = usize::from(u16::from_be_bytes([*hi, *lo]));
                match body.split_at_checked(len) {
                    Some((msg, after)) => {
                        frames.messages.push(msg);
                        frames.consumed += TCP_LENGTH_PREFIX + len;
                        rest = after;
                    }
                    None => {
                        frames.needed = len - body.len();
                        break;
                    }
                }
            }
        }
    }
    frames
}
