"""What a model file is, and loading ``torch.export`` archives without running their code.

A file named on the command line is classified by its content, never by its suffix
(:func:`classify`). ``torch.export.load`` itself is not safe on untrusted files: it
unpickles weights and constants marked ``use_pickle`` (``weights_only=False``), falls back
to an unrestricted unpickler for the sample inputs, evaluates every symbolic-shape string
with ``sympy.sympify`` (which calls ``eval``), executes the ``guards_code`` strings as
Python, generates Python source from names and stack traces in the graph, imports modules
named in pytree specs, and loads AOTInductor shared libraries. :func:`read_pt2_safely`
therefore reads the archive with :mod:`zipfile`, accepts only an allow-list of members and
values (tensor payloads stored raw, symbolic shapes in the plain ``sympy.srepr`` grammar,
operators of the ``aten``/``prims`` operator sets, guards that only compare input sizes),
and writes a fresh archive in memory from exactly what it checked (node metadata other
than module paths and extra files dropped, sample inputs re-saved from a ``weights_only``
load). Only that archive reaches ``torch.export.load``. Anything outside the allow-list
is refused with :class:`UnsafeModelFileError`, whose message names what was found and
that ``--allow-pickle`` loads the file as it is when it is trusted.
"""

from __future__ import annotations

import ast
import io
import json
import math
import operator
import re
import tokenize
import unicodedata
import zipfile
from pathlib import Path
from typing import Any, Literal

import click

__all__ = ["UnsafeModelFileError", "classify", "describe_kind", "read_pt2_safely"]

FileKind = Literal["pt2", "pt2-legacy", "torchscript", "torch-save", "torch-save-legacy", "unknown"]

TRUST_HINT = (
    "If you trust the file and where it came from, pass --allow-pickle to load it as it is "
    "(this runs whatever code it contains)."
)


class UnsafeModelFileError(click.ClickException):
    """A model file contains something nncompare does not load without ``--allow-pickle``."""


# --------------------------------------------------------------------------- classification


def _zip_names(path: Path) -> list[str] | None:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def classify(path: str | Path) -> FileKind:
    """Tell what kind of torch file ``path`` is from its content (nothing is unpickled).

    Returns
    -------
    str
        ``"pt2"`` (``torch.export.save``), ``"pt2-legacy"`` (the torch <= 2.7 export zip),
        ``"torchscript"`` (``torch.jit.save``), ``"torch-save"`` (``torch.save`` zip),
        ``"torch-save-legacy"`` (``torch.save`` with ``_use_new_zipfile_serialization=False``
        or a plain pickle), or ``"unknown"``.
    """
    path = Path(path)
    names = _zip_names(path)
    if names is None:
        try:
            with path.open("rb") as fh:
                head = fh.read(2)
        except OSError:
            return "unknown"
        # pickle protocol 2+ starts with PROTO (0x80); torch's legacy format starts with
        # the pickled magic number (protocol 2 as well).
        return "torch-save-legacy" if head[:1] == b"\x80" else "unknown"
    rel = {n.split("/", 1)[1] if "/" in n else n for n in names}
    if "serialized_exported_program.json" in rel or "serialized_exported_program.json" in names:
        return "pt2-legacy"
    if "archive_format" in rel:
        return "pt2"
    if "constants.pkl" in rel or any(r.startswith("code/") for r in rel):
        return "torchscript"
    if "data.pkl" in rel:
        return "torch-save"
    return "unknown"


def describe_kind(kind: FileKind) -> str:
    """Words for a file kind, for error messages."""
    return {
        "pt2": "a torch.export archive (.pt2)",
        "pt2-legacy": "a torch.export archive in the old (torch <= 2.7) format",
        "torchscript": "a TorchScript archive (torch.jit.save)",
        "torch-save": "a torch.save checkpoint",
        "torch-save-legacy": "a torch.save checkpoint in the legacy (non-zip) format",
        "unknown": "not a file torch can load",
    }[kind]


# --------------------------------------------------------------------------- pt2 allow-lists

