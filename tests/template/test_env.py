"""docs/contracts.md's "Environment variables" table is every variable the workspace's
Rust code reads, both ways: each variable read is a row that names (backticked, in
"read by") every crate reading it, and each row and each crate it names is read there.

Reads are found in the crates' `src/` (test modules and `tests/` left out) as they are
written in this code base: `std::env::var("X")` / `var_os`, a `const C: &str = "X"`
passed to them (or to the client's `var`/`required` closures, or to a `from_env`),
clap's `env = "X"`, a lookup arm `"X" => std::env::var(`,
and, in a configuration read through a lookup (`from_lookup`), `get("X")` /
`number("X", ...)`. A new way of reading the environment needs a pattern here: the test
fails closed on a crate it cannot name."""

from __future__ import annotations

import functools
import re
from collections import defaultdict
from pathlib import Path

import pytest

from templatelib import ROOT

CONTRACTS = ROOT / "docs" / "contracts.md"

# The crate (by its directory) a read is reported as: the name the table uses.
CRATES = {
    "authorizer": "authorizer",
    "services/token-issuer": "token-issuer",
    "services/identity": "identity-service",
    "services/tutor": "tutor-service",
    "libs/service-client": "service-client",
    "libs/service-identity-http": "service-identity-http",
    "libs/test-support": "test-support",
    "tools/svcauth": "svcauth",
    "tools/local-gateway": "local-gateway",
}

NAME = r"[A-Z][A-Z0-9_]+"
DIRECT = re.compile(rf'env::var(?:_os)?\(\s*"({NAME})"\s*\)')
# a constant handed to a read: std::env::var(C), the client's var(C) / required(C)
# closures, or a from_env(.., C) that reads the variable it is given
BY_CONST = re.compile(rf"(?<![\w.])(?:std::env::var(?:_os)?|env::var(?:_os)?|var|required|from_env)"
                      rf"\(\s*(?:[^(),]*,\s*)?({NAME})\s*\)")
CONST = re.compile(rf'const ({NAME}): &str = "({NAME})"')
CLAP = re.compile(rf'\benv\s*=\s*"({NAME})"')
ARM = re.compile(rf'"({NAME})"\s*=>\s*std::env::var\(')
LOOKUP = re.compile(rf'(?<![\w.])(?:get|number)\(\s*"({NAME})"')


