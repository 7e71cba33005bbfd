#!/usr/bin/env bash
# Debian packages the embedded stack needs. Installs them when run as root; otherwise says what to run.
# With the argument `localstack`, also what `make localstack` needs.
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# `system-deps.sh localstack`: LocalStack's offline back ends come from npm (DynamoDB Local, kinesis-mock)
if [ "${1:-}" = "localstack" ]; then command -v npm >/dev/null 2>&1 || missing+=(npm); fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "Missing system packages: ${missing[*]}" >&2
  echo "Install them with: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing system packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
