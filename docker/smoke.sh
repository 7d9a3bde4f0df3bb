#!/usr/bin/env bash
# Build the CPU image offline with podman and check a container's gRPC health from the host.
#   base:   a Debian bookworm root made with debootstrap (Debian's python3 3.11), imported as
#           localhost/debian-python:bookworm (made once)
#   wheels: docker/wheels/, every package of docker/requirements.lock downloaded once with this
#           machine's pip (torch comes from the local wheel store), so the build fetches nothing
# usage: docker/smoke.sh   (as root; installs podman, runc and debootstrap from Debian if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export CONTAINERS_CONF=$PWD/docker/containers.conf
for tool in podman runc debootstrap; do
  if ! command -v "$tool" >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends podman runc debootstrap fuse-overlayfs
    break
  fi
done
BASE=localhost/debian-python:bookworm
IMAGE=localhost/orisel:smoke
t0=$(date +%s)

# The Debian mirror this machine's apt already uses (deb822 .sources or a sources.list line).
# Either file may be missing: that is no failure (pipefail would make it one).
debian_mirror() {
  cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | awk '/^URIs:/ || /^deb / {print $2}' | grep -m1 -E '/debian/?$' || true
}

if ! podman image exists "$BASE"; then
  mirror=$(debian_mirror)
  [ -n "$mirror" ] || { echo "smoke: no Debian mirror in the apt sources" >&2; exit 2; }
  root=$(mktemp -d)
  debootstrap --variant=minbase --include=python3,python3-venv,passwd bookworm "$root" \
    "$mirror" >/dev/null
  tar -C "$root" -c . | podman import - "$BASE" >/dev/null
  rm -rf "$root"
fi
t_base=$(date +%s)
# The image's lock and the locked pip, every file checked against its hash (a file already
# there is reused); the build then installs from here.
"$PYTHON" -m pip download -q --require-hashes --no-deps -d docker/wheels \
  -r docker/requirements.lock -r requirements-bootstrap.lock
t_wheels=$(date +%s)
podman build -q -f docker/Dockerfile --target cpu --build-arg BASE="$BASE" \
  --build-arg WHEELS=/wheels -t "$IMAGE" . >/dev/null
t_build=$(date +%s)

port=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
name=orisel-smoke-$$
# On the host's loopback, where plaintext is allowed (anywhere else the front end needs TLS).
podman run -d --rm --name "$name" --network host -e ORISEL_GRPC_HOST=127.0.0.1 \
  -e ORISEL_GRPC_PORT="$port" -e ORISEL_ALLOW_PLAINTEXT=true -e ORISEL_STORE_ROOT=/work/store \
  "$IMAGE" serve training >/dev/null
trap 'podman rm -f "$name" >/dev/null 2>&1 || true' EXIT
"$PYTHON" - "$port" <<'PY'
import sys, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

address = f"127.0.0.1:{sys.argv[1]}"
deadline = time.monotonic() + 120
with grpc.insecure_channel(address) as channel:
    stub = health_pb2_grpc.HealthStub(channel)
    while True:
        try:
            status = stub.Check(
                health_pb2.HealthCheckRequest(service="orisel.api.training.v1.TrainingService"),
                timeout=2,
            ).status
            break
        except grpc.RpcError:
            if time.monotonic() > deadline:
                sys.exit(f"image-smoke: no gRPC health answer on {address}")
            time.sleep(0.5)
print(f"image-smoke: TrainingService on {address} is", health_pb2.HealthCheckResponse.ServingStatus.Name(status))
sys.exit(0 if status == health_pb2.HealthCheckResponse.SERVING else 1)
PY
t_run=$(date +%s)
user=$(podman image inspect "$IMAGE" --format '{{.Config.User}}')
size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
echo "image-smoke: passed as user $user; image $((size / 1000000)) MB; base $((t_base - t0)) s," \
  "wheels $((t_wheels - t_base)) s, build $((t_build - t_wheels)) s, run+health $((t_run - t_build)) s"
