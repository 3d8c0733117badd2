"""Math problems: multi-step arithmetic, fractions, percentages, linear equations, counting, number
theory, averages and word problems. Answers are computed with exact `Fraction` arithmetic.

Each problem also carries `check`: an independent Python/sympy expression of the answer (a brute-force
count, the formula with the problem's numbers, or an equation in x) that tests evaluate another way.
"""

from __future__ import annotations

import math as _m
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from m2rl.data.builtin import chat, draw_unique

INSTRUCTION = "Solve the problem. Give your final answer on the last line in the form `Answer: <answer>`."


@dataclass(frozen=True)
class MathProblem:
    """One math problem: its text, its gold answer text and an independent check of the answer."""

    kind: str
    question: str
    answer: str
    check: str  # Python expression (names from math/itertools/sympy) of the answer, or an equation in x


class Retry(Exception):
    """The random draw gave an unusable problem (not exact, too big); draw again."""


def fmt(value: Fraction, style: str = "int") -> str:
    """Exact answer text: an integer, a reduced fraction `p/q`, or a terminating decimal."""
    value = Fraction(value)
    if value.denominator == 1:
        return str(value.numerator)
    if style == "fraction":
        return f"{value.numerator}/{value.denominator}"
    if style == "decimal":
        d = value.denominator
        while d % 2 == 0:
            d //= 2
        while d % 5 == 0:
            d //= 5
        if d != 1:
            raise Retry("not a terminating decimal")
        text = f"{float(value):.6f}".rstrip("0").rstrip(".")
        if Fraction(text) != value:
            raise Retry("decimal needs more digits")
        return text
    raise Retry("not an integer")


# --- multi-step arithmetic ---------------------------------------------------------------------------

def _expr(rng: random.Random, depth: int) -> tuple[str, Fraction, bool]:
    """A random expression: (text, value, compound)."""
    if depth == 0 or (depth < 2 and rng.random() < 0.3):
        v = rng.randint(1, 20)
        return str(v), Fraction(v), False
    op = rng.choice("+-*/")
    lt, lv, lc = _expr(rng, depth - 1)
    rt, rv, rc = _expr(rng, depth - 1)
    if op == "/":
        if rv == 0 or (lv / rv).denominator != 1:
            # make it divide exactly: replace the left side by a multiple of the right
            if rv == 0 or rv.denominator != 1 or abs(rv) > 12:
                raise Retry("bad divisor")
            k = rng.randint(1, 9)
            lt, lv, lc = str(int(abs(rv) * k)), abs(rv) * k, False
    value = {"+": lv + rv, "-": lv - rv, "*": lv * rv, "/": lv / rv if rv else Fraction(0)}[op]
    if abs(value) > 2000 or value.denominator != 1:
        raise Retry("too big")
    lt = f"({lt})" if lc else lt
    rt = f"({rt})" if rc else rt
    return f"{lt} {op} {rt}", value, True


def arithmetic(rng: random.Random) -> MathProblem:
    while True:
        try:
            text, value, compound = _expr(rng, rng.choice((2, 2, 3)))
        except Retry:
            continue
        if compound and text.count(" ") >= 4:
            break
    if rng.random() < 0.25:
        b, e = rng.randint(2, 5), rng.randint(2, 3)
        text, value = f"{text} + {b}^{e}", value + b**e
    q = f"Compute the value of {text}." if rng.random() < 0.5 else f"Evaluate the expression {text}."
    return MathProblem("arithmetic", q, fmt(value), text.replace("^", "**"))


# --- fractions ---------------------------------------------------------------------------------------

def fractions(rng: random.Random) -> MathProblem:
    a, b = rng.randint(1, 11), rng.randint(2, 12)
    c, d = rng.randint(1, 11), rng.randint(2, 12)
    op = rng.choice("+-*/")
    x, y = Fraction(a, b), Fraction(c, d)
    value = {"+": x + y, "-": x - y, "*": x * y, "/": x / y}[op]
    shown = {"*": "×", "/": "÷"}.get(op, op)
    left, right = (f"({a}/{b})", f"({c}/{d})") if op in "*/" else (f"{a}/{b}", f"{c}/{d}")
    q = (f"Compute {left} {shown} {right}. Write the result as a fraction in lowest terms "
         "(or as an integer if it is one).")
    return MathProblem("fraction", q, fmt(value, "fraction"), f"Rational({a}, {b}) {op} Rational({c}, {d})")


# --- percentages -------------------------------------------------------------------------------------

