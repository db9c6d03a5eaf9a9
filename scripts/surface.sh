#!/usr/bin/env bash
# The public surface at each library crate's root: how many names a user can reach as
# `crate::Name` — every `pub` item, every `pub use` name (globs expanded), every `pub mod` (a
# module counts as one), documented or `#[doc(hidden)]`, with every cargo feature on. Items under
# `#[cfg(fuzzing)]`, `#[cfg(test)]` or `#[cfg(doctest)]` are not in a user's build and not counted.
# Usage: scripts/surface.sh [--list] [--max N]
#   --list   print the names too
#   --max N  exit 1 if a crate has more than N names (issue 25 asks for at most 30)
# Stable toolchain only: a small reader of the `lib.rs` files, not rustdoc's JSON.
set -euo pipefail
cd "$(dirname "$0")/.."
exec python3 - "$@" <<'PY'
import os, re, sys

CRATES = [
    ("token-core", "crates/token-core/src"),
    ("token-store", "crates/token-store/src"),
    ("token-audit", "crates/token-audit/src"),
    ("token-rotate", "crates/token-rotate/src"),
    ("token-scan", "crates/token-scan/src"),
    ("token-http", "crates/token-http/src"),
    ("token-oidc", "crates/token-oidc/src"),
    ("tokenward-tower", "crates/tokenward-tower/src"),
    ("tokenward", "src"),
]
SKIP_CFG = re.compile(r"#\[cfg\((fuzzing|test|doctest)\)\]")

def strip_comments(src):
    out, i, n = [], 0, len(src)
    while i < n:
        if src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            j = src.find("*/", i)
            i = n if j < 0 else j + 2
        elif src[i] == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append('""'); i = j + 1
        elif src.startswith("r#\"", i):
            j = src.find("\"#", i + 3)
            out.append('""'); i = j + 2
        else:
            out.append(src[i]); i += 1
    return "".join(out)

def block_end(s, i):
    """s[i] == '{': index just past the matching '}'."""
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "{": depth += 1
        elif s[j] == "}":
            depth -= 1
            if depth == 0: return j + 1
    return len(s)

def items(s):
    """Top-level items of a module body: (attributes, text) pairs."""
    out, i, n, attrs = [], 0, len(s), []
    while i < n:
        if s[i].isspace() or s[i] == ";": i += 1; continue
        if s.startswith("#!", i) or s.startswith("#[", i):
            j = s.find("[", i); depth = 0
            for k in range(j, n):
                if s[k] == "[": depth += 1
                elif s[k] == "]":
                    depth -= 1
                    if depth == 0: break
            attrs.append(s[i:k + 1]); i = k + 1; continue
        # an item runs to a ';' at depth 0 or to the end of its first '{…}' block
        j = i
        while j < n and s[j] not in ";{": j += 1
        if j < n and s[j] == "{":
            end = block_end(s, j)
            # `pub use a::{…};` — the braces are a use tree, the item ends at ';'
            if re.match(r"(pub\s+)?use\b", s[i:j].strip()):
                end = s.find(";", end) + 1
            elif re.match(r".*\b(struct|enum|union)\b[^(]*$", s[i:j], re.S) is None and s[end:end + 1] == ";":
                end += 1
        else:
            end = j + 1
        out.append((attrs, s[i:end])); attrs = []; i = end
    return out

def use_names(tree, prefix, resolve):
    tree = tree.strip()
    if tree.endswith("}") and "{" in tree:
        k = tree.index("{")
        head, body = tree[:k].rstrip(":").strip(), tree[k + 1:-1]
        parts, depth, cur = [], 0, ""
        for c in body:
            if c == "," and depth == 0: parts.append(cur); cur = ""; continue
            depth += c == "{"; depth -= c == "}"; cur += c
        parts.append(cur)
        names = []
        for p in parts:
            if p.strip(): names += use_names(p, prefix + ([head] if head else []), resolve)
        return names
    m = re.match(r"(.*?)\s+as\s+(\w+)$", tree, re.S)
    if m: return [m.group(2)]
    path = prefix + [p for p in tree.split("::") if p]
    if path[-1] == "*": return resolve(path[:-1])
    if path[-1] == "self": return [path[-2]]
    return [path[-1]]

ITEM = re.compile(r"pub\s+(?:(?:async|unsafe|const|extern\s+\"\")\s+)*(fn|struct|enum|union|trait|type|const|static|mod)\s+(?:mut\s+)?(\w+)")

def module_names(body, src_dir, modpath):
    """Public names of a module body; globs resolved against its inline and file modules."""
    inline = {}
    for attrs, text in items(body):
        m = re.match(r"(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*\{", text)
        if m: inline[m.group(1)] = text[text.index("{") + 1:-1]
    def resolve(path):
        path = [p for p in path if p not in ("crate", "self")]
        if len(path) == 1 and path[0] in inline:
            return module_names(inline[path[0]], src_dir, modpath + path)
        for f in (os.path.join(src_dir, *modpath, *path) + ".rs", os.path.join(src_dir, *modpath, *path, "mod.rs")):
            if os.path.exists(f):
                return module_names(strip_comments(open(f).read()), src_dir, modpath + path)
        return ["<glob " + "::".join(path) + "::*>"]
    names = []
    for attrs, text in items(body):
        if any(SKIP_CFG.search(a) for a in attrs): continue
        t = text.strip()
        if not t.startswith("pub") or t.startswith("pub("): continue
        m = re.match(r"pub\s+use\s+(.*);$", t, re.S)
        if m: names += use_names(m.group(1), [], resolve); continue
        m = ITEM.match(t)
        if m: names.append(m.group(2))
    return names

args = sys.argv[1:]
listing = "--list" in args
limit = int(args[args.index("--max") + 1]) if "--max" in args else None
over = False
for name, src_dir in CRATES:
    body = strip_comments(open(os.path.join(src_dir, "lib.rs")).read())
    names = sorted(set(module_names(body, src_dir, [])))
    print(f"{name:<16} {len(names):>3}")
    if listing: print("    " + " ".join(names))
    if limit is not None and len(names) > limit: over = True
sys.exit(1 if over else 0)
PY
