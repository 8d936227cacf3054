//! Spiderpool's pool selection: `ipam.spidernet.io/ippool` and the per-interface `ipam.spidernet.io/ippools`.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Deserialize;

use super::error::{AnnotationError, Shown, clip, json_shape};
use super::keys::{SPIDER_IPPOOL, SPIDER_IPPOOLS};
use super::lookup::{MAX_ATTACHMENTS, value};
use super::names::{SUBDOMAIN_RULE, is_dns1123_subdomain, is_ifname};

const IPPOOL_EXPECTED: &str = "a JSON object of pool names (e.g. {\"ipv4\": [\"ippool-test\"], \"ipv6\": [\"ippool-test6\"]})";
const IPPOOLS_EXPECTED: &str = "a JSON list of per-interface pools (e.g. [{\"interface\": \"net1\", \"ipv4\": [\"pool4\"], \"ipv6\": [\"pool6\"], \"cleangateway\": true}])";

/// Unknown fields are refused so that the field names of old Spiderpool releases (`ipv4pools`) are reported
/// instead of silently yielding an entry without pools.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    interface: Option<String>,
    ipv4: Option<Vec<String>>,
    ipv6: Option<Vec<String>>,
    cleangateway: Option<bool>,
}

/// The pools one interface draws from, in preference order per family.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpiderPoolEntry {
    /// `None`: applies to the Pod's first attachment.
    pub interface: Option<String>,
    pub ipv4: Vec<String>,
    pub ipv6: Vec<String>,
    /// Do not hand the pool's gateway to the interface as its default route.
    pub clean_gateway: bool,
}

/// The Spiderpool pool selection of a Pod, from whichever annotation applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpiderPools {
    /// The annotation the entries came from (for messages).
    pub key: &'static str,
    pub entries: Vec<SpiderPoolEntry>,
}

impl SpiderPools {
    /// The entry for the interface Multus names `ifname`: the one naming it, otherwise (only for the Pod's
    /// first attachment) the entry without an interface.
    pub fn for_interface(&self, ifname: &str, first: bool) -> Option<&SpiderPoolEntry> {
        self.entries
            .iter()
            .find(|e| e.interface.as_deref() == Some(ifname))
            .or_else(|| {
                first
                    .then(|| self.entries.iter().find(|e| e.interface.is_none()))
                    .flatten()
            })
    }
}

/// The Pod's Spiderpool selection; `ippools` takes precedence over `ippool` (which is then not read).
pub fn spider_pools(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<SpiderPools>, AnnotationError> {
    if let Some(v) = value(annotations, SPIDER_IPPOOLS)? {
        json_shape(SPIDER_IPPOOLS, v, '[', IPPOOLS_EXPECTED)?;
        let raw: Vec<RawEntry> = serde_json::from_str(v)
            .map_err(|e| json_error(SPIDER_IPPOOLS, v, IPPOOLS_EXPECTED, e))?;
        if raw.len() > MAX_ATTACHMENTS {
            return Err(AnnotationError::TooMany {
                key: SPIDER_IPPOOLS.into(),
                count: raw.len(),
                max: MAX_ATTACHMENTS,
            });
        }
        let entries = raw
            .into_iter()
            .enumerate()
            .map(|(i, r)| entry(SPIDER_IPPOOLS, &format!("[{i}]."), r))
            .collect::<Result<Vec<_>, _>>()?;
        check_interfaces(v, &entries)?;
        return Ok(Some(SpiderPools {
            key: SPIDER_IPPOOLS,
            entries,
        }));
    }
    if let Some(v) = value(annotations, SPIDER_IPPOOL)? {
        json_shape(SPIDER_IPPOOL, v, '{', IPPOOL_EXPECTED)?;
        let raw: RawEntry = serde_json::from_str(v)
            .map_err(|e| json_error(SPIDER_IPPOOL, v, IPPOOL_EXPECTED, e))?;
        return Ok(Some(SpiderPools {
            key: SPIDER_IPPOOL,
            entries: vec![entry(SPIDER_IPPOOL, "", raw)?],
        }));
    }
    Ok(None)
}

fn json_error(key: &str, v: &str, expected: &'static str, e: serde_json::Error) -> AnnotationError {
    AnnotationError::Json {
        key: key.into(),
        value: Shown::new(v),
        expected,
        reason: clip(e).into(),
    }
}

fn entry(key: &str, path: &str, r: RawEntry) -> Result<SpiderPoolEntry, AnnotationError> {
    let field = |name: String, value: &str, expected: &str| AnnotationError::Field {
        key: key.into(),
        field: format!("{path}{name}").into(),
        value: Shown::new(value),
        expected: expected.into(),
    };
    let interface = r
        .interface
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    if let Some(i) = &interface
        && !is_ifname(i)
    {
        return Err(AnnotationError::Interface {
            key: key.into(),
            value: Shown::new(i),
        });
    }
    let mut families = [
        ("ipv4", r.ipv4.unwrap_or_default()),
        ("ipv6", r.ipv6.unwrap_or_default()),
    ];
    for (fam, pools) in &mut families {
        for (j, name) in pools.iter_mut().enumerate() {
            *name = name.trim().to_string();
            if !is_dns1123_subdomain(name) {
                return Err(field(
                    format!("{fam}[{j}]"),
                    name,
                    &format!("a SpiderIPPool name, {SUBDOMAIN_RULE}"),
                ));
            }
        }
    }
    let [(_, ipv4), (_, ipv6)] = families;
    if ipv4.is_empty() && ipv6.is_empty() {
        return Err(field(
            "ipv4".to_string(),
            "",
            "at least one pool name in \"ipv4\" or \"ipv6\"",
        ));
    }
    Ok(SpiderPoolEntry {
        interface,
        ipv4,
        ipv6,
        clean_gateway: r.cleangateway.unwrap_or(false),
    })
}

/// Each interface may be named once, and at most one entry may leave it out.
fn check_interfaces(v: &str, entries: &[SpiderPoolEntry]) -> Result<(), AnnotationError> {
    let mut seen = BTreeSet::new();
    for e in entries {
        let name = e.interface.as_deref().unwrap_or("");
        if !seen.insert(name) {
            let what = if name.is_empty() {
                "has more than one entry without \"interface\"".to_string()
            } else {
                format!("has more than one entry for interface {name}")
            };
            return Err(AnnotationError::Invalid {
                key: SPIDER_IPPOOLS.into(),
                value: Shown::new(v),
                problem: format!("{what}; give each interface exactly one entry").into(),
            });
        }
    }
    Ok(())
}
