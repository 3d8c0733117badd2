"""Stdin/stdout programming tasks with 3-5 unit tests each (LiveCodeBench style: `inputs` are stdin
texts, `outputs` the expected stdout texts).

Every task family has two independent implementations: `oracle`, a Python function that computes the
expected output (what the records store), and `program`, the reference solution as a program text
(what tests run in a subprocess and compare with the stored outputs). Families take parameters (a
divisor, a shift, a base, ...) so that their prompts differ.

Kinds: the standard kinds are the families (`KINDS`, named as the families, drawn in turn); the opt-in
`echo_transform` (`EXTRA_KINDS`, `options.kinds: [echo_transform]`) draws from `EASY_FAMILIES`, one-line
transforms of stdin, asked as a change to the shown program of a sibling task, for models too small
for the rest.
"""

from __future__ import annotations

import calendar
import math as _m
import random
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, combinations
from string import Template
from typing import Any

from m2rl.data.builtin import chat

INSTRUCTION = ("Write a complete Python 3 program that reads from standard input and writes to standard "
               "output. Put the whole program in a single ```python code block.")


@dataclass(frozen=True)
class Family:
    """A kind of task: its parameters, statement, test inputs and two implementations."""

    name: str
    params: Callable[[random.Random], dict[str, Any]]
    statement: Callable[[dict[str, Any]], str]
    make_input: Callable[[random.Random, dict[str, Any]], str]
    oracle: Callable[[dict[str, Any], str], str]
    program: Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class CodeProblem:
    """One programming task: its statement, its unit tests and the reference solution program."""

    family: str
    params: tuple[tuple[str, Any], ...]
    statement: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    solution: str = field(repr=False)


# --- input helpers -----------------------------------------------------------------------------------

def _nums(r: random.Random, lo: int = -50, hi: int = 100, nmin: int = 1, nmax: int = 10) -> list[int]:
    return [r.randint(lo, hi) for _ in range(r.randint(nmin, nmax))]


def _list_input(nums: list[int]) -> str:
    return f"{len(nums)}\n{' '.join(map(str, nums))}\n"


def _distinct2(r: random.Random) -> list[int]:
    """A list with at least two distinct values."""
    while True:
        a = _nums(r, nmin=2)
        if len(set(a)) >= 2:
            return a


def _read_list(text: str) -> list[int]:
    lines = text.split("\n")
    n = int(lines[0])
    return [int(x) for x in lines[1].split()][:n] if n else []


_WORDS = ("apple", "river", "stone", "cloud", "level", "tiger", "mango", "orbit", "pixel", "quartz", "noon",
          "radar", "banana", "zebra", "kayak", "lemon", "otter", "piano", "vivid", "yacht", "civic", "delta",
          "eagle", "forest", "glass", "honey", "igloo", "jungle", "koala", "moon", "night", "ocean", "refer")


def _sentence(r: random.Random, nmin: int = 2, nmax: int = 8) -> str:
    return " ".join(r.choice(_WORDS) for _ in range(r.randint(nmin, nmax)))


def _out(*lines: Any) -> str:
    return "".join(f"{x}\n" for x in lines)


LIST_IN = ("The first line contains an integer n (1 ≤ n ≤ 10). The second line contains n integers "
           "separated by spaces.")
LINE_IN = "A single line of lowercase words separated by single spaces."


def _t(src: str, **params: Any) -> str:
    return Template(src).substitute(**params).strip() + "\n"


FAMILIES: list[Family] = []


def family(name: str, params, statement, make_input, oracle, program) -> None:
    FAMILIES.append(Family(name, params, statement, make_input, oracle, program))


# --- numbers in a list -------------------------------------------------------------------------------

family(
    "sum_divisible",
    lambda r: {"k": r.randint(2, 12), "negate": r.random() < 0.4},
    lambda p: (f"Read a list of integers and print the sum of those that are {'not ' if p['negate'] else ''}"
               f"divisible by {p['k']} (0 if there are none).\n\nInput: {LIST_IN}\nOutput: one integer."),
    lambda r, p: _list_input(_nums(r)),
    lambda p, s: _out(sum(x for x in _read_list(s) if (x % p["k"] == 0) != p["negate"])),
    lambda p: _t("""
n = int(input())
a = list(map(int, input().split()))
total = 0
for x in a[:n]:
    if $cond:
        total += x
print(total)
""", cond=f"x % {p['k']} {'!=' if p['negate'] else '=='} 0"),
)

family(
    "list_statistic",
    lambda r: (lambda stat: {"stat": stat, "k": r.randint(2, 4)} if stat == "top" else {"stat": stat, "k": 0})(
        r.choice(("maximum", "minimum", "range", "sum", "second", "top"))),
    lambda p: {
        "maximum": "Read a list of integers and print the largest of them.",
        "minimum": "Read a list of integers and print the smallest of them.",
        "range": "Read a list of integers and print the difference between the largest and the smallest.",
        "sum": "Read a list of integers and print their sum.",
        "second": ("Read a list of integers (at least two distinct values are guaranteed) and print the second "
                   "largest distinct value."),
        "top": f"Read a list of at least {p['k']} integers and print the sum of the {p['k']} largest of them.",
    }[p["stat"]] + f"\n\nInput: {LIST_IN}\nOutput: one integer.",
    lambda r, p: _list_input(_distinct2(r) if p["stat"] == "second" else _nums(r, nmin=max(1, p["k"]))),
    lambda p, s: _out({
        "maximum": max, "minimum": min, "range": lambda a: max(a) - min(a), "sum": sum,
        "second": lambda a: sorted(set(a))[-2], "top": lambda a: sum(sorted(a)[-p["k"]:]),
    }[p["stat"]](_read_list(s))),
    lambda p: _t("""
n = int(input())
a = list(map(int, input().split()))[:n]
$body
""", body={
        "maximum": "best = a[0]\nfor x in a:\n    if x > best:\n        best = x\nprint(best)",
        "minimum": "best = a[0]\nfor x in a:\n    if x < best:\n        best = x\nprint(best)",
        "range": "hi = lo = a[0]\nfor x in a:\n    hi = max(hi, x)\n    lo = min(lo, x)\nprint(hi - lo)",
        "sum": "t = 0\nfor x in a:\n    t += x\nprint(t)",
        "second": "u = sorted(set(a), reverse=True)\nprint(u[1])",
        "top": f"a.sort(reverse=True)\nprint(sum(a[:{p['k']}]))",
    }[p["stat"]]),
)

family(
    "sum_parity",
    lambda r: {"even": r.random() < 0.5},
    lambda p: (f"Read a list of integers and print the sum of the {'even' if p['even'] else 'odd'} numbers "
               f"among them (0 if there are none).\n\nInput: {LIST_IN}\nOutput: one integer."),
    lambda r, p: _list_input(_nums(r)),
    lambda p, s: _out(sum(x for x in _read_list(s) if (x % 2 == 0) == p["even"])),
    lambda p: _t("""
n = int(input())
t = 0
for x in input().split()[:n]:
    v = int(x)
    if v % 2 $op 0:
        t += v
print(t)
""", op="==" if p["even"] else "!="),
)

