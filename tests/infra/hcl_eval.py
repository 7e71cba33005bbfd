"""A tiny evaluator for the Terraform expressions that compute names.

Enough of HCL to evaluate name rules such as ``"${var.name_prefix}-lake"``,
``replace(var.name_prefix, "-", "_")`` or ``{ for t in var.tables : t => "${var.prefix}.${t}" }``
from the output of the HCL parser (``hcl2.loads`` of ``bc-python-hcl2``, the parser checkov uses), so
tests can compare Terraform's names with ``lakehouse.settings`` instead of copying them.

Supported: string templates (``${...}``, ``$${`` escape), numbers, ``true``/``false``/``null``,
references ``var.x``, ``local.x`` and loop variables with ``.attr`` / ``[index]`` traversal, tuples,
objects, list and object ``for`` expressions (no ``if``), and the functions ``replace``, ``join``,
``format``, ``merge``, ``concat``, ``flatten``, ``keys``, ``values``, ``tostring``, ``lower``, ``upper``.
Anything else (resources, modules, conditionals, operators) raises :class:`HclEvalError`, so a test
never silently compares a half-evaluated value.

Parser output conventions (bc-python-hcl2 0.4.x): every attribute value is wrapped in a one-element
list, blocks are lists of dicts, expressions other than plain strings/numbers come back as
``"${...}"`` strings, and ``__start_line__``/``__end_line__`` keys mark block positions.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_META_KEYS = frozenset({"__start_line__", "__end_line__"})
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


class HclEvalError(ValueError):
    """The expression uses HCL this evaluator does not support, or a name is unknown."""


# ---------------------------------------------------------------------------- parser output helpers
def attr(value: Any) -> Any:
    """Unwrap an attribute value (the parser wraps each one in a one-element list)."""
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def dig(value: Any, *keys: str) -> Any:
    """Follow nested blocks/attributes, unwrapping the parser's lists at every level."""
    for key in keys:
        value = attr(value)[key]
    return attr(value)


def clean(block: Mapping[str, Any]) -> dict[str, Any]:
    """A block's attributes without the parser's line markers."""
    return {k: v for k, v in block.items() if k not in _META_KEYS}


