"""Dependencies run one way (STYLE.md §8): checked on the source with ``ast``.

Every import counts -- at module level and inside functions, absolute and
relative, ``from minidl import weights`` included -- see ``tests/import_graph.py``.
The rules:

* ``minidl.utils`` is the bottom layer: it imports nothing else of minidl.
* ``minidl.weights`` reads and writes file formats: it imports only itself and
  ``minidl.utils`` -- never the models, the applications, nor the root package
  ``minidl`` (whose ``__init__`` imports the models).
* ``minidl.preprocessing`` imports only itself, ``minidl.utils`` and
  ``minidl.kernels`` (the image warp); ``dicom.py`` does not import ``loading.py``
  (``loading.py`` imports ``dicom.py``; the shared error lives in ``errors.py``).
* ``minidl.models`` imports none of the packages built on top of it
  (preprocessing, applications, visualization, plotting, datasets) nor the root.
* ``models/serialization.py`` and ``models/saving.py`` import neither
  ``model.py``, ``sequential.py`` nor ``training.py``, which call them.
* The engine stays behind the operations: the learner's files (layers, activations,
  losses, optimizers, models/graph.py, models/model.py) import neither ``minidl.engine``
  nor ``minidl.kernels.fast``; the reference backend imports neither of them nor Numba.
* No import cycle anywhere: not between two modules, not between two subpackages.
"""
import ast
from pathlib import Path

import pytest

from import_graph import find_cycle, import_edges, import_graph

PACKAGE = Path(__file__).resolve().parents[1] / "minidl"


def _within(module, prefixes):
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def imports_breaking(edges, importers, allowed=None, forbidden=None):
    """The edges whose importer lies in ``importers`` and whose imported module is
    outside ``allowed`` (if given) or inside ``forbidden`` (if given)."""
    broken = []
    for edge in edges:
        if not _within(edge.importer, importers):
            continue
        if allowed is not None and not _within(edge.imported, allowed):
            broken.append(edge)
        elif forbidden is not None and _within(edge.imported, forbidden):
            broken.append(edge)
    return broken


def report(broken, rule):
    return f"{len(broken)} import(s) break the rule: {rule}\n" + "\n".join(f"  {edge}" for edge in broken)


@pytest.fixture(scope="module")
def edges():
    return import_edges(PACKAGE)


def test_utils_is_the_bottom_layer(edges):
    broken = imports_breaking(edges, ["minidl.utils"], allowed=["minidl.utils"])
    assert not broken, report(broken, "minidl.utils imports nothing else of minidl")


def test_weights_import_only_weights_and_utils(edges):
    broken = imports_breaking(edges, ["minidl.weights"], allowed=["minidl.weights", "minidl.utils"])
    assert not broken, report(broken, "minidl.weights imports only minidl.weights and minidl.utils "
                                      "(never minidl.models, minidl.applications or the root minidl)")


def test_preprocessing_imports_only_itself_utils_and_kernels(edges):
    allowed = ["minidl.preprocessing", "minidl.utils", "minidl.kernels"]
    broken = imports_breaking(edges, ["minidl.preprocessing"], allowed=allowed)
    assert not broken, report(broken, f"minidl.preprocessing imports only {allowed}")


def test_dicom_does_not_import_loading(edges):
    broken = imports_breaking(edges, ["minidl.preprocessing.image.dicom"],
                              forbidden=["minidl.preprocessing.image.loading"])
    assert not broken, report(broken, "dicom.py does not import loading.py (loading.py imports dicom.py)")


def test_models_do_not_import_the_layers_above_them(edges):
    above = ["minidl.preprocessing", "minidl.applications", "minidl.visualization",
             "minidl.plotting", "minidl.datasets"]
    broken = imports_breaking(edges, ["minidl.models"], forbidden=above)
    broken += [edge for edge in edges if _within(edge.importer, ["minidl.models"]) and edge.imported == "minidl"]
    assert not broken, report(broken, f"minidl.models imports none of {above}, nor the root minidl")


def test_serialization_and_saving_do_not_import_the_model_classes(edges):
    callers = ["minidl.models.model", "minidl.models.sequential", "minidl.models.training"]
    broken = imports_breaking(edges, ["minidl.models.serialization", "minidl.models.saving"], forbidden=callers)
    assert not broken, report(broken, f"serialization.py and saving.py import none of {callers}")


LEARNER_MODULES = ["minidl.layers", "minidl.activations", "minidl.losses", "minidl.optimizers",
                   "minidl.models.graph", "minidl.models.model"]
ENGINE = ["minidl.engine", "minidl.kernels.fast"]


def test_the_learners_files_do_not_import_the_engine(edges):
    broken = imports_breaking(edges, LEARNER_MODULES, forbidden=ENGINE)
    assert not broken, report(broken, f"{LEARNER_MODULES} call the operations of minidl.kernels, not {ENGINE}")


