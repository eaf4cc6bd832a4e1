"""Sniffing a text table: the Cython scan of the head (``_parse.sniff_lines``, used by ``_text_score``) scores every
head as the line-by-line regex rule does."""
from hypothesis import given, settings, strategies as st

from astrodash_core.reader_base import looks_binary
from astrodash_plugins.readers.text import _SNIFF_LINES, _text_score, _text_score_by_line

_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                    st.from_regex(r"[-+]?(\d{1,6}\.?\d{0,6}|\.\d{1,4})([eEdD][-+]?\d{1,3})?", fullmatch=True))
_space = st.text(" \t\x0b\x0c", max_size=3)
_line = st.one_of(
    st.builds(lambda a, x, sep, y, rest: a + x + sep + y + rest, _space, _number,
              st.text(" \t,;\x0b\x0c", min_size=0, max_size=3), _number, st.text(" \tabc0123456789.,;", max_size=8)),
    st.builds(lambda a, mark, t: a + mark + t, _space, st.sampled_from(["#", "%"]), st.text(max_size=20)),
    _space,  # blank
    st.text(st.characters(blacklist_characters="\r\n"), max_size=30),  # anything else
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_line, max_size=_SNIFF_LINES + 30), st.booleans())
def test_whole_head_scan_scores_as_line_by_line(lines, trailing_newline):
    head = ("\n".join(lines) + ("\n" if trailing_newline else "")).encode("utf-8", "surrogatepass")
    assert _text_score(head) == (0.0 if looks_binary(head) else _text_score_by_line(head))


EDGES = ["1e5 2", "1e 2", "1.e5,3", ".5;.5", "1 -nan", "1 NaN", "1 nAn", "1 in", "1 inf", "1e+ 2", "- 1 2", "1 .x",
         "1d-3\t+inf", "1 , ; 2", "+.5 -.5", ". 5", "1.5E+03x 2", "1 2", "1", "1 ", "1 +", "3500 0.778107 0.18905",
         "  \x0b1\x0c2", "#1 2", "  %1 2", "\x0c", "1;", "1 n", "1 na", "1 -", "1 .", "1 .5", "٣ 2", "1 ٣"]


def test_edge_lines_score_as_the_regex_does():
    for line in EDGES:
        head = f"{line}\n".encode()
        assert _text_score(head) == _text_score_by_line(head), line
        assert _text_score(head.rstrip(b"\n")) == _text_score_by_line(head), line  # no newline at the end


def test_only_the_first_lines_count():
    table = b"".join(b"%d 1.0\n" % k for k in range(_SNIFF_LINES))
    assert _text_score(table + b"text\n" * 500) == 1.0
    assert _text_score(b"text\n" + table) == (_SNIFF_LINES - 1) / _SNIFF_LINES  # the last table line is not seen
    assert _text_score(b"# comment\n\n  \n1 2\nfoo bar\n") == 0.5
    assert _text_score(b"1 2\r\nfoo\r\n") == 0.5  # carriage returns: line by line
