//! # kmsscope
//!
//! A passive analyzer and dissector for Microsoft KMS volume activation traffic. Data flows one way
//! through one pipeline per source, each arrow a plain function call on one thread:
//!
//! ```text
//! capture (file | live) -> decode (link/IP/TCP/UDP) -> flow + TCP reassembly
//!    -> dcerpc session (framing by frag_length, bind contexts, fragments, call pairing)
//!    -> kms (parse, decrypt, validate) -> `kms` event
//!    -> dns (parse, pair query/answer) -> `dns` event
//!    -> analysis (hosts, clients; checks) -> `finding` events, `summary`
//!    -> sinks: JSON Lines | text table | Markdown report | terminal UI (`tui`, the only module
//!       that touches a terminal library)
//! ```
//!
//! Parsers (`dcerpc`, `kms`, `dns`) know nothing of flows, events or output; `analysis` knows
//! nothing of output; `output` knows only [`event::Event`].
#![forbid(unsafe_code)]

pub mod analysis;
pub mod capture;
pub mod dcerpc;
pub mod decode;
pub mod direction;
pub mod dns;
pub mod engine;
pub mod event;
pub mod flow;
pub mod guid;
pub mod hash;
pub mod kms;
pub mod output;
pub mod run;
pub mod time;
pub mod tui;

pub use direction::Direction;
