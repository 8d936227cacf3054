//! CEL rules (`x-kubernetes-validations`) the apiserver checks on its own, so a malformed object is refused at
//! `kubectl apply` even when the webhook is down.
//!
//! Functions used: core CEL, the Kubernetes strings extension (`split`, `join`) and the IP/CIDR libraries
//! (`isIP`, `ip`, `ip.isCanonical`, `isCIDR`, `cidr`, `containsIP`, `family`), all available in Kubernetes 1.31+.
//! Every message is a `messageExpression` that quotes the offending value.

use kube::core::{Message, Rule};
use schemars::{Schema, json_schema};

/// A rule whose failure message is a CEL expression (so it can quote the bad value).
fn rule(expr: impl Into<String>, message_expr: impl Into<String>) -> Rule {
    Rule::new(expr).message(Message::Expression(message_expr.into()))
}

/// `self == oldSelf` on a field that must never change after create.
pub(super) fn immutable(field: &str, why: &str) -> Rule {
    Rule::new("self == oldSelf").message(Message::Message(format!("{field} is immutable: {why}")))
}

/// Limits the object name, which nadipam also uses as a label value (63 characters at most).
pub(super) fn name_is_label_value(kind: &str, why: &str) -> Rule {
    rule(
        "size(self.metadata.name) <= 63",
        format!(
            "'{kind} name ' + self.metadata.name + ' is longer than 63 characters; use a shorter name: {why}'"
        ),
    )
}

/// One IP address, written canonically (lower case, shortest IPv6 form), so equal addresses are equal strings.
/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) are refused: their canonical text contains dots, which would
/// break the one-label form of IPv6 lease names.
pub(super) fn canonical_ip(field: &str) -> Rule {
    rule(
        "isIP(self) && ip.isCanonical(self) && !(self.contains(':') && self.contains('.'))",
        format!(
            "'{field} ' + self + ' is not an IP address in canonical form (e.g. 172.17.0.5 or fd00:17::5: lower \
             case, zeros compressed, no IPv4-mapped IPv6)'"
        ),
    )
}

/// The expected IPLease name, as a CEL expression over the root object; mirrors `lease_name`.
const LEASE_NAME: &str = "self.spec.subnet + '.' + (self.spec.ip.contains(':') \
    ? (self.spec.ip.startsWith(':') ? '0' : '') + self.spec.ip.replace(':', '-') + (self.spec.ip.endsWith(':') ? '0' : '') \
    : self.spec.ip)";

/// An IPLease is named after its subnet and address, so one address can only be leased once.
pub(super) fn lease_name_matches_spec() -> Rule {
    rule(
        format!("self.metadata.name == {LEASE_NAME}"),
        format!(
            "'IPLease name ' + self.metadata.name + ' must be <subnet>.<ip> with IPv6 colons written as dashes \
             (for this spec: ' + {LEASE_NAME} + ')'"
        ),
    )
}

/// One IP address.
pub(super) fn ip(field: &str) -> Rule {
    rule(
        "isIP(self)",
        format!("'{field} ' + self + ' is not an IP address; write e.g. 172.17.0.1 or fd00:17::1'"),
    )
}

/// One CIDR.
pub(super) fn cidr(field: &str) -> Rule {
    rule(
        "isCIDR(self)",
        format!("'{field} ' + self + ' is not a CIDR; write e.g. 192.168.0.0/24 or fd00:1::/64'"),
    )
}

/// One CIDR, or two separated by a comma (the Dual form).
pub(super) fn cidr_block() -> Rule {
    rule(
        "self.split(',').size() <= 2 && self.split(',').all(c, isCIDR(c))",
        "'cidrBlock ' + self + ' must be one CIDR (e.g. 172.17.0.0/16) or, for Dual, an IPv4 and an IPv6 CIDR \
         separated by a comma without spaces (e.g. 172.17.0.0/16,fd00:17::/64)'",
    )
}

/// One IP, or two separated by a comma (the Dual form).
pub(super) fn ip_pair(field: &str) -> Rule {
    rule(
        "self.split(',').size() <= 2 && self.split(',').all(g, isIP(g))",
        format!(
            "'{field} ' + self + ' must be an IP address (e.g. 172.17.0.1) or, for Dual, an IPv4 and an IPv6 \
             address separated by a comma without spaces (e.g. 172.17.0.1,fd00:17::1)'"
        ),
    )
}

