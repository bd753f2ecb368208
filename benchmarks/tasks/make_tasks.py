"""Writes the two loop-efficacy tasks (``benchmarks/loop_efficacy.py``) from word lists and
arithmetic, deterministically: ``python benchmarks/tasks/make_tasks.py``.

- ``mixed6``: six topics, some a 270M model learns from a few dozen examples (past tense,
  the month after, a country's language, two-digit sums), some it does not (two-digit
  products, spelling a word backwards). The seed set covers two topics; the pool covers all
  six; the held-out eval asks about all six.
- ``corpus``: the eval asks about three topics (opposites, the day after, plurals); the seed
  covers one of them; the pool is a few dozen on-target items buried in hundreds of items
  from topics the eval never asks about (products, reversals, capitals, colours, word
  lengths, …), as a real corpus is.

Every answer is computed or looked up from the lists below; eval, seed and pool items never
share a question.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

PAST = {
    "go": "went",
    "eat": "ate",
    "see": "saw",
    "run": "ran",
    "swim": "swam",
    "sing": "sang",
    "drink": "drank",
    "write": "wrote",
    "drive": "drove",
    "ride": "rode",
    "speak": "spoke",
    "break": "broke",
    "choose": "chose",
    "freeze": "froze",
    "steal": "stole",
    "wake": "woke",
    "take": "took",
    "shake": "shook",
    "give": "gave",
    "forgive": "forgave",
    "come": "came",
    "become": "became",
    "get": "got",
    "forget": "forgot",
    "sit": "sat",
    "win": "won",
    "begin": "began",
    "ring": "rang",
    "sink": "sank",
    "stink": "stank",
    "fly": "flew",
    "know": "knew",
    "grow": "grew",
    "throw": "threw",
    "blow": "blew",
    "draw": "drew",
    "teach": "taught",
    "catch": "caught",
    "buy": "bought",
    "bring": "brought",
    "think": "thought",
    "fight": "fought",
    "seek": "sought",
    "sleep": "slept",
    "keep": "kept",
    "feel": "felt",
    "leave": "left",
    "meet": "met",
    "sell": "sold",
    "tell": "told",
    "find": "found",
    "hold": "held",
    "stand": "stood",
    "understand": "understood",
    "make": "made",
    "pay": "paid",
    "say": "said",
    "lay": "laid",
    "build": "built",
    "send": "sent",
    "spend": "spent",
    "lend": "lent",
    "bend": "bent",
    "lose": "lost",
    "shoot": "shot",
    "hide": "hid",
    "bite": "bit",
    "light": "lit",
    "slide": "slid",
    "dig": "dug",
    "stick": "stuck",
    "swing": "swung",
    "hang": "hung",
    "strike": "struck",
}
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
LANGUAGE = {
    "France": "French",
    "Germany": "German",
    "Spain": "Spanish",
    "Italy": "Italian",
    "Portugal": "Portuguese",
    "Brazil": "Portuguese",
    "Mexico": "Spanish",
    "Argentina": "Spanish",
    "Japan": "Japanese",
    "China": "Chinese",
    "Russia": "Russian",
    "Greece": "Greek",
    "Turkey": "Turkish",
    "Poland": "Polish",
    "Sweden": "Swedish",
    "Norway": "Norwegian",
    "Finland": "Finnish",
    "Denmark": "Danish",
    "Netherlands": "Dutch",
    "Korea": "Korean",
    "Thailand": "Thai",
    "Vietnam": "Vietnamese",
    "Iran": "Persian",
    "Israel": "Hebrew",
    "Hungary": "Hungarian",
    "Chile": "Spanish",
    "Peru": "Spanish",
    "Colombia": "Spanish",
    "Austria": "German",
    "Ukraine": "Ukrainian",
    "Egypt": "Arabic",
    "Cuba": "Spanish",
    "Iceland": "Icelandic",
    "Czechia": "Czech",
    "Romania": "Romanian",
    "Indonesia": "Indonesian",
    "England": "English",
    "Australia": "English",
    "Canada": "English",
    "Ireland": "English",
}
OPPOSITE = {
    "hot": "cold",
    "big": "small",
    "fast": "slow",
    "happy": "sad",
    "up": "down",
    "open": "closed",
    "light": "dark",
    "hard": "soft",
    "rich": "poor",
    "young": "old",
    "strong": "weak",
    "wet": "dry",
    "loud": "quiet",
    "thick": "thin",
    "wide": "narrow",
    "high": "low",
    "clean": "dirty",
    "long": "short",
    "full": "empty",
    "early": "late",
    "in": "out",
    "win": "lose",
    "true": "false",
    "good": "bad",
    "left": "right",
    "inside": "outside",
    "above": "below",
    "buy": "sell",
    "give": "take",
    "love": "hate",
    "push": "pull",
    "start": "finish",
    "day": "night",
    "black": "white",
    "north": "south",
    "east": "west",
    "friend": "enemy",
    "heavy": "light",
    "cheap": "expensive",
    "sweet": "sour",
    "brave": "cowardly",
    "deep": "shallow",
    "begin": "end",
    "alive": "dead",
    "near": "far",
}
PLURAL = {
    "child": "children",
    "man": "men",
    "woman": "women",
    "mouse": "mice",
    "foot": "feet",
    "tooth": "teeth",
    "goose": "geese",
    "person": "people",
    "ox": "oxen",
    "leaf": "leaves",
    "knife": "knives",
    "wife": "wives",
    "life": "lives",
    "wolf": "wolves",
    "half": "halves",
    "shelf": "shelves",
    "loaf": "loaves",
    "calf": "calves",
    "thief": "thieves",
    "box": "boxes",
    "fox": "foxes",
    "bus": "buses",
    "church": "churches",
    "dish": "dishes",
    "baby": "babies",
    "city": "cities",
    "story": "stories",
    "party": "parties",
    "lady": "ladies",
    "cherry": "cherries",
    "potato": "potatoes",
    "tomato": "tomatoes",
    "hero": "heroes",
    "cactus": "cacti",
    "fungus": "fungi",
    "crisis": "crises",
    "analysis": "analyses",
    "sheep": "sheep",
    "fish": "fish",
    "deer": "deer",
}
CAPITAL = {
    "France": "Paris",
    "Germany": "Berlin",
    "Spain": "Madrid",
    "Italy": "Rome",
    "Japan": "Tokyo",
    "China": "Beijing",
    "Russia": "Moscow",
    "Greece": "Athens",
    "Egypt": "Cairo",
    "Kenya": "Nairobi",
    "Peru": "Lima",
    "Canada": "Ottawa",
    "Australia": "Canberra",
    "Brazil": "Brasilia",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Poland": "Warsaw",
    "Austria": "Vienna",
    "Portugal": "Lisbon",
    "Ireland": "Dublin",
    "Cuba": "Havana",
    "Chile": "Santiago",
    "Thailand": "Bangkok",
    "Turkey": "Ankara",
    "Hungary": "Budapest",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "India": "Delhi",
}
WORDS = [
    "planet",
    "garden",
    "silver",
    "pocket",
    "window",
    "rabbit",
    "candle",
    "forest",
    "market",
    "button",
    "dragon",
    "winter",
    "yellow",
    "basket",
    "castle",
    "orange",
    "pencil",
    "monkey",
    "jacket",
    "bridge",
    "circle",
    "summer",
    "guitar",
    "ticket",
    "flower",
    "number",
    "school",
    "spider",
    "bottle",
    "island",
    "wallet",
    "mirror",
]
COLOURS = {
    "sky": "blue",
    "grass": "green",
    "snow": "white",
    "coal": "black",
    "blood": "red",
    "a banana": "yellow",
    "an orange": "orange",
    "a lemon": "yellow",
    "milk": "white",
    "a carrot": "orange",
    "a tomato": "red",
    "chocolate": "brown",
    "ash": "grey",
    "a strawberry": "red",
    "a plum": "purple",
    "a lime": "green",
}


def qa(tag: str, question: str, answer: str) -> dict:
    return {"question": question, "answer": answer, "tags": [tag]}


def gen_past(rng: random.Random) -> list[dict]:
    return [qa("past_tense", f"What is the past tense of {v}?", p) for v, p in PAST.items()]


def gen_month(rng: random.Random) -> list[dict]:
    items = [
        qa("next_month", f"Which month comes after {m}?", MONTHS[(i + 1) % 12])
        for i, m in enumerate(MONTHS)
    ]
    items += [
        qa("next_month", f"Which month comes before {m}?", MONTHS[(i - 1) % 12])
        for i, m in enumerate(MONTHS)
    ]
    items += [
        qa("next_month", f"Which month comes two months after {m}?", MONTHS[(i + 2) % 12])
        for i, m in enumerate(MONTHS)
    ]
    return items


def gen_language(rng: random.Random) -> list[dict]:
    return [
        qa("language", f"What language is spoken in {c}?", lang) for c, lang in LANGUAGE.items()
    ]


def gen_sums(rng: random.Random, n: int = 60) -> list[dict]:
    seen, items = set(), []
    while len(items) < n:
        a, b = rng.randint(10, 49), rng.randint(10, 49)
        if (a, b) not in seen:
            seen.add((a, b))
            items.append(qa("sums", f"What is {a} plus {b}?", str(a + b)))
    return items


def gen_products(rng: random.Random, n: int = 60, tag: str = "products") -> list[dict]:
    seen, items = set(), []
    while len(items) < n:
        a, b = rng.randint(13, 97), rng.randint(13, 97)
        if (a, b) not in seen:
            seen.add((a, b))
            items.append(qa(tag, f"What is {a} times {b}?", str(a * b)))
    return items


def gen_reverse(rng: random.Random, tag: str = "reverse") -> list[dict]:
    return [qa(tag, f"Spell the word {w} backwards.", w[::-1]) for w in WORDS]


def gen_opposites(rng: random.Random) -> list[dict]:
    return [qa("opposites", f"What is the opposite of {w}?", o) for w, o in OPPOSITE.items()]


def gen_days(rng: random.Random) -> list[dict]:
    items = [
        qa("next_day", f"What day comes after {d}?", DAYS[(i + 1) % 7]) for i, d in enumerate(DAYS)
    ]
    items += [
        qa("next_day", f"What day comes before {d}?", DAYS[(i - 1) % 7]) for i, d in enumerate(DAYS)
    ]
    items += [
        qa("next_day", f"What day is two days after {d}?", DAYS[(i + 2) % 7])
        for i, d in enumerate(DAYS)
    ]
    items += [
        qa("next_day", f"If today is {d}, what day is tomorrow?", DAYS[(i + 1) % 7])
        for i, d in enumerate(DAYS)
    ]
    items += [
        qa("next_day", f"If today is {d}, what day was yesterday?", DAYS[(i - 1) % 7])
        for i, d in enumerate(DAYS)
    ]
    return items


def gen_plurals(rng: random.Random) -> list[dict]:
    return [qa("plurals", f"What is the plural of {w}?", p) for w, p in PLURAL.items()]


def gen_off_target(rng: random.Random) -> list[dict]:
    """Hundreds of items from topics the corpus task's eval never asks about."""
    items = gen_products(rng, 120, tag="products") + gen_reverse(rng, tag="reverse")
    items += [qa("capitals", f"What is the capital of {c}?", cap) for c, cap in CAPITAL.items()]
    items += [qa("colours", f"What colour is {thing}?", c) for thing, c in COLOURS.items()]
    items += [
        qa("word_length", f"How many letters are in the word {w}?", str(len(w)))
        for w in WORDS + list(PLURAL)
    ]
    items += [
        qa("first_letter", f"What is the first letter of the word {w}?", w[0])
        for w in WORDS + list(OPPOSITE)
    ]
    items += [
        qa("language", f"What language is spoken in {c}?", lang) for c, lang in LANGUAGE.items()
    ]
    for _ in range(40):
        a, b = rng.randint(100, 999), rng.randint(100, 999)
        items.append(qa("big_sums", f"What is {a} plus {b}?", str(a + b)))
    return items


