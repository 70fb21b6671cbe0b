"""ARCHITECTURE.md stays true: every repository path it names in backticks exists, its
crate table is the workspace's dependency graph (from the Cargo.toml files), and the
layers it draws point one way only (a crate depends on lower layers only)."""

from __future__ import annotations

import re
import tomllib

from templatelib import ROOT

ARCHITECTURE = ROOT / "ARCHITECTURE.md"
FILE_SUFFIXES = (".md", ".rs", ".py", ".yaml", ".yml", ".toml", ".json", ".sh", ".svg")


def prose(text: str) -> str:
    """The text without its fenced blocks (pictures and sample output)."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


def repo_paths(text: str) -> set[str]:
    """Backticked names that are repository paths: relative (an SSM path starts with
    `/`), no spaces, braces or `::`, and either a directory path (`a/b`) or a file name
    with a known suffix (`Cargo.toml`)."""
    out = set()
    for name in re.findall(r"`([^`\n]+)`", prose(text)):
        if not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_./-]*", name):
            continue
        if "/" in name or name.endswith(FILE_SUFFIXES):
            out.add(name.rstrip("/"))
    return out


def test_the_path_check_sees_paths_and_only_paths():
    text = ("`libs/no-such-crate/src/lib.rs`, `Cargo.toml`, `authorizer`, `/svcauth/{env}/keys`, "
            "`POST /token`, `service_auth::ApiKey`, `at+jwt`, `{stack}-Name`\n"
            "```\n`inside/a/fence.rs`\n```\n")
    assert repo_paths(text) == {"libs/no-such-crate/src/lib.rs", "Cargo.toml"}


def test_every_backticked_repository_path_exists():
    paths = repo_paths(ARCHITECTURE.read_text(encoding="utf-8"))
    assert len(paths) > 40, "the path check reads no paths: did the file's shape change?"
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"ARCHITECTURE.md names paths that do not exist: {missing}"


def workspace() -> dict[str, dict]:
    """Each member's package name -> {path, deps}: its normal dependencies on members."""
    root = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))
    members = {}
    for path in root["workspace"]["members"]:
        manifest = tomllib.loads((ROOT / path / "Cargo.toml").read_text(encoding="utf-8"))
        deps = set()
        for key, spec in manifest.get("dependencies", {}).items():
            deps.add(spec.get("package", key) if isinstance(spec, dict) else key)
        members[manifest["package"]["name"]] = {"path": path, "deps": deps}
    for info in members.values():
        info["deps"] &= set(members)
    return members


def crate_table() -> dict[str, dict]:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text[text.index("## The crates"):text.index("## Request paths")]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("| `") or len(cells) != 4:
            continue
        crate, path, deps, _job = cells
        rows[crate.strip("`")] = {
            "path": path.strip("`"),
            "deps": set(re.findall(r"`([^`]+)`", deps)),
        }
    return rows


def layers() -> list[set[str]]:
    """The layers of the picture atop "The crates", bottom first."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text[text.index("## The crates"):text.index("## Request paths")]
    picture = re.search(r"```\n(.*?)```", section, re.S).group(1)
    out = []
    for line in picture.splitlines():
        _, _, names = line.partition(":")
        names = re.sub(r"\(.*?\)", "", names)
        out.append(set(names.split()))
    return list(reversed(out))


def test_the_crate_table_is_the_workspace():
    members, rows = workspace(), crate_table()
    assert set(rows) == set(members), "crates in the table and members of the workspace differ"
    for name, info in members.items():
        assert rows[name]["path"] == info["path"], name
        assert rows[name]["deps"] == info["deps"], (
            f"{name}: the table says it depends on {sorted(rows[name]['deps'])}, "
            f"Cargo.toml on {sorted(info['deps'])}")


def test_layers_point_down_only():
    members, stack = workspace(), layers()
    placed = [name for layer in stack for name in layer]
    assert sorted(placed) == sorted(members), "each crate in exactly one layer"
    level = {name: i for i, layer in enumerate(stack) for name in layer}
    for name, info in members.items():
        for dep in info["deps"]:
            assert level[dep] < level[name], f"{name} (layer {level[name]}) depends on {dep} (layer {level[dep]})"
