#!/usr/bin/env python3
"""The tree's layering, checked against the sources and the built objects.

1. No C file sits directly in runtime/: each belongs to a concern's folder.
2. Each folder includes only its own headers and those of the layers below
   it (LAYERS), so the layering the libraries' links set (runtime/
   CMakeLists.txt) holds for includes too.
3. No include circle: the graph whose nodes are modules (a header and the
   source of the same name) and whose edges are #include "..." has no cycle.
4. No circle between the files of the build: in the objects the build made,
   file A depends on file B when A uses a symbol B defines (nm); that graph
   has no cycle either, which catches what includes cannot see (a header
   whose functions some other file defines, as main.c once defined the
   commands' helpers).

Usage: check_layout.py REPO_ROOT BUILD_DIR"""
import collections
import glob
import os
import re
import subprocess
import sys

# folder -> the folders whose headers it may include (besides its own)
LAYERS = {
    "runtime/base": [],
    "kernels": ["runtime/base"],
    "kernels/cuda": ["runtime/base", "kernels"],
    "runtime/topo": ["runtime/base"],
    "runtime/contract": ["runtime/base", "runtime/topo"],
    "runtime/net": ["runtime/base", "runtime/topo", "runtime/contract"],
    "runtime/gpu": ["runtime/base", "kernels", "kernels/cuda"],
    "runtime/train": ["runtime/base", "runtime/topo", "runtime/contract", "runtime/net", "runtime/gpu", "kernels"],
    "runtime/bench": ["runtime/base", "runtime/topo", "runtime/contract", "runtime/net", "runtime/gpu", "kernels",
                      "runtime/train"],
    "runtime/nccl_net": ["runtime/base", "runtime/topo", "runtime/contract", "runtime/net"],
    "launcher": ["runtime/base", "runtime/topo", "runtime/contract", "runtime/net", "runtime/gpu", "kernels",
                 "runtime/train", "runtime/bench"],
}
SOURCE = re.compile(r"\.(c|h|cu|cuh)$")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def cycles(graph):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def source_files(root):
    for folder in LAYERS:
        for path in sorted(glob.glob(os.path.join(root, folder, "*"))):
            if SOURCE.search(path):
                yield folder, path


def check_sources(root, problems):
    for path in glob.glob(os.path.join(root, "runtime", "*.c")):
        problems.append(f"{os.path.relpath(path, root)}: a C file directly in runtime/; it belongs in a concern's folder")
    header_folder = {}
    for folder, path in source_files(root):
        if path.endswith((".h", ".cuh")):
            name = os.path.basename(path)
            if name in header_folder:
                problems.append(f"header {name} is in both {header_folder[name]} and {folder}")
            header_folder[name] = folder
    graph = collections.defaultdict(set)
    for folder, path in source_files(root):
        module = os.path.join(folder, re.sub(SOURCE, "", os.path.basename(path)))
        graph[module]
        for name in INCLUDE.findall(open(path).read()):
            target = header_folder.get(os.path.basename(name))
            if target is None:
                continue  # a header of a library outside the tree
            if target != folder and target not in LAYERS[folder]:
                problems.append(f"{os.path.relpath(path, root)} includes {name} from {target}, a layer above "
                                f"{folder} (it may use {', '.join(LAYERS[folder]) or 'nothing else'})")
            other = os.path.join(target, re.sub(SOURCE, "", os.path.basename(name)))
            if other != module:
                graph[module].add(other)
    for component in cycles(graph):
        problems.append("include circle: " + " -> ".join(component))
    return len(graph)


def check_objects(root, build, problems):
    objects = {}
    for path in glob.glob(os.path.join(build, "**", "*.o"), recursive=True):
        source = re.search(r"CMakeFiles/[^/]+\.dir/(.+)\.o$", path)
        if source and not source.group(1).startswith(("tests", "bench")) and "/tests/" not in path:
            objects[os.path.normpath(source.group(1))] = path
    if not objects:
        problems.append(f"no objects under {build}: build first")
        return 0
    defines, uses = {}, {}
    for name, path in objects.items():
        out = subprocess.run(["nm", "--defined-only", "-g", path], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "TDBRVW":
                defines.setdefault(parts[2], set()).add(name)
        out = subprocess.run(["nm", "--undefined-only", path], capture_output=True, text=True, check=True).stdout
        uses[name] = {line.split()[-1] for line in out.splitlines() if line.strip()}
    graph = {name: {d for sym in syms for d in defines.get(sym, ()) if d != name} for name, syms in uses.items()}
    for component in cycles(graph):
        problems.append("circle between built files: " + " -> ".join(component))
    return len(objects)


def main():
    root, build = sys.argv[1], sys.argv[2]
    problems = []
    modules = check_sources(root, problems)
    objects = check_objects(root, build, problems)
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        return 1
    print(f"layout: {modules} modules in {len(LAYERS)} folders, {objects} built files: layers kept, no circles")
    return 0


if __name__ == "__main__":
    sys.exit(main())
