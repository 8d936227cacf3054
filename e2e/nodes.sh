# Nodes of the local test bed (sourced by e2e/cluster): per node a containerd and a kubelet v1.34.4, Multus as the
# primary CNI delegating to a bridge + host-local network, the reference CNI plugins, ovs-cni and nadipam's plugin;
# one Open vSwitch (userspace datapath) with bridge br1 for all nodes.
#
# Node i (1-based) is `node-i`:
#   bridge nadipam-br<i> with the node IP 10.213.<i>.1/24 (kubelet --node-ip; the apiserver dials it for exec/logs);
#   Pods' eth0 from host-local in 10.213.<i>.0/24 (.10 up) on that bridge, default route via 10.213.<i>.1;
#   state in $STATE/nodes/node-i/ (certificates, containerd root/state/socket, kubelet root, CNI bin/conf dirs, logs);
#   cgroups under /nadipam-e2e-node-i in every hierarchy (kubelet cgroupRoot).
# Each node is tainted nadipam.io/test-bed=true:NoSchedule: Pods of the control-plane-only suites stay Pending,
# and a Pod meant to run says so with a toleration (tests/nodes.rs, README).
# Shared by all nodes: `ul0`, a bridge standing in for the guides' eth0/br1 (macvlan NADs use it as master), and
# $STATE/nodes bind-mounted onto itself and made shared (volume mounts made by a kubelet reach its containerd).
#
# Fixed paths are kept per node with private mount namespaces instead of being written on the host:
#   containerd: /etc/cni/net.d <- node's cni/net.d (where Multus' and nadipam's kubeconfigs are, at the paths the
#               Helm chart's node installation uses), /var/lib/cni, /run/containerd, /run/netns <- node dirs;
#   kubelet:    /var/lib/kubelet, /var/log/containers <- node dirs; /proc/sys/{vm/overcommit_memory,kernel/panic,
#               kernel/panic_on_oops} <- files already holding the values the kubelet wants (so it leaves the
#               host's sysctls alone).
# Mount points that do not exist on the host are created and listed in $STATE/nodes/created; `down` removes them.

NODES_DIR="$STATE/nodes"
UNDERLAY=ul0
# Open vSwitch (Debian's openvswitch-switch, userspace datapath: this kernel has no openvswitch module), shared by
# the nodes: its database and control sockets, pid and log files live here, and containerd sees this directory at
# /run/openvswitch, where ovs-cni looks by default (NADs need no socket_file).
OVS_DIR="$NODES_DIR/ovs"
OVS_BRIDGE=br1
# One test bed with nodes per machine: the link names, 10.213.0.0/16 and the cgroup names are fixed. This file
# (on /run, a tmpfs) names the state directory of the bed that has them; `down` removes it.
HOST_CLAIM=/run/nadipam-e2e-nodes
# Every node carries this NoSchedule taint; Pods meant for the nodes tolerate it.
NODE_TAINT_KEY=nadipam.io/test-bed

node_dir() { echo "$NODES_DIR/node-$1"; }
node_bridge() { echo "nadipam-br$1"; }
node_ip() { echo "10.213.$1.1"; }

# Mount targets the kubelets and containerds need; created when missing, recorded for `down`.
NODE_MOUNT_TARGETS=(/etc/cni/net.d /opt/cni/bin /var/lib/cni /run/containerd /run/netns /run/openvswitch
  /var/lib/kubelet /var/log/containers)

nodes_prereqs() {
  local need=()
  command -v containerd >/dev/null || need+=(containerd)
  command -v runc >/dev/null || need+=(runc)
  command -v iptables >/dev/null || need+=(iptables)
  command -v unshare >/dev/null || need+=(util-linux)
  command -v busybox >/dev/null || need+=(busybox-static)
  command -v file >/dev/null || need+=(file)
  command -v ovs-vswitchd >/dev/null || need+=(openvswitch-switch)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2 ||
      die "could not install ${need[*]}"
  fi
}

