"""Query-string filters for the citizen and timeline endpoints."""

from __future__ import annotations

import django_filters
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError as APIValidationError

from citizenhub import selectors
from citizenhub.models import ChannelKind, Citizen, TimelineEntry
from citizenhub.normalise import normalise_email, normalise_phone, normalise_postcode


def _normalised_or_400(normalise, value: str, field: str) -> str:
    try:
        return normalise(value, field=field).match_key
    except ValidationError as exc:
        raise APIValidationError(exc.message_dict) from None


class CitizenFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_q",
        max_length=selectors.SEARCH_TERM_LIMIT,
        label="Search by name, e-mail address or phone number",
    )
    email = django_filters.CharFilter(method="filter_email", label="Exact e-mail address")
    phone = django_filters.CharFilter(method="filter_phone", label="Phone number, any UK format")
    postcode = django_filters.CharFilter(method="filter_postcode", label="Postcode of an address")
    status = django_filters.ChoiceFilter(choices=Citizen.Status.choices)

    class Meta:
        model = Citizen
        fields = ["status"]

    def filter_q(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return selectors.citizen_search(queryset, value)

    def filter_email(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        key = _normalised_or_400(normalise_email, value, "email")
        return selectors.citizen_by_identity(queryset, "email", key)

    def filter_phone(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        key = _normalised_or_400(normalise_phone, value, "phone")
        return selectors.citizen_by_identity(queryset, "phone", key)

    def filter_postcode(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        postcode = _normalised_or_400(normalise_postcode, value, "postcode")
        return queryset.filter(addresses__postcode=postcode).distinct()


class TimelineFilter(django_filters.FilterSet):
    kind = django_filters.MultipleChoiceFilter(choices=TimelineEntry.Kind.choices)
    channel = django_filters.MultipleChoiceFilter(choices=ChannelKind.choices)
    department = django_filters.CharFilter(max_length=100)
    since = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    until = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = TimelineEntry
        fields = ["kind", "channel", "department"]
