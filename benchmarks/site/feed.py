"""`latest.json`: the stable feed the portfolio site fetches, one entry per claim.

Schema (version 1; a change that breaks a reader bumps `version`):

```
{
  "schema": "systems-lab/claims", "version": 1, "generated_at": <ISO time>,
  "verify": null | {"file", "mode": quick|full|recorded, "date", "commit", "machine"},
  "counts": {<status>: <claims>},
  "claims": [{
    "id", "part", "quote", "page" (the report page and anchor),
    "status": met | not met | partly measured | not measurable yet | run failed | not verified,
    "measures": [{
      "what", "command", "metric", "threshold" (as text: "< 200 ms"), "unit",
      "value" (the measured figure, or null), "verdict", "reason",
      "machine", "commit", "date", "size", "results_file" (where the figure came from)
    }]
  }]
}
```

Built from the latest verify file; with none, every claim is `not verified`, never met.
"""

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from benchmarks.claims import Claim

SCHEMA = "systems-lab/claims"
VERSION = 1
NOT_VERIFIED = "not verified"
_PROVENANCE = ("machine", "commit", "date", "size", "results_file")


def _unverified(claim: Claim) -> dict[str, Any]:
    return {
        "id": claim.id,
        "part": claim.part,
        "quote": claim.quote,
        "status": NOT_VERIFIED,
        "measures": [
            {
                "what": measure.what,
                "command": measure.command.text if measure.command else None,
                "metric": measure.metric,
                "threshold": measure.threshold_text,
                "unit": measure.unit,
                "value": None,
                "verdict": NOT_VERIFIED,
                "reason": "no `lab verify` has run",
                **dict.fromkeys(_PROVENANCE),
            }
            for measure in claim.measures
        ],
    }


def _measure(measure: dict[str, Any]) -> dict[str, Any]:
    keys = ("what", "command", "metric", "threshold", "unit", "value", "verdict", "reason")
    return {key: measure.get(key) for key in (*keys, *_PROVENANCE)}


def build_feed(
    claims: list[Claim],
    verify: dict[str, Any] | None,
    verify_file: str | None,
    pages: dict[str, str],
) -> dict[str, Any]:
    """Return the feed for `claims` from a verify document (None: nothing verified yet).

    `pages` maps a claim's part to its report page.
    """
    judged = {claim["id"]: claim for claim in verify["results"]["claims"]} if verify else {}
    entries = []
    for claim in claims:
        found = judged.get(claim.id)
        entry = (
            {
                "id": claim.id,
                "part": claim.part,
                "quote": claim.quote,
                "status": found["status"],
                "measures": [_measure(measure) for measure in found["measures"]],
            }
            if found
            else _unverified(claim)
        )
        entries.append({**entry, "page": f"{pages.get(claim.part, 'index.html')}#{claim.id}"})
    machine = verify.get("machine", {}) if verify else {}
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "verify": {
            "file": verify_file,
            "mode": verify.get("mode"),
            "date": verify.get("generated_at"),
            "commit": verify.get("commit"),
            "machine": f"{machine.get('cores')} x {machine.get('cpu')}",
        }
        if verify
        else None,
        "counts": dict(Counter(entry["status"] for entry in entries)),
        "claims": entries,
    }