# The nadipam plugin and node agent: NADIPAM_CNI_PLUGIN / NADIPAM_NODE_AGENT (the tests pass cargo's), else the
# debug build of this checkout (built when missing).
nadipam_binaries() {
  local repo
  repo="$(cd "$E2E/.." && pwd)"
  PLUGIN_BIN="${NADIPAM_CNI_PLUGIN:-$repo/target/debug/nadipam}"
  AGENT_BIN="${NADIPAM_NODE_AGENT:-$repo/target/debug/nadipam-node-agent}"
  if [ ! -x "$PLUGIN_BIN" ] || [ ! -x "$AGENT_BIN" ]; then
    [ -z "${NADIPAM_CNI_PLUGIN:-}${NADIPAM_NODE_AGENT:-}" ] || die "no $PLUGIN_BIN or $AGENT_BIN"
    log "building nadipam's CNI plugin and node agent (cargo build)"
    (cd "$repo" && cargo build -q --bin nadipam --bin nadipam-node-agent >&2) || die "cargo build failed"
  fi
}

# Shared host-side setup, once for all nodes.
nodes_host_setup() {
  local t other
  other="$(cat "$HOST_CLAIM" 2>/dev/null || true)"
  if [ -n "$other" ] && [ "$other" != "$STATE" ] && [ -d "$other/nodes" ]; then
    abort_up "another test bed with nodes runs from $other (only one per machine: ul0, br1, nadipam-br<i> and
10.213.0.0/16 are fixed names); stop it with NADIPAM_STATE=$other e2e/cluster down"
  fi
  echo "$STATE" >"$HOST_CLAIM"
  mkdir -p "$NODES_DIR"
  touch "$NODES_DIR/created"
  for t in "${NODE_MOUNT_TARGETS[@]}"; do
    if [ ! -e "$t" ]; then
      # Record the topmost missing component, so `down` removes exactly what we made.
      local top="$t"
      while [ ! -e "$(dirname "$top")" ]; do top="$(dirname "$top")"; done
      mkdir -p "$t"
      grep -qxF "$top" "$NODES_DIR/created" || echo "$top" >>"$NODES_DIR/created"
    fi
  done
  if ! mountpoint -q "$NODES_DIR"; then
    mount --bind "$NODES_DIR" "$NODES_DIR"
    mount --make-rshared "$NODES_DIR"
  fi
  if ! ip link show "$UNDERLAY" >/dev/null 2>&1; then
    ip link add "$UNDERLAY" type bridge
    echo "link $UNDERLAY" >>"$NODES_DIR/created"
  fi
  ip link set "$UNDERLAY" up
  ovs_up
  # The sysctl values the kubelet insists on, as files to bind over /proc/sys in its mount namespace.
  mkdir -p "$NODES_DIR/sysctl"
  echo 1 >"$NODES_DIR/sysctl/overcommit_memory"
  echo 10 >"$NODES_DIR/sysctl/panic"
  echo 1 >"$NODES_DIR/sysctl/panic_on_oops"
}

node_pki() { # I
  local d
  d="$(node_dir "$1")"
  mkdir -p "$d/pki"
  new_cert "$PKI/ca" "$d/pki/kubelet-client" "/O=system:nodes/CN=system:node:node-$1" clientAuth
  kubeconfig "$d/kubelet.kubeconfig" "system:node:node-$1" "$d/pki/kubelet-client"
}

# start_node_process NAME EXE SETUP ARGS...: like `start`, in a private mount namespace prepared by SETUP (a
# shell snippet run as root in that namespace before exec). Propagation is left unchanged (the host's / is
# private; $NODES_DIR is shared, so the kubelet's volume mounts reach containerd).
start_node_process() {
  local name="$1" exe="$2" setup="$3"
  shift 3
  # pbind SRC DST: bind SRC over DST in this namespace only. The mount holding DST is made a slave first: a
  # shared one (e.g. /run/netns, which `ip netns` makes shared) would otherwise carry the bind to the host.
  local pbind='pbind() { mount --make-slave "$(findmnt -n -o TARGET --target "$2")"; mount --bind "$1" "$2"; }'
  setsid unshare -m --propagation unchanged bash -c "set -e; $pbind; $setup; exec \"\$0\" \"\$@\"" "$exe" "$@" \
    </dev/null >>"$LOGS/$name.log" 2>&1 9>&- &
  local pid=$! i
  echo "$pid $exe" >"$PIDS/$name.pid"
  for i in $(seq 100); do
    [ -d "/proc/$pid" ] || return 0
    [ "$(argv0 "$pid")" = "$exe" ] && return 0
    sleep 0.05
  done
}

