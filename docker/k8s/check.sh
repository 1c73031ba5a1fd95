#!/usr/bin/env bash
# Renders the kustomize base and every overlay and validates the result
# offline against the Kubernetes API schemas (strict: unknown fields are
# errors). Needs kubectl (its built-in kustomize) or kustomize, and Python
# for kubernetes-validate (pinned in requirements.txt, installed into a
# virtual environment under the cargo target directory).
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd ../.. && pwd)

if command -v kustomize >/dev/null 2>&1; then
  render() { kustomize build "$1"; }
elif command -v kubectl >/dev/null 2>&1; then
  render() { kubectl kustomize "$1"; }
else
  echo "check.sh needs kustomize or kubectl to render the manifests" >&2
  exit 1
fi

venv="${CARGO_TARGET_DIR:-$root/target}/k8s-venv"
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r requirements.txt
fi
validate() { "$venv/bin/kubernetes-validate" --strict --quiet "$@"; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# The validator must reject what Kubernetes would: a manifest with a field
# the schema does not have.
cat > "$out/broken.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata:
  name: broken
spec:
  selector: {app: x}
  ports:
    - port: 80
      targetProt: 8080
YAML
if validate "$out/broken.yaml" >/dev/null 2>&1; then
  echo "kubernetes-validate accepted a broken manifest: the check proves nothing" >&2
  exit 1
fi

for dir in base overlays/*; do
  name=${dir//\//-}
  render "$dir" > "$out/$name.yaml"
  validate "$out/$name.yaml"
  echo "$dir: $(grep -c '^kind:' "$out/$name.yaml") resources render and validate ($(grep '^kind:' "$out/$name.yaml" | sort | uniq -c | awk '{printf "%s%s %s", sep, $1, $3; sep=", "}'))"
done
