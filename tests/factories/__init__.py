"""factory_boy factories for the hub core."""

import datetime

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from citizenhub.models import (
    Address,
    Citizen,
    ContactPoint,
    Service,
    ServiceCase,
    Team,
    TimelineEntry,
)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.org")
    password = factory.django.Password("correct-horse-battery-staple")


class StaffUserFactory(UserFactory):
    username = factory.Sequence(lambda n: f"officer{n}")
    is_staff = True


class CitizenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Citizen

    given_name = factory.Faker("first_name", locale="en_GB")
    family_name = factory.Faker("last_name", locale="en_GB")
    status = Citizen.Status.ACTIVE


class EmailContactPointFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ContactPoint

    citizen = factory.SubFactory(CitizenFactory)
    kind = ContactPoint.Kind.EMAIL
    value = factory.Sequence(lambda n: f"Resident.{n}@Example.org")
    normalised = factory.LazyAttribute(lambda cp: cp.value.split("@")[0] + "@example.org")
    match_key = factory.LazyAttribute(lambda cp: cp.normalised.lower())
    is_primary = True


class AddressFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Address

    citizen = factory.SubFactory(CitizenFactory)
    line1 = factory.Sequence(lambda n: f"{n + 1} Mill Lane")
    town = "Northmoor"
    postcode = "NM1 4AB"
    uprn = factory.Sequence(lambda n: str(100000000 + n))
    is_primary = True


class TimelineEntryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TimelineEntry

    citizen = factory.SubFactory(CitizenFactory)
    occurred_at = factory.Sequence(lambda n: timezone.now() - datetime.timedelta(hours=n))
    kind = TimelineEntry.Kind.MESSAGE_IN
    channel = "email"
    summary = factory.Sequence(lambda n: f"Message {n} about a missed bin")


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"team-{n}")
    name = factory.Sequence(lambda n: f"Team {n}")
    department = "Environment"


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"service-{n}")
    name = factory.Sequence(lambda n: f"Service {n}")
    department = factory.LazyAttribute(lambda s: s.team.department)
    team = factory.SubFactory(TeamFactory)
    sla_days = 10


class ServiceCaseFactory(factory.django.DjangoModelFactory):
    """A case row made directly; tests of behaviour open cases through services.open_case."""

    class Meta:
        model = ServiceCase

    reference = factory.Sequence(lambda n: f"CH-2026-{900000 + n:06d}")
    citizen = factory.SubFactory(CitizenFactory)
    service = factory.SubFactory(ServiceFactory)
    team = factory.LazyAttribute(lambda c: c.service.team)
    title = factory.Sequence(lambda n: f"Case {n}: bin not emptied")
    due_on = factory.LazyFunction(lambda: timezone.localdate() + datetime.timedelta(days=7))
