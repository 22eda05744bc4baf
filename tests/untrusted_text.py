"""Test helpers for text from data: what a Markdown source renders as, and hostile values for every data field."""

from __future__ import annotations

import json
import re
from pathlib import Path

# The invisible character `untrusted.markdown_text` puts inside autolink and icon triggers (not imported from
# there, so these tests also run, and fail, against code that has no such module).
WORD_JOINER = "\u2060"
_ESCAPED = re.compile(r"\\([!-/:-@\[-`{-~])")  # CommonMark: a backslash before ASCII punctuation


def shown_text(markdown_source: str) -> str:
    """The text a Markdown source made by `untrusted.markdown_text` shows: escapes resolved, joiners invisible."""
    return _ESCAPED.sub(r"\1", markdown_source).replace(WORD_JOINER, "")


def hostile_values(receiver: str) -> dict[str, str]:
    """Markdown, HTML, autolinks, directives and icons aimed at `receiver` (e.g. http://127.0.0.1:PORT), per field.

    Any request the receiver sees means a browser rendered one of them as an image or fetched it.
    """
    return {
        "owner": f'<img src="{receiver}/owner.png"> [o]({receiver}/owner) www.owner.example ops@owner.example '
        ":material/warning: **bold**",
        "note": f"![note]({receiver}/note.png) <img src={receiver}/note2.png> $x^2$ :red[red] `code`",
        "who": f"<b>who</b> ![who]({receiver}/who.png) _em_",
        "rules_field": f"![rules]({receiver}/rules.png)",
    }


def hostile_name(index: int, receiver: str) -> str:
    """A key name (at most 100 printable characters, so valid config) that is Markdown and HTML at once."""
    return f"k{index} ![n]({receiver}/n{index}.png) <img src={receiver}/h{index}.png> :red[x] -prod"


def write_hostile_config(config: Path, receiver: str) -> dict[str, str]:
    """Rename every key in a stand-in config to a hostile name and give the first a hostile owner.

    Returns {hostile name: original name}.
    """
    text = config.read_text(encoding="utf-8")
    names = re.findall(r'^name = "([^"]+)"$', text, flags=re.MULTILINE)
    renamed = {}
    for index, original in enumerate(names):
        hostile = hostile_name(index, receiver)
        text = text.replace(f"name = {json.dumps(original)}\n", f"name = {json.dumps(hostile)}\n", 1)
        renamed[hostile] = original
    text = re.sub(r'^owner = ".*"\n', "", text, flags=re.MULTILINE)
    text = text.replace("[[keys]]\n", f"[[keys]]\nowner = {json.dumps(hostile_values(receiver)['owner'])}\n", 1)
    config.write_text(text, encoding="utf-8")
    return renamed
