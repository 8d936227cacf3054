# Services for Pods on the test bed's nodes (sourced by e2e/cluster; only with --nodes): what a Pod needs to reach
# the apiserver through the `kubernetes` Service and other Pods through theirs, and to resolve Service names.
#
#   kube-proxy  from the control plane module (iptables mode), one for the host: every node shares its network
#               namespace. Settings that leave the host's sysctls alone (conntrack limits and timeouts 0,
#               localhostNodePorts off); NodePorts only on 10.213.0.0/16; masquerade for every Service connection
#               (a Pod reaching a Service endpoint on its own bridge gets the reply back through the host).
#   CoreDNS     e2e/coredns: the kubernetes plugin for cluster.local and the reverse zones, bound to node-1's
#               bridge address (the kubelets' clusterDNS); no forward plugin is compiled in, so nothing is ever
#               resolved outside the cluster. Pods get the kubelets' own resolv.conf, never the host's resolver.
#   Forwarding  net.ipv4.ip_forward=1 (Pod -> Service -> Pod on another bridge), with FORWARD drops for the
#               machine's own interface in both directions; kube-apiserver (bound to 0.0.0.0 so Pods reach it at
#               node-1's bridge address, its advertised address) refuses connections arriving on that interface.
# Everything changed on the host is recorded in $STATE/host-restore and undone by `down`, newest first.

RESTORE="$STATE/host-restore"
DNS_IP=10.213.1.1
CLUSTER_DOMAIN=cluster.local

# The machine's own interface: the one holding the default route (eth0 here).
uplink() { ip -o route show default 2>/dev/null | awk '{print $5; exit}'; }

# host_rule CHAIN RULE...: insert an IPv4 filter rule (once) and record its removal.
host_rule() {
  iptables -w -C "$@" 2>/dev/null || iptables -w -I "$@"
  echo "iptables -w -D $*" >>"$RESTORE"
}

# The nf_tables tables iptables-nft and kube-proxy create when they first add a rule: those that do not exist
# yet are deleted again by `down` once empty (this runs first, so its lines are undone last).
remember_nft_tables() {
  command -v nft >/dev/null || return 0
  local t
  for t in "ip filter" "ip nat" "ip mangle" "ip6 filter" "ip6 nat" "ip6 mangle"; do
    # shellcheck disable=SC2086
    nft list table $t >/dev/null 2>&1 || echo "nft_delete_if_empty $t" >>"$RESTORE"
  done
}

nft_delete_if_empty() { # FAMILY NAME: delete the table when no rule is left in it
  nft -a list table "$1" "$2" 2>/dev/null | grep '# handle' | grep -qvE '^\s*(table|chain) ' && return 0
  nft delete table "$1" "$2" 2>/dev/null || true
}

# guard_apiserver: kube-apiserver listens on 0.0.0.0 with nodes; nothing arriving on the uplink reaches it.
guard_apiserver() {
  local up
  remember_nft_tables
  up="$(uplink)"
  [ -n "$up" ] || return 0
  host_rule INPUT -i "$up" -p tcp --dport "$APISERVER_PORT" -j DROP
}

services_up() {
  local up
  up="$(uplink)"
  if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
    if [ -n "$up" ]; then
      host_rule FORWARD -i "$up" -j DROP
      host_rule FORWARD -o "$up" -j DROP
    fi
    echo "sysctl -qw net.ipv4.ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)" >>"$RESTORE"
    sysctl -qw net.ipv4.ip_forward=1
  fi
  services_rbac
  kube_proxy_up
  coredns_up
}

services_rbac() {
  [ -f "$PKI/kube-proxy.crt" ] || new_cert "$PKI/ca" "$PKI/kube-proxy" "/CN=system:kube-proxy" clientAuth
  [ -f "$PKI/coredns.crt" ] || new_cert "$PKI/ca" "$PKI/coredns" "/CN=nadipam-e2e:coredns" clientAuth
  kubeconfig "$STATE/kube-proxy.kubeconfig" system:kube-proxy "$PKI/kube-proxy"
  kubeconfig "$STATE/coredns.kubeconfig" nadipam-e2e:coredns "$PKI/coredns"
  # kube-proxy's rights come with the apiserver's default policy (system:node-proxier); CoreDNS' are those its
  # upstream manifests grant.
  kc apply -f - >/dev/null <<YAML
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: nadipam-e2e-coredns}
rules:
- apiGroups: [""]
  resources: ["services", "pods", "namespaces"]
  verbs: ["list", "watch"]
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["list", "watch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: nadipam-e2e-coredns}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: nadipam-e2e-coredns}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "nadipam-e2e:coredns"}
YAML
}