# ---------------------------------------------------------------------------- expression parser
@dataclass
class _Parser:
    text: str
    pos: int = 0

    # -- low level
    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def expect(self, token: str) -> None:
        self.skip_ws()
        if not self.text.startswith(token, self.pos):
            raise HclEvalError(f"expected {token!r} at {self.pos} in {self.text!r}")
        self.pos += len(token)

    def accept(self, token: str) -> bool:
        self.skip_ws()
        if self.text.startswith(token, self.pos):
            if token.isalpha():  # keyword: must not be a prefix of an identifier
                end = self.pos + len(token)
                if end < len(self.text) and (self.text[end].isalnum() or self.text[end] in "_-"):
                    return False
            self.pos += len(token)
            return True
        return False

    def ident(self) -> str:
        self.skip_ws()
        match = _IDENT.match(self.text, self.pos)
        if not match:
            raise HclEvalError(f"expected a name at {self.pos} in {self.text!r}")
        self.pos = match.end()
        return match.group()

    # -- grammar (lowest precedence first): conditional, ||, &&, ==/!=, comparisons, +/-, *,/,%,
    #    unary !/-, then primary postfix* (.attr, [index], [*] splat)
    def expression(self) -> Callable[[Scope, dict[str, Any]], Any]:
        condition = self._binary(0)
        if self.accept("?"):
            if_true = self.expression()
            self.expect(":")
            if_false = self.expression()

            def conditional(scope: Scope, env: dict[str, Any]) -> Any:
                chosen = condition(scope, env)
                if not isinstance(chosen, bool):
                    raise HclEvalError(f"condition is not a bool: {chosen!r}")
                return if_true(scope, env) if chosen else if_false(scope, env)

            return conditional
        return condition

    def _binary(self, level: int) -> Callable[[Scope, dict[str, Any]], Any]:
        if level == len(_BINARY_LEVELS):
            return self.unary()
        left = self._binary(level + 1)
        while True:
            self.skip_ws()
            operator = next((op for op in _BINARY_LEVELS[level] if self._at_operator(op)), None)
            if operator is None:
                return left
            self.pos += len(operator)
            right = self._binary(level + 1)
            left = _binary_node(operator, left, right)

    def _at_operator(self, operator: str) -> bool:
        if not self.text.startswith(operator, self.pos):
            return False
        following = self.text[self.pos + len(operator) : self.pos + len(operator) + 1]
        if operator in ("<", ">", "!") and following == "=":
            return False  # <=, >=, != are their own operators
        if operator == "=" or (operator in ("<", ">") and following == ">"):
            return False
        return not (operator == "-" and following == ">")

    def unary(self) -> Callable[[Scope, dict[str, Any]], Any]:
        self.skip_ws()
        if self.peek() == "!" and self.peek(2) != "!=":
            self.pos += 1
            operand = self.unary()
            return lambda scope, env: not _as_bool(operand(scope, env))
        if self.peek() == "-" and not _NUMBER.match(self.text, self.pos):
            self.pos += 1
            negated = self.unary()
            return lambda scope, env: -negated(scope, env)
        return self.postfix()

    def postfix(self) -> Callable[[Scope, dict[str, Any]], Any]:
        node = self.primary()
        while True:
            self.skip_ws()
            if self.peek() == "." and self.peek(3) != "...":
                self.pos += 1
                if self.peek() == "*":
                    self.pos += 1
                    node = _splat(node, [])
                    continue
                name = self.ident()
                node = _getattr(node, name)
            elif self.text.startswith("[*]", self.pos):
                self.pos += 3
                path: list[str] = []
                while self.peek() == "." and self.peek(3) != "...":
                    self.pos += 1
                    path.append(self.ident())
                node = _splat(node, path)
            elif self.peek() == "[":
                self.pos += 1
                index = self.expression()
                self.expect("]")
                node = _getindex(node, index)
            else:
                return node

    def primary(self) -> Callable[[Scope, dict[str, Any]], Any]:
        self.skip_ws()
        char = self.peek()
        if char in "\"'":
            return self.string(char)
        if self.peek(2) in ("\\'", '\\"'):  # a quote escaped by the parser's repr of a nested string
            return self.string(self.peek(2))
        if char == "[":
            self.pos += 1
            return self.tuple_or_for()
        if char == "{":
            self.pos += 1
            return self.object_or_for()
        if char == "(":
            self.pos += 1
            inner = self.expression()
            self.expect(")")
            return inner
        number = _NUMBER.match(self.text, self.pos)
        if number:
            self.pos = number.end()
            value = float(number.group()) if number.group(1) else int(number.group())
            return lambda scope, env: value
        name = self.ident()
        if name in ("true", "false", "True", "False"):  # the parser renders nested values as Python reprs
            return lambda scope, env: name in ("true", "True")
        if name in ("null", "None"):
            return lambda scope, env: None
        self.skip_ws()
        if self.peek() == "(":
            self.pos += 1
            return self.call(name)
        return _reference(name)

    def string(self, quote: str = '"') -> Callable[[Scope, dict[str, Any]], Any]:
        # Double quotes are HCL; single quotes appear where the parser rendered a nested object
        # as a Python repr ({'name': '${...}'}).
        self.expect(quote)
        parts: list[str | Callable[[Scope, dict[str, Any]], Any]] = []
        literal: list[str] = []
        while True:
            if self.pos >= len(self.text):
                raise HclEvalError(f"unterminated string in {self.text!r}")
            char = self.text[self.pos]
            if self.text.startswith(quote, self.pos):
                self.pos += len(quote)
                break
            if char == "\\":
                nxt = self.text[self.pos + 1 : self.pos + 2]
                literal.append({"n": "\n", "t": "\t"}.get(nxt, nxt))
                self.pos += 2
            elif self.text.startswith("$${", self.pos):
                literal.append("${")
                self.pos += 3
            elif self.text.startswith("${", self.pos):
                if literal:
                    parts.append("".join(literal))
                    literal = []
                self.pos += 2
                parts.append(self.expression())
                self.expect("}")
            else:
                literal.append(char)
                self.pos += 1
        if literal:
            parts.append("".join(literal))
        return _template(parts)

    def call(self, name: str) -> Callable[[Scope, dict[str, Any]], Any]:
        if name not in _FUNCTIONS:
            raise HclEvalError(f"function {name}() is not supported")
        args: list[Callable[[Scope, dict[str, Any]], Any]] = []
        expand = False
        if not self.accept(")"):
            while True:
                args.append(self.expression())
                if self.accept("..."):
                    expand = True
                if self.accept(")"):
                    break
                self.expect(",")
        func = _FUNCTIONS[name]

        def evaluate(scope: Scope, env: dict[str, Any]) -> Any:
            values = [arg(scope, env) for arg in args]
            if expand:
                values = [*values[:-1], *values[-1]]
            return func(*values)

        return evaluate

    def _for_header(self) -> tuple[str, str | None, Callable[[Scope, dict[str, Any]], Any]]:
        first = self.ident()
        second = self.ident() if self.accept(",") else None
        if not self.accept("in"):
            raise HclEvalError(f"expected 'in' in {self.text!r}")
        collection = self.expression()
        self.expect(":")
        return first, second, collection

    def tuple_or_for(self) -> Callable[[Scope, dict[str, Any]], Any]:
        if self.accept("for"):
            first, second, collection = self._for_header()
            item = self.expression()
            keep = self.expression() if self.accept("if") else _constant(True)
            self.expect("]")
            return lambda scope, env: [
                item(scope, loop_env)
                for loop_env in _loop(collection(scope, env), first, second, env)
                if _as_bool(keep(scope, loop_env))
            ]
        items: list[Callable[[Scope, dict[str, Any]], Any]] = []
        while not self.accept("]"):
            items.append(self.expression())
            self.accept(",")
        return lambda scope, env: [item(scope, env) for item in items]

    def object_or_for(self) -> Callable[[Scope, dict[str, Any]], Any]:
        if self.accept("for"):
            first, second, collection = self._for_header()
            key = self.expression()
            self.expect("=>")
            value = self.expression()
            grouped = self.accept("...")
            if grouped:
                raise HclEvalError("grouping for expressions (...) are not supported")
            keep = self.expression() if self.accept("if") else _constant(True)
            self.expect("}")
            return lambda scope, env: {
                key(scope, loop_env): value(scope, loop_env)
                for loop_env in _loop(collection(scope, env), first, second, env)
                if _as_bool(keep(scope, loop_env))
            }
        entries: list[tuple[Callable[[Scope, dict[str, Any]], Any], Callable[[Scope, dict[str, Any]], Any]]] = []
        while not self.accept("}"):
            self.skip_ws()
            if self.peek() in "\"'":
                key_node = self.string(self.peek())
            elif self.peek(2) in ("\\'", '\\"'):
                key_node = self.string(self.peek(2))
            else:
                key_node = _constant(self.ident())
            if not (self.accept("=") or self.accept(":")):
                raise HclEvalError(f"expected '=' in object {self.text!r}")
            entries.append((key_node, self.expression()))
            self.accept(",")
        return lambda scope, env: {key(scope, env): value(scope, env) for key, value in entries}


