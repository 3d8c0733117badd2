"""Multiple-choice science questions with four options (A-D), the correct one at a random position.

Kinds: unit conversions, physics formulas with numbers (computed exactly with `Fraction`), chemistry
from a small element table (symbols, atomic numbers, neutrons of isotopes, molar masses from the
atomic masses stated in the question), biology facts, and Mendelian crosses (computed by enumerating
the offspring). Numeric problems carry `check`, the formula with the problem's numbers; table problems
carry `fact`, what the answer is looked up or computed from, so tests can recompute every gold letter.

Opt-in kinds for small models (`options.kinds`): `element_compare` (two options) and `unit_pick` (three).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from itertools import product
from typing import Any

from m2rl.data.builtin import chat, draw_unique
from m2rl.data.builtin.math import Retry, fmt

LETTERS = "ABCD"
INSTRUCTION = "Choose the correct option. Give your final answer on the last line in the form `Answer: <letter>`."


@dataclass(frozen=True)
class ScienceProblem:
    """One multiple-choice question: options A-D and the index of the correct one."""

    kind: str
    question: str
    options: tuple[str, ...]
    answer_index: int
    check: str | None = None  # Python expression (with Fraction) of the correct numeric value
    fact: tuple[Any, ...] | None = None  # what a table answer is looked up / computed from

    @property
    def letter(self) -> str:
        return LETTERS[self.answer_index]


def _choice(rng: random.Random, kind: str, question: str, correct: str, wrong: list[str],
            check: str | None = None, fact: tuple[Any, ...] | None = None) -> ScienceProblem:
    distinct: list[str] = []
    for w in wrong:
        if w != correct and w not in distinct:
            distinct.append(w)
    if len(distinct) < 3:
        raise Retry("not enough distinct options")
    options = [correct, *rng.sample(distinct, 3)]
    rng.shuffle(options)
    return ScienceProblem(kind, question, tuple(options), options.index(correct), check, fact)


def num(value: Fraction) -> str:
    """Exact decimal text of a terminating value."""
    return fmt(Fraction(value), "decimal")


def lit(value: Fraction | int | str) -> str:
    """A number as an exact Python literal for `check` expressions."""
    return f"Fraction('{num(Fraction(value))}')"


def _numeric(rng: random.Random, kind: str, question: str, value: Fraction, unit: str,
             wrong: list[Fraction], check: str, allow_negative: bool = False) -> ScienceProblem:
    correct = f"{num(value)} {unit}".strip()
    pool = list(wrong) + [value * 2, value / 2, value * 10, value / 10, value + 1, value * 3]
    texts = []
    for w in pool:
        if w == value or (w <= 0 and not allow_negative):
            continue
        try:
            texts.append(f"{num(w)} {unit}".strip())
        except Retry:
            continue
    # the plausible mistakes first, then the generic ones
    head = texts[: max(3, len([w for w in wrong if w != value]))]
    rng.shuffle(head)
    return _choice(rng, kind, question, correct, head + texts, check=check)


# --- unit conversions --------------------------------------------------------------------------------

# (from unit singular, from unit plural, to unit plural, factor: how many `to` units make one `from`)
_CONVERSIONS = (
    ("kilometer", "kilometers", "meters", Fraction(1000)),
    ("meter", "meters", "centimeters", Fraction(100)),
    ("meter", "meters", "millimeters", Fraction(1000)),
    ("centimeter", "centimeters", "millimeters", Fraction(10)),
    ("meter", "meters", "kilometers", Fraction(1, 1000)),
    ("centimeter", "centimeters", "meters", Fraction(1, 100)),
    ("millimeter", "millimeters", "centimeters", Fraction(1, 10)),
    ("kilogram", "kilograms", "grams", Fraction(1000)),
    ("gram", "grams", "milligrams", Fraction(1000)),
    ("gram", "grams", "kilograms", Fraction(1, 1000)),
    ("tonne", "tonnes", "kilograms", Fraction(1000)),
    ("liter", "liters", "milliliters", Fraction(1000)),
    ("milliliter", "milliliters", "liters", Fraction(1, 1000)),
    ("hour", "hours", "minutes", Fraction(60)),
    ("minute", "minutes", "seconds", Fraction(60)),
    ("hour", "hours", "seconds", Fraction(3600)),
    ("day", "days", "hours", Fraction(24)),
    ("minute", "minutes", "hours", Fraction(1, 60)),
    ("second", "seconds", "minutes", Fraction(1, 60)),
)


def conversion(rng: random.Random) -> ScienceProblem:
    if rng.random() < 0.2:
        return temperature(rng)
    _, src, dst, factor = rng.choice(_CONVERSIONS)
    if factor >= 1:
        amount = Fraction(rng.randint(2, 95), rng.choice((1, 1, 2, 4)))
    elif factor.denominator == 60:
        amount = Fraction(15 * rng.randint(1, 40))
    else:
        amount = Fraction(rng.randint(2, 99) * rng.choice((1, 5, 10, 50)))
    value = amount * factor
    q = rng.choice((f"How many {dst} are in {num(amount)} {src}?", f"Convert {num(amount)} {src} to {dst}."))
    wrong = [amount / factor, value * 10, value / 10, value * 100, value / 100]
    return _numeric(rng, "conversion", q, value, dst, wrong, f"{lit(amount)} * Fraction({factor.numerator}, "
                    f"{factor.denominator})")


def temperature(rng: random.Random) -> ScienceProblem:
    c = Fraction(5 * rng.randint(-8, 24))
    if rng.random() < 0.5:
        value = c + Fraction("273.15")
        q = f"A liquid is at {num(c)} °C. What is its temperature in kelvin?"
        wrong = [c - Fraction("273.15"), c + 273, c + Fraction("373.15"), c + Fraction("237.15")]
        return _numeric(rng, "conversion", q, value, "K", wrong, f"{lit(c)} + Fraction('273.15')",
                        allow_negative=True)
    value = c * 9 / 5 + 32
    q = f"The air temperature is {num(c)} °C. What is it in degrees Fahrenheit?"
    wrong = [c * 9 / 5, (c + 32) * 9 / 5, c * 5 / 9 + 32, c + 32, c * 2 + 32]
    return _numeric(rng, "conversion", q, value, "°F", wrong, f"{lit(c)} * 9 / 5 + 32", allow_negative=True)


# --- physics formulas --------------------------------------------------------------------------------

G = Fraction("9.8")
_HALVES = [Fraction(k, 2) for k in range(1, 21)]


def formula(rng: random.Random) -> ScienceProblem:
    k = rng.randrange(13)
    if k == 0:
        m, a = Fraction(rng.randint(1, 60)), Fraction(rng.randint(1, 20))
        q = f"A {num(m)} kg cart accelerates at {num(a)} m/s². What net force acts on it?"
        return _numeric(rng, "formula", q, m * a, "N", [m / a, m + a, m * a * 2, m * a / 2],
                        f"{lit(m)} * {lit(a)}")
    if k == 1:
        m = Fraction(rng.randint(1, 120))
        q = f"What is the weight of a {num(m)} kg object on Earth's surface? (Use g = 9.8 m/s².)"
        return _numeric(rng, "formula", q, m * G, "N", [m, m * G * 2, m * 98, m + G], f"{lit(m)} * Fraction('9.8')")
    if k == 2:
        m, v = Fraction(rng.randint(1, 30)), Fraction(rng.randint(1, 25))
        q = f"What is the kinetic energy of a {num(m)} kg ball moving at {num(v)} m/s?"
        return _numeric(rng, "formula", q, m * v * v / 2, "J", [m * v * v, m * v / 2, m * v, (m * v) ** 2 / 2],
                        f"Fraction(1, 2) * {lit(m)} * {lit(v)} ** 2")
    if k == 3:
        m, h = Fraction(rng.randint(1, 25)), Fraction(rng.randint(1, 40))
        q = f"A {num(m)} kg box is lifted {num(h)} m. By how much does its gravitational potential energy increase? (Use g = 9.8 m/s².)"
        return _numeric(rng, "formula", q, m * G * h, "J", [m * h, m * G * h / 2, m * G * h * 2, m * G + h],
                        f"{lit(m)} * Fraction('9.8') * {lit(h)}")
    if k == 4:
        rho = rng.choice((Fraction("0.5"), Fraction("0.8"), Fraction(1), Fraction("1.5"), Fraction(2),
                          Fraction("2.5"), Fraction("2.7"), Fraction("7.8"), Fraction("8.9"), Fraction("11.3")))
        vol = Fraction(rng.randint(2, 60))
        mass = rho * vol
        q = f"A sample has a mass of {num(mass)} g and a volume of {num(vol)} cm³. What is its density?"
        return _numeric(rng, "formula", q, rho, "g/cm³", [mass * vol, vol / mass, rho * 10, rho * 2],
                        f"{lit(mass)} / {lit(vol)}")
    if k == 5:
        v, t = Fraction(rng.randint(2, 30)), Fraction(rng.randint(2, 15))
        d = v * t
        q = f"A cyclist covers {num(d)} m in {num(t)} s at constant speed. What is her speed?"
        return _numeric(rng, "formula", q, v, "m/s", [d * t, t / d, v * 2, d - t], f"{lit(d)} / {lit(t)}")
    if k == 6:
        a, t, v0 = Fraction(rng.randint(1, 8)), Fraction(rng.randint(2, 10)), Fraction(rng.randint(0, 20))
        v1 = v0 + a * t
        q = f"A car speeds up from {num(v0)} m/s to {num(v1)} m/s in {num(t)} s. What is its average acceleration?"
        return _numeric(rng, "formula", q, a, "m/s²", [v1 / t, (v1 + v0) / t, a * t, a * 2],
                        f"({lit(v1)} - {lit(v0)}) / {lit(t)}")
    if k == 7:
        m, v = Fraction(rng.randint(1, 80)), Fraction(rng.randint(1, 30))
        q = f"What is the momentum of a {num(m)} kg object moving at {num(v)} m/s?"
        return _numeric(rng, "formula", q, m * v, "kg·m/s", [m * v * v / 2, m / v, m + v, m * v * 2],
                        f"{lit(m)} * {lit(v)}")
    if k == 8:
        f, d = Fraction(rng.randint(2, 200)), Fraction(rng.randint(2, 50))
        q = f"A constant force of {num(f)} N pushes a crate {num(d)} m in the direction of the force. How much work is done?"
        return _numeric(rng, "formula", q, f * d, "J", [f / d, f + d, f * d / 2, f * d * 2], f"{lit(f)} * {lit(d)}")
    if k == 9:
        p, t = Fraction(rng.randint(2, 200) * 5), Fraction(rng.randint(2, 30))
        w = p * t
        q = f"A motor does {num(w)} J of work in {num(t)} s. What is its average power?"
        return _numeric(rng, "formula", q, p, "W", [w * t, t / w, p * 2, p / 2], f"{lit(w)} / {lit(t)}")
    if k == 10:
        i = rng.choice(_HALVES)
        r = Fraction(rng.randint(2, 120))
        v = i * r
        which = rng.randrange(3)
        if which == 0:
            q = f"A current of {num(i)} A flows through a {num(r)} Ω resistor. What is the voltage across it?"
            return _numeric(rng, "formula", q, v, "V", [r / i, i / r, i + r, v * 2], f"{lit(i)} * {lit(r)}")
        if which == 1:
            q = f"A {num(v)} V source is connected across a {num(r)} Ω resistor. What current flows?"
            return _numeric(rng, "formula", q, i, "A", [v * r, r / v, i * 2, i * 10], f"{lit(v)} / {lit(r)}")
        q = f"A current of {num(i)} A flows when {num(v)} V is applied across a resistor. What is its resistance?"
        return _numeric(rng, "formula", q, r, "Ω", [v * i, i / v, r * 2, r / 2], f"{lit(v)} / {lit(i)}")
    if k == 11:
        v = rng.choice((Fraction("1.5"), Fraction(3), Fraction(6), Fraction(9), Fraction(12), Fraction(24),
                        Fraction(120), Fraction(230)))
        i = rng.choice(_HALVES)
        q = f"A device draws {num(i)} A from a {num(v)} V supply. How much electrical power does it use?"
        return _numeric(rng, "formula", q, v * i, "W", [v / i, v + i, v * i * 2, v * i / 2], f"{lit(v)} * {lit(i)}")
    p = Fraction(rng.randint(2, 100) * 50)
    area = rng.choice((Fraction("0.25"), Fraction("0.5"), Fraction(1), Fraction(2), Fraction(4), Fraction(5)))
    force = p * area
    if rng.random() < 0.5:
        q = f"A force of {num(force)} N acts evenly on an area of {num(area)} m². What pressure does it exert?"
        return _numeric(rng, "formula", q, p, "Pa", [force * area, area / force, p * 2, p / 10],
                        f"{lit(force)} / {lit(area)}")
    f = Fraction(rng.randint(2, 500))
    lam = rng.choice(_HALVES)
    q = f"A wave has a frequency of {num(f)} Hz and a wavelength of {num(lam)} m. What is its speed?"
    return _numeric(rng, "formula", q, f * lam, "m/s", [f / lam, f + lam, f * lam * 2, lam / f],
                    f"{lit(f)} * {lit(lam)}")


# --- chemistry ---------------------------------------------------------------------------------------

# (atomic number, symbol, name, standard atomic weight as stated in questions)
ELEMENTS = (
    (1, "H", "hydrogen", "1.008"), (2, "He", "helium", "4.003"), (3, "Li", "lithium", "6.94"),
    (4, "Be", "beryllium", "9.012"), (5, "B", "boron", "10.81"), (6, "C", "carbon", "12.011"),
    (7, "N", "nitrogen", "14.007"), (8, "O", "oxygen", "15.999"), (9, "F", "fluorine", "18.998"),
    (10, "Ne", "neon", "20.180"), (11, "Na", "sodium", "22.990"), (12, "Mg", "magnesium", "24.305"),
    (13, "Al", "aluminium", "26.982"), (14, "Si", "silicon", "28.085"), (15, "P", "phosphorus", "30.974"),
    (16, "S", "sulfur", "32.06"), (17, "Cl", "chlorine", "35.45"), (18, "Ar", "argon", "39.948"),
    (19, "K", "potassium", "39.098"), (20, "Ca", "calcium", "40.078"), (22, "Ti", "titanium", "47.867"),
    (24, "Cr", "chromium", "51.996"), (25, "Mn", "manganese", "54.938"), (26, "Fe", "iron", "55.845"),
    (27, "Co", "cobalt", "58.933"), (28, "Ni", "nickel", "58.693"), (29, "Cu", "copper", "63.546"),
    (30, "Zn", "zinc", "65.38"), (35, "Br", "bromine", "79.904"), (36, "Kr", "krypton", "83.798"),
    (38, "Sr", "strontium", "87.62"), (47, "Ag", "silver", "107.87"), (50, "Sn", "tin", "118.71"),
    (53, "I", "iodine", "126.90"), (54, "Xe", "xenon", "131.29"), (78, "Pt", "platinum", "195.08"),
    (79, "Au", "gold", "196.97"), (80, "Hg", "mercury", "200.59"), (82, "Pb", "lead", "207.2"),
    (88, "Ra", "radium", "226"), (92, "U", "uranium", "238.03"),
)
BY_SYMBOL = {e[1]: e for e in ELEMENTS}
BY_NAME = {e[2]: e for e in ELEMENTS}

# real isotopes: (symbol, mass number)
ISOTOPES = (
    ("H", 1), ("H", 2), ("H", 3), ("He", 3), ("He", 4), ("Li", 6), ("Li", 7), ("B", 10), ("B", 11),
    ("C", 12), ("C", 13), ("C", 14), ("N", 14), ("N", 15), ("O", 16), ("O", 17), ("O", 18), ("F", 19),
    ("Ne", 20), ("Ne", 22), ("Na", 23), ("Mg", 24), ("Mg", 25), ("Mg", 26), ("Al", 27), ("P", 31),
    ("S", 32), ("Cl", 35), ("Cl", 37), ("K", 39), ("K", 40), ("Ca", 40), ("Fe", 56), ("Co", 59), ("Co", 60),
    ("Cu", 63), ("Cu", 65), ("Zn", 64), ("Sr", 90), ("Ag", 107), ("Ag", 109), ("I", 127), ("I", 131),
    ("Au", 197), ("Pb", 206), ("Pb", 208), ("Ra", 226), ("U", 235), ("U", 238),
)

# (formula, common name)
COMPOUNDS = (
    ("H2O", "water"), ("CO2", "carbon dioxide"), ("NaCl", "sodium chloride"), ("CH4", "methane"),
    ("NH3", "ammonia"), ("O2", "oxygen gas"), ("N2", "nitrogen gas"), ("C6H12O6", "glucose"),
    ("H2SO4", "sulfuric acid"), ("CaCO3", "calcium carbonate"), ("NaOH", "sodium hydroxide"),
    ("HCl", "hydrogen chloride"), ("KCl", "potassium chloride"), ("MgO", "magnesium oxide"),
    ("C2H6O", "ethanol"), ("Fe2O3", "iron(III) oxide"), ("CO", "carbon monoxide"), ("H2O2", "hydrogen peroxide"),
    ("HNO3", "nitric acid"), ("C3H8", "propane"), ("SO2", "sulfur dioxide"), ("CaO", "calcium oxide"),
    ("KNO3", "potassium nitrate"), ("NaHCO3", "sodium bicarbonate"), ("C12H22O11", "sucrose"),
    ("Al2O3", "aluminium oxide"), ("CuSO4", "copper(II) sulfate"), ("MgCl2", "magnesium chloride"),
    ("C2H4", "ethylene"), ("NO2", "nitrogen dioxide"), ("H3PO4", "phosphoric acid"), ("SiO2", "silicon dioxide"),
)


def parse_formula(formula: str) -> dict[str, int]:
    """Element counts of a simple formula without brackets: C6H12O6 -> {C: 6, H: 12, O: 6}."""
    counts: dict[str, int] = {}
    for sym, n in re.findall(r"([A-Z][a-z]?)(\d*)", formula):
        counts[sym] = counts.get(sym, 0) + (int(n) if n else 1)
    return counts


def molar_mass(counts: dict[str, int]) -> Fraction:
    return sum((Fraction(BY_SYMBOL[s][3]) * n for s, n in counts.items()), Fraction(0))


def round2(value: Fraction) -> str:
    """Round half up to two decimals, as molar masses are usually quoted."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return str(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def element(rng: random.Random) -> ScienceProblem:
    z, sym, name, _ = rng.choice(ELEMENTS)
    others = [e for e in ELEMENTS if e[1] != sym]
    k = rng.randrange(6)
    if k == 0:
        # prefer symbols that share a letter with the right one: the plausible confusions
        similar = [e[1] for e in others if e[1][0] == sym[0] or e[2][0] == name[0]]
        wrong = similar + [e[1] for e in rng.sample(others, 6)]
        rng.shuffle(wrong)
        return _choice(rng, "element", f"What is the chemical symbol of {name}?", sym, wrong,
                       fact=("symbol", name))
    if k == 1:
        wrong = [e[2] for e in rng.sample(others, 6)]
        return _choice(rng, "element", f"Which element has the chemical symbol {sym}?", name, wrong,
                       fact=("name", sym))
    if k == 2:
        wrong = [e[2] for e in rng.sample(others, 6)]
        return _choice(rng, "element", f"Which element has atomic number {z}?", name, wrong,
                       fact=("name_of_number", z))
    phrase = {3: f"What is the atomic number of {name}?",
              4: f"How many protons are in the nucleus of a {name} atom?",
              5: f"How many electrons does a neutral atom of {name} have?"}[k]
    wrong = [str(v) for v in (z + 1, z - 1, z + 2, 2 * z, z + 10) if v > 0]
    return _choice(rng, "element", phrase, str(z), wrong, fact=("number", name))


