"""The walls between gsmbridge's parts, read from the source with `ast` (nothing is imported).

docs/architecture.md draws the parts; this module is what keeps the drawing true.  Each rule names
a part (a package or module under gsmbridge/) and the parts it may, or must never, import.  Every
import counts, at module level or inside a function: a lazy import still couples two parts.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "gsmbridge"

# part -> parts it may import (besides itself).  A part not listed here is free (app, cli, config).
ALLOWED = {
    "gsmbridge.codec": set(),
    "gsmbridge.modem": {"gsmbridge.codec"},
    "gsmbridge.simulator": {"gsmbridge.codec", "gsmbridge.modem.errors"},
    "gsmbridge.store": {"gsmbridge.codec"},
    # the leaves every part may use: nothing of gsmbridge but, for the server, config's error
    "gsmbridge.safeurl": set(),
    "gsmbridge.backoff": set(),
    "gsmbridge.jsonlog": set(),
    "gsmbridge.metrics": set(),
    "gsmbridge.httpclient": set(),
    "gsmbridge.httpserver": {"gsmbridge.config"},
    # safeurl's requests side
    "gsmbridge.guardedhttp": {"gsmbridge.safeurl"},
}

# part -> parts it must never import, whatever else it does.
FORBIDDEN = {
    "gsmbridge.web": {"gsmbridge.modem", "gsmbridge.simulator", "gsmbridge.worker",
                      "gsmbridge.app", "gsmbridge.cli"},
    "gsmbridge.worker": {"gsmbridge.web", "gsmbridge.simulator", "gsmbridge.forwarder",
                         "gsmbridge.app", "gsmbridge.cli"},
    "gsmbridge.forwarder": {"gsmbridge.modem", "gsmbridge.simulator", "gsmbridge.web",
                            "gsmbridge.worker"},
    "gsmbridge.dlr": {"gsmbridge.modem", "gsmbridge.simulator", "gsmbridge.web",
                      "gsmbridge.worker"},
    "gsmbridge.calls": {"gsmbridge.modem", "gsmbridge.simulator", "gsmbridge.web",
                        "gsmbridge.worker"},
    "gsmbridge.delivery": {"gsmbridge.modem", "gsmbridge.simulator", "gsmbridge.web",
                           "gsmbridge.worker", "gsmbridge.store"},
    "gsmbridge.cluster": {"gsmbridge.modem", "gsmbridge.simulator", "gsmbridge.web",
                          "gsmbridge.worker"},
    "gsmbridge.overview": {"gsmbridge.modem", "gsmbridge.simulator", "gsmbridge.web",
                           "gsmbridge.worker"},
    "gsmbridge.housekeeping": {"gsmbridge.modem", "gsmbridge.simulator", "gsmbridge.web",
                               "gsmbridge.worker"},
}

# Nothing in the standard library's database driver above the store: the store raises its own errors.
STORE_ONLY = {"sqlite3": "gsmbridge.store"}


def module_name(path, root=PACKAGE):
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path, root=PACKAGE):
    """Yield (line, module, names) for every import in a file, relative ones made absolute.

    `import a.b` yields ("a.b", ()); `from a import b, c` yields ("a", ("b", "c")).
    """
    name = module_name(path, root)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, ()
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                drop = node.level - 1 if is_package else node.level
                base = base[:len(base) - drop] if drop else base
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield node.lineno, module, tuple(alias.name for alias in node.names)


def targets_of(path, root=PACKAGE):
    """Yield (line, target) for every import; `from a import b` counts as importing `a.b`."""
    for line, module, names in imports_of(path, root):
        if not names:
            yield line, module
        for alias in names:
            yield line, "%s.%s" % (module, alias)


def within(module, part):
    return module == part or module.startswith(part + ".")


def part_of(module, parts):
    """The most specific rule that covers a module, or None."""
    found = [p for p in parts if within(module, p)]
    return max(found, key=len) if found else None


def crossings(root=PACKAGE):
    """Every import that crosses a wall: a list of "file:line: a imports b (why)" strings."""
    found = []
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        where = "%s:%%d" % path.relative_to(root.parent)
        for line, target in targets_of(path, root):
            top = target.split(".")[0]
            if top in STORE_ONLY and not within(name, STORE_ONLY[top]):
                found.append("%s: %s imports %s (only %s may)"
                             % (where % line, name, target, STORE_ONLY[top]))
            if not within(target, "gsmbridge"):
                continue
            rule = part_of(name, ALLOWED)
            if rule and not within(target, rule) and target != "gsmbridge" and not any(
                    within(target, ok) or within(ok, target) for ok in ALLOWED[rule]):
                found.append("%s: %s imports %s (%s may import only %s)"
                             % (where % line, name, target, rule,
                                ", ".join(sorted(ALLOWED[rule])) or "itself"))
            rule = part_of(name, FORBIDDEN)
            if rule:
                for wall in FORBIDDEN[rule]:
                    if within(target, wall):
                        found.append("%s: %s imports %s (%s never imports %s)"
                                     % (where % line, name, target, rule, wall))
    return found


def cycles(root=PACKAGE):
    """Import cycles between gsmbridge's modules, counting every import: a list of cycles."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        edges = set()
        for _, target in targets_of(path, root):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            # `from . import sub` is an edge to the submodule; `from . import name` (a name the
            # package's __init__ defines) is an edge to the package, and a cycle if it imports us.
            if target and target != name:
                edges.add(target)
        graph[name] = edges
    found, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found
