"""The words printed on a product, read by OCR, as evidence of its category.

Packs of one brand share their print and their look, so neither the CNN vector nor SIFT keypoints tell Oatly's
oat drink from its oatghurt, or Arla's sour cream from its yoghurt; the pack says it in words ("HAVREDRYCK",
"GRÄDDFIL"). An index built with `--read-text` stores the words read on every catalog photo; a query's words
then vote for the categories whose photos carry them, blended after the other votes (`category_vote`).

Reading uses RapidOCR's PP-OCRv6 small detector and recogniser (the `rapidocr` wheel ships them; nothing is
downloaded) at their default size. It is slow (docs/benchmarks.md), so it is a build-time choice
for catalogs of printed packs, and a query is read only when its other cues are unsure of the category.

The rule was fixed before it was scored, and its two numbers chosen on query sets without a GroceryStore val
photo plus half of the val queries (docs/experiments/printed-words.md): words are runs of 4+ letters (accents dropped,
upper case) from lines read with confidence 0.7+, plus each line's letters joined ("HAVRE DRYCK" also gives
"HAVREDRYCK"); a word votes when 5+ catalog photos carry it, with its share of each category's photos,
normalised; the query's voting words are averaged and blended at weight 0.5. A query is read only when the
other cues leave its first category under 0.8 (chosen on the same sets: as many right as reading every query,
for a fraction of the reading).
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from lookalike.images.cache import EmbeddingCache
from lookalike.images.loading import ImageError, load_image
from lookalike.products.errors import IndexCorruptError, rebuild_hint

#: A recognised line counts from this confidence up.
MIN_SCORE = 0.7
#: Shorter runs of letters are mostly misread fragments, sizes and dates.
MIN_LETTERS = 4
#: A word votes only when at least this many catalog photos carry it (rarer ones are noise or one photo's shelf).
MIN_PHOTOS = 5
#: The words' vote's share of the category probabilities.
VOTE_WEIGHT = 0.5
#: A query's words are read only when the other cues leave its first category under this probability.
READ_BELOW = 0.8
FILE = "words.json"  # each item's words, by item id
THREADS = 2  # a build reads one photo a core, each reader's networks on one thread
#: What the stored words depend on: written into the manifest, compared before an update reuses them.
SETTINGS = {"kind": "rapidocr-pp-ocrv6-small", "min_score": MIN_SCORE, "min_letters": MIN_LETTERS}

_readers = threading.local()


def _reader(threads: int):
    """This thread's OCR engine running its networks on `threads` threads (-1: onnxruntime's choice, every
    core), loaded on first use (slow to load); RapidOCR instances are not shared across threads."""
    engines = _readers.__dict__.setdefault("engines", {})
    if threads not in engines:
        from rapidocr import RapidOCR  # here: an index without words never loads it

        engines[threads] = RapidOCR(params={
            # the direction classifier: a pass a line for the same answers on the selection sets
            # (docs/experiments/printed-words.md)
            "Global.use_cls": False,
            "Global.log_level": "error",
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        })
    return engines[threads]


def words(lines: Iterable[tuple[str, float]]) -> frozenset[str]:
    """The words of recognised (text, confidence) lines, as this module's rule defines them."""
    found: set[str] = set()
    for text, score in lines:
        if score < MIN_SCORE:
            continue
        plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().upper()
        runs = re.findall(r"[A-Z]+", plain)
        found.update(run for run in runs if len(run) >= MIN_LETTERS)
        joined = "".join(runs)
        if len(joined) >= MIN_LETTERS:
            found.add(joined)
    return frozenset(found)


def read_words(image: Image.Image, threads: int = -1) -> frozenset[str]:
    """The words printed on a photo (empty when none is legible); a query uses every core (`threads` -1)."""
    result = _reader(threads)(np.asarray(image.convert("RGB"))[:, :, ::-1])  # RapidOCR takes OpenCV's BGR
    return words(zip(result.txts or (), result.scores or (), strict=True))


