"""Cut long segments into sentences, and long sentences at their longest pauses, using word timings.

faster-whisper's batched pipeline returns one segment per VAD chunk (up to 30 s of speech). Each is cut after every
word that ends a sentence (`.`, `?`, `!`, `…`, CJK `。？！`, also before a closing quote or bracket; not after a
title such as "Mr." or an initial, nor where the next word starts in lower case), then every piece still longer than
`max_duration` is cut where the pause between two words is longest, a clause mark (`,`, `;`, `:`, CJK `，、；：`)
counting as half a second more pause, until no piece is longer or a piece is one word. A cut leaves at least a
second on either side when it can.

A piece takes its times from its words and its text from its words' text, so the texts of the pieces join to exactly
the segment's text; it keeps the segment's other fields (avg_logprob, no_speech_prob, compression_ratio,
temperature, seek, speaker). Its `tokens` are its share of the segment's tokens, found with `decode` (each share
decodes to the piece's text); None when no `decode` is given or the tokens do not split at that cut. A segment
without words, or whose words do not spell its text, is kept as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from app.schemas.transcript import Segment, Word

SENTENCE_ENDS = ".?!…。？！｡؟"
CLAUSE_ENDS = ",;:，、；：—–"
CLOSERS = "\"'”’»)]}」』）】"
OPENERS = "\"'“‘«([{「『（【¿¡"
CLAUSE_BONUS = 0.5
"""Seconds of pause a clause mark is worth when choosing where to cut a long sentence."""
MIN_SIDE = 1.0
"""Seconds each side of a cut inside a sentence keeps, where the sentence allows it."""
ABBREVIATIONS = frozenset(
    ["mr", "mrs", "ms", "mx", "dr", "prof", "st", "jr", "sr", "mt", "vs", "etc", "sra", "srta", "mme", "mlle"]
)
"""Words before a full stop that does not end a sentence when a capitalised word follows."""

MAX_DURATION = 10.0
"""Longest piece, unless one word is longer: about as long as Whisper's segments get in sequential decoding, and short
enough that segments average well under 8 s even where sentences run long (the 53 s sonnet: 5.7 s; 15 s: 7.8 s)."""

Decode = Callable[[list[int]], str]
"""Token ids to text, as the model's tokenizer decodes them."""


def split_long_segments(
    segments: Iterable[Segment], *, max_duration: float = MAX_DURATION, first_id: int = 0, decode: Decode | None = None
) -> list[Segment]:
    """The segments cut at sentence ends, and sentences longer than `max_duration` seconds at their longest pauses;
    ids numbered from `first_id`."""
    out: list[Segment] = []
    for segment in segments:
        out.extend(_split(segment, max_duration, decode))
    return [segment.model_copy(update={"id": first_id + i}) for i, segment in enumerate(out)]


def _split(segment: Segment, max_duration: float, decode: Decode | None) -> list[Segment]:
    words = segment.words
    if not words or "".join(w.word for w in words) != segment.text:
        return [segment]
    pieces = [part for sentence in _sentences(words) for part in _cut_long(sentence, max_duration)]
    if len(pieces) == 1:
        return [segment]
    texts = ["".join(w.word for w in piece) for piece in pieces]
    shares = _split_tokens(segment.tokens, texts, decode) if segment.tokens is not None and decode else None
    return [
        segment.model_copy(
            update={
                "start": piece[0].start,
                "end": piece[-1].end,
                "text": text,
                "words": list(piece),
                "tokens": shares[i] if shares else None,
            }
        )
        for i, (piece, text) in enumerate(zip(pieces, texts, strict=True))
    ]


def _sentences(words: Sequence[Word]) -> list[Sequence[Word]]:
    """The words cut after every sentence end."""
    sentences, start = [], 0
    for i in range(len(words) - 1):
        if ends_sentence(words[i].word, words[i + 1].word):
            sentences.append(words[start : i + 1])
            start = i + 1
    sentences.append(words[start:])
    return sentences


def ends_sentence(word: str, following: str) -> bool:
    """Whether `word` ends a sentence, given the word after it."""
    core = word.strip().rstrip(CLOSERS)
    if not core or core[-1] not in SENTENCE_ENDS:
        return False
    if core[-1] == "." and _abbreviation(core[:-1].lstrip(OPENERS + "-")):
        return False
    return not following.strip().lstrip(OPENERS)[:1].islower()


def _abbreviation(stem: str) -> bool:
    """ "Mr", "etc", an initial ("J", not "I"), or letters with dots ("e.g", "U.S")."""
    parts = stem.split(".")
    if len(parts) > 1:
        return all(len(p) == 1 and p.isalpha() for p in parts)
    return stem.lower() in ABBREVIATIONS or (len(stem) == 1 and stem.isupper() and stem != "I")


def _cut_long(words: Sequence[Word], max_duration: float) -> list[Sequence[Word]]:
    """The words in pieces of at most `max_duration` seconds (or one word), cut where pauses are longest."""
    if len(words) < 2 or words[-1].end - words[0].start <= max_duration:
        return [words]
    first, last = words[0].start, words[-1].end

    def roomy(i: int) -> bool:  # a cut before words[i]
        return words[i - 1].end - first >= MIN_SIDE and last - words[i].start >= MIN_SIDE

    def score(i: int) -> tuple[float, float]:
        pause = words[i].start - words[i - 1].end
        clause = CLAUSE_BONUS if words[i - 1].word.strip().rstrip(CLOSERS)[-1:] in CLAUSE_ENDS else 0.0
        balance = -abs((words[i - 1].end - first) - (last - words[i].start))
        return (round(pause + clause, 3), balance)

    cuts = [i for i in range(1, len(words)) if roomy(i)] or list(range(1, len(words)))
    best = max(cuts, key=score)
    return _cut_long(words[:best], max_duration) + _cut_long(words[best:], max_duration)


def _split_tokens(tokens: list[int], texts: list[str], decode: Decode) -> list[list[int]] | None:
    """`tokens` cut so that each share decodes to its text, or None where no cut does."""
    if decode(tokens) != "".join(texts):
        return None
    shares: list[list[int]] = []
    start, target = 0, ""
    for text in texts[:-1]:
        target += text
        end = next((k for k in range(start, len(tokens) + 1) if decode(tokens[:k]) == target), None)
        if end is None:
            return None
        shares.append(tokens[start:end])
        start = end
    shares.append(tokens[start:])
    return shares