def isotope(rng: random.Random) -> ScienceProblem:
    sym, mass_number = rng.choice(ISOTOPES)
    z, _, name, _ = BY_SYMBOL[sym]
    neutrons = mass_number - z
    q = f"How many neutrons are in the nucleus of an atom of {name}-{mass_number}?"
    wrong = [str(v) for v in (mass_number, z, mass_number + z, neutrons + 1, neutrons - 1, neutrons + 2) if v >= 0]
    return _choice(rng, "isotope", q, str(neutrons), wrong, fact=("neutrons", sym, mass_number))


def compound(rng: random.Random) -> ScienceProblem:
    formula_text, cname = rng.choice(COMPOUNDS)
    counts = parse_formula(formula_text)
    masses = ", ".join(f"{s} = {BY_SYMBOL[s][3]}" for s in counts)
    q = f"What is the molar mass of {cname} ({formula_text})? Use the atomic masses {masses} (g/mol)."
    correct = f"{round2(molar_mass(counts))} g/mol"
    wrong = []
    for s in counts:
        for delta in (-1, 1, 2):
            alt = dict(counts)
            alt[s] += delta
            if alt[s] >= 1 and alt != counts:
                wrong.append(f"{round2(molar_mass(alt))} g/mol")
    wrong.append(f"{round2(Fraction(sum(Fraction(BY_SYMBOL[s][3]) for s in counts)))} g/mol")
    return _choice(rng, "molar_mass", q, correct, wrong, fact=("molar_mass", formula_text))


