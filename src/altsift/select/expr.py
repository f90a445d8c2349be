"""The ``--where`` expression language: small, checked before anything runs, evaluated with arrow.

Nothing a user types is executed as Python. The text is parsed with Python's own parser (``ast`` in
``eval`` mode: a well-kept parser with exact positions), then every node is checked against a strict
whitelist and against the pool's column types, and compiled to calls of ``pyarrow.compute`` kernels
(vectorised, null-aware). Anything else - attribute access, indexing, lambdas, comprehensions,
f-strings, assignments, calls of anything but the functions below - is refused with an error that
names the offending part and points at it.

Grammar (documented in docs/select.md)::

    expr     := expr ('or' | '|') expr | expr ('and' | '&') expr | ('not' | '~') expr | comparison
    comparison := sum (('==' | '!=' | '<' | '<=' | '>' | '>=') sum)*       (chains: a < b <= c)
               | sum ['not'] 'in' '[' literal, ... ']'
               | sum 'is' ['not'] null
    sum      := sum ('+' | '-') sum | sum ('*' | '/') sum | sum '**' sum | '-' sum | atom
    atom     := column | number | 'string' | true | false | null | function '(' expr, ... ')' | '(' expr ')'

``&``, ``|`` and ``~`` are the same as ``and``, ``or`` and ``not`` (and bind like them, as in
``pandas.eval``, so ``basic_pass & clip_score > 0.3`` means ``basic_pass and (clip_score > 0.3)``).
``True/False/None`` are accepted for ``true/false/null``. A column whose name is not an identifier
(or is ``true``/``false``/``null``) is written ``col('weird name')``.

Null semantics are SQL's: a comparison or arithmetic with a null (or NaN) gives null, ``and``/``or``
use three-valued logic, and a row whose result is null is **not** selected.
"""

from __future__ import annotations

import ast
import difflib
import io
import math
import tokenize
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from altsift.errors import ConfigError

MAX_CHARS = 4_000
MAX_NODES = 1_000
MAX_DEPTH = 50
MAX_LIST = 10_000
MAX_STRING = 1_000

Value = Any  # pa.Array | pa.ChunkedArray | pa.Scalar
Env = Mapping[str, Any]  # column name -> pa.Array / pa.ChunkedArray
Fn = Callable[[Env], Value]

#: functions: name -> (arity (min, max), argument kinds, result kind, description)
FUNCTIONS: dict[str, str] = {
    "abs": "abs(x): absolute value",
    "sqrt": "sqrt(x): square root (null for negative x)",
    "log": "log(x): natural logarithm (null for x <= 0)",
    "log10": "log10(x): base-10 logarithm (null for x <= 0)",
    "min": "min(a, b, ...): smallest of the numbers (nulls skipped)",
    "max": "max(a, b, ...): largest of the numbers (nulls skipped)",
    "coalesce": "coalesce(a, b, ...): the first non-null value",
    "lower": "lower(s): lower-case text",
    "upper": "upper(s): upper-case text",
    "length": "length(s): characters in a text, or items in a list column (alias: len)",
    "len": "len(s): same as length(s)",
    "contains": "contains(s, 'part'): the text contains 'part' (case-sensitive)",
    "startswith": "startswith(s, 'prefix')",
    "endswith": "endswith(s, 'suffix')",
    "isnull": "isnull(x): x is null (or NaN); same as 'x is null'",
    "notnull": "notnull(x): x is not null; same as 'x is not null'",
    "col": "col('name'): the column called 'name' (for names that are not identifiers)",
}
_LITERAL_NAMES = {"true": True, "false": False, "null": None}
_REWRITE = {"&": "and", "|": "or", "~": "not"}
_CMP = {ast.Eq: "equal", ast.NotEq: "not_equal", ast.Lt: "less", ast.LtE: "less_equal",
        ast.Gt: "greater", ast.GtE: "greater_equal"}  # fmt: skip
_CMP_TEXT = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}
_ARITH = {ast.Add: ("add", "+"), ast.Sub: ("subtract", "-"), ast.Mult: ("multiply", "*"),
          ast.Div: ("divide", "/"), ast.Pow: ("power", "**")}  # fmt: skip
