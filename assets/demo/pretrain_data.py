"""The demo base's pretraining data: procedurally drawn images with free-text captions.

Three sources, each a pure function of one integer seed (same seed -> same pixels and text):

- keys: core/tasks/keys/render.py renders of every catalog keyway, nuisance level drawn per image in
  [0, 1] (the demo dataset uses 0.5), captioned in prose ("A Schlage key of the SC1 keyway with 5
  cuts; from the bow to the tip they are 1 2 5 3 7 deep.");
- UI pages: a drawn web page (title bar, menu, a table or a form, buttons), captioned by its
  visible labels;
- shapes: coloured circles, squares, triangles, diamonds, or one large digit, captioned with
  their count, shape and colour.

No caption uses a task's answer format: never a "KEYWAY:"/"BITTING:"/"BRAND:" line, never SQL, never
JSON (tests/test_demo_base.py checks it). Prompts vary, so the base learns to look at the image,
not to answer one instruction.
"""
from __future__ import annotations

import hashlib
import random

from PIL import Image, ImageDraw, ImageFont

from core.tasks.keys.catalog import all_keyways
from core.tasks.keys.render import BRAND_STYLE, sample

# Pretraining seeds live far above the demo datasets' render seeds (build_keys.py uses
# 2024 * 100_003 + i) and the benchmarks' (below 10_000_000 + 10_000); the content-hash test is
# what actually proves the images are disjoint.
SEED0 = 10**12
EVAL_SEED0 = 2 * 10**12            # the recipe's own held-out probe images
MIX = (("keys", 0.6), ("shapes", 0.25), ("ui", 0.15))
# Stage 3 of the recipe (pretrain_base.py --extend) goes on from example 409,472, where stages 1-2
# stopped. Examples from there on are drawn the second way ("v2"), so every seed still names one
# image and caption, and stages 1-2 regenerate exactly as before:
# - UI pages carry their page title in large type (at the model's 96 px the old 13 px title was a
#   5 px smudge: the base could tell a form from a table but read no word) and captions also name
#   what the page is for in lower case ("a page for managing invoices");
# - shapes are drawn larger on average, and captions also give counts as numerals and shape and colour
#   names right after punctuation ("3 x 'circle' in 'red'"), the sub-word forms that follow a quote
#   (the tokenizer splits "▁circle" and "circle" differently; the base had only ever written the first);
# - the mix leans a little more to shapes and pages, which the base read worst.
V2_SEED = SEED0 + 409_472
MIX_V2 = (("keys", 0.5), ("shapes", 0.3), ("ui", 0.2))
# Stage 4 (examples from 729,472 on, "v3"): after stage 3 the base still read no page title (its
# ~64k pages with 24-30 px titles left it guessing the commonest nouns) while keys were at 0.97 digit
# accuracy. So: titles in 40-46 px type (a letter about one 8 px patch wide at 96 px), and a mix
# that gives pages and shapes most of the images. Shapes and captions are drawn as in v2.
V3_SEED = SEED0 + 729_472
MIX_V3 = (("keys", 0.25), ("shapes", 0.35), ("ui", 0.4))
TITLE_PX = {"v2": (40, 24, 30), "v3": (60, 40, 46)}  # title bar height, type size range

_DIGIT_WORDS = "zero one two three four five six seven eight nine".split()
_METAL = {"Schlage": "brass", "Kwikset": "nickel", "Yale": "bronze", "Master Lock": "dark steel",
          "Generic": "blue anodised"}
_HEAD = {"round_rect": "rounded", "circle": "round", "diamond": "diamond shaped", "square": "square",
         "hexagon": "hexagonal"}


def kind_of(seed: int) -> str:
    r = random.Random(seed * 7 + 1).random()
    acc = 0.0
    for kind, share in (MIX_V3 if seed >= V3_SEED else MIX_V2 if seed >= V2_SEED else MIX):
        acc += share
        if r < acc:
            return kind
    return MIX[-1][0]


def example(seed: int, kind: str | None = None) -> dict:
    """{"image", "prompt", "caption", "kind", "facts"} for one seed."""
    kind = kind or kind_of(seed)
    return {"keys": key_example, "shapes": shapes_example, "ui": ui_example}[kind](seed)


def pixel_hash(image: Image.Image) -> str:
    """Content hash of the decoded pixels (mode, size, bytes): the same for a PNG on disk and the
    image it was saved from."""
    img = image.convert("RGB")
    h = hashlib.sha256(f"{img.mode}{img.size}".encode())
    h.update(img.tobytes())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------- keys
_KEY_PROMPTS = ["Describe this image.", "What is in this picture?", "Describe the key.",
                "Read the cuts of this key.", "What key is this, and how is it cut?",
                "Look at the blade and tell me the cut depths.", "Caption this photo."]


