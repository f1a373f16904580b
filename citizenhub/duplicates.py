"""Finding profiles that may be one person: the "fellegi-sunter-v1" scoring method and its blocks.

The method (Fellegi & Sunter, "A theory for record linkage", JASA 1969) compares two profiles
field by field. Each comparison has a few outcomes ("levels"), and each level two
probabilities: m, how often it happens when the profiles ARE one person, and u, how often
it happens when they are two different people. The level's weight is log2(m / u) bits:
positive when the outcome is more usual for one person, negative when it is more usual for
two. Missing data (one profile has no date of birth) weighs nothing either way. The
weights of all comparisons are added to the prior (how rare a match is between two profiles
picked at random) and turned into a probability with the logistic function 1 / (1 + 2^-w).

The m and u values below are judgements for a council of about 100,000 profiles with about
one duplicate per 30 profiles (what councils report after a first clean-up); each comment
says where its number comes from. They are constants rather than values learned from the
data so that a score means the same thing in every council and after every run; a later
version can estimate them (expectation maximisation) and carry a new METHOD name.

Comparing every pair of profiles is quadratic, so pairs are only scored when they share a
block key: a date of birth, a UPRN, a postcode with the first letter of the family name, a
contact identity, a written postal address, or an e-mail mailbox. Blocks are read from the
database a page of keys at a time, and blocks bigger than MAX_BLOCK_SIZE (a care home's
UPRN, 1 January as a placeholder date of birth) are skipped as too unspecific to say
anything.

Nothing here merges anything: candidates go to an officer (staff pages at /staff/duplicates/),
and their evidence holds no personal data, only what agreed or differed.
"""

from __future__ import annotations

import datetime
import functools
import logging
import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from django.db import transaction
from django.db.models import Count, F, Q, QuerySet, Value
from django.db.models.functions import Concat, Substr, Upper
from django.utils import timezone

from citizenhub.models import Address, Citizen, ContactPoint, DuplicateCandidate

logger = logging.getLogger(__name__)

METHOD = "fellegi-sunter-v1"

# Two profiles picked at random from ~100,000 with ~1 duplicate per 30 are one person with
# probability (100,000 / 30) / (100,000^2 / 2) ≈ 6.7e-7, i.e. log2 odds of about -20.5 bits.
# Every comparison's u below is for the same population, so the two stay consistent.
PRIOR_WEIGHT = -20.5

# A pair is suggested to officers when one person is at least as likely as two. Officers
# review every suggestion, so the threshold trades their time against missed duplicates; a
# missed duplicate costs more (letters to the wrong profile, a case history split in two).
SUGGEST_THRESHOLD = 0.5
# At or above this, the list marks the suggestion as strong evidence (still reviewed).
STRONG_THRESHOLD = 0.95
# Jaro-Winkler similarity from which two different spellings count as the same name with a
# typing mistake; Winkler's own census work used cut-offs between 0.88 and 0.94.
SIMILAR_NAME_THRESHOLD = 0.9
# A block with more profiles than this is skipped: 100 profiles are 4,950 pairs, and a key
# shared by so many (a care home, a placeholder birthday) cannot tell people apart anyway.
MAX_BLOCK_SIZE = 100
# Block keys read per query, and profile ids per IN (...) list (SQLite caps parameters).
BLOCK_PAGE_SIZE = 500
ID_CHUNK = 500

LIVE_STATUSES = (Citizen.Status.ACTIVE, Citizen.Status.PROVISIONAL)


# --- names ------------------------------------------------------------------------------------