def non_test_code(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    return text.split("#[cfg(test)]", 1)[0]


def reads_in(text: str, consts: dict[str, str]) -> set[str]:
    names = set(DIRECT.findall(text)) | set(CLAP.findall(text))
    names |= set(ARM.findall(text))
    names |= {consts[c] for c in BY_CONST.findall(text) if c in consts}
    if "from_lookup" in text:
        names |= set(LOOKUP.findall(text))
    return names


def crate_of(path: Path) -> str | None:
    rel = path.relative_to(ROOT).as_posix()
    for prefix, crate in sorted(CRATES.items(), key=lambda kv: -len(kv[0])):
        if rel.startswith(prefix + "/src/"):
            return crate
    return None


@functools.cache
def variables_read() -> dict[str, set[str]]:
    """Each variable the code reads -> the crates reading it."""
    sources = [p for top in ("authorizer", "libs", "services", "tools", "tests")
               for p in (ROOT / top).glob("**/src/**/*.rs")
               if not {"target", ".venv", ".git"} & set(p.relative_to(ROOT).parts)]
    out: dict[str, set[str]] = defaultdict(set)
    for path in sources:
        text = non_test_code(path)
        consts = dict(CONST.findall(text))
        names = reads_in(text, consts)
        if not names:
            continue
        crate = crate_of(path)
        assert crate, f"{path.relative_to(ROOT)} reads {sorted(names)}: add its crate to CRATES"
        for name in names:
            out[name].add(crate)
    return dict(out)


def env_table() -> dict[str, set[str]]:
    """Each row's variable -> the crates its "read by" cell names in backticks."""
    text = CONTRACTS.read_text(encoding="utf-8")
    section = text[text.index("## Environment variables"):]
    section = section[:section.index("\n## ", 4)]
    rows = [l for l in section.splitlines() if l.startswith("| `")]
    out = {}
    for row in rows:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", row.strip().strip("|"))]
        variable = cells[0].strip("`")
        assert variable not in out, f"{variable} has two rows"
        # the crate names, not the options in parentheses after them
        out[variable] = set(re.findall(r"`([a-z][a-z0-9-]*)`", re.sub(r"\([^)]*\)", "", cells[1])))
    return out


def test_the_extraction_finds_each_way_of_reading():
    text = '''
        const TABLE_ENV: &str = "A_TABLE";
        const PLAIN: &str = "B_PLAIN";
        const ONLY_A_NAME_ENV: &str = "I_NOT_READ";
        let c = ClientConfig::from_env(SERVICE, TABLE_ENV).await?;
        let i = f.env.get("J_NOT_READ");
        let _ = std::env::var("C_DIRECT");
        let _ = std::env::var_os(PLAIN);
        #[arg(long, env = "D_CLAP")]
        "E_ARM" => std::env::var(k).ok(),
        fn from_lookup() { get("F_GET"); number(
            "G_NUMBER", 1) }
        let not_read = "H_NOT_READ";
    '''
    consts = dict(CONST.findall(text))
    assert reads_in(text, consts) == {"A_TABLE", "B_PLAIN", "C_DIRECT", "D_CLAP", "E_ARM",
                                       "F_GET", "G_NUMBER"}


def test_the_code_reads_what_the_table_was_written_from():
    read = variables_read()
    # the variables this test was written against, so that a pattern that stops
    # matching cannot make both sides empty together
    assert {"SVCAUTH_KEY_SOURCE", "SVCAUTH_RETRY_INTERVAL_SECS", "SVCAUTH_TOKEN_KEY",
            "SVCAUTH_IAM_ROLES", "USERS_TABLE", "SERVICE_TOKEN_URL", "SVCAUTH_ENV"} <= set(read)
    assert read["SVCAUTH_SSM_PATH"] >= {"authorizer", "token-issuer", "svcauth"}


def test_every_variable_read_is_in_the_table():
    read, table = variables_read(), env_table()
    missing = sorted(set(read) - set(table))
    assert not missing, f"read by the code, missing from docs/contracts.md's table: {missing}"


def test_every_row_is_read_somewhere():
    read, table = variables_read(), env_table()
    unread = sorted(set(table) - set(read))
    assert not unread, f"rows of docs/contracts.md's table no code reads: {unread}"


@pytest.mark.parametrize("variable", sorted(env_table()))
def test_each_row_names_exactly_the_crates_that_read_it(variable):
    read = variables_read()
    if variable in read:
        assert env_table()[variable] == read[variable], (
            f"{variable}: the table says read by {sorted(env_table()[variable])}, "
            f"the code by {sorted(read[variable])}")


@pytest.mark.parametrize("mode", ["api-key", "iam", "both", "token", "key-or-token"])
def test_every_variable_a_template_sets_is_documented(mode):
    """What the templates set on a function is a row of the table (read by the code, by
    the test above), or an AWS variable the note above the table names."""
    from deployment import deploy

    text = CONTRACTS.read_text(encoding="utf-8")
    note = text[text.index("## Environment variables"):text.index("| variable | read by |")]
    table = env_table()
    for stack in deploy(mode).stacks():
        for lid, fn in stack.resources("AWS::Lambda::Function").items():
            variables = fn["Properties"].get("Environment", {}).get("Variables", {})
            for name in variables:
                if name.startswith("AWS_"):
                    assert f"`{name}`" in note, f"{lid} sets {name}: name it in the note"
                else:
                    assert name in table, f"{lid} sets {name}, which the table does not list"
