"""Line classes for the reply stripper: what quoted history, headers and signatures look like."""

from __future__ import annotations

import re

# Localised "wrote:" verbs that end an attribution line ("On <date>, X wrote:").
_WROTE_WORDS = (
    "wrote", "writes", "a écrit", "schrieb", "escribió", "escribio", "ha scritto", "scrive",
    "schreef", "napisał(a)", "napisała", "napisał", "escreveu", "skrev", "kirjoitti", "napsal",
    "napisao", "написал(а)", "написала", "написал", "пишет", "писал(а)", "писал", "написав",
    "написала", "пише", "写道", "寫道", "wrote the following",
)
_WROTE = "(?:" + "|".join(re.escape(word) for word in _WROTE_WORDS) + ")"
_LEAD = (r"(?:On|Le|Am|El|Il|Op|Em|Den|På|Dne|W dniu|Op \w+|В|Вт|Пн|Ср|Чт|Пт|Сб|Вс|пн|вт|ср|чт|"
         r"пт|сб|вс|在)")

_DELIMITER = re.compile(r"^[ \t]*[-_,=+~#*ᐧ—–]+[ \t]*$")
# Each phrase opens with a literal letter (see _MOBILE_FIRST).
_MOBILE_PHRASES = (
    r"Sent from (?:my |Mail for |Yahoo|Outlook|Samsung)", r"Sent via ", r"Sent with ",
    r"Get Outlook for ", r"Envoyé de mon ", r"Envoyé depuis ", r"Von meinem .* gesendet",
    r"Gesendet von ", r"Enviado desde mi ", r"Enviado do meu ", r"Inviato da(?:l mio)? ",
    r"Verzonden (?:met|vanaf|van) mijn ", r"Verstuurd (?:met|vanaf|van) mijn ", r"Wysłane z ",
    r"Отправлено с ", r"Отправлено из ",
    r"Надіслано з ", r"Скинуто з ", r"发自我的", r"從我的",
    r"Skickat från min ", r"Sendt fra min ", r"Lähetetty ", r"Odesláno z ", r"Enviado de meu ",
    r"Envoyé à partir de ", r"Gesendet mit ", r"Отправлено со ", r"iPhone'umdan gönderildi",
    r"iPad'imden gönderildi", r"Von meinem Mobilgerät gesendet", r"Sendt från ",
)
_MOBILE_SIGNATURE = re.compile(r"^[ \t]*(?:" + "|".join(_MOBILE_PHRASES) + ")", re.IGNORECASE)
_EMBEDDED = (
    re.compile(rf"^[ \t]*{_LEAD}\b.{{0,300}}\b{_WROTE}[ \t]*[:：][ \t]*$", re.IGNORECASE),
    re.compile(rf"^[ \t]*.{{0,300}}(?:\d|@|\)).{{0,300}}{_WROTE}[ \t]*[:：]?[ \t]*$",
               re.IGNORECASE),
    re.compile(r"^[ \t]*-{2,}[ \t]*(?:Original Message|Ursprüngliche Nachricht|Message d'origine|"
               r"Mensaje original|Messaggio originale|Oorspronkelijk bericht|Oryginalna wiadomość|"
               r"Исходное сообщение|Пересылаемое сообщение|Forwarded message|Původní zpráva|"
               r"Mensagem original|Weitergeleitete Nachricht|原始邮件)[ \t]*-*[ \t]*$",
               re.IGNORECASE),
    re.compile(r"^[ \t]*(?:Begin forwarded message|Anfang der weitergeleiteten Nachricht|"
               r"Début du message réexpédié)[ \t]*:[ \t]*$", re.IGNORECASE),
    re.compile(r"^[ \t]*_{5,}[ \t]*$"),
    # Gmail's date-first attribution: "2013/7/20 sam <info@example.org>" (optionally ":").
    re.compile(r"^[ \t]*\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b.{0,200}(?:<[^<>\s]+@[^<>\s]+>|\S+@\S+)"
               r"[ \t]*[:：]?[ \t]*$"),
    # "Thu, 26 Jun 2014 14:00 +0400 от Alexander <a@example.com>:" and similar.
    re.compile(r"^[ \t]*.{0,200}\d.{0,200}<[^<>\s]+@[^<>\s]+>[ \t]*[:：][ \t]*$"),
    # Zoho's and others' "---- On Mon, 07 Dec 2026 10:00 X <x@y> wrote ----".
    re.compile(rf"^[ \t]*-{{2,}}[ \t]*{_LEAD}\b.{{0,300}}\b{_WROTE}[ \t]*[:：]?"
               r"[ \t]*-{2,}[ \t]*$", re.IGNORECASE),
)
# Cheap necessary conditions for _EMBEDDED, so most lines skip those regexes (the 2nd one
# backtracks heavily): an attribution ends with a "wrote" verb, optionally followed by a colon.
# The verbs are spelt backwards so that one anchored match on the reversed line end finds them.
_WROTE_REVERSED = re.compile("|".join(re.escape(word[::-1]) for word in _WROTE_WORDS),
                             re.IGNORECASE)
