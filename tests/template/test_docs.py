"""Every relative link in the repository's Markdown resolves: the file exists and, with a
`#fragment`, the target has that heading (GitHub's slug) or an explicit `<a id>`. The
deployment docs were split in three (docs/deploy.md, docs/operate.md, docs/design.md);
a link into the old single page would fail here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from templatelib import ROOT

SKIP_DIRS = {"target", ".venv", ".git", "node_modules", ".aws-sam"}


def markdown_files() -> list[Path]:
    out = []
    for path in ROOT.rglob("*.md"):
        if not SKIP_DIRS & set(path.relative_to(ROOT).parts):
            out.append(path)
    return sorted(out)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped,
    spaces to `-`."""
    text = heading.strip().lower().replace("`", "")
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # no headings in code blocks
    found = set(re.findall(r'<a id="([^"]+)"></a>', text))
    seen: dict[str, int] = {}
    for m in re.finditer(r"^#{1,6} (.+)$", text, re.M):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        found.add(s if n == 0 else f"{s}-{n}")
        seen[s] = n + 1
    return found


def links(path: Path) -> list[tuple[str, str]]:
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    out = []
    for m in re.finditer(r"\]\(([^)\s]+)\)", text):
        target = m.group(1)
        if re.match(r"^[a-z]+:", target):  # https:, mailto:
            continue
        out.append((target, m.group(0)))
    return out


def test_the_slug_is_githubs():
    assert slug("Auth modes, and how `both` works") == "auth-modes-and-how-both-works"
    assert slug("The signing key's policy") == "the-signing-keys-policy"
    assert slug("6. After the deploy: publish the signing key, register the APIs") == (
        "6-after-the-deploy-publish-the-signing-key-register-the-apis")


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path):
    for target, text in links(path):
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        assert dest.exists(), f"{path.relative_to(ROOT)}: {text} names no file"
        if fragment and dest.suffix == ".md":
            assert fragment in anchors(dest), f"{path.relative_to(ROOT)}: {text} names no section of {dest.name}"


def test_the_readme_leads_to_every_guide():
    """The README is the first hour: it links the architecture, the changelog and each
    guide (deploying, operating, design, performance, contracts), and its Performance
    section is a summary that points at the figures."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for target in ("ARCHITECTURE.md", "CHANGELOG.md", "docs/deploy.md", "docs/operate.md",
                   "docs/design.md", "docs/performance.md", "docs/contracts.md"):
        assert f"]({target})" in readme, f"README.md does not link {target}"
    performance = readme[readme.index("\n## Performance\n"):]
    performance = performance[:performance.index("\n## ", 5)]
    assert "](docs/performance.md)" in performance


def test_architecture_cites_the_deployment_guides():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    for guide in ("docs/deploy.md", "docs/operate.md", "docs/design.md", "docs/contracts.md"):
        assert f"`{guide}`" in text, guide