_BINARY_LEVELS: tuple[tuple[str, ...], ...] = (
    ("||",),
    ("&&",),
    ("==", "!="),
    ("<=", ">=", "<", ">"),
    ("+", "-"),
    ("*", "/", "%"),
)


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise HclEvalError(f"expected a bool, got {value!r}")
    return value


def _binary_node(
    operator: str, left: Callable[[Scope, dict[str, Any]], Any], right: Callable[[Scope, dict[str, Any]], Any]
) -> Callable[[Scope, dict[str, Any]], Any]:
    def evaluate(scope: Scope, env: dict[str, Any]) -> Any:
        if operator == "||":
            return _as_bool(left(scope, env)) or _as_bool(right(scope, env))
        if operator == "&&":
            return _as_bool(left(scope, env)) and _as_bool(right(scope, env))
        a, b = left(scope, env), right(scope, env)
        if operator == "==":
            return a == b
        if operator == "!=":
            return a != b
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
            raise HclEvalError(f"operator {operator} needs numbers, got {a!r} and {b!r}")
        results = {
            "<": lambda: a < b,
            ">": lambda: a > b,
            "<=": lambda: a <= b,
            ">=": lambda: a >= b,
            "+": lambda: a + b,
            "-": lambda: a - b,
            "*": lambda: a * b,
            "/": lambda: a / b,
            "%": lambda: a % b,
        }
        return results[operator]()

    return evaluate


