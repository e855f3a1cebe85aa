#!/usr/bin/env python3
"""Module import cycles of a Rust crate: every `crate::…`, `super::…` and `self::…` path (use
lines and inline paths) and every path through a declared child module, resolved to the
longest known module; test modules ignored. Exits 1 and prints the cycles if there are any.

Usage: python3 crates/iam/scripts/import_cycles.py crates/iam/src [-v]"""
import os, re, sys
root = sys.argv[1]  # crates/iam/src
mods = {}
for dp, _, fs in os.walk(root):
    for f in fs:
        if not f.endswith('.rs'): continue
        rel = os.path.relpath(os.path.join(dp, f), root)[:-3].split(os.sep)
        if rel[-1] in ('mod', 'lib'): rel = rel[:-1]
        mods[tuple(rel)] = os.path.join(dp, f)
def strip_tests(src):
    i = src.find('#[cfg(test)]\nmod tests')
    return src if i < 0 else src[:i]
edges = {}
for m, path in mods.items():
    if m and m[-1] in ('golden_tests', 'testing'): continue
    src = strip_tests(open(path).read())
    src = re.sub(r'//.*', '', src)
    deps = set()
    # expand `use a::{b, c::{d}}` groups roughly: collect paths of the form X::Y::Z
    for mt in re.finditer(r'\b(crate|super|self)((?:::\w+)*)(?:::\{([^;]*)\}|::\*)?', src):
        head, tail, group = mt.group(1), mt.group(2), mt.group(3)
        parts = [x for x in tail.strip(':').split('::') if x]
        if not parts and group is None and not mt.group(0).endswith('*'):
            continue  # `pub(crate)`, a bare `super`
        if head == 'crate': base = []
        elif head == 'self': base = list(m)
        else:
            base = list(m[:-1])
            while parts and parts[0] == 'super':
                parts = parts[1:]; base = base[:-1]
        cand = base + parts
        names = [] if group else [cand]
        if group:
            for g in re.split(r'[,{]', group):
                g = g.strip().split('::')[0].strip('{} ')
                if g: names.append(cand + [g])
        for c in names:
            for k in range(len(c), -1, -1):
                if tuple(c[:k]) in mods:
                    t = tuple(c[:k]); break
            if t != m and not (len(t) > len(m) and t[:len(m)] == m and False):
                deps.add(t)
    # paths through a child module declared here (`mod x;` … `x::item`)
    for child in re.findall(r'^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;', src, re.M):
        t = m + (child,)
        if t in mods and t[-1] not in ('golden_tests', 'testing'):
            body = re.sub(r'^\s*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*;', '', src, flags=re.M)
            if re.search(r'(?<![:\w])' + child + r'::', body):
                deps.add(t)
    edges[m] = deps
# Tarjan SCC
idx, low, st, on, out, n = {}, {}, [], set(), [], [0]
def sc(v):
    idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
    for w in edges.get(v, ()):
        if w not in edges: continue
        if w not in idx: sc(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], idx[w])
    if low[v] == idx[v]:
        c = []
        while True:
            w = st.pop(); on.discard(w); c.append(w)
            if w == v: break
        if len(c) > 1: out.append(c)
sys.setrecursionlimit(10000)
for v in edges:
    if v not in idx: sc(v)
name = lambda t: '::'.join(t) or 'crate'
for c in out:
    print('cycle:', ', '.join(sorted(name(x) for x in c)))
    for a in c:
        print('   ', name(a), '->', ', '.join(sorted(name(b) for b in edges[a] if b in c)))
if '-v' in sys.argv:
    for a in sorted(edges): print(name(a), '->', ', '.join(sorted(name(b) for b in edges[a])))
sys.exit(1 if out else 0)
