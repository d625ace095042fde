"""Known secret values, masked wherever text leaves the gateway: :class:`SecretMasker`.

Each app has its own masker (``server/app.py`` makes it; nothing here is
global): configured secrets are remembered at start-up (and on a reload) and
never forgotten. Secrets the gateway obtains at run time (OAuth 2 access
tokens, Beeswax session cookies, StreamOne session keys, stored 3-legged token
secrets) are remembered by the auth that obtains them, through the masker the
app handed it; at most :data:`MAX_RUNTIME` of those are kept, the least
recently seen forgotten first (a rotated-away cookie is dead). Both the log
pipeline (``logs.redact_secrets``) and the problem renderer
(``server/middlewares.py``) mask them with the app's masker, so an upstream
that echoes a credential back cannot make the gateway reveal it
(``docs/architecture.md``, "Secret masking").

Masking runs on every log line and Beeswax rotates its cookies all the time, so
neither may depend on how many secrets are known. No regular expression is
built from the values. Instead each value is indexed by a few fixed-length
substrings (*grams*), and a text is probed only at every ``stride``-th position:

- a :class:`Tier` has a gram length ``K`` and a stride ``s``; it holds the
  values of length ``L >= K + s - 1``, each indexed by its ``s`` grams that
  start at offsets ``0 .. s-1``;
- an occurrence of such a value at text position ``p`` covers the aligned
  position ``i = p + ((-p) mod s)``: ``i - p <= s - 1`` and
  ``i + K <= p + s - 1 + K <= p + L``, so the gram at ``i`` is one of the
  value's indexed grams, found with one dict lookup. Every occurrence is found,
  with no false positive: a gram's hits are grouped by (offset in the value,
  value length), and each group is confirmed with one set lookup of the text
  slice it implies.

Costs: registering or forgetting a value is ``s`` dict and set operations
(O(1)); masking a text of length ``n`` is ``n / s`` lookups per non-empty tier,
each hit confirmed once per (offset, length) group, which depends on how many
*lengths* share a gram, never on how many values do (tokens of one format that
share a prefix, such as JWTs, make one group); memory is ``s`` index entries
per value, and the number of values is bounded. Overlapping matches are masked
as one span.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

REDACTED = "[redacted]"
MIN_LENGTH = 4  # shorter values would mask ordinary words
MAX_RUNTIME = 4096  # run-time values kept (configured ones are not counted)


@dataclass(frozen=True)
class Tier:
    gram: int  # K: characters per indexed substring
    stride: int  # s: the text is probed at every s-th position

    @property
    def shortest(self) -> int:
        return self.gram + self.stride - 1


# Long values (tokens, cookies, keys) are probed every 8 characters; short ones
# (passwords, PINs) cost more per line, and only when such a value is known.
TIERS = (Tier(8, 8), Tier(4, 4), Tier(4, 1))  # lengths >= 15, 7..14, 4..6


# What a gram maps to: (offset of the gram in the value, value length, value) when
# one value has it (compact: most grams of random tokens are unique), else
# (offset, length) -> the values, so values of one format that share a gram are
# confirmed with one set lookup per (offset, length), not one per value.
Entry = tuple[int, int, str] | dict[tuple[int, int], set[str]]


class SecretMasker:
    """Known secret values and the gram index that finds them (see the module docstring).

    One per app; pure (no I/O, no global): the app hands it to the auths, which
    :meth:`remember` what they obtain, and to the log processor and the problem
    renderer, which :meth:`mask` what they write.
    """

    def __init__(self, max_runtime: int = MAX_RUNTIME) -> None:
        self.max_runtime = max_runtime
        self._configured: dict[str, None] = {}  # insertion-ordered sets
        self._runtime: dict[str, None] = {}
        self._grams: tuple[dict[str, Entry], ...] = tuple({} for _ in TIERS)
        self._shortest = 0  # of every known value; 0 when none is known

    @property
    def configured(self) -> int:
        """How many configured values are known (never forgotten)."""
        return len(self._configured)

    @property
    def runtime(self) -> int:
        """How many run-time values are known (at most ``max_runtime``)."""
        return len(self._runtime)

    def remember_configured(self, values: Iterable[str]) -> None:
        """Configured secrets: masked for the life of the masker."""
        for value in values:
            self._add_configured(value)

    def remember(self, value: str | None) -> None:
        """A secret obtained at run time (bounded, least recently seen forgotten first)."""
        if value is not None:
            self._add_runtime(value)

    def remember_all(self, values: Iterable[str]) -> None:
        for value in values:
            self._add_runtime(value)

    def knows(self, value: str) -> bool:
        return value in self._configured or value in self._runtime

    def _add_configured(self, value: str) -> None:
        if len(value) < MIN_LENGTH or value in self._configured:
            return
        if value in self._runtime:
            del self._runtime[value]  # indexed already
        else:
            self._index(value)
        self._configured[value] = None

    def _add_runtime(self, value: str) -> None:
        if len(value) < MIN_LENGTH or value in self._configured:
            return
        if value in self._runtime:
            del self._runtime[value]  # seen again: now the most recent
        else:
            self._index(value)
            if len(self._runtime) >= self.max_runtime:
                oldest = next(iter(self._runtime))
                del self._runtime[oldest]
                self._unindex(oldest)
        self._runtime[value] = None

    def mask(self, text: str) -> str:
        """``text`` with every occurrence of every known value replaced by ``[redacted]``;
        ``text`` itself (the same object) when none occurs, so a caller may test
        ``masked is text`` to skip work."""
        n = len(text)
        if not self._shortest or n < self._shortest:
            return text
        spans: list[tuple[int, int]] = []
        for tier, grams in zip(TIERS, self._grams, strict=True):
            if not grams or n < tier.shortest:
                continue
            k, lookup = tier.gram, grams.get
            for i in range(0, n - k + 1, tier.stride):
                entry = lookup(text[i : i + k])
                if entry is None:
                    continue
                if isinstance(entry, tuple):  # the common case: one value has this gram
                    offset, length, value = entry
                    start = i - offset
                    if start >= 0 and text.startswith(value, start):
                        spans.append((start, start + length))
                    continue
                for (offset, length), values in entry.items():
                    start = i - offset
                    if start >= 0 and text[start : start + length] in values:
                        spans.append((start, start + length))
        return _replace(text, spans) if spans else text

    def _tier(self, value: str) -> int:
        return next(t for t, tier in enumerate(TIERS) if len(value) >= tier.shortest)

    def _index(self, value: str) -> None:
        t = self._tier(value)
        k, grams, length = TIERS[t].gram, self._grams[t], len(value)
        for offset in range(TIERS[t].stride):
            gram = value[offset : offset + k]
            entry = grams.get(gram)
            if entry is None:
                grams[gram] = (offset, length, value)
                continue
            if isinstance(entry, tuple):  # a second value shares this gram
                entry = grams[gram] = {entry[:2]: {entry[2]}}
            entry.setdefault((offset, length), set()).add(value)
        if not self._shortest or len(value) < self._shortest:
            self._shortest = len(value)

    def _unindex(self, value: str) -> None:
        t = self._tier(value)
        k, grams = TIERS[t].gram, self._grams[t]
        for offset in range(TIERS[t].stride):
            gram, key = value[offset : offset + k], (offset, len(value))
            entry = grams[gram]
            if isinstance(entry, tuple):
                del grams[gram]
                continue
            entry[key].discard(value)
            if not entry[key]:
                del entry[key]
            if not entry:
                del grams[gram]
        # The shortest length only ever decreases here: a bound that stays
        # low costs a few needless probes, never a missed value.


def _replace(text: str, spans: list[tuple[int, int]]) -> str:
    out: list[str] = []
    end = 0  # of the text already copied or masked
    for start, stop in sorted(spans):
        if start < end:  # overlaps the masked span before: extend it
            end = max(end, stop)
            continue
        out += (text[end:start], REDACTED)
        end = stop
    out.append(text[end:])
    return "".join(out)
