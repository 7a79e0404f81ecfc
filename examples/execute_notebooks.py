"""Execute the example notebooks top to bottom and save them WITH their outputs, in place.

    python examples/execute_notebooks.py                          # both notebooks
    python examples/execute_notebooks.py examples/workshop.ipynb  # one
    python examples/execute_notebooks.py --data DIR               # the workshop's images elsewhere

The notebooks are committed with their outputs so that their pictures show on GitHub without
running anything. Run this after every change that alters what they print or draw. It needs
the ``notebook`` extra (``pip install -e ".[notebook]"``) and the workshop's images.

How the notebooks are run, so that the committed outputs are those of a learner offline:

* each notebook's own settings, unchanged (``QUICK = True``, ``DATA_DIR = None``), in its own
  folder (``examples/``), with this repository first on ``PYTHONPATH``;
* ``MINIDL_DATA`` = the workshop's images (``--data``, default
  ``../shared/data/Open_I_abd_vs_CXRs`` beside the repository), written relative to
  ``examples/`` so that no absolute path of this machine lands in the outputs;
* no ImageNet weights: a fresh, empty ``MINIDL_HOME`` and every download sent to a closed local
  port (``http(s)_proxy=http://127.0.0.1:9``), so quick mode trains from random weights and
  re-estimates batch-norm statistics, whatever this machine has cached or can reach;
* the inline matplotlib backend.

Afterwards, each progress-bar line keeps only what a terminal would show (the text after its
last carriage return), the path of IPython's temporary cell files in warnings becomes
``<cell>``, and the script fails if an output still holds a path of this machine (the
repository, the home folder, the temporary folder) or an error.
"""
import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
ROOT = EXAMPLES.parent
NOTEBOOKS = [EXAMPLES / "workshop.ipynb", EXAMPLES / "concepts.ipynb"]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "Open_I_abd_vs_CXRs"
CELL_FILE = re.compile(r"/\S*?ipykernel_\d+/\d+\.py")      # IPython's file name for a cell


def kernel_environment(data, home):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["MINIDL_DATA"] = os.path.relpath(data, EXAMPLES)
    env["MINIDL_HOME"] = str(home)
    env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        env[name] = "http://127.0.0.1:9"          # offline on purpose: see the module docstring
    for name in ("no_proxy", "NO_PROXY"):
        env.pop(name, None)
    return env


def as_a_terminal_shows(text):
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))


def clean_outputs(notebook):
    """Merge consecutive pieces of one stream (a progress bar arrives in many), keep what a
    terminal shows of each line, and name IPython's temporary cell files ``<cell>``."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        merged = []
        for output in cell.outputs:
            previous = merged[-1] if merged else {}
            if (output.get("output_type") == "stream" and previous.get("output_type") == "stream"
                    and previous.get("name") == output.get("name")):
                previous["text"] += output["text"]
            else:
                merged.append(output)
        for output in merged:
            if output.get("output_type") == "stream":
                output["text"] = CELL_FILE.sub("<cell>", as_a_terminal_shows(output["text"]))
        cell.outputs = merged


def machine_paths(notebook, extra=()):
    """The outputs' mentions of this machine's folders (should be none)."""
    needles = {str(ROOT), str(Path.home()), tempfile.gettempdir(), *map(str, extra)}
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            texts = [output.get("text", ""), output.get("evalue", "")]
            texts += [value for key, value in output.get("data", {}).items() if key.startswith("text/")]
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                found += [f"cell {index}: {needle}" for needle in needles if needle and needle in text]
    return found


def execute(path, data, timeout=900):
    import nbclient
    import nbformat
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="minidl-home-") as home:
        started = time.time()
        nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                                resources={"metadata": {"path": str(path.parent)}}
                                ).execute(env=kernel_environment(data, home))
        seconds = time.time() - started
        clean_outputs(notebook)
        problems = machine_paths(notebook, extra=[home])
    errors = [f"cell {i}" for i, cell in enumerate(notebook.cells)
              for output in cell.get("outputs", []) if output.get("output_type") == "error"]
    if problems or errors:
        raise SystemExit(f"{path.name}: not saved; machine paths in the outputs: {problems}, errors: {errors}")
    nbformat.write(notebook, path)
    return seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, default=NOTEBOOKS)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help=f"the workshop's images (TRAIN/, VAL/, TEST/); default {DEFAULT_DATA}")
    args = parser.parse_args(argv)
    data = Path(os.path.abspath(args.data))       # not resolve(): keep a symlinked folder's own path
    if not ((data / "TRAIN").is_dir() and (data / "VAL").is_dir()):
        parser.error(f"--data {args.data}: no TRAIN/ and VAL/ there; the committed workshop notebook "
                     "is run on the real images")
    for path in args.notebooks:
        path = path.resolve()
        seconds = execute(path, data)
        print(f"{path.relative_to(ROOT)}: executed in {seconds:.0f} s, saved ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
