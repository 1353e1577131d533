"""Turn bytes of unknown or doubtful charset into text, saying what had to be guessed."""

from __future__ import annotations

import codecs
import re

# Labels seen in real mail that Python does not know, or knows under a narrower codec.
# iso-8859-1 and us-ascii are decoded as their Windows supersets, as browsers do, because
# mailers routinely put cp1252 quotes and dashes into "latin-1" parts.
_ALIASES: dict[str, str] = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "windows-1251": "cp1251",
    "win-1251": "cp1251",
    "x-cp1251": "cp1251",
    "cp-1251": "cp1251",
    "koi8r": "koi8_r",
    "koi8": "koi8_r",
    "x-koi8-r": "koi8_r",
    "ks_c_5601-1987": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "x-sjis": "shift_jis",
    "sjis": "shift_jis",
    "x-mac-cyrillic": "mac_cyrillic",
    "unicode-1-1-utf-7": "utf-7",
    "utf8": "utf-8",
    "x-user-defined": "cp1252",
}

# Labels that carry no information at all: treat the part as undeclared.
_MEANINGLESS = {"", "x-unknown", "unknown", "unknown-8bit", "x-unknown-8bit", "default", "none",
                "charset", "8bit", "binary"}

_ASCII_LIKE = {"ascii", "us-ascii", "ansi_x3.4-1968", "646", "iso646-us"}

# Codecs whose every byte sequence decodes, so a wrong label cannot be caught by failing.
_CYRILLIC_SINGLE_BYTE = ("cp1251", "koi8_r", "koi8_u", "iso8859_5", "cp866", "mac_cyrillic")

# Counted with str.count, letter by letter: far faster than a regex findall over 20k chars.
_CYR_LOWER = "".join(map(chr, range(ord("а"), ord("я") + 1))) + "ё"
_CYR_UPPER = "".join(map(chr, range(ord("А"), ord("Я") + 1))) + "Ё"
_NON_ASCII = re.compile(r"[^\x00-\x7f]")
_PLAUSIBLE_PUNCT = set("«»—–№…„“”’‘ ")
# A Cyrillic letter glued to a Latin one ("Lьtkebohle") means the guess is wrong.
_MIXED = re.compile(r"[A-Za-z][а-яёА-ЯЁ]|[а-яёА-ЯЁ][A-Za-z]")


def normalise_charset(label: str | None) -> str | None:
    """The Python codec name for a MIME charset label, or None when absent or unknown."""
    if label is None:
        return None
    name = label.strip().strip("\"'").strip().lower()
    if name in _MEANINGLESS:
        return None
    if name in _ASCII_LIKE:
        return "ascii"
    name = _ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


_SCORE_SAMPLE = 20000


def _count_non_ascii(text: str) -> int:
    return len(text) - len(text.encode("ascii", "ignore"))


def _cyrillic_score(text: str) -> float:
    """How much the non-ASCII characters of a decoding look like ordinary Russian text (0..1)."""
    sample = text[:_SCORE_SAMPLE]
    non_ascii = _count_non_ascii(sample)
    if not non_ascii:
        return 0.0
    lower = sum(map(sample.count, _CYR_LOWER))
    upper = sum(map(sample.count, _CYR_UPPER))
    punct = sum(map(sample.count, _PLAUSIBLE_PUNCT))
    # Mixed-case prose is mostly lower case; KOI8-R read as cp1251 (or the reverse) swaps the
    # cases, which is what tells the two apart.
    if (lower + upper) * 2 < non_ascii:
        return 0.0
    mixed = len(_MIXED.findall(sample))
    # Most letters glued to Latin ones ("Cafй", "Mьller"): Western words, not Russian.
    if mixed * 2 >= lower + upper:
        return 0.0
    return (lower + 0.4 * upper + punct - 2 * mixed) / non_ascii


