#!/usr/bin/env bash
# nadipam's container image without Docker: the release binaries of this checkout at the Dockerfile's paths
# (/usr/local/bin/{nadipam-server,nadipam-node-agent,nadipam}), user 65532, entrypoint nadipam-server. The
# binaries are built with this machine's glibc toolchain, so the image carries the shared libraries they link
# (as `ldd` lists them) instead of being static like the Dockerfile's musl build; the layout and user are the same.
# Also the image the chart's `helm test` Pod runs: curl (Debian's) with its libraries.
#
#   e2e/nadipam-image.sh   prints three lines: the directory holding nadipam.oci.tar and curl.oci.tar, the tag
#                          of localhost/nadipam, and the name of the curl image (localhost/nadipam-curl:<curl
#                          version>: not `latest`, so the kubelet's default pull policy never tries a registry)
#
# Cached under ${NADIPAM_CACHE:-~/.cache/nadipam}/nadipam-image-<hash of the binaries and this script>/.
set -euo pipefail
E2E="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=e2e/oci.sh
. "$E2E/oci.sh"
CACHE="${NADIPAM_CACHE:-$HOME/.cache/nadipam}"
log() { echo "nadipam-image.sh: $*" >&2; }

command -v curl >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq curl >/dev/null; }
cd "$E2E/.."
# Run from a test (cargo test sets CARGO_*, OUT_DIR and a LD_LIBRARY_PATH of its own for its processes), a build
# with those would not match the fingerprints of a plain `cargo build --release` and rebuild everything each time.
for v in $(env | sed -n 's/^\(CARGO_[A-Z0-9_]*\|OUT_DIR\|LD_LIBRARY_PATH\)=.*/\1/p'); do
  case "$v" in CARGO_HOME | CARGO_TARGET_DIR) ;; *) unset "$v" ;; esac
done
cargo build -q --release --locked --bin nadipam-server --bin nadipam-node-agent --bin nadipam >&2
target="${CARGO_TARGET_DIR:-$PWD/target}/release"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
bins=("$target/nadipam-server" "$target/nadipam-node-agent" "$target/nadipam")
hash="$(cat "${bins[@]}" "${BASH_SOURCE[0]}" "$E2E/oci.sh" "$(command -v curl)" | sha256sum | cut -c1-12)"
out="$CACHE/nadipam-image-$hash"
# The tag names the content, so a rebuilt checkout is a new image for `helm upgrade` and the kubelet.
tag="$version-$hash"
curl_image="localhost/nadipam-curl:$(curl --version | awk 'NR == 1 {print $2}')"
if [ -f "$out/.complete" ]; then
  touch "$out"
else
  tmp="$out.tmp.$$"
  rm -rf "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  mkdir -p "$tmp/rootfs/etc" "$tmp/rootfs/tmp" "$tmp/curl/etc" "$tmp/curl/tmp"
  for b in "${bins[@]}"; do copy_with_libs "$b" "$tmp/rootfs" "/usr/local/bin/$(basename "$b")"; done
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
    >"$tmp/rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$tmp/rootfs/etc/group"
  chmod 1777 "$tmp/rootfs/tmp"
  oci_archive "$tmp/rootfs" "localhost/nadipam:$tag" "$tmp/nadipam.oci.tar" \
    '{"User":"65532:65532","Env":["PATH=/usr/local/bin"],"Entrypoint":["/usr/local/bin/nadipam-server"],"WorkingDir":"/"}' \
    "nadipam e2e/nadipam-image.sh: release binaries of nadipam $version"
  copy_with_libs "$(command -v curl)" "$tmp/curl" /usr/bin/curl
  cp "$tmp/rootfs/etc/passwd" "$tmp/rootfs/etc/group" "$tmp/curl/etc/"
  chmod 1777 "$tmp/curl/tmp"
  oci_archive "$tmp/curl" "$curl_image" "$tmp/curl.oci.tar" \
    '{"User":"65532:65532","Env":["PATH=/usr/bin"],"Entrypoint":["/usr/bin/curl"],"WorkingDir":"/"}' \
    "nadipam e2e/nadipam-image.sh: Debian's curl"
  mkdir -p "$tmp/final"
  mv "$tmp/nadipam.oci.tar" "$tmp/curl.oci.tar" "$tmp/final/"
  echo "$tag" >"$tmp/final/tag"
  touch "$tmp/final/.complete"
  rm -rf "$out"
  mv "$tmp/final" "$out"
  # Older images of other checkouts, unused for two hours.
  find "$CACHE" -maxdepth 1 -name 'nadipam-image-*' ! -name '*.tmp.*' -mmin +120 -exec rm -rf {} + 2>/dev/null || true
  log "wrote $out ($(du -sh "$out/nadipam.oci.tar" | cut -f1))"
fi
echo "$out"
echo "$tag"
echo "$curl_image"