def _splat(node: Callable[[Scope, dict[str, Any]], Any], path: list[str]) -> Callable[[Scope, dict[str, Any]], Any]:
    def evaluate(scope: Scope, env: dict[str, Any]) -> Any:
        base = node(scope, env)
        items = list(base.values()) if isinstance(base, Mapping) else list(base)
        out = []
        for item in items:
            for name in path:
                item = item[name] if isinstance(item, Mapping) else getattr(item, name)
            out.append(item)
        return out

    return evaluate


def _constant(value: Any) -> Callable[[Scope, dict[str, Any]], Any]:
    return lambda scope, env: value


def _template(parts: list[Any]) -> Callable[[Scope, dict[str, Any]], Any]:
    if len(parts) == 1 and callable(parts[0]):
        return parts[0]  # "${expr}" keeps the expression's type

    def evaluate(scope: Scope, env: dict[str, Any]) -> str:
        return "".join(p if isinstance(p, str) else _to_string(p(scope, env)) for p in parts)

    return evaluate


def _to_string(value: Any) -> str:
    if isinstance(value, Unknown):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise HclEvalError(f"cannot interpolate {value!r} into a string")


def _reference(name: str) -> Callable[[Scope, dict[str, Any]], Any]:
    def evaluate(scope: Scope, env: dict[str, Any]) -> Any:
        if name in env:
            return env[name]
        if name in ("var", "local"):
            return _Namespace(scope, name)
        if scope.resolver is not None:
            return scope.resolver(name)
        raise HclEvalError(f"cannot evaluate reference {name!r} (only var.*, local.* and loop variables)")

    return evaluate


@dataclass
class _Namespace:
    scope: Scope
    kind: str


def _getattr(node: Callable[[Scope, dict[str, Any]], Any], name: str) -> Callable[[Scope, dict[str, Any]], Any]:
    def evaluate(scope: Scope, env: dict[str, Any]) -> Any:
        base = node(scope, env)
        if isinstance(base, _Namespace):
            return base.scope.var(name) if base.kind == "var" else base.scope.local(name)
        if isinstance(base, Mapping) and name in base:
            return base[name]
        if hasattr(base, "hcl_attr"):
            return base.hcl_attr(name)
        raise HclEvalError(f"no attribute {name!r} in {base!r}")

    return evaluate


def _getindex(
    node: Callable[[Scope, dict[str, Any]], Any], index: Callable[[Scope, dict[str, Any]], Any]
) -> Callable[[Scope, dict[str, Any]], Any]:
    def evaluate(scope: Scope, env: dict[str, Any]) -> Any:
        base, key = node(scope, env), index(scope, env)
        if hasattr(base, "hcl_index"):
            return base.hcl_index(key)
        try:
            return base[key]
        except (KeyError, IndexError, TypeError) as err:
            raise HclEvalError(f"cannot index {base!r} with {key!r}") from err

    return evaluate


