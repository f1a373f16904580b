"""How many SMS segments a text takes: GSM-7 when every character is in the GSM 03.38
alphabet (characters of the extension table count twice), UCS-2 otherwise (a single
character outside it, such as Welsh "ŵ" or an emoji, switches the whole message).

One message holds 160 GSM-7 characters or 70 UCS-2 units; a longer one is split into parts
of 153 or 67 (each part carries a header to reassemble it). UCS-2 units are UTF-16 code
units, so an emoji outside the Basic Multilingual Plane takes two. GOV.UK Notify refuses
text messages over 918 characters and charges per segment.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

GSM7 = "GSM-7"
UCS2 = "UCS-2"

# GSM 03.38 basic character set (the escape character itself is not something to type).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# The extension table: each is sent as escape + character, two septets.
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")

SINGLE_LIMIT = {GSM7: 160, UCS2: 70}
PART_LIMIT = {GSM7: 153, UCS2: 67}

# GOV.UK Notify's limit for one text message.
NOTIFY_MAX_CHARACTERS = 918
DEFAULT_MAX_SEGMENTS = 3


def max_segments() -> int:
    """The most segments a campaign's text message may take (each one is paid for)."""
    return int(getattr(settings, "ENGAGEMENT_SMS_MAX_SEGMENTS", DEFAULT_MAX_SEGMENTS))


@dataclass(frozen=True)
class SmsLength:
    encoding: str  # GSM7 or UCS2
    characters: int  # as a person counts them
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int
    # Characters that forced UCS-2 (empty for GSM-7), so the officer can replace them.
    non_gsm_characters: tuple[str, ...] = ()

    @property
    def per_segment(self) -> int:
        return SINGLE_LIMIT[self.encoding] if self.segments <= 1 else PART_LIMIT[self.encoding]

    @property
    def units_left_in_segment(self) -> int:
        """How many more units fit before another segment is needed."""
        if self.segments == 0:
            return SINGLE_LIMIT[self.encoding]
        if self.segments == 1:
            return SINGLE_LIMIT[self.encoding] - self.units
        return self.segments * PART_LIMIT[self.encoding] - self.units


def _segments_for(units: int, encoding: str) -> int:
    if units == 0:
        return 0
    if units <= SINGLE_LIMIT[encoding]:
        return 1
    part = PART_LIMIT[encoding]
    return -(-units // part)


def sms_length(text: str) -> SmsLength:
    """The encoding, size and segment count of `text` as it will be sent."""
    text = text or ""
    non_gsm = tuple(
        dict.fromkeys(ch for ch in text if ch not in GSM7_BASIC and ch not in GSM7_EXTENSION)
    )
    if non_gsm:
        units = len(text.encode("utf-16-le")) // 2
        encoding = UCS2
    else:
        units = sum(2 if ch in GSM7_EXTENSION else 1 for ch in text)
        encoding = GSM7
    return SmsLength(
        encoding=encoding,
        characters=len(text),
        units=units,
        segments=_segments_for(units, encoding),
        non_gsm_characters=non_gsm,
    )


def sms_length_problem(length: SmsLength) -> str:
    """Why a text of this length may not be sent, or "" if it may."""
    limit = max_segments()
    if length.characters > NOTIFY_MAX_CHARACTERS:
        return (
            f"The text message is {length.characters} characters long; GOV.UK Notify sends "
            f"at most {NOTIFY_MAX_CHARACTERS}."
        )
    if length.segments > limit:
        because = ""
        if length.encoding == UCS2:
            shown = " ".join(length.non_gsm_characters[:10])
            because = (
                f" It is sent as {UCS2} (70 characters a segment, 67 in longer messages) "
                f"because of these characters: {shown}."
            )
        return (
            f"The text message takes {length.segments} segments; the limit is {limit}."
            f"{because} Shorten it."
        )
    return ""
