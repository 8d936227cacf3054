# OCI image archives without Docker or a registry (sourced by e2e/images.sh and e2e/nadipam-image.sh).
# Reproducible: fixed mtimes and owners, gzip without names or times.

reproducible_tar() { # DIR OUT
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$1" -cf "$2" .
}

# oci_blob FILE DIR: store FILE under DIR/blobs/sha256/, print "<digest> <size>".
oci_blob() {
  local d s
  d="$(sha256sum "$1" | cut -d' ' -f1)"
  s="$(stat -c %s "$1")"
  mkdir -p "$2/blobs/sha256"
  cp "$1" "$2/blobs/sha256/$d"
  echo "$d $s"
}

# oci_archive ROOTFS NAME OUT CONFIG HISTORY: an image NAME (one gzip layer holding ROOTFS) written to OUT as an
# OCI layout tar. CONFIG is the image config's "config" object (JSON); HISTORY says where the layer came from.
# The io.containerd.image.name annotation lets `ctr -n k8s.io images import` name the image.
oci_archive() {
  local rootfs="$1" name="$2" out="$3" config="$4" history="$5" work diff_id ld ls cd cs md ms
  work="$(mktemp -d)"
  reproducible_tar "$rootfs" "$work/layer.tar"
  diff_id="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
  gzip -n -c "$work/layer.tar" >"$work/layer.tar.gz"
  mkdir -p "$work/oci"
  read -r ld ls < <(oci_blob "$work/layer.tar.gz" "$work/oci")
  cat >"$work/config.json" <<JSON
{"architecture":"amd64","os":"linux","config":$config,"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"history":[{"created_by":"$history"}]}
JSON
  read -r cd cs < <(oci_blob "$work/config.json" "$work/oci")
  cat >"$work/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$cd","size":$cs},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$ld","size":$ls}]}
JSON
  read -r md ms < <(oci_blob "$work/manifest.json" "$work/oci")
  cat >"$work/oci/index.json" <<JSON
{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$md","size":$ms,"annotations":{"io.containerd.image.name":"$name","org.opencontainers.image.ref.name":"${name##*:}"}}]}
JSON
  echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
  reproducible_tar "$work/oci" "$out"
  rm -rf "$work"
}

# copy_with_libs BINARY ROOTFS DEST: BINARY at ROOTFS/DEST plus every shared library `ldd` lists, at its own path
# (a dynamically linked binary runs in the image as on this machine).
copy_with_libs() {
  local bin="$1" rootfs="$2" dest="$3" lib
  mkdir -p "$rootfs$(dirname "$dest")"
  cp -L "$bin" "$rootfs$dest"
  for lib in $(ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' || true); do
    [ -f "$rootfs$lib" ] && continue
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done
}