_REFUSED = {
    ast.Attribute: "attribute access is not allowed",
    ast.Subscript: "indexing is not allowed",
    ast.Lambda: "lambda is not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.FormattedValue: "f-strings are not allowed",
    ast.NamedExpr: "assignment (:=) is not allowed",
    ast.Starred: "* unpacking is not allowed",
    ast.IfExp: "conditional expressions (x if c else y) are not supported",
    ast.Dict: "dictionaries are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
}


def kind_of(t: pa.DataType) -> str:
    """The expression kind of an arrow type: bool, num, str, null, list or other."""
    if pa.types.is_dictionary(t):
        return kind_of(t.value_type)
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "num"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "str"
    if pa.types.is_null(t):
        return "null"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return "list"
    return "other"


_KIND_WORD = {"bool": "true/false", "num": "numbers", "str": "text", "null": "all null", "list": "lists",
              "other": "values of another type"}  # fmt: skip


@dataclass(frozen=True)
class _C:
    """A compiled node: its kind and the function computing it from the columns."""

    kind: str
    fn: Fn
    literal: Any = None  # python value for literal nodes (used by in [...] and string patterns)
    is_literal: bool = False


@dataclass(frozen=True)
class Where:
    """A checked, compiled expression. ``columns``: the pool columns it reads (and nothing else)."""

    text: str
    columns: tuple[str, ...]
    _root: _C

    def evaluate(self, env: Env, n: int) -> np.ndarray:
        """Boolean mask of ``n`` rows (null -> False) from the named columns in ``env`` (arrays of ``n``)."""
        try:
            res = self._root.fn(env)
        except (pa.ArrowException, ValueError, TypeError, OverflowError, ZeroDivisionError) as e:
            raise ConfigError(f"cannot evaluate '{self.text}': {e}") from None
        if isinstance(res, pa.Scalar):
            return np.full(n, bool(res.as_py()) if res.is_valid else False, dtype=bool)
        if pa.types.is_null(res.type):
            return np.zeros(n, dtype=bool)
        res = pc.fill_null(res, False)
        out = np.asarray(res.to_numpy(zero_copy_only=False), dtype=bool)
        if out.shape != (n,):  # pragma: no cover - arrays come in with n rows
            raise ConfigError(f"'{self.text}' gave {out.shape} values for {n} rows")
        return out

    def evaluate_table(self, table: pa.Table) -> np.ndarray:
        return self.evaluate({c: table.column(c) for c in self.columns}, table.num_rows)


class _Source:
    """The text being compiled: rewritten source, position map back to the user's text, errors."""

    def __init__(self, text: str, what: str) -> None:
        self.text, self.what = text, what
        src, pos = _rewrite(text, self)
        lead = len(src) - len(src.lstrip(" "))  # eval mode refuses leading indentation
        self.src, self.pos = src[lead:], pos[lead:]
        starts = [0]
        for i, ch in enumerate(self.src):
            if ch == "\n":
                starts.append(i + 1)
        self.line_starts = starts

    def error(self, msg: str, start: int | None = None, end: int | None = None) -> ConfigError:
        shown = self.text if len(self.text) <= 200 else self.text[:200] + "…"
        out = f"{self.what}: {msg}\n  {shown.replace(chr(10), ' ')}"
        if start is not None and start < len(shown):
            end = max(start + 1, min(end or start + 1, len(shown)))
            out += "\n  " + " " * start + "^" * (end - start)
        return ConfigError(out)

    def orig(self, line: int, col: int) -> int:
        """Position in the user's text of (line, col) in the rewritten source (``col`` in UTF-8 bytes)."""
        ls = self.line_starts[min(max(line, 1), len(self.line_starts)) - 1]
        line_text = self.src[ls:]
        chars = len(line_text.encode("utf-8")[:col].decode("utf-8", "ignore"))
        i = min(ls + chars, len(self.pos) - 1)
        return self.pos[i] if self.pos else 0

    def node_error(self, node: ast.AST, msg: str, sub: tuple[int, int] | None = None) -> ConfigError:
        if sub is not None:
            return self.error(msg, *sub)
        start = self.orig(getattr(node, "lineno", 1), getattr(node, "col_offset", 0))
        end_l, end_c = getattr(node, "end_lineno", None), getattr(node, "end_col_offset", None)
        end = self.orig(end_l, end_c) if end_l is not None and end_c is not None else start + 1
        return self.error(msg, start, end)


