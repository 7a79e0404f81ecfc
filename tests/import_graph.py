"""Which minidl module imports which: the import graph, read from the source with ``ast``.

Every ``import`` statement counts, wherever it stands: at module level, inside a
function or a method, under ``if``/``try``. (Python runs a function-level import
later, but it is still a dependency: a cycle through it is a cycle.) Imports that
are only text -- in docstrings or comments -- do not count, and neither do dynamic
ones (``importlib.import_module(f"minidl.{name}")``).

How a statement becomes an edge ``importer -> imported``, for importer ``minidl.weights.convert``:

=========================================  =====================================================
``import minidl.utils.files``              ``minidl.utils.files``
``from minidl.utils import files``         ``minidl.utils.files`` (``files`` is a module)
``from minidl.utils import atomic_write``  ``minidl.utils`` (a name, not a module)
``from minidl import weights``             ``minidl.weights`` (a subpackage)
``from minidl import __version__``         ``minidl`` (the root package)
``from .keras_h5 import LayerWeights``     ``minidl.weights.keras_h5`` (relative to the package)
``from . import download``                 ``minidl.weights.download``
``import numpy``                           ignored: not part of minidl
=========================================  =====================================================

Only the named module is an edge: importing ``minidl.a.b`` also runs
``minidl/__init__.py`` and ``minidl/a/__init__.py`` first, but counting those
would make every module of a package depend on its ``__init__`` and hide the real
dependencies. A name that is no module of the tree (``import minidl.missing``, a
module that was moved or deleted) is kept as written: it appears in the sets but
is no key of the graph, so a test can report the broken import.

Example::

    from import_graph import import_graph      # tests/ is on sys.path under pytest
    graph = import_graph("minidl")
    graph["minidl.weights.convert"]     # {'minidl.utils.files', 'minidl.weights.keras_h5', ...}
"""
import ast
from pathlib import Path
from typing import NamedTuple


class ImportEdge(NamedTuple):
    """One import statement between two modules of the package, and where it stands."""

    importer: str      # 'minidl.weights.convert'
    imported: str      # 'minidl.utils.files'
    path: Path         # the importer's file, relative to the folder holding the package
    line: int          # line of the import statement
    statement: str     # the statement's source, e.g. 'from minidl.utils.files import md5_of_file'
    in_function: bool  # True if it stands inside a function or method body

    def __str__(self):
        where = "inside a function" if self.in_function else "at module level"
        return f"{self.path}:{self.line}: {self.statement!r} ({where}) imports {self.imported}"


def module_files(package_dir):
    """``{module_name: path}`` for every ``.py`` file of the package at ``package_dir``.

    ``minidl/weights/__init__.py`` is the module ``minidl.weights``;
    ``minidl/weights/convert.py`` is ``minidl.weights.convert``. The package name is
    the folder's name.
    """
    package_dir = Path(package_dir).resolve()
    if not (package_dir / "__init__.py").is_file():
        raise ValueError(f"'{package_dir}' is not a Python package: it has no __init__.py")
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir.parent).with_suffix("")
        parts = list(relative.parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _is_package(module_name, modules):
    return modules[module_name].name == "__init__.py"


def _from_import_base(node, importer, modules):
    """The absolute module a ``from X import ...`` statement imports from."""
    if node.level == 0:
        return node.module
    # Relative: level 1 is the importer's own package (the importer itself if it is
    # a package's __init__), each further level one package up.
    package = importer if _is_package(importer, modules) else importer.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    if not package:
        raise ValueError(f"{modules[importer]}:{node.lineno}: relative import goes above the top package")
    return f"{package}.{node.module}" if node.module else package


def _imported_modules(node, importer, modules, root):
    """The modules of the tree one ``import``/``from ... import`` statement names."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = _from_import_base(node, importer, modules)
        names = []
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            # `from minidl import weights` names the subpackage; `from minidl import
            # __version__` (or a class, a function, `*`) names the package itself.
            names.append(submodule if submodule in modules else base)
    # numpy, h5py, the standard library... are not part of the graph.
    return {name for name in names if name == root or name.startswith(root + ".")}


class _ImportFinder(ast.NodeVisitor):
    """Collects every import statement, remembering whether it is inside a function."""

    def __init__(self):
        self.found = []  # (node, in_function)
        self._function_depth = 0

    def _visit_function(self, node):
        self._function_depth += 1
        self.generic_visit(node)
        self._function_depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = _visit_function

    def visit_Import(self, node):
        self.found.append((node, self._function_depth > 0))

    visit_ImportFrom = visit_Import


def import_edges(package_dir):
    """Every import between modules of the package at ``package_dir``, as :class:`ImportEdge`."""
    modules = module_files(package_dir)
    root = Path(package_dir).resolve().name
    top = Path(package_dir).resolve().parent
    edges = []
    for importer, path in modules.items():
        source = path.read_text(encoding="utf-8")
        try:
            tree = ast.parse(source, filename=str(path))
        except SyntaxError as error:
            raise SyntaxError(f"cannot parse '{path}' to read its imports: {error}") from error
        finder = _ImportFinder()
        finder.visit(tree)
        for node, in_function in finder.found:
            statement = ast.get_source_segment(source, node) or ast.unparse(node)
            for imported in sorted(_imported_modules(node, importer, modules, root)):
                if imported != importer:
                    edges.append(ImportEdge(importer, imported, path.relative_to(top), node.lineno,
                                            " ".join(statement.split()), in_function))
    return edges


def import_graph(package_dir):
    """``{module_name: {imported module names}}`` for every module of the package.

    Every module of the tree is a key, even one that imports nothing of the
    package (its set is empty). See the module docstring for how statements resolve.
    """
    graph = {module: set() for module in module_files(package_dir)}
    for edge in import_edges(package_dir):
        graph[edge.importer].add(edge.imported)
    return graph


def find_cycle(graph):
    """One import cycle of ``graph`` as a list ``[a, b, ..., a]``, or None if there is none.

    Iterative depth-first search (no recursion limit on deep packages).
    """
    state = {}  # module -> "open" while on the current path, "done" once fully explored
    for start in sorted(graph):
        if start in state:
            continue
        path = [start]
        state[start] = "open"
        iterators = [iter(sorted(graph[start]))]
        while iterators:
            following = next(iterators[-1], None)
            if following is None:
                state[path.pop()] = "done"
                iterators.pop()
            elif state.get(following) == "open":
                return path[path.index(following):] + [following]
            elif following not in state:
                state[following] = "open"
                path.append(following)
                iterators.append(iter(sorted(graph.get(following, ()))))
    return None