def write_words(
    folder: Path,
    ids: Sequence[int],
    paths: Sequence[Path],
    digests: Sequence[str],
    previous: dict[int, frozenset[str]] | None = None,
    show_bar: bool = False,
) -> dict:
    """Read each item's photo into `folder`/`FILE`; returns the manifest entry. Only photos never read
    before are read: `previous` (an update: unchanged photos keep their ids) supplies the items it holds, and
    the cache the photos any build on this machine read (by content, `digests`: rebuilding after a retrained
    backbone reads nothing again). The cache is the embeddings' (a record of words, an empty vector). Reading
takes minutes for thousands of photos, hence `show_bar`."""
    previous = previous or {}
    cache = EmbeddingCache("printed_words", SETTINGS, 0)
    cached = cache.get_many(digests)

    def read(path: Path, item: int, digest: str) -> list[str]:
        if item in previous:
            return sorted(previous[item])
        if digest in cached:
            return list(cached[digest][1]["words"])
        try:
            found = sorted(read_words(load_image(path), threads=1))
        except ImageError:  # unreadable now (it embedded a moment ago): no words, never votes
            return []
        cache.put_many({digest: (np.zeros(0, np.float32), {"words": found})})
        return found

    with ThreadPoolExecutor(THREADS) as pool:
        reads = pool.map(read, paths, ids, digests)
        found = list(tqdm(reads, total=len(paths), desc="reading words", unit="img", disable=not show_bar))
    (folder / FILE).write_text(json.dumps({str(item): item_words for item, item_words in zip(ids, found, strict=True)}))
    reused = sum(int(item) in previous for item in ids)
    from_cache = sum(int(item) not in previous and digest in cached for item, digest in zip(ids, digests, strict=True))
    return {**SETTINGS, "items": len(found), "reused": reused, "cached": from_cache,
            "with_words": sum(bool(w) for w in found)}


def stored_words(folder: Path) -> dict[int, frozenset[str]]:
    """Each item's words, as `write_words` stored them in the index `folder`.

    Raises:
        IndexCorruptError: the file is missing or damaged."""
    try:
        stored = json.loads((folder / FILE).read_text())
        return {int(item): frozenset(str(word) for word in item_words) for item, item_words in stored.items()}
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise IndexCorruptError(f"the index's words in {folder / FILE} cannot be read ({exc}); "
                                f"{rebuild_hint(folder)}") from None


class WordTable:
    """The words that vote (carried by MIN_PHOTOS catalog photos or more), each with the categories it points
    to: its share of each category's photos, normalised. A word on every carton of a small category so
    outweighs one on a few of a large one."""

    def __init__(self, items: dict[int, frozenset[str]], categories: dict[int, str]) -> None:
        """`items`: each item id's words (`stored_words`); `categories`: each item id's category."""
        sizes = Counter(categories.values())
        counts: dict[str, Counter] = {}
        for item, item_words in items.items():
            for word in item_words:
                counts.setdefault(word, Counter())[categories[item]] += 1
        self.shares: dict[str, dict[str, float]] = {}
        for word, carried in counts.items():
            if sum(carried.values()) >= MIN_PHOTOS:
                rates = {category: count / sizes[category] for category, count in carried.items()}
                total = sum(rates.values())
                self.shares[word] = {category: rate / total for category, rate in rates.items()}

    def shared(self, query_words: Iterable[str], item_words: Iterable[str]) -> list[str]:
        """The voting words a query and a catalog photo both carry (what a hit's words have in common)."""
        return sorted(set(query_words) & set(item_words) & self.shares.keys())

    def vote(self, query_words: Iterable[str], classes: Sequence[str]) -> np.ndarray | None:
        """The categories (in `classes` order) the query's voting words point to, averaged; None when the
        query has no voting word."""
        voting = [self.shares[word] for word in query_words if word in self.shares]
        if not voting:
            return None
        return np.mean([[share.get(category, 0.0) for category in classes] for share in voting], axis=0)


def reusable(folder: Path, entry: dict | None) -> dict[int, frozenset[str]] | None:
    """The words of the index in `folder` (its manifest entry: `entry`) when read with today's settings, so
    an update can copy them; None otherwise (read every photo again)."""
    if not entry or any(entry.get(key) != value for key, value in SETTINGS.items()):
        return None
    try:
        return stored_words(folder)
    except IndexCorruptError:  # the update mends it: every photo is read again
        return None


def category_vote(probs: np.ndarray, vote: np.ndarray | None) -> np.ndarray:
    """Category probabilities blended with the words' vote (unchanged without one)."""
    return probs if vote is None else (1.0 - VOTE_WEIGHT) * probs + VOTE_WEIGHT * vote
