"""The pprof report read by Go's own reader, `go tool pprof`, as a user reads it.

Asks for the top functions by cumulative time among the samples labelled `scope=<scope>`
(`-tagfocus`, the label filter a user types) and checks that `checksum` and `parse` are listed and
split as their measured CPU time did (within 5 points), and that `-tags` lists the scope.

    python3 tests/pprof_go.py FILE.pb.gz SCOPE CHECKSUM_CPU_PERCENT
"""

import re
import subprocess
import sys


def pprof(*args):
    done = subprocess.run(
        ["go", "tool", "pprof", *args], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        sys.exit(f"go tool pprof {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def main():
    file, scope, truth = sys.argv[1], sys.argv[2], float(sys.argv[3])
    tags = pprof("-tags", file)
    if scope not in tags or "task_group" not in tags:
        sys.exit(f"go tool pprof -tags does not list scope {scope!r}:\n{tags}")

    top = pprof("-top", "-cum", "-nodefraction=0", f"-tagfocus=scope={scope}", file)
    # "  flat  flat%   sum%        cum   cum%  name": the cumulative share is the fifth column.
    cum = {}
    for line in top.splitlines():
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[4].endswith("%"):
            name = fields[5].strip()
            short = re.split(r"::", name)[-1]
            if short in ("checksum", "parse") and short not in cum:
                cum[short] = float(fields[4].rstrip("%"))
    if set(cum) != {"checksum", "parse"}:
        sys.exit(f"go tool pprof -top does not list checksum and parse in {scope}:\n{top}")
    share = 100 * cum["checksum"] / (cum["checksum"] + cum["parse"])
    print(
        f"go tool pprof: {scope}: checksum {cum['checksum']} %, parse {cum['parse']} % cumulative;"
        f" checksum {share:.1f} % of the two, {truth} % of their CPU time"
    )
    if abs(share - truth) > 5:
        sys.exit(f"go tool pprof: checksum's share {share:.1f} % is not within 5 points of {truth} %")


main()
