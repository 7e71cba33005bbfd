"""Parse .tf files with the HCL parser of the tool environment and print JSON.

Run by tests/infra with `.venv-infra/bin/python` (the parser cannot live in the project venv):
    python _hcl2json.py FILE...   ->   {"FILE": {"ok": true, "data": {...}} | {"ok": false, "error": "..."}}
"""

from __future__ import annotations

import json
import sys

import hcl2


def main(paths: list[str]) -> int:
    out: dict[str, dict[str, object]] = {}
    for path in paths:
        try:
            with open(path, encoding="utf-8") as fh:
                out[path] = {"ok": True, "data": hcl2.load(fh)}
        except Exception as err:  # report every file, fail in the test with the message
            out[path] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
    json.dump(out, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
