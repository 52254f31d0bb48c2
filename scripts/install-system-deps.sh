#!/usr/bin/env bash
# System packages the test suite needs beyond Python: PostgreSQL's server (the MLflow backend-store tests start a
# throwaway cluster on 127.0.0.1), git (the DVC tests clone) and Chromium (tests/pipelines/test_mlflow_ui.py opens
# MLflow's UI in a real headless browser). Idempotent: installs only what is missing, and only
# where it can (root with apt-get); elsewhere it says what is missing and the tests that need it skip with the reason.
set -euo pipefail

missing=()
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || missing+=(postgresql)
command -v git >/dev/null || missing+=(git)
command -v chromium >/dev/null || missing+=(chromium)

if [ ${#missing[@]} -eq 0 ]; then
    echo "system deps: present (postgresql, git, chromium)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "system deps: missing ${missing[*]}; install them (e.g. apt-get install ${missing[*]}) or those tests skip" >&2
    exit 0
fi
echo "system deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
