#!/usr/bin/env bash
# Set up a development environment from nothing: SWI-Prolog (Debian package), a virtual
# environment in .venv, the CPU build of torch 2.13.0, and this project with its extras.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v swipl >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing swi-prolog-nox with apt-get"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swi-prolog-nox >/dev/null
    elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing swi-prolog-nox with sudo apt-get"
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq swi-prolog-nox >/dev/null
    else
        echo "setup: SWI-Prolog (swipl) is missing and cannot be installed here;" \
             "install the Debian package swi-prolog-nox (or SWI-Prolog >= 9) and rerun" >&2
        exit 1
    fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# torch first and pinned: a bare requirement could pull a multi-GB CUDA build
.venv/bin/pip install -q torch==2.13.0
.venv/bin/pip install -q -e '.[dev,h5ad]'
echo "setup: done ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'), $(swipl --version))"
