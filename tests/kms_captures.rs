//! Every KMS call of the shared captures (vlmcs/vlmcsd and py-kms, v4/v5/v6, NDR32/NDR64),
//! decoded and validated, compared field by field with the capture's `.expect.json` facts.
//!
//! `tests/data/kms_capture_payloads.tsv` holds the KMS byte arrays of each call (extracted from
//! the NDR stubs by `tools/extract_capture_payloads.py`) and the expected values.

use kmsscope::guid::Guid;
use kmsscope::kms::{
    Outcome, Verdict, decode_request, decode_response, outcome, parse_epid, products,
};
use kmsscope::time::filetime_rfc3339;

const DATA: &str = include_str!("data/kms_capture_payloads.tsv");

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn all_capture_calls_decode_and_match_expectations() {
    let mut n = 0;
    let mut seen_versions = std::collections::BTreeSet::new();
    let mut py_kms = 0;
    for line in DATA
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 23, "{line}");
        let id = format!("{} #{}", f[0], f[1]);
        let rq = decode_request(&hex(f[3]));
        assert_eq!(rq.verdict, Verdict::Valid, "{id}: {:?}", rq.failures);
        let ra = decode_response(&rq, &hex(f[4]));
        assert_eq!(ra.verdict, Verdict::Valid, "{id}: {:?}", ra.failures);
        assert!(ra.failures.is_empty(), "{id}: {:?}", ra.failures);

        let q = rq.request.as_ref().unwrap();
        let a = ra.response.as_ref().unwrap();
        assert_eq!(rq.outer_version.unwrap().to_string(), f[2], "{id}");
        assert_eq!(q.app_id, Guid::parse(f[5]).unwrap(), "{id}");
        assert_eq!(q.sku_id, Guid::parse(f[6]).unwrap(), "{id}");
        assert_eq!(q.kms_id, Guid::parse(f[7]).unwrap(), "{id}");
        assert_eq!(q.cmid.to_string(), f[8], "{id}");
        assert_eq!(q.previous_cmid.to_string(), f[9], "{id}");
        assert_eq!(q.workstation, f[10], "{id}");
        assert_eq!(q.required_count.to_string(), f[11], "{id}");
        assert_eq!(q.is_vm().to_string(), f[12], "{id}");
        assert_eq!(q.license_status.0.to_string(), f[13], "{id}");
        assert_eq!(q.binding_expiration.to_string(), f[14], "{id}");
        assert_eq!(filetime_rfc3339(q.client_time).to_string(), f[15], "{id}");
        assert_eq!(a.epid, f[16], "{id}");
        assert_eq!(
            a.hwid.map(|h| h.to_string()).unwrap_or_default(),
            f[17],
            "{id}"
        );
        assert_eq!(a.current_count.to_string(), f[18], "{id}");
        assert_eq!(a.activation_interval.to_string(), f[19], "{id}");
        assert_eq!(a.renewal_interval.to_string(), f[20], "{id}");
        assert_eq!(a.cmid, q.cmid);

        let expected = if a.current_count >= q.required_count {
            Outcome::Activated
        } else {
            Outcome::CountInsufficient
        };
        assert_eq!(outcome(&rq, &ra), expected, "{id}");

        // Catalog knows every product the tools used.
        assert!(products::app(&q.app_id).is_some(), "{id}: app {}", q.app_id);
        assert!(products::kms(&q.kms_id).is_some(), "{id}: kms {}", q.kms_id);
        assert!(products::sku(&q.sku_id).is_some(), "{id}: sku {}", q.sku_id);

        // The ePID always splits into all its fields (vlmcsd and py-kms both emit the format).
        let e = parse_epid(&a.epid);
        assert!(e.well_formed, "{id}: {}", a.epid);
        assert!(e.key_installed.is_some(), "{id}: {}", a.epid);

        seen_versions.insert(f[2].to_owned());
        if f[21] == "py-kms" || f[22].starts_with("py-kms") {
            py_kms += 1;
        }
        n += 1;
    }
    assert_eq!(n, 30);
    assert_eq!(seen_versions.len(), 3);
    assert_eq!(py_kms, 4);
}