def _rewrite(text: str, s: _Source) -> tuple[str, list[int]]:
    """Map ``&``/``|``/``~`` to ``and``/``or``/``not`` token-wise; return the source and a position map."""
    clean = "".join(" " if ch in "\r\n\t\f\v" else ch for ch in text)
    out: list[str] = []
    pos: list[int] = []
    last = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(clean).readline):
            if tok.type == tokenize.ERRORTOKEN and not tok.string.isspace():
                c = tok.start[1]
                raise s.error(f"unexpected character {tok.string!r}", c, c + 1)
            if tok.type == tokenize.OP and tok.string in _REWRITE:
                c = tok.start[1]
                out.append(clean[last:c])
                pos.extend(range(last, c))
                word = f" {_REWRITE[tok.string]} "
                out.append(word)
                pos.extend([c] * len(word))
                last = c + 1
    except tokenize.TokenError as e:
        msg = "unbalanced brackets or quotes" if "EOF" in str(e) else str(e)
        raise s.error(msg, len(text) - 1 if text else 0) from None
    except (SyntaxError, IndentationError) as e:  # pragma: no cover - depends on the Python version
        raise s.error(f"syntax error: {e.msg}", max((e.offset or 1) - 1, 0)) from None
    out.append(clean[last:])
    pos.extend(range(last, len(clean)))
    pos.append(len(clean))
    return "".join(out), pos


def compile_where(text: str, types: Mapping[str, pa.DataType], what: str = "--where") -> Where:
    """Parse and check ``text`` against the column ``types``; ConfigError (with a caret) when refused.

    ``types`` maps every column the pool offers to its arrow type; only columns the expression names
    are read later.
    """
    if not isinstance(text, str):
        raise ConfigError(f"{what}: expected an expression (text), got {type(text).__name__}")
    if len(text) > MAX_CHARS:
        raise ConfigError(f"{what}: expression too long ({len(text)} characters; at most {MAX_CHARS})")
    if not text.strip():
        raise ConfigError(f"{what}: empty expression")
    s = _Source(text, what)
    try:
        tree = ast.parse(s.src, mode="eval")
    except SyntaxError as e:
        col = s.orig(e.lineno or 1, (e.offset or 1) - 1) if e.offset else None
        raise s.error(f"syntax error: {e.msg}", col) from None
    except (RecursionError, MemoryError):
        raise s.error("expression nested too deeply") from None
    except (ValueError, OverflowError) as e:  # e.g. a number literal with too many digits
        raise s.error(f"cannot parse: {e}") from None
    c = _Compiler(s, types)
    try:
        root = c.compile(tree.body, 0)
    except RecursionError:
        raise s.error("expression nested too deeply") from None
    if root.kind not in ("bool", "null"):
        hint = f": compare it, e.g. {_short(text)} > 0" if root.kind == "num" else ""
        raise s.error(f"the expression gives {_KIND_WORD[root.kind]}, not true/false{hint}", 0, len(text))
    return Where(text=text, columns=tuple(dict.fromkeys(c.columns)), _root=root)


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


