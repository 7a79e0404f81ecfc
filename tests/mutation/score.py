"""Mutation score per file from ``mutmut results --all true`` (see run_mutation.sh).

Usage: python tests/mutation/score.py mutmut_results.txt [equivalent.txt]

Prints one row per mutated file: total mutants, killed, survived, not covered by any selected
test ("no tests"), timeouts and suspicious (slow) ones, and the score killed / total.
When ``equivalent.txt`` (tests/mutation/equivalent.txt: one mutant name per line, then ' # '
and why it cannot change behaviour) is given, it also prints the score over the mutants that
change behaviour -- killed / (total - equivalent) -- and lists survivors not yet explained.
A timeout counts as killed (the mutant made a test hang: a test caught it), as mutmut does.
"""
import collections
import re
import sys

LINE = re.compile(r"^\s*(?P<name>minidl\.[^:]+):\s*(?P<status>.+?)\s*$")
KILLED = {"killed", "timeout", "segfault", "caught by type check"}


def module_file(mutant_name):
    """'minidl.layers.dense.xǁDenseǁbuild__mutmut_3' -> 'minidl/layers/dense.py'."""
    module = re.split(r"\.(?:xǁ|x_)", mutant_name, maxsplit=1)[0]
    return module.replace(".", "/") + ".py"


def read_results(path):
    results = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            match = LINE.match(line)
            if match:
                results[match["name"]] = match["status"]
    return results


def read_equivalent(path):
    equivalent = {}
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            line = line.strip()
            if line and not line.startswith("#"):
                name, _, reason = line.partition(" # ")
                equivalent[name.strip()] = reason.strip()
    return equivalent


def main(results_path, equivalent_path=None):
    results = read_results(results_path)
    equivalent = read_equivalent(equivalent_path) if equivalent_path else {}
    per_file = collections.defaultdict(collections.Counter)
    unexplained = []
    for name, status in sorted(results.items()):
        counts = per_file[module_file(name)]
        counts["total"] += 1
        counts[status] += 1
        if status in KILLED:
            counts["killed+"] += 1
        elif name in equivalent:
            counts["equivalent"] += 1
        else:
            unexplained.append((name, status))
    header = (f"{'file':40s} {'total':>5s} {'killed':>6s} {'surv.':>5s} {'no test':>7s} {'t/o':>4s} "
              f"{'susp.':>5s} {'score':>6s} {'equiv.':>6s} {'behaviour-changing killed':>26s}")
    print(header)
    grand = collections.Counter()
    for path in sorted(per_file):
        counts = per_file[path]
        grand.update(counts)
        print(row(path, counts))
    print(row("all files", grand))
    for name in set(equivalent) - set(results):
        print(f"note: {name} is listed as equivalent but mutmut made no such mutant", file=sys.stderr)
    if unexplained:
        print(f"\n{len(unexplained)} mutants neither killed nor listed as equivalent:")
        for name, status in unexplained:
            print(f"  {name}: {status}")


def row(path, counts):
    total, killed = counts["total"], counts["killed+"]
    behavioural = total - counts["equivalent"]
    return (f"{path:40s} {total:5d} {killed:6d} {counts['survived']:5d} {counts['no tests']:7d} "
            f"{counts['timeout']:4d} {counts['suspicious']:5d} {100 * killed / max(total, 1):5.1f}% "
            f"{counts['equivalent']:6d} {killed:>12d}/{behavioural:<5d} {100 * killed / max(behavioural, 1):5.1f}%")


if __name__ == "__main__":
    main(*sys.argv[1:])