def test_the_reference_backend_imports_no_engine_and_no_numba():
    broken = imports_breaking(import_edges(PACKAGE), ["minidl.kernels.reference"], forbidden=ENGINE)
    assert not broken, report(broken, "the reference backend stands alone")
    for path in (PACKAGE / "kernels" / "reference").glob("*.py"):
        imported = [alias.name for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Import)
                    for alias in node.names]
        imported += [node.module or "" for node in ast.walk(ast.parse(path.read_text()))
                     if isinstance(node, ast.ImportFrom)]
        assert not [name for name in imported if name.split(".")[0] == "numba"], path


def _subpackage(module):
    """'minidl.kernels.fast.conv' -> 'minidl.kernels'; a top-level module is its own unit."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_any_two_modules_of_minidl():
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, "import cycle (function-level imports count): " + " -> ".join(cycle)


def test_no_import_cycle_between_minidls_subpackages():
    units = {}
    for module, imports in import_graph(PACKAGE).items():
        for imported in imports:
            if _subpackage(module) != _subpackage(imported):
                units.setdefault(_subpackage(module), set()).add(_subpackage(imported))
    assert {"minidl.kernels", "minidl.layers", "minidl.models", "minidl.engine"} <= set(units)
    cycle = find_cycle(units)
    assert cycle is None, "cycle between subpackages: " + " -> ".join(cycle)


def test_no_cycle_among_the_packages_this_rule_set_covers():
    covered = ["minidl.utils", "minidl.weights", "minidl.preprocessing", "minidl.models", "minidl.applications"]
    graph = import_graph(PACKAGE)
    subgraph = {module: {imported for imported in imports if _within(imported, covered)}
                for module, imports in graph.items() if _within(module, covered)}
    cycle = find_cycle(subgraph)
    assert cycle is None, "import cycle (function-level imports count): " + " -> ".join(cycle)


# ---------------------------------------------------------------------------
# the checker itself, on a small package written here: it must see what it claims to
# ---------------------------------------------------------------------------
def write_package(root, files):
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def toy(tmp_path):
    return write_package(tmp_path / "minidl", {
        "__init__.py": "__version__ = '0'\nfrom minidl import models\n",
        "utils/__init__.py": "",
        "utils/files.py": "import os\n",
        "models/__init__.py": "from .model import Model\n",
        "models/model.py": (
            '"""Docstring text does not count: from minidl.weights import x"""\n'
            "import numpy as np\n"
            "from minidl.utils.files import atomic_write\n"
            "class Model:\n"
            "    def save(self):\n"
            "        from . import saving\n"
            "        return saving.save(self)\n"
        ),
        "models/saving.py": "from minidl import weights\nfrom ..utils import files\n",
        "weights/__init__.py": "from minidl.weights.io import *\n",
        "weights/io.py": (
            "import minidl.utils.files\n"
            "from minidl import __version__\n"
            "def load():\n"
            "    from minidl.models.model import Model\n"
            "    import minidl.models.gone\n"
        ),
    })


def test_import_graph_resolves_every_form_of_import(toy):
    graph = import_graph(toy)
    assert graph["minidl"] == {"minidl.models"}
    assert graph["minidl.models"] == {"minidl.models.model"}                  # relative
    assert graph["minidl.models.model"] == {"minidl.utils.files", "minidl.models.saving"}
    assert graph["minidl.models.saving"] == {"minidl.weights", "minidl.utils.files"}  # `from minidl import weights`
    assert graph["minidl.weights"] == {"minidl.weights.io"}
    assert graph["minidl.weights.io"] == {"minidl.utils.files", "minidl", "minidl.models.model",
                                          "minidl.models.gone"}   # a missing module is kept as written
    assert graph["minidl.utils"] == set() and graph["minidl.utils.files"] == set()


def test_function_level_imports_are_found_and_marked(toy):
    inside = {(edge.importer, edge.imported) for edge in import_edges(toy) if edge.in_function}
    assert inside == {("minidl.models.model", "minidl.models.saving"),
                      ("minidl.weights.io", "minidl.models.model"),
                      ("minidl.weights.io", "minidl.models.gone")}


def test_the_rules_catch_a_format_importing_the_models(toy):
    broken = imports_breaking(import_edges(toy), ["minidl.weights"], allowed=["minidl.weights", "minidl.utils"])
    assert {edge.imported for edge in broken} == {"minidl", "minidl.models.model", "minidl.models.gone"}
    message = report(broken, "formats never import models")
    assert "io.py:4: 'from minidl.models.model import Model' (inside a function)" in message


def test_find_cycle_sees_cycles_through_function_level_imports(toy):
    cycle = find_cycle(import_graph(toy))
    assert cycle is not None and cycle[0] == cycle[-1]
    # it runs through Model.save's function-level import of saving, as a real one would
    assert {"minidl.models.model", "minidl.models.saving", "minidl.weights.io"} <= set(cycle)
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
