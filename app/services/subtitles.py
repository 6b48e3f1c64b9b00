"""Render a transcript as SRT, WebVTT, LRC, plain text, TSV or JSON.

Cues are built from word timings (or, for a transcript without words, from the segment text with times spread by
length): words are packed into lines of at most `max_line_width` characters, at most `max_line_count` lines and
`max_words_per_cue` words per cue, and no cue lasts longer than `max_cue_duration`. Without any of these four, SRT
and WebVTT follow common subtitle practice (`standard_layout`: 2 lines of 42 characters, 16 for Chinese, Japanese
and Korean, at most 7 s) and the other formats give one cue per segment; `segment_cues` gives one cue per segment in
every format. Cues never cross a segment (or speaker) boundary, never overlap and never pass the end of the audio.
`highlight_words` gives karaoke output: WebVTT timestamp tags, SRT and LRC per-word timing.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from app.schemas.transcript import Segment, Transcript


class SubtitleFormat(StrEnum):
    """Export formats."""

    srt = "srt"
    vtt = "vtt"
    lrc = "lrc"
    txt = "txt"
    tsv = "tsv"
    json = "json"


MEDIA_TYPES = {
    SubtitleFormat.srt: "application/x-subrip",
    SubtitleFormat.vtt: "text/vtt",
    SubtitleFormat.lrc: "text/plain",
    SubtitleFormat.txt: "text/plain",
    SubtitleFormat.tsv: "text/tab-separated-values",
    SubtitleFormat.json: "application/json",
}


@dataclass(frozen=True)
class CueLayout:
    """How cues are cut; without sizes: the standard layout in SRT and WebVTT, one cue per segment elsewhere."""

    max_line_width: int | None = None
    max_line_count: int | None = None
    max_words_per_cue: int | None = None
    max_cue_duration: float | None = None
    highlight_words: bool = False
    segment_cues: bool = False

    @property
    def sized(self) -> bool:
        """Whether any size limit is set."""
        limits = (self.max_line_width, self.max_line_count, self.max_words_per_cue, self.max_cue_duration)
        return any(limit is not None for limit in limits)

    @property
    def by_words(self) -> bool:
        """Whether cues are built from words rather than taken from segments."""
        return any(v is not None for v in (self.max_line_width, self.max_line_count, self.max_words_per_cue)) or bool(
            self.max_cue_duration or self.highlight_words
        )


@dataclass(frozen=True)
class Token:
    """A word (with its leading space, as Whisper writes it) and its time."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Cue:
    """One subtitle: its time, its lines of tokens, and the speaker."""

    start: float
    end: float
    lines: tuple[tuple[Token, ...], ...]
    speaker: str | None = None

    @property
    def tokens(self) -> list[Token]:
        """Every token, in order."""
        return [token for line in self.lines for token in line]

    def text(self, mark: Callable[[Token], str] | None = None) -> str:
        """The cue's lines; `mark` renders each token (default: as is)."""
        return "\n".join(_line_text(line, mark) for line in self.lines)


def _line_text(line: Sequence[Token], mark: Callable[[Token], str] | None = None) -> str:
    """The tokens joined (each keeps its leading space, except the line's first)."""
    render = mark or (lambda token: token.text)
    return "".join(render(token) for token in line).strip()


def _marked(token: Token, before: str, after: str = "") -> str:
    """The token with markup around its word (its leading space stays outside)."""
    word = token.text.lstrip()
    return token.text[: len(token.text) - len(word)] + before + word + after