# --- biology -----------------------------------------------------------------------------------------

# (question, correct answer, wrong answers)
BIOLOGY_FACTS = (
    ("Which organelle is the main site of aerobic cellular respiration in eukaryotic cells?", "Mitochondrion",
     ("Ribosome", "Golgi apparatus", "Lysosome", "Nucleolus")),
    ("In which organelle does photosynthesis take place in plant cells?", "Chloroplast",
     ("Mitochondrion", "Vacuole", "Ribosome", "Peroxisome")),
    ("Which molecule carries the genetic information in most living organisms?", "DNA",
     ("ATP", "Glucose", "Cholesterol", "Hemoglobin")),
    ("Which cellular structures synthesize proteins?", "Ribosomes",
     ("Lysosomes", "Centrioles", "Vacuoles", "Cilia")),
    ("Which blood cells carry oxygen from the lungs to the tissues?", "Red blood cells",
     ("White blood cells", "Platelets", "Plasma cells", "Mast cells")),
    ("Which gas do plants take in from the air for photosynthesis?", "Carbon dioxide",
     ("Oxygen", "Nitrogen", "Hydrogen", "Methane")),
    ("Which gas is released as a by-product of photosynthesis?", "Oxygen",
     ("Carbon dioxide", "Nitrogen", "Methane", "Ammonia")),
    ("Which base pairs with adenine in DNA?", "Thymine", ("Uracil", "Guanine", "Cytosine", "Adenine")),
    ("Which base pairs with guanine in DNA?", "Cytosine", ("Thymine", "Adenine", "Uracil", "Guanine")),
    ("Which base is found in RNA but not in DNA?", "Uracil", ("Thymine", "Adenine", "Guanine", "Cytosine")),
    ("How many chromosomes are in a typical human body (somatic) cell?", "46", ("23", "44", "48", "92")),
    ("How many chambers does the human heart have?", "4", ("2", "3", "5", "6")),
    ("Which organ produces insulin in the human body?", "Pancreas", ("Liver", "Kidney", "Spleen", "Stomach")),
    ("What type of cell division produces gametes?", "Meiosis",
     ("Mitosis", "Binary fission", "Budding", "Fragmentation")),
    ("Which molecule is the main short-term energy currency of the cell?", "ATP",
     ("DNA", "Glycogen", "Cellulose", "Keratin")),
    ("Which part of the plant cell gives it a rigid outer layer made mostly of cellulose?", "Cell wall",
     ("Cell membrane", "Cytoplasm", "Nucleus", "Chloroplast")),
    ("Which blood vessels carry blood away from the heart?", "Arteries",
     ("Veins", "Capillaries", "Lymph vessels", "Venules")),
    ("Which organ of the human body filters blood to produce urine?", "Kidney",
     ("Liver", "Lung", "Spleen", "Bladder")),
    ("Which kingdom do mushrooms belong to?", "Fungi", ("Plantae", "Animalia", "Protista", "Bacteria")),
    ("What is the basic structural and functional unit of all living organisms?", "The cell",
     ("The atom", "The organ", "The tissue", "The molecule")),
    ("Which enzyme in saliva begins the digestion of starch?", "Amylase",
     ("Pepsin", "Lipase", "Trypsin", "Lactase")),
    ("Which vitamin does human skin produce when exposed to sunlight?", "Vitamin D",
     ("Vitamin C", "Vitamin A", "Vitamin K", "Vitamin B12")),
    ("Which organisms are at the base of most food chains, converting light into chemical energy?",
     "Producers", ("Primary consumers", "Decomposers", "Secondary consumers", "Apex predators")),
    ("What is the name of the process by which water vapor leaves a plant through its leaves?", "Transpiration",
     ("Respiration", "Germination", "Pollination", "Osmosis")),
    ("Which type of biomolecule are enzymes usually made of?", "Proteins",
     ("Lipids", "Carbohydrates", "Nucleic acids only", "Minerals")),
    ("Which structure controls what enters and leaves an animal cell?", "Cell membrane",
     ("Cell wall", "Nucleus", "Ribosome", "Centriole")),
    ("What is the largest organ of the human body?", "Skin", ("Liver", "Brain", "Lung", "Small intestine")),
    ("Which gland is often called the master gland of the endocrine system?", "Pituitary gland",
     ("Thyroid gland", "Adrenal gland", "Pineal gland", "Thymus")),
    ("Which scientist is best known for proposing evolution by natural selection?", "Charles Darwin",
     ("Gregor Mendel", "Louis Pasteur", "Robert Hooke", "Isaac Newton")),
    ("Which scientist is known as the father of genetics for his experiments with pea plants?", "Gregor Mendel",
     ("Charles Darwin", "James Watson", "Alexander Fleming", "Carl Linnaeus")),
    ("Which blood cells are the main part of the immune defense against infections?", "White blood cells",
     ("Red blood cells", "Platelets", "Erythrocytes", "Plasma proteins")),
    ("Where in the human body does most nutrient absorption take place?", "Small intestine",
     ("Stomach", "Large intestine", "Esophagus", "Mouth")),
)


