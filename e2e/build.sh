#!/usr/bin/env bash
# Builds every binary the end-to-end tests need from its Go module and prints the directory that holds them all.
#
# Each component (a Go module under e2e/) builds into
#   ${NADIPAM_CACHE:-~/.cache/nadipam}/<component>-<version>-<hash>/bin/
# where <hash> covers the module's go.mod, go.sum and this script, so a changed pin or flag rebuilds and an
# unchanged one is skipped. The printed directory, ${NADIPAM_CACHE}/bin-<hash of all>/, links to every binary.
# Only the path goes to stdout; progress goes to stderr.
set -euo pipefail

E2E="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${NADIPAM_CACHE:-$HOME/.cache/nadipam}"
mkdir -p "$CACHE"

log() { echo "build.sh: $*" >&2; }

command -v go >/dev/null || { log "go is not installed (need Go >= 1.24 for tool directives)"; exit 1; }

# One build at a time: cargo may start several test binaries, and two cold builds would thrash 2 cores.
exec 9>"$CACHE/.build.lock"
flock 9

# Module time from the proxy's .info: a reproducible build date that is also the release's date.
module_time() {
  (cd "$1" && go mod download -json "$2" | sed -n 's/.*"Info": "\(.*\)",*/\1/p' | xargs cat | sed -n 's/.*"Time":"\([^"]*\)".*/\1/p')
}

# Version of a module as the component's go.mod resolves it.
module_version() { (cd "$1" && go list -m -f '{{.Version}}' "$2"); }

component_dir() { # name version -> cache dir for this component at this content
  local name="$1" version="$2" hash
  # A module's own top-level Go files (e2e/coredns/main.go) are part of what it builds.
  hash="$({ cat "$E2E/$name/go.mod" "$E2E/$name/go.sum" "$E2E/build.sh"
    find "$E2E/$name" -maxdepth 1 -name '*.go' | sort | xargs -r cat; } | sha256sum | cut -c1-12)"
  echo "$CACHE/$name-$version-$hash"
}

# prune GLOB KEEP: delete the cache entries GLOB other than KEEP (older pins and flags of the same thing), except
# those used in the last 2 hours: another checkout (a worktree on another branch) may be using them right now,
# and deleting them would make two checkouts rebuild each other's binaries in turn.
# A cluster still running from a deleted entry keeps running: Linux keeps an executing file alive.
prune() {
  local d
  for d in "$CACHE"/$1; do
    [ -d "$d" ] && [ "$d" != "$2" ] && [[ "$d" != *.tmp.* ]] || continue
    [ -n "$(find "$d/.complete" -mmin -120 2>/dev/null)" ] && continue
    rm -rf "$d"
  done
  return 0
}

# used DIR: mark a cache entry as in use (see prune).
used() { touch "$1/.complete" 2>/dev/null || true; }

