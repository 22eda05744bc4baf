"""The one-way flow, enforced on the import graph (AST): upstream API → collectors → store → analytics → faces,
with the service between store/analytics and the faces. A deliberate violation shows the check can fail."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

PRODUCT_PACKAGES = {
    "analytics", "cli", "collectors", "pages", "service", "simulator", "store", "ui",
    "cli_args", "config", "dashboard", "domain", "formatting", "private_files", "untrusted",
}  # fmt: skip
NOT_PRODUCT = {"tests", "scripts", ".venv", "data", ".git"}


@dataclass(frozen=True)
class Rule:
    """Modules under `where` (a package or module name) may not import `forbidden` (top-level names)."""

    where: str
    forbidden: frozenset[str]
    why: str
    except_modules: frozenset[str] = frozenset()  # dotted module names exempt from this rule
    allowed_imports: frozenset[str] = frozenset()  # exact dotted imports allowed despite `forbidden`
    allowed_modules: frozenset[str] = frozenset()  # modules allowed whole (and what is imported from them)


RULES = (
    Rule(
        "analytics",
        frozenset({"store", "collectors", "cli", "cli_args", "service", "ui", "pages", "config", "simulator"}),
        "analytics is pure: frames in, findings out; it imports no store, collector or command-line module",
        except_modules=frozenset({"analytics.__main__"}),  # `python -m analytics`: a shim over cli.analytics
    ),
    Rule(
        "store",
        frozenset({"analytics", "collectors", "service", "cli", "ui", "pages", "config", "simulator", "domain"}),
        "the store imports nothing above it",
    ),
    Rule(
        "collectors",
        frozenset({"analytics", "service", "cli", "ui", "pages", "simulator"}),
        "collectors write the store; they never read findings or call the faces",
        except_modules=frozenset({"collectors.__main__"}),  # `python -m collectors`: a shim over cli.collectors
    ),
    Rule(
        "simulator",
        PRODUCT_PACKAGES - {"simulator"},
        "the stand-in imports nothing of the product but the store's public bulk load",
        allowed_imports=frozenset({"store", "store.StoreError"}),
        allowed_modules=frozenset({"store.bulk", "private_files"}),  # its files are owner-only like the product's
    ),
    Rule("domain", PRODUCT_PACKAGES - {"domain"}, "the shared vocabulary is a leaf"),
    Rule("untrusted", PRODUCT_PACKAGES - {"untrusted"}, "the rules for text from data are a leaf"),
    Rule("formatting", PRODUCT_PACKAGES - {"formatting"}, "the one visual language is a leaf every face shares"),
    Rule("private_files", PRODUCT_PACKAGES - {"private_files"}, "owner-only file helpers are a leaf"),
    Rule("service", frozenset({"cli", "ui", "pages", "simulator"}), "use cases never reach up into the faces"),
    Rule("pages", frozenset({"collectors", "cli", "simulator"}), "pages do no HTTP and call no command line"),
    Rule("ui", frozenset({"collectors", "cli", "simulator"}), "page parts do no HTTP and call no command line"),
    Rule("cli", frozenset({"ui", "pages", "simulator"}), "command lines call the service, never the pages"),
)
# Third-party modules that belong to one layer only.
ONLY_IN = {
    "streamlit": ({"pages", "ui", "dashboard"}, "streamlit only in pages, ui and dashboard.py"),
    "duckdb": ({"store"}, "only the store talks to DuckDB"),
    "httpx": ({"collectors.http_client"}, "outbound HTTP lives in collectors.http_client"),
    "aiohttp": ({"collectors.http_client"}, "outbound HTTP lives in collectors.http_client"),
    "httpx_aiohttp": ({"collectors.http_client"}, "outbound HTTP lives in collectors.http_client"),
    "urllib.request": (set(), "outbound HTTP lives in collectors.http_client"),
    "smtplib": ({"collectors.delivery"}, "outbound mail lives in collectors.delivery, beside the HTTP notices"),
}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(path: Path, module: str) -> list[tuple[str, int]]:
    """Every module a file imports at run time (absolute names; `if TYPE_CHECKING:` imports left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    found = []
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against the importing package
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found += [(base, node.lineno)]
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def _within(module: str, where: str) -> bool:
    return module == where or module.startswith(where + ".")


def violations(root: Path) -> list[str]:
    """Every import of the product under `root` that breaks a rule, as 'file:line: module imports x (why)'."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] in NOT_PRODUCT or rel.parts[0].startswith("."):
            continue
        module = _module_name(path, root)
        for imported, line in imports_of(path, module):
            top = imported.split(".")[0]
            where = f"{rel}:{line}: {module} imports {imported}"
            for rule in RULES:
                if not _within(module, rule.where) or module in rule.except_modules:
                    continue
                allowed = imported in rule.allowed_imports or any(_within(imported, m) for m in rule.allowed_modules)
                if top in rule.forbidden and not allowed:
                    if not _within(imported, rule.where):
                        out.append(f"{where} ({rule.why})")
            for library, (homes, why) in ONLY_IN.items():
                if _within(imported, library) and not any(_within(module, home) for home in homes):
                    out.append(f"{where} ({why})")
    return sorted(set(out))


def test_the_product_keeps_its_layers():
    assert violations(ROOT) == []


def test_a_deliberate_violation_is_caught(tmp_path):
    """The same check over a copy of the product with one forbidden import added to each layer rule."""
    for package in ("analytics", "store", "simulator", "pages"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text('"""x"""\n', encoding="utf-8")
    (tmp_path / "analytics" / "rules.py").write_text("from store.key_reads import key_inventory\n", encoding="utf-8")
    (tmp_path / "store" / "reads.py").write_text("import analytics.keys\n", encoding="utf-8")
    (tmp_path / "simulator" / "world.py").write_text("from collectors import contract\n", encoding="utf-8")
    (tmp_path / "pages" / "page.py").write_text("import duckdb\nfrom collectors.http_client import post_json\n")
    (tmp_path / "analytics" / "ok.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import store\nfrom analytics import keys\n"
    )
    found = violations(tmp_path)
    assert any(v.startswith("analytics/rules.py:1: analytics.rules imports store.key_reads") for v in found), found
    assert any("store.reads imports analytics.keys" in v for v in found), found
    assert any("simulator.world imports collectors" in v for v in found), found
    assert any("pages.page imports duckdb (only the store talks to DuckDB)" in v for v in found), found
    assert any("pages.page imports collectors.http_client" in v for v in found), found
    assert not any("analytics.ok" in v for v in found), found  # type-only and same-layer imports are fine