_ID = r"[A-Za-z_][A-Za-z0-9_]*"
_MEMBER_PATTERNS = (
    re.compile(r"archive_format|archive_version|byteorder|\.data/version|\.data/serialization_id"),
    re.compile(rf"models/({_ID})\.json"),
    re.compile(rf"data/weights/({_ID})_weights_config\.json"),
    re.compile(r"data/weights/weight_[0-9]+"),
    re.compile(rf"data/constants/({_ID})_constants_config\.json"),
    re.compile(r"data/constants/tensor_[0-9]+"),
    re.compile(rf"data/sample_inputs/({_ID})\.pt"),
)
_DROPPED_PREFIXES = ("extra/",)  # free text, never needed to run the model
_PAYLOAD_NAME = {"weights": re.compile(r"weight_[0-9]+"), "constants": re.compile(r"tensor_[0-9]+")}

# sympy.srepr vocabulary of torch's symbolic shapes, plus torch's own sympy functions.
_SYMPY_NAMES = frozenset(
    {
        "Symbol", "Integer", "Float", "Rational", "Add", "Mul", "Pow", "Max", "Min", "Abs",
        "Mod", "floor", "ceiling", "Eq", "Ne", "Lt", "Le", "Gt", "Ge", "Equality",
        "Unequality", "StrictLessThan", "LessThan", "StrictGreaterThan", "GreaterThan",
        "And", "Or", "Not", "Xor", "true", "false", "True", "False", "oo", "zoo", "nan",
        "Infinity", "NegativeInfinity", "Half", "One", "Zero", "NegativeOne", "IntInfinity",
        "NegativeIntInfinity",
        # torch.utils._sympy.functions (the deserializer's sympy_functions)
        "FloorDiv", "ModularIndexing", "Where", "PythonMod", "CleanDiv", "CeilToInt",
        "FloorToInt", "CeilDiv", "IntTrueDiv", "FloatTrueDiv", "LShift", "RShift",
        "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt", "RoundToInt",
        "RoundDecimal", "ToFloat", "FloatPow", "PowByNatural", "Identity",
        # sympy assumptions, as keyword arguments of Symbol
        "algebraic", "commutative", "complex", "composite", "even", "extended_negative",
        "extended_nonnegative", "extended_nonpositive", "extended_nonzero",
        "extended_positive", "extended_real", "finite", "imaginary", "infinite", "integer",
        "irrational", "negative", "noninteger", "nonnegative", "nonpositive", "nonzero",
        "odd", "positive", "prime", "rational", "real", "zero",
    }
)  # fmt: skip
_SYMBOL_NAME = re.compile(r"[a-z]{1,6}[0-9]+")
_EXPR_OPS = frozenset(
    {"(", ")", ",", "=", "+", "-", "*", "/", "%", "<", ">", "<=", ">=", "==", "!="}
)
_MAX_NUMBER_CHARS = 24
_MAX_EXPR_CHARS = 20_000

_OPERATOR_FUNCS = frozenset(
    {
        "getitem", "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "neg", "pos",
        "abs", "and_", "or_", "xor", "not_", "invert", "eq", "ne", "lt", "le", "gt", "ge",
        "lshift", "rshift", "matmul", "truth",
    }
)  # fmt: skip
_MATH_FUNCS = frozenset(
    {
        "ceil", "floor", "trunc", "sqrt", "exp", "log", "log2", "log10", "pow", "fabs",
        "sin", "cos", "tan", "tanh", "isnan", "isinf", "isfinite", "gcd", "lcm", "copysign",
        "fmod", "factorial",
    }
)  # fmt: skip
_TORCH_FUNCS = frozenset(
    {
        "sym_int", "sym_float", "sym_max", "sym_min", "sym_not", "sym_ite", "sym_sqrt",
        "sym_sum", "_sym_sqrt",
    }
)  # fmt: skip
_OP_NAMESPACES = frozenset({"aten", "prims"})
_HIGHER_ORDER_OPS = frozenset(
    {
        "cond", "while_loop", "map_impl", "scan", "associative_scan", "invoke_subgraph",
        "wrap_with_set_grad_enabled", "wrap_with_autocast", "auto_functionalized",
        "auto_functionalized_v2", "with_effects", "hints_wrapper", "flex_attention",
    }
)  # fmt: skip
_DENIED_OPS = frozenset({"from_file"})  # reads an arbitrary file named by a string argument
_KEPT_NODE_METADATA = ("nn_module_stack",)
_GUARD_METHODS = frozenset({"size", "stride", "storage_offset", "dim", "numel"})
_TREESPEC_MARKERS = frozenset({"__enum__", "default_factory_module", "default_factory_name"})


