"""The README is a first-use guide that works as written: every command runs from a clone with the project's
virtualenv (a make target, or `.venv/bin/python`), every option it shows exists, and every file it links to is
in the repository."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
ENV_ASSIGNMENT = re.compile(r"^[A-Z_][A-Z0-9_]*=\S*$")


def _commands() -> list[list[str]]:
    """Every command line of the README's bash blocks, as words, environment assignments removed."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", README, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if not line or line.startswith("#"):
                continue
            words = shlex.split(line)
            while words and ENV_ASSIGNMENT.match(words[0]):
                words = words[1:]
            out.append(words)
    return out


def _command_words(words: list[str]) -> str:
    """The module and its subcommands (`collectors admin disable`): the words after `-m` before the first option."""
    out = []
    for word in words[2:]:
        if word.startswith(("-", "[")):
            break
        out.append(word)
    return " ".join(out)


COMMANDS = _commands()
PYTHON_MODULES = sorted({_command_words(words) for words in COMMANDS if words[:2] == [".venv/bin/python", "-m"]})


def test_every_command_runs_from_a_clone_as_written():
    assert len(COMMANDS) >= 10
    for words in COMMANDS:
        assert words[0] in ("make", ".venv/bin/python"), f"not runnable as written: {' '.join(words)}"


def test_every_make_target_shown_exists():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.M))
    shown = {words[1] for words in COMMANDS if words[0] == "make"}
    shown |= set(re.findall(r"`make ([a-z-]+)`", README))
    assert shown and shown <= targets, shown - targets


@pytest.mark.parametrize("module", PYTHON_MODULES)
def test_every_python_command_and_option_shown_exists(module):
    if module.split()[0] == "streamlit":
        pytest.skip("streamlit's own command line")
    found = subprocess.run(
        [sys.executable, "-m", *module.split(), "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert found.returncode == 0, found.stderr[-2000:]
    shown = {
        word.split("=")[0].strip("[]")
        for words in COMMANDS
        if words[:2] == [".venv/bin/python", "-m"] and _command_words(words) == module
        for word in words
        if word.strip("[]").startswith("--")
    }
    missing = {option for option in shown if option not in found.stdout}
    assert not missing, f"{module}: {missing}"


def test_every_linked_file_is_in_the_repository():
    links = re.findall(r"\]\(((?!https?:)[^)#]+)\)", README)
    assert any(link.startswith("docs/screenshots/") for link in links)
    assert [link for link in links if not (ROOT / link).exists()] == []
    assert "../shared" not in README, "the README cites files that are not in a clone"


def test_the_demo_is_documented_with_its_ports_and_admin_token():
    run = (ROOT / "scripts" / "run.sh").read_text(encoding="utf-8")
    token = re.search(r"RBV_ADMIN_TOKEN=(\S+)", run).group(1)
    assert f"`{token}`" in README
    for name in ("RBV_DASHBOARD_PORT", "RBV_SIM_PORT"):
        assert name in run and f"`{name}`" in README
    assert "8501" in run and "http://127.0.0.1:8501" in README