def _digits(bitting, style: int) -> str:
    if style == 0:
        return " ".join(map(str, bitting))
    if style == 1:
        return ", ".join(map(str, bitting))
    if style == 2:
        return " then ".join(map(str, bitting))
    if style == 3:
        return " ".join(_DIGIT_WORDS[d] for d in bitting)
    return "-".join(map(str, bitting))


def key_caption(fields: dict, rng: random.Random, clean: bool) -> str:
    code, brand, bitting = fields["keyway"], fields["brand"], fields["bitting"]
    n = len(bitting)
    shape, _ = BRAND_STYLE.get(brand, BRAND_STYLE["Generic"])
    metal, head = _METAL.get(brand, "metal"), _HEAD[shape]
    digits = _digits(bitting, rng.randrange(5))
    scene = "a clean render" if clean else "a photo"
    forms = [
        f"A {brand} key of the {code} keyway with {n} cuts. From the bow to the tip the cuts are {digits} deep.",
        f"This is {scene} of a {metal} key with a {head} head, made by {brand}. Keyway {code}, "
        f"{n} cuts, depths {digits} from the head to the tip.",
        f"Cut depths from the bow: {digits}. It is a {brand} key, keyway {code}.",
        f"{scene.capitalize()} of a {brand} {code} key. Its {n} cuts read {digits}, bow to tip.",
        f"The blade has {n} cuts, {digits} from the bow. {brand} makes this {metal} {code} key.",
    ]
    if rng.random() < 0.2:  # the other direction, so the order has to be read, not assumed
        rev = _digits(list(reversed(bitting)), rng.randrange(5))
        return f"A {brand} {code} key. Read from the tip back to the bow, its {n} cuts are {rev}."
    return rng.choice(forms)


def key_example(seed: int) -> dict:
    rng = random.Random(seed)
    codes = list(all_keyways())
    variation = rng.choice([0.0, 0.25, 0.5, 0.5, 0.75, 1.0]) * rng.uniform(0.8, 1.0)
    image, fields = sample(seed, variation=variation, keyway=codes[rng.randrange(len(codes))])
    return {"image": image, "prompt": rng.choice(_KEY_PROMPTS), "kind": "keys", "facts": fields,
            "caption": key_caption(fields, rng, variation < 0.15)}


# -------------------------------------------------------------------------------------- shapes
COLOURS = {"red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220), "yellow": (240, 210, 40),
           "orange": (245, 140, 30), "purple": (140, 60, 180), "black": (20, 20, 20), "white": (250, 250, 250),
           "grey": (128, 128, 128), "pink": (240, 130, 180)}
SHAPES = ("circle", "square", "triangle", "diamond")
BACKS = {"white": (245, 245, 240), "black": (15, 15, 20), "grey": (150, 150, 150), "beige": (225, 210, 180),
          "light blue": (190, 215, 240)}
_SHAPE_PROMPTS = ["Describe this image.", "What shapes do you see?", "Count the shapes and name their colours.",
                  "What is drawn here?", "Caption this picture."]
_NUM = _DIGIT_WORDS[:6] + ["six"]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def draw_shape(d: ImageDraw.ImageDraw, shape: str, box, fill) -> None:
    x0, y0, x1, y1 = box
    if shape == "circle":
        d.ellipse(box, fill=fill)
    elif shape == "square":
        d.rectangle(box, fill=fill)
    elif shape == "triangle":
        d.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    else:
        d.polygon([((x0 + x1) / 2, y0), (x1, (y0 + y1) / 2), ((x0 + x1) / 2, y1), (x0, (y0 + y1) / 2)], fill=fill)


def _plural(n: int, colour: str, shape: str) -> str:
    return f"{_NUM[n]} {colour} {shape}{'' if n == 1 else 's'}"


