"""Import rules of docs/architecture.md, enforced by parsing the source with ``ast`` (nothing is imported).

1. barenet never imports nids_triage.
2. Only barenet/backend.py imports cupy; only barenet/estimator.py imports sklearn.
3. Nothing in barenet calls ``np.random.<function>``: only ``default_rng``/``Generator`` (then Generator methods).
4. barenet's run-time imports are numpy and the standard library, except optional imports guarded by
   ``try: ... except ImportError`` (tqdm, threadpoolctl, cupy) and estimator.py's sklearn.
5. nids_triage uses only names that barenet/__init__.py exports (``from barenet import X``, ``bn.X``), never
   ``barenet.<submodule>`` internals.
6. No pickle anywhere in src/, and no ``allow_pickle=True``.

Each checker is a function of source text, and the last tests feed it bad code to show it can fail.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
BARENET = SRC / "barenet"
APP = SRC / "nids_triage"

STDLIB = set(sys.stdlib_module_names)
OPTIONAL = {"tqdm", "threadpoolctl", "cupy"}  # allowed only inside try/except ImportError
ALLOWED_NP_RANDOM = {"default_rng", "Generator"}
PICKLERS = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}


def _py_files(folder: Path):
    return sorted(folder.rglob("*.py"))


def _parents(tree):
    parent = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parent[child] = node
    return parent


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    names = []
    if isinstance(handler.type, ast.Name):
        names = [handler.type.id]
    elif isinstance(handler.type, ast.Tuple):
        names = [e.id for e in handler.type.elts if isinstance(e, ast.Name)]
    return bool({"ImportError", "ModuleNotFoundError"} & set(names))


def _context(node, parent):
    """(guarded by try/except ImportError, under `if TYPE_CHECKING:`) for an import node."""
    guarded = type_checking = False
    child, node = node, parent.get(node)
    while node is not None:
        if isinstance(node, ast.Try) and child in node.body and any(_catches_import_error(h) for h in node.handlers):
            guarded = True
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) and child in node.body:
            type_checking = True
        child, node = node, parent.get(node)
    return guarded, type_checking


def imports(source: str):
    """Yield (top-level module, full module, imported names, lineno, guarded, type_checking) per absolute import."""
    tree = ast.parse(source)
    parent = _parents(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield (alias.name.split(".")[0], alias.name, [], node.lineno, *_context(node, parent))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield (node.module.split(".")[0], node.module, [a.name for a in node.names], node.lineno,
                   *_context(node, parent))


# ------------------------------------------------------------------------------------------------
# the checkers: each returns a list of human-readable violations
# ------------------------------------------------------------------------------------------------
def barenet_import_violations(source: str, filename: str) -> list[str]:
    out = []
    for top, full, names, line, guarded, type_checking in imports(source):
        where = f"{filename}:{line}"
        if top == "nids_triage":
            out.append(f"{where}: barenet must never import nids_triage")
        elif top == "cupy" and filename != "backend.py":
            out.append(f"{where}: only backend.py may import cupy")
        elif top == "sklearn" and filename != "estimator.py":
            out.append(f"{where}: only estimator.py may import sklearn")
        elif top == "numpy" and full == "numpy.random" and set(names) - ALLOWED_NP_RANDOM:
            out.append(f"{where}: imports {sorted(set(names) - ALLOWED_NP_RANDOM)} from numpy.random")
        elif top in PICKLERS:
            out.append(f"{where}: imports {top}")
        elif type_checking or top in STDLIB or top in ("numpy", "barenet", "__future__"):
            continue
        elif top in OPTIONAL and guarded:
            continue
        elif top == "sklearn" and filename == "estimator.py":
            continue
        else:
            what = "an optional import outside try/except ImportError" if top in OPTIONAL else "a run-time dependency"
            out.append(f"{where}: {full} is {what}; barenet needs numpy and the standard library only")
    return out


def np_random_violations(source: str, filename: str) -> list[str]:
    """`np.random.X` / `numpy.random.X` attribute uses other than default_rng/Generator (also `from numpy import
    random`)."""
    out = []
    tree = ast.parse(source)
    numpy_names = {"numpy"}
    random_names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "numpy":
                    numpy_names.add(a.asname or "numpy")
                if a.name == "numpy.random" and a.asname:
                    random_names.add(a.asname)
        elif isinstance(node, ast.ImportFrom) and node.module == "numpy":
            for a in node.names:
                if a.name == "random":
                    random_names.add(a.asname or "random")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        base = node.value
        is_np_random = (isinstance(base, ast.Attribute) and base.attr == "random" and isinstance(base.value, ast.Name)
                        and base.value.id in numpy_names)
        is_alias = isinstance(base, ast.Name) and base.id in random_names
        if (is_np_random or is_alias) and node.attr not in ALLOWED_NP_RANDOM:
            out.append(f"{filename}:{node.lineno}: np.random.{node.attr} uses NumPy's global random state; "
                       "use a numpy.random.Generator (default_rng) instead")
    return out


def exported_names(init_source: str) -> set[str]:
    for node in ast.parse(init_source).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("barenet/__init__.py has no literal __all__")


def app_import_violations(source: str, filename: str, exported: set[str]) -> list[str]:
    out = []
    tree = ast.parse(source)
    aliases = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("barenet."):
                    out.append(f"{filename}:{node.lineno}: imports the internal module {a.name}")
                elif a.name == "barenet":
                    aliases.add(a.asname or "barenet")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.startswith("barenet."):
                out.append(f"{filename}:{node.lineno}: imports from the internal module {node.module}")
            elif node.module == "barenet":
                for a in node.names:
                    if a.name not in exported:
                        out.append(f"{filename}:{node.lineno}: 'from barenet import {a.name}' is not exported by "
                                   "barenet/__init__.py")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if node.attr not in exported:
                out.append(f"{filename}:{node.lineno}: {node.value.id}.{node.attr} is not exported by barenet")
    return out


def pickle_violations(source: str, filename: str) -> list[str]:
    out = []
    for top, full, names, line, *_ in imports(source):
        if top in PICKLERS:
            out.append(f"{filename}:{line}: imports {full}")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.keyword) and node.arg == "allow_pickle":
            if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                out.append(f"{filename}:{node.value.lineno}: allow_pickle must be False")
    return out


# ------------------------------------------------------------------------------------------------
# the rules, applied to the real source
# ------------------------------------------------------------------------------------------------
def _all(checker, folder, *args):
    files = _py_files(folder)
    assert files, f"no Python files under {folder}"
    return [v for f in files for v in checker(f.read_text(encoding="utf-8"), f.name, *args)]


def test_barenet_imports_only_numpy_stdlib_and_guarded_optionals():
    assert _all(barenet_import_violations, BARENET) == []


def test_barenet_never_uses_the_global_numpy_random_state():
    assert _all(np_random_violations, BARENET) == []


def test_nids_triage_uses_only_barenets_public_api():
    exported = exported_names((BARENET / "__init__.py").read_text())
    assert _all(app_import_violations, APP, exported) == []


def test_nothing_in_src_uses_pickle():
    assert _all(pickle_violations, SRC) == []


def test_every_exported_name_exists():
    import barenet

    exported = exported_names((BARENET / "__init__.py").read_text())
    assert exported == set(barenet.__all__)
    missing = sorted(n for n in exported if not hasattr(barenet, n))
    assert missing == []


# ------------------------------------------------------------------------------------------------
# the checkers catch violations (so the tests above can fail)
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("source, filename, expected", [
    ("import nids_triage.model\n", "network.py", "never import nids_triage"),
    ("from nids_triage import policy\n", "network.py", "never import nids_triage"),
    ("import cupy\n", "layers.py", "only backend.py may import cupy"),
    ("from sklearn.base import BaseEstimator\n", "network.py", "only estimator.py may import sklearn"),
    ("import pandas as pd\n", "training.py", "pandas is a run-time dependency"),
    ("import scipy.special\n", "activations.py", "scipy.special is a run-time dependency"),
    ("import tqdm\n", "training.py", "tqdm is an optional import outside try/except ImportError"),
    ("import cupy\n", "backend.py", "cupy is an optional import outside try/except ImportError"),
    ("try:\n    import tqdm\nexcept RuntimeError:\n    pass\n", "training.py", "optional import outside try"),
    ("from numpy.random import seed\n", "network.py", "imports ['seed'] from numpy.random"),
    ("import pickle\n", "serialization.py", "imports pickle"),
])
def test_import_checker_flags(source, filename, expected):
    found = barenet_import_violations(source, filename)
    assert any(expected in v for v in found), found


@pytest.mark.parametrize("source, filename", [
    ("try:\n    import cupy\nexcept ImportError:\n    cupy = None\n", "backend.py"),
    ("def f():\n    try:\n        from threadpoolctl import threadpool_limits\n    except (ImportError, OSError):\n"
     "        return None\n", "training.py"),
    ("from sklearn.base import BaseEstimator\n", "estimator.py"),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pandas\n", "network.py"),
    ("import json, os, math\nimport numpy as np\nfrom . import layers\nfrom numpy.random import default_rng\n", "x.py"),
])
def test_import_checker_allows(source, filename):
    assert barenet_import_violations(source, filename) == []


@pytest.mark.parametrize("source, bad", [
    ("import numpy as np\nnp.random.seed(0)\n", True),
    ("import numpy as np\nx = np.random.rand(3)\n", True),
    ("import numpy\nnumpy.random.shuffle(a)\n", True),
    ("from numpy import random\nrandom.normal()\n", True),
    ("import numpy.random as npr\nnpr.permutation(4)\n", True),
    ("import numpy as np\nrng = np.random.default_rng(0)\nrng.permutation(4)\n", False),
    ("import numpy as np\ndef f(rng: np.random.Generator):\n    return rng.random(3)\n", False),
    ("import random\nrandom.random()\n", False),  # the stdlib module is another matter (not NumPy state)
])
def test_np_random_checker(source, bad):
    assert bool(np_random_violations(source, "x.py")) is bad


@pytest.mark.parametrize("source, expected", [
    ("from barenet.layers import Dense\n", "internal module barenet.layers"),
    ("import barenet.training\n", "internal module barenet.training"),
    ("from barenet import TargetEncoder\n", "'from barenet import TargetEncoder' is not exported"),
    ("import barenet as bn\nnet = bn.targets.TargetEncoder\n", "bn.targets is not exported"),
    ("import barenet\nbarenet.split_internal(1)\n", "barenet.split_internal is not exported"),
])
def test_app_checker_flags(source, expected):
    found = app_import_violations(source, "app.py", {"Dense", "build_mlp", "load"})
    assert any(expected in v for v in found), found


def test_app_checker_allows_public_names():
    source = "import barenet as bn\nfrom barenet import Dense\nnet = bn.build_mlp()\nbn.load('x')\n"
    assert app_import_violations(source, "app.py", {"Dense", "build_mlp", "load"}) == []


@pytest.mark.parametrize("source", ["import pickle\n", "from pickle import loads\n", "import cloudpickle\n",
                                    "import numpy as np\nnp.load('f', allow_pickle=True)\n",
                                    "import numpy as np\nnp.load('f', allow_pickle=flag)\n"])
def test_pickle_checker_flags(source):
    assert pickle_violations(source, "x.py")


def test_pickle_checker_allows_allow_pickle_false():
    assert pickle_violations("import numpy as np\nnp.load('f', allow_pickle=False)\n", "x.py") == []