def fold(text: str) -> str:
    """Lower-case letters only, accents removed: 'Siân O'Neill' -> 'sianoneill'."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    return "".join(ch for ch in decomposed.lower() if ch.isalpha() and ch.isascii())


def _name_tokens(text: str) -> list[str]:
    return [folded for part in re.split(r"[\s\-]+", text or "") if (folded := fold(part))]


def jaro(first: str, second: str) -> float:
    """Jaro similarity (Jaro 1989): shared characters near each other, and their order."""
    if first == second:
        return 1.0 if first else 0.0
    if not first or not second:
        return 0.0
    window = max(0, max(len(first), len(second)) // 2 - 1)
    first_matched = [False] * len(first)
    second_matched = [False] * len(second)
    matches = 0
    for i, char in enumerate(first):
        for j in range(max(0, i - window), min(len(second), i + window + 1)):
            if not second_matched[j] and second[j] == char:
                first_matched[i] = second_matched[j] = True
                matches += 1
                break
    if not matches:
        return 0.0
    first_chars = [c for c, used in zip(first, first_matched, strict=True) if used]
    second_chars = [c for c, used in zip(second, second_matched, strict=True) if used]
    transpositions = sum(a != b for a, b in zip(first_chars, second_chars, strict=True)) / 2
    return (matches / len(first) + matches / len(second) + (matches - transpositions) / matches) / 3


def jaro_winkler(
    first: str, second: str, *, prefix_scale: float = 0.1, boost_threshold: float = 0.7
) -> float:
    """Jaro-Winkler similarity (Winkler 1990): Jaro, raised for a shared start of up to four
    characters, because people get the beginning of a name right more often than the end."""
    similarity = jaro(first, second)
    if similarity <= boost_threshold:
        return similarity
    prefix = 0
    for a, b in zip(first[:4], second[:4], strict=False):
        if a != b:
            break
        prefix += 1
    return similarity + prefix * prefix_scale * (1 - similarity)


@functools.lru_cache(maxsize=65_536)
def _name_similarity(first: str, second: str) -> float:
    # The same few thousand names meet each other over and over within a run.
    return jaro_winkler(first, second)


# Names one person goes by. Each group is one name's forms; a name may be in several groups
# ("tom" is short for Thomas and for Tomos) without making those two one name. The Welsh and
# English (or Irish) forms of a name are a group too: a bilingual resident may be registered
# under either. Families do not give two children two forms of one name, and household
# members differ in date of birth, so these groups do not join household members.
NICKNAME_GROUPS: tuple[frozenset[str], ...] = tuple(
    frozenset(group.split())
    for group in (
        "william bill billy will willy liam",
        "robert bob bobby rob robbie bert",
        "elizabeth liz lizzie lizzy beth betty bess libby eliza elsie",
        "thomas tom tommy",
        "tomos tom twm",
        "margaret maggie mags meg peggy marge madge",
        "catherine cathy kate katie kath cath",
        "katherine kathy kate katie kath",
        "dafydd dai dafi",
        "david dave davy",
        "gwenllian gwen",
        "james jim jimmy jamie",
        "jennifer jenny jen",
        "daniel dan danny",
        "patricia pat patsy trish tricia",
        "patrick pat paddy",
        "peter pete",
        "susan sue susie suzy",
        "oliver ollie olly",
        "joanne jo joanna",
        "josephine jo josie",
        "joseph joe joey",
        "richard rich richie dick rick ricky",
        "michael mike mick mickey",
        "edward ed eddie ted teddy ned",
        "anthony tony",
        "christopher chris kit",
        "christine chris chrissie",
        "matthew matt matty",
        "alexander alex alec sandy",
        "alexandra alex sandra",
        "andrew andy drew",
        "stephen steve stevie",
        "steven steve stevie",
        "jonathan jon jonny",
        "john jack johnny",
        "nicholas nick nicky",
        "samuel sam sammy",
        "samantha sam sammy",
        "benjamin ben benny",
        "charles charlie chas",
        "charlotte charlie lottie",
        "deborah debbie deb",
        "rebecca becky becca",
        "victoria vicky tori",
        "kenneth ken kenny",
        "rhiannon rhi",
        "angharad angie",
        "gruffudd gruff",
        "llywelyn llew",
        "amelia millie",
        "emily em emmy",
        "jessica jess jessie",
        "abigail abby abbie",
        "frederick fred freddie",
        "harold harry",
        "henry harry hal",
        "timothy tim timmy",
        "philip phil pip",
        "ronald ron ronnie",
        "dorothy dot dottie",
        "pamela pam",
        "valerie val",
        "mohammed mohammad muhammad mohamed",
        # Welsh, Irish and English forms of one name.
        "dafydd dewi david",
        "sion ieuan ioan john",
        "sean shaun shane john",
        "gwilym william",
        "huw hugh",
        "tomos thomas",
        "catrin catherine katherine",
        "mair mary",
        "sian jane",
        "elin ellen helen",
        "owain owen",
        "gruffudd griffith",
        "siobhan joan",
    )
)
_NICKNAME_INDEX: dict[str, set[int]] = defaultdict(set)
for _number, _group in enumerate(NICKNAME_GROUPS):
    for _name in _group:
        _NICKNAME_INDEX[_name].add(_number)


def are_nicknames(first: str, second: str) -> bool:
    """True when two (folded) given names are forms of one name: 'william' and 'bill'."""
    return bool(_NICKNAME_INDEX.get(first, set()) & _NICKNAME_INDEX.get(second, set()))


# --- contact identities and addresses -----------------------------------------------------

# Google delivers "jo.smith", "josmith" and "JoSmith+council" to one mailbox; other providers
# ignore only the "+tag". The normalised match key keeps these apart, so they never count as
# one live identity; here they are evidence that two profiles share a mailbox.
_DOTS_IGNORED = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def email_mailbox_key(match_key: str) -> str:
    """The mailbox an e-mail match key delivers to: without +tag, and without dots at Gmail."""
    local, _, domain = match_key.rpartition("@")
    local = local.split("+", 1)[0]
    if domain in _DOTS_IGNORED:
        local, domain = local.replace(".", ""), _DOTS_IGNORED[domain]
    return f"{local}@{domain}"


def _address_words(text: str) -> str:
    """'12, Heol-y-Nant' -> '12 heol y nant': letters and digits, accents and punctuation gone."""
    ascii_text = unicodedata.normalize("NFKD", text or "").encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", " ", ascii_text.lower()).strip()


_SUB_DWELLING = re.compile(r"^(flat|apartment|apt|unit|room|floor|maisonette)\b")


def dwelling_key(postcode: str, first_line: str, second_line: str = "") -> str:
    """One home, however it was written: the postcode and the first address line (and the
    second when the first is a flat number, since every building in a postcode has a Flat 1)."""
    first = _address_words(first_line)
    if _SUB_DWELLING.match(first):
        first = f"{first} {_address_words(second_line)}".strip()
    return f"{_address_words(postcode)}|{first}"


# --- the facts compared ---------------------------------------------------------------------


@dataclass(frozen=True)
class ProfileFacts:
    """What the method compares about one profile, already folded for comparison."""

    citizen_id: int
    given_name: str = ""  # the first given name, folded
    given_names: tuple[str, ...] = ()  # all given names, folded (middle names too)
    family_name: str = ""  # folded, whole
    family_tokens: frozenset[str] = frozenset()  # parts of a double-barrelled name
    date_of_birth: datetime.date | None = None
    uprns: frozenset[str] = frozenset()
    postcodes: frozenset[str] = frozenset()
    dwellings: frozenset[str] = frozenset()
    # (kind, match_key) of every non-postal identity, removed ones included: a live identity
    # belongs to one profile only, so sharing one means one profile once had it.
    identities: frozenset[tuple[str, str]] = frozenset()
    mailboxes: frozenset[str] = frozenset()


def profile_facts(
    *,
    citizen_id: int,
    given_name: str,
    family_name: str,
    date_of_birth: datetime.date | None,
    addresses: Iterable[tuple[str, str, str, str]] = (),
    contact_points: Iterable[tuple[str, str, str, bool]] = (),
) -> ProfileFacts:
    """Facts from plain values: addresses as (uprn, postcode, line1, line2), contact points
    as (kind, match_key, normalised, removed)."""
    given_tokens = _name_tokens(given_name)
    family_tokens = _name_tokens(family_name)
    uprns, postcodes, dwellings = set(), set(), set()
    identities, mailboxes = set(), set()
    for uprn, postcode, line1, line2 in addresses:
        if uprn.strip():
            uprns.add(uprn.strip())
        if postcode.strip():
            postcodes.add(postcode.strip().upper())
            dwellings.add(dwelling_key(postcode, line1, line2))
    for kind, match_key, normalised, removed in contact_points:
        if kind == ContactPoint.Kind.POSTAL:
            if removed:
                continue  # a former home says nothing about who lives there now
            lines = [part.strip() for part in normalised.split(",")]
            postcode = match_key.split("|", 1)[0]
            postcodes.add(postcode)
            dwellings.add(dwelling_key(postcode, lines[0], lines[1] if len(lines) > 2 else ""))
            continue
        identities.add((kind, match_key))
        if kind == ContactPoint.Kind.EMAIL:
            mailboxes.add(email_mailbox_key(match_key))
    return ProfileFacts(
        citizen_id=citizen_id,
        given_name=given_tokens[0] if given_tokens else "",
        given_names=tuple(given_tokens),
        family_name="".join(family_tokens),
        family_tokens=frozenset(family_tokens),
        date_of_birth=date_of_birth,
        uprns=frozenset(uprns),
        postcodes=frozenset(postcodes),
        dwellings=frozenset(dwellings),
        identities=frozenset(identities),
        mailboxes=frozenset(mailboxes),
    )


def load_profile_facts(citizen_ids: Iterable[int]) -> dict[int, ProfileFacts]:
    """Facts of the live profiles among `citizen_ids`: three queries per ID_CHUNK ids."""
    ids = sorted(set(citizen_ids))
    facts: dict[int, ProfileFacts] = {}
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        addresses: dict[int, list[tuple[str, str, str, str]]] = defaultdict(list)
        for citizen_id, *row in Address.objects.filter(citizen_id__in=chunk).values_list(
            "citizen_id", "uprn", "postcode", "line1", "line2"
        ):
            addresses[citizen_id].append(tuple(row))
        contacts: dict[int, list[tuple[str, str, str, bool]]] = defaultdict(list)
        for citizen_id, kind, key, normalised, removed_at in ContactPoint.objects.filter(
            citizen_id__in=chunk
        ).values_list("citizen_id", "kind", "match_key", "normalised", "removed_at"):
            contacts[citizen_id].append((kind, key, normalised, removed_at is not None))
        for pk, given, family, born in Citizen.objects.filter(
            pk__in=chunk, status__in=LIVE_STATUSES
        ).values_list("pk", "given_name", "family_name", "date_of_birth"):
            facts[pk] = profile_facts(
                citizen_id=pk,
                given_name=given,
                family_name=family,
                date_of_birth=born,
                addresses=addresses[pk],
                contact_points=contacts[pk],
            )
    return facts


# --- comparisons --------------------------------------------------------------------------


@dataclass(frozen=True)
class Level:
    """One outcome of a comparison, with its m and u probabilities (see the module doc)."""

    code: str
    m: float
    u: float
    text: str

    @property
    def weight(self) -> float:
        return math.log2(self.m / self.u)


# Shared contact identities. Most second profiles exist BECAUSE the person used a new address
# or number, so only ~15% of duplicate pairs share one (m). Two different people share an
# e-mail or social account rarely: a family mailbox, an account handed on (u ≈ 2 in 100,000).
IDENTITY_EMAIL = Level(
    "shared_email", 0.15, 2e-5, "The same e-mail address is on both profiles (now or before)"
)
IDENTITY_SOCIAL = Level(
    "shared_social", 0.05, 2e-5, "The same social media account is on both profiles (now or before)"
)
# Phone numbers are weaker: households share landlines, and networks reissue mobile numbers
# a few months after they are given up (u ≈ 5 in 10,000).
IDENTITY_PHONE = Level(
    "shared_phone", 0.10, 5e-4, "The same phone number is on both profiles (now or before)"
)
# Addresses that differ only by "+tag" (or dots at Gmail) reach one mailbox: one person who
# tagged the address for the council, or a shared mailbox (same u as a shared address).
IDENTITY_MAILBOX = Level(
    "same_mailbox",
    0.02,
    2e-5,
    "Their e-mail addresses reach the same mailbox (they differ only by dots or a +tag)",
)

# Given names. 80% of duplicate pairs carry the same first name; the rest use a short form,
# a typo or an initial. Two random people share a first name about 1 time in 100 (the
# commonest names each cover 1-2% of people).
GIVEN_SAME = Level("given_name_same", 0.80, 0.01, "Same given name")
# Within one home and family name a shared given name is less surprising: a son named after
# his father (Sr and Jr) is a few percent of such pairs. As with twins below, households
# break the independence the method assumes, so the u is taken within the household.
GIVEN_SAME_HOUSEHOLD = Level(
    "given_name_same_household", 0.80, 0.03, "Same given name (same home and family name)"
)
GIVEN_NICKNAME = Level(
    "given_name_nickname", 0.10, 0.002, "Given names are forms of one name (e.g. William, Bill)"
)
GIVEN_SIMILAR = Level(
    "given_name_similar", 0.05, 0.005, "Given names are spelt nearly the same (a typing slip?)"
)
# Middle names: "Dafydd Huw" is called Huw. The first given names differ but another agrees.
GIVEN_OTHER_NAME = Level(
    "given_name_middle", 0.03, 0.003, "A given name of one is a middle name of the other"
)
# "J Smith": 2% of duplicates have only an initial on one side; for two different people the
# chance of an initial-only record (~2%) whose letter agrees (~7%) is about 0.15%.
GIVEN_INITIAL = Level(
    "given_name_initial", 0.02, 0.0015, "One profile has only an initial, and it agrees"
)
# Given names that differ outright are strong evidence of two people (parent and child,
# spouses, twins): with short forms, other-language forms, typos, initials and middle names
# recognised above, one person under an unrelated given name is rare (~0.5%: a wrong name
# copied from someone else, or a change of name).
GIVEN_DIFFERENT = Level("given_name_different", 0.005, 0.98, "Different given names")

# Family names. In Wales a few names are very common (Jones ~6%, Williams, Davies ~4%): two
# random people share one about 1 time in 100, which makes agreement worth less than in England.
FAMILY_SAME = Level("family_name_same", 0.85, 0.01, "Same family name")
# A typo, or one part of a double-barrelled name ("Smith-Jones" and "Jones").
FAMILY_SIMILAR = Level(
    "family_name_similar",
    0.07,
    0.005,
    "Family names are nearly the same, or one contains the other",
)
# Marriage and divorce change family names: ~8% of one person's two profiles differ.
FAMILY_DIFFERENT = Level("family_name_different", 0.08, 0.98, "Different family names")

# Dates of birth are the most specific field: people born in the same ~75 years share a day
# about 1 time in 27,000; u is set higher (1 in 10,000) for placeholder dates such as
# 1 January that some systems enter when the date is unknown. m allows for typos.
DOB_SAME = Level("date_of_birth_same", 0.92, 1e-4, "Same date of birth")
# Within one home and family name the same birthday is far less surprising: twins. About 1 in
# 65 births is a twin, so for two different people living together with one family name the
# chance is ~2%, not 1 in 10,000. Without this, twins would look like one person.
DOB_SAME_HOUSEHOLD = Level(
    "date_of_birth_same_household", 0.92, 0.02, "Same date of birth (same home and family name)"
)
# A typing slip: day and month swapped (American order), or one part wrong (a year with one
# digit changed). For two different people two of the three parts agree ~0.2% of the time.
DOB_NEAR = Level(
    "date_of_birth_near", 0.05, 0.002, "Dates of birth differ in one part, or day and month swapped"
)
# Dates differing in more than one part are rarely one person's (~1%: a date copied from a
# relative's record).
DOB_DIFFERENT = Level("date_of_birth_different", 0.01, 0.998, "Different dates of birth")

# Addresses. 60% of duplicate pairs have the same home (the second profile was opened from a
# new e-mail address, not a new house); two random people share a home ~2.3 times in 100,000
# (average household 2.3 people). Households share homes AND family names, which breaks the
# method's assumption that comparisons are independent; different given names and dates of
# birth are what keep household members apart, so those disagreements weigh heavily.
ADDRESS_SAME_HOME = Level("same_home", 0.60, 2.3e-5, "Same home (UPRN or address)")
# A postcode covers ~15 homes (~40 people): a move within the street, or a mistyped house number.
ADDRESS_SAME_POSTCODE = Level(
    "same_postcode", 0.10, 4e-4, "Same postcode, different or unknown home"
)
# People move: 30% of duplicates were opened at a different address.
ADDRESS_DIFFERENT = Level("different_address", 0.30, 0.9995, "Addresses in different postcodes")


def same_household(a: ProfileFacts, b: ProfileFacts) -> bool:
    """Same home and same family name: where the comparisons stop being independent."""
    return bool(
        a.family_name
        and a.family_name == b.family_name
        and ((a.uprns & b.uprns) or (a.dwellings & b.dwellings))
    )


def compare_identities(a: ProfileFacts, b: ProfileFacts) -> Level | None:
    shared = a.identities & b.identities
    kinds = {kind for kind, _key in shared}
    if ContactPoint.Kind.EMAIL in kinds:
        return IDENTITY_EMAIL
    if kinds - {ContactPoint.Kind.PHONE}:
        return IDENTITY_SOCIAL
    if ContactPoint.Kind.PHONE in kinds:
        return IDENTITY_PHONE
    if a.mailboxes & b.mailboxes:
        return IDENTITY_MAILBOX
    # No shared identity says little: people have several addresses and numbers (m ≈ u).
    return None


def compare_given_names(a: ProfileFacts, b: ProfileFacts) -> Level | None:
    first, second = a.given_name, b.given_name
    if not first or not second:
        return None
    if first == second:
        return GIVEN_SAME_HOUSEHOLD if same_household(a, b) else GIVEN_SAME
    if len(first) == 1 or len(second) == 1:
        return GIVEN_INITIAL if first[0] == second[0] else GIVEN_DIFFERENT
    if are_nicknames(first, second):
        return GIVEN_NICKNAME
    if _name_similarity(first, second) >= SIMILAR_NAME_THRESHOLD:
        return GIVEN_SIMILAR
    if {t for t in a.given_names if len(t) > 1} & {t for t in b.given_names if len(t) > 1}:
        return GIVEN_OTHER_NAME
    return GIVEN_DIFFERENT


def compare_family_names(a: ProfileFacts, b: ProfileFacts) -> Level | None:
    if not a.family_name or not b.family_name:
        return None
    if a.family_name == b.family_name:
        return FAMILY_SAME
    if _name_similarity(a.family_name, b.family_name) >= SIMILAR_NAME_THRESHOLD:
        return FAMILY_SIMILAR
    shorter, longer = sorted((a.family_tokens, b.family_tokens), key=len)
    if shorter and len(longer) > 1 and shorter <= longer:
        return FAMILY_SIMILAR
    return FAMILY_DIFFERENT


def _one_digit_apart(first: int, second: int) -> bool:
    a, b = f"{first:04d}", f"{second:04d}"
    return sum(x != y for x, y in zip(a, b, strict=True)) == 1


def compare_dates_of_birth(a: ProfileFacts, b: ProfileFacts) -> Level | None:
    first, second = a.date_of_birth, b.date_of_birth
    if first is None or second is None:
        return None
    if first == second:
        return DOB_SAME_HOUSEHOLD if same_household(a, b) else DOB_SAME
    same_year, same_month, same_day = (
        first.year == second.year,
        first.month == second.month,
        first.day == second.day,
    )
    swapped = same_year and (first.day, first.month) == (second.month, second.day)
    one_part_wrong = (same_year and (same_month or same_day)) or (
        same_month and same_day and _one_digit_apart(first.year, second.year)
    )
    return DOB_NEAR if swapped or one_part_wrong else DOB_DIFFERENT


def compare_addresses(a: ProfileFacts, b: ProfileFacts) -> Level | None:
    if (a.uprns & b.uprns) or (a.dwellings & b.dwellings):
        return ADDRESS_SAME_HOME
    if a.postcodes & b.postcodes:
        return ADDRESS_SAME_POSTCODE
    if a.postcodes and b.postcodes:
        return ADDRESS_DIFFERENT
    return None


COMPARISONS = (
    compare_identities,
    compare_given_names,
    compare_family_names,
    compare_dates_of_birth,
    compare_addresses,
)


@dataclass(frozen=True)
class PairScore:
    score: float  # 0..1, the probability the two profiles are one person
    weight: float  # log2 odds, prior included
    evidence: tuple[Level, ...] = field(default_factory=tuple)

    def reasons(self) -> list[dict[str, Any]]:
        """The evidence as stored on a DuplicateCandidate: codes and weights, no personal data."""
        return [
            {"code": level.code, "weight": round(level.weight, 1), "text": level.text}
            for level in self.evidence
        ]


def probability(weight: float) -> float:
    """The logistic function in base 2: log2 odds to a probability."""
    if weight < -60:
        return 0.0
    return 1.0 / (1.0 + 2.0 ** (-weight))


def score_pair(a: ProfileFacts, b: ProfileFacts) -> PairScore:
    """Score two profiles: the prior plus every comparison's weight, as a probability."""
    evidence = tuple(level for compare in COMPARISONS if (level := compare(a, b)) is not None)
    weight = PRIOR_WEIGHT + sum(level.weight for level in evidence)
    return PairScore(score=probability(weight), weight=weight, evidence=evidence)