def _refuse(path: Path, what: str) -> UnsafeModelFileError:
    return UnsafeModelFileError(
        f"refusing to load {path}: {what}. nncompare loads torch.export archives only when "
        f"every part is plain data (raw tensors, aten/prims operators, symbolic shapes). "
        f"{TRUST_HINT}"
    )


def _short(text: str, limit: int = 80) -> str:
    text = text.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _inert(text: str) -> bool:
    """A string that cannot close a quoted literal or start a new line of generated code."""
    for ch in text:
        if ch in "\"'\\`" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            return False
    return True


def check_sym_expr(expr: str) -> str | None:
    """``None`` if ``expr`` is a plain symbolic-shape expression, else why not."""
    if len(expr) > _MAX_EXPR_CHARS:
        return "a symbolic-shape expression is implausibly long"
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(expr).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return f"the symbolic-shape expression {_short(expr)!r} does not parse"
    previous: list[tokenize.TokenInfo] = []
    for tok in tokens:
        kind, text = tok.type, tok.string
        if kind in (tokenize.NEWLINE, tokenize.NL, tokenize.ENDMARKER):
            if text.strip():
                return f"the symbolic-shape expression {_short(expr)!r} spans several lines"
            continue
        if kind == tokenize.NAME:
            if text not in _SYMPY_NAMES and not _SYMBOL_NAME.fullmatch(text):
                return f"the symbolic-shape expression {_short(expr)!r} uses the name {text!r}"
        elif kind == tokenize.NUMBER:
            if len(text) > _MAX_NUMBER_CHARS:
                return f"the symbolic-shape expression {_short(expr)!r} has a huge literal"
        elif kind == tokenize.STRING:
            # only a symbol's name, as the first argument of Symbol('s0', ...)
            names = [t.string for t in previous[-2:]]
            if names != ["Symbol", "("] or text[:1] not in "'\"":
                return f"the symbolic-shape expression {_short(expr)!r} has a string literal"
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return f"the symbolic-shape expression {_short(expr)!r} has a bad literal"
            if not isinstance(value, str) or not re.fullmatch(_ID, value):
                return f"the symbolic-shape expression {_short(expr)!r} has a bad symbol name"
        elif kind == tokenize.OP:
            if text not in _EXPR_OPS:
                return f"the symbolic-shape expression {_short(expr)!r} uses {text!r}"
        else:
            return f"the symbolic-shape expression {_short(expr)!r} has unexpected syntax"
        previous.append(tok)
    return _check_powers(expr)


_POWERS = frozenset({"Pow", "PowByNatural", "FloatPow"})
_MAX_EXPONENT = 64


def _literal_number(node: ast.AST) -> float | None:
    """The value of ``3``, ``-3`` or ``Integer(3)`` / ``Float(3.0)`` nodes, else None."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = _literal_number(node.operand)
        return None if inner is None else -inner
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return float(node.value)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("Integer", "Float", "Rational")
        and node.args
    ):
        return _literal_number(node.args[0])
    return None


def _check_powers(expr: str) -> str | None:
    """Refuse literal powers that sympy would evaluate for ever (``Pow(10**20, 10**20)``)."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError:
        return f"the symbolic-shape expression {_short(expr)!r} does not parse"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in _POWERS and len(node.args) == 2:
                exponent = _literal_number(node.args[1])
                if exponent is not None and abs(exponent) > _MAX_EXPONENT:
                    return (
                        f"the symbolic-shape expression {_short(expr)!r} raises to the power "
                        f"{exponent:g}, far beyond any shape computation"
                    )
    return None


