"""The staff search box: one term that may be a name, e-mail, phone, postcode, UPRN or case.

`search_staff(user, term)` decides what the term looks like and runs a constant number of
bounded queries whatever the data: residents (at most two queries) and cases (at most two).
Every query is an index scan that stops after one page (see the 0004_search_indexes
migration), so a million profiles cost about what a thousand do.

Names on PostgreSQL: prefixes of the full name or family name first ("smi" finds Smith),
ranked by trigram similarity, then fuzzy matches ("Jonh Smith") through pg_trgm over the
lexicon of distinct names. On SQLite every word must appear in the given or family name
(correct, slower, no typos forgiven).

Cases: only those `cases_for(user)` returns. A case whose content the user may not read is
found by its exact reference and nothing else, and comes back marked so pages redact it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Lower

from citizenhub.case_selectors import case_content_visible_q, cases_for
from citizenhub.models import Address, Citizen, ContactPoint, ServiceCase
from citizenhub.normalise import (
    normalise_email,
    normalise_mastodon_handle,
    normalise_phone,
    normalise_postcode,
    normalise_x_handle,
)

User = AbstractBaseUser | AnonymousUser

TERM_LIMIT = 200
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
# How many matching rows an exact-kind lookup (postcode district, case title) considers
# before ranking: an outward code covers thousands of homes, and one page is all we show.
CANDIDATE_LIMIT = 200
# Fuzzy name search ranks the closest distinct names, then lists the people holding them.
FUZZY_NAMES = 10
NAME_TERM_LIMIT = 100
NAME_WORDS = 6
TITLE_WORDS = 5
TITLE_WORD_MIN = 3

LIVE_STATUSES = (Citizen.Status.ACTIVE, Citizen.Status.PROVISIONAL)

# Control characters (NUL among them, which PostgreSQL refuses in text) become spaces.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CASE_REFERENCE = re.compile(r"CH-\d{4}-\d{6}", re.IGNORECASE)
_PHONE_LIKE = re.compile(r"\+?[\d\s().\-/]+")
_UPRN = re.compile(r"\d{1,12}")
# An outward code ("NM1", "SW1A"), optionally with the sector digit ("NM1 4").
_POSTCODE_DISTRICT = re.compile(r"([A-Z]{1,2}\d[A-Z\d]?)(?: (\d))?", re.IGNORECASE)
_WORD = re.compile(r"\w+")


class MatchKind:
    EMAIL = "email"
    PHONE = "phone"
    HANDLE = "handle"
    UPRN = "uprn"
    POSTCODE = "postcode"
    POSTCODE_DISTRICT = "postcode_district"
    REFERENCE = "reference"
    NAME = "name"


@dataclass(frozen=True)
class SearchResults:
    """What one search found. `citizens` carry `primary_email`, `primary_phone` and
    `postcode` attributes; `cases` carry `content_visible` (False: show them redacted)."""

    term: str
    matched_by: tuple[str, ...] = ()
    citizens: list[Citizen] = field(default_factory=list)
    cases: list[ServiceCase] = field(default_factory=list)
    more_citizens: bool = False
    more_cases: bool = False
    # The term was longer than TERM_LIMIT and was cut before use.
    truncated: bool = False

    @property
    def is_empty(self) -> bool:
        return not self.citizens and not self.cases


def clean_term(raw: object) -> tuple[str, bool]:
    """The term as searched: text only, control characters and runs of whitespace collapsed
    to one space, cut to TERM_LIMIT. Returns (term, whether it was cut)."""
    if not isinstance(raw, str):
        return "", False
    # Lone surrogates (possible in JSON) cannot be encoded for the database.
    text = raw.encode("utf-8", "replace").decode("utf-8")
    text = " ".join(_CONTROL.sub(" ", text).split())
    if len(text) > TERM_LIMIT:
        return text[:TERM_LIMIT].rstrip(), True
    return text, False


# --- What the term looks like ---------------------------------------------------------------


@dataclass
class _Plan:
    identities: list[tuple[str, str]] = field(default_factory=list)  # (kind, match_key)
    uprn: str = ""
    postcode: str = ""
    postcode_prefix: str = ""
    reference: str = ""
    name: str = ""
    matched_by: list[str] = field(default_factory=list)


def _try(normalise, value: str) -> str | None:
    try:
        return normalise(value).match_key
    except ValidationError:
        return None


def _plan(term: str) -> _Plan:
    plan = _Plan()
    if _CASE_REFERENCE.fullmatch(term):
        plan.reference = term.upper()
        plan.matched_by.append(MatchKind.REFERENCE)
        return plan
    if "@" in term:
        # An e-mail address, an X handle ("@name") or a Mastodon account ("@user@host").
        if (key := _try(normalise_email, term)) is not None:
            plan.identities.append((ContactPoint.Kind.EMAIL, key))
            plan.matched_by.append(MatchKind.EMAIL)
        if term.startswith("@"):
            if term.count("@") == 1 and (key := _try(normalise_x_handle, term)) is not None:
                plan.identities.append((ContactPoint.Kind.X, key))
            if (key := _try(normalise_mastodon_handle, term)) is not None:
                plan.identities.append((ContactPoint.Kind.MASTODON, key))
            if plan.identities and MatchKind.EMAIL not in plan.matched_by:
                plan.matched_by.append(MatchKind.HANDLE)
        # Not a valid address or handle: still searched (and reported) as one, for nothing.
        plan.matched_by = plan.matched_by or [MatchKind.EMAIL]
        return plan
    if _PHONE_LIKE.fullmatch(term) and sum(ch.isdigit() for ch in term) >= 1:
        if (key := _try(normalise_phone, term)) is not None:
            plan.identities.append((ContactPoint.Kind.PHONE, key))
            plan.matched_by.append(MatchKind.PHONE)
        if _UPRN.fullmatch(term):
            plan.uprn = term
            plan.matched_by.append(MatchKind.UPRN)
        plan.matched_by = plan.matched_by or [MatchKind.PHONE]
        return plan
    if (postcode := _try(normalise_postcode, term)) is not None:
        plan.postcode = postcode
        plan.matched_by.append(MatchKind.POSTCODE)
        return plan
    if match := _POSTCODE_DISTRICT.fullmatch(term):
        outward, sector = match.group(1).upper(), match.group(2)
        # The trailing space keeps "NM1" from matching NM10 and NM11.
        plan.postcode_prefix = f"{outward} {sector or ''}"
        plan.matched_by.append(MatchKind.POSTCODE_DISTRICT)
        return plan
    plan.name = term
    plan.matched_by.append(MatchKind.NAME)
    return plan


# --- Residents ------------------------------------------------------------------------------


def _contact_subquery(kind: str) -> Subquery:
    return Subquery(
        ContactPoint.objects.filter(citizen=OuterRef("pk"), kind=kind, removed_at__isnull=True)
        .order_by("-is_primary", "id")
        .values("normalised")[:1]
    )


def _with_summary(queryset: QuerySet[Citizen]) -> QuerySet[Citizen]:
    """Citizens with what a results list shows: primary e-mail and phone, postcode; one
    query for the page, each value an index lookup per row."""
    return queryset.annotate(
        primary_email=_contact_subquery(ContactPoint.Kind.EMAIL),
        primary_phone=_contact_subquery(ContactPoint.Kind.PHONE),
        postcode=Subquery(
            Address.objects.filter(citizen=OuterRef("pk"))
            .order_by("-is_primary", "id")
            .values("postcode")[:1]
        ),
    )


def _exact_citizens(plan: _Plan, limit: int) -> list[Citizen]:
    candidates = []
    if plan.identities:
        identity = Q()
        for kind, key in plan.identities:
            identity |= Q(kind=kind, match_key=key)
        points = ContactPoint.objects.filter(identity, removed_at__isnull=True)
        candidates.append(points.values("citizen_id")[:CANDIDATE_LIMIT])
    addresses = None
    if plan.uprn:
        addresses = Address.objects.filter(uprn=plan.uprn)
    elif plan.postcode:
        addresses = Address.objects.filter(postcode=plan.postcode)
    elif plan.postcode_prefix:
        addresses = Address.objects.filter(postcode__startswith=plan.postcode_prefix)
    if addresses is not None:
        candidates.append(addresses.values("citizen_id")[:CANDIDATE_LIMIT])
    if not candidates:
        return []
    # One IN over a UNION ALL of the candidate lists, never `id IN (a) OR id IN (b)`: with
    # the OR, PostgreSQL walks the name index over every citizen and filters (a term that
    # is both a phone number and UPRN-shaped took 2.9 s on 1,000,000 citizens; 0.4 ms so).
    # SQLite allows no LIMIT inside a compound statement; its planner has no such trap.
    if len(candidates) == 1:
        condition = Q(pk__in=candidates[0])
    elif connection.features.supports_slicing_ordering_in_compound:
        condition = Q(pk__in=candidates[0].union(*candidates[1:], all=True))
    else:
        condition = Q()
        for ids in candidates:
            condition |= Q(pk__in=ids)
    queryset = Citizen.objects.filter(condition, status__in=LIVE_STATUSES).order_by(
        Lower("family_name"), Lower("given_name"), "id"
    )
    return list(_with_summary(queryset)[: limit + 1])


def _like_prefix(text: str) -> str:
    """A LIKE pattern matching strings that start with `text` literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"{escaped}%"