# --- blocks -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    kind: str
    key: str
    citizen_ids: tuple[int, ...]


def _live_citizen(prefix: str = "citizen__") -> Q:
    return Q(**{f"{prefix}status__in": LIVE_STATUSES})


def _block_sources() -> list[tuple[str, QuerySet, str]]:
    """(block kind, queryset annotated with `block_key`, the citizen id field).

    Postcode blocks come from Address rows; a postal contact point (a one-line address a
    resident typed) is blocked by the whole written address instead, since its postcode is
    inside a match key SQL cannot split portably.
    """
    family_initial = Upper(Substr("citizen__family_name", 1, 1))
    return [
        (
            "date_of_birth",
            Citizen.objects.filter(status__in=LIVE_STATUSES, date_of_birth__isnull=False).annotate(
                block_key=F("date_of_birth")
            ),
            "id",
        ),
        (
            "uprn",
            Address.objects.filter(_live_citizen()).exclude(uprn="").annotate(block_key=F("uprn")),
            "citizen_id",
        ),
        (
            "postcode_family_initial",
            Address.objects.filter(_live_citizen())
            .exclude(postcode="")
            .exclude(citizen__family_name="")
            .annotate(block_key=Concat("postcode", Value("|"), family_initial)),
            "citizen_id",
        ),
        (
            "identity",
            ContactPoint.objects.filter(_live_citizen())
            .exclude(kind=ContactPoint.Kind.POSTAL)
            .annotate(block_key=Concat("kind", Value(":"), "match_key")),
            "citizen_id",
        ),
        (
            "postal_address",
            ContactPoint.objects.filter(
                _live_citizen(), kind=ContactPoint.Kind.POSTAL, removed_at__isnull=True
            ).annotate(block_key=F("match_key")),
            "citizen_id",
        ),
    ]