node_cni_config() { # I
  local i="$1" d net bin
  d="$(node_dir "$i")"
  net="$d/cni/net.d"
  bin="$d/cni/bin"
  mkdir -p "$net/multus.d/primary" "$bin" "$d/logs"
  local p
  for p in multus bridge host-local macvlan static loopback ovs whereabouts; do ln -sf "$BIN_DIR/$p" "$bin/$p"; done
  # Multus reads Pods and NADs and writes the network-status annotation with the node's identity (RBAC:
  # ClusterRole nadipam-e2e-multus, bound to the group system:nodes).
  cp "$d/kubelet.kubeconfig" "$net/multus.d/multus.kubeconfig"
  # clusterNetwork names the directory, not the file: Multus 4.3 parses a conflist file path into typed
  # structs and caches that lossy copy (bridge and host-local lose every option; CNI DEL then fails with "no IP
  # ranges specified" and the Pod never finishes terminating); a directory's first file is passed on as written.
  cat >"$net/multus.d/primary/10-primary.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "nadipam-e2e-primary",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$(node_bridge "$i")",
      "isGateway": false,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.213.$i.0/24", "rangeStart": "10.213.$i.10", "gateway": "$(node_ip "$i")"}]],
        "routes": [{"dst": "0.0.0.0/0", "gw": "$(node_ip "$i")"}]
      }
    }
  ]
}
EOF
  # containerd loads the first file of its conf dir only: Multus, which delegates to the primary network.
  cat >"$net/00-multus.conf" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "multus-cni-network",
  "type": "multus",
  "kubeconfig": "/etc/cni/net.d/multus.d/multus.kubeconfig",
  "clusterNetwork": "/etc/cni/net.d/multus.d/primary",
  "binDir": "/opt/cni/bin",
  "cniDir": "/var/lib/cni/multus",
  "logFile": "$d/logs/multus.log",
  "logLevel": "verbose"
}
EOF
}

# The nadipam plugin as its node installation puts it: nadipam-node-agent --once copies the plugin into the CNI
# bin dir and writes its kubeconfig at the plugin's default path (/etc/cni/net.d/nadipam.d/, this node's
# cni/net.d in containerd's mount namespace) from a service-account token, as the chart's DaemonSet does.
node_install_nadipam() { # I
  local d
  d="$(node_dir "$1")"
  mkdir -p "$d/agent"
  kc create token nadipam-node-agent -n kube-system --duration 24h >"$d/agent/token.tmp" ||
    die "kubectl create token nadipam-node-agent failed"
  mv "$d/agent/token.tmp" "$d/agent/token"
  cp "$PKI/ca.crt" "$d/agent/ca.crt"
  "$AGENT_BIN" --once --plugin "$PLUGIN_BIN" --cni-bin-dir "$d/cni/bin" \
    --kubeconfig "$d/cni/net.d/nadipam.d/nadipam.kubeconfig" --token-file "$d/agent/token" \
    --ca-file "$d/agent/ca.crt" --server "https://127.0.0.1:$APISERVER_PORT" >>"$LOGS/node-$1-agent.log" 2>&1 ||
    die "nadipam-node-agent --once failed on node-$1 (log: $LOGS/node-$1-agent.log)"
}