def _is_guard_input(node: ast.AST) -> bool:
    """``L['x']`` or ``L['x']['k']`` / ``L['x'][0]`` (a model input)."""
    if not isinstance(node, ast.Subscript) or not isinstance(node.slice, ast.Constant):
        return False
    key = node.slice.value
    if not (isinstance(key, int) and not isinstance(key, bool)) and not (
        isinstance(key, str) and re.fullmatch(_ID, key)
    ):
        return False
    return (isinstance(node.value, ast.Name) and node.value.id == "L") or _is_guard_input(
        node.value
    )


def check_guard(code: str) -> str | None:
    """``None`` if ``code`` only compares sizes of the inputs (``L['x'].size()[0] == 3``)."""
    try:
        tree = ast.parse(code, mode="eval")
    except SyntaxError:
        return f"the guard {_short(code)!r} does not parse"

    def ok(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return isinstance(node.value, (int, float, bool)) and not isinstance(node.value, str)
        if isinstance(node, ast.BoolOp):
            return all(ok(v) for v in node.values)
        if isinstance(node, ast.BinOp):
            return ok(node.left) and ok(node.right)
        if isinstance(node, ast.UnaryOp):
            return ok(node.operand)
        if isinstance(node, ast.Compare):
            return ok(node.left) and all(ok(c) for c in node.comparators)
        if isinstance(node, ast.Subscript):
            # L['x'].size()[i]
            return (
                isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, int)
                and not isinstance(node.slice.value, bool)
                and ok(node.value)
            )
        if isinstance(node, ast.Call):
            func = node.func
            return (
                not node.args
                and not node.keywords
                and isinstance(func, ast.Attribute)
                and func.attr in _GUARD_METHODS
                and _is_guard_input(func.value)
            )
        return False

    return None if ok(tree.body) else f"the guard {_short(code)!r} is not a plain size check"


def check_operator(target: str) -> str | None:
    """``None`` if ``target`` names an operator nncompare lets a graph call, else why not."""
    parts = target.split(".")
    if parts[0] == "torch" and len(parts) >= 4 and parts[1] == "ops":
        namespace, op = parts[2], parts[3]
        if len(parts) > 5 or not all(re.fullmatch(_ID, p) for p in parts):
            return f"the graph calls {_short(target)!r}"
        if namespace in _OP_NAMESPACES:
            if op in _DENIED_OPS:
                return f"the graph calls {target!r}, which reads files"
        elif namespace == "higher_order":
            if op not in _HIGHER_ORDER_OPS:
                return f"the graph calls the higher-order operator {target!r}"
        else:
            return f"the graph calls {target!r}, outside the aten and prims operator sets"
        import torch

        obj: Any = torch
        for name in parts[1:]:
            obj = getattr(obj, name, None)
            if obj is None:
                return f"the graph calls {target!r}, which does not exist in this torch"
        allowed = (
            torch._ops.OpOverload,
            torch._ops.OpOverloadPacket,
            torch._ops.HigherOrderOperator,
        )
        if not isinstance(obj, allowed):
            return f"the graph calls {target!r}, which is not an operator"
        return None
    if len(parts) == 2 and parts[0] == "_operator" and parts[1] in _OPERATOR_FUNCS:
        return None if callable(getattr(operator, parts[1], None)) else f"unknown {target!r}"
    if len(parts) == 2 and parts[0] == "math" and parts[1] in _MATH_FUNCS:
        return None if callable(getattr(math, parts[1], None)) else f"unknown {target!r}"
    if len(parts) == 2 and parts[0] == "torch" and parts[1] in _TORCH_FUNCS:
        return None
    return f"the graph calls {_short(target)!r}, which is not an aten/prims operator"


