"""Regenerate tests/trt_surface.py: the declared Python surface of TensorRT's bindings.

Not a test. Run it where a clone of github.com/NVIDIA/TensorRT is at hand:

    python tests/trt_surface_extract.py /path/to/TensorRT/.git > tests/trt_surface.py

It reads the pybind11 sources at each tag in VERSIONS (`git show TAG:path`, no checkout) and
records, for the classes and enums the TensorRT backend can touch, every name they bind with
its source line, the keyword names and defaults of each overload, and the enum values from
the C++ headers. A text scan, not a C++ parser: it knows the bindings' own idioms
(`.def("name", fn, "arg"_a = default, Doc)`, `py::class_<T, ...>(m, "Name")`,
`py::enum_<T>(scope, "Name").value("N", T::kN)`), which is all these files use.
"""

from __future__ import annotations

import pprint
import re
import subprocess
import sys

VERSIONS = {"10.16": "v10.16", "11.1": "v11.1"}
BINDING_FILES = ("python/src/infer/pyCore.cpp", "python/src/infer/pyGraph.cpp",
                 "python/src/infer/pyFoundationalTypes.cpp", "python/src/parsers/pyOnnx.cpp")
HEADERS = ("include/NvInferRuntimeBase.h", "include/NvInferRuntime.h", "include/NvInfer.h")
INIT_PY = "python/packaging/bindings_wheel/tensorrt/__init__.py"

CLASSES = ("ILogger", "Logger", "IProgressMonitor", "Builder", "IBuilderConfig", "IOptimizationProfile",
           "INetworkDefinition", "ITensor", "ILayer", "OnnxParser", "ParserError", "Runtime", "ICudaEngine",
           "IExecutionContext", "IHostMemory", "Dims")
ENUMS = ("BuilderFlag", "NetworkDefinitionCreationFlag", "MemoryPoolType", "TensorIOMode", "DataType",
         "LayerType", "Severity", "ExecutionContextAllocationStrategy", "TensorLocation", "ProfilingVerbosity")