def biology(rng: random.Random) -> ScienceProblem:
    i = rng.randrange(len(BIOLOGY_FACTS))
    q, correct, wrong = BIOLOGY_FACTS[i]
    return _choice(rng, "biology", q, correct, list(wrong), fact=("biology", i))


# (organism, dominant trait, recessive trait, allele letter)
TRAITS = (
    ("pea plants", "tall stems", "short stems", "T"), ("pea plants", "purple flowers", "white flowers", "P"),
    ("pea plants", "round seeds", "wrinkled seeds", "R"), ("guinea pigs", "black fur", "white fur", "B"),
    ("fruit flies", "long wings", "vestigial wings", "V"), ("tomato plants", "red fruit", "yellow fruit", "Y"),
    ("rabbits", "brown fur", "white fur", "F"), ("mice", "black coats", "brown coats", "M"),
)
_FRACTIONS = ("0", "1/4", "1/2", "3/4", "1")


def offspring_fraction(g1: str, g2: str, question: str) -> Fraction:
    """Enumerate the four equally likely allele combinations of a monohybrid cross."""
    hits = 0
    for a, b in product(g1, g2):
        pair = a + b
        dominant = any(ch.isupper() for ch in pair)
        if question == "recessive":
            hits += not dominant
        elif question == "dominant":
            hits += dominant
        else:  # heterozygous
            hits += pair[0].isupper() != pair[1].isupper()
    return Fraction(hits, 4)


