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
out="$CACHE/images-$version-$(cat "${BASH_SOURCE[0]}" "$BUSYBOX" | sha256sum | cut -c1-12)"
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

reproducible_tar() { # DIR OUT
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf "$2" .
}
reproducible_tar "$tmp/rootfs" "$tmp/layer.tar"
diff_id="$(sha256sum "$tmp/layer.tar" | cut -d' ' -f1)"
gzip -n -c "$tmp/layer.tar" >"$tmp/layer.tar.gz"

# blob FILE DIR: store FILE under DIR/blobs/sha256/, print "<digest> <size>".
blob() {
  local d s
  d="$(sha256sum "$1" | cut -d' ' -f1)"
  s="$(stat -c %s "$1")"
  mkdir -p "$2/blobs/sha256"
  cp "$1" "$2/blobs/sha256/$d"
  echo "$d $s"
}

# image NAME ARCHIVE ENTRYPOINT_JSON
image() {
  local name="$1" archive="$2" entrypoint="$3" dir="$tmp/$2.d" layer config manifest
  mkdir -p "$dir"
  read -r ld ls < <(blob "$tmp/layer.tar.gz" "$dir")
  cat >"$tmp/config.json" <<EOF
{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Entrypoint":$entrypoint,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"history":[{"created_by":"nadipam e2e/images.sh: busybox $version"}]}
EOF
  read -r cd cs < <(blob "$tmp/config.json" "$dir")
  cat >"$tmp/manifest.json" <<EOF
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$cd","size":$cs},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$ld","size":$ls}]}
EOF
  read -r md ms < <(blob "$tmp/manifest.json" "$dir")
  cat >"$dir/index.json" <<EOF
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$md","size":$ms,"annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"${name##*:}"}}]}
EOF
  echo '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
  reproducible_tar "$dir" "$tmp/$archive"
  rm -rf "$dir"
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
