//! The `/` display filter over KMS calls: a tiny expression language that validates as it is typed.
//!
//! A filter is whitespace-separated terms, all of which must match:
//!
//! | term | matches when |
//! |---|---|
//! | `key=value` | the field starts with `value` (case-insensitive) |
//! | `key~value` | the field contains `value` |
//! | `!term` | the term does not match |
//! | `word` | any field contains `word` |
//!
//! Keys: `client`, `host` (alias `server`), `ws` (alias `workstation`), `product`, `outcome`,
//! `status`, `check`, `version` (alias `ver`), `cmid`, `epid`, `frame`. Wire strings are matched in
//! their escaped form, the form the UI shows.

use std::borrow::Cow;

use super::view::esc as escape;
use crate::event::{Event, KmsCall};

/// Outcomes of a `kms` event (docs/events.md).
pub const OUTCOMES: &[&str] = &[
    "activated",
    "count_insufficient",
    "refused",
    "invalid_response",
    "no_response",
];
/// Statuses of a `kms` event.
pub const STATUSES: &[&str] = &["answered", "refused", "fault", "unanswered"];

/// A field a term looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Any,
    Client,
    Host,
    Workstation,
    Product,
    Outcome,
    Status,
    Check,
    Version,
    Cmid,
    Epid,
    Frame,
}

impl Field {
    fn parse(key: &str) -> Option<Field> {
        Some(match key.to_ascii_lowercase().as_str() {
            "client" | "ip" => Field::Client,
            "host" | "server" | "kms" => Field::Host,
            "ws" | "workstation" | "name" => Field::Workstation,
            "product" | "sku" | "app" | "group" => Field::Product,
            "outcome" => Field::Outcome,
            "status" => Field::Status,
            "check" | "finding" => Field::Check,
            "version" | "ver" => Field::Version,
            "cmid" => Field::Cmid,
            "epid" => Field::Epid,
            "frame" => Field::Frame,
            _ => return None,
        })
    }
}

/// How a term compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `=`: the field starts with the value.
    Prefix,
    /// `~` (and bare words): the field contains the value.
    Contains,
}

/// One term of a filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Term {
    pub field: Field,
    pub op: Op,
    /// Lower-cased.
    pub value: String,
    pub negate: bool,
}

/// A parsed filter: every term must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub terms: Vec<Term>,
}

/// What a call offers to the filter: its event and the checks of the findings citing it.
pub struct Subject<'a> {
    pub ev: &'a Event,
    pub call: &'a KmsCall,
    pub checks: &'a [&'static str],
}

impl Filter {
    /// Parses `text`; `Ok(None)` for an empty filter. The error says what is wrong, for the UI.
    pub fn parse(text: &str) -> Result<Option<Filter>, String> {
        let mut terms = Vec::new();
        for word in text.split_whitespace() {
            terms.push(parse_term(word)?);
        }
        Ok(if terms.is_empty() {
            None
        } else {
            Some(Filter { terms })
        })
    }

    /// Whether the filter looks at the findings (so it must be re-run when findings arrive).
    pub fn uses_checks(&self) -> bool {
        self.terms
            .iter()
            .any(|t| matches!(t.field, Field::Check | Field::Any))
    }

    /// Whether `s` passes every term.
    pub fn matches(&self, s: &Subject<'_>) -> bool {
        self.terms.iter().all(|t| term_matches(t, s) != t.negate)
    }
}

fn parse_term(word: &str) -> Result<Term, String> {
    let (negate, body) = match word.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, word),
    };
    let split = body.find(['=', '~']);
    let Some(pos) = split else {
        if body.is_empty() {
            return Err("`!` needs a term after it".into());
        }
        return Ok(Term {
            field: Field::Any,
            op: Op::Contains,
            value: body.to_lowercase(),
            negate,
        });
    };
    let key = &body[..pos];
    let op = if body[pos..].starts_with('=') {
        Op::Prefix
    } else {
        Op::Contains
    };
    let value = &body[pos + 1..];
    let field = Field::parse(key).ok_or_else(|| {
        format!(
            "unknown key `{}` (client, host, ws, product, outcome, status, check, version, cmid, epid, frame)",
            escape(key)
        )
    })?;
    if value.is_empty() {
        return Err(format!("`{key}` needs a value"));
    }
    let value = value.to_lowercase();
    let known = |list: &[&str]| -> Result<(), String> {
        let ok = list.iter().any(|k| match op {
            Op::Prefix => k.starts_with(value.as_str()),
            Op::Contains => k.contains(value.as_str()),
        });
        if ok {
            Ok(())
        } else {
            Err(format!("{key} is one of {}", list.join(", ")))
        }
    };
    match field {
        Field::Outcome => known(OUTCOMES)?,
        Field::Status => known(STATUSES)?,
        Field::Frame if !value.bytes().all(|b| b.is_ascii_digit()) => {
            return Err("frame takes a number".into());
        }
        Field::Version if !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            return Err("version looks like 6 or 6.0".into());
        }
        _ => {}
    }
    Ok(Term {
        field,
        op,
        value,
        negate,
    })
}

fn cmp(op: Op, hay: &str, needle: &str) -> bool {
    // `needle` is lower-case. ASCII haystacks (nearly all) compare without allocating.
    if hay.is_ascii() {
        let (h, n) = (hay.as_bytes(), needle.as_bytes());
        return match op {
            Op::Prefix => h.len() >= n.len() && h[..n.len()].eq_ignore_ascii_case(n),
            Op::Contains => n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n)),
        };
    }
    let hay = hay.to_lowercase();
    match op {
        Op::Prefix => hay.starts_with(needle),
        Op::Contains => hay.contains(needle),
    }
}

