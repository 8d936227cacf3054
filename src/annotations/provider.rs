//! What a Pod asks of one provider (`<nad>.<ns>`, `<nad>.<ns>.ovn` or `ovn`) through Kube-OVN-style keys.

use std::collections::BTreeMap;

use super::address::parse_pair;
use super::error::{AnnotationError, Shown};
use super::keys::{
    IP_ADDRESS, IP_POOL, LOGICAL_SWITCH, MAC_ADDRESS, ROUTES, interface_key, provider_key,
};
use super::lookup::value;
use super::names::{SUBDOMAIN_RULE, is_dns1123_subdomain, is_ifname};
use super::pool::{PoolRequest, parse_pool};
use super::route::{Route, parse_routes};
use crate::alloc::{IpPair, Mac};

/// The provider's requests. A fixed `ip_address` wins over `ip_pool` when both apply (a per-interface
/// address with a provider-wide pool); both set at provider level is refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProviderRequest {
    pub ip_address: Option<IpPair>,
    pub mac_address: Option<Mac>,
    pub ip_pool: Option<PoolRequest>,
    /// Subnet name; chosen over the subnet found by provider.
    pub logical_switch: Option<String>,
    pub routes: Option<Vec<Route>>,
}

impl ProviderRequest {
    pub fn is_empty(&self) -> bool {
        *self == ProviderRequest::default()
    }
}

/// Checks that `provider` can form annotation keys (it comes from NAD configuration, not from the Pod).
pub(crate) fn check_provider(provider: &str) -> Result<(), AnnotationError> {
    // The key prefix `<provider>.kubernetes.io` must itself stay within 253 characters.
    if is_dns1123_subdomain(provider) && provider.len() <= 253 - ".kubernetes.io".len() {
        Ok(())
    } else {
        Err(AnnotationError::Provider {
            value: Shown::new(provider),
        })
    }
}

/// The value under the per-interface key when `interface` is given and the key is set, otherwise under the
/// provider key; returns the key it came from too, for messages.
pub(crate) fn per_interface<'a>(
    annotations: &'a BTreeMap<String, String>,
    provider: &str,
    field: &str,
    interface: Option<&str>,
) -> Result<Option<(String, &'a str)>, AnnotationError> {
    if let Some(ifname) = interface {
        let key = interface_key(provider, field, ifname);
        if !is_ifname(ifname) {
            return Err(AnnotationError::Interface {
                key: key.into(),
                value: Shown::new(ifname),
            });
        }
        if let Some(v) = value(annotations, &key)? {
            return Ok(Some((key, v)));
        }
    }
    let key = provider_key(provider, field);
    Ok(value(annotations, &key)?.map(|v| (key, v)))
}

pub(crate) fn parse_mac(key: &str, raw: &str) -> Result<Mac, AnnotationError> {
    raw.parse::<Mac>().map_err(|source| AnnotationError::Mac {
        key: key.into(),
        value: Shown::new(raw),
        source,
    })
}

fn parse_logical_switch(key: &str, raw: &str) -> Result<String, AnnotationError> {
    if is_dns1123_subdomain(raw) {
        Ok(raw.to_string())
    } else {
        Err(AnnotationError::Invalid {
            key: key.into(),
            value: Shown::new(raw),
            problem: format!("is not a Subnet name (expected {SUBDOMAIN_RULE})").into(),
        })
    }
}

/// Everything the annotations ask of `provider`, for the attachment with the explicit interface name
/// `interface` (whose `ip_address.<if>` / `mac_address.<if>` take precedence).
pub fn provider_request(
    annotations: &BTreeMap<String, String>,
    provider: &str,
    interface: Option<&str>,
) -> Result<ProviderRequest, AnnotationError> {
    check_provider(provider)?;
    let ip = per_interface(annotations, provider, IP_ADDRESS, interface)?;
    let pool_key = provider_key(provider, IP_POOL);
    let pool = value(annotations, &pool_key)?;
    if let (Some((ip_key, _)), Some(_)) = (&ip, pool)
        && *ip_key == provider_key(provider, IP_ADDRESS)
    {
        return Err(AnnotationError::Conflict {
            key: ip_key.as_str().into(),
            other: pool_key,
        });
    }
    let ip_address = ip.map(|(k, v)| parse_pair(&k, v)).transpose()?;
    let ip_pool = pool.map(|v| parse_pool(&pool_key, v)).transpose()?;
    let mac_address = per_interface(annotations, provider, MAC_ADDRESS, interface)?
        .map(|(k, v)| parse_mac(&k, v))
        .transpose()?;
    let (logical_switch, routes) = switch_and_routes(annotations, provider)?;
    Ok(ProviderRequest {
        ip_address,
        mac_address,
        ip_pool,
        logical_switch,
        routes,
    })
}

/// The provider's `logical_switch` and `routes`: asked for in a Pod's request, written back in its result.
pub(crate) fn switch_and_routes(
    annotations: &BTreeMap<String, String>,
    provider: &str,
) -> Result<(Option<String>, Option<Vec<Route>>), AnnotationError> {
    let ls_key = provider_key(provider, LOGICAL_SWITCH);
    let logical_switch = value(annotations, &ls_key)?
        .map(|v| parse_logical_switch(&ls_key, v))
        .transpose()?;
    let routes_key = provider_key(provider, ROUTES);
    let routes = value(annotations, &routes_key)?
        .map(|v| parse_routes(&routes_key, v))
        .transpose()?;
    Ok((logical_switch, routes))
}