def split(items: list[dict], rng: random.Random, n_eval: int) -> tuple[list[dict], list[dict]]:
    items = items[:]
    rng.shuffle(items)
    return items[:n_eval], items[n_eval:]


def write(folder: Path, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "w") as f:
        for i, row in enumerate(rows):
            f.write(json.dumps({"id": f"{name.split('.')[0]}-{i + 1}", **row}) + "\n")


def make_mixed6() -> None:
    rng = random.Random(6)
    topics = {
        "past_tense": gen_past(rng),
        "next_month": gen_month(rng),
        "language": gen_language(rng),
        "sums": gen_sums(rng),
        "products": gen_products(rng),
        "reverse": gen_reverse(rng),
    }
    seeded = ("past_tense", "sums")
    train, pool, evals = [], [], []
    for tag, items in topics.items():
        ev, rest = split(items, rng, 10)
        evals += ev
        if tag in seeded:
            train += rest[:12]
            rest = rest[12:]
        pool += rest[:22]
    rng.shuffle(pool)
    folder = HERE / "mixed6"
    write(folder, "train.jsonl", train)
    write(folder, "pool.jsonl", pool)
    write(folder, "eval.jsonl", evals)


def make_corpus() -> None:
    rng = random.Random(7)
    topics = {
        "opposites": gen_opposites(rng),
        "next_day": gen_days(rng),
        "plurals": gen_plurals(rng),
    }
    train, pool, evals = [], [], []
    for tag, items in topics.items():
        ev, rest = split(items, rng, 12)
        evals += ev
        if tag == "opposites":
            train += rest[:12]
            rest = rest[12:]
        pool += rest[:14]
    pool += gen_off_target(rng)
    rng.shuffle(pool)
    folder = HERE / "corpus"
    write(folder, "train.jsonl", train)
    write(folder, "pool.jsonl", pool)
    write(folder, "eval.jsonl", evals)


if __name__ == "__main__":
    make_mixed6()
    make_corpus()
    for name in ("mixed6", "corpus"):
        for part in ("train", "pool", "eval"):
            n = len((HERE / name / f"{part}.jsonl").read_text().splitlines())
            print(f"{name}/{part}.jsonl: {n}")