# Whereabouts as its DaemonSet installs it (doc/crds/daemonset-install.yaml of v0.9.4): the plugin in the bin dir,
# its flat file and a kubeconfig from the `whereabouts` ServiceAccount's token in /etc/cni/net.d/whereabouts.d/.
# The benchmark's node phase compares it with nadipam and host-local on the same nodes.
node_install_whereabouts() { # I
  local d w
  d="$(node_dir "$1")"
  w="$d/cni/net.d/whereabouts.d"
  mkdir -p "$w"
  kc create token whereabouts -n kube-system --duration 24h >"$w/token.tmp" ||
    die "kubectl create token whereabouts failed"
  cp "$PKI/ca.crt" "$w/ca.crt"
  cat >"$w/whereabouts.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://127.0.0.1:$APISERVER_PORT", certificate-authority: /etc/cni/net.d/whereabouts.d/ca.crt}
users:
- name: whereabouts
  user: {token: "$(cat "$w/token.tmp")"}
contexts:
- name: whereabouts
  context: {cluster: local, user: whereabouts, namespace: kube-system}
current-context: whereabouts
EOF
  rm -f "$w/token.tmp"
  cat >"$w/whereabouts.conf" <<EOF
{"datastore": "kubernetes", "kubernetes": {"kubeconfig": "/etc/cni/net.d/whereabouts.d/whereabouts.kubeconfig"}, "log_level": "error", "log_file": "$d/logs/whereabouts.log"}
EOF
}

# RBAC for the node-side clients: Multus (as the node) and nadipam's node agent token (get pods only, as the chart).
nodes_rbac() {
  # Multus runs on the nodes, so its NetworkAttachmentDefinition CRD is installed, as a Multus install does.
  kc apply -f "$E2E/manifests/nad-crd.yaml" >/dev/null || abort_up "applying the NAD CRD failed"
  kc wait --for condition=established --timeout=30s crd/network-attachment-definitions.k8s.cni.cncf.io >/dev/null ||
    abort_up "the NAD CRD did not become established"
  # Whereabouts' CRDs and the RBAC of its DaemonSet install (v0.9.4), for node_install_whereabouts.
  kc apply --server-side --force-conflicts -f "$BIN_DIR/whereabouts-crds" >/dev/null ||
    abort_up "applying Whereabouts' CRDs failed"
  kc apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata: {name: whereabouts, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: nadipam-e2e-whereabouts
rules:
- apiGroups: [whereabouts.cni.cncf.io]
  resources: [ippools, overlappingrangeipreservations, nodeslicepools]
  verbs: [get, list, watch, create, update, patch, delete]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: ["*"]
- apiGroups: [""]
  resources: [pods, nodes]
  verbs: [get, list, watch]
- apiGroups: [k8s.cni.cncf.io]
  resources: [network-attachment-definitions]
  verbs: [get, list, watch]
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [create, patch, update, get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: nadipam-e2e-whereabouts
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: nadipam-e2e-whereabouts}
subjects:
- {kind: ServiceAccount, name: whereabouts, namespace: kube-system}
EOF
  kc apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: nadipam-e2e-multus
rules:
- apiGroups: ["k8s.cni.cncf.io"]
  resources: ["*"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods", "pods/status"]
  verbs: ["get", "list", "watch", "update", "patch"]
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: nadipam-e2e-multus
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: nadipam-e2e-multus}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: system:nodes}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: nadipam-node-agent, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: nadipam-e2e-cni
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: nadipam-e2e-cni
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: nadipam-e2e-cni}
subjects:
- {kind: ServiceAccount, name: nadipam-node-agent, namespace: kube-system}
EOF
}