_PCTS = (5, 10, 12, 15, 20, 25, 30, 35, 40, 45, 50, 60, 75, 80, 90, 120, 150)


def percentages(rng: random.Random) -> MathProblem:
    p = rng.choice(_PCTS)
    variant = rng.randrange(4)
    if variant == 0:
        n = rng.randint(2, 60) * rng.choice((4, 5, 10, 20))
        value = Fraction(p * n, 100)
        return MathProblem("percent", f"What is {p}% of {n}?", fmt(value, "decimal"), f"Rational({p}, 100) * {n}")
    if variant == 1:
        n = rng.randint(4, 80) * 5
        value = Fraction(n * (100 - min(p, 90)), 100)
        off = min(p, 90)
        item = rng.choice(("jacket", "lamp", "bicycle", "backpack", "chair", "tent", "camera", "kettle"))
        q = f"A {item} costs ${n}. It is on sale for {off}% off. What is the sale price in dollars?"
        return MathProblem("percent", q, fmt(value, "decimal"), f"{n} - {n} * {off} / 100")
    if variant == 2:
        n = rng.randint(2, 50) * 20
        m = Fraction(p * n, 100)
        if m.denominator != 1:
            raise Retry("not whole")
        q = f"What percent of {n} is {m}?"
        return MathProblem("percent", q, str(p), f"Rational({m}, {n}) * 100")
    a = rng.randint(5, 90) * 20
    b = a + a * p // 100
    if (a * p) % 100:
        raise Retry("not whole")
    town = rng.choice(("Millbrook", "Ashford", "Riverton", "Lakeside", "Fairview", "Oakdale", "Hillcrest"))
    q = f"The population of {town} grew from {a} to {b}. By what percent did it increase?"
    return MathProblem("percent", q, str(p), f"({b} - {a}) * 100 / Rational({a})")


# --- linear equations --------------------------------------------------------------------------------

def _lin(a: int, var: str = "x") -> str:
    return var if a == 1 else ("-" + var if a == -1 else f"{a}{var}")


def linear(rng: random.Random) -> MathProblem:
    x = rng.randint(-12, 15)
    variant = rng.randrange(3)
    if variant == 0:
        a = rng.choice([k for k in range(-9, 10) if k not in (0,)])
        b = rng.randint(-30, 30)
        c = a * x + b
        sign = "+" if b >= 0 else "-"
        q = f"Solve for x: {_lin(a)} {sign} {abs(b)} = {c}."
        return MathProblem("linear", q, str(x), f"{a}*x + ({b}) = {c}")
    if variant == 1:
        a, c = rng.randint(2, 9), rng.randint(1, 9)
        if a == c:
            raise Retry("no unique solution")
        b = rng.randint(1, 12)
        d = a * (x - b) - c * x
        sign = "+" if d >= 0 else "-"
        q = f"Solve for x: {a}(x - {b}) = {_lin(c)} {sign} {abs(d)}."
        return MathProblem("linear", q, str(x), f"{a}*(x - {b}) = {c}*x + ({d})")
    x = rng.randint(2, 40)
    a, b = rng.randint(2, 9), rng.randint(1, 40)
    c = a * x + b
    q = (f"I think of a number, multiply it by {a}, then add {b}, and the result is {c}. "
         "What number did I think of?")
    return MathProblem("linear", q, str(x), f"{a}*x + {b} = {c}")


# --- counting ----------------------------------------------------------------------------------------

_WORDS = ("LEVEL", "APPLE", "BANANA", "LETTER", "COFFEE", "PEPPER", "ORANGE", "SEASON", "TOMATO", "BALLOON",
          "RIVER", "PAPER", "GAMMA", "CANNON", "ALPHA", "DOTTED", "ROTOR", "RADAR", "CHEESE",
          "GARDEN", "PUZZLE", "BUBBLE", "COOKIE", "KETTLE", "MIRROR", "SUMMER", "TEETH", "HAPPY", "BOOKS",
          "STREET", "PEBBLE", "FLUFFY", "GIGGLE", "NOODLE", "REFER", "TATTOO", "ACCESS", "ASSESS")