def _check_treespec(text: str) -> str | None:
    """A pytree spec (JSON, nested JSON strings) that names no module to import."""
    problem: str | None = None

    def walk(obj: Any, depth: int) -> None:
        nonlocal problem
        if problem is not None:
            return
        if depth > 64:
            problem = "a pytree spec is nested implausibly deep"
        elif isinstance(obj, dict):
            for key, value in obj.items():
                if key in _TREESPEC_MARKERS:
                    problem = f"a pytree spec names a Python object to import ({key!r})"
                    return
                walk(key, depth + 1)
                walk(value, depth + 1)
        elif isinstance(obj, list):
            for value in obj:
                walk(value, depth + 1)
        elif isinstance(obj, str):
            try:
                inner = json.loads(obj)
            except ValueError:
                inner = None
            if isinstance(inner, (dict, list)):
                walk(inner, depth + 1)
            elif not _inert(obj):
                problem = f"a pytree spec holds the string {_short(obj)!r}"

    try:
        walk(json.loads(text), 0)
    except ValueError:
        return f"a pytree spec is not JSON: {_short(text)!r}"
    return problem


def _check_model_json(obj: Any) -> tuple[Any, str | None]:
    """The program description without stack traces, or why it is refused."""
    problem: str | None = None

    def fail(why: str) -> None:
        nonlocal problem
        if problem is None:
            problem = why

    def walk(value: Any, key: str | None, depth: int) -> Any:
        if problem is not None:
            return None
        if depth > 200:
            fail("the program description is nested implausibly deep")
            return None
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            is_node = "target" in value and "inputs" in value
            for k, v in value.items():
                if is_node and k == "metadata" and isinstance(v, dict):
                    # Node metadata is provenance (stack traces, which torch.fx copies into
                    # generated source, "from_node", "custom" annotations, ...). Only the
                    # module paths are needed, to unflatten the program into named layers.
                    v = {m: v[m] for m in _KEPT_NODE_METADATA if m in v}
                if not isinstance(k, str) or not _inert(k):
                    fail(f"the program description has the key {_short(str(k))!r}")
                    return None
                out[k] = walk(v, k, depth + 1)
            return out
        if isinstance(value, list):
            if key == "guards_code":
                for code in value:
                    why = check_guard(code) if isinstance(code, str) else "a non-text guard"
                    if why:
                        fail(why)
                return list(value)
            return [walk(v, key, depth + 1) for v in value]
        if isinstance(value, str):
            why: str | None
            if key == "expr_str":
                why = check_sym_expr(value)
            elif key in ("target", "as_operator"):
                why = check_operator(value)
            elif key in ("in_spec", "out_spec"):
                why = _check_treespec(value)
            elif _inert(value):
                why = None
            else:
                why = f"the program description holds the string {_short(value)!r} ({key})"
            if why:
                fail(why)
            return value
        return value

    cleaned = walk(obj, None, 0)
    return cleaned, problem