def shapes_example(seed: int, size: int = 128) -> dict:
    rng = random.Random(seed)
    v2 = seed >= V2_SEED
    back = rng.choice(list(BACKS))
    img = Image.new("RGB", (size, size), BACKS[back])
    d = ImageDraw.Draw(img)
    usable = [c for c in COLOURS if c != back]
    if rng.random() < 0.3:  # one large digit
        digit, colour = rng.randrange(10), rng.choice(usable)
        font = _font(rng.randint(70, 100))
        d.text((size / 2 + rng.uniform(-8, 8), size / 2 + rng.uniform(-8, 8)), str(digit),
               fill=COLOURS[colour], font=font, anchor="mm")
        caption = rng.choice([f"The digit {digit} written in {colour} on a {back} background.",
                              f"A large {colour} {_DIGIT_WORDS[digit]} ({digit}) on {back}."])
        return {"image": img, "prompt": rng.choice(_SHAPE_PROMPTS), "caption": caption, "kind": "shapes",
                "facts": {"digit": digit, "colour": colour, "background": back}}
    groups: dict[tuple[str, str], int] = {}
    placed: list[tuple[float, float, float]] = []
    for _ in range(rng.randint(1, 5)):
        shape, colour = rng.choice(SHAPES), rng.choice(usable)
        for _try in range(30):  # no overlaps: every shape stays countable
            r = rng.uniform(9, 22) if v2 else rng.uniform(9, 18)
            cx, cy = rng.uniform(r + 2, size - r - 2), rng.uniform(r + 2, size - r - 2)
            if all((cx - x) ** 2 + (cy - y) ** 2 > (r + rr + 3) ** 2 for x, y, rr in placed):
                break
        else:
            continue
        placed.append((cx, cy, r))
        draw_shape(d, shape, (cx - r, cy - r, cx + r, cy + r), COLOURS[colour])
        groups[(colour, shape)] = groups.get((colour, shape), 0) + 1
    total = sum(groups.values())
    parts = [_plural(n, c, s) for (c, s), n in sorted(groups.items())]
    listing = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    forms = [f"{listing.capitalize()} on a {back} background.",
             f"There {'is' if total == 1 else 'are'} {_NUM[total]} shape{'' if total == 1 else 's'}"
             f" here: {listing}, on {back}."]
    if v2:
        groups_sorted = sorted(groups.items())
        forms += [f"{total} in all: " + "; ".join(f"{n} x '{s}' in '{c}'" for (c, s), n in groups_sorted)
                  + f" (background '{back}').",
                  f"Counted {total} (" + ", ".join(f"{c}/{s}: {n}" for (c, s), n in groups_sorted) + ")."]
    caption = rng.choice(forms)
    facts = {"background": back, "count": total,
             "shapes": [{"shape": s, "colour": c, "count": n} for (c, s), n in sorted(groups.items())]}
    return {"image": img, "prompt": rng.choice(_SHAPE_PROMPTS), "caption": caption, "kind": "shapes",
            "facts": facts}


# ------------------------------------------------------------------------------------ UI pages
_APPS = ["Acme", "Northwind", "Bluebird", "Quartz", "Atlas", "Juniper", "Orbit", "Maple", "Nimbus", "Harbor"]
_NOUNS = ["Invoices", "Orders", "Customers", "Products", "Tickets", "Projects", "Members", "Vehicles",
          "Courses", "Shipments", "Suppliers", "Patients", "Listings", "Reviews", "Tasks", "Payments",
          "Accounts", "Events", "Rooms", "Books"]
_COLUMNS = ["Name", "Email", "Status", "Date", "Total", "Owner", "Phone", "City", "Price", "Quantity",
            "Title", "Due", "Created", "Priority", "Amount", "Type", "Notes", "Code", "Rating", "Country"]
_BUTTONS = ["Save", "Cancel", "New", "Delete", "Export", "Search", "Filter", "Submit", "Edit", "Refresh"]
_UI_PROMPTS = ["Describe this screenshot.", "What does this page show?", "Read the labels on this page.",
               "Describe the user interface.", "What is on this screen?"]


def ui_example(seed: int, size: tuple[int, int] = (256, 160)) -> dict:
    if seed >= V2_SEED:
        return _ui_example_v2(seed, size)
    rng = random.Random(seed)
    w, h = size
    accent = tuple(rng.randint(30, 200) for _ in range(3))
    img = Image.new("RGB", size, (250, 250, 252) if rng.random() < 0.7 else (34, 36, 42))
    dark = img.getpixel((0, 0))[0] < 100
    ink, soft = ((230, 230, 235), (70, 72, 80)) if dark else ((25, 25, 30), (215, 218, 225))
    d = ImageDraw.Draw(img)
    app, page = rng.choice(_APPS), rng.choice(_NOUNS)
    menu = rng.sample([n for n in _NOUNS if n != page], 3)
    d.rectangle((0, 0, w, 22), fill=accent)
    d.text((6, 4), f"{app} - {page}", fill=(255, 255, 255), font=_font(13))
    d.rectangle((0, 22, 56, h), fill=soft)
    for i, item in enumerate(menu):
        d.text((5, 30 + 16 * i), item, fill=ink, font=_font(9))
    form = rng.random() < 0.4
    cols = rng.sample(_COLUMNS, rng.randint(2, 4))
    buttons = rng.sample(_BUTTONS, rng.randint(1, 2))
    if form:
        for i, label in enumerate(cols):
            y = 32 + 24 * i
            d.text((64, y), label, fill=ink, font=_font(10))
            d.rectangle((120, y - 2, w - 10, y + 14), outline=ink)
    else:
        x_step = (w - 66) / len(cols)
        d.rectangle((62, 30, w - 6, 46), fill=soft)
        for i, label in enumerate(cols):
            d.text((66 + i * x_step, 33), label, fill=ink, font=_font(10))
        for r in range(rng.randint(2, 5)):
            d.line((62, 62 + 14 * r, w - 6, 62 + 14 * r), fill=soft)
    for i, b in enumerate(buttons):
        x = w - 62 - 58 * i
        d.rectangle((x, h - 24, x + 52, h - 8), fill=accent)
        d.text((x + 6, h - 22), b, fill=(255, 255, 255), font=_font(10))
    return _page_example(rng, img, dark, app, page, cols, form, menu, buttons, v2=False)