def timestamp(seconds: float, *, decimal: str) -> str:
    """`HH:MM:SS,mmm` (SRT, decimal=",") or `HH:MM:SS.mmm` (WebVTT)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def lrc_timestamp(seconds: float) -> str:
    """`mm:ss.xx` (minutes may pass 99)."""
    centis = max(0, round(seconds * 100))
    minutes, centis = divmod(centis, 6000)
    return f"{minutes:02d}:{centis // 100:02d}.{centis % 100:02d}"


# A CJK character is a word of its own when a segment without word timings is cut into lines.
_CJK = "\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_PSEUDO_WORDS = re.compile(rf"\s*(?:[{_CJK}]|[^\s{_CJK}]+)")
_CJK_CHAR = re.compile(rf"[{_CJK}]")


def _clean(text: str) -> str:
    """One leading space if the word had any whitespace before it; no other whitespace."""
    return (" " if text[:1].isspace() else "") + " ".join(text.split())


LINE_WIDTH = 42
"""Characters per line of standard cues: the BBC's and Netflix's limit for Latin scripts."""
CJK_LINE_WIDTH = 16
"""Characters per line of standard cues in Chinese, Japanese and Korean (Netflix: 16 for Chinese and Korean; a CJK
character is about twice as wide as a Latin letter)."""
LINE_COUNT = 2
CUE_SECONDS = 7.0
"""Longest standard cue (Netflix: 7 s)."""
CUE_ENDINGS = frozenset(".,;:!?…。，、；：！？")
PUNCTUATION_BONUS = 200
"""How much a cue that ends a clause is preferred (about the squared length of a 14-character line)."""
BALANCE_TOKENS = 200
"""Longest cue considered, in words: bounds the balancing work on a segment without word timings."""


def standard_layout(transcript: Transcript, layout: CueLayout = CueLayout()) -> CueLayout:
    """The layout of SRT and WebVTT cues: `layout` when it sets a size or asks for segment cues; otherwise at most
    2 lines of 42 characters (16 where the text is mostly CJK) and 7 s, with `layout`'s highlighting."""
    if layout.sized or layout.segment_cues:
        return layout
    width = CJK_LINE_WIDTH if _mostly_cjk(transcript) else LINE_WIDTH
    return replace(layout, max_line_width=width, max_line_count=LINE_COUNT, max_cue_duration=CUE_SECONDS)


def _mostly_cjk(transcript: Transcript) -> bool:
    """Whether most letters of the transcript are CJK (by its text, not its language: a translation is English)."""
    letters = [c for segment in transcript.segments for c in segment.text if c.isalnum()]
    return 2 * sum(1 for c in letters if _CJK_CHAR.match(c)) > len(letters)


def _segment_tokens(segment: Segment) -> list[Token]:
    """The segment's words clamped to its bounds and made monotonic, or pseudo-words timed by their length."""
    segment = segment.tidied()
    start, end = segment.start, segment.end
    if segment.words:
        tokens = [Token(word.start, word.end, _clean(word.word)) for word in segment.words]
        return [t for t in tokens if t.text.strip()]
    tokens = []
    pieces = [_clean(piece) for piece in _PSEUDO_WORDS.findall(segment.text)]
    total = sum(len(p.strip()) for p in pieces) or 1
    at = start
    for piece in pieces:
        length = (end - start) * len(piece.strip()) / total
        tokens.append(Token(at, at + length, piece))
        at += length
    return tokens


def _fit_width(tokens: list[Token], width: int | None) -> list[Token]:
    """Tokens longer than a line cut into line-sized pieces, their time shared by length."""
    if width is None:
        return tokens
    fitted: list[Token] = []
    for token in tokens:
        text = token.text.strip()
        if len(text) <= width:
            fitted.append(token)
            continue
        pieces = [text[i : i + width] for i in range(0, len(text), width)]
        step = (token.end - token.start) / len(pieces)
        for i, piece in enumerate(pieces):
            lead = " " if i > 0 or token.text[:1].isspace() else ""
            fitted.append(Token(token.start + i * step, token.start + (i + 1) * step, lead + piece))
    return fitted


def _wrap(tokens: Sequence[Token], width: int | None) -> list[tuple[Token, ...]]:
    """Greedy line breaking: a token goes on the current line while the line stays within `width` characters."""
    lines: list[list[Token]] = []
    length = 0
    for token in tokens:
        if lines and (width is None or length + len(token.text) <= width):
            lines[-1].append(token)
            length += len(token.text)
            continue
        lines.append([token])
        length = len(token.text.lstrip())
    return [tuple(line) for line in lines]


def _speaker_label(speaker: str | None) -> str:
    return f"[{speaker}] " if speaker else ""


def build_cues(transcript: Transcript, layout: CueLayout = CueLayout()) -> list[Cue]:
    """The transcript's cues, laid out per `layout`, clipped to the audio and to each other."""
    raw: list[Cue] = []
    for segment in transcript.segments:
        if not segment.text.strip():
            continue
        if not layout.by_words:
            text = " ".join(segment.text.split())  # a blank line inside a cue would end it early
            raw.append(Cue(segment.start, segment.end, ((Token(segment.start, segment.end, text),),), segment.speaker))
        else:
            raw.extend(_word_cues(segment, layout))
    cues: list[Cue] = []
    previous_end = 0.0
    for cue in raw:
        start = min(max(cue.start, previous_end), transcript.duration)
        end = min(max(cue.end, start), transcript.duration)
        if layout.max_cue_duration is not None:
            end = min(end, start + layout.max_cue_duration)
        cues.append(Cue(start, end, cue.lines, cue.speaker))
        previous_end = end
    return cues