def _check_payload_config(path: Path, raw: bytes, kind: str, members: set[str]) -> bytes:
    """A weights/constants config whose every entry is a raw tensor stored in the archive."""
    try:
        config = json.loads(raw)
        entries = config["config"]
        if not isinstance(entries, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        raise _refuse(path, f"its {kind} configuration is not the expected JSON") from None
    for fqn, entry in entries.items():
        if not isinstance(entry, dict):
            raise _refuse(path, f"its {kind} configuration entry {_short(str(fqn))!r} is malformed")
        if entry.get("use_pickle") is not False:
            raise _refuse(
                path,
                f"the {kind[:-1]} {_short(str(fqn))!r} is stored as a pickle (use_pickle), "
                "and unpickling runs code",
            )
        name = entry.get("path_name")
        if not isinstance(name, str) or not _PAYLOAD_NAME[kind].fullmatch(name):
            raise _refuse(
                path,
                f"the {kind[:-1]} {_short(str(fqn))!r} is a {_short(str(name))!r} payload, not "
                "a raw tensor (custom and opaque objects are unpickled)",
            )
        if f"data/{kind}/{name}" not in members:
            raise _refuse(path, f"the {kind[:-1]} file data/{kind}/{name} is missing")
        if not isinstance(entry.get("tensor_meta"), dict):
            raise _refuse(path, f"the {kind[:-1]} {_short(str(fqn))!r} has no tensor metadata")
        if not _inert(str(fqn)):
            raise _refuse(path, f"the {kind[:-1]} name {_short(str(fqn))!r} is not plain text")
    return json.dumps(config).encode()


def _safe_sample_inputs(path: Path, raw: bytes) -> bytes:
    import torch

    try:
        value = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _refuse(
            path,
            "its sample inputs are not plain tensors (torch would unpickle them without "
            f"restrictions: {str(exc).splitlines()[0][:120]})",
        ) from exc
    if not isinstance(value, (tuple, dict)):
        raise _refuse(path, f"its sample inputs are a {type(value).__name__}, not a tuple")
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


def read_pt2_safely(path: str | Path) -> bytes:
    """Check a ``torch.export`` archive and return a clean copy for ``torch.export.load``.

    Parameters
    ----------
    path : str or Path
        The ``.pt2`` file.

    Returns
    -------
    bytes
        A new zip archive holding only the checked members (see the module docstring).

    Raises
    ------
    UnsafeModelFileError
        If any member or value is outside the allow-list; the message says which and how to
        load the file anyway when it is trusted (``--allow-pickle``).
    """
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise click.ClickException(f"cannot read {path} as a zip archive: {exc}") from exc
    with zf:
        infos = zf.infolist()
        names = [i.filename for i in infos]
        if len(set(names)) != len(names):
            raise _refuse(path, "it has several members with the same name")
        prefixes = {n.split("/", 1)[0] for n in names}
        if len(prefixes) != 1 or any("/" not in n for n in names):
            raise _refuse(path, "its members are not all in one top-level folder")
        prefix = prefixes.pop()
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", prefix) or prefix in (".", ".."):
            raise _refuse(path, f"its top-level folder is called {_short(prefix)!r}")
        files: dict[str, bytes] = {}
        for info in infos:
            rel = info.filename.split("/", 1)[1]
            if info.is_dir() or rel == "":
                continue
            if rel.startswith(_DROPPED_PREFIXES):
                continue
            if not any(p.fullmatch(rel) for p in _MEMBER_PATTERNS):
                what = f"it contains {_short(rel)!r}"
                if rel.startswith("data/aotinductor/"):
                    what += " (AOTInductor compiled native code, run when loaded)"
                elif rel.endswith((".pt", ".pkl")):
                    what += " (a pickle)"
                raise _refuse(path, what)
            files[rel] = zf.read(info)
    if files.get("archive_format", b"").strip() != b"pt2":
        raise _refuse(path, "it has no 'archive_format' marker of a torch.export archive")
    models = [m.group(1) for rel in files if (m := _MEMBER_PATTERNS[1].fullmatch(rel))]
    if not models:
        raise _refuse(path, "it holds no exported program (models/*.json)")
    members = set(files)
    clean: dict[str, bytes] = dict(files)
    for rel, raw in files.items():
        if _MEMBER_PATTERNS[2].fullmatch(rel):
            clean[rel] = _check_payload_config(path, raw, "weights", members)
        elif _MEMBER_PATTERNS[4].fullmatch(rel):
            clean[rel] = _check_payload_config(path, raw, "constants", members)
        elif _MEMBER_PATTERNS[6].fullmatch(rel):
            clean[rel] = _safe_sample_inputs(path, raw)
        elif _MEMBER_PATTERNS[1].fullmatch(rel):
            try:
                program = json.loads(raw)
            except ValueError:
                raise _refuse(path, f"{rel} is not JSON") from None
            cleaned, why = _check_model_json(program)
            if why:
                raise _refuse(path, why)
            clean[rel] = json.dumps(cleaned).encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zo:
        for rel, raw in clean.items():
            zo.writestr(f"{prefix}/{rel}", raw)
    return out.getvalue()


def load_pt2(path: str | Path, *, allow_pickle: bool = False) -> Any:
    """``torch.export.load`` of a checked copy of ``path`` (or of the file itself if trusted)."""
    import torch

    source: Any = str(path) if allow_pickle else io.BytesIO(read_pt2_safely(path))
    try:
        return torch.export.load(source)
    except Exception as exc:
        raise click.ClickException(
            f"cannot load the torch.export archive {path}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''} (made with another torch "
            "version? re-export it with this one)"
        ) from exc
