"""The layout's rules, checked on the source: apps depend one way, and only llm/ talks to providers.

The graph is read from the import statements (Python's ast), so a new import
that breaks a rule fails here before anyone has to notice it in review.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = (
    "chatsite",
    "accounts",
    "llm",
    "personas",
    "attachments",
    "conversations",
    "transfer",
    "bots",
    "api",
    "sharing",
    "usage",
)
# Who may import whom; the project package (settings, ASGI, URLs) sits on top.
ALLOWED = {
    "llm": set(),
    "accounts": set(),
    "personas": {"llm"},
    "attachments": set(),
    "conversations": {"llm", "personas", "accounts", "attachments"},
    "transfer": {"conversations", "personas", "attachments"},
    # Feishu/Lark and WeChat bots: reply through conversations' services, secrets through personas.crypto.
    "bots": {"conversations", "personas"},
    # The API is another face of the chat: it sits on the same services as the page.
    "api": {"llm", "personas", "accounts", "conversations", "transfer"},
    # "Continue this chat" keeps the persona only where the visitor may use it (personas.selectors).
    "sharing": {"conversations", "accounts", "personas"},
    "usage": {"conversations", "accounts", "personas"},
    "chatsite": {"accounts", "conversations", "transfer", "api"},
}


def source_files(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if "migrations" not in p.parts]


def imported_modules(path: Path) -> set[str]:
    """Return the absolute module names `path` imports (at any depth: inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def app_edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {package: set() for package in PACKAGES}
    for package in PACKAGES:
        for path in source_files(package):
            for name in imported_modules(path):
                top = name.split(".")[0]
                if top in PACKAGES and top != package:
                    edges[package].add(top)
    return edges


@pytest.mark.parametrize("package", PACKAGES)
def test_apps_import_only_what_the_layout_allows(package):
    assert app_edges()[package] <= ALLOWED[package], f"{package} imports {app_edges()[package] - ALLOWED[package]}"


def test_the_app_graph_has_no_cycle():
    edges = app_edges()
    done: set[str] = set()

    def visit(node: str, path: tuple[str, ...]) -> None:
        assert node not in path, f"import cycle: {' -> '.join((*path, node))}"
        if node in done:
            return
        for target in edges[node]:
            visit(target, (*path, node))
        done.add(node)

    for package in PACKAGES:
        visit(package, ())


def test_no_two_modules_import_each_other():
    modules = {}
    for package in PACKAGES:
        for path in source_files(package):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            modules[name] = imported_modules(path)
    pairs = sorted(
        (a, b) for a, imports in modules.items() for b in imports if b in modules and a < b and a in modules[b]
    )
    assert pairs == []


def test_only_llm_imports_openai_and_llm_knows_no_django_model():
    for package in PACKAGES:
        for path in source_files(package):
            names = imported_modules(path)
            if package != "llm":
                assert not any(n == "openai" or n.startswith("openai.") for n in names), path
            else:
                assert not any(n.startswith("django.db") for n in names), path
