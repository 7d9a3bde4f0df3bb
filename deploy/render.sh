#!/usr/bin/env bash
# Print the manifests of one overlay, with the images' registry and tag set.
# usage: deploy/render.sh OVERLAY [REGISTRY] [TAG]     (kubectl on PATH)
set -euo pipefail
overlay=${1:?overlay: dev or gpu}
registry=${2:-}
tag=${3:-}
root=$(cd "$(dirname "$0")/.." && pwd)
[ -d "$root/k8s/overlays/$overlay" ] || {
  echo "render: no overlay '$overlay' (choose: $(ls "$root/k8s/overlays" | tr '\n' ' '))" >&2
  exit 2
}
# A throwaway kustomization on top of the overlay, outside the tree (nothing is written
# into the checkout); the load restrictor lets it reach the overlay.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources: [$(realpath --relative-to="$work" "$root/k8s/overlays/$overlay")]"
  if [ -n "$registry$tag" ]; then
    echo "images:"
    for image in orisel orisel-gpu; do
      echo "  - name: $image"
      [ -n "$registry" ] && echo "    newName: ${registry%/}/$image"
      [ -n "$tag" ] && echo "    newTag: \"$tag\""
    done
  fi
} >"$work/kustomization.yaml"
kubectl kustomize --load-restrictor LoadRestrictionsNone "$work"