# build NAME VERSION LDFLAGS PACKAGES... : go build into the cache unless the binaries are there already.
# Packages are `tool` (every tool directive) and/or paths; `name=path` renames the output binary.
build() {
  local name="$1" version="$2" ldflags="$3"
  shift 3
  local dir tmp start
  dir="$(component_dir "$name" "$version")"
  if [ -f "$dir/.complete" ]; then
    used "$dir"
    echo "$dir/bin"
    return
  fi
  log "building $name $version into $dir (from cold: minutes; with a warm Go build cache: seconds)"
  start=$(date +%s)
  tmp="$dir.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/bin"
  local plain=() spec
  for spec in "$@"; do
    if [[ "$spec" == *=* ]]; then
      (cd "$E2E/$name" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/bin/${spec%%=*}" "${spec#*=}")
    else
      plain+=("$spec")
    fi
  done
  if [ ${#plain[@]} -gt 0 ]; then
    (cd "$E2E/$name" && CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/bin/" "${plain[@]}")
  fi
  touch "$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  log "built $name in $(($(date +%s) - start)) s: $(du -sh "$dir/bin" | cut -f1)"
  prune "$name-*" "$dir"
  echo "$dir/bin"
}

# --- control plane: kube-apiserver, kube-controller-manager, kube-scheduler, etcd, and a matching kubectl ---
cp_mod="$E2E/controlplane"
k8s_version="$(module_version "$cp_mod" k8s.io/kubernetes)"
k8s_minor="$(echo "$k8s_version" | cut -d. -f2)"
# Without these the server reports v0.0.0-master, which breaks Helm's kubeVersion checks and kubectl's skew check.
# Servers read component-base's copy, kubectl client-go's; the release scripts set both. The commit is not
# known from the module proxy; zeros say so honestly.
k8s_date="$(module_time "$cp_mod" "k8s.io/kubernetes@$k8s_version")"
cp_ldflags="-s -w"
for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  cp_ldflags+=" -X $v.gitVersion=$k8s_version -X $v.gitMajor=1 -X $v.gitMinor=$k8s_minor -X $v.gitTreeState=clean
 -X $v.gitCommit=0000000000000000000000000000000000000000 -X $v.buildDate=$k8s_date"
done
cp_bin="$(build controlplane "$k8s_version" "$cp_ldflags" tool ./cmd/etcd)"

# --- tools: helm, CNI reference plugins, cnitool ---
tools_mod="$E2E/tools"
helm_version="$(module_version "$tools_mod" helm.sh/helm/v3)"
helm_k8s_minor="$(module_version "$tools_mod" k8s.io/client-go | cut -d. -f2)"
plugins_version="$(module_version "$tools_mod" github.com/containernetworking/plugins)"
hv=helm.sh/helm/v3/internal/version
# helm's Makefile sets the default Kubernetes version of `helm template`/`lint` from its client-go; so do we.
tools_ldflags="-s -w -X $hv.version=$helm_version -X $hv.metadata= -X $hv.gitTreeState=clean
 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$helm_k8s_minor
 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$helm_k8s_minor
 -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$plugins_version"
tools_bin="$(build tools "helm-$helm_version" "$tools_ldflags" tool)"

# --- whereabouts (own module: it needs a replace directive of its own) ---
wa_mod="$E2E/whereabouts"
wa_version="$(module_version "$wa_mod" github.com/k8snetworkplumbingwg/whereabouts)"
wv=github.com/k8snetworkplumbingwg/whereabouts/pkg/version
# whereabouts' version.GetVersion slices Version[1:], so an empty version would panic.
wa_ldflags="-s -w -X $wv.Version=$wa_version -X $wv.ReleaseStatus=released -X $wv.GitTreeState=clean"
wa_bin="$(build whereabouts "$wa_version" "$wa_ldflags" "whereabouts=github.com/k8snetworkplumbingwg/whereabouts/cmd")"

# --- Multus (thin plugin) and ovs-cni from upstream release tarballs ---
# The module proxy reachable here does not serve these modules; ../shared/third_party/ holds `git archive` of each
# release tag (checked against its sha256). Elsewhere the same tag comes from upstream with `go install`.
# Cluster DNS for the nodes (e2e/coredns: CoreDNS with the kubernetes plugin and no forwarding).
dns_mod="$E2E/coredns"
dns_version="$(module_version "$dns_mod" github.com/coredns/coredns)"
dns_bin="$(build coredns "$dns_version" "-s -w" "coredns=.")"

THIRD_PARTY="${NADIPAM_THIRD_PARTY:-$E2E/../../shared/third_party}"

# tarball_bin NAME VERSION SHA256 MODULE PKG BINARY LDFLAGS: build MODULE/PKG of release VERSION into
# $CACHE/NAME-VERSION-<hash>/bin/BINARY.
tarball_bin() {
  local name="$1" version="$2" sha="$3" module="$4" pkg="$5" binary="$6" ldflags="$7"
  local dir tmp start tar="$THIRD_PARTY/$name-$version.tar.gz"
  dir="$CACHE/$name-$version-$(printf '%s\n' "$sha" | cat - "$E2E/build.sh" | sha256sum | cut -c1-12)"
  if [ -f "$dir/.complete" ]; then
    used "$dir"
    echo "$dir/bin"
    return
  fi
  log "building $name $version into $dir (about a minute cold)"
  start=$(date +%s)
  tmp="$dir.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/bin" "$tmp/src"
  if [ -f "$tar" ]; then
    echo "$sha  $tar" | sha256sum -c --quiet - >&2 || { log "$tar: sha256 mismatch"; exit 1; }
    tar -xzf "$tar" -C "$tmp/src" --strip-components=1
    (cd "$tmp/src" && GOFLAGS=-mod=mod CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/bin/$binary" "./$pkg")
  else
    log "no $tar: building $name $version from upstream"
    (cd "$tmp/src" && GOFLAGS=-mod=mod GOBIN="$tmp/bin" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" \
      "$module/$pkg@$version")
    [ -f "$tmp/bin/$binary" ] || mv "$tmp/bin/$(basename "$pkg")" "$tmp/bin/$binary"
  fi
  rm -rf "$tmp/src"
  touch "$tmp/.complete"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  log "built $name in $(($(date +%s) - start)) s"
  prune "$name-*" "$dir"
  echo "$dir/bin"
}
multus_dir="$(tarball_bin multus-cni v4.3.0 e7575f328a3ead8dca970b8869dc93f3fe34ee4edcdc3b2dc8810f8337d06b5c \
  gopkg.in/k8snetworkplumbingwg/multus-cni.v4 cmd/multus multus \
  "-s -w -X gopkg.in/k8snetworkplumbingwg/multus-cni.v4/pkg/multus.version=v4.3.0")"
# ovs-cni's CNI plugin (cmd/plugin) is the `ovs` type.
ovs_dir="$(tarball_bin ovs-cni v0.39.0 cfa018acda4f6d0d29af0ccabedbf3327eedd35e945d15646844635b79c3c999 \
  github.com/k8snetworkplumbingwg/ovs-cni cmd/plugin ovs "-s -w")"

# --- one directory linking every binary, named by what it links to ---
all="$CACHE/bin-$(echo "$cp_bin $tools_bin $wa_bin $multus_dir $ovs_dir $dns_bin" | sha256sum | cut -c1-12)"
if [ -f "$all/.complete" ]; then
  used "$all"
else
  rm -rf "$all.tmp.$$"
  mkdir -p "$all.tmp.$$"
  for b in "$cp_bin"/* "$tools_bin"/* "$wa_bin"/* "$multus_dir"/* "$ovs_dir"/* "$dns_bin"/*; do
    ln -s "$b" "$all.tmp.$$/$(basename "$b")"
  done
  # whereabouts' CRDs (doc/crds/ in its module), copied so that a cleaned module cache does not lose them.
  mkdir -p "$all.tmp.$$/whereabouts-crds"
  cp "$(cd "$wa_mod" && go list -m -f '{{.Dir}}' github.com/k8snetworkplumbingwg/whereabouts)"/doc/crds/whereabouts.cni.cncf.io_*.yaml \
    "$all.tmp.$$/whereabouts-crds/"
  chmod u+w "$all.tmp.$$"/whereabouts-crds/*
  touch "$all.tmp.$$/.complete"
  rm -rf "$all"
  mv "$all.tmp.$$" "$all"
  prune "bin-*" "$all"
fi
echo "$all"