/// The values of `field` for a call (several for `product` and `check`).
fn values<'a>(field: Field, s: &Subject<'a>) -> Vec<Cow<'a, str>> {
    let req = s.call.request.as_ref();
    let resp = s.call.response.as_ref();
    let mut v: Vec<Cow<'a, str>> = Vec::new();
    match field {
        Field::Client => {
            if let Some(c) = s.ev.client {
                v.push(Cow::Owned(c.to_string()));
            }
        }
        Field::Host => {
            if let Some(c) = s.ev.server {
                v.push(Cow::Owned(c.to_string()));
            }
        }
        Field::Workstation => {
            if let Some(r) = req {
                v.push(escape(&r.workstation));
            }
        }
        Field::Product => {
            if let Some(r) = req {
                v.extend(
                    [r.sku_name, r.kms_name, r.app_name]
                        .into_iter()
                        .flatten()
                        .map(Cow::Borrowed),
                );
                v.push(Cow::Borrowed(r.sku_id.as_str()));
                v.push(Cow::Borrowed(r.kms_id.as_str()));
            }
        }
        Field::Outcome => v.push(Cow::Borrowed(s.call.outcome)),
        Field::Status => v.push(Cow::Borrowed(s.call.status)),
        Field::Check => v.extend(s.checks.iter().map(|c| Cow::Borrowed(*c))),
        Field::Version => {
            if let Some(x) = &s.call.version {
                v.push(Cow::Borrowed(&**x));
            }
        }
        Field::Cmid => {
            if let Some(r) = req {
                v.push(Cow::Borrowed(r.cmid.as_str()));
            }
        }
        Field::Epid => {
            if let Some(r) = resp {
                v.push(escape(&r.epid));
            }
        }
        Field::Frame => {
            v.push(Cow::Owned(s.ev.frame.to_string()));
            if let Some(f) = s.call.response_frame {
                v.push(Cow::Owned(f.to_string()));
            }
        }
        Field::Any => {
            for f in [
                Field::Client,
                Field::Host,
                Field::Workstation,
                Field::Product,
                Field::Outcome,
                Field::Status,
                Field::Check,
                Field::Cmid,
                Field::Epid,
            ] {
                v.extend(values(f, s));
            }
        }
    }
    v
}

fn term_matches(t: &Term, s: &Subject<'_>) -> bool {
    if t.field == Field::Frame {
        // Frames compare as numbers: `frame=12` is frame 12, not 120.
        return values(Field::Frame, s).iter().any(|v| *v == t.value);
    }
    values(t.field, s).iter().any(|v| cmp(t.op, v, &t.value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Body, Endpoint, KmsRequestInfo};
    use crate::time::Ts;
    use std::sync::Arc;

    fn call(ws: &str, outcome: &'static str) -> Event {
        Event {
            ts: Ts(0),
            event: "kms",
            source: Arc::from("t"),
            frame: 12,
            client: Some(Endpoint {
                ip: "10.77.0.5".parse().unwrap(),
                port: 50000,
            }),
            server: Some(Endpoint {
                ip: "10.0.0.1".parse().unwrap(),
                port: 1688,
            }),
            body: Body::Kms(Box::new(KmsCall {
                outcome,
                status: "answered",
                version: Some("6.0".into()),
                request: Some(KmsRequestInfo {
                    workstation: ws.into(),
                    sku_name: Some("Windows 10 Enterprise"),
                    ..Default::default()
                }),
                ..Default::default()
            })),
        }
    }

    fn m(f: &str, ev: &Event, checks: &[&'static str]) -> bool {
        let Body::Kms(c) = &ev.body else {
            unreachable!()
        };
        let f = Filter::parse(f).unwrap().unwrap();
        f.matches(&Subject {
            ev,
            call: c,
            checks,
        })
    }

    #[test]
    fn parses_and_rejects() {
        assert_eq!(Filter::parse("  ").unwrap(), None);
        assert!(Filter::parse("client=10.77.").is_ok());
        assert!(Filter::parse("outcome=count").is_ok());
        assert!(Filter::parse("outcome=nonsense").is_err());
        assert!(Filter::parse("colour=red").is_err());
        assert!(Filter::parse("ws=").is_err());
        assert!(Filter::parse("frame=1x").is_err());
        assert!(Filter::parse("!").is_err());
        assert!(Filter::parse("\x1b[2J=1").unwrap_err().contains("\\x1b"));
    }

    #[test]
    fn matches_fields() {
        let ev = call("CLONE-PC\x1b", "count_insufficient");
        assert!(m("client=10.77.", &ev, &[]));
        assert!(!m("client=10.78.", &ev, &[]));
        assert!(m("ws~clone", &ev, &[]));
        assert!(m("ws~pc\\x1b", &ev, &[]));
        assert!(m("outcome=count_insufficient", &ev, &[]));
        assert!(m("!outcome=activated", &ev, &[]));
        assert!(m("check=KMS-01", &ev, &["KMS-01"]));
        assert!(!m("check=KMS-01", &ev, &[]));
        assert!(m("enterprise", &ev, &[]));
        assert!(m("host=10.0.0.1:1688 ver=6", &ev, &[]));
        assert!(m("frame=12", &ev, &[]));
        assert!(!m("frame=1", &ev, &[]));
    }
}