def _database_blocks(kind: str, keyed: QuerySet, citizen_field: str) -> Iterator[list[Block]]:
    """Blocks of one kind with two or more profiles, BLOCK_PAGE_SIZE keys per page. Keys are
    paged by value (keyset), so no cursor stays open while candidates are written."""
    shared = (
        keyed.order_by()
        .values("block_key")
        .annotate(profiles=Count(citizen_field, distinct=True))
        .filter(profiles__gte=2)
    )
    last_key = None
    while True:
        page = shared.filter(block_key__gt=last_key) if last_key is not None else shared
        keys = list(
            page.order_by("block_key").values_list("block_key", flat=True)[:BLOCK_PAGE_SIZE]
        )
        if not keys:
            return
        members: dict[Any, set[int]] = defaultdict(set)
        rows = keyed.filter(block_key__in=keys).values_list("block_key", citizen_field)
        for key, citizen_id in rows:
            members[key].add(citizen_id)
        yield [Block(kind, str(key), tuple(sorted(members[key]))) for key in keys]
        last_key = keys[-1]


def _mailbox_blocks() -> Iterator[list[Block]]:
    """E-mail addresses that reach one mailbox. The mailbox key cannot be computed in SQL
    portably, so only addresses that can have an alias are read: Gmail ones, ones with a
    +tag, and the untagged addresses those tags point at."""
    emails = ContactPoint.objects.filter(_live_citizen(), kind=ContactPoint.Kind.EMAIL)
    aliasable = emails.filter(
        Q(match_key__contains="+")
        | Q(match_key__endswith="@gmail.com")
        | Q(match_key__endswith="@googlemail.com")
    )
    members: dict[str, set[int]] = defaultdict(set)
    for citizen_id, key in aliasable.values_list("citizen_id", "match_key").iterator(
        chunk_size=2000
    ):
        members[email_mailbox_key(key)].add(citizen_id)
    untagged = sorted({box for box in members if not box.endswith("@gmail.com")})
    for start in range(0, len(untagged), ID_CHUNK):
        chunk = untagged[start : start + ID_CHUNK]
        for citizen_id, key in emails.filter(match_key__in=chunk).values_list(
            "citizen_id", "match_key"
        ):
            members[key].add(citizen_id)
    shared = sorted(box for box, ids in members.items() if len(ids) > 1)
    for start in range(0, len(shared), BLOCK_PAGE_SIZE):
        yield [
            Block("mailbox", box, tuple(sorted(members[box])))
            for box in shared[start : start + BLOCK_PAGE_SIZE]
        ]


