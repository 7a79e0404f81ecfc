"""Carry tests/mutation/equivalent.txt over to an older run: mutant names change when a function
changes, so the equivalent mutants of the run in AFTER_DIR are matched to the mutants of the run
in BEFORE_DIR that make the same textual change in the same function.

Usage: python tests/mutation/map_equivalents.py AFTER_DIR BEFORE_DIR tests/mutation/equivalent.txt OUT
then:  python tests/mutation/score.py BEFORE_DIR/mutmut_results.txt OUT
"""
import os
import re
import subprocess
import sys

after_dir, before_dir, equiv_path, out_path = sys.argv[1:5]

MUTMUT = os.environ.get("MUTMUT", "/tmp/mutenv/bin/mutmut")


def diff_key(directory, name):
    text = subprocess.run([MUTMUT, "show", name], cwd=directory, capture_output=True, text=True).stdout
    changed = [l for l in text.splitlines() if (l.startswith("-") or l.startswith("+")) and not l.startswith(("---", "+++"))]
    function = re.sub(r"__mutmut_\d+$", "", name)
    return function, tuple(changed)


equiv = {}
for line in open(equiv_path, encoding="utf-8"):
    line = line.strip()
    if line and not line.startswith("#"):
        name, _, reason = line.partition(" # ")
        equiv[name.strip()] = reason
keys = {diff_key(after_dir, n): (n, r) for n, r in equiv.items()}
results = {}
for line in open(f"{before_dir}/mutmut_results.txt", encoding="utf-8"):
    m = re.match(r"^\s*(minidl\.[^:]+):\s*(.+?)\s*$", line)
    if m and m.group(2) not in ("killed",):
        results[m.group(1)] = m.group(2)
with open(out_path, "w", encoding="utf-8") as out:
    for name in sorted(results):
        key = diff_key(before_dir, name)
        if key in keys:
            out.write(f"{name} # {keys[key][1]}\n")
print(len(keys), "equivalents at AFTER;", sum(1 for _ in open(out_path)), "matched in BEFORE")
