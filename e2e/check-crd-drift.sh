#!/usr/bin/env bash
# Fails when manifests/crds/ differs from what the Rust types generate (crdgen), or the Helm chart's copy
# (manifests/chart/nadipam/crds/) differs from manifests/crds/, so the committed CRDs can never silently
# disagree with the code. Fix a failure with:
#   cargo run --bin crdgen -- --out manifests/crds && cp manifests/crds/*.yaml manifests/chart/nadipam/crds/
set -euo pipefail
cd "$(dirname "$0")/.."

committed=manifests/crds
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
generated="$work/crds"

if ! cargo run -q --bin crdgen -- --out "$generated" >"$work/crdgen.log" 2>&1; then
    cat "$work/crdgen.log" >&2
    echo "check-crd-drift: FAILED: crdgen did not run (see above)" >&2
    exit 1
fi

if [ ! -d "$committed" ]; then
    echo "check-crd-drift: FAILED: $committed/ does not exist." >&2
    echo "  Generate it with: cargo run --bin crdgen -- --out $committed" >&2
    exit 1
fi

# diff -r reports changed files and files present on only one side (a CRD added or removed in code).
if ! diff -ru "$committed" "$generated" >"$work/drift.diff" 2>&1; then
    sed -e "s#$generated#generated#g" "$work/drift.diff" >&2
    echo >&2
    echo "check-crd-drift: FAILED: $committed/ is out of date with the CRD types in src/api/." >&2
    echo "  Regenerate and commit: cargo run --bin crdgen -- --out $committed" >&2
    exit 1
fi
chart=manifests/chart/nadipam/crds
if ! diff -ru "$committed" "$chart" >&2; then
    echo >&2
    echo "check-crd-drift: FAILED: $chart/ (the Helm chart's CRDs) differs from $committed/." >&2
    echo "  Copy them: cp $committed/*.yaml $chart/" >&2
    exit 1
fi
echo "check-crd-drift: OK: $committed/ and $chart/ match src/api/ ($(find "$generated" -type f | wc -l) CRDs)"