def iter_block_pages() -> Iterator[list[Block]]:
    """Every block of two or more live profiles, a page at a time, of every block kind."""
    for kind, keyed, citizen_field in _block_sources():
        yield from _database_blocks(kind, keyed, citizen_field)
    yield from _mailbox_blocks()


# --- finding and recording candidates ----------------------------------------------------


@dataclass
class FindCounts:
    blocks: int = 0
    blocks_too_large: int = 0
    pairs_compared: int = 0
    candidates_created: int = 0
    candidates_updated: int = 0
    candidates_withdrawn: int = 0
    decisions_kept: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def find_duplicate_candidates(*, limit_blocks: int | None = None) -> dict[str, int]:
    """Score every pair of live profiles that shares a block; record suggestions.

    Pairs at or above SUGGEST_THRESHOLD get an open DuplicateCandidate (or have their open
    one's score and evidence refreshed). Open suggestions that now score below it are
    withdrawn. A pair an officer already decided on (dismissed or merged) is never touched,
    so running this again is harmless. Each page of blocks is written in its own transaction.
    `limit_blocks` stops after that many blocks (for a quick partial run).
    """
    counts = FindCounts()
    compared: set[tuple[int, int]] = set()
    for page in iter_block_pages():
        if limit_blocks is not None:
            page = page[: max(0, limit_blocks - counts.blocks)]
            if not page:
                break
        pairs: set[tuple[int, int]] = set()
        for block in page:
            counts.blocks += 1
            if len(block.citizen_ids) > MAX_BLOCK_SIZE:
                counts.blocks_too_large += 1
                logger.info("Skipped %s block of %d profiles", block.kind, len(block.citizen_ids))
                continue
            pairs.update(p for p in combinations(block.citizen_ids, 2) if p not in compared)
        if pairs:
            compared |= pairs
            _score_and_record(pairs, counts)
    logger.info("Duplicate candidates: %s", counts.as_dict())
    return counts.as_dict()