# Under IGNORECASE a character of an ASCII text matches exactly the same-letter ASCII
# characters of a word, and none of the non-ASCII ones (a test checks this for these words),
# so for an ASCII line a lower-cased suffix test decides what _WROTE_REVERSED would.
_ASCII_WROTE = tuple(word.lower() for word in _WROTE_WORDS if word.isascii())
# Wrapped attribution lines; joined into one line before classification.
EMBEDDED_MULTILINE = (
    re.compile(rf"^[ \t]*{_LEAD}\b[^\n]*(?:\n[^\n]*){{1,4}}?\b{_WROTE}[ \t]*[:：][ \t]*$",
               re.IGNORECASE | re.MULTILINE),
    re.compile(rf"^[ \t]*\d[^\n]*(?:\n(?![ \t]*\n)[^\n]*){{1,3}}?{_WROTE}[ \t]*[:：][ \t]*$",
               re.IGNORECASE | re.MULTILINE),
    re.compile(r"^[ \t]*\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b[^\n]*<[ \t]*\n"
               r"[^\n]*@[^\n]*>[ \t]*[:：][ \t]*$", re.MULTILINE),
    # "Am 07.12.2026 um 10:00 schrieb Support Team" / "<support@example.com>:".
    re.compile(rf"^[ \t]*{_LEAD}\b[^\n]*\b{_WROTE}\b[^\n]*\n"
               r"[ \t]*<[^<>\s]+@[^<>\s]+>[ \t]*[:：][ \t]*$", re.IGNORECASE | re.MULTILINE),
)
_HEADER = re.compile(
    r"^[ \t]*[*_]{0,2}(?:From|Sent|To|Cc|Bcc|Subject|Date|Reply-To|"
    r"От|Отправлено|Кому|Копия|Тема|Дата|"
    r"Von|Gesendet|An|Betreff|Datum|Kopie|"
    r"De|Envoyé|À|Objet|Date|"
    r"Da|Inviato|Risposta|A|Oggetto|Data|"
    r"Enviado el|Enviada em|Enviado|Para|Asunto|Fecha|Assunto|CC|CCO|"
    r"Van|Verzonden|Aan|Onderwerp|"
    r"Od|Wysłano|Do|Temat|Data|"
    r"Від|Надіслано|Копія|"
    r"Från|Skickat|Till|Ämne|Fra|Sendt|Til|Emne|Lähettäjä|Lähetetty|Vastaanottaja|Aihe|"
    r"Odesláno|Komu|Předmět|Kimden|Gönderildi|Gönderilen|Kime|Konu|"
    r"Feladó|Elküldve|Címzett|Tárgy|差出人|送信日時|宛先|件名|"
    r"发件人|发送时间|收件人|主题|日期|寄件者|收件者|主旨)[ \t]*[*_]{0,2}[ \t]*[:：]",
    re.IGNORECASE)
_QUOTE = re.compile(r"^[ \t]*>")
_DELIMITER_CHARS = "-_,=+~#*ᐧ—–"