def _best_possible_score(text: str) -> float:
    """An upper bound of _cyrillic_score for any single-byte Cyrillic decoding of these bytes.

    Those codecs all keep ASCII and turn each other byte into one non-ASCII character, so the
    sample's non-ASCII count and its spaces (the one ASCII "plausible" character) are the same
    in every decoding, and letters plus other punctuation cannot outnumber the non-ASCII ones.
    When the declared decoding already scores within 0.3 of this bound, no other can beat it
    and the alternatives need not be decoded and scored. The margin covers float rounding.
    """
    sample = text[:_SCORE_SAMPLE]
    non_ascii = _count_non_ascii(sample)
    if not non_ascii:
        return 0.0
    return (non_ascii + sample.count(" ")) / non_ascii + 1e-9


def _best_cyrillic(data: bytes) -> tuple[str, str, float]:
    best = ("", "cp1251", -1.0)
    for codec in ("cp1251", "koi8_r", "iso8859_5", "cp866"):
        text = data.decode(codec, "replace")
        score = _cyrillic_score(text)
        if score > best[2]:
            best = (text, codec, score)
    return best


def _detect(data: bytes) -> tuple[str, str]:
    """Guess a charset for 8-bit data that is not UTF-8; never fails."""
    text, codec, score = _best_cyrillic(data)
    if score >= 0.6:
        return text, codec
    if len(data) < 400:
        # Too little text for a statistical detector; Western European is the common case.
        return data.decode("cp1252", "replace"), "cp1252"
    try:
        import charset_normalizer

        match = charset_normalizer.from_bytes(data[:65536]).best()
        if match is not None and match.encoding:
            name = normalise_charset(match.encoding)
            if name:
                return data.decode(name, "replace"), name
    except Exception:
        pass
    return data.decode("cp1252", "replace"), "cp1252"


def _mostly_utf8(data: bytes, declared: bool) -> tuple[str, int] | None:
    """(text, bad sequences) when DATA is UTF-8 but for a few invalid bytes, else None.

    Valid multi-byte characters must outnumber the invalid sequences (twice over when UTF-8
    was not declared): text in a single-byte charset read as UTF-8 has almost none.
    """
    text = data.decode("utf-8", "replace")
    bad = text.count("\ufffd") - data.decode("utf-8", "ignore").count("\ufffd")
    valid = _count_non_ascii(text) - text.count("\ufffd")
    return (text, bad) if valid >= (1 if declared else 2) * bad and valid else None


def decode_bytes(data: bytes, declared: str | None, where: str) -> tuple[str, list[str]]:
    """Decode `data` labelled `declared`; returns the text and human descriptions of guesses.

    `where` names the place for those descriptions, e.g. "body part 2".
    """
    defects: list[str] = []
    codec = normalise_charset(declared)
    label = (declared or "").strip().strip("\"'")
    if codec is not None and codec not in ("ascii", "utf-8"):
        try:
            text = data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            pass
        else:
            if codec in _CYRILLIC_SINGLE_BYTE and _NON_ASCII.search(text):
                threshold = _cyrillic_score(text) + 0.3
                if threshold >= _best_possible_score(text):
                    return text, defects
                alt_text, alt_codec, alt_score = _best_cyrillic(data)
                if alt_codec != codec and alt_score > threshold:
                    defects.append(f"{where}: declared charset '{label}' does not match content,"
                                   f" decoded as {alt_codec}")
                    return alt_text, defects
            return text, defects
    if data.isascii():
        return data.decode("ascii"), defects
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        mostly = _mostly_utf8(data, declared=codec == "utf-8")
        if mostly is not None:
            # One bad byte (a cut multi-byte character, a stray Latin-1 byte) must not make
            # the whole text a guess in another charset, or binary: keep it, replaced.
            defects.append(f"{where}: invalid UTF-8 bytes replaced ({mostly[1]})")
            return mostly[0], defects
    else:
        if codec not in (None, "ascii", "utf-8"):
            defects.append(f"{where}: declared charset '{label}' does not match content,"
                           " decoded as utf-8")
        return text, defects
    text, guessed = _detect(data)
    if codec is None and label:
        defects.append(f"{where}: undecodable charset '{label}', decoded as {guessed}")
    elif codec is None:
        defects.append(f"{where}: 8-bit text without a charset, decoded as {guessed}")
    else:
        defects.append(f"{where}: declared charset '{label}' does not match content,"
                       f" decoded as {guessed}")
    return text, defects