def _score_and_record(pairs: set[tuple[int, int]], counts: FindCounts) -> None:
    facts = load_profile_facts(cid for pair in pairs for cid in pair)
    scores: dict[tuple[int, int], PairScore] = {}
    for a, b in pairs:
        if a in facts and b in facts:  # both still live
            scores[(a, b)] = score_pair(facts[a], facts[b])
    counts.pairs_compared += len(scores)
    _record(scores, counts)


def _existing_candidates(
    pairs: Sequence[tuple[int, int]],
) -> dict[tuple[int, int], DuplicateCandidate]:
    existing: dict[tuple[int, int], DuplicateCandidate] = {}
    wanted = set(pairs)
    ordered = sorted(wanted)
    for start in range(0, len(ordered), ID_CHUNK):
        chunk = ordered[start : start + ID_CHUNK]
        rows = DuplicateCandidate.objects.filter(
            citizen_a_id__in={a for a, _ in chunk}, citizen_b_id__in={b for _, b in chunk}
        ).only("pk", "citizen_a_id", "citizen_b_id", "status", "score", "reasons", "method")
        for row in rows:
            pair = (row.citizen_a_id, row.citizen_b_id)
            if pair in wanted:
                existing[pair] = row
    return existing


def _record(scores: dict[tuple[int, int], PairScore], counts: FindCounts) -> None:
    now = timezone.now()
    with transaction.atomic():
        existing = _existing_candidates(list(scores))
        new, changed, withdrawn = [], [], []
        for pair, result in scores.items():
            row = existing.get(pair)
            suggested = result.score >= SUGGEST_THRESHOLD
            if row is not None and row.status != DuplicateCandidate.Status.OPEN:
                counts.decisions_kept += 1  # an officer decided: never reopened or rescored
            elif row is not None and not suggested:
                withdrawn.append(row.pk)
            elif row is not None:
                score, reasons = round(result.score, 4), result.reasons()
                if (row.score, row.reasons, row.method) != (score, reasons, METHOD):
                    row.score, row.reasons, row.method = score, reasons, METHOD
                    changed.append(row)
            elif suggested:
                new.append(
                    DuplicateCandidate(
                        citizen_a_id=pair[0],
                        citizen_b_id=pair[1],
                        score=round(result.score, 4),
                        method=METHOD,
                        reasons=result.reasons(),
                        found_at=now,
                    )
                )
        # ignore_conflicts: a run elsewhere (or an officer's dismissal) may have made the row.
        created = DuplicateCandidate.objects.bulk_create(new, ignore_conflicts=True)
        DuplicateCandidate.objects.bulk_update(changed, ["score", "reasons", "method"])
        deleted, _ = DuplicateCandidate.objects.filter(
            pk__in=withdrawn, status=DuplicateCandidate.Status.OPEN
        ).delete()
    counts.candidates_created += len(created)
    counts.candidates_updated += len(changed)
    counts.candidates_withdrawn += deleted


def ordered_pair(first: Citizen, second: Citizen) -> tuple[Citizen, Citizen]:
    """The pair in the order DuplicateCandidate stores it (lower primary key first)."""
    return (first, second) if first.pk < second.pk else (second, first)
