"""Register (or update) the Debezium connector through the Kafka Connect REST API.

Idempotent: PUT /connectors/<name>/config creates the connector or replaces its config. Runs in the
one-shot `connect-init` compose service; standard library only.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

CONNECT_URL = os.environ.get("CONNECT_URL", "http://connect:8083")
CONFIG_FILE = os.environ.get("CONNECTOR_FILE", "/debezium/register-postgres.json")
TIMEOUT_S = float(os.environ.get("CONNECT_WAIT_SECONDS", "180"))


def _request(method: str, path: str, body: dict | None = None) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(  # noqa: S310 (CONNECT_URL is an http:// URL set by compose)
        f"{CONNECT_URL}{path}", data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 (fixed http URL)
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def main() -> int:
    with open(CONFIG_FILE, encoding="utf-8") as fh:
        connector = json.load(fh)
    name, config = connector["name"], connector["config"]
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        try:
            status, body = _request("PUT", f"/connectors/{name}/config", config)
        except OSError as err:  # Connect not listening yet
            status, body = 0, str(err)
        if status in (200, 201):
            print(f"connector {name} registered ({status})")
            return 0
        if time.monotonic() > deadline:
            print(f"could not register {name}: {status} {body}", file=sys.stderr)
            return 1
        time.sleep(3)


if __name__ == "__main__":
    sys.exit(main())
