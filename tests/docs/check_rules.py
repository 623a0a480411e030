#!/usr/bin/env python3
"""Every rule number the project cites is defined in docs/.

docs/README.md holds one table row per rule: `| S9 | subject | [page](link) |`.
This check fails when
  - a source, test, script or documentation file cites a rule (A3, S9, P7...)
    that the table does not list;
  - a rule of the table links to a page that exists but does not define it
    (no line of that page opens with the rule: "## S9. Query", "- **S9** ...");
  - a file still cites the internal contract document (the word CONTRACT
    before a rule number) instead of docs/.
Pages of the table that do not exist yet are listed, not failed.

usage: check_rules.py SOURCE_DIR
"""
import os
import re
import subprocess
import sys

RULE = re.compile(r"(?<![-\w])([ASPTRWHC])(\d{1,2})\b")
RANGE = re.compile(r"(?<![-\w])([ASPTRWHC])(\d{1,2})\s*-\s*\1?(\d{1,2})\b")
ROW = re.compile(r"^\|\s*([ASPTRWHC]\d{1,2})\s*\|[^|]*\|\s*\[[^\]]*\]\(([^)#]+)(#[^)]*)?\)\s*\|\s*$")
OLD = re.compile(r"CONTRACT\s+[ASPTRWHC]\d|CONTRACT\.md")
TEXT = (".c", ".h", ".py", ".md", ".txt", ".sh", ".in", ".json", "")


def tracked_files(root):
    out = subprocess.run(["git", "-C", root, "ls-files"], capture_output=True, text=True)
    if out.returncode != 0:  # not a git checkout: walk the tree
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if x not in (".git", "build")]
            for f in files:
                yield os.path.relpath(os.path.join(d, f), root)
        return
    yield from out.stdout.split()


def cited(text):
    rules = {m.group(1) + m.group(2) for m in RULE.finditer(text)}
    for m in RANGE.finditer(text):  # "S1-S12", "T1-T5": every rule in between
        lo, hi = int(m.group(2)), int(m.group(3))
        if lo < hi <= lo + 20:
            rules.update(f"{m.group(1)}{n}" for n in range(lo, hi + 1))
    return rules


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    index = os.path.join(root, "docs", "README.md")
    try:
        lines = open(index, encoding="utf-8").read().splitlines()
    except OSError as e:
        print(f"{index}: cannot read the rule table: {e.strerror}", file=sys.stderr)
        return 1
    table = {}
    for line in lines:
        m = ROW.match(line)
        if m:
            table[m.group(1)] = m.group(2)
    if not table:
        print(f"{index}: no rule table found", file=sys.stderr)
        return 1

    errors, missing_pages = [], set()
    for rule, page in sorted(table.items()):
        path = os.path.join(root, "docs", page)
        if not os.path.exists(path):
            missing_pages.add(page)
            continue
        text = open(path, encoding="utf-8").read()
        # Defined: the rule opens a line (a heading, a list item, a table row,
        # bold or not), as "## S9. Query" or "- **S9** (query): ...".
        if not re.search(rf"^[#|*\s-]*{rule}\b", text, re.M):
            errors.append(f"docs/{page}: does not define {rule} (docs/README.md says it does)")

    for rel in tracked_files(root):
        if not rel.endswith(TEXT) or rel.startswith("tests/fuzz/corpus/"):
            continue
        try:
            text = open(os.path.join(root, rel), encoding="utf-8").read()
        except (OSError, UnicodeDecodeError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if OLD.search(line):
                errors.append(f"{rel}:{n}: cites the internal contract; cite the rule of docs/ instead")
        for rule in sorted(cited(text) - table.keys()):
            errors.append(f"{rel}: cites {rule}, which docs/README.md does not list")

    for page in sorted(missing_pages):
        print(f"note: docs/{page} does not exist yet", file=sys.stderr)
    for e in errors:
        print(e, file=sys.stderr)
    print(f"{len(table)} rules, {len(errors)} problems")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