_FULL_NAME = "lower((c.given_name)::text || ' ' || (c.family_name)::text)"
_FAMILY_NAME = "lower((c.family_name)::text)"
_LIVE = "c.status IN ('active', 'provisional')"
# The branches of the name query. Only constants are formatted in; the term always travels
# as a parameter. The expressions match the 0004_search_indexes migration's indexes
# character for character: change both or neither.
_FULL_NAME_PREFIX_SQL = f"""(SELECT c.id, 1 + similarity({_FULL_NAME}, %(term)s) AS score
    FROM citizenhub_citizen c
    WHERE ({_FULL_NAME} COLLATE "C") LIKE %(prefix)s AND {_LIVE}
    ORDER BY ({_FULL_NAME} COLLATE "C"), c.id LIMIT %(limit)s)"""  # noqa: S608
_FAMILY_NAME_PREFIX_SQL = f"""(SELECT c.id, 1 + similarity({_FULL_NAME}, %(term)s) AS score
    FROM citizenhub_citizen c
    WHERE ({_FAMILY_NAME} COLLATE "C") LIKE %(prefix)s AND {_LIVE}
    ORDER BY ({_FAMILY_NAME} COLLATE "C"), c.id LIMIT %(limit)s)"""  # noqa: S608
_FUZZY_NAME_SQL = f"""(SELECT c.id, best.score
    FROM citizenhub_similar_names(%(term)s, %(names)s) best
    CROSS JOIN LATERAL (
        SELECT c.id FROM citizenhub_citizen c
        WHERE ({_FULL_NAME} COLLATE "C") = best.name AND {_LIVE}
        ORDER BY ({_FULL_NAME} COLLATE "C"), c.id LIMIT %(limit)s
    ) c
    ORDER BY best.score DESC, c.id LIMIT %(limit)s)"""  # noqa: S608
