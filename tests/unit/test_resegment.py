"""Long segments cut at sentence ends and pauses by their word timings."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.schemas.transcript import Segment, Word
from app.services.resegment import ends_sentence, split_long_segments


def segment(words: list[tuple[float, float, str]], *, tokens: list[int] | None = None, index: int = 0) -> Segment:
    return Segment(
        id=index,
        start=words[0][0] if words else 0.0,
        end=words[-1][1] if words else 0.0,
        text="".join(text for _, _, text in words),
        avg_logprob=-0.25,
        no_speech_prob=0.02,
        compression_ratio=1.4,
        temperature=0.0,
        seek=100,
        tokens=tokens,
        words=[Word(start=s, end=e, word=text, probability=0.9) for s, e, text in words],
    )


def spans(segments: list[Segment]) -> list[tuple[int, float, float, str]]:
    return [(s.id, s.start, s.end, s.text) for s in segments]


JFK = [
    (0.0, 0.5, " And"),
    (0.5, 0.8, " so"),
    (0.8, 1.2, " my"),
    (1.2, 1.6, " fellow"),
    (1.6, 2.1, " Americans,"),
    (3.2, 3.8, " ask"),
    (3.8, 4.2, " not"),
    (4.2, 5.2, " what"),
    (5.5, 5.8, " your"),
    (5.8, 6.2, " country"),
    (6.2, 6.6, " can"),
    (6.6, 6.8, " do"),
    (6.8, 7.1, " for"),
    (7.1, 7.3, " you."),
    (7.6, 8.5, " Ask"),
    (8.5, 8.8, " what"),
    (8.8, 9.0, " you"),
    (9.0, 9.3, " can"),
    (9.3, 9.6, " do"),
    (9.6, 9.8, " for"),
    (9.8, 9.9, " your"),
    (9.9, 10.4, " country."),
]


def test_sentences_become_segments_with_the_fields_of_their_segment() -> None:
    original = segment(JFK)
    pieces = split_long_segments([original], first_id=3)
    assert spans(pieces) == [
        (3, 0.0, 7.3, " And so my fellow Americans, ask not what your country can do for you."),
        (4, 7.6, 10.4, " Ask what you can do for your country."),
    ]
    assert [len(p.words or []) for p in pieces] == [14, 8]
    for piece in pieces:
        assert (piece.avg_logprob, piece.no_speech_prob, piece.compression_ratio, piece.seek) == (-0.25, 0.02, 1.4, 100)
        assert piece.temperature == 0.0 and piece.tokens is None  # no decode given: tokens cannot be shared out


def test_a_long_sentence_is_cut_at_its_longest_pause() -> None:
    sentence = [(s, e, w.replace(".", ",") if w == " you." else w) for s, e, w in JFK]  # one 10.4 s sentence
    pieces = split_long_segments([segment(sentence)], max_duration=8.0)
    assert spans(pieces) == [
        (0, 0.0, 2.1, " And so my fellow Americans,"),  # 1.1 s of silence and a comma
        (1, 3.2, 10.4, " ask not what your country can do for you, Ask what you can do for your country."),
    ]
    # Shorter limits cut again, preferring a clause mark to an equal pause, and never leave a piece over the limit.
    finer = split_long_segments([segment(sentence)], max_duration=4.0)
    assert [p.text for p in finer] == [
        " And so my fellow Americans,",
        " ask not what",
        " your country can do for you,",
        " Ask what you can do for your country.",
    ]
    assert all(p.end - p.start <= 4.0 for p in finer)


def test_a_pause_at_the_very_edge_is_not_taken_when_another_cut_leaves_a_second_each_side() -> None:
    words = [(0.0, 0.4, " Well"), (2.0, 2.5, " it")] + [(2.5 + i * 0.5, 3.0 + i * 0.5, " word") for i in range(24)]
    pieces = split_long_segments([segment(words)], max_duration=10.0)
    assert pieces[0].text == " Well it" + " word" * (len(pieces[0].words or []) - 2)
    assert all(p.end - p.start <= 10.0 and p.end - p.start >= 1.0 for p in pieces)


def test_what_ends_a_sentence() -> None:
    assert ends_sentence(" you.", " Ask") and ends_sentence(" done?", " Yes") and ends_sentence(" now!", " 5")
    assert ends_sentence(' said."', " Then") and ends_sentence(" 1.", " From")  # a closing quote; a number
    assert ends_sentence("好。", "我") and ends_sentence("吗？", "是") and ends_sentence("¡Hola!", " ¿Qué")
    assert not ends_sentence(" Mr.", " John") and not ends_sentence(" Dr.", " Smith")  # titles
    assert not ends_sentence(" J.", " Kennedy") and not ends_sentence(" U.S.", " Army")  # initials
    assert not ends_sentence(" etc.", " and") and not ends_sentence(" e.g.", " Paris")
    assert not ends_sentence(" wait...", " and")  # the next word in lower case continues the sentence
    assert ends_sentence(" I.", " Then")  # "I" is a word, not an initial
    assert not ends_sentence(" Americans,", " ask") and not ends_sentence(" 3.5", " More")


def test_chinese_sentences_and_clauses() -> None:
    words = [(i * 0.5, i * 0.5 + 0.5, ch) for i, ch in enumerate("今天天气很好，我们去公园散步吧。你想一起来吗？")]
    pieces = split_long_segments([segment(words)], max_duration=6.0)  # the first sentence lasts 8 s
    assert [p.text for p in pieces] == ["今天天气很好，", "我们去公园散步吧。", "你想一起来吗？"]


def test_segments_without_usable_words_pass_through() -> None:
    no_words = segment(JFK).model_copy(update={"words": None})
    misspelt = segment(JFK).model_copy(update={"text": " And so my fellow Americans. Ask."})
    one_sentence = segment(JFK[:5])
    assert split_long_segments([no_words, misspelt, one_sentence], first_id=7) == [
        no_words.model_copy(update={"id": 7}),
        misspelt.model_copy(update={"id": 8}),
        one_sentence.model_copy(update={"id": 9}),
    ]


VOCAB = [" And", " so", " my", " fellow", " Americans", ",", " ask", " not", " what", " your", " country", " can"]
VOCAB += [" do", " for", " you", ".", " Ask", " you.", " country.", ". Ask"]
STRADDLING = 19


def decode(tokens: list[int]) -> str:
    return "".join(VOCAB[t] for t in tokens)


def test_tokens_are_shared_out_so_each_piece_decodes_to_its_text() -> None:
    text_tokens = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 8, 14, 11, 12, 13, 9, 18]
    original = segment(JFK, tokens=text_tokens)
    assert decode(text_tokens) == original.text
    pieces = split_long_segments([original], decode=decode)
    assert [p.tokens for p in pieces] == [text_tokens[:16], text_tokens[16:]]
    assert [decode(p.tokens or []) for p in pieces] == [p.text for p in pieces]
    # A token ". Ask" spans the cut: no share decodes to either piece, so neither gets tokens.
    straddling = [*text_tokens[:15], STRADDLING, *text_tokens[17:]]
    assert decode(straddling) == original.text
    assert [p.tokens for p in split_long_segments([segment(JFK, tokens=straddling)], decode=decode)] == [None, None]


word_times = st.lists(
    st.tuples(
        st.floats(0, 3, allow_nan=False),
        st.floats(0, 2, allow_nan=False),
        st.sampled_from([" a", " b.", " C", " d,", " Mr.", " e?", "好", "。", " f!", "-g"]),
    ),
    min_size=1,
    max_size=60,
)


@given(st.lists(word_times, min_size=1, max_size=4), st.floats(1, 20, allow_nan=False))
def test_pieces_keep_the_text_and_the_limit(raw: list[list[tuple[float, float, str]]], max_duration: float) -> None:
    segments, at = [], 0.0
    for i, items in enumerate(raw):
        words = []
        for gap, length, text in items:
            words.append((at + gap, at + gap + length, text))
            at += gap + length
        segments.append(segment(words, index=i))
    pieces = split_long_segments(segments, max_duration=max_duration)
    assert "".join(p.text for p in pieces) == "".join(s.text for s in segments)
    assert [p.id for p in pieces] == list(range(len(pieces)))
    assert [w for p in pieces for w in p.words or []] == [w for s in segments for w in s.words or []]
    for piece in pieces:
        words = piece.words or []
        assert piece.text == "".join(w.word for w in words)
        assert (piece.start, piece.end) == (words[0].start, words[-1].end)
        assert piece.end - piece.start <= max_duration or len(words) == 1
