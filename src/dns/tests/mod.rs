//! Tests of the DNS module: real messages from the shared captures, synthetic messages built byte
//! by byte, detection, TCP framing, pairing, and property tests that nothing panics.

mod builder;
mod capture_data;
mod capture_types;
mod captures;
mod detect;
mod pairing;
mod props;
mod reference;
mod synthetic;
mod tcp;
