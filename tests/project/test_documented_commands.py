"""Every command line the docs and the --help texts show parses: the ssmrl arguments with the CLI's own parser,
and the train/offline/config words through the config loader and the CLI's checks (unknown keys, keys the agent
does not read, wrong types and bad values would fail)."""
from __future__ import annotations

import re
import shlex

import pytest

from ssmrl.cli.main import EPILOG, build_parser
from ssmrl.cli.config import Config, check
from ssmrl.runs.config import from_dict

from tests import ROOT
DOCS = [ROOT / "README.md", ROOT / "docs" / "architecture.md"]


def _command_lines() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for line in path.read_text().splitlines():
            for match in re.finditer(r"(?:^|`)(ssmrl (?:train|offline|eval|imagine|config|bench|dataset)\b[^`#]*)", line):
                found.append((path.name, match.group(1).strip()))
            for match in re.finditer(r'RUN_ARGS="([^"]*)"', line):
                found.append((path.name, "ssmrl train " + match.group(1)))
    for line in EPILOG.splitlines():
        if line.strip().startswith("ssmrl "):
            found.append(("--help epilog", line.split("#")[0].strip()))
    # placeholders (``...``, ``<command>``) and bare command names in prose are not command lines
    return [(where, cmd) for where, cmd in found if "..." not in cmd and "<" not in cmd and len(cmd.split()) > 2]


@pytest.mark.parametrize("where, command", _command_lines())
def test_documented_command_parses(where, command):
    argv = shlex.split(command)[1:]
    args, extra = build_parser().parse_known_args(argv)
    if args.command in ("train", "offline", "config"):
        words = list(args.words) + [w for w in extra if "=" in w]
        merged, _ = check(words, None if args.command == "config" else args.command)
        from_dict(Config, merged)
    else:
        assert not [w for w in extra if not w.startswith("-") and "=" not in w], extra


def test_the_docs_show_commands():
    assert len(_command_lines()) >= 8
