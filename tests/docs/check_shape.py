#!/usr/bin/env python3
"""Every public entry point that runs a call record has one shape.

A public function of lib/src (extern, named hostmem_..., not hostmem__...)
that opens a call record is exactly three statements:

    hostmem__call c;
    hostmem__call_start(&c, ...);
    return hostmem__call_finish(&c, <worker>(&c, ...));

so that every exit of the call goes through its finish by construction: the
argument checks, the locks and the cleanup live in the worker.  The write
watch calls keep a record of their own (watch_call, watch_start,
watch_finish) and take the same shape.  This check fails, naming the file and
the function, when such a function has another statement, a second finish
or any other return.

usage: check_shape.py SOURCE_DIR
"""
import os
import re
import sys

# A record: its type, the call that opens it, the call that closes it.
RECORDS = (
    ("hostmem__call", "hostmem__call_start", "hostmem__call_finish"),
    ("watch_call", "watch_start", "watch_finish"),
)


def strip(text):
    """The C text with comments, string and character literals and
    preprocessor lines blanked (newlines kept, for line numbers)."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + c)
            i = j + 1
        elif c == "#" and (i == 0 or text[i - 1] == "\n"):
            j = i
            while True:  # a directive runs on across backslash-newlines
                k = text.find("\n", j)
                if k < 0:
                    k = n
                    break
                if text[k - 1] != "\\":
                    break
                j = k + 1
            out.append(re.sub(r"[^\n]", " ", text[i:k]))
            i = k
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(code):
    """(name, header, body, line) of every top-level function definition."""
    depth, start, header_from = 0, 0, 0
    for i, c in enumerate(code):
        if c == "{":
            if depth == 0:
                start = i
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                header = code[header_from:start]
                if ")" in header and "=" not in header.split("(")[0]:
                    name = re.findall(r"([A-Za-z_]\w*)\s*\($", header.split("(")[0].strip() + "(")
                    yield (name[0] if name else "", header.strip(), code[start + 1 : i],
                           code.count("\n", 0, start) + 1)
                header_from = i + 1
        elif c == ";" and depth == 0:
            header_from = i + 1


def statements(body):
    """The top-level statements of a body; a compound statement (if, for, a
    block) is one statement that contains braces."""
    out, depth, cur = [], 0, []
    for c in body:
        cur.append(c)
        if c in "({":
            depth += 1
        elif c in ")}":
            depth -= 1
            if c == "}" and depth == 0:
                out.append("".join(cur).strip())
                cur = []
        elif c == ";" and depth == 0:
            out.append("".join(cur).strip())
            cur = []
    rest = "".join(cur).strip()
    if rest:
        out.append(rest)
    return [" ".join(s.split()) for s in out if s and s != ";"]


def check_function(name, header, body):
    """The problems of one public function's body (empty: it has the shape)."""
    for rtype, opener, finisher in RECORDS:
        if not (re.search(r"\b%s\s*\(" % opener, body) or re.search(r"\b%s\s+\w+\s*[=;]" % rtype, body)):
            continue
        problems = []
        finishes = len(re.findall(r"\b%s\s*\(" % finisher, body))
        returns = len(re.findall(r"\breturn\b", body))
        if finishes != 1:
            problems.append("%d calls of %s (one)" % (finishes, finisher))
        if returns != 1:
            problems.append("%d returns (one: return %s(...))" % (returns, finisher))
        st = statements(body)
        want = (
            re.compile(r"^%s\s+\w+\s*(=[^;]*)?;$" % rtype),
            re.compile(r"^%s\s*\(&\w+,.*\);$" % opener),
            re.compile(r"^return %s\s*\(&\w+,.*\);$" % finisher),
        )
        if len(st) != 3 or not all(w.match(s) for w, s in zip(want, st)):
            problems.append("%d statements, not: %s c; %s(&c, ...); return %s(&c, worker(&c, ...))"
                            % (len(st), rtype, opener, finisher))
            extra = [s for s in st if not any(w.match(s) for w in want)]
            for s in extra[:3]:
                problems.append("  such as: %s" % (s if len(s) < 90 else s[:87] + "..."))
        return problems
    return []


def check_file(path):
    with open(path, encoding="utf-8") as f:
        code = strip(f.read())
    bad = []
    for name, header, body, line in functions(code):
        public = (name.startswith("hostmem_") and not name.startswith("hostmem__")
                  and not re.match(r"^\s*(static|inline)\b", header))
        if not public:
            # A record is closed for its caller only by a public entry point:
            # a helper that returns the finish is an entry point's body
            # (begin and finish belong together, in the entry point).
            for rtype, opener, finisher in RECORDS:
                if re.search(r"\breturn\s+%s\s*\(" % finisher, body):
                    bad.append("%s:%d: %s: returns %s: only a public entry point closes "
                               "its record" % (path, line, name, finisher))
            continue
        for p in check_function(name, header, body):
            bad.append("%s:%d: %s: %s" % (path, line, name, p))
    return bad


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: check_shape.py SOURCE_DIR\n")
        return 2
    src = os.path.join(sys.argv[1], "lib", "src")
    if not os.path.isdir(src):
        sys.stderr.write("check_shape.py: %s: no such directory\n" % src)
        return 2
    bad, seen = [], 0
    for f in sorted(os.listdir(src)):
        if f.endswith(".c"):
            seen += 1
            bad += check_file(os.path.join(src, f))
    if not seen:
        sys.stderr.write("check_shape.py: %s: no C file\n" % src)
        return 2
    for b in bad:
        print(b)
    if bad:
        print("check_shape.py: %d problem(s): public entry points must be "
              "begin, worker, finish (see lib/src/call.c)" % len(bad))
        return 1
    print("check_shape.py: every public entry point of %d files has the shape" % seen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