_RANKED_SQL = (
    "SELECT hits.id FROM ({branches}) hits "
    "GROUP BY hits.id ORDER BY max(hits.score) DESC, hits.id LIMIT %(limit)s"
)


def _ranked_name_ids_postgres(term: str, limit: int) -> list[int]:
    """Citizen ids for a name, best first, in one statement of bounded index scans.

    Prefix matches (of the full name, or of the family name) rank above fuzzy ones and are
    ordered by similarity among themselves; an exact full name is a prefix match with
    similarity 1. Fuzzy matches come from the closest distinct names (the lexicon).
    """
    lowered = term.lower()[:NAME_TERM_LIMIT]
    # Trigrams are made of letters and digits only; with none there is nothing to compare,
    # and pg_trgm would read its whole index to find that out.
    fuzzy_term = " ".join(_WORD.findall(lowered)[:NAME_WORDS])
    branches = [_FULL_NAME_PREFIX_SQL, _FAMILY_NAME_PREFIX_SQL]
    if fuzzy_term:
        branches.append(_FUZZY_NAME_SQL)
    params = {
        "term": fuzzy_term or lowered,
        "prefix": _like_prefix(lowered),
        "limit": limit + 1,
        "names": FUZZY_NAMES,
    }
    with connection.cursor() as cursor:
        cursor.execute(_RANKED_SQL.format(branches=" UNION ALL ".join(branches)), params)
        return [row[0] for row in cursor.fetchall()]