def genetics(rng: random.Random) -> ScienceProblem:
    organism, dom, rec, letter = rng.choice(TRAITS)
    genos = (letter + letter, letter + letter.lower(), letter.lower() * 2)
    g1, g2 = rng.choice(genos), rng.choice(genos)
    question = rng.choice(("recessive", "dominant", "heterozygous"))
    value = offspring_fraction(g1, g2, question)
    what = {"recessive": f"show {rec}", "dominant": f"show {dom}", "heterozygous": "be heterozygous"}[question]
    q = (f"In {organism}, the allele for {dom} ({letter}) is completely dominant over the allele for {rec} "
         f"({letter.lower()}). "
         f"In a cross {g1} × {g2}, what fraction of the offspring is expected to {what}?")
    correct = fmt(value, "fraction")
    return _choice(rng, "genetics", q, correct, [f for f in _FRACTIONS if f != correct],
                   fact=("cross", g1, g2, question))


# --- short choices for small models (opt-in) ----------------------------------------------------------

def _short_choice(rng: random.Random, kind: str, question: str, correct: str, wrong: Sequence[str],
                  fact: tuple[Any, ...]) -> ScienceProblem:
    """A question with the correct option and 1-3 wrong ones (all distinct), in random order."""
    options = [correct, *dict.fromkeys(w for w in wrong if w != correct)]
    rng.shuffle(options)
    return ScienceProblem(kind, question, tuple(options), options.index(correct), fact=fact)