def _word_cues(segment: Segment, layout: CueLayout) -> list[Cue]:
    """One segment cut into as few cues as the layout's limits allow, balanced: of the cuts with that fewest number
    of cues, the one whose cues are most even in length, preferring cuts after punctuation. (Filling each cue in turn
    leaves a last word alone on screen for a fraction of a second.)"""
    tokens = _fit_width(_segment_tokens(segment), layout.max_line_width)
    if not tokens:
        return []

    def fits(candidate: Sequence[Token]) -> bool:
        if layout.max_words_per_cue is not None and len(candidate) > layout.max_words_per_cue:
            return False
        if layout.max_cue_duration is not None and candidate[-1].end - candidate[0].start > layout.max_cue_duration:
            return False
        lines = _wrap(candidate, layout.max_line_width)
        return layout.max_line_count is None or len(lines) <= layout.max_line_count

    # reach[i]: the most tokens from i on that fit in one cue (at least one, however long).
    reach = []
    for i in range(len(tokens)):
        end = i + 1
        while end < len(tokens) and end - i < BALANCE_TOKENS and fits(tokens[i : end + 1]):
            end += 1
        reach.append(end)
    # best[j]: (cues, unevenness) of the best cut of tokens[:j]; came[j]: where its last cue starts.
    best: list[tuple[float, float]] = [(0, 0.0)] + [(math.inf, math.inf)] * len(tokens)
    came = [0] * (len(tokens) + 1)
    for i in range(len(tokens)):
        if best[i][0] == math.inf:
            continue
        for j in range(i + 1, reach[i] + 1):
            candidate = (best[i][0] + 1, best[i][1] + _unevenness(tokens[i:j]))
            if candidate < best[j]:
                best[j], came[j] = candidate, i
    cuts, j = [], len(tokens)
    while j > 0:
        cuts.append((came[j], j))
        j = came[j]
    return [_cue(tokens[i:j], layout, segment.speaker) for i, j in reversed(cuts)]


def _unevenness(cue: Sequence[Token]) -> float:
    """Squared length (so that even cues win), less a bonus when the cue ends a clause or sentence."""
    text = "".join(token.text for token in cue).strip()
    return len(text) ** 2 - (PUNCTUATION_BONUS if text[-1:] in CUE_ENDINGS else 0)


def _cue(tokens: Sequence[Token], layout: CueLayout, speaker: str | None) -> Cue:
    return Cue(tokens[0].start, tokens[-1].end, tuple(_wrap(tokens, layout.max_line_width)), speaker)


def to_srt(transcript: Transcript, layout: CueLayout = CueLayout()) -> str:
    """SubRip: numbered cues, comma decimal separator; karaoke: one cue per word with the word underlined."""
    layout = standard_layout(transcript, layout)
    blocks: list[str] = []
    for start, end, text in _timed_texts(build_cues(transcript, layout), layout.highlight_words, "<u>", "</u>"):
        stamp = f"{timestamp(start, decimal=',')} --> {timestamp(end, decimal=',')}"
        blocks.append(f"{len(blocks) + 1}\n{stamp}\n{text}\n")
    return "\n".join(blocks)


def _timed_texts(cues: list[Cue], highlight: bool, open_: str, close: str) -> list[tuple[float, float, str]]:
    """(start, end, text) per cue; with `highlight`, per word: the cue's text with that word marked, from the word's
    start (the cue's start for the first word) to the next word's start (the cue's end for the last)."""
    out: list[tuple[float, float, str]] = []
    for cue in cues:
        label = _speaker_label(cue.speaker)
        tokens = cue.tokens
        if not highlight or len(tokens) < 2:
            out.append((cue.start, cue.end, label + cue.text()))
            continue
        bounds = [cue.start]
        for token in tokens[1:]:
            bounds.append(min(max(token.start, bounds[-1]), cue.end))
        bounds.append(cue.end)
        for i, word in enumerate(tokens):
            if bounds[i + 1] > bounds[i]:
                text = cue.text(lambda t, word=word: _marked(t, open_, close) if t is word else t.text)  # type: ignore[misc]
                out.append((bounds[i], bounds[i + 1], label + text))
    return out