def page_image(rng: random.Random, app: str, page: str, cols: list[str], form: bool, menu: list[str],
               buttons: list[str], size: tuple[int, int] = (256, 160), look: str = "v3") -> tuple[Image.Image, bool]:
    """A v2/v3 page (large title, then a form or a table of cols): (image, dark). Also draws the
    ui2sql demo's generated pages (assets/demo/render_ui2sql.py), from seeds of their own."""
    w, h = size
    accent = tuple(rng.randint(30, 200) for _ in range(3))
    dark = rng.random() >= 0.7
    img = Image.new("RGB", size, (34, 36, 42) if dark else (250, 250, 252))
    ink, soft = ((230, 230, 235), (70, 72, 80)) if dark else ((25, 25, 30), (215, 218, 225))
    d = ImageDraw.Draw(img)
    top, small, big = TITLE_PX[look]  # the page title in type large enough to survive the 96 px input
    d.rectangle((0, 0, w, top), fill=accent)
    d.text((8, top / 2), page, fill=(255, 255, 255), font=_font(rng.randint(small, big)), anchor="lm")
    d.rectangle((0, top, 56, h), fill=soft)
    if look == "v2":
        d.text((w - 6, top / 2), app, fill=(255, 255, 255), font=_font(9), anchor="rm")
    else:  # a long title in v3's type reaches the right edge: the app's name goes under the menu
        d.text((5, h - 14), app, fill=ink, font=_font(9))
    for i, item in enumerate(menu):
        d.text((5, top + 8 + 16 * i), item, fill=ink, font=_font(9))
    y0 = top + 10
    if form:
        for i, label in enumerate(cols):
            y = y0 + 24 * i
            d.text((64, y), label, fill=ink, font=_font(12))
            d.rectangle((130, y - 2, w - 10, y + 14), outline=ink)
    else:
        x_step = (w - 66) / len(cols)
        d.rectangle((62, y0 - 2, w - 6, y0 + 14), fill=soft)
        for i, label in enumerate(cols):
            d.text((66 + i * x_step, y0 + 1), label, fill=ink, font=_font(12))
        for r in range(rng.randint(2, 4)):
            d.line((62, y0 + 30 + 14 * r, w - 6, y0 + 30 + 14 * r), fill=soft)
    for i, b in enumerate(buttons):
        x = w - 62 - 58 * i
        d.rectangle((x, h - 24, x + 52, h - 8), fill=accent)
        d.text((x + 6, h - 22), b, fill=(255, 255, 255), font=_font(10))
    return img, dark


def _ui_example_v2(seed: int, size: tuple[int, int]) -> dict:
    rng = random.Random(seed)
    app, page = rng.choice(_APPS), rng.choice(_NOUNS)
    menu = rng.sample([n for n in _NOUNS if n != page], 3)
    form = rng.random() < 0.4
    cols = rng.sample(_COLUMNS, rng.randint(2, 3))
    buttons = rng.sample(_BUTTONS, rng.randint(1, 2))
    img, dark = page_image(rng, app, page, cols, form, menu, buttons, size, "v3" if seed >= V3_SEED else "v2")
    return _page_example(rng, img, dark, app, page, cols, form, menu, buttons, v2=True)


def _page_example(rng, img, dark, app, page, cols, form, menu, buttons, v2: bool) -> dict:
    """A page's caption (v2 adds the lower-case purpose form) and example dict."""
    what = "a form with the fields" if form else "a table with the columns"
    forms = [
        f"A {'dark' if dark else 'light'} {app} page titled {page}, with {what} {', '.join(cols)} and "
        f"the button{'s' if len(buttons) > 1 else ''} {' and '.join(buttons)}. The menu lists {', '.join(menu)}.",
        f"The {page} screen of {app}: {what} {', '.join(cols)}. Menu: {', '.join(menu)}. "
        f"Buttons: {', '.join(buttons)}.",
    ]
    if v2:
        forms.append(f"A page for managing {page.lower()} in {app}, showing {what} {', '.join(c.lower() for c in cols)}.")
    caption = rng.choice(forms)  # before the prompt: the order of draws is part of each seed's example
    return {"image": img, "prompt": rng.choice(_UI_PROMPTS), "caption": caption, "kind": "ui",
            "facts": {"app": app, "page": page, "columns": cols, "form": form, "buttons": buttons, "menu": menu}}
