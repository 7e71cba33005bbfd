"""Run parliament over policy documents (in .venv-infra): JSON {name: policy} on stdin, findings out.

[{"policy": NAME, "issue": ISSUE, "severity": SEVERITY, "detail": ..., "location": ...}, ...]
"""

from __future__ import annotations

import json
import sys
import warnings

warnings.filterwarnings("ignore", category=UserWarning)  # pkg_resources deprecation in parliament

from parliament import analyze_policy_string  # noqa: E402


def main() -> int:
    findings = []
    for name, policy in json.load(sys.stdin).items():
        try:
            analyzed = analyze_policy_string(json.dumps(policy), include_community_auditors=False)
        except Exception as exc:  # parliament could not read it: that is a finding too
            findings.append(
                {"policy": name, "issue": "UNPARSABLE", "severity": "HIGH", "detail": repr(exc), "location": ""}
            )
            continue
        for finding in analyzed.findings:
            findings.append(
                {
                    "policy": name,
                    "issue": finding.issue,
                    "severity": finding.severity,
                    "detail": str(finding.detail),
                    "location": str(finding.location),
                }
            )
    json.dump(findings, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
