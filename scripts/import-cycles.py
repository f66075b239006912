#!/usr/bin/env python3
"""Finds file-level import cycles among src/**/*.rs; exits 1 if there is one.

An edge A -> B means file A names an item of file B through a path that
starts at `crate::` (also `$crate::` in macros), `super::` or `self::`, in
a `use` or anywhere in the code. Comments, strings and `#[cfg(test)]`
modules are skipped (test code may reach anywhere). A parent naming a
child through its `mod x;` declaration or a relative `x::Item` path is not
an edge: that is how a module owns its children. A child naming its
parent's items (`super::Item`) is. Every strongly connected component of
more than one file is a cycle; each is printed with the lines that make it.

Usage: scripts/import-cycles.py [SRC_DIR]   (default: src)
Needs only python3's standard library.
"""

import re
import sys
from pathlib import Path

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip(text):
    """The code with comments and string/char literals blanked out
    (newlines kept, so line numbers stay right)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    out.append("\n" if text[i] == "\n" else "")
                    i += 1
        elif (m := re.match(r'b?r(#*)"', text[i:])) and (i == 0 or not re.match(r"\w", text[i - 1])):
            end = '"' + m.group(1)
            j = text.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""' + "\n" * text.count("\n", i, j))
            i = j + 1
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^\\'])'", text[i:])):
            out.append("' '")
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def without_test_modules(code):
    """Blanks `#[cfg(test)] mod x { ... }` blocks, keeping newlines."""
    while m := re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", code):
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        code = code[: m.start()] + "\n" * code.count("\n", m.start(), j) + code[j:]
    return code


def module_of(path, src):
    """`src/a/b.rs` -> ('a', 'b'); `src/a/mod.rs` -> ('a',); lib.rs -> ()."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("mod", "lib"):
        parts.pop()
    return tuple(parts)


def expand_use(tree):
    """`a::{b, c::{d, self}}` -> ['a::b', 'a::c::d', 'a::c']."""
    tree = re.sub(r"\s+as\s+\w+", "", tree)
    tree = re.sub(r"\s+", "", tree)

    def split_top(s):
        parts, depth, cur = [], 0, ""
        for ch in s:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            cur += ch
        if cur:
            parts.append(cur)
        return parts

    def go(prefix, s):
        brace = s.find("{")
        if brace < 0:
            full = prefix + s
            return [full[: -len("::self")] if full.endswith("::self") else full]
        head, inner = s[:brace], s[brace + 1 : s.rfind("}")]
        return [p for part in split_top(inner) for p in go(prefix + head, part)]

    return go("", tree)


def main():
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "src")
    files = sorted(p for p in src.rglob("*.rs") if p.name != "main.rs")
    file_of = {}  # module path -> file
    for f in files:
        file_of[module_of(f, src)] = f
    edges = {}  # (from file, to file) -> [(line, text)]
    for f in files:
        raw = f.read_text(encoding="utf-8")
        code = without_test_modules(strip(raw))
        raw_lines = raw.splitlines()
        here = module_of(f, src)
        # Inline modules (`mod x { ... }`): track them so `super::` and
        # `self::` inside one resolve from it.
        spans = []  # (start, end, name)
        for m in re.finditer(r"\bmod\s+(" + IDENT + r")\s*\{", code):
            depth, j = 1, m.end()
            while j < len(code) and depth:
                depth += {"{": 1, "}": -1}.get(code[j], 0)
                j += 1
            spans.append((m.start(), j, m.group(1)))

        def module_at(pos):
            inner = [name for (a, b, name) in spans if a <= pos < b]
            return here + tuple(inner)

        refs = []  # (pos, path text)
        for m in re.finditer(r"\buse\s+([^;]+);", code):
            for p in expand_use(m.group(1)):
                refs.append((m.start(), p))
        code_no_use = re.sub(r"\buse\s+[^;]+;", lambda m: re.sub(r"[^\n]", " ", m.group(0)), code)
        for m in re.finditer(r"(?<![\w:])\$?(crate|super|self)((?:::" + IDENT + r")+)", code_no_use):
            refs.append((m.start(), m.group(0).lstrip("$")))
        for pos, p in refs:
            segs = [s for s in p.split("::") if s]
            if not segs or segs[0] not in ("crate", "super", "self"):
                continue
            base = module_at(pos)
            if segs[0] == "crate":
                mod, rest = (), segs[1:]
            else:
                mod, rest = base, segs
                while rest and rest[0] in ("super", "self"):
                    if rest[0] == "super":
                        mod = mod[:-1]
                    rest = rest[1:]
            # The longest prefix that is a file of its own.
            target = None
            for k in range(len(rest), -1, -1):
                cand = mod + tuple(rest[:k])
                if cand in file_of:
                    target = file_of[cand]
                    break
            if target is None or target == f:
                continue
            line = code.count("\n", 0, pos)
            where = edges.setdefault((f, target), [])
            if (line + 1, raw_lines[line].strip()) not in where:
                where.append((line + 1, raw_lines[line].strip()))

    graph = {f: sorted({b for (a, b) in edges if a == f}) for f in files}
    # Tarjan's strongly connected components (iterative).
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]
    for root in files:
        if root in index:
            continue
        work = [(root, iter(graph[root]))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter[0]
                    counter[0] += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(graph[w])))
                elif w in on:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    if not comps:
        print(f"import-cycles: no file-level import cycle among {len(files)} files under {src}/")
        return 0
    print(f"import-cycles: {len(comps)} file-level import cycle(s) under {src}/:")
    for comp in sorted(comps):
        print("\ncycle: " + " <-> ".join(str(f) for f in comp))
        members = set(comp)
        for (a, b), where in sorted(edges.items()):
            if a in members and b in members:
                for line, text in where:
                    print(f"  {a}:{line} -> {b}: {text}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