class _FirstCharTest:
    """Whether a character can open a match: an IGNORECASE class of the patterns' first letters.

    Each regex call costs far more than the match attempt; the answer per character is
    remembered (for a bounded number of distinct characters).
    """

    def __init__(self, letters: str) -> None:
        self.letters = re.compile("[" + re.escape(letters) + "]", re.IGNORECASE)
        self._known: dict[str, bool] = {}

    def __call__(self, char: str) -> bool:
        known = self._known.get(char)
        if known is None:
            known = bool(char) and bool(self.letters.match(char))
            if len(self._known) < 4096:
                self._known[char] = known
        return known


_MOBILE_FIRST = _FirstCharTest("".join(phrase[0] for phrase in _MOBILE_PHRASES))
# The first letters of the reversed verbs: a line must end with one of them.
_WROTE_LAST = _FirstCharTest("".join(word[-1] for word in _WROTE_WORDS))
_SIGNOFF = re.compile(
    r"^[ \t]*(?:best regards|kind regards|warm regards|warmest regards|regards|best wishes|"
    r"sincerely|yours sincerely|yours truly|с уважением|с наилучшими пожеланиями|"
    r"всего доброго|всего наилучшего|mit freundlichen grüßen|viele grüße|cordialement|"
    r"saludos|cordiali saluti|met vriendelijke groet)[ \t]*[,.!]?[ \t]*$",
    re.IGNORECASE)


def is_header_line(line: str) -> bool:
    """A line like "From: x", "*Sent:* y", "Тема: z" (only meaningful in a block of them)."""
    return bool(_HEADER.match(line))


def is_signoff(line: str) -> bool:
    """A closing line such as "Best regards," or "С уважением,"."""
    return bool(_SIGNOFF.match(line))


def ends_with_wrote(core: str) -> bool:
    """_WROTE_REVERSED.match(core[::-1]): whether `core` ends with a "wrote" verb."""
    if core.isascii():
        return core.lower().endswith(_ASCII_WROTE)
    return _WROTE_LAST(core[-1:]) and bool(_WROTE_REVERSED.match(core[::-1]))


def _is_delimiter(line: str) -> bool:
    """_DELIMITER.match(line): a rule of dashes, underscores and the like."""
    if "\n" in line:
        return bool(_DELIMITER.match(line))
    rule = line.strip(" \t")
    return bool(rule) and not rule.strip(_DELIMITER_CHARS)


def _is_embedded_marker(line: str) -> bool:
    """Whether any _EMBEDDED pattern matches; each is tried only where it can match."""
    if "\n" in line:
        # "$" could then match before a final newline; the guards below assume a single line.
        return any(r.match(line) for r in _EMBEDDED)
    attribution, loose, original, forwarded, rule, date_first, dated_address, dashed = _EMBEDDED
    head = line.lstrip(" \t")
    end = line.rstrip(" \t")
    colon = end.endswith((":", "："))
    core = end[:-1].rstrip(" \t") if colon else end
    if ends_with_wrote(core) and (attribution.match(line) or loose.match(line)):
        return True
    if head.startswith("--") and (original.match(line) or dashed.match(line)):
        return True
    if colon and forwarded.match(line):
        return True
    if head.startswith("_") and rule.match(line):
        return True
    return "@" in line and bool(date_first.match(line) or (colon and dated_address.match(line)))


def classify_line(line: str) -> str:
    """One letter: e(mpty) d(elimiter) s(ignature) b (embedded marker) h(eader) q(uote) t(ext)."""
    if not line.strip():
        return "e"
    if len(line) > 1000:
        return "t"
    head = line.lstrip(" \t")
    # _QUOTE.match(line), without the cost of a regex call.
    if head.startswith(">"):
        return "q"
    if _is_embedded_marker(line):
        return "b"
    if _is_delimiter(line):
        return "d"
    if _MOBILE_FIRST(head[:1]) and _MOBILE_SIGNATURE.match(line):
        return "s"
    # A header line needs its colon; most text lines have none and skip the long alternation.
    if (":" in line or "：" in line) and _HEADER.match(line):
        return "h"
    return "t"