/// The families in `cidrBlock` are the ones `protocol` names. Vacuous while `cidrBlock` itself is malformed (its
/// own rule reports that), so a user sees one error per mistake.
pub(super) fn protocol_matches_cidr() -> Rule {
    rule(
        "!has(self.protocol) || !self.cidrBlock.split(',').all(c, isCIDR(c)) \
         || !(self.protocol in ['IPv4', 'IPv6', 'Dual']) \
         || (self.protocol == 'Dual' \
             ? (self.cidrBlock.split(',').size() == 2 \
                && cidr(self.cidrBlock.split(',')[0]).ip().family() \
                   != cidr(self.cidrBlock.split(',')[1]).ip().family()) \
             : (self.cidrBlock.split(',').size() == 1 \
                && cidr(self.cidrBlock).ip().family() == (self.protocol == 'IPv4' ? 4 : 6)))",
        "'protocol ' + self.protocol + ' does not match cidrBlock ' + self.cidrBlock + ': IPv4 needs one IPv4 \
         CIDR, IPv6 one IPv6 CIDR, Dual one CIDR of each family separated by a comma'",
    )
}

/// Each gateway lies inside the CIDR of its family, at most one per family. Vacuous while `gateway` or
/// `cidrBlock` is malformed (their own rules report that).
pub(super) fn gateway_in_cidr() -> Rule {
    rule(
        "!has(self.gateway) || !self.gateway.split(',').all(g, isIP(g)) \
         || !self.cidrBlock.split(',').all(c, isCIDR(c)) \
         || (self.gateway.split(',').size() <= self.cidrBlock.split(',').size() \
             && self.gateway.split(',').all(g, self.cidrBlock.split(',').exists(c, cidr(c).containsIP(g))) \
             && (self.gateway.split(',').size() < 2 \
                 || ip(self.gateway.split(',')[0]).family() != ip(self.gateway.split(',')[1]).family()))",
        "'gateway ' + self.gateway + ' must lie inside cidrBlock ' + self.cidrBlock + ', one address per family'",
    )
}

/// An address-set entry (`excludeIps`, `ips`): an IP, a range `a..b` or `a-b` of one family, or a CIDR.
/// Written with `indexOf`/`substring` rather than `split` so its estimated cost stays far below the apiserver's
/// budget even at thousands of entries.
pub(super) fn address_entry(field: &str) -> Rule {
    rule(
        "isIP(self) || isCIDR(self) \
         || (self.contains('..') \
             ? (isIP(self.substring(0, self.indexOf('..'))) && isIP(self.substring(self.indexOf('..') + 2)) \
                && ip(self.substring(0, self.indexOf('..'))).family() \
                   == ip(self.substring(self.indexOf('..') + 2)).family()) \
             : (self.contains('-') \
                && isIP(self.substring(0, self.indexOf('-'))) && isIP(self.substring(self.indexOf('-') + 1)) \
                && ip(self.substring(0, self.indexOf('-'))).family() \
                   == ip(self.substring(self.indexOf('-') + 1)).family()))",
        format!(
            "'{field} entry ' + self + ' must be an IP (172.17.0.5), a range a..b or a-b within one family \
             (172.17.0.1..172.17.0.10) or a CIDR (172.17.0.0/28)'"
        ),
    )
}

/// The schema of a list of strings whose every item must pass `item_rule`. The rule sits on the items (not on the
/// list with `all()`), so its message can quote the one bad entry and its cost is estimated per entry.
pub(super) fn string_list(max_items: u32, max_len: u32, item_rule: Rule) -> Schema {
    let rule = serde_json::to_value(item_rule).unwrap_or_default();
    json_schema!({
        "type": "array",
        "maxItems": max_items,
        "items": {
            "type": "string",
            "maxLength": max_len,
            "x-kubernetes-validations": [rule],
        },
    })
}

/// `<nad>.<namespace>`, `<nad>.<namespace>.ovn` or `ovn`.
pub(super) fn provider() -> Rule {
    rule(
        "self == 'ovn' || self.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?[.][a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
        "'provider ' + self + ' must be <nad>.<namespace> (e.g. macvlan.default), \
         <nad>.<namespace>.ovn (e.g. attachnet.default.ovn) or ovn'",
    )
}

/// One `<namespace>/<nad>` reference.
pub(super) fn nad_ref(field: &str) -> Rule {
    rule(
        "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",
        format!("'{field} ' + self + ' must be <namespace>/<nad> (e.g. default/macvlan)'"),
    )
}

/// A MAC in the lower-case colon form nadipam writes.
pub(super) fn mac(field: &str) -> Rule {
    rule(
        "self.matches('^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')",
        format!("'{field} ' + self + ' must be a lower-case MAC such as 00:00:00:53:6b:bb'"),
    )
}

/// A route with neither `dst` nor `gw` says nothing.
pub(super) fn route_not_empty() -> Rule {
    Rule::new("has(self.dst) || has(self.gw)")
        .message("a route needs dst, gw or both; a route with only gw is the default route")
}
