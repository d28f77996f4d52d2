"""Realistic cache values for the compression benchmarks (issue 22): JSON documents and HTML
fragments as an application caches them, built from varied field names, words and numbers, so
that a compressor finds what real values offer (repeated keys and markup, a vocabulary) and not
what repeated bytes offer. Deterministic: value(i, seed) is the same bytes on every run.

Usage as a module: value(i, mean=400, seed=0) -> bytes. As a script, prints values 0..count-1,
one a line (they hold no newline), with their lengths unless --raw:
    python3 bench/docgen.py [--count 3] [--mean 400] [--raw]"""

import argparse
import random

WORDS = (
    "account active address admin alpha amount analysis answer archive article author balance "
    "banner basket beta billing blue board brand budget bundle button cache campaign card cart "
    "category channel chart checkout city client cloud code color comment company config "
    "contact content country coupon credit currency customer dashboard data date default "
    "delivery demo design detail device discount document domain draft email engine event "
    "export feature feed field file filter footer format frame gallery gateway green group "
    "header health history home image import index invoice item label language layout level "
    "library license link list locale login logo market media member menu message meta metric "
    "mobile model module monitor name network news note notice number offer order owner page "
    "panel partner payment period phone photo plan player point policy portal post premium "
    "price product profile project promo public query queue quota rating reader receipt record "
    "region release report request review role route sale schedule schema score search season "
    "section segment seller server service session setting share shipping shop signal size "
    "slide source space status stock store stream style summary support survey system table "
    "tag target task team template theme thread ticket title token topic total track trend "
    "upload usage user value vendor version video view visitor volume warehouse widget window "
    "zone"
).split()

TAGS = ["div", "span", "p", "li", "a", "section", "article", "h3", "strong", "em"]
CLASSES = ["card", "item", "title", "meta", "price", "badge", "row", "col", "btn", "link",
           "muted", "active", "header", "footer", "media", "body"]


def _field(rng):
    a, b = rng.choice(WORDS), rng.choice(WORDS)
    style = rng.random()
    if style < 0.4:
        return f"{a}_{b}"
    if style < 0.7:
        return a + b.capitalize()
    return a


def _scalar(rng):
    r = rng.random()
    if r < 0.25:
        return rng.randint(0, 10 ** rng.randint(1, 9))
    if r < 0.4:
        return round(rng.uniform(0, 10000), rng.randint(1, 4))
    if r < 0.5:
        return rng.random() < 0.5
    if r < 0.55:
        return None
    if r < 0.65:
        return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (
            rng.randint(2015, 2026), rng.randint(1, 12), rng.randint(1, 28),
            rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59))
    if r < 0.72:
        return "%08x-%04x-%04x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16))
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8)))


def _json(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, list):
        return "[" + ",".join(_json(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(f'"{k}":{_json(x)}' for k, x in v.items()) + "}"
    return str(v)


def _object(rng, budget, depth):
    obj = {"id": rng.randint(1, 10 ** 9)}
    while len(_json(obj)) < budget:
        r = rng.random()
        if depth < 2 and r < 0.12:
            obj[_field(rng)] = _object(rng, rng.randint(40, max(41, budget // 3)), depth + 1)
        elif r < 0.22:
            obj[_field(rng)] = [_scalar(rng) for _ in range(rng.randint(1, 5))]
        else:
            obj[_field(rng)] = _scalar(rng)
    return obj


def json_doc(rng, size):
    return _json(_object(rng, size, 0)).encode()


def html_fragment(rng, size):
    out = []
    total = 0
    while total < size:
        tag = rng.choice(TAGS)
        cls = " ".join(rng.sample(CLASSES, rng.randint(1, 3)))
        text = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 12)))
        if tag == "a":
            piece = f'<a class="{cls}" href="/{rng.choice(WORDS)}/{rng.randint(1, 99999)}">{text}</a>'
        elif rng.random() < 0.2:
            piece = f'<{tag} class="{cls}" data-id="{rng.randint(1, 10 ** 6)}">{text}</{tag}>'
        else:
            piece = f'<{tag} class="{cls}">{text}</{tag}>'
        out.append(piece)
        total += len(piece)
    return "".join(out).encode()


def value(i, mean=400, seed=0):
    """Value number i: a JSON document (two in three) or an HTML fragment, of a length drawn
    between half and one and a half times `mean`."""
    rng = random.Random(i * 1_000_003 + seed)
    size = rng.randint(mean // 2, mean * 3 // 2)
    if rng.random() < 2 / 3:
        return json_doc(rng, size)
    return html_fragment(rng, size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--mean", type=int, default=400)
    ap.add_argument("--raw", action="store_true", help="values only (storage/benches/compress.rs)")
    a = ap.parse_args()
    for i in range(a.count):
        v = value(i, a.mean)
        print(v.decode() if a.raw else f"{len(v)} {v.decode()}")


if __name__ == "__main__":
    main()