class _Compiler:
    def __init__(self, s: _Source, types: Mapping[str, pa.DataType]) -> None:
        self.s, self.types = s, types
        self.columns: list[str] = []
        self.nodes = 0

    def err(self, node: ast.AST, msg: str) -> ConfigError:
        return self.s.node_error(node, msg)

    def compile(self, node: ast.AST, depth: int) -> _C:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.err(node, f"expression too large (more than {MAX_NODES} parts)")
        if depth > MAX_DEPTH:
            raise self.err(node, f"expression nested too deeply (more than {MAX_DEPTH} levels)")
        d = depth + 1
        if type(node) in _REFUSED:
            return self._refuse(node)
        if isinstance(node, ast.BoolOp):
            parts = [self._as_bool(v, self.compile(v, d)) for v in node.values]
            op = pc.and_kleene if isinstance(node.op, ast.And) else pc.or_kleene
            return _C("bool", _fold(op, [p.fn for p in parts]))
        if isinstance(node, ast.UnaryOp):
            inner = self.compile(node.operand, d)
            if isinstance(node.op, ast.Not):
                f = self._as_bool(node.operand, inner).fn
                return _C("bool", lambda env: pc.invert(f(env)))
            if isinstance(node.op, ast.USub | ast.UAdd):
                self._need(node.operand, inner, "num", "'-' applies to numbers")
                if isinstance(node.op, ast.UAdd):
                    return inner
                g = inner.fn
                return _C("num", lambda env: pc.negate_checked(_num(g(env))))
            raise self.err(node, "operator not supported")  # pragma: no cover - ~ is rewritten to not
        if isinstance(node, ast.BinOp):
            return self._binop(node, d)
        if isinstance(node, ast.Compare):
            return self._compare(node, d)
        if isinstance(node, ast.Call):
            return self._call(node, d)
        if isinstance(node, ast.Name):
            if node.id in _LITERAL_NAMES:
                return _literal(_LITERAL_NAMES[node.id])
            return self._column(node, node.id)
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.List | ast.Tuple | ast.Set):
            raise self.err(node, "a list is only allowed after 'in', e.g. lang in ['en', 'de']")
        raise self.err(node, f"{type(node).__name__} is not allowed")

    # ------------------------------------------------------------------ pieces
    def _refuse(self, node: ast.AST) -> _C:
        msg = _REFUSED[type(node)]
        if isinstance(node, ast.Attribute):
            v = node.value
            start = self.s.orig(v.end_lineno or 1, v.end_col_offset or 0)
            end = self.s.orig(node.end_lineno or 1, node.end_col_offset or 0)
            raise self.s.error(f"{msg}: '.{node.attr}'", start, end)
        raise self.err(node, msg)

    def _constant(self, node: ast.Constant) -> _C:
        v = node.value
        if v is None or isinstance(v, bool):
            return _literal(v)
        if isinstance(v, int):
            if not -(2**63) <= v < 2**63:
                raise self.err(node, "integer too large (64-bit integers only)")
            return _literal(v)
        if isinstance(v, float):
            return _literal(v)
        if isinstance(v, str):
            if len(v) > MAX_STRING:
                raise self.err(node, f"text literal too long (at most {MAX_STRING} characters)")
            return _literal(v)
        raise self.err(node, f"{type(v).__name__} literals are not allowed")

    def _column(self, node: ast.AST, name: str) -> _C:
        if name not in self.types:
            close = difflib.get_close_matches(name, [str(k) for k in self.types], n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            if name in FUNCTIONS:
                hint = f" ({name} is a function: {FUNCTIONS[name]})"
            names = [str(k) for k in self.types]
            if names:
                hint += ". Columns: " + ", ".join(names[:40]) + (" …" if len(names) > 40 else "")
            raise self.err(node, f"unknown column '{name}'{hint}")
        self.columns.append(name)
        kind = kind_of(self.types[name])

        def get(env: Env, _n: str = name) -> Value:
            return _normalise(env[_n])

        return _C(kind, get)

    def _need(self, node: ast.AST, c: _C, kind: str, msg: str) -> None:
        if c.kind != kind and c.kind != "null":
            raise self.err(node, f"{msg}; this is {_KIND_WORD[c.kind]}")

    def _as_bool(self, node: ast.AST, c: _C) -> _C:
        if c.kind in ("bool", "null"):
            return c
        hint = " (compare it, e.g. x > 0)" if c.kind == "num" else ""
        raise self.err(node, f"expected true/false here, got {_KIND_WORD[c.kind]}{hint}")

    def _binop(self, node: ast.BinOp, d: int) -> _C:
        if type(node.op) not in _ARITH:
            sym = {ast.Mod: "%", ast.FloorDiv: "//", ast.LShift: "<<", ast.RShift: ">>", ast.BitXor: "^",
                   ast.MatMult: "@", ast.BitAnd: "&", ast.BitOr: "|"}.get(type(node.op), "?")  # fmt: skip
            raise self.err(node, f"operator '{sym}' is not supported (use + - * / **)")
        name, sym = _ARITH[type(node.op)]
        left, right = self.compile(node.left, d), self.compile(node.right, d)
        self._need(node.left, left, "num", f"'{sym}' applies to numbers")
        self._need(node.right, right, "num", f"'{sym}' applies to numbers")
        lf, rf = left.fn, right.fn
        if name in ("divide", "power"):  # true division and powers in float64: no integer overflow, no hang

            def fn(env: Env, _k: str = name) -> Value:
                a, b = _f64(lf(env)), _f64(rf(env))
                return _nan_to_null(pc.divide(a, b) if _k == "divide" else pc.power(a, b))
        else:
            kernel = getattr(pc, f"{name}_checked")

            def fn(env: Env, _k: Callable[..., Value] = kernel) -> Value:
                return _nan_to_null(_k(_num(lf(env)), _num(rf(env))))

        return _C("num", fn)

    def _compare(self, node: ast.Compare, d: int) -> _C:
        left = self.compile(node.left, d)
        parts: list[Fn] = []
        lnode = node.left
        for op, rnode in zip(node.ops, node.comparators, strict=True):
            if isinstance(op, ast.In | ast.NotIn):
                parts.append(self._isin(lnode, left, rnode, negate=isinstance(op, ast.NotIn)))
                left, lnode = None, rnode  # type: ignore[assignment]
                continue
            if isinstance(op, ast.Is | ast.IsNot):
                if not _is_null_literal(rnode):
                    raise self.err(rnode, "'is' only tests for null: write 'x is null' or 'x is not null'")
                if left is None:
                    raise self.err(node, "'is null' cannot follow 'in [...]'")
                f = left.fn
                if isinstance(op, ast.Is):
                    parts.append(lambda env, _f=f: _isnull(_f(env)))
                else:
                    parts.append(lambda env, _f=f: pc.invert(_isnull(_f(env))))
                left, lnode = None, rnode  # type: ignore[assignment]
                continue
            right = self.compile(rnode, d)
            if left is None:
                raise self.err(node, "comparisons cannot follow 'in [...]' or 'is null'")
            sym = _CMP_TEXT[type(op)]
            if _is_null_literal(rnode) or _is_null_literal(lnode):
                raise self.err(node, f"'{sym} null' is never true: write 'x is null' or 'x is not null'")
            kinds = {left.kind, right.kind} - {"null"}
            if len(kinds) > 1:
                a, b = left.kind, right.kind
                raise self.err(node, f"cannot compare {_KIND_WORD[a]} with {_KIND_WORD[b]} ('{sym}')")
            if kinds & {"list", "other"}:
                raise self.err(node, f"cannot compare {_KIND_WORD[next(iter(kinds))]} with '{sym}'")
            if kinds == {"bool"} and sym not in ("==", "!="):
                raise self.err(node, f"true/false values compare only with == or != (not '{sym}')")
            kernel = getattr(pc, _CMP[type(op)])
            lf, rf = left.fn, right.fn
            parts.append(lambda env, _k=kernel, _l=lf, _r=rf: _cmp(_k, _l(env), _r(env)))
            left, lnode = right, rnode
        return _C("bool", _fold(pc.and_kleene, parts))

    def _isin(self, lnode: ast.AST, left: _C | None, rnode: ast.AST, negate: bool) -> Fn:
        if left is None:
            raise self.err(rnode, "'in' cannot follow another 'in' or 'is'")
        if not isinstance(rnode, ast.List | ast.Tuple | ast.Set):
            raise self.err(rnode, "'in' needs a list of values, e.g. lang in ['en', 'de']"
                           + (" (for text inside a column use contains(column, 'part'))"
                              if isinstance(rnode, ast.Name) else ""))  # fmt: skip
        if len(rnode.elts) > MAX_LIST:
            raise self.err(rnode, f"list too long (at most {MAX_LIST} values)")
        values = []
        for e in rnode.elts:
            if (
                isinstance(e, ast.UnaryOp)
                and isinstance(e.op, ast.USub)
                and isinstance(e.operand, ast.Constant)
                and isinstance(e.operand.value, int | float)
                and not isinstance(e.operand.value, bool)
            ):
                e = ast.copy_location(ast.Constant(-e.operand.value), e)
            lit = self.compile(e, 0) if isinstance(e, ast.Constant | ast.Name) else None
            if lit is None or not lit.is_literal:
                raise self.err(e, "'in [...]' takes literal values only (numbers, 'text', true/false)")
            if lit.literal is None:
                raise self.err(e, "null in a list never matches: test 'x is null' instead")
            if left.kind not in ("null",) and lit.kind != left.kind:
                raise self.err(e, f"this list holds {_KIND_WORD[lit.kind]} but the left side is "
                                  f"{_KIND_WORD[left.kind]}")  # fmt: skip
            values.append(lit.literal)
        kinds = {type(v) for v in values}
        if len({bool in kinds, bool(kinds & {int, float}), str in kinds} - {False}) > 1:
            raise self.err(rnode, "a list must hold values of one kind")
        if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            vs = pa.array([float(v) for v in values], pa.float64())
        else:
            vs = pa.array(values)
        f = left.fn

        def fn(env: Env) -> Value:
            x = f(env)
            if isinstance(x, pa.Scalar):  # a literal on the left: one value, a scalar back
                return test(pa.array([x.as_py()], type=x.type))[0]
            return test(x)

        def test(x: Value) -> Value:
            if pa.types.is_null(x.type):
                return pa.nulls(len(x), pa.bool_())
            if vs.type == pa.float64() and not pa.types.is_floating(x.type):
                x = pc.cast(x, pa.float64())
            hit = pc.is_in(x, value_set=vs.cast(x.type) if vs.type != x.type else vs, skip_nulls=True)
            if negate:
                hit = pc.invert(hit)
            return pc.if_else(pc.is_valid(x), hit, pa.scalar(None, pa.bool_()))

        return fn

    def _call(self, node: ast.Call, d: int) -> _C:
        if not isinstance(node.func, ast.Name):
            if isinstance(node.func, ast.Attribute):
                return self._refuse(node.func)
            raise self.err(node.func, "only the listed functions can be called, e.g. abs(x)")
        name = node.func.id
        if name not in FUNCTIONS:
            raise self.err(
                node.func, f"unknown function '{name}' (functions: {', '.join(sorted(FUNCTIONS))})"
            )
        if node.keywords:
            raise self.err(node.keywords[0].value if node.keywords[0].arg else node,
                           f"{name}() takes no keyword arguments")  # fmt: skip
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.err(a, _REFUSED[ast.Starred])
        args = node.args
        if name == "col":
            if len(args) != 1 or not (isinstance(args[0], ast.Constant) and isinstance(args[0].value, str)):
                raise self.err(node, "col() takes one column name in quotes, e.g. col('my score')")
            return self._column(node, args[0].value)

        def arity(lo: int, hi: int | None = None) -> None:
            hi = lo if hi is None else hi
            if not lo <= len(args) <= hi:
                want = str(lo) if lo == hi else f"{lo}+" if hi > 99 else f"{lo}-{hi}"
                raise self.err(node, f"{name}() takes {want} argument(s), got {len(args)}")

        if name in ("abs", "sqrt", "log", "log10"):
            arity(1)
            x = self.compile(args[0], d)
            self._need(args[0], x, "num", f"{name}() applies to numbers")
            kern = {"abs": pc.abs_checked, "sqrt": pc.sqrt, "log": pc.ln, "log10": pc.log10}[name]
            g = x.fn
            if name == "abs":
                return _C("num", lambda env: kern(_num(g(env))))
            return _C("num", lambda env: _nan_to_null(_nonfinite_log(kern, _f64(g(env)), name)))
        if name in ("min", "max", "coalesce"):
            arity(1, 100)
            cs = [self.compile(a, d) for a in args]
            kinds = {c.kind for c in cs} - {"null"}
            if len(kinds) > 1:
                raise self.err(node, f"{name}() needs arguments of one kind")
            kind = next(iter(kinds), "null")
            if name != "coalesce" and kind not in ("num", "null"):
                raise self.err(node, f"{name}() applies to numbers")
            if kind in ("list", "other"):
                raise self.err(node, f"{name}() does not apply to {_KIND_WORD[kind]}")
            fns = [c.fn for c in cs]
            if kind in ("num", "null"):
                fns = [lambda env, _f=f: _f64(_f(env)) for f in fns]
            elif kind == "str":
                fns = [lambda env, _f=f: _str(_f(env)) for f in fns]
            if name == "coalesce":
                return _C(kind, lambda env: _coalesce([f(env) for f in fns]))
            kern2 = pc.min_element_wise if name == "min" else pc.max_element_wise
            return _C(kind, lambda env: kern2(*[f(env) for f in fns], skip_nulls=True))
        if name in ("lower", "upper"):
            arity(1)
            x = self.compile(args[0], d)
            self._need(args[0], x, "str", f"{name}() applies to text")
            k = pc.utf8_lower if name == "lower" else pc.utf8_upper
            g = x.fn
            return _C("str", lambda env: k(_str(g(env))))
        if name in ("length", "len"):
            arity(1)
            x = self.compile(args[0], d)
            if x.kind not in ("str", "list", "null"):
                raise self.err(
                    args[0], f"{name}() applies to text or list columns; this is {_KIND_WORD[x.kind]}"
                )
            g = x.fn
            return _C("num", lambda env: _length(g(env)))
        if name in ("contains", "startswith", "endswith"):
            arity(2)
            x = self.compile(args[0], d)
            self._need(args[0], x, "str", f"{name}() applies to text")
            if not (isinstance(args[1], ast.Constant) and isinstance(args[1].value, str)):
                raise self.err(args[1], f"the second argument of {name}() must be text in quotes")
            pat = args[1].value
            if len(pat) > MAX_STRING:
                raise self.err(args[1], f"text literal too long (at most {MAX_STRING} characters)")
            k = {"contains": pc.match_substring, "startswith": pc.starts_with, "endswith": pc.ends_with}[name]
            g = x.fn
            return _C("bool", lambda env: _strfn(k, g(env), pat))
        if name in ("isnull", "notnull"):
            arity(1)
            g = self.compile(args[0], d).fn
            if name == "isnull":
                return _C("bool", lambda env: _isnull(g(env)))
            return _C("bool", lambda env: pc.invert(_isnull(g(env))))
        raise self.err(node, f"unknown function '{name}'")  # pragma: no cover - FUNCTIONS is exhaustive


# ---------------------------------------------------------------------- evaluation helpers
def _literal(v: Any) -> _C:
    if v is None:
        return _C("null", lambda env: pa.scalar(None), literal=None, is_literal=True)
    if isinstance(v, bool):
        kind, s = "bool", pa.scalar(v, pa.bool_())
    elif isinstance(v, int):
        kind, s = "num", pa.scalar(v, pa.int64())
    elif isinstance(v, float):
        kind, s = "num", pa.scalar(None if math.isnan(v) else v, pa.float64())
    else:
        kind, s = "str", pa.scalar(v, pa.string())
    return _C(kind, lambda env, _s=s: _s, literal=v, is_literal=True)


def _is_null_literal(node: ast.AST) -> bool:
    return (isinstance(node, ast.Constant) and node.value is None) or (
        isinstance(node, ast.Name) and node.id == "null"
    )


def _fold(op: Callable[[Value, Value], Value], fns: list[Fn]) -> Fn:
    def fn(env: Env) -> Value:
        it: Iterator[Fn] = iter(fns)
        acc = next(it)(env)
        for f in it:
            acc = op(acc, f(env))
        return acc

    return fn


def _normalise(x: Value) -> Value:
    """Decode dictionaries and make float NaN a null (so NaN compares like SQL's null)."""
    if isinstance(x, pa.ChunkedArray | pa.Array):
        if pa.types.is_dictionary(x.type):
            x = pc.cast(x, x.type.value_type)
        if pa.types.is_floating(x.type):
            x = _nan_to_null(x)
    return x


def _nan_to_null(x: Value) -> Value:
    if isinstance(x, pa.Scalar):
        if x.is_valid and pa.types.is_floating(x.type) and math.isnan(x.as_py()):
            return pa.scalar(None, x.type)
        return x
    if not pa.types.is_floating(x.type) or len(x) == 0:
        return x
    nan = pc.is_nan(x)
    if not pc.any(nan).as_py():
        return x
    return pc.if_else(nan, pa.scalar(None, x.type), x)


def _nonfinite_log(kern: Callable[[Value], Value], x: Value, name: str) -> Value:
    """log/sqrt of non-positive numbers: null instead of -inf/NaN."""
    res = kern(x)
    if name in ("log", "log10"):
        bad = pc.less_equal(x, 0.0)
        return pc.if_else(bad, pa.scalar(None, pa.float64()), res)
    return res


def _cmp(kernel: Callable[[Value, Value], Value], a: Value, b: Value) -> Value:
    """A comparison; with an all-null (null-typed) side the result is unknown (null) on every row."""
    if pa.types.is_null(a.type) or pa.types.is_null(b.type):
        arr = next((x for x in (a, b) if not isinstance(x, pa.Scalar)), None)
        return pa.scalar(None, pa.bool_()) if arr is None else pa.nulls(len(arr), pa.bool_())
    return kernel(a, b)


def _num(x: Value) -> Value:
    """A null-typed operand (an all-null column) as float64, so numeric kernels accept it."""
    return _f64(x) if pa.types.is_null(x.type) else x


def _str(x: Value) -> Value:
    """A null-typed operand as text, so string kernels accept it."""
    if pa.types.is_null(x.type):
        return pc.cast(x, pa.string()) if not isinstance(x, pa.Scalar) else pa.scalar(None, pa.string())
    return x


def _f64(x: Value) -> Value:
    if isinstance(x, pa.Scalar):
        return pa.scalar(None if not x.is_valid else float(x.as_py()), pa.float64())
    return x if pa.types.is_float64(x.type) else pc.cast(x, pa.float64())


def _isnull(x: Value) -> Value:
    if isinstance(x, pa.Scalar):
        return pa.scalar(not x.is_valid, pa.bool_())
    return pc.is_null(x, nan_is_null=True)


def _length(x: Value) -> Value:
    if isinstance(x, pa.Scalar):
        return pa.scalar(None if not x.is_valid else len(x.as_py()), pa.int64())
    if pa.types.is_null(x.type):
        return pa.nulls(len(x), pa.int64())
    if pa.types.is_string(x.type) or pa.types.is_large_string(x.type) or pa.types.is_string_view(x.type):
        return pc.utf8_length(x)
    return pc.list_value_length(x)


def _strfn(k: Callable[..., Value], x: Value, pat: str) -> Value:
    if isinstance(x, pa.Scalar):  # a literal: compute on one value, give a scalar back
        return _strfn(k, pa.array([x.as_py()], type=pa.string()), pat)[0]
    if pa.types.is_null(x.type):
        return pa.nulls(len(x), pa.bool_())
    return k(x, pattern=pat)


def _coalesce(vals: list[Value]) -> Value:
    typed = [v for v in vals if not (isinstance(v, pa.Scalar) and not v.is_valid)] or vals[:1]
    return pc.coalesce(*typed) if len(typed) > 1 else typed[0]


class _AnyColumn(Mapping[str, pa.DataType]):
    """Every name is a column of unknown (null) type: checks syntax and the whitelist only."""

    def __getitem__(self, key: str) -> pa.DataType:
        return pa.null()

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def check_where_syntax(text: str, what: str = "where") -> None:
    """Check an expression before any pool is known (e.g. in a config): syntax, whitelist, limits."""
    compile_where(text, _AnyColumn(), what)
