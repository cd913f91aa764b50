"""The test suite's own conventions (issue 15), checked on its source with ast:

1. No test reaches a private name of jsweep. A name is private when it starts with one underscore
   (dunders such as ``__version__`` are not private). Flagged, anywhere under tests/:
   - ``from jsweep.x import _name``;
   - ``alias._name`` where ``alias`` is bound by an import to jsweep or one of its modules or names
     (``import jsweep.redaction as R`` then ``R._known``; ``from jsweep.eval.llm_jp_eval import metrics as M``
     then ``M._pearson``), at any depth (``jsweep.sweep._x``);
   - ``monkeypatch.setattr``/``delattr``/``getattr``/``setattr``/``hasattr`` given a jsweep alias and a
     ``"_name"`` string, or a dotted ``"jsweep.x._name"`` target.
   Not flagged: a test module's own private helpers, private attributes of objects that are not jsweep
   modules (an ``_x`` on an instance cannot be told from a module's by reading source, and is out of
   scope), and monkeypatching environment variables, builtins or third-party modules.
   What a test needs is public: jsweep names the thing without an underscore, or the test goes through
   the public API.
2. Helpers are imported from ``tests.support``, never from a conftest (``from conftest import``,
   ``from tests.conftest import``) nor from another test module (``from test_x import``,
   ``from tests.integration.test_x import``); fixtures come from the plugin tests/conftest.py registers.
3. Every directory of tests is a package (has __init__.py) and test file names are unique, so a
   module's name never depends on which other test file pytest imported first.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

from tests.support.paths import TESTS

ATTRIBUTE_CALLS = {"setattr", "delattr", "getattr", "hasattr"}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _python_files() -> list[Path]:
    return sorted(
        p
        for p in TESTS.rglob("*.py")
        if "data" not in p.relative_to(TESTS).parts[:1] and "fixtures" not in p.relative_to(TESTS).parts[:1]
    )


def private_jsweep_uses(source: str) -> list[str]:
    """Every place ``source`` reaches a private name of jsweep (rule 1), as 'line: what'."""
    tree = ast.parse(source)
    jsweep_aliases: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "jsweep":
                    jsweep_aliases.add(a.asname or a.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "jsweep":
            for a in node.names:
                if _private(a.name):
                    found.append(f"{node.lineno}: from {node.module} import {a.name}")
                jsweep_aliases.add(a.asname or a.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in jsweep_aliases:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name not in ATTRIBUTE_CALLS or not node.args:
                continue
            first = node.args[0]
            if (
                isinstance(first, ast.Constant)
                and isinstance(first.value, str)
                and first.value.split(".")[0] == "jsweep"
                and any(_private(p) for p in first.value.split("."))
            ):
                found.append(f"{node.lineno}: {name}({first.value!r})")
            elif (
                len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and _private(node.args[1].value)
            ):
                base = first
                while isinstance(base, ast.Attribute):
                    base = base.value
                if isinstance(base, ast.Name) and base.id in jsweep_aliases:
                    found.append(f"{node.lineno}: {name}({ast.unparse(first)}, {node.args[1].value!r})")
    return sorted(found, key=lambda f: int(f.split(":")[0]))


def helper_imports(source: str) -> list[str]:
    """Imports of helpers from a conftest or from another test module (rule 2), as 'line: module'."""
    found = []
    for node in ast.walk(ast.parse(source)):
        modules = []
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        for module in modules:
            last = module.split(".")[-1]
            if last == "conftest" or last.startswith("test_"):
                found.append(f"{node.lineno}: {module}")
    return found


def test_the_checks_catch_what_they_are_meant_to():
    bad = (
        "import jsweep.redaction as R\nfrom jsweep.eval.llm_jp_eval import metrics as M\n"
        "from jsweep.sweep import _check\nimport jsweep\n"
        "R._known.discard('x')\nM._pearson([1], [1])\njsweep.sweep._plan()\n"
        "def test(monkeypatch):\n    monkeypatch.setattr(M, '_cache', {})\n"
        "    monkeypatch.setattr('jsweep.eval.judge._client', None)\n"
    )
    assert [line.split(":")[0] for line in private_jsweep_uses(bad)] == ["3", "5", "6", "7", "9", "10"]
    fine = (
        "import os\nimport jsweep.identity\nfrom jsweep.redaction import forget\n"
        "def _own_helper():\n    return 1\n"
        "def test(monkeypatch, tracker):\n    monkeypatch.setattr(jsweep.identity, '__version__', '9')\n"
        "    monkeypatch.setenv('JSWEEP_SECRETS', '{}')\n    monkeypatch.setattr(os, '_exit', print)\n"
        "    monkeypatch.setattr('builtins.__import__', None)\n    tracker._root, _own_helper()\n"
    )
    assert private_jsweep_uses(fine) == []
    assert [
        f.split(": ")[1]
        for f in helper_imports(
            "from conftest import run_jsweep\nfrom tests.conftest import cli_env\nfrom test_resilience import FAST\n"
            "import tests.integration.test_remote_tracking\nfrom tests.support.sweeps import run_jsweep\n"
            "from jsweep.eval.llm_jp_eval import metrics\n"
        )
    ] == ["conftest", "tests.conftest", "test_resilience", "tests.integration.test_remote_tracking"]


def test_no_test_reaches_a_private_name_of_jsweep():
    found = {
        str(p.relative_to(TESTS)): uses
        for p in _python_files()
        if (uses := private_jsweep_uses(p.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_helpers_come_from_tests_support_not_from_conftest_or_other_test_modules():
    found = {
        str(p.relative_to(TESTS)): uses
        for p in _python_files()
        if (uses := helper_imports(p.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_test_directories_are_packages_and_test_file_names_are_unique():
    files = _python_files()
    assert [
        str(d.relative_to(TESTS)) for d in sorted({p.parent for p in files}) if not (d / "__init__.py").exists()
    ] == []
    names = Counter(p.name for p in files if p.name.startswith("test_"))
    assert [name for name, n in names.items() if n > 1] == []