family(
    "sort_list",
    lambda r: {"order": r.choice(("ascending", "descending"))},
    lambda p: (f"Read a list of integers and print them sorted in {p['order']} order, separated by spaces."
               f"\n\nInput: {LIST_IN}\nOutput: one line with the sorted numbers."),
    lambda r, p: _list_input(_nums(r)),
    lambda p, s: _out(" ".join(map(str, sorted(_read_list(s), reverse=p["order"] == "descending")))),
    lambda p: _t("""
n = int(input())
a = list(map(int, input().split()))[:n]
for i in range(len(a)):
    for j in range(len(a) - 1 - i):
        if a[j] $cmp a[j + 1]:
            a[j], a[j + 1] = a[j + 1], a[j]
print(' '.join(str(x) for x in a))
""", cmp=">" if p["order"] == "ascending" else "<"),
)

family(
    "kth_smallest",
    lambda r: {"k": r.randint(1, 3), "largest": r.random() < 0.5},
    lambda p: (f"Read a list of at least 3 integers and print the {p['k']}-th {'largest' if p['largest'] else 'smallest'} "
               f"element (counting repeated values separately, 1-based).\n\nInput: {LIST_IN}\nOutput: one integer."),
    lambda r, p: _list_input(_nums(r, nmin=3)),
    lambda p, s: _out(sorted(_read_list(s), reverse=p["largest"])[p["k"] - 1]),
    lambda p: _t("""
import heapq
n = int(input())
a = list(map(int, input().split()))[:n]
print(heapq.$fn($k, a)[-1])
""", fn="nlargest" if p["largest"] else "nsmallest", k=p["k"]),
)

family(
    "rotate_list",
    lambda r: {"k": r.randint(1, 6), "right": r.random() < 0.5},
    lambda p: (f"Read a list of integers and rotate it {p['k']} positions to the {'right' if p['right'] else 'left'} "
               f"(cyclically). Print the rotated list separated by spaces.\n\nInput: {LIST_IN}\n"
               "Output: one line with the rotated list."),
    lambda r, p: _list_input(_nums(r, nmin=2)),
    lambda p, s: _out(" ".join(map(str, _rotate(_read_list(s), p["k"], p["right"])))),
    lambda p: _t("""
from collections import deque
n = int(input())
d = deque(map(int, input().split()[:n]))
d.rotate($k)
print(*d)
""", k=p["k"] if p["right"] else -p["k"]),
)

def _rotate(a: list[int], k: int, right: bool) -> list[int]:
    k %= len(a)
    if right:
        k = (len(a) - k) % len(a)
    return a[k:] + a[:k]


family(
    "distinct_stats",
    lambda r: {"what": r.choice(("count", "unique", "mode", "dedup"))},
    lambda p: {
        "count": "Read a list of integers and print how many distinct values it contains.\n\nOutput: one integer.",
        "unique": ("Read a list of integers and print the values that occur exactly once, in their original "
                   "order, separated by spaces; print NONE if there are none.\n\nOutput: one line."),
        "mode": ("Read a list of integers and print the value that occurs most often; if several values tie, "
                 "print the smallest of them.\n\nOutput: one integer."),
        "dedup": ("Read a list of integers and print it with repeated values removed, keeping the first "
                  "occurrence of each value, separated by spaces.\n\nOutput: one line."),
    }[p["what"]] + f"\nInput: {LIST_IN}",
    lambda r, p: _list_input(_nums(r, lo=0, hi=6, nmin=2)),
    lambda p, s: (lambda a, c: _out({
        "count": len(c),
        "unique": " ".join(str(x) for x in a if c[x] == 1) or "NONE",
        "mode": min(x for x in c if c[x] == max(c.values())),
        "dedup": " ".join(map(str, dict.fromkeys(a))),
    }[p["what"]]))(_read_list(s), Counter(_read_list(s))),
    lambda p: _t("""
n = int(input())
a = list(map(int, input().split()))[:n]
$body
""", body={
        "count": "seen = []\nfor x in a:\n    if x not in seen:\n        seen.append(x)\nprint(len(seen))",
        "unique": "res = [x for x in a if a.count(x) == 1]\nprint(' '.join(map(str, res)) if res else 'NONE')",
        "mode": "best = None\nfor x in sorted(a):\n    if best is None or a.count(x) > a.count(best):\n        best = x\nprint(best)",
        "dedup": "out = []\nfor x in a:\n    if x not in out:\n        out.append(x)\nprint(' '.join(map(str, out)))",
    }[p["what"]]),
)

family(
    "pair_sum",
    lambda r: {},
    lambda p: ("Count the pairs of positions i < j such that a[i] + a[j] equals a target T.\n\nInput: the first "
               "line contains n and T; the second line contains n integers.\nOutput: one integer."),
    lambda r, p: (lambda a: f"{len(a)} {r.randint(0, 10)}\n{' '.join(map(str, a))}\n")(_nums(r, 0, 8, 2, 10)),
    lambda p, s: (lambda head, a: _out(sum(1 for x, y in combinations(a, 2) if x + y == int(head[1]))))(
        s.split("\n")[0].split(), list(map(int, s.split("\n")[1].split()))),
    lambda p: _t("""
n, t = map(int, input().split())
a = list(map(int, input().split()))[:n]
seen = {}
count = 0
for x in a:
    count += seen.get(t - x, 0)
    seen[x] = seen.get(x, 0) + 1
print(count)
"""),
)

family(
    "prefix_sums",
    lambda r: {"kind": r.choice(("prefix sums", "prefix maxima"))},
    lambda p: (f"Read a list of integers and print its {p['kind']}: the i-th printed value is the "
               f"{'sum' if p['kind'] == 'prefix sums' else 'maximum'} of the first i numbers. Separate them by "
               f"spaces.\n\nInput: {LIST_IN}\nOutput: one line."),
    lambda r, p: _list_input(_nums(r)),
    lambda p, s: _out(" ".join(map(str, accumulate(_read_list(s), max if p["kind"] == "prefix maxima"
                                                    else (lambda x, y: x + y))))),
    lambda p: _t("""
n = int(input())
a = list(map(int, input().split()))[:n]
out = []
cur = None
for x in a:
    cur = x if cur is None else $combine
    out.append(cur)
print(' '.join(map(str, out)))
""", combine="cur + x" if p["kind"] == "prefix sums" else "(x if x > cur else cur)"),
)

family(
    "is_sorted",
    lambda r: {"strict": r.random() < 0.5},
    lambda p: (f"Read a list of integers and print YES if it is sorted in {'strictly ' if p['strict'] else 'non-decreasing'}"
               f"{'increasing' if p['strict'] else ''} order, NO otherwise.\n\nInput: {LIST_IN}\nOutput: YES or NO."),
    lambda r, p: _list_input(sorted(_nums(r, 0, 9)) if r.random() < 0.5 else _nums(r, 0, 9)),
    lambda p, s: _out("YES" if all((x < y) if p["strict"] else (x <= y) for x, y in
                                   zip(_read_list(s), _read_list(s)[1:], strict=False)) else "NO"),
    lambda p: _t("""
n = int(input())
a = list(map(int, input().split()))[:n]
ok = True
for i in range(1, len(a)):
    if a[i - 1] $bad a[i]:
        ok = False
print('YES' if ok else 'NO')
""", bad=">=" if p["strict"] else ">"),
)