def to_vtt(transcript: Transcript, layout: CueLayout = CueLayout()) -> str:
    """WebVTT: voice tags for speakers; karaoke: timestamp tags before each word (styled by `:past`/`:future`)."""
    layout = standard_layout(transcript, layout)
    header = ["WEBVTT\n"]
    if layout.highlight_words:
        header.append("STYLE\n::cue(:future) { color: #9a9a9a; }\n")
    blocks = []
    for cue in build_cues(transcript, layout):
        voice = f"<v {cue.speaker}>" if cue.speaker else ""
        text = cue.text(_vtt_tagger(cue) if layout.highlight_words else None)
        blocks.append(f"{timestamp(cue.start, decimal='.')} --> {timestamp(cue.end, decimal='.')}\n{voice}{text}\n")
    return "\n".join([*header, *blocks])


def _vtt_tagger(cue: Cue) -> Callable[[Token], str]:
    """Token renderer adding `<hh:mm:ss.mmm>` before every word but the first, inside the cue's time."""
    tokens = cue.tokens
    stamps = {id(tokens[0]): cue.start}
    for previous, token in itertools.pairwise(tokens):
        stamps[id(token)] = min(max(token.start, stamps[id(previous)]), cue.end)

    def tag(token: Token) -> str:
        if token is tokens[0]:
            return token.text
        return _marked(token, f"<{timestamp(stamps[id(token)], decimal='.')}>")

    return tag


def to_lrc(transcript: Transcript, layout: CueLayout = CueLayout()) -> str:
    """LRC lyrics: `[mm:ss.xx]` per cue (lines joined), an empty timed line where a gap follows; karaoke: enhanced
    LRC `<mm:ss.xx>` before each word."""
    cues = build_cues(transcript, layout)
    lines = []
    for i, cue in enumerate(cues):
        mark = (lambda t: _marked(t, f"<{lrc_timestamp(t.start)}>")) if layout.highlight_words else None
        text = " ".join(_line_text(line, mark) for line in cue.lines)
        lines.append(f"[{lrc_timestamp(cue.start)}]{_speaker_label(cue.speaker)}{text}")
        following = cues[i + 1].start if i + 1 < len(cues) else None
        if following is None or following - cue.end >= 0.01:
            lines.append(f"[{lrc_timestamp(cue.end)}]")
    return "".join(f"{line}\n" for line in lines)


def to_txt(transcript: Transcript, layout: CueLayout = CueLayout()) -> str:
    """One cue a line (a segment, without sizes), speaker-labelled when known."""
    return "".join(
        f"{_speaker_label(cue.speaker)}{' '.join(_line_text(line) for line in cue.lines)}\n"
        for cue in build_cues(transcript, layout)
    )


def to_tsv(transcript: Transcript, layout: CueLayout = CueLayout()) -> str:
    """start, end (integer milliseconds) and text, tab-separated, as Whisper's CLI writes it; plus a speaker column
    when speakers are known."""
    cues = build_cues(transcript, layout)
    speakers = any(cue.speaker for cue in cues)
    rows = []
    for cue in cues:
        text = " ".join(_line_text(line) for line in cue.lines)
        row = f"{round(cue.start * 1000)}\t{round(cue.end * 1000)}\t{text}"
        rows.append(row + (f"\t{cue.speaker or ''}" if speakers else ""))
    header = "start\tend\ttext" + ("\tspeaker" if speakers else "")
    return header + "\n" + "".join(f"{row}\n" for row in rows)


def to_json(transcript: Transcript, layout: CueLayout = CueLayout()) -> str:
    """The whole transcript as JSON (layout options do not apply)."""
    return transcript.model_dump_json(indent=2, exclude_none=False)


RENDERERS: dict[SubtitleFormat, Callable[[Transcript, CueLayout], str]] = {
    SubtitleFormat.srt: to_srt,
    SubtitleFormat.vtt: to_vtt,
    SubtitleFormat.lrc: to_lrc,
    SubtitleFormat.txt: to_txt,
    SubtitleFormat.tsv: to_tsv,
    SubtitleFormat.json: to_json,
}


def render(transcript: Transcript, fmt: SubtitleFormat, layout: CueLayout = CueLayout()) -> str:
    """Render `transcript` in `fmt`."""
    return RENDERERS[fmt](transcript, layout)
