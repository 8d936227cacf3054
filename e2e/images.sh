#!/usr/bin/env bash
# Writes the test bed's container images as OCI archives, without Docker or a registry, and prints their directory:
#
#   nadipam-test.oci.tar  localhost/nadipam-test:latest  static busybox (sh, ash, ip, ping, nc, sleep, ...);
#                                                        its entrypoint sleeps until SIGTERM
#   pause.oci.tar         localhost/nadipam-pause:latest the Pod sandbox image (containerd's sandbox_image):
#                                                        the same layer, `sleep infinity`, no Cmd
#
# Both share one gzip layer: Debian's busybox-static, its applet symlinks, /etc/passwd and /etc/group. The archives
# carry the io.containerd.image.name annotation, so `ctr -n k8s.io images import` names them. Reproducible: fixed
# mtimes and owners. Cached in ${NADIPAM_CACHE:-~/.cache/nadipam}/images-<busybox version>-<hash of this script>/.
set -euo pipefail
# shellcheck source=e2e/oci.sh
. "$(dirname "${BASH_SOURCE[0]}")/oci.sh"

CACHE="${NADIPAM_CACHE:-$HOME/.cache/nadipam}"
log() { echo "images.sh: $*" >&2; }

# (No `cmd | grep -q`/`| head` here: under pipefail the writer's SIGPIPE would fail the pipeline.)
static() { [ -n "$1" ] && [[ "$(file -L "$1" 2>/dev/null)" == *"statically linked"* ]]; }
BUSYBOX="$(command -v busybox || true)"
static "$BUSYBOX" || BUSYBOX=/bin/busybox
if ! static "$BUSYBOX"; then
  log "installing busybox-static and file"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static file >/dev/null
  BUSYBOX=/bin/busybox
fi
version="$("$BUSYBOX" 2>&1 || true)"
version="$(echo "${version%%$'\n'*}" | awk '{print $2}')"
out="$CACHE/images-$version-$(cat "${BASH_SOURCE[0]}" "$(dirname "${BASH_SOURCE[0]}")/oci.sh" "$BUSYBOX" | sha256sum | cut -c1-12)"
if [ -f "$out/.complete" ]; then
  echo "$out"
  exit 0
fi

tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/etc" "$tmp/rootfs/tmp"
trap 'rm -rf "$tmp"' EXIT
cp "$BUSYBOX" "$tmp/rootfs/bin/busybox"
for applet in $("$BUSYBOX" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$tmp/rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$tmp/rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$tmp/rootfs/etc/group"
chmod 1777 "$tmp/rootfs/tmp"

# image NAME ARCHIVE ENTRYPOINT_JSON
image() {
  oci_archive "$tmp/rootfs" "$1" "$tmp/$2" "{\"Env\":[\"PATH=/bin\"],\"Entrypoint\":$3,\"WorkingDir\":\"/\"}" \
    "nadipam e2e/images.sh: busybox $version"
}

# The test image's pid 1 ends on SIGTERM (a plain `sleep` as pid 1 ignores it and the Pod would take its whole
# grace period to stop).
image localhost/nadipam-test:latest nadipam-test.oci.tar \
  '["/bin/sh","-c","trap \"exit 0\" TERM INT; sleep infinity & wait"]'
# The sandbox is stopped with SIGKILL.
image localhost/nadipam-pause:latest pause.oci.tar '["/bin/sleep","infinity"]'

mkdir -p "$tmp/final"
mv "$tmp/nadipam-test.oci.tar" "$tmp/pause.oci.tar" "$tmp/final/"
touch "$tmp/final/.complete"
rm -rf "$out"
mv "$tmp/final" "$out"
for d in "$CACHE"/images-*; do
  [ -d "$d" ] && [ "$d" != "$out" ] && [[ "$d" != *.tmp.* ]] && rm -rf "$d"
done
log "wrote $out"
echo "$out"
