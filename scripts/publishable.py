"""Prints platform/template.yaml as `sam publish` can take it: each nested authorizer
(`Location: ../authorizer/template.yaml`) replaced by the authorizer application
published in the Serverless Application Repository, at its SemanticVersion.

SAR only takes nested applications that are themselves published there; the repository
keeps one local definition (authorizer/template.yaml) for `sam build`, the local gateway
and the tests, and this rewrite is the only difference. Used by scripts/publish.sh;
checked by tests/template/test_nesting.py.

    python3 scripts/publishable.py APPLICATION_ID [platform/template.yaml]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL = "../authorizer/template.yaml"
INSTANCES = 3


def authorizer_version(root: Path = ROOT) -> str:
    """The authorizer application's SemanticVersion (its SAR metadata)."""
    text = (root / "authorizer" / "template.yaml").read_text(encoding="utf-8")
    (version,) = re.findall(r"^    SemanticVersion: (\S+)$", text, re.M)
    return version


def publishable(text: str, application_id: str, version: str) -> str:
    """`text` with every local Location of the authorizer replaced by the published
    application. Refuses an id that is not a SAR application ARN, and a template that
    does not nest the authorizer exactly INSTANCES times."""
    if not re.fullmatch(r"arn:aws[a-z-]*:serverlessrepo:[a-z0-9-]+:\d{12}:applications/[A-Za-z0-9-]+",
                        application_id):
        raise ValueError(f"{application_id!r} is not a Serverless Application Repository application ARN")
    pattern = re.compile(rf"^(?P<indent> +)Location: {re.escape(LOCAL)}$", re.M)
    found = len(pattern.findall(text))
    if found != INSTANCES:
        raise ValueError(f"expected {INSTANCES} nested authorizers with Location {LOCAL}, found {found}")
    return pattern.sub(lambda m: (f"{m['indent']}Location:\n"
                                  f"{m['indent']}  ApplicationId: {application_id}\n"
                                  f"{m['indent']}  SemanticVersion: {version}"), text)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[2]) if len(argv) == 3 else ROOT / "platform" / "template.yaml"
    try:
        print(publishable(path.read_text(encoding="utf-8"), argv[1], authorizer_version()), end="")
    except ValueError as e:
        print(f"publishable: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
