"""The dependency rule, checked by walking the imports of every module under src/karri.

    top (cli, service, ...) → api → cloud → (walrus, storage, node) → db → leaves

An import may point down any number of layers, never up, and never sideways between
walrus, storage and node (the leaves and the top may import each other). The leaves
(karri.errors, karri.ids, ...) are shared helpers every layer may use; they import no other
part of karri. On top of the rule: no `api/` module imports `karri.db` (handlers reach the
database through a cloud service), and `api/` reaches Walrus only through its public face,
the names `karri.walrus` itself exports, never a module below it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

LEAF = 0
TOP = 5
# A package's rank; a module may import from its own package, the leaves and lower ranks.
RANKS: dict[str, int] = {
    # Shared helpers, usable by every layer.
    "karri": LEAF,  # the package itself
    "karri.backoff": LEAF,
    "karri.config": LEAF,
    "karri.errors": LEAF,
    "karri.ids": LEAF,
    "karri.logs": LEAF,
    "karri.numbers": LEAF,
    "karri.serving": LEAF,
    "karri.timestamps": LEAF,
    "karri.signing": LEAF,
    "karri.pidfiles": LEAF,
    "karri.migrating": LEAF,  # what every `karri storage migrate` shares
    "karri.db": 1,
    "karri.walrus": 2,
    "karri.storage": 2,
    "karri.node": 2,
    # The policy engine: pure, below the API that asks it and beside the components.
    "karri.policy": 2,
    "karri.cloud": 3,
    "karri.api": 4,
    # The top wires everything: the command, `karri up`, the S3 worker processes, the list of
    # every component's tables, the credentials file written from a cloud account.
    "karri.cli": TOP,
    "karri.up": TOP,
    "karri.s3worker": TOP,
    "karri.tables": TOP,
    "karri.rcfile": TOP,
    # `karri down` and the data dir's lock: they end a cloud's processes (node helpers).
    "karri.down": TOP,
    "karri.lock": TOP,
    # Alembic's scripts: loaded by path when the database is migrated, not imported as part
    # of karri.db; env.py imports karri.tables so that autogenerate sees every table.
    "karri.db.migrations": TOP,
}
# Imports that are forbidden even though they point down.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "karri.api": ("karri.db",),  # handlers go through a cloud service
}
# Packages that a layer may import only as the package itself: its public face.
PUBLIC_ONLY: dict[str, tuple[str, ...]] = {
    "karri.api": ("karri.walrus",),  # one Walrus facade: handlers never touch blobs or SQL
}
# Known violations, each with the reason it is still here; the list only shrinks.
ALLOWED: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Violation:
    module: str
    imported: str
    line: int

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}"


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(
    tree: ast.Module, module: str, is_package: bool, root: Path | None = None
) -> Iterator[tuple[str, int]]:
    """Every module named by an import anywhere in ``tree`` (functions included); with
    ``root``, ``from package import name`` names ``package.name`` when that is a module."""
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "karri":  # `from karri import tables` names modules
                for alias in node.names:
                    yield f"karri.{alias.name}", node.lineno
                continue
            yield target, node.lineno
            for alias in node.names if root is not None else ():
                if is_module(root, f"{target}.{alias.name}"):
                    yield f"{target}.{alias.name}", node.lineno


def is_module(root: Path, name: str) -> bool:
    path = root.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def owner(module: str, ranks: dict[str, int]) -> str | None:
    """The longest entry of ``ranks`` that ``module`` is, or is inside."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in ranks:
            return prefix
    return None