# --- number theory -----------------------------------------------------------------------------------

family(
    "gcd_lcm",
    lambda r: {"what": r.choice(("greatest common divisor", "least common multiple"))},
    lambda p: (f"Read two positive integers a and b and print their {p['what']}.\n\nInput: one line with a and b."
               "\nOutput: one integer."),
    lambda r, p: f"{r.randint(1, 300)} {r.randint(1, 300)}\n",
    lambda p, s: (lambda a, b: _out(_m.gcd(a, b) if p["what"].startswith("greatest") else a * b // _m.gcd(a, b)))(
        *map(int, s.split())),
    lambda p: _t("""
a, b = map(int, input().split())
x, y = a, b
while y:
    x, y = y, x % y
print($res)
""", res="x" if p["what"].startswith("greatest") else "a * b // x"),
)

_MODS = (7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 97, 101, 127, 1000, 1009, 10007, 65537, 100003,
         998244353, 1000000007, 9973, 7919, 4999, 2017, 360, 1024, 999)

family(
    "power_mod",
    lambda r: {"m": r.choice(_MODS)},
    lambda p: (f"Read two integers a and b (0 ≤ a ≤ 10^9, 0 ≤ b ≤ 10^9) and print a to the power b modulo "
               f"{p['m']}.\n\nInput: one line with a and b.\nOutput: one integer."),
    lambda r, p: f"{r.randint(0, 10**9)} {r.randint(0, 10**9)}\n" if r.random() < 0.7 else
    f"{r.randint(0, 20)} {r.randint(0, 12)}\n",
    lambda p, s: _out(pow(*map(int, s.split()), p["m"])),
    lambda p: _t("""
a, b = map(int, input().split())
m = $m
result = 1 % m
a %= m
while b > 0:
    if b & 1:
        result = result * a % m
    a = a * a % m
    b >>= 1
print(result)
""", m=p["m"]),
)


def _fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


family(
    "fibonacci_mod",
    lambda r: {"m": r.choice(_MODS)},
    lambda p: (f"The Fibonacci numbers are F(0) = 0, F(1) = 1 and F(n) = F(n-1) + F(n-2). Read n (0 ≤ n ≤ 90) "
               f"and print F(n) modulo {p['m']}.\n\nInput: one integer n.\nOutput: one integer."),
    lambda r, p: f"{r.randint(0, 90)}\n",
    lambda p, s: _out(_fib(int(s)) % p["m"]),
    lambda p: _t("""
n = int(input())
f = [0, 1]
for i in range(2, n + 1):
    f.append(f[-1] + f[-2])
print(f[n] % $m)
""", m=p["m"]),
)

family(
    "factorial_mod",
    lambda r: {"m": r.choice(_MODS)},
    lambda p: (f"Read n (0 ≤ n ≤ 1000) and print n! (n factorial) modulo {p['m']}.\n\nInput: one integer n.\n"
               "Output: one integer."),
    lambda r, p: f"{r.randint(0, 1000) if r.random() < 0.7 else r.randint(0, 12)}\n",
    lambda p, s: _out(_m.factorial(int(s)) % p["m"]),
    lambda p: _t("""
n = int(input())
r = 1
for i in range(2, n + 1):
    r = r * i % $m
print(r % $m)
""", m=p["m"]),
)


def _primes_upto(n: int) -> list[int]:
    return [k for k in range(2, n + 1) if all(k % d for d in range(2, _m.isqrt(k) + 1))]


family(
    "primes",
    lambda r: {"what": r.choice(("count", "check", "nth"))},
    lambda p: {
        "count": "Read n (1 ≤ n ≤ 10000) and print how many prime numbers are less than or equal to n.",
        "check": "Read n (1 ≤ n ≤ 10^6) and print YES if n is a prime number, NO otherwise.",
        "nth": "Read n (1 ≤ n ≤ 500) and print the n-th prime number (the first prime is 2).",
    }[p["what"]] + "\n\nInput: one integer n.\nOutput: one line.",
    lambda r, p: f"{r.randint(1, {'count': 10000, 'check': 10**6, 'nth': 500}[p['what']])}\n"
    if r.random() < 0.7 else f"{r.randint(1, 30)}\n",
    lambda p, s: _out({"count": lambda n: len(_primes_upto(n)),
                       "check": lambda n: "YES" if n > 1 and all(n % d for d in range(2, _m.isqrt(n) + 1)) else "NO",
                       "nth": lambda n: _primes_upto(3600)[n - 1]}[p["what"]](int(s))),
    lambda p: _t("""
n = int(input())
$body
""", body={"check": ("ok = n > 1\nd = 2\nwhile d * d <= n:\n    if n % d == 0:\n        ok = False\n        break\n"
                     "    d += 1\nprint('YES' if ok else 'NO')"),
           "count": ("sieve = [True] * (n + 1)\nsieve[0] = False\nif n >= 1:\n    sieve[1] = False\n"
                     "for i in range(2, int(n ** 0.5) + 1):\n    if sieve[i]:\n        for j in range(i * i, n + 1, i):\n"
                     "            sieve[j] = False\nprint(sum(sieve))"),
           "nth": ("primes = []\nk = 2\nwhile len(primes) < n:\n    if all(k % q for q in primes if q * q <= k):\n"
                   "        primes.append(k)\n    k += 1\nprint(primes[-1])")}[p["what"]]),
)

family(
    "digits",
    lambda r: (lambda what: {"what": what, "d": r.randint(0, 9) if what == "count" else -1})(
        r.choice(("sum", "product", "root", "count", "count", "count"))),
    lambda p: {
        "sum": "Read a non-negative integer and print the sum of its decimal digits.",
        "product": "Read a non-negative integer and print the product of its decimal digits.",
        "root": ("Read a non-negative integer and print its digital root: repeatedly replace the number by the "
                 "sum of its digits until a single digit remains."),
        "count": f"Read a non-negative integer and print how many of its decimal digits are equal to {p['d']}.",
    }[p["what"]] + "\n\nInput: one integer (up to 18 digits).\nOutput: one integer.",
    lambda r, p: f"{r.randint(0, 10 ** r.randint(1, 18))}\n",
    lambda p, s: _out({"sum": lambda t: sum(map(int, t)), "product": lambda t: _m.prod(map(int, t)),
                       "root": lambda t: 0 if int(t) == 0 else 1 + (int(t) - 1) % 9,
                       "count": lambda t: t.count(str(p["d"]))}[p["what"]](s.strip())),
    lambda p: _t("""
n = int(input())
$body
""", body={
        "sum": "s = 0\nwhile n > 0:\n    s += n % 10\n    n //= 10\nprint(s)",
        "product": "p = 1\nwhile True:\n    p *= n % 10\n    n //= 10\n    if n == 0:\n        break\nprint(p)",
        "root": "while n >= 10:\n    n = sum(int(c) for c in str(n))\nprint(n)",
        "count": f"c = 0\nwhile True:\n    c += n % 10 == {p['d']}\n    n //= 10\n    if n == 0:\n        break\nprint(c)",
    }[p["what"]]),
)

family(
    "digit_sum_divisible",
    lambda r: {"k": r.randint(2, 9)},
    lambda p: (f"Read n (1 ≤ n ≤ 10000) and print how many integers from 1 to n have a digit sum divisible by "
               f"{p['k']}.\n\nInput: one integer n.\nOutput: one integer."),
    lambda r, p: f"{r.randint(1, 10000)}\n",
    lambda p, s: _out(sum(1 for x in range(1, int(s) + 1) if sum(map(int, str(x))) % p["k"] == 0)),
    lambda p: _t("""
n = int(input())
count = 0
for x in range(1, n + 1):
    s, y = 0, x
    while y:
        s += y % 10
        y //= 10
    if s % $k == 0:
        count += 1
print(count)
""", k=p["k"]),
)

family(
    "to_base",
    lambda r: {"b": r.randint(2, 16)},
    lambda p: (f"Read a non-negative integer n (n ≤ 10^12) and print it in base {p['b']}"
               f"{' (use the uppercase letters A-F for digits above 9)' if p['b'] > 10 else ''}.\n\n"
               "Input: one integer n.\nOutput: one line."),
    lambda r, p: f"{r.randint(0, 10 ** r.randint(1, 12))}\n",
    lambda p, s: _out(_to_base(int(s), p["b"])),
    lambda p: _t("""
n = int(input())
digits = '0123456789ABCDEF'
out = ''
while True:
    out = digits[n % $b] + out
    n //= $b
    if n == 0:
        break
print(out)
""", b=p["b"]),
)


def _to_base(n: int, b: int) -> str:
    if n < b:
        return "0123456789ABCDEF"[n]
    return _to_base(n // b, b) + "0123456789ABCDEF"[n % b]


family(
    "popcount",
    lambda r: {"bit": r.choice(("ones", "zeros"))},
    lambda p: (f"Read a positive integer n (n ≤ 10^12) and print the number of {p['bit']} in its binary "
               "representation (without leading zeros).\n\nInput: one integer n.\nOutput: one integer."),
    lambda r, p: f"{r.randint(1, 10 ** r.randint(1, 12))}\n",
    lambda p, s: _out(format(int(s), "b").count("1" if p["bit"] == "ones" else "0")),
    lambda p: _t("""
n = int(input())
ones = zeros = 0
while n:
    if n % 2:
        ones += 1
    else:
        zeros += 1
    n //= 2
print($v)
""", v=p["bit"]),
)

family(
    "collatz",
    lambda r: {},
    lambda p: ("Starting from a positive integer n, repeatedly replace n by n/2 if it is even and by 3n+1 if it "
               "is odd. Print how many replacements are needed to reach 1.\n\nInput: one integer n (1 ≤ n ≤ "
               "10^6).\nOutput: one integer."),
    lambda r, p: f"{r.randint(1, 10**6)}\n",
    lambda p, s: _out(_collatz(int(s))),
    lambda p: _t("""
n = int(input())
steps = 0
while n != 1:
    n = n // 2 if n % 2 == 0 else 3 * n + 1
    steps += 1
print(steps)
"""),
)


def _collatz(n: int) -> int:
    return 0 if n == 1 else 1 + _collatz(n // 2 if n % 2 == 0 else 3 * n + 1)


family(
    "power_sum",
    lambda r: {"p": r.randint(1, 6)},
    lambda p: (f"Read n (1 ≤ n ≤ 1000) and print 1^{p['p']} + 2^{p['p']} + ... + n^{p['p']}.\n\n"
               "Input: one integer n.\nOutput: one integer."),
    lambda r, p: f"{r.randint(1, 1000)}\n",
    lambda p, s: _out(sum(k ** p["p"] for k in range(1, int(s) + 1))),
    lambda p: _t("""
n = int(input())
total = 0
k = 1
while k <= n:
    term = 1
    for _ in range($p):
        term *= k
    total += term
    k += 1
print(total)
""", p=p["p"]),
)

family(
    "multiples_sum",
    lambda r: dict(zip(("a", "b"), sorted(r.sample(range(2, 10), 2)), strict=False)),
    lambda p: (f"Read n (1 ≤ n ≤ 10^5) and print the sum of all positive integers below n that are multiples of "
               f"{p['a']} or {p['b']}.\n\nInput: one integer n.\nOutput: one integer."),
    lambda r, p: f"{r.randint(1, 10**5)}\n",
    lambda p, s: _out(_sum_mult(int(s) - 1, p["a"]) + _sum_mult(int(s) - 1, p["b"])
                      - _sum_mult(int(s) - 1, p["a"] * p["b"] // _m.gcd(p["a"], p["b"]))),
    lambda p: _t("""
n = int(input())
print(sum(x for x in range(1, n) if x % $a == 0 or x % $b == 0))
""", a=p["a"], b=p["b"]),
)


def _sum_mult(limit: int, k: int) -> int:
    m = limit // k
    return k * m * (m + 1) // 2


family(
    "multiples_list",
    lambda r: {"k": r.randint(2, 12)},
    lambda p: (f"Read n (1 ≤ n ≤ 200) and print, in increasing order and separated by spaces, all integers from 1 "
               f"to n that are divisible by {p['k']}; print NONE if there are none.\n\nInput: one integer n.\n"
               "Output: one line."),
    lambda r, p: f"{r.randint(1, 200)}\n",
    lambda p, s: _out(" ".join(map(str, range(p["k"], int(s) + 1, p["k"]))) or "NONE"),
    lambda p: _t("""
n = int(input())
res = [str(x) for x in range(1, n + 1) if x % $k == 0]
print(' '.join(res) if res else 'NONE')
""", k=p["k"]),
)

_WORD_PAIRS = (("Fizz", "Buzz"), ("Foo", "Bar"), ("Ping", "Pong"), ("Tic", "Tac"), ("Hip", "Hop"), ("Zig", "Zag"))

family(
    "fizzbuzz",
    lambda r: {**dict(zip(("a", "b"), sorted(r.sample(range(2, 10), 2)), strict=False)),
               **dict(zip(("wa", "wb"), r.choice(_WORD_PAIRS), strict=False))},
    lambda p: (f"Read n and print the numbers from 1 to n, one per line, but print {p['wa']} instead of numbers "
               f"divisible by {p['a']}, {p['wb']} instead of numbers divisible by {p['b']}, and {p['wa']}{p['wb']} "
               f"instead of numbers divisible by both.\n\nInput: one integer n (1 ≤ n ≤ 100).\nOutput: n lines."),
    # some tests reach the first number divisible by both
    lambda r, p: f"{r.randint(1, 30) if r.random() < 0.5 else r.randint(_m.lcm(p['a'], p['b']), 100)}\n",
    lambda p, s: "".join(f"{(p['wa'] if i % p['a'] == 0 else '') + (p['wb'] if i % p['b'] == 0 else '') or i}\n"
                         for i in range(1, int(s) + 1)),
    lambda p: _t("""
n = int(input())
for i in range(1, n + 1):
    if i % $a == 0 and i % $b == 0:
        print('$wa$wb')
    elif i % $a == 0:
        print('$wa')
    elif i % $b == 0:
        print('$wb')
    else:
        print(i)
""", **p),
)

family(
    "multiplication_table",
    lambda r: {"k": r.randint(5, 15)},
    lambda p: (f"Read n and print the multiplication table of n from 1 to {p['k']}: line i is `n x i = p` where p "
               f"is the product.\n\nInput: one integer n (1 ≤ n ≤ 100).\nOutput: {p['k']} lines."),
    lambda r, p: f"{r.randint(1, 100)}\n",
    lambda p, s: "".join(f"{int(s)} x {i} = {int(s) * i}\n" for i in range(1, p["k"] + 1)),
    lambda p: _t("""
n = int(input())
for i in range(1, $k + 1):
    print(n, 'x', i, '=', n * i)
""", k=p["k"]),
)

family(
    "triangle",
    lambda r: {"what": r.choice(("valid", "right"))},
    lambda p: {"valid": ("Read three positive integers and print YES if they can be the side lengths of a triangle "
                         "with positive area, NO otherwise."),
               "right": ("Read three positive integers and print YES if they are the side lengths of a right "
                         "triangle, NO otherwise.")}[p["what"]] + "\n\nInput: one line with three integers.\n"
    "Output: YES or NO.",
    lambda r, p: (" ".join(map(str, r.sample(r.choice(((3, 4, 5), (5, 12, 13), (6, 8, 10), (8, 15, 17))), 3))) + "\n"
                  if r.random() < 0.4 else f"{r.randint(1, 20)} {r.randint(1, 20)} {r.randint(1, 20)}\n"),
    lambda p, s: (lambda a, b, c: _out("YES" if (a + b > c if p["what"] == "valid" else a * a + b * b == c * c)
                                       else "NO"))(*sorted(map(int, s.split()))),
    lambda p: _t("""
x, y, z = map(int, input().split())
$body
""", body={"valid": "print('YES' if x + y > z and x + z > y and y + z > x else 'NO')",
           "right": ("print('YES' if x*x + y*y == z*z or x*x + z*z == y*y or y*y + z*z == x*x else 'NO')")}[p["what"]]),
)

family(
    "leap_year",
    lambda r: {},
    lambda p: ("Read a year (1 ≤ year ≤ 9999) and print YES if it is a leap year in the Gregorian calendar "
               "(divisible by 4, except years divisible by 100 that are not divisible by 400), NO otherwise.\n\n"
               "Input: one integer.\nOutput: YES or NO."),
    lambda r, p: f"{r.choice((r.randint(1, 9999), 100 * r.randint(1, 99), 4 * r.randint(1, 2499)))}\n",
    lambda p, s: _out("YES" if calendar.isleap(int(s)) else "NO"),
    lambda p: _t("""
y = int(input())
if y % 400 == 0:
    print('YES')
elif y % 100 == 0:
    print('NO')
elif y % 4 == 0:
    print('YES')
else:
    print('NO')
"""),
)

family(
    "pascal_row",
    lambda r: {},
    lambda p: ("Read n (0 ≤ n ≤ 30) and print row n of Pascal's triangle (row 0 is `1`), numbers separated by "
               "spaces.\n\nInput: one integer n.\nOutput: one line."),
    lambda r, p: f"{r.randint(0, 30)}\n",
    lambda p, s: _out(" ".join(str(_m.comb(int(s), k)) for k in range(int(s) + 1))),
    lambda p: _t("""
n = int(input())
row = [1]
for _ in range(n):
    row = [1] + [row[i] + row[i + 1] for i in range(len(row) - 1)] + [1]
print(' '.join(map(str, row)))
"""),
)

_COINS = ((1, 5, 10, 25), (1, 2, 5, 10), (1, 3, 9, 27), (1, 2, 5, 10, 20, 50), (1, 5, 10, 50, 100), (1, 4, 16))

family(
    "min_coins",
    lambda r: {"coins": r.choice(_COINS)},
    lambda p: (f"Coins have the values {', '.join(map(str, p['coins']))}, with unlimited coins of each value. "
               "Read an amount n (0 ≤ n ≤ 1000) and print the smallest number of coins that add up to exactly n."
               "\n\nInput: one integer n.\nOutput: one integer."),
    lambda r, p: f"{r.randint(0, 1000)}\n",
    lambda p, s: _out(_min_coins(int(s), p["coins"])),
    lambda p: _t("""
n = int(input())
count = 0
for c in $coins:
    count += n // c
    n %= c
print(count)
""", coins=str(tuple(sorted(p["coins"], reverse=True)))),
)


def _min_coins(n: int, coins: tuple[int, ...]) -> int:
    best = [0] + [n + 1] * n
    for v in range(1, n + 1):
        best[v] = 1 + min(best[v - c] for c in coins if c <= v)
    return best[n]


family(
    "matrix",
    lambda r: {"what": r.choice(("transpose", "row sums", "column sums"))},
    lambda p: {
        "transpose": "Read an r x c matrix of integers and print its transpose (c lines of r numbers).",
        "row sums": "Read an r x c matrix of integers and print the sum of each row, one per line.",
        "column sums": "Read an r x c matrix of integers and print the sums of its columns on one line, separated "
                       "by spaces.",
    }[p["what"]] + ("\n\nInput: the first line contains r and c (1 ≤ r, c ≤ 5); then r lines of c integers.\n"
                    "Output: as described, numbers separated by single spaces."),
    lambda r, p: (lambda rr, cc: f"{rr} {cc}\n" + "".join(" ".join(str(r.randint(-9, 9)) for _ in range(cc)) + "\n"
                                                          for _ in range(rr)))(r.randint(1, 5), r.randint(1, 5)),
    lambda p, s: (lambda rows: {
        "transpose": "".join(" ".join(map(str, col)) + "\n" for col in zip(*rows, strict=False)),
        "row sums": "".join(f"{sum(row)}\n" for row in rows),
        "column sums": " ".join(str(sum(col)) for col in zip(*rows, strict=False)) + "\n",
    }[p["what"]])([list(map(int, line.split())) for line in s.strip().split("\n")[1:]]),
    lambda p: _t("""
r, c = map(int, input().split())
m = [list(map(int, input().split())) for _ in range(r)]
$body
""", body={
        "transpose": "for j in range(c):\n    print(' '.join(str(m[i][j]) for i in range(r)))",
        "row sums": "for i in range(r):\n    print(sum(m[i]))",
        "column sums": "print(' '.join(str(sum(m[i][j] for i in range(r))) for j in range(c)))",
    }[p["what"]]),
)

# --- strings -----------------------------------------------------------------------------------------

_LETTERS = "abcdefghiklmnoprstuy"

family(
    "count_letters",
    lambda r: (lambda what: {"what": what, "c": r.choice(_LETTERS) if what == "letter" else ""})(
        r.choice(("vowels", "consonants", "letter", "letter", "letter"))),
    lambda p: ({"vowels": "Read a line of text and print how many vowels (a, e, i, o, u) it contains.",
                "consonants": "Read a line of text and print how many consonants (letters other than a, e, i, o, "
                              "u) it contains.",
                "letter": f"Read a line of text and print how many times the letter {p['c']} occurs in it."}[p["what"]]
               + f"\n\nInput: {LINE_IN}\nOutput: one integer."),
    lambda r, p: _sentence(r) + "\n",
    lambda p, s: _out({"vowels": lambda t: sum(map(t.count, "aeiou")),
                       "consonants": lambda t: sum(ch.isalpha() and ch not in "aeiou" for ch in t),
                       "letter": lambda t: t.count(p["c"])}[p["what"]](s.strip())),
    lambda p: _t("""
s = input()
n = 0
for ch in s:
    if $cond:
        n += 1
print(n)
""", cond={"vowels": "ch in 'aeiou'", "consonants": "ch.isalpha() and ch not in 'aeiou'",
           "letter": f"ch == '{p['c']}'"}[p["what"]]),
)

family(
    "reverse",
    lambda r: {"what": r.choice(("characters", "word order", "each word"))},
    lambda p: {"characters": "Read a line of text and print it reversed, character by character.",
               "word order": "Read a line of words and print the words in reverse order, separated by single spaces.",
               "each word": ("Read a line of words and print each word reversed, keeping the words in their "
                             "original order, separated by single spaces.")}[p["what"]]
    + f"\n\nInput: {LINE_IN}\nOutput: one line.",
    lambda r, p: _sentence(r) + "\n",
    lambda p, s: _out({"characters": lambda t: t[::-1], "word order": lambda t: " ".join(reversed(t.split())),
                       "each word": lambda t: " ".join(w[::-1] for w in t.split())}[p["what"]](s.strip())),
    lambda p: _t("""
s = input().strip()
$body
""", body={"characters": "out = ''\nfor ch in s:\n    out = ch + out\nprint(out)",
           "word order": "w = s.split()\nw.reverse()\nprint(' '.join(w))",
           "each word": "print(' '.join(''.join(reversed(w)) for w in s.split()))"}[p["what"]]),
)

family(
    "uppercase_every_kth",
    lambda r: {"k": r.randint(2, 6)},
    lambda p: (f"Read a line of text and print it with every {p['k']}-th character (counting from 1, spaces "
               "included) converted to uppercase and all other characters unchanged.\n\n"
               f"Input: {LINE_IN}\nOutput: one line."),
    lambda r, p: _sentence(r) + "\n",
    lambda p, s: _out("".join(ch.upper() if (i + 1) % p["k"] == 0 else ch for i, ch in enumerate(s.strip()))),
    lambda p: _t("""
s = list(input().strip())
for i in range($k - 1, len(s), $k):
    s[i] = s[i].upper()
print(''.join(s))
""", k=p["k"]),
)

family(
    "palindrome",
    lambda r: {"loose": r.random() < 0.5},
    lambda p: ("Read a line of text and print YES if it is a palindrome, NO otherwise."
               + (" Ignore spaces, punctuation and letter case: compare only the letters and digits, in lowercase."
                  if p["loose"] else " Compare the line exactly, character by character.")
               + "\n\nInput: one line of text.\nOutput: YES or NO."),
    lambda r, p: (r.choice(("Never odd or even", "Was it a car, or a cat I saw?", "A Toyota's a Toyota", "racecar",
                            "No lemon, no melon", "step on no pets", "Top spot", "abcba", "abca", "hello olleh",
                            "Madam, in Eden I'm Adam", "not a palindrome", "xyzzyx", "abccbx"))
                  if r.random() < 0.6 else r.choice(_WORDS)) + "\n",
    lambda p, s: _out("YES" if (lambda t: t == t[::-1])(
        "".join(ch.lower() for ch in s.rstrip("\n") if ch.isalnum()) if p["loose"] else s.rstrip("\n")) else "NO"),
    lambda p: _t("""
s = input()
$prep
i, j = 0, len(t) - 1
ok = True
while i < j:
    if t[i] != t[j]:
        ok = False
        break
    i += 1
    j -= 1
print('YES' if ok else 'NO')
""", prep="t = [c.lower() for c in s if c.isalnum()]" if p["loose"] else "t = s"),
)

family(
    "caesar",
    lambda r: {"k": r.randint(1, 25), "decode": r.random() < 0.4},
    lambda p: (f"Read a line of text that was {'encoded with' if p['decode'] else 'not yet encoded'}"
               f"{'' if p['decode'] else ' and encode it with'} a Caesar cipher of shift {p['k']}, and print the "
               f"{'decoded' if p['decode'] else 'encoded'} text: shift each lowercase letter {p['k']} places "
               f"{'back' if p['decode'] else 'forward'} in the alphabet, wrapping around between z and a; leave "
               f"spaces unchanged.\n\nInput: {LINE_IN}\nOutput: one line."),
    lambda r, p: _sentence(r) + "\n",
    lambda p, s: _out(s.strip().translate(str.maketrans(
        "abcdefghijklmnopqrstuvwxyz",
        (lambda k: "abcdefghijklmnopqrstuvwxyz"[k:] + "abcdefghijklmnopqrstuvwxyz"[:k])(
            (-p["k"] if p["decode"] else p["k"]) % 26)))),
    lambda p: _t("""
s = input().strip()
out = []
for ch in s:
    if 'a' <= ch <= 'z':
        out.append(chr((ord(ch) - ord('a') $op $k) % 26 + ord('a')))
    else:
        out.append(ch)
print(''.join(out))
""", op="-" if p["decode"] else "+", k=p["k"]),
)

family(
    "word_lengths",
    lambda r: (lambda what: {"what": what, "k": r.randint(2, 6) if what == "longer" else 0})(
        r.choice(("count", "longer", "longer", "longest"))),
    lambda p: {"count": "Read a line of words and print how many words it contains.",
               "longer": f"Read a line of words and print how many of them have more than {p['k']} letters.",
               "longest": ("Read a line of words and print the longest word; if several words are equally long, "
                           "print the first of them.")}[p["what"]] + f"\n\nInput: {LINE_IN}\nOutput: one line.",
    lambda r, p: _sentence(r) + "\n",
    lambda p, s: _out({"count": lambda w: len(w), "longer": lambda w: sum(len(x) > p["k"] for x in w),
                       "longest": lambda w: max(w, key=len)}[p["what"]](s.split())),
    lambda p: _t("""
words = input().split()
$body
""", body={"count": "print(len(words))",
           "longer": f"n = 0\nfor w in words:\n    if len(w) > {p['k']}:\n        n += 1\nprint(n)",
           "longest": "best = ''\nfor w in words:\n    if len(w) > len(best):\n        best = w\nprint(best)"}[p["what"]]),
)

family(
    "anagram",
    lambda r: {},
    lambda p: ("Read two words on one line and print YES if they are anagrams of each other (same letters with the "
               "same counts), NO otherwise.\n\nInput: one line with two lowercase words.\nOutput: YES or NO."),
    lambda r, p: (lambda w: f"{w} {''.join(r.sample(w, len(w))) if r.random() < 0.5 else r.choice(_WORDS)}\n")(
        r.choice(_WORDS)),
    lambda p, s: _out("YES" if Counter(s.split()[0]) == Counter(s.split()[1]) else "NO"),
    lambda p: _t("""
a, b = input().split()
print('YES' if sorted(a) == sorted(b) else 'NO')
"""),
)

family(
    "longest_run",
    lambda r: {},
    lambda p: ("Read a string of lowercase letters and print the length of its longest block of consecutive equal "
               "characters.\n\nInput: one line.\nOutput: one integer."),
    lambda r, p: "".join(r.choice("ab") * r.randint(1, 4) for _ in range(r.randint(1, 8))) + "\n",
    lambda p, s: _out(max(len(m.group()) for m in re.finditer(r"(.)\1*", s.strip()))),
    lambda p: _t("""
s = input().strip()
best = cur = 1
for i in range(1, len(s)):
    cur = cur + 1 if s[i] == s[i - 1] else 1
    best = max(best, cur)
print(best)
"""),
)

family(
    "repeat_chars",
    lambda r: {"k": r.randint(2, 5)},
    lambda p: (f"Read a line of text and print it with every character repeated {p['k']} times (spaces "
               f"included).\n\nInput: {LINE_IN}\nOutput: one line."),
    lambda r, p: _sentence(r, 1, 4) + "\n",
    lambda p, s: _out("".join(ch * p["k"] for ch in s.strip())),
    lambda p: _t("""
s = input().strip()
out = ''
for ch in s:
    for _ in range($k):
        out += ch
print(out)
""", k=p["k"]),
)

family(
    "replace_vowels",
    lambda r: {"c": r.choice(("*", "#", "_", "-", ""))},
    lambda p: ("Read a line of text and print it with every vowel (a, e, i, o, u) "
               + (f"replaced by the character {p['c']}" if p["c"] else "removed")
               + f".\n\nInput: {LINE_IN}\nOutput: one line."),
    lambda r, p: _sentence(r) + "\n",
    lambda p, s: _out(re.sub("[aeiou]", p["c"], s.strip())),
    lambda p: _t("""
s = input().strip()
print(''.join('$c' if ch in 'aeiou' else ch for ch in s))
""", c=p["c"]),
)

family(
    "title_case",
    lambda r: {},
    lambda p: ("Read a line of lowercase words and print it with the first letter of every word in uppercase.\n\n"
               f"Input: {LINE_IN}\nOutput: one line."),
    lambda r, p: _sentence(r) + "\n",
    lambda p, s: _out(" ".join(w[:1].upper() + w[1:] for w in s.split())),
    lambda p: _t("""
words = input().split()
print(' '.join(w.capitalize() for w in words))
"""),
)

family(
    "word_frequency",
    lambda r: {},
    lambda p: ("Read a line of words and print the word that occurs most often followed by its count; if several "
               "words tie, print the alphabetically smallest of them.\n\nInput: "
               f"{LINE_IN}\nOutput: one line: the word, a space, the count."),
    lambda r, p: " ".join(r.choice(_WORDS[:6]) for _ in range(r.randint(1, 10))) + "\n",
    lambda p, s: (lambda c: _out(f"{min(c, key=lambda w: (-c[w], w))} {max(c.values())}"))(Counter(s.split())),
    lambda p: _t("""
words = input().split()
counts = {}
for w in words:
    counts[w] = counts.get(w, 0) + 1
best = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0]
print(best[0], best[1])
"""),
)

family(
    "count_substring",
    lambda r: {"sub": r.choice(("an", "on", "er", "el", "ar", "oo", "in", "re", "ra", "ll"))},
    lambda p: (f"Read a line of text and print how many times the substring \"{p['sub']}\" occurs in it "
               "(occurrences may overlap).\n\n"
               f"Input: {LINE_IN}\nOutput: one integer."),
    lambda r, p: _sentence(r) + "\n",
    lambda p, s: _out(sum(1 for i in range(len(s)) if s.startswith(p["sub"], i))),
    lambda p: _t("""
s = input()
count = 0
start = s.find('$sub')
while start != -1:
    count += 1
    start = s.find('$sub', start + 1)
print(count)
""", sub=p["sub"]),
)

family(
    "arithmetic_sequence",
    lambda r: {"what": r.choice(("term", "sum"))},
    lambda p: ({"term": "Read a, d and n and print the n-th term of the arithmetic sequence a, a+d, a+2d, ...",
                "sum": "Read a, d and n and print the sum of the first n terms of the arithmetic sequence a, a+d, "
                       "a+2d, ..."}[p["what"]]
               + "\n\nInput: one line with the integers a, d and n (1 ≤ n ≤ 10^5).\nOutput: one integer."),
    lambda r, p: f"{r.randint(-100, 100)} {r.randint(-20, 20)} {r.randint(1, 10**r.randint(1, 5))}\n",
    lambda p, s: (lambda a, d, n: _out(a + (n - 1) * d if p["what"] == "term" else n * (2 * a + (n - 1) * d) // 2))(
        *map(int, s.split())),
    lambda p: _t("""
a, d, n = map(int, input().split())
$body
""", body={"term": "x = a\nfor _ in range(n - 1):\n    x += d\nprint(x)",
           "sum": "t = 0\nx = a\nfor _ in range(n):\n    t += x\n    x += d\nprint(t)"}[p["what"]]),
)


# --- problems ----------------------------------------------------------------------------------------

def statement_text(f: Family, params: dict[str, Any], example_in: str, example_out: str) -> str:
    if EASY_BY_NAME.get(f.name) is f:
        return easy_statement(f, params, example_in, example_out)
    return (f"{f.statement(params)}\n\nExample\nInput:\n{example_in}Output:\n{example_out}\n{INSTRUCTION}")


def _task(f: Family, params: dict[str, Any], rng: random.Random) -> CodeProblem:
    inputs: list[str] = []
    want = rng.randint(3, 5)
    for _ in range(want * 20):
        text = f.make_input(rng, params)
        if text not in inputs:
            inputs.append(text)
        if len(inputs) == want:
            break
    inputs.sort(key=len)  # the shortest test is the example shown in the statement
    outputs = [f.oracle(params, s) for s in inputs]
    return CodeProblem(f.name, tuple(sorted(params.items())), statement_text(f, params, inputs[0], outputs[0]),
                       tuple(inputs), tuple(outputs), f.program(params))


# --- one-line programs for small models (opt-in) --------------------------------------------------------

# An easy family's `statement` is what its program does ("reads an integer n and prints n + 7"); the task
# shows the program of a sibling task (`_SIBLINGS`: other parameters, never the task's own) and asks to
# change it (`easy_statement`).
EASY_FAMILIES: list[Family] = []
_GREETINGS = ("Hello", "Hi", "Welcome", "Good morning", "Good evening", "Hey", "Goodbye", "Thank you", "Congratulations",
              "Good night", "Cheers", "Greetings")
_NAMES = ("Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kemal", "Lena", "Mia", "Noor",
          "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq")
_SHIFT_OPS = {"plus": "+", "minus": "-", "times": "*"}
_TWO = {"sum": "their sum a + b", "difference": "their difference a - b", "product": "their product a * b",
        "larger": "the larger of them", "smaller": "the smaller of them"}
_CASE = {"upper": "prints it in upper case", "reversed": "prints it reversed (its last character first)",
         "length": "prints its number of characters", "words": "prints its number of words"}


def _easy(name: str, params, statement, make_input, oracle, program) -> None:
    EASY_FAMILIES.append(Family(name, params, statement, make_input, oracle, program))


_easy(
    "shift_number",
    lambda r: (lambda op: {"op": op, "k": r.randint(2, 12) if op == "times" else r.randint(2, 500)})(
        r.choice(("plus", "minus", "times"))),
    lambda p: f"reads an integer n and prints n {_SHIFT_OPS[p['op']]} {p['k']}",
    lambda r, p: f"{r.randint(-100, 100)}\n",
    lambda p, s: _out({"plus": int(s) + p["k"], "minus": int(s) - p["k"], "times": int(s) * p["k"]}[p["op"]]),
    lambda p: f"print(int(input()) {_SHIFT_OPS[p['op']]} {p['k']})\n",
)

_easy(
    "two_numbers",
    lambda r: {"what": r.choice(("sum", "difference", "product", "larger", "smaller"))},
    lambda p: f"reads two integers a and b from one line and prints {_TWO[p['what']]}",
    lambda r, p: f"{r.randint(-50, 99)} {r.randint(-50, 99)}\n",
    lambda p, s: (lambda a, b: _out({"sum": a + b, "difference": a - b, "product": a * b, "larger": max(a, b),
                                     "smaller": min(a, b)}[p["what"]]))(*map(int, s.split())),
    lambda p: "a, b = map(int, input().split())\nprint(" + {"sum": "a + b", "difference": "a - b", "product": "a * b",
                                                            "larger": "max(a, b)", "smaller": "min(a, b)"}[p["what"]]
    + ")\n",
)

_easy(
    "text_case",
    lambda r: {"how": r.choice(("upper", "reversed", "length", "words"))},
    lambda p: f"reads a line of text and {_CASE[p['how']]}",
    lambda r, p: _sentence(r, 1, 4) + "\n",
    lambda p, s: (lambda t: _out({"upper": t.upper(), "reversed": t[::-1], "length": len(t),
                                  "words": len(t.split())}[p["how"]]))(s.rstrip("\n")),
    lambda p: "print(" + {"upper": "input().upper()", "reversed": "input()[::-1]", "length": "len(input())",
                          "words": "len(input().split())"}[p["how"]] + ")\n",
)

_easy(
    "greet",
    lambda r: {"greeting": r.choice(_GREETINGS), "mark": r.choice(("!", "."))},
    lambda p: f"reads a name and prints `{p['greeting']}, <name>{p['mark']}`",
    lambda r, p: r.choice(_NAMES) + "\n",
    lambda p, s: _out(f"{p['greeting']}, {s.strip()}{p['mark']}"),
    lambda p: f"print({p['greeting'] + ', '!r} + input() + {p['mark']!r})\n",
)

_easy(
    "repeat_word",
    lambda r: {"k": r.randint(2, 9), "sep": r.choice(("space", "line"))},
    lambda p: f"reads a word and prints it {p['k']} times, " + (
        "on one line, separated by single spaces" if p["sep"] == "space" else "each time on its own line"),
    lambda r, p: r.choice(_WORDS) + "\n",
    lambda p, s: (_out(" ".join([s.strip()] * p["k"])) if p["sep"] == "space" else _out(*[s.strip()] * p["k"])),
    lambda p: ("w = input()\nprint(' '.join([w] * $k))\n" if p["sep"] == "space"
               else "w = input()\nfor _ in range($k):\n    print(w)\n").replace("$k", str(p["k"])),
)

EASY_BY_NAME = {f.name: f for f in EASY_FAMILIES}

# per easy family: the parameters of a sibling task, never equal to the task's own
_SIBLINGS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "shift_number": lambda p: {"op": p["op"], "k": (2 if p["k"] != 2 else 3) if p["op"] == "times" else 1},
    "two_numbers": lambda p: {"what": {"sum": "difference", "difference": "sum", "product": "sum", "larger": "smaller",
                                       "smaller": "larger"}[p["what"]]},
    "text_case": lambda p: {"how": {"upper": "reversed", "reversed": "upper", "length": "words",
                                    "words": "length"}[p["how"]]},
    "greet": lambda p: {"greeting": "Hello" if p["greeting"] != "Hello" else "Hi", "mark": p["mark"]},
    "repeat_word": lambda p: {"k": 2 if p["k"] != 2 else 3, "sep": p["sep"]},
}


def easy_statement(f: Family, params: dict[str, Any], example_in: str, example_out: str) -> str:
    """The task of an easy family: change the shown program of a sibling task into the asked one."""
    sib = _SIBLINGS[f.name](params)
    return (f"Here is a Python program that {f.statement(sib)}:\n```python\n{f.program(sib)}```\n"
            f"Change it so that it {f.statement(params)} instead.\n\nExample input:\n{example_in}"
            f"Expected output:\n{example_out}\nReply with the whole new program in a ```python code block.")


def echo_transform(rng: random.Random) -> tuple[Family, dict[str, Any]]:
    """Opt-in kind: a one-line program for a very simple transform of stdin (add a constant, add two numbers,
    upper-case or reverse a line, greet a name, repeat a word), asked as a change to the shown program of a
    sibling task, with an example run (`easy_statement`): a warm-up for models too small for the standard
    families."""
    f = rng.choice(EASY_FAMILIES)
    return f, f.params(rng)


# --- problems ----------------------------------------------------------------------------------------

def _family_kind(f: Family) -> Callable[[random.Random], tuple[Family, dict[str, Any]]]:
    def draw(rng: random.Random, f: Family = f) -> tuple[Family, dict[str, Any]]:
        return f, f.params(rng)

    draw.__name__ = f.name
    return draw


# the standard kinds: one per family, named as the family (drawn in turn, in FAMILIES order)
KINDS = tuple(_family_kind(f) for f in FAMILIES)
EXTRA_KINDS = (echo_transform,)  # drawn only when asked for by name (options.kinds: [echo_transform])


def problems(rng: random.Random, count: int,
             kinds: Sequence[Callable[[random.Random], tuple[Family, dict[str, Any]]]] = KINDS) -> list[CodeProblem]:
    from m2rl.data.builtin import draw_unique

    # uniqueness is on the task itself (family + parameters), drawn first (cheap); the tests come after
    tasks = draw_unique(list(kinds), count, rng, lambda fp: f"{fp[0].name} {sorted(fp[1].items())!r}")
    return [_task(f, params, rng) for f, params in tasks]


def to_record(p: CodeProblem) -> dict[str, Any]:
    return {"prompt": chat(p.statement), "label": "",
            "verifier": {"type": "unit_test", "unit_tests": {"inputs": list(p.inputs), "outputs": list(p.outputs)}}}