def _loop(collection: Any, first: str, second: str | None, env: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(collection, Mapping):
        pairs = list(collection.items())
    elif isinstance(collection, (list, tuple)):
        pairs = list(enumerate(collection))
    else:
        raise HclEvalError(f"cannot iterate over {collection!r}")
    if second is None:  # one variable: the value
        return [{**env, first: value} for _, value in pairs]
    return [{**env, first: key, second: value} for key, value in pairs]


def _format(template: str, *args: Any) -> str:
    if re.search(r"%(?![s%])", template):
        raise HclEvalError(f"only %s and %% are supported in format(): {template!r}")
    return template % tuple(_to_string(a) for a in args)


def _flatten(values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for value in values:
        out.extend(_flatten(value) if isinstance(value, list) else [value])
    return out


def _merge(*maps: Mapping[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for mapping in maps:
        merged.update(mapping)
    return merged


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "replace": lambda s, old, new: s.replace(old, new),
    "join": lambda sep, items: sep.join(_to_string(i) for i in items),
    "format": _format,
    "merge": _merge,
    "concat": lambda *lists: [item for lst in lists for item in lst],
    "flatten": _flatten,
    "keys": lambda m: sorted(m),
    "values": lambda m: [m[k] for k in sorted(m)],
    "tostring": _to_string,
    "lower": lambda s: s.lower(),
    "upper": lambda s: s.upper(),
    "length": len,
    "contains": lambda collection, value: value in collection,
    "toset": lambda items: sorted(set(items), key=str),
    "tolist": list,
    "sort": lambda items: sorted(items),
    "distinct": lambda items: list(dict.fromkeys(items)),
    "lookup": lambda m, key, default=None: m.get(key, default),
    "coalesce": lambda *values: next(v for v in values if v not in (None, "")),
    "endswith": lambda s, suffix: s.endswith(suffix),
    "startswith": lambda s, prefix: s.startswith(prefix),
    "tonumber": lambda v: v if isinstance(v, (int, float)) else (float(v) if "." in str(v) else int(v)),
    "setproduct": lambda *sets: [list(t) for t in __import__("itertools").product(*sets)],
    "jsonencode": lambda v: __import__("json").dumps(v, separators=(",", ":")),
}


def compile_value(value: Any) -> Callable[[Scope, dict[str, Any]], Any]:
    """Compile a value from the parser output (str/list/dict/scalar) into an evaluator."""
    if isinstance(value, str):
        parser = _Parser(_quote_template(value))
        node = parser.string()
        if parser.pos != len(parser.text):
            raise HclEvalError(f"trailing text in {value!r}")
        return node
    if isinstance(value, list):
        items = [compile_value(v) for v in value]
        return lambda scope, env: [item(scope, env) for item in items]
    if isinstance(value, Mapping):
        entries = {k: compile_value(v) for k, v in clean(value).items()}
        return lambda scope, env: {k: node(scope, env) for k, node in entries.items()}
    return lambda scope, env: value


def _quote_template(value: str) -> str:
    """Wrap raw template text in quotes, escaping quotes/backslashes only outside ${...}."""
    out, depth, i, in_string = ['"'], 0, 0, False
    while i < len(value):
        char = value[i]
        if depth == 0:
            if value.startswith("$${", i):
                out.append("$${")
                i += 3
                continue
            if value.startswith("${", i):
                out.append("${")
                depth, i = 1, i + 2
                continue
            out.append("\\" + char if char in '"\\' else char)
        else:
            out.append(char)
            if in_string:
                if char == "\\":
                    out.append(value[i + 1 : i + 2])
                    i += 1
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
        i += 1
    out.append('"')
    return "".join(out)


def evaluate(value: Any, scope: Scope | None = None, env: Mapping[str, Any] | None = None) -> Any:
    """Evaluate a parsed HCL value in `scope` with loop/extra variables `env`."""
    return compile_value(value)(scope or Scope(), dict(env or {}))


# ---------------------------------------------------------------------------- scopes and modules
@dataclass
class Scope:
    """Variables and locals of one Terraform module instance (evaluated lazily, cached)."""

    variables: dict[str, Any] = field(default_factory=dict)  # value or zero-argument callable
    locals_raw: dict[str, Any] = field(default_factory=dict)
    #: values of other roots (resources, data sources, modules, each): name -> object
    resolver: Callable[[str], Any] | None = None
    _cache: dict[str, Any] = field(default_factory=dict)
    _active: set[str] = field(default_factory=set)

    def var(self, name: str) -> Any:
        if name not in self.variables:
            raise HclEvalError(f"var.{name} has no value (no default and not set)")
        value = self.variables[name]
        return value() if callable(value) else value

    def local(self, name: str) -> Any:
        if name in self._cache:
            return self._cache[name]
        if name not in self.locals_raw:
            raise HclEvalError(f"local.{name} is not defined")
        if name in self._active:
            raise HclEvalError(f"local.{name} depends on itself")
        self._active.add(name)
        try:
            value = evaluate(self.locals_raw[name], self)
        finally:
            self._active.discard(name)
        self._cache[name] = value
        return value


@dataclass
class Module:
    """The merged top-level blocks of all .tf files of one directory."""

    path: Path
    variables: dict[str, dict[str, Any]]
    locals_raw: dict[str, Any]
    modules: dict[str, dict[str, Any]]
    resources: dict[str, dict[str, dict[str, Any]]]
    outputs: dict[str, dict[str, Any]]
    data: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @classmethod
    def from_documents(cls, path: Path, documents: Mapping[Path, Mapping[str, Any]]) -> Module:
        variables: dict[str, dict[str, Any]] = {}
        locals_raw: dict[str, Any] = {}
        modules: dict[str, dict[str, Any]] = {}
        resources: dict[str, dict[str, dict[str, Any]]] = {}
        outputs: dict[str, dict[str, Any]] = {}
        data: dict[str, dict[str, dict[str, Any]]] = {}
        for file, doc in sorted(documents.items()):
            if file.parent != path or file.suffix != ".tf":
                continue
            for block in doc.get("variable", []):
                variables.update({k: clean(v) for k, v in clean(block).items()})
            for block in doc.get("locals", []):
                locals_raw.update({k: attr(v) for k, v in clean(block).items()})
            for block in doc.get("module", []):
                modules.update({k: clean(v) for k, v in clean(block).items()})
            for block in doc.get("output", []):
                outputs.update({k: clean(v) for k, v in clean(block).items()})
            for block in doc.get("resource", []):
                for rtype, named in clean(block).items():
                    for name, body in clean(named).items():
                        resources.setdefault(rtype, {})[name] = clean(body)
            for block in doc.get("data", []):
                for dtype, named in clean(block).items():
                    for name, body in clean(named).items():
                        data.setdefault(dtype, {})[name] = clean(body)
        return cls(path, variables, locals_raw, modules, resources, outputs, data)

    def scope(self, values: Mapping[str, Any] | None = None, resolver: Callable[[str], Any] | None = None) -> Scope:
        """Scope with variable defaults overridden by `values` (values may be callables)."""
        variables: dict[str, Any] = {name: _default(body) for name, body in self.variables.items() if "default" in body}
        variables.update(values or {})
        return Scope(variables=variables, locals_raw=dict(self.locals_raw), resolver=resolver)

    def module_inputs(self, call: str, scope: Scope) -> dict[str, Callable[[], Any]]:
        """Arguments of `module "<call>"` as lazy values evaluated in this module's `scope`."""

        def lazy(raw: Any) -> Callable[[], Any]:
            return lambda: evaluate(attr(raw), scope)

        body = self.modules[call]
        return {
            name: lazy(raw)
            for name, raw in body.items()
            if name not in ("source", "count", "for_each", "depends_on", "providers")
        }

    def module_source(self, call: str) -> Path:
        return (self.path / attr(self.modules[call]["source"])).resolve()


def _default(body: Mapping[str, Any]) -> Any:
    """A variable's default as a value (the parser keeps `null` as the string "null")."""
    value = attr(body["default"])
    return None if value == "null" else value


@dataclass(frozen=True)
class Unknown:
    """A value known only after apply (a resource attribute, a data source): `<path>` in strings.

    `placeholders` maps a path prefix (e.g. "aws_iam_role.task") to a function giving a realistic
    value for the rest of the path, e.g. an ARN, where a test needs one.
    """

    path: str

    def hcl_attr(self, name: str) -> Unknown:
        return Unknown(f"{self.path}.{name}")

    def hcl_index(self, key: Any) -> Unknown:
        return Unknown(f"{self.path}[{key}]")

    def __str__(self) -> str:
        return f"<{self.path}>"


def unknown_resolver(known: Mapping[str, Any] | None = None) -> Callable[[str], Any]:
    """Resolver for Scope: `known` values by root name (e.g. "module", "data"), else Unknown."""
    known = dict(known or {})

    def resolve(name: str) -> Any:
        return known[name] if name in known else Unknown(name)

    return resolve
