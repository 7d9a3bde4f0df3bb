#!/usr/bin/env bash
# The one install path of `make`, CI and the image: a virtual environment whose installer is
# the locked pip (requirements-bootstrap.lock), then a lock installed by that pip with every
# file checked against its hash. The pip a machine happens to bundle installs nothing else,
# so the same lock installs on any day, whatever the registry published since.
# usage: deploy/install.sh [--check] VENV LOCK [pip options, e.g. --no-index --find-links DIR]
#   --check: resolve LOCK and check every file's hash without installing it (the venv still
#            gets the locked pip)
# PYTHON picks the interpreter (default python3); CPython 3.11 is the supported version.
set -euo pipefail
check=()
if [ "${1:-}" = --check ]; then
  check=(--dry-run --ignore-installed)
  shift
fi
[ $# -ge 2 ] || { echo "usage: $0 [--check] VENV LOCK [pip options]" >&2; exit 2; }
venv=$1
lock=$2
shift 2
bootstrap=$(dirname "$0")/../requirements-bootstrap.lock
python=${PYTHON:-python3}

if [ ! -x "$venv/bin/python" ]; then
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  if [ "$version" != 3.11 ]; then
    echo "install: orisel supports CPython 3.11 (torch 2.14.1's wheels); $python is $version." >&2
    echo "install: set PYTHON=python3.11" >&2
    exit 2
  fi
  "$python" -m venv "$venv"
fi
# Whatever pip the venv came with installs only the locked pip, which has no dependencies.
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
  --no-deps "$@" -r "$bootstrap"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes \
  "${check[@]}" "$@" -r "$lock"
