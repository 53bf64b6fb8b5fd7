#!/usr/bin/env bash
# vmlab's autograder, set up once: Gradescope runs this as root when it builds the autograder's
# image from one of its Ubuntu base images (22.04 or 24.04), with the zip unpacked in
# /autograder/source. It brings a Python 3.11 or newer, the grader's pinned dependencies (in a
# venv: 24.04's Python refuses pip installs outside one) and bubblewrap, the worker's sandbox.
#
# For testing elsewhere: VMLAB_AUTOGRADER_ROOT replaces /autograder, VMLAB_SYSTEM_PACKAGES=no
# skips apt, VMLAB_PYTHON names the Python to use, VMLAB_VENV an existing venv to install into,
# and VMLAB_PIP_OPTIONS adds options to pip (e.g. --dry-run --no-index).
set -euo pipefail
ROOT="${VMLAB_AUTOGRADER_ROOT:-/autograder}"
SOURCE="$ROOT/source"
VENV="${VMLAB_VENV:-$SOURCE/venv}"
export DEBIAN_FRONTEND=noninteractive

recent() {  # is $1 a Python 3.11 or newer?
  command -v "$1" >/dev/null 2>&1 &&
    "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null
}

apt_install() {
  apt-get install -y -q --no-install-recommends "$@"
}

# Sets PYTHON to a Python >= 3.11 with venv, installing one when the image has none: 24.04's
# python3 is 3.12; 22.04's is 3.10, so there we take the deadsnakes PPA's 3.12 and, where the
# PPA cannot be reached, 3.11 from Ubuntu's own jammy-updates (universe).
find_python() {
  if [ -n "${VMLAB_PYTHON:-}" ]; then PYTHON="$VMLAB_PYTHON"; return; fi
  if recent python3; then
    apt_install python3-venv python3-pip
    PYTHON=python3
    return
  fi
  for v in 3.13 3.12 3.11; do
    if recent "python$v"; then apt_install "python$v-venv"; PYTHON="python$v"; return; fi
  done
  apt_install software-properties-common gnupg
  if add-apt-repository -y ppa:deadsnakes/ppa && apt-get update -q &&
     apt_install python3.12 python3.12-venv; then
    PYTHON=python3.12
    return
  fi
  add-apt-repository -y universe || true
  apt-get update -q
  apt_install python3.11 python3.11-venv
  PYTHON=python3.11
}

if [ "${VMLAB_SYSTEM_PACKAGES:-yes}" != no ]; then
  apt-get update -q
  apt_install bubblewrap ca-certificates
fi
find_python
recent "$PYTHON" || { echo "setup.sh: $PYTHON is older than 3.11" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# shellcheck disable=SC2086 # VMLAB_PIP_OPTIONS is a list of options
"$VENV/bin/python" -m pip install -q ${VMLAB_PIP_OPTIONS:-} -r "$SOURCE/grader/requirements.txt"
"$VENV/bin/python" -c 'import sys; print("setup.sh: vmlab will run on Python", sys.version.split()[0])'
