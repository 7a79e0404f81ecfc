#!/usr/bin/env bash
# Mutation testing of the learner's core files (issue 15). A developer's tool: the test suite
# never runs it, and mutmut is not a dependency of minidl. See tests/README.md.
#
#   python -m venv /tmp/mutenv --system-site-packages && /tmp/mutenv/bin/pip install mutmut
#   bash tests/mutation/run_mutation.sh [WORKDIR] [GIT_REF]
#
# It exports GIT_REF (default HEAD) of this repository into WORKDIR (default
# /tmp/minidl_mutation, emptied first) -- mutmut rewrites the files it mutates, so it never
# runs in the working tree --, runs mutmut there on the reference kernel path, and prints the
# score per file (tests/mutation/score.py). Survivors: `cd WORKDIR && $MUTMUT show NAME`.
# MUTMUT=, MAX_CHILDREN= (default 2) and WITHOUT= (test files to leave out) change the defaults.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)          # the configuration and score.py are taken from here
REPO=$(git -C "$HERE" rev-parse --show-toplevel)
WORK=${1:-/tmp/minidl_mutation}
REF=${2:-HEAD}
MUTMUT=${MUTMUT:-/tmp/mutenv/bin/mutmut}
PYTHON=${PYTHON:-$(dirname "$MUTMUT")/python}

rm -rf "$WORK"
mkdir -p "$WORK"
git -C "$REPO" archive "$REF" | tar -x -C "$WORK"
cd "$WORK"
git -C "$REPO" rev-parse "$REF" > mutation_commit.txt
# WITHOUT="tests/test_mutants_*.py": measure the commit without some test files (what they add)
if [ -n "${WITHOUT:-}" ]; then
    # shellcheck disable=SC2086
    rm -f $WITHOUT
fi

# setup.cfg = mutmut.cfg + the covering tests: covering_tests.txt, the tests written against
# mutants (tests/test_mutants_*.py) and the signature audit, when the commit has them.
{
    cat "$HERE/mutmut.cfg"
    echo "pytest_add_cli_args_test_selection ="
    for listed in $(grep -v '^#' "$HERE/covering_tests.txt"); do
        if [ -f "$listed" ]; then echo "    $listed"; fi      # older commits lack newer files
    done
    for extra in tests/test_mutants_*.py tests/test_signature_audit.py; do
        if [ -f "$extra" ]; then echo "    $extra"; fi
    done
} > setup.cfg

# The reference path: the kernels under minidl/kernels/reference/ are mutated, and the Numba
# engine (the default path) would never call them. Tests that take the kernel_path fixture
# still run on both paths.
export MINIDL_KERNELS=reference
# mutmut forks each mutant's test process from its main process, which has already run the
# tests; Numba's default threading layer here (GNU OpenMP) then kills the child with SIGTERM
# ("fork() called from a process already using GNU OpenMP") as soon as a test takes the Numba
# path, and mutmut reports 'suspicious'. The workqueue layer survives a fork.
export NUMBA_THREADING_LAYER=workqueue
"$MUTMUT" run --max-children "${MAX_CHILDREN:-2}" > mutmut_run.log 2>&1 || {
    tail -40 mutmut_run.log; exit 1; }
"$MUTMUT" results --all true > mutmut_results.txt
"$PYTHON" "$HERE/score.py" mutmut_results.txt "$HERE/equivalent.txt"