kube_proxy_up() {
  local ports
  mapfile -t ports < <(free_ports 2)
  cat >"$STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $STATE/kube-proxy.kubeconfig}
hostnameOverride: node-1
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:${ports[0]}
metricsBindAddress: 127.0.0.1:${ports[1]}
mode: iptables
clusterCIDR: 10.213.0.0/16
nodePortAddresses: [10.213.0.0/16]
iptables: {masqueradeAll: true, localhostNodePorts: false}
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
  KUBE_PROXY_HEALTHZ_PORT=${ports[0]}
  echo "KUBE_PROXY_HEALTHZ_PORT=$KUBE_PROXY_HEALTHZ_PORT" >>"$STATE/env"
  # `--cleanup` removes its chains but keeps KUBE-FIREWALL (on purpose); kube_proxy_cleanup removes that too.
  echo "kube_proxy_cleanup" >>"$RESTORE"
  start kube-proxy "$BIN_DIR/kube-proxy" --config "$STATE/kube-proxy.yaml"
  started+=(kube-proxy)
  wait_for "kube-proxy /healthz" 60 kube_proxy_ok
}

kube_proxy_ok() { curl -sf --max-time 5 "http://127.0.0.1:${KUBE_PROXY_HEALTHZ_PORT:-0}/healthz" >/dev/null; }

kube_proxy_cleanup() {
  stop kube-proxy
  "$BIN_DIR/kube-proxy" --cleanup >>"$LOGS/kube-proxy.log" 2>&1 || true
  local ipt chain
  for ipt in iptables ip6tables; do
    for chain in INPUT OUTPUT; do
      while $ipt -w -D "$chain" -j KUBE-FIREWALL 2>/dev/null; do :; done
    done
    if $ipt -w -F KUBE-FIREWALL 2>/dev/null; then $ipt -w -X KUBE-FIREWALL 2>/dev/null || true; fi
  done
}

coredns_up() {
  local ports
  mapfile -t ports < <(free_ports 2)
  cat >"$STATE/Corefile" <<CONF
$CLUSTER_DOMAIN:53 in-addr.arpa:53 ip6.arpa:53 {
    bind $DNS_IP
    errors
    health 127.0.0.1:${ports[0]}
    ready 127.0.0.1:${ports[1]}
    kubernetes $CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
        kubeconfig $STATE/coredns.kubeconfig nadipam-e2e
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
}
CONF
  COREDNS_READY_PORT=${ports[1]}
  echo "COREDNS_READY_PORT=$COREDNS_READY_PORT" >>"$STATE/env"
  start coredns "$BIN_DIR/coredns" -conf "$STATE/Corefile"
  started+=(coredns)
  wait_for "CoreDNS /ready" 60 coredns_ok
}

coredns_ok() { curl -sf --max-time 5 "http://127.0.0.1:${COREDNS_READY_PORT:-0}/ready" >/dev/null; }

# services_down: stop CoreDNS, then undo host-restore, newest first (kube-proxy's cleanup is one of its lines).
services_down() {
  stop coredns
  [ -f "$RESTORE" ] || return 0
  local line
  while read -r line; do
    eval "$line" || log "could not undo: $line"
  done < <(tac "$RESTORE")
  rm -f "$RESTORE"
}

services_status() {
  [ "${NODES:-0}" -gt 0 ] || return 0
  local c pid ok rc=0
  for c in kube-proxy coredns; do
    pid="$(pid_of "$c")"
    if [ -z "$pid" ]; then
      ok=DOWN
      rc=1
    else
      case "$c" in
        kube-proxy) kube_proxy_ok && ok=healthy || ok=UNHEALTHY ;;
        coredns) coredns_ok && ok="ready on $DNS_IP:53" || ok=UNREADY ;;
      esac
      [[ "$ok" == [A-Z]* ]] && rc=1
      ok="running pid $pid rss $(($(awk '/^VmRSS/{print $2}' "/proc/$pid/status") / 1024)) MiB, $ok"
    fi
    printf '%-24s %s\n' "$c" "$ok"
  done
  return $rc
}