def counting(rng: random.Random) -> MathProblem:
    variant = rng.randrange(5)
    if variant == 0:
        n = rng.randint(5, 40) * 10
        a, b = rng.sample((2, 3, 4, 5, 6, 7, 9, 11), 2)
        lcm = a * b // _m.gcd(a, b)
        value = n // a + n // b - n // lcm
        q = f"How many integers from 1 to {n} (inclusive) are divisible by {a} or by {b}?"
        return MathProblem("counting", q, str(value),
                           f"len([k for k in range(1, {n} + 1) if k % {a} == 0 or k % {b} == 0])")
    if variant == 1:
        n = rng.randint(5, 12)
        k = rng.randint(2, min(5, n - 1))
        q = f"In how many ways can a committee of {k} people be chosen from a group of {n} people?"
        return MathProblem("counting", q, str(_m.comb(n, k)), f"len(list(combinations(range({n}), {k})))")
    if variant == 2:
        word = rng.choice(_WORDS)
        counts: dict[str, int] = {}
        for ch in word:
            counts[ch] = counts.get(ch, 0) + 1
        value = _m.factorial(len(word))
        for c in counts.values():
            value //= _m.factorial(c)
        q = f"How many distinct arrangements of the letters of the word {word} are there?"
        return MathProblem("counting", q, str(value), f"len(set(permutations('{word}')))")
    if variant == 3:
        n = rng.randint(4, 30)
        q = (f"At a meeting, each of {n} people shakes hands exactly once with every other person. "
             "How many handshakes take place?")
        return MathProblem("counting", q, str(n * (n - 1) // 2), f"len(list(combinations(range({n}), 2)))")
    a, b, c = rng.randint(2, 9), rng.randint(2, 9), rng.randint(2, 6)
    q = (f"Sam has {a} shirts, {b} pairs of trousers and {c} pairs of shoes. An outfit is one shirt, one "
         "pair of trousers and one pair of shoes. How many different outfits can Sam make?")
    return MathProblem("counting", q, str(a * b * c),
                       f"len(list(product(range({a}), range({b}), range({c}))))")


# --- number theory -----------------------------------------------------------------------------------

def number_theory(rng: random.Random) -> MathProblem:
    variant = rng.randrange(4)
    g = rng.randint(2, 15)
    a, b = g * rng.randint(2, 12), g * rng.randint(2, 12)
    if a == b:
        raise Retry("equal")
    if variant == 0:
        q = f"What is the greatest common divisor of {a} and {b}?"
        return MathProblem("number_theory", q, str(_m.gcd(a, b)),
                           f"max(d for d in range(1, {min(a, b)} + 1) if {a} % d == 0 and {b} % d == 0)")
    if variant == 1:
        a, b = rng.randint(2, 30), rng.randint(2, 30)
        if a == b:
            raise Retry("equal")
        q = f"What is the least common multiple of {a} and {b}?"
        return MathProblem("number_theory", q, str(a * b // _m.gcd(a, b)),
                           f"min(m for m in range(1, {a * b} + 1) if m % {a} == 0 and m % {b} == 0)")
    if variant == 2:
        n = rng.randint(100, 9999)
        d = rng.randint(3, 13)
        q = f"What is the remainder when {n} is divided by {d}?"
        return MathProblem("number_theory", q, str(n % d), f"{n} - {d} * floor(Rational({n}, {d}))")
    n = rng.randint(10, 200)
    divisors = sum(1 for k in range(1, n + 1) if n % k == 0)
    q = f"How many positive divisors does {n} have?"
    return MathProblem("number_theory", q, str(divisors), f"divisor_count({n})")


# --- averages ----------------------------------------------------------------------------------------

def averages(rng: random.Random) -> MathProblem:
    k = rng.randint(3, 6)
    nums = [rng.randint(40, 100) for _ in range(k)]
    mean = Fraction(sum(nums), k)
    try:
        ans = fmt(mean, "decimal")
    except Retry:
        nums[-1] += (k - sum(nums) % k) % k
        mean = Fraction(sum(nums), k)
        ans = fmt(mean, "decimal")
    who = rng.choice(("Priya", "Leo", "Amara", "Jonas", "Mei", "Carlos", "Noor", "Ivan", "Zoe", "Kofi"))
    listed = ", ".join(map(str, nums[:-1])) + f" and {nums[-1]}"
    q = f"{who} scored {listed} on {k} tests. What is the mean (average) score?"
    return MathProblem("average", q, ans, f"Rational({' + '.join(map(str, nums))}, {k})")


# --- word problems -----------------------------------------------------------------------------------

_NAMES = ("Maria", "Tom", "Aisha", "Ben", "Yuki", "Omar", "Lena", "Raj", "Sofia", "Diego", "Hana", "Felix")
_ITEMS = (("notebook", "notebooks"), ("pen", "pens"), ("apple", "apples"), ("ticket", "tickets"),
          ("sandwich", "sandwiches"), ("book", "books"), ("candle", "candles"), ("mug", "mugs"))


def word_problem(rng: random.Random) -> MathProblem:
    variant = rng.randrange(5)
    name = rng.choice(_NAMES)
    if variant == 0:
        (_, i1), (_, i2) = rng.sample(_ITEMS, 2)
        a, p, b, r = rng.randint(2, 9), rng.randint(1, 12), rng.randint(2, 9), rng.randint(1, 12)
        cost = a * p + b * r
        bill = next(x for x in (20, 50, 100, 200) if x >= cost)
        q = (f"{name} buys {a} {i1} at ${p} each and {b} {i2} at ${r} each, and pays with a ${bill} bill. "
             "How much change, in dollars, does "
             f"{name} get?")
        return MathProblem("word", q, str(bill - cost), f"{bill} - ({a}*{p} + {b}*{r})")
    if variant == 1:
        v1, t1, v2, t2 = rng.randint(3, 12) * 10, rng.randint(1, 5), rng.randint(3, 12) * 10, rng.randint(1, 4)
        h1, h2 = ("hour" if t1 == 1 else "hours"), ("hour" if t2 == 1 else "hours")
        q = (f"A train travels at {v1} km/h for {t1} {h1} and then at {v2} km/h for {t2} {h2}. "
             "How many kilometers does it travel in total?")
        return MathProblem("word", q, str(v1 * t1 + v2 * t2), f"{v1}*{t1} + {v2}*{t2}")
    if variant == 2:
        trays, per = rng.randint(3, 15), rng.choice((6, 8, 12, 16, 20, 24))
        sold = rng.randint(1, trays * per - 1)
        q = (f"A baker makes {trays} trays of cookies with {per} cookies on each tray and sells {sold} "
             "cookies. How many cookies are left?")
        return MathProblem("word", q, str(trays * per - sold), f"{trays}*{per} - {sold}")
    if variant == 3:
        k, total_unit = rng.randint(2, 7), rng.randint(3, 20)
        total = total_unit * (k + 1)
        other = rng.choice([n for n in _NAMES if n != name])
        q = (f"{name} has {k} times as many marbles as {other}. Together they have {total} marbles. "
             f"How many marbles does {name} have?")
        return MathProblem("word", q, str(k * total_unit), f"x = {k} * ({total} - x)")
    w, h = rng.randint(3, 25), rng.randint(3, 25)
    price = rng.randint(2, 15)
    q = (f"A rectangular floor is {w} meters long and {h} meters wide. Tiling costs ${price} per square "
         "meter. How many dollars does it cost to tile the whole floor?")
    return MathProblem("word", q, str(w * h * price), f"{w}*{h}*{price}")


# --- mental arithmetic (opt-in) -----------------------------------------------------------------------

def mental(rng: random.Random) -> MathProblem:
    """One operation on small numbers ("What is 7 + 12?"): a warm-up set for models too small for the
    standard mix (SmolLM2-135M solves almost none of it but about a third of these), so that GRPO has a
    reward signal to learn from. Not in the default mix: select it with the source's `options.kinds`."""
    op = rng.choice("+-×")
    if op == "+":
        a, b = rng.randint(1, 15), rng.randint(1, 15)
        value = a + b
    elif op == "-":
        a = rng.randint(2, 20)
        b = rng.randint(1, a - 1)
        value = a - b
    else:
        a, b = rng.randint(2, 10), rng.randint(2, 10)
        value = a * b
    return MathProblem("mental", f"What is {a} {op} {b}?", str(value), f"{a} {'*' if op == '×' else op} {b}")


KINDS = (arithmetic, fractions, percentages, linear, counting, number_theory, averages, word_problem)
EXTRA_KINDS = (mental,)  # drawn only when asked for by name


def _safe(kind):
    def draw(rng: random.Random) -> MathProblem:
        while True:
            try:
                return kind(rng)
            except Retry:
                continue

    draw.__name__ = kind.__name__
    return draw


def problems(rng: random.Random, count: int, kinds: Sequence[Callable] = KINDS) -> list[MathProblem]:
    return draw_unique([_safe(k) for k in kinds], count, rng, lambda p: p.question)


def to_record(p: MathProblem) -> dict[str, Any]:
    return {"prompt": chat(f"{p.question}\n\n{INSTRUCTION}"), "label": p.answer, "verifier": {"type": "math"}}
