"""CHANGELOG.md keeps the Keep a Changelog shape and matches the templates: "Unreleased"
first, then versions newest first with their dates, and the newest version is the
SemanticVersion the authorizer application and the platform carry (and the authorizer
crate's version)."""

from __future__ import annotations

import re
import tomllib
from datetime import date

from templatelib import ROOT

CHANGELOG = ROOT / "CHANGELOG.md"
SECTIONS = {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}


def releases(text: str) -> list[tuple[tuple[int, ...], date]]:
    out = []
    for m in re.finditer(r"^## \[(\d+)\.(\d+)\.(\d+)\] - (\d{4}-\d\d-\d\d)$", text, re.M):
        out.append((tuple(int(x) for x in m.groups()[:3]), date.fromisoformat(m.group(4))))
    return out


def semantic_version(template: str) -> tuple[int, ...]:
    text = (ROOT / template).read_text(encoding="utf-8")
    (version,) = re.findall(r"^    SemanticVersion: (\S+)$", text, re.M)
    return tuple(int(x) for x in version.split("."))


def test_the_shape():
    text = CHANGELOG.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings[0] == "[Unreleased]", "Unreleased comes first"
    assert len(headings) == 1 + len(releases(text)), f"every other heading is a version: {headings}"
    for sub in re.findall(r"^### (.+)$", text, re.M):
        assert sub in SECTIONS, f"### {sub} is not a Keep a Changelog section"


def test_versions_newest_first():
    found = releases(CHANGELOG.read_text(encoding="utf-8"))
    assert found, "no released version"
    versions = [v for v, _ in found]
    dates = [d for _, d in found]
    assert versions == sorted(versions, reverse=True) and len(set(versions)) == len(versions)
    assert dates == sorted(dates, reverse=True)


def test_the_newest_version_is_the_templates():
    (newest, _), *_ = releases(CHANGELOG.read_text(encoding="utf-8"))
    assert semantic_version("authorizer/template.yaml") == newest
    assert semantic_version("platform/template.yaml") == newest
    cargo = tomllib.loads((ROOT / "authorizer" / "Cargo.toml").read_text(encoding="utf-8"))
    assert tuple(int(x) for x in cargo["package"]["version"].split(".")) == newest


def test_the_version_check_reads_what_the_templates_hold():
    text = "## [Unreleased]\n\n## [0.10.0] - 2026-12-03\n\n## [0.9.1] - 2026-12-02\n"
    assert releases(text) == [((0, 10, 0), date(2026, 12, 3)), ((0, 9, 1), date(2026, 12, 2))]
