"""Builds responses that follow the builtin generator's IFEval instructions (for the generator tests).

`candidates(ids, kwargs)` yields responses of growing length and sentence size, each assembled from
the instructions (keywords, sections, bullets, placeholders, case, quotes, ...) and filler clauses
that avoid every forbidden word, keyword and rare letter the generator uses. A correct verifier
accepts at least one of them whenever the instructions can all hold.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

EN = ("waves roll onto the shore at dawn", "old boats rest near the harbor wall", "birds call from the tall pines",
      "the baker sells warm bread to early walkers", "children play on the wide green field",
      "clouds drift slowly over the hills", "small shops open their doors one by one",
      "the old clock ticks in the hall", "people walk their dogs along the path",
      "rain taps softly on the roof", "tall trees sway in the wind", "the cat sleeps on the warm step")
LANGS = {
    "fr": ("le soleil se lève sur la mer", "les bateaux quittent le port", "les enfants jouent dans le jardin",
           "leurs parents préparent le déjeuner", "nous marchons le long de la rivière chaque matin"),
    "es": ("el sol sale sobre el mar", "los barcos salen del puerto", "los niños juegan en el jardín",
           "sus padres preparan la comida", "caminamos por el río todas las mañanas"),
    "de": ("die Sonne geht über dem Meer auf", "die Boote verlassen den Hafen", "die Kinder spielen im Garten",
           "ihre Eltern kochen das Essen", "wir gehen jeden Morgen am Fluss entlang"),
    "it": ("il sole sorge sul mare", "le barche lasciano il porto", "ogni mattina i bambini giocano nel giardino",
           "i genitori preparano il pranzo", "camminiamo lungo il fiume ogni giorno"),
    "pt": ("todos os dias o sol nasce sobre o mar", "os barcos deixam o porto",
           "as crianças brincam no jardim", "os pais preparam o almoço", "caminhamos ao longo do rio"),
}
AND = {"en": "and", "fr": "et", "es": "y", "de": "und", "it": "e", "pt": "e"}


def _sentence(clauses: list[str], lang: str) -> str:
    text = f" {AND[lang]} ".join(clauses)
    return text[0].upper() + text[1:] + "."


def _compose(ids: list[str], kw: dict[str, dict], n_sent: int, n_clauses: int, shift: int = 0) -> str:
    lang = kw.get("language:response_language", {}).get("language", "en")
    pool = EN if lang == "en" else LANGS[lang]
    clause = iter(pool[(i + shift) % len(pool)] for i in range(10_000))
    sentences = [_sentence([next(clause) for _ in range(n_clauses)], lang) for _ in range(n_sent)]

    if "keywords:existence" in kw:
        sentences.append("We think of " + " and ".join(kw["keywords:existence"]["keywords"]) + " today.")
    f = kw.get("keywords:frequency")
    if f and f["relation"] == "at least":
        sentences += [f"We think of {f['keyword']} today."] * f["frequency"]
    c = kw.get("change_case:capital_word_frequency")
    if c and c["capital_relation"] == "at least":
        sentences.append("We say " + " ".join(["OK"] * c["capital_frequency"]) + " now.")
    if "detectable_content:number_placeholders" in kw:
        n = kw["detectable_content:number_placeholders"]["num_placeholders"]
        sentences.append(" ".join(f"[{next(clause).split()[-1]}]" for _ in range(n)) + ".")
    if "detectable_format:number_highlighted_sections" in kw:
        n = kw["detectable_format:number_highlighted_sections"]["num_highlights"]
        sentences.append(" ".join(f"*{next(clause)}*" for _ in range(n)) + ".")

    # paragraphs
    if "length_constraints:nth_paragraph_first_word" in kw:
        p = kw["length_constraints:nth_paragraph_first_word"]
        n_par, sep = p["num_paragraphs"], "\n\n"
    elif "length_constraints:number_paragraphs" in kw:
        n_par, sep = kw["length_constraints:number_paragraphs"]["num_paragraphs"], "\n***\n"
    else:
        n_par, sep = 1, "\n"
    while len(sentences) < n_par:
        sentences.append(_sentence([next(clause)], lang))
    paragraphs = [sentences[i::n_par] for i in range(n_par)]
    if "length_constraints:nth_paragraph_first_word" in kw:
        p = kw["length_constraints:nth_paragraph_first_word"]
        paragraphs[p["nth_paragraph"] - 1].insert(0, p["first_word"].capitalize() + " we begin.")
    blocks = [" ".join(p) for p in paragraphs]
    if "detectable_format:number_bullet_lists" in kw:
        n = kw["detectable_format:number_bullet_lists"]["num_bullets"]
        blocks[0] += "\n" + "\n".join(f"* {next(clause)}" for _ in range(n))
    if "detectable_format:multiple_sections" in kw:
        s = kw["detectable_format:multiple_sections"]
        blocks[0] = "\n".join(f"{s['section_spliter']} {i + 1}\n{_sentence([next(clause)], lang)}"
                              for i in range(s["num_sections"])) + "\n" + blocks[0]
    if "detectable_format:title" in kw:
        blocks[0] = f"<<{next(clause)}>>\n" + blocks[0]
    text = sep.join(blocks)
    if "detectable_content:postscript" in kw:
        text += f"\n{kw['detectable_content:postscript']['postscript_marker']} {_sentence([next(clause)], lang)}"
    if "startend:end_checker" in kw:
        text += "\n" + kw["startend:end_checker"]["end_phrase"]
    return text


def candidates(ids: list[str], kwargs: list[dict]) -> Iterator[str]:
    kw = dict(zip(ids, kwargs, strict=True))
    if "detectable_format:constrained_response" in kw:
        yield "My answer is yes."
        return
    for n_sent in (1, 2, 3, 5, 8, 12, 20, 30, 45):
        for n_clauses in (1, 2, 4, 8):
            text = _compose(ids, kw, n_sent, n_clauses)
            if "combination:two_responses" in kw:
                text += "\n******\n" + _compose(ids, kw, n_sent, n_clauses, shift=3)
            if "combination:repeat_prompt" in kw:
                text = kw["combination:repeat_prompt"]["prompt_to_repeat"] + "\n" + text
            if "detectable_format:json_format" in kw:
                text = json.dumps({"answer": text})
            if "change_case:english_capital" in kw:
                text = text.upper()
            if "change_case:english_lowercase" in kw:
                text = text.lower()
            if "startend:quotation" in kw:
                text = f'"{text}"'
            yield text