def element_compare(rng: random.Random) -> ScienceProblem:
    """Opt-in kind: which of two elements has the larger (or smaller) atomic number, both named in the question.

    Two options, so that a small model that answers in the expected format is right about half the time and
    GRPO sees reward variance from its first step; the gold option is computed from the element table.
    """
    a, b = rng.sample(ELEMENTS, 2)
    more = rng.random() < 0.5
    what = rng.choice(("atomic number", "number of protons"))
    if what == "atomic number":
        q = f"Which element has the {'larger' if more else 'smaller'} atomic number: {a[2]} or {b[2]}?"
    else:
        q = f"Which element has {'more' if more else 'fewer'} protons in its nucleus: {a[2]} or {b[2]}?"
    winner = max((a, b), key=lambda e: e[0] if more else -e[0])
    loser = b if winner is a else a
    return _short_choice(rng, "element_compare", q, winner[2], [loser[2]],
                         fact=("compare", a[1], b[1], "max" if more else "min"))


# (larger unit, smaller unit, how many smaller units make one larger): powers of ten only
_DECIMAL_UNITS = (
    ("kilometers", "meters", 1000), ("meters", "centimeters", 100), ("meters", "millimeters", 1000),
    ("centimeters", "millimeters", 10), ("kilograms", "grams", 1000), ("grams", "milligrams", 1000),
    ("liters", "milliliters", 1000), ("kilowatts", "watts", 1000), ("kilojoules", "joules", 1000),
    ("decimeters", "centimeters", 10), ("liters", "deciliters", 10), ("tonnes", "kilograms", 1000),
)