def _name_citizens(term: str, limit: int) -> list[Citizen]:
    if connection.vendor == "postgresql":
        ids = _ranked_name_ids_postgres(term, limit)
        if not ids:
            return []
        found = {c.pk: c for c in _with_summary(Citizen.objects.filter(pk__in=ids))}
        return [found[pk] for pk in ids if pk in found]
    # SQLite: every word in the given or family name. icontains escapes % and _ itself.
    words = term.split()[:NAME_WORDS]
    condition = Q()
    for word in words:
        condition &= Q(given_name__icontains=word) | Q(family_name__icontains=word)
    queryset = Citizen.objects.filter(condition, status__in=LIVE_STATUSES).order_by(
        Lower("family_name"), Lower("given_name"), "id"
    )
    return list(_with_summary(queryset)[: limit + 1])


# --- Cases ----------------------------------------------------------------------------------


def _cases_matching(user: User, plan: _Plan) -> QuerySet[ServiceCase]:
    """Cases the user may know of that match: the exact reference (even where the content is
    hidden), or every title word where the user may read the content."""
    condition = Q()
    if plan.reference:
        condition |= Q(reference=plan.reference)
    if plan.name:
        words = [w for w in _WORD.findall(plan.name.lower()) if len(w) >= TITLE_WORD_MIN]
        if words:
            titles = ServiceCase.objects.annotate(title_lower=Lower("title")).filter(
                case_content_visible_q(user)
            )
            for word in words[:TITLE_WORDS]:
                titles = titles.filter(title_lower__contains=word)
            condition |= Q(pk__in=titles.values("pk")[:CANDIDATE_LIMIT])
    if not condition:
        return ServiceCase.objects.none()
    return cases_for(user).filter(condition).order_by("-opened_at", "-id")


def search_cases(user: User, term: str) -> QuerySet[ServiceCase]:
    """Cases for the search box and the cases API: by exact reference (case-insensitive),
    or by words of the title where the user may read the content. Annotated with
    `content_visible`; newest first; not sliced."""
    term, _ = clean_term(term)
    if not term or not getattr(user, "is_authenticated", False) or not user.is_staff:
        return ServiceCase.objects.none()
    plan = _plan(term)
    if not (plan.reference or plan.name):
        return ServiceCase.objects.none()
    return _cases_matching(user, plan)


# --- The search box -------------------------------------------------------------------------


def search_staff(user: User, term: str, limit: int = DEFAULT_LIMIT) -> SearchResults:
    """Residents and cases for the staff search box, grouped; at most `limit` of each."""
    term, truncated = clean_term(term)
    limit = max(1, min(int(limit), MAX_LIMIT))
    if not term:
        return SearchResults(term="", truncated=truncated)
    plan = _plan(term)
    citizens = _name_citizens(plan.name, limit) if plan.name else _exact_citizens(plan, limit)
    cases: list[ServiceCase] = []
    if (plan.reference or plan.name) and user.has_perm("citizenhub.view_servicecase"):
        cases = list(_cases_matching(user, plan)[: limit + 1])
    return SearchResults(
        term=term,
        matched_by=tuple(plan.matched_by),
        citizens=citizens[:limit],
        cases=cases[:limit],
        more_citizens=len(citizens) > limit,
        more_cases=len(cases) > limit,
        truncated=truncated,
    )