def git_show(gitdir: str, ref: str, path: str) -> str:
    return subprocess.run(["git", "-C", gitdir, "show", f"{ref}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def strip_preprocessor(text: str) -> str:
    # keep line numbers: blank the directive lines instead of deleting them
    return "\n".join("" if line.lstrip().startswith("#") else line for line in text.split("\n"))


def matching(text: str, start: int) -> int:
    """Index just past the bracket closing the one at text[start], skipping strings and comments."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    stack, i = [pairs[text[start]]], start + 1
    while stack:
        c = text[i]
        if text.startswith('R"trtdoc(', i):
            i = text.index(')trtdoc"', i) + 8
            continue
        if c == '"':
            i += 1
            while text[i] != '"':
                i += 2 if text[i] == "\\" else 1
        elif c == "'":
            i = text.index("'", i + 2 if text[i + 1] == "\\" else i + 1)
        elif text.startswith("//", i):
            i = text.index("\n", i)
        elif c in pairs:
            stack.append(pairs[c])
        elif c == stack[-1]:
            stack.pop()
        i += 1
    return i


def split_top(args: str) -> list[str]:
    parts, depth, cur, i = [], 0, "", 0
    while i < len(args):
        c = args[i]
        if c in "([{<":
            depth += 1
        elif c in ")]}>":
            depth -= 1
        elif c == '"':
            j = i + 1
            while args[j] != '"':
                j += 2 if args[j] == "\\" else 1
            cur += args[i:j + 1]
            i = j + 1
            continue
        if c == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += c
        i += 1
    if cur.strip():
        parts.append(cur.strip())
    return parts


ARG = re.compile(r'^(?:"(\w+)"_a|py::arg\("(\w+)"\))\s*(?:=\s*(.+))?$', re.S)


def chain_calls(text: str, pos: int):
    """Yield (kind, args_text, offset) for each `.def...(` in the call chain starting at pos."""
    call = re.compile(r"(?:\s|//[^\n]*)*\.(\w+)\s*\(")  # comments may sit between the calls
    while True:
        m = call.match(text, pos)
        if not m:
            return
        end = matching(text, m.end() - 1)
        yield m.group(1), text[m.end():end - 1], m.start(1)
        pos = end


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def parse_bindings(files: dict[str, str]):
    classes, enums, attrs, cpp_to_py = {}, {}, {}, {}
    for path, raw in files.items():
        text = strip_preprocessor(raw)
        decls = []
        for m in re.finditer(r'py::class_<(.*?)>\s*(\w+)?\s*[({]\s*(\w+)\s*,\s*"(\w+)"', text, re.S):
            targs = [t.strip() for t in split_top(m.group(1))]
            cpp_to_py[targs[0]] = m.group(4)
            open_at = m.end(0) - len(m.group(4)) - 2 - len(m.group(3))
            open_at = text.rindex("{" if m.group(2) else "(", 0, open_at + 1)
            decls.append((m.group(4), targs, matching(text, open_at), m.group(2), m.start()))
        for name, targs, after, var, start in decls:
            entry = classes.setdefault(name, {"src": f"{path}:{line_of(text, start)}", "cpp_bases": targs[1:],
                                              "methods": {}, "properties": {}})
            positions = [after] + ([v.end() for v in re.finditer(rf"\b{var}\b(?=\s*\.def)", text)] if var else [])
            for p in positions:
                for kind, args, off in chain_calls(text, p):
                    parts = split_top(args)
                    where = line_of(text, off)
                    if kind in ("def", "def_static"):
                        head = parts[0]
                        mname = "__init__" if head.startswith("py::init") else head.strip('"')
                        sig = []
                        for a in parts[1:]:
                            am = ARG.match(a)
                            if am:
                                sig.append([am.group(1) or am.group(2), am.group(3) is not None])
                        if head.startswith("py::init<") and not sig:
                            n = len([t for t in split_top(head[len("py::init<"):head.rindex(">")]) if t])
                            sig = [[f"arg{i}", False] for i in range(n)]
                        entry["methods"].setdefault(mname, {"line": where, "overloads": []})["overloads"].append(sig)
                    elif kind.startswith("def_property") or kind.startswith("def_read"):
                        pname = parts[0].strip('"')
                        writable = (kind == "def_readwrite" or
                                    (kind in ("def_property", "def_property_static") and len(parts) > 2
                                     and parts[2] != "nullptr"))
                        entry["properties"][pname] = {"line": where, "writable": writable}
                    elif kind == "def_buffer":
                        entry["methods"]["__buffer__"] = {"line": where, "overloads": [[]]}
        for m in re.finditer(r'py::enum_<([\w:]+)>\s*\(\s*(\w+)\s*,\s*"(\w+)"', text):
            open_at = text.index("(", m.start() + len("py::enum_<"))
            after = matching(text, open_at)
            members = {}
            exported = False
            for kind, args, off in chain_calls(text, after):
                if kind == "value":
                    parts = split_top(args)
                    members[parts[0].strip('"')] = {"line": line_of(text, off), "cpp": parts[1].split("::")[-1]}
                elif kind == "export_values":
                    exported = True
            enums[m.group(3)] = {"src": f"{path}:{line_of(text, m.start())}", "cpp_type": m.group(1).split("::")[-1],
                                 "scope": m.group(2), "members": members, "export_values": exported}
        for m in re.finditer(r'm\.attr\("(\w+)"\)\s*=\s*(\w+)::(\w+);', text):
            attrs[m.group(1)] = {"src": f"{path}:{line_of(text, m.start())}", "enum": m.group(2), "cpp": m.group(3)}
    return classes, enums, attrs, cpp_to_py


def parse_enum_values(headers: dict[str, str]) -> dict[str, dict[str, int]]:
    values: dict[str, dict[str, int]] = {}
    for raw in headers.values():
        text = re.sub(r"//[^\n]*", "", raw)
        for m in re.finditer(r"enum\s+class\s+(\w+)\s*:\s*[\w:]+\s*\{(.*?)\};", text, re.S):
            if m.group(1) in values:
                continue
            table, nxt = {}, 0
            for item in split_top(m.group(2)):
                im = re.match(r"(k\w+)(?:\s+TRT_DEPRECATED_ENUM)?\s*(?:=\s*(.+))?$", item.strip(), re.S)
                if not im:
                    continue
                if im.group(2) is not None:
                    expr = im.group(2).strip()
                    nxt = table[expr] if expr in table else int(expr, 0)
                table[im.group(1)] = nxt
                nxt += 1
            values[m.group(1)] = table
    return values


def surface(gitdir: str, ref: str) -> dict:
    commit = subprocess.run(["git", "-C", gitdir, "rev-list", "-n1", ref], check=True, capture_output=True,
                            text=True).stdout.strip()
    classes, enums, attrs, cpp_to_py = parse_bindings({p: git_show(gitdir, ref, p) for p in BINDING_FILES})
    values = parse_enum_values({p: git_show(gitdir, ref, p) for p in HEADERS})
    init_py = git_show(gitdir, ref, INIT_PY)
    version_line = next(i for i, line in enumerate(init_py.split("\n"), 1) if line.startswith("__version__"))
    out_classes = {}
    for name in CLASSES:
        c = classes[name]
        out_classes[name] = {
            "src": c["src"], "bases": [cpp_to_py[b] for b in c["cpp_bases"] if cpp_to_py.get(b, name) != name],
            # method: [line, overloads]; an overload lists keyword names, "name=" where it has a default
            "methods": {k: [v["line"], [[a + ("=" if d else "") for a, d in o] for o in v["overloads"]]]
                        for k, v in c["methods"].items()},
            "properties": {k: [v["line"], "rw" if v["writable"] else "r"] for k, v in c["properties"].items()}}
    out_enums = {}
    for name in ENUMS:
        e = enums[name]
        table = values[e["cpp_type"]]
        out_enums[name] = {"src": e["src"], "scope": "m" if e["scope"] == "m" else "ILogger",
                           "export_values": e["export_values"],
                           "members": {k: [v["line"], table[v["cpp"]]] for k, v in e["members"].items()}}
    out_attrs = {k: [v["src"], v["cpp"]] for k, v in attrs.items() if v["enum"] == "DataType"}
    return {"ref": ref, "commit": commit, "version_src": f"{INIT_PY}:{version_line}",
            "classes": out_classes, "enums": out_enums, "module_attrs": out_attrs}


def main(gitdir: str) -> None:
    print('"""The declared Python surface of TensorRT\'s bindings, per version (generated; do not edit).\n')
    print("Written by tests/trt_surface_extract.py from github.com/NVIDIA/TensorRT. Every class, method,")
    print("property and enum member carries the line of the binding that declares it (in the file its class")
    print("or enum names under 'src'). methods: name -> [line, overloads], each overload its keyword names,")
    print("'name=' where that one has a default; properties: name -> [line, 'r' or 'rw']; enum members:")
    print("name -> [line, value], the value from include/*.h; module_attrs: name -> [src, DataType member].")
    print('"""\n')
    print("SURFACES = " + pprint.pformat({v: surface(gitdir, ref) for v, ref in VERSIONS.items()},
                                         width=118, sort_dicts=True, compact=True))


if __name__ == "__main__":
    main(sys.argv[1])
