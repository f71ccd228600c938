"""A safe arithmetic evaluator for the calculator tool: Python's ``ast``, never ``eval``.

A model's tool arguments are untrusted input. Only numbers, the operators
+ - * / // % **, parentheses, a few math functions and the constants pi and
e are accepted; names, attributes, calls of anything else, comprehensions and
strings are rejected before anything runs. Sizes are bounded so that
``9**9**9`` is refused instead of hanging the process.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Callable

MAX_EXPRESSION_CHARS = 300
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e300

Number = int | float

_BINARY: dict[type[ast.operator], Callable[[Number, Number], Number]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNARY: dict[type[ast.unaryop], Callable[[Number], Number]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
}
FUNCTIONS: dict[str, Callable[..., Number]] = {
    "abs": abs,
    "round": round,
    "min": min,
    "max": max,
    "sqrt": math.sqrt,
    "log": math.log,
    "log10": math.log10,
    "exp": math.exp,
    "ceil": math.ceil,
    "floor": math.floor,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


class CalculationError(ValueError):
    """The expression is not plain arithmetic, or its value is out of bounds."""


def evaluate(expression: str) -> Number:
    """The value of an arithmetic ``expression``; :class:`CalculationError` otherwise."""
    text = expression.strip()
    if not text:
        raise CalculationError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise CalculationError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")
    except SyntaxError:
        raise CalculationError(f"{text!r} is not an arithmetic expression") from None
    try:
        return _value(tree.body)
    except (ArithmeticError, ValueError, TypeError) as exc:  # 1/0, sqrt(-1), min()
        if isinstance(exc, CalculationError):
            raise
        raise CalculationError(f"cannot compute {text!r}: {exc}") from None


def format_number(value: Number) -> str:
    """Integers as they are, other numbers to 12 significant digits."""
    if isinstance(value, int) or (float(value).is_integer() and abs(value) < 1e15):
        return str(int(value))
    return f"{value:.12g}"


def _value(node: ast.expr) -> Number:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return _bounded(node.value)
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_value(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _value(node.left), _value(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculationError(f"exponents above {MAX_EXPONENT} are not allowed")
        return _bounded(_BINARY[type(node.op)](left, right))
    if isinstance(node, ast.Call):
        return _call(node)
    raise CalculationError(f"{ast.unparse(node)!r} is not allowed: use numbers and + - * / ** ( )")


def _call(node: ast.Call) -> Number:
    name = node.func.id if isinstance(node.func, ast.Name) else ""
    if name not in FUNCTIONS or node.keywords:
        allowed = ", ".join(sorted(FUNCTIONS))
        raise CalculationError(f"{ast.unparse(node.func)!r} is not a known function ({allowed})")
    return _bounded(FUNCTIONS[name](*(_value(arg) for arg in node.args)))


def _bounded(value: Number) -> Number:
    if isinstance(value, complex) or not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise CalculationError("the result is too large (or not a real number)")
    return value