def check(
    root: Path,
    ranks: dict[str, int] = RANKS,
    forbidden: dict[str, tuple[str, ...]] = FORBIDDEN,
    allowed: set[tuple[str, str]] = ALLOWED,
    public_only: dict[str, tuple[str, ...]] = PUBLIC_ONLY,
) -> list[Violation]:
    """The upward, sideways and forbidden imports of the package tree under ``root``, and
    imports below a package that ``public_only`` allows only as itself."""
    found: list[Violation] = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(root, path)
        source = owner(module, ranks)
        if source is None:
            raise AssertionError(f"{module} belongs to no layer: add it to RANKS")
        tree = ast.parse(path.read_text(), str(path))
        is_package = path.name == "__init__.py"
        for imported, line in imports(tree, module, is_package, root):
            if (source, imported) not in allowed and any(
                imported.startswith(f"{face}.") for face in public_only.get(source, ())
            ):
                found.append(Violation(module, imported, line))
        for imported, line in imports(tree, module, is_package):
            target = owner(imported, ranks)
            if target is None or target == source or (source, target) in allowed:
                continue
            low, high = ranks[target], ranks[source]
            upward_or_sideways = low > high or (low == high and low not in (LEAF, TOP))
            banned = any(owner(imported, {f: 0}) for f in forbidden.get(source, ()))
            if upward_or_sideways or banned:
                found.append(Violation(module, imported, line))
    return sorted(set(found), key=str)


def test_imports_point_down() -> None:
    violations = check(SRC)
    assert not violations, "imports against the layering:\n" + "\n".join(map(str, violations))


def test_allowlist_holds_only_live_exceptions() -> None:
    for source, target in ALLOWED:
        assert check(SRC, allowed=ALLOWED - {(source, target)}) != check(SRC), (
            f"({source}, {target}) is no longer needed in ALLOWED"
        )


def write(root: Path, module: str, text: str = "") -> None:
    path = root.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    for parent in list(path.relative_to(root).parents)[:-1]:
        (root / parent / "__init__.py").touch()
    path.write_text(text)


def synthetic(tmp_path: Path) -> Path:
    """A small tree that follows the rule."""
    write(tmp_path, "karri.errors")
    write(tmp_path, "karri.db.engine", "from karri.errors import CloudError\n")
    write(tmp_path, "karri.walrus.store", "from karri.db import engine\n")
    write(tmp_path, "karri.storage.local")
    write(tmp_path, "karri.node.node")
    write(tmp_path, "karri.cloud.service", "import karri.walrus.store\nfrom . import other\n")
    write(tmp_path, "karri.cloud.other")
    write(tmp_path, "karri.api.app", "from karri.cloud import service\n")
    write(tmp_path, "karri.up", "import karri.api.app\nimport karri.db.engine\n")
    (tmp_path / "karri" / "__init__.py").touch()
    return tmp_path


def test_checker_passes_a_tree_that_follows_the_rule(tmp_path: Path) -> None:
    assert check(synthetic(tmp_path), allowed=set()) == []


def test_checker_finds_an_upward_import(tmp_path: Path) -> None:
    root = synthetic(tmp_path)
    write(root, "karri.node.node", "def later():\n    from karri.cloud.service import x\n")
    assert [str(v) for v in check(root, allowed=set())] == [
        "karri.node.node:2 imports karri.cloud.service"
    ]


def test_checker_finds_relative_sideways_and_forbidden_imports(tmp_path: Path) -> None:
    root = synthetic(tmp_path)
    write(root, "karri.db.engine", "from ..cloud import service\n")
    write(root, "karri.storage.local", "import karri.walrus.store\n")
    write(root, "karri.api.app", "from karri.db.engine import Database\n")
    write(root, "karri.errors", "from karri import api\n")
    assert [str(v) for v in check(root, allowed=set())] == [
        "karri.api.app:1 imports karri.db.engine",
        "karri.db.engine:1 imports karri.cloud",
        "karri.errors:1 imports karri.api",
        "karri.storage.local:1 imports karri.walrus.store",
    ]


def test_checker_honours_the_allowlist(tmp_path: Path) -> None:
    root = synthetic(tmp_path)
    write(root, "karri.db.engine", "import karri.cloud.service\n")
    assert check(root, allowed={("karri.db", "karri.cloud")}) == []


def test_checker_finds_an_import_below_a_public_face(tmp_path: Path) -> None:
    root = synthetic(tmp_path)
    write(root, "karri.walrus.__init__", "from karri.walrus.store import Walrus\n")
    write(
        root,
        "karri.api.app",
        "import karri.walrus\nfrom karri.walrus import Walrus\n"
        "from karri.walrus import store\nfrom karri.walrus.store import x\n",
    )
    assert [str(v) for v in check(root, allowed=set())] == [
        "karri.api.app:3 imports karri.walrus.store",
        "karri.api.app:4 imports karri.walrus.store",
    ]
