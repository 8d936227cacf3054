//! The routes written for one interface. Precedence, highest first: the element's Multus `default-route`
//! (added last, always); the Pod's own `routes` annotation, which replaces what the Subnet and pools would give;
//! else the Subnet's `routes` with the routes of the IPPool the address came from, a pool route replacing a
//! Subnet route to the same destination (the pool is the narrower object).

use crate::annotations::Route;
use crate::api::RouteSpec;

/// The interface's routes: `base` (the Pod's own when `own`, else the Subnet's), the pools' routes unless the
/// Pod wrote its own, then `default_route`. `None` when there are none.
pub(crate) fn merged(
    base: Option<&[Route]>,
    own: bool,
    pools: &[&[RouteSpec]],
    default_route: &[Route],
) -> Option<Vec<Route>> {
    let mut out: Vec<Route> = base.map(<[Route]>::to_vec).unwrap_or_default();
    if !own {
        for route in pools.iter().flat_map(|r| r.iter()) {
            let route = Route {
                dst: route.dst.clone(),
                gw: route.gw.clone(),
            };
            match out.iter_mut().find(|r| r.dst == route.dst) {
                Some(same) => *same = route,
                None => out.push(route),
            }
        }
    }
    out.extend(default_route.iter().cloned());
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(dst: Option<&str>, gw: &str) -> Route {
        Route {
            dst: dst.map(str::to_string),
            gw: Some(gw.to_string()),
        }
    }

    fn spec(dst: Option<&str>, gw: &str) -> RouteSpec {
        RouteSpec {
            dst: dst.map(str::to_string),
            gw: Some(gw.to_string()),
        }
    }

    #[test]
    fn pool_routes_follow_the_subnets_and_replace_the_same_destination() {
        let subnet = [
            route(Some("10.0.0.0/8"), "172.17.0.1"),
            route(None, "172.17.0.1"),
        ];
        let pool = [
            spec(Some("10.0.0.0/8"), "172.17.0.254"),
            spec(Some("192.168.0.0/16"), "172.17.0.254"),
        ];
        assert_eq!(
            merged(Some(&subnet), false, &[&pool], &[]).unwrap(),
            [
                route(Some("10.0.0.0/8"), "172.17.0.254"),
                route(None, "172.17.0.1"),
                route(Some("192.168.0.0/16"), "172.17.0.254"),
            ]
        );
        assert_eq!(
            merged(None, false, &[&pool[1..]], &[]).unwrap(),
            [route(Some("192.168.0.0/16"), "172.17.0.254")]
        );
        assert!(merged(None, false, &[], &[]).is_none());
    }

    #[test]
    fn the_pods_own_routes_win_and_default_route_comes_last() {
        let own = [route(Some("10.1.0.0/16"), "172.17.0.9")];
        let pool = [spec(Some("10.1.0.0/16"), "172.17.0.254")];
        let default_route = [route(None, "172.17.0.7")];
        assert_eq!(
            merged(Some(&own), true, &[&pool], &default_route).unwrap(),
            [
                route(Some("10.1.0.0/16"), "172.17.0.9"),
                route(None, "172.17.0.7")
            ]
        );
        let pool_default = [spec(None, "172.17.0.254")];
        assert_eq!(
            merged(None, false, &[&pool_default], &default_route).unwrap(),
            [route(None, "172.17.0.254"), route(None, "172.17.0.7")]
        );
    }
}