def unit_pick(rng: random.Random) -> ScienceProblem:
    """Opt-in kind: a metric unit conversion by a power of ten (a whole number of the larger unit into the
    smaller one), with three options: the right factor and a factor ten times too small or too large."""
    big, small, factor = rng.choice(_DECIMAL_UNITS)
    amount = rng.randint(2, 60)
    value = amount * factor
    q = rng.choice((f"How many {small} are in {amount} {big}?", f"Convert {amount} {big} to {small}."))
    wrong = [value // 10, value * 10] if value // 10 != amount else [value * 10, value * 100]
    return _short_choice(rng, "unit_pick", q, f"{value} {small}", [f"{w} {small}" for w in wrong],
                         fact=("unit", amount, big, small))


KINDS = (conversion, formula, element, isotope, compound, biology, genetics, formula)
EXTRA_KINDS = (element_compare, unit_pick)  # drawn only when asked for by name (options.kinds)


def _safe(kind):
    def draw(rng: random.Random) -> ScienceProblem:
        while True:
            try:
                return kind(rng)
            except Retry:
                continue

    draw.__name__ = kind.__name__
    return draw


def prompt_text(p: ScienceProblem) -> str:
    options = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(p.options))
    return f"{p.question}\n\n{options}\n\n{INSTRUCTION}"


def problems(rng: random.Random, count: int, kinds: Sequence[Callable] = KINDS) -> list[ScienceProblem]:
    # uniqueness is on the question text: the same question with shuffled options is still a duplicate
    return draw_unique([_safe(k) for k in kinds], count, rng, lambda p: p.question)


def to_record(p: ScienceProblem) -> dict[str, Any]:
    return {"prompt": chat(prompt_text(p)), "label": p.letter,
            "verifier": {"type": "mcqa", "options": list(p.options)}}