node_containerd_config() { # I
  local i="$1" d c
  d="$(node_dir "$i")"
  c="$d/containerd"
  mkdir -p "$c/root" "$c/state" "$c/runc" "$c/opt" "$c/certs.d/docker.io" "$c/certs.d/_default" \
    "$d/mnt/run-containerd" "$d/mnt/var-lib-cni" "$d/mnt/run-netns"
  # No image ever leaves this machine: every registry resolves to a closed local port.
  local h
  for h in docker.io _default; do
    printf 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:9"]\n  capabilities = ["pull", "resolve"]\n' \
      >"$c/certs.d/$h/hosts.toml"
  done
  cat >"$c/config.toml" <<EOF
version = 2
root = "$c/root"
state = "$c/state"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "$c/containerd.sock"

[ttrpc]
  address = "$c/containerd.sock.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$c/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/nadipam-pause:latest"
  # This machine denies CAP_SYS_RESOURCE: lowering oom_score_adj fails and runc dies without it.
  restrict_oom_score_adj = true
  disable_apparmor = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  BinaryName = "$(command -v runc)"
  Root = "$c/runc"
  SystemdCgroup = false

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/opt/cni/bin"
  conf_dir = "/etc/cni/net.d"
  max_conf_num = 1

[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$c/certs.d"
EOF
}

node_kubelet_config() { # I KUBELET_PORT HEALTHZ_PORT
  local i="$1" d
  d="$(node_dir "$i")"
  mkdir -p "$d/kubelet" "$d/pod-logs" "$d/volume-plugins" "$d/mnt/var-lib-kubelet" "$d/mnt/var-log-containers"
  echo "# Pods of the test bed resolve cluster names only (clusterDNS)" >"$d/resolv.conf"
  cat >"$d/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $(node_ip "$i")
port: $2
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $3
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$d/containerd/containerd.sock
imageServiceEndpoint: unix://$d/containerd/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: /nadipam-e2e-node-$i
cgroupsPerQOS: true
failCgroupV1: false
failSwapOn: false
protectKernelDefaults: false
makeIPTablesUtilChains: false
# Cluster DNS (CoreDNS, e2e/services.sh); Pods never see the host's resolver.
clusterDNS: [$DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $d/resolv.conf
podLogsDir: $d/pod-logs
volumePluginDir: $d/volume-plugins
registerNode: true
# Only Pods that ask for these nodes run here: the other suites' Pods (NADs with master eth0, images from
# docker.io) must stay Pending as they always did, never reach a kubelet.
registerWithTaints:
- {key: $NODE_TAINT_KEY, value: "true", effect: NoSchedule}
# The disk of a shared build machine is often fuller than the defaults allow (nodefs.available<10%): that would
# taint the node with disk pressure and evict Pods. The images are imported, never pulled: never collect them.
evictionHard: {memory.available: 50Mi, nodefs.available: 1%, nodefs.inodesFree: 1%, imagefs.available: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
shutdownGracePeriod: 0s
EOF
}

node_up() { # I
  local i="$1" d br ip kp hp
  d="$(node_dir "$i")"
  br="$(node_bridge "$i")"
  ip="$(node_ip "$i")"
  mkdir -p "$d"
  if ! ip link show "$br" >/dev/null 2>&1; then
    ip link add "$br" type bridge
  fi
  ip addr replace "$ip/24" dev "$br"
  ip link set "$br" up
  node_pki "$i"
  node_cni_config "$i"
  node_install_nadipam "$i"
  node_install_whereabouts "$i"
  node_containerd_config "$i"
  local ports
  mapfile -t ports < <(free_ports 2)
  kp=${ports[0]} hp=${ports[1]}
  echo "NODE_${i}_KUBELET_PORT=$kp NODE_${i}_HEALTHZ_PORT=$hp" >"$d/env"
  node_kubelet_config "$i" "$kp" "$hp"

  start_node_process "node-$i-containerd" "$(command -v containerd)" \
    "pbind $d/cni/net.d /etc/cni/net.d; pbind $d/cni/bin /opt/cni/bin; pbind $d/mnt/var-lib-cni /var/lib/cni;
     pbind $d/mnt/run-containerd /run/containerd; pbind $d/mnt/run-netns /run/netns;
     pbind $OVS_DIR /run/openvswitch" \
    --config "$d/containerd/config.toml" --log-level warn
  started+=("node-$i-containerd")
  record_mntns "node-$i-containerd"
  wait_for "node-$i containerd" 30 ctr_ok "$i"
  local img
  for img in pause nadipam-test; do
    ctr_node "$i" images import "$IMAGES_DIR/$img.oci.tar" >/dev/null ||
      abort_up "importing $img into node-$i's containerd failed"
  done

  node_cgroups "$i"
  start_node_process "node-$i-kubelet" "$BIN_DIR/kubelet" \
    "pbind $d/mnt/var-lib-kubelet /var/lib/kubelet; pbind $d/mnt/var-log-containers /var/log/containers;
     pbind $d/cni/net.d /etc/cni/net.d; pbind $d/cni/bin /opt/cni/bin;
     pbind $NODES_DIR/sysctl/overcommit_memory /proc/sys/vm/overcommit_memory;
     pbind $NODES_DIR/sysctl/panic /proc/sys/kernel/panic;
     pbind $NODES_DIR/sysctl/panic_on_oops /proc/sys/kernel/panic_on_oops" \
    --config "$d/kubelet.yaml" --kubeconfig "$d/kubelet.kubeconfig" --hostname-override "node-$i" \
    --node-ip "$ip" --root-dir "$d/kubelet" --cert-dir "$d/pki/kubelet-serving"
  started+=("node-$i-kubelet")
  record_mntns "node-$i-kubelet"
}

# record_mntns NAME: the mount namespace the process NAME runs in (what its children, such as containerd's shims,
# inherit), so that `down` can find them after NAME is gone.
record_mntns() {
  local pid ns i
  pid="$(pid_of "$1")"
  [ -n "$pid" ] || return 0
  # Until unshare has exec'd the binary, the process may still be in the host's namespace.
  for i in $(seq 50); do
    ns="$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" || return 0
    [ "$ns" != "$(readlink /proc/self/ns/mnt)" ] && break
    sleep 0.05
  done
  echo "$ns" >"$PIDS/$1.mntns"
}

# kill_mntns NAME: SIGKILL every process left in the mount namespace recorded for NAME (never the host's).
kill_mntns() {
  local f="$PIDS/$1.mntns" ns p pass
  [ -f "$f" ] || return 0
  ns="$(cat "$f")"
  [ -n "$ns" ] && [ "$ns" != "$(readlink /proc/self/ns/mnt)" ] || return 0
  for pass in 1 2 3 4 5; do
    local any=0
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] || continue
      any=1
      kill -KILL "${p#/proc/}" 2>/dev/null || true
    done
    [ "$any" = 0 ] && return 0
    sleep 0.2
  done
}

kc() { "$BIN_DIR/kubectl" --kubeconfig "$STATE/kubeconfig" "$@"; }

# node_cgroups I: the kubelet's cgroupRoot, which must exist, in every cgroup v1 hierarchy (cpuset needs its
# parent's cpus and mems before it takes a process).
node_cgroups() {
  local h dir
  for h in /sys/fs/cgroup/*/; do
    [ -f "$h/cgroup.procs" ] && [ "$h" != /sys/fs/cgroup/unified/ ] || continue
    dir="${h}nadipam-e2e-node-$1"
    mkdir -p "$dir"
    if [ -f "$h/cpuset.cpus" ]; then
      cat "$h/cpuset.cpus" >"$dir/cpuset.cpus"
      cat "$h/cpuset.mems" >"$dir/cpuset.mems"
    fi
  done
}

ovs_vsctl() { ovs-vsctl --db="unix:$OVS_DIR/db.sock" --timeout=10 "$@"; }

# ovs_up: ovsdb-server and ovs-vswitchd (userspace TSO on: without it TCP between Pods fails on bad checksums),
# and the bridge br1 with datapath_type=netdev.
ovs_up() {
  if [ -S "$OVS_DIR/db.sock" ] && ovs_vsctl br-exists "$OVS_BRIDGE" 2>/dev/null; then return 0; fi
  if ip link show "$OVS_BRIDGE" >/dev/null 2>&1; then
    abort_up "a link named $OVS_BRIDGE exists already (another Open vSwitch?); the test bed's bridge needs that name"
  fi
  mkdir -p "$OVS_DIR"
  rm -f "$OVS_DIR/conf.db"
  ovsdb-tool create "$OVS_DIR/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  OVS_RUNDIR="$OVS_DIR" ovsdb-server "$OVS_DIR/conf.db" --remote="punix:$OVS_DIR/db.sock" \
    --pidfile="$OVS_DIR/ovsdb-server.pid" --unixctl="$OVS_DIR/ovsdb-server.ctl" \
    --log-file="$LOGS/ovsdb-server.log" --detach 9>&- 2>>"$LOGS/ovsdb-server.log" || abort_up "ovsdb-server did not start"
  ovs_vsctl --no-wait init
  ovs_vsctl --no-wait set Open_vSwitch . other_config:userspace-tso-enable=true
  OVS_RUNDIR="$OVS_DIR" ovs-vswitchd "unix:$OVS_DIR/db.sock" --pidfile="$OVS_DIR/ovs-vswitchd.pid" \
    --unixctl="$OVS_DIR/ovs-vswitchd.ctl" --log-file="$LOGS/ovs-vswitchd.log" --detach 9>&- ||
    abort_up "ovs-vswitchd did not start"
  ovs_vsctl add-br "$OVS_BRIDGE" -- set bridge "$OVS_BRIDGE" datapath_type=netdev ||
    abort_up "ovs-vsctl add-br $OVS_BRIDGE failed"
  ip link set "$OVS_BRIDGE" up
}

ovs_down() {
  [ -d "$OVS_DIR" ] || return 0
  local d pid
  if [ -S "$OVS_DIR/ovs-vswitchd.ctl" ]; then
    ovs-appctl -t "$OVS_DIR/ovs-vswitchd.ctl" exit --cleanup >/dev/null 2>&1 || true
  fi
  if [ -S "$OVS_DIR/ovsdb-server.ctl" ]; then
    ovs-appctl -t "$OVS_DIR/ovsdb-server.ctl" exit >/dev/null 2>&1 || true
  fi
  for d in ovs-vswitchd ovsdb-server; do
    [ -f "$OVS_DIR/$d.pid" ] || continue
    pid="$(cat "$OVS_DIR/$d.pid")"
    # Only the daemon we started: its pidfile and its name must agree.
    local i
    for i in $(seq 30); do
      [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$d" ] || break
      sleep 0.1
    done
    if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$d" ]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  ip link del "$OVS_BRIDGE" 2>/dev/null || true
}

ctr_node() { # I ARGS...: ctr against node I's containerd, in the CRI namespace
  local i="$1"
  shift
  ctr --address "$(node_dir "$i")/containerd/containerd.sock" -n k8s.io "$@"
}
ctr_ok() { ctr --address "$(node_dir "$1")/containerd/containerd.sock" version; }

node_ready() { # NAME
  kc get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True
}
node_untainted() { # NAME: the node-lifecycle controller has removed the not-ready taint
  ! kc get node "$1" -o jsonpath='{.spec.taints[*].key}' 2>/dev/null | grep -q 'node.kubernetes.io/not-ready'
}

nodes_up() { # N
  local n="$1" i
  [ "$n" -gt 0 ] || return 0
  nodes_prereqs
  nadipam_binaries
  IMAGES_DIR="$(bash "$E2E/images.sh")" || abort_up "e2e/images.sh failed"
  nodes_host_setup
  nodes_rbac
  for i in $(seq "$n"); do node_up "$i"; done
  nodes_wait_ready
}

nodes_wait_ready() {
  local i
  for i in $(seq "${NODES:-0}"); do
    wait_for "node-$i Ready" 90 node_ready "node-$i"
    wait_for "node-$i without the not-ready taint" 60 node_untainted "node-$i"
  done
}

# Reinstall nadipam's plugin on running nodes (a new build of it), without restarting anything.
nodes_reinstall_nadipam() {
  local i
  nadipam_binaries
  for i in $(seq "${NODES:-0}"); do node_install_nadipam "$i"; done
}

nodes_healthy() {
  local i
  for i in $(seq "${NODES:-0}"); do
    [ -n "$(pid_of "node-$i-containerd")" ] && [ -n "$(pid_of "node-$i-kubelet")" ] || return 1
  done
}

# kill_cgroup_tree NAME: SIGKILL every process in /nadipam-e2e-NAME of every cgroup hierarchy, then remove the
# cgroups (deepest first).
kill_cgroup_tree() {
  local name="$1" h dir pass pid
  for pass in 1 2 3 4 5; do
    local any=0
    for h in /sys/fs/cgroup/*/; do
      dir="$h$name"
      [ -d "$dir" ] || continue
      while read -r pid; do
        [ -n "$pid" ] || continue
        any=1
        kill -KILL "$pid" 2>/dev/null || true
      done < <(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null)
    done
    [ "$any" = 0 ] && break
    sleep 0.3
  done
  for h in /sys/fs/cgroup/*/; do
    dir="$h$name"
    [ -d "$dir" ] || continue
    find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    [ -d "$dir" ] && log "could not remove cgroup $dir"
  done
  return 0
}

nodes_down() {
  local i n=0 d
  load_env 2>/dev/null || true
  for d in "$NODES_DIR"/node-*; do
    [ -d "$d" ] && n=$((n + 1))
  done
  for i in $(seq "$n"); do stop "node-$i-kubelet"; done
  for i in $(seq "$n"); do
    stop "node-$i-containerd"
    # Containers and their shims outlive containerd: the containers through the node's cgroups, the shims
    # through containerd's mount namespace.
    kill_cgroup_tree "nadipam-e2e-node-$i"
    kill_mntns "node-$i-containerd"
    kill_mntns "node-$i-kubelet"
    ip link del "$(node_bridge "$i")" 2>/dev/null || true
  done
  ovs_down
  [ "$(cat "$HOST_CLAIM" 2>/dev/null)" != "$STATE" ] || rm -f "$HOST_CLAIM"
  if [ -d "$NODES_DIR" ]; then
    # Volume mounts, container root filesystems and our own bind, deepest first.
    # (Also any mount of a node directory elsewhere on the host, as a safety net: binds are meant to stay in
    # the nodes' own mount namespaces.)
    local m
    for m in $(awk -v p="$NODES_DIR" 'index($5, p) == 1 || index($4, p) == 1 {print $5}' /proc/self/mountinfo |
      sort -r); do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || log "could not unmount $m"
    done
    if [ -f "$NODES_DIR/created" ]; then
      local what
      while read -r what; do
        case "$what" in
          "link "*) ip link del "${what#link }" 2>/dev/null || true ;;
          # Only empty directories: whatever someone else put there since stays.
          /*) find "$what" -depth -type d -empty -delete 2>/dev/null || log "could not remove $what" ;;
        esac
      done < <(sort -r "$NODES_DIR/created")
    fi
  fi
}

nodes_status() {
  local i pid kubelet state rc=0
  for i in $(seq "${NODES:-0}"); do
    local parts=()
    for kubelet in containerd kubelet; do
      pid="$(pid_of "node-$i-$kubelet")"
      if [ -n "$pid" ]; then
        parts+=("$kubelet pid $pid rss $(($(awk '/^VmRSS/{print $2}' "/proc/$pid/status") / 1024)) MiB")
      else
        parts+=("$kubelet DOWN")
        rc=1
      fi
    done
    if node_ready "node-$i"; then state=Ready; else
      state=NOTREADY
      rc=1
    fi
    printf '%-24s %s, %s, %s (node IP %s)\n' "node-$i" "$state" "${parts[0]}" "${parts[1]}" "$(node_ip "$i")"
  done
  if [ "${NODES:-0}" -gt 0 ]; then
    local d ovs=()
    for d in ovsdb-server ovs-vswitchd; do
      pid="$(cat "$OVS_DIR/$d.pid" 2>/dev/null || true)"
      if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$d" ]; then
        ovs+=("$d pid $pid rss $(($(awk '/^VmRSS/{print $2}' "/proc/$pid/status") / 1024)) MiB")
      else
        ovs+=("$d DOWN")
        rc=1
      fi
    done
    printf '%-24s %s, %s, bridge %s\n' "open vswitch" "${ovs[0]}" "${ovs[1]}" \
      "$(ovs_vsctl br-exists "$OVS_BRIDGE" 2>/dev/null && echo "$OVS_BRIDGE" || echo "$OVS_BRIDGE MISSING")"
  fi
  return $rc
}
