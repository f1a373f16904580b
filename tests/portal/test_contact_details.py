"""/my/contact/: the resident's e-mail addresses and phone numbers, adding a mobile number
and confirming it with a texted code, removing one; nothing of another resident's reachable.

A typed number is only a pending claim until its code comes back: it identifies nobody, it
blocks nobody, and the answer to typing it never says whether the council knows it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from citizenhub.models import Citizen, ContactPoint, ContactVerification
from citizenhub.services import verification
from citizenhub.services.citizens import contact_point_add
from citizenhub.services.identity import resolve_identity
from tests.factories import CitizenFactory

pytestmark = pytest.mark.django_db

NUMBER = "+447700900123"


@pytest.fixture
def sent_codes(monkeypatch) -> list[tuple[str, str, str]]:
    """(number, code, language) of every code the portal asked to send."""
    codes: list[tuple[str, str, str]] = []
    monkeypatch.setitem(
        verification._senders,
        "phone",
        lambda pending, code, language: codes.append((pending.normalised, code, language)),
    )
    return codes


def add_phone(citizen: Citizen, value: str = "07700 900123", **fields) -> ContactPoint:
    return contact_point_add(citizen=citizen, kind="phone", value=value, source="portal", **fields)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def age_codes(**delta) -> None:
    """Move every code sent so far back in time (past the once-a-minute limit, etc.)."""
    for row in ContactVerification.objects.all():
        ContactVerification.objects.filter(pk=row.pk).update(
            sent_at=row.sent_at - timedelta(**delta), expires_at=row.expires_at - timedelta(**delta)
        )


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def phone_points(number: str = NUMBER):
    return ContactPoint.objects.filter(kind="phone", match_key=number, removed_at__isnull=True)


def test_contact_details_list_addresses_and_numbers_with_their_status(
    resident_client, resident, django_assert_max_num_queries
):
    add_phone(resident.citizen)
    add_phone(resident.citizen, "07700 900456", verification_level="confirmed")
    add_phone(resident.citizen, "020 7946 0000")  # a landline given to staff
    with django_assert_max_num_queries(10):
        response = resident_client.get("/my/contact/")
    html = response.content.decode()
    assert response.status_code == 200 and "<title>Contact details – " in html
    assert '<caption class="govuk-table__caption govuk-table__caption--m">Email addresses' in html
    assert resident.email in html and "You sign in with this address" in html
    assert "+447700900123" in html and "+447700900456" in html
    assert html.count("Not confirmed") == 2 and html.count(">Confirmed<") == 2
    # The address the account signs in with has no Remove link here.
    login_point = resident.citizen.contact_points.get(kind="email")
    assert f"/my/contact/{login_point.pk}/remove/" not in html
    # An unproven mobile can be confirmed by a code; a landline cannot get one.
    assert html.count('name="phone" value="') == 1
    assert '<input type="hidden" name="phone" value="+447700900123">' in html


def test_adding_a_number_sends_a_code_and_the_code_confirms_it(
    resident_client, resident, sent_codes
):
    response = resident_client.post("/my/contact/phone/add/", {"phone": "+44 7700 900 123"})
    pending = ContactVerification.objects.get(citizen=resident.citizen)
    assert response["Location"] == f"/my/contact/phone/{pending.pk}/verify/"
    page = resident_client.get(response["Location"]).content.decode()
    assert "We have sent a code to +447700900123 if it can receive texts." in page
    assert '<label class="govuk-label govuk-label--s" for="id_code">Code</label>' in page
    assert not phone_points().exists()  # nothing on any profile until the code is back

    bad = resident_client.post(response["Location"], {"code": "abc"})
    html = bad.content.decode()
    assert "<title>Error: Enter the code we texted you" in html and 'href="#id_code"' in html

    [(number, code, _language)] = sent_codes
    assert number == "+447700900123"
    done = resident_client.post(response["Location"], {"code": code})
    assert done["Location"] == "/my/contact/"
    point = phone_points().get()
    assert point.citizen == resident.citizen and point.source == "portal"
    assert point.verification_level == "confirmed" and point.verified_at
    assert "+447700900123 is confirmed." in resident_client.get("/my/contact/").content.decode()


# --- Finding 1: a typed number is not an identity until it is proven -----------------------


def test_a_number_typed_without_its_code_does_not_take_the_owners_texts(
    resident_client, resident, sent_codes
):
    """An attacker types a stranger's number and never enters the code: the stranger's
    later texts to the council must not land on the attacker's profile."""
    resident_client.post("/my/contact/phone/add/", {"phone": "07700 900123"})
    assert sent_codes and not phone_points().exists()

    inbound = resolve_identity(kind="phone", value="+447700900123")
    assert inbound.created and inbound.citizen != resident.citizen
    assert inbound.citizen.status == "provisional"
    assert not resident.citizen.contact_points.filter(kind="phone").exists()


def test_a_typed_number_does_not_stop_its_real_owner_adding_it(
    resident_client, resident, other_resident, sent_codes
):
    resident_client.post("/my/contact/phone/add/", {"phone": "07700 900123"})  # never confirmed
    age_codes(minutes=2)

    owner = client_for(other_resident)
    response = owner.post("/my/contact/phone/add/", {"phone": "07700 900123"})
    owner.post(response["Location"], {"code": sent_codes[-1][1]})
    point = phone_points().get()
    assert point.citizen == other_resident.citizen and point.verification_level == "confirmed"

    # The first resident's code (if they had it) now meets a number on a real profile.
    first = ContactVerification.objects.filter(citizen=resident.citizen).get()
    age_codes(minutes=-2)  # back to when it was sent: still valid
    refused = resident_client.post(
        f"/my/contact/phone/{first.pk}/verify/", {"code": sent_codes[0][1]}
    )
    assert "This number cannot be added online" in refused.content.decode()
    assert phone_points().get().citizen == other_resident.citizen


def test_a_number_that_texted_us_before_is_merged_in_once_confirmed(
    resident_client, resident, sent_codes
):
    provisional = CitizenFactory(status=Citizen.Status.PROVISIONAL)
    point = add_phone(provisional)
    response = resident_client.post("/my/contact/phone/add/", {"phone": "07700 900123"})
    resident_client.post(response["Location"], {"code": sent_codes[-1][1]})
    provisional.refresh_from_db()
    assert provisional.status == "merged" and provisional.merged_into == resident.citizen
    point.refresh_from_db()
    assert point.citizen == resident.citizen and point.verification_level == "confirmed"


def test_an_unproven_number_on_the_profile_is_confirmed_by_a_code(
    resident_client, resident, sent_codes
):
    point = add_phone(resident.citizen)  # given to staff on the phone, say
    response = resident_client.post("/my/contact/phone/add/", {"phone": point.normalised})
    resident_client.post(response["Location"], {"code": sent_codes[-1][1]})
    point.refresh_from_db()
    assert point.verification_level == "confirmed"
    again = resident_client.post("/my/contact/phone/add/", {"phone": point.normalised})
    assert again["Location"] == "/my/contact/" and len(sent_codes) == 1


# --- Finding 3: the answer does not say whether the council knows the number ----------------


CSRF_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def _answer_to_adding(client: Client, number: str) -> tuple[int, str]:
    response = client.post("/my/contact/phone/add/", {"phone": number}, follow=True)
    body = CSRF_TOKEN.sub("csrf", response.content.decode())
    pending = ContactVerification.objects.order_by("-pk").first()
    return response.status_code, body.replace(f"/phone/{pending.pk}/", "/phone/<id>/")


def test_adding_a_number_answers_the_same_whoever_holds_it(
    resident_client, resident, other_resident, sent_codes
):
    add_phone(other_resident.citizen, "07700 900111", verification_level="confirmed")
    add_phone(CitizenFactory(status=Citizen.Status.PROVISIONAL), "07700 900222")
    answers = {
        number: _answer_to_adding(resident_client, number)
        for number in ("07700 900111", "07700 900222", "07700 900333")
    }
    normalised = {
        number: (status, body.replace(f"+44{number[1:].replace(' ', '')}", "<number>"))
        for number, (status, body) in answers.items()
    }
    assert len(set(normalised.values())) == 1
    status, body = normalised["07700 900333"]
    assert status == 200 and "We have sent a code to <number> if it can receive texts." in body
    # A code went to each: the holder of the phone is the only one who can go further.
    assert [number for number, _code, _language in sent_codes] == [
        "+447700900111",
        "+447700900222",
        "+447700900333",
    ]


def test_a_number_on_another_real_profile_is_refused_only_after_its_code(
    resident_client, resident, other_resident, sent_codes
):
    theirs = add_phone(other_resident.citizen, verification_level="confirmed")
    response = resident_client.post("/my/contact/phone/add/", {"phone": "07700900123"})
    assert "/verify/" in response["Location"]
    page = resident_client.post(response["Location"], {"code": sent_codes[-1][1]})
    html = page.content.decode()
    assert "This number cannot be added online. If it is yours, contact the council." in html
    assert "<title>Error: Enter the code we texted you" in html
    theirs.refresh_from_db()
    assert theirs.citizen == other_resident.citizen and theirs.removed_at is None
    assert not resident.citizen.contact_points.filter(kind="phone").exists()
    # The code is used up: typing it again does not try again.
    again = resident_client.post(response["Location"], {"code": sent_codes[-1][1]})
    assert "This code has expired" in again.content.decode()


# --- Finding 2: who may be texted, and how often --------------------------------------------


@pytest.mark.parametrize(
    "number",
    [
        "020 7946 0000",  # a London landline
        "0909 879 0000",  # premium rate
        "0800 123 4567",  # freephone
        "+33 6 12 34 56 78",  # a French mobile
        "+353 87 123 4567",  # an Irish mobile
    ],
)
def test_only_uk_mobile_numbers_can_be_added(resident_client, resident, sent_codes, number):
    response = resident_client.post("/my/contact/phone/add/", {"phone": number})
    html = response.content.decode()
    assert response.status_code == 200 and "<title>Error: Add a mobile phone number" in html
    assert "Enter a UK mobile number, like 07700 900 982" in html and 'href="#id_phone"' in html
    assert sent_codes == [] and not ContactVerification.objects.exists()


def test_a_bad_number_is_a_form_error_and_saves_nothing(resident_client, resident, sent_codes):
    response = resident_client.post("/my/contact/phone/add/", {"phone": "12"})
    html = response.content.decode()
    assert response.status_code == 200 and "<title>Error: Add a mobile phone number" in html
    assert "Enter a phone number in the correct format" in html and 'href="#id_phone"' in html
    assert not resident.citizen.contact_points.filter(kind="phone").exists()
    assert sent_codes == [] and not ContactVerification.objects.exists()


def test_codes_to_one_number_are_limited_whoever_asks(
    resident_client, resident, other_resident, sent_codes
):
    for _ in range(5):
        resident_client.post("/my/contact/phone/add/", {"phone": "07700 900123"})
        age_codes(minutes=2)
    response = client_for(other_resident).post(
        "/my/contact/phone/add/", {"phone": "07700 900123"}, follow=True
    )
    assert "Too many codes have been sent to this number" in response.content.decode()
    assert len(sent_codes) == 5


def test_codes_are_limited_per_resident_whatever_the_number(resident_client, sent_codes):
    for last_digits in range(100, 110):
        resident_client.post("/my/contact/phone/add/", {"phone": f"07700 900{last_digits}"})
    response = resident_client.post(
        "/my/contact/phone/add/", {"phone": "07700 900999"}, follow=True
    )
    assert "You have asked for too many codes. Try again in an hour." in response.content.decode()
    assert len(sent_codes) == 10


def test_codes_are_limited_per_resident_per_day(resident_client, sent_codes):
    for batch in range(2):
        for last_digits in range(10):
            resident_client.post(
                "/my/contact/phone/add/", {"phone": f"07700 900{batch}{last_digits}0"}
            )
        age_codes(minutes=61)
    response = resident_client.post(
        "/my/contact/phone/add/", {"phone": "07700 900999"}, follow=True
    )
    assert "You have asked for too many codes today. Try again tomorrow." in (
        response.content.decode()
    )
    assert len(sent_codes) == 20


# --- Finding 4: guessing codes --------------------------------------------------------------


def test_ten_wrong_codes_in_a_day_stop_all_checking_until_tomorrow(resident_client, sent_codes):
    pages = []
    for number in ("07700 900101", "07700 900102", "07700 900103"):
        response = resident_client.post("/my/contact/phone/add/", {"phone": number})
        pages.append(response["Location"])
    codes = [code for _number, code, _language in sent_codes]
    for page, code in zip(pages[:2], codes[:2], strict=True):
        for _ in range(5):
            resident_client.post(page, {"code": wrong(code)})
    # Even the right code for the third number is no longer checked today.
    blocked = resident_client.post(pages[2], {"code": codes[2]}).content.decode()
    assert "You have entered a wrong code too many times today. Try again tomorrow" in blocked
    assert "contact the council" in blocked
    assert not ContactPoint.objects.filter(kind="phone").exists()
    # The code page says so instead of asking for a code again.
    page = resident_client.get(pages[2]).content.decode()
    assert "Try again tomorrow, or contact the council." in page and 'name="code"' not in page
    # And no more codes are sent today either.
    age_codes(minutes=2)
    more = resident_client.post("/my/contact/phone/add/", {"phone": "07700 900104"}, follow=True)
    assert "Try again tomorrow" in more.content.decode() and len(sent_codes) == 3
    # A day later the resident can try again.
    age_codes(hours=24)
    resident_client.post("/my/contact/phone/add/", {"phone": "07700 900104"})
    assert len(sent_codes) == 4


# --- Sending, removing, access ----------------------------------------------------------------


def test_without_a_text_channel_nothing_is_saved_and_the_resident_told(resident_client, resident):
    response = resident_client.post(
        "/my/contact/phone/add/", {"phone": "07700 900123"}, follow=True
    )
    html = response.content.decode()
    assert "cannot send text messages at the moment" in html
    assert not phone_points().exists()
    assert not ContactVerification.objects.filter(used_at__isnull=True).exists()


def test_asking_for_a_new_code_replaces_the_old_one(resident_client, resident, sent_codes):
    first = resident_client.post("/my/contact/phone/add/", {"phone": "07700 900123"})["Location"]
    too_soon = resident_client.post(first.replace("/verify/", "/send-code/"), follow=True)
    assert "Wait a minute before asking for another" in too_soon.content.decode()
    age_codes(minutes=2)
    second = resident_client.post(first.replace("/verify/", "/send-code/"))["Location"]
    assert second != first and second.endswith("/verify/") and len(sent_codes) == 2
    old_code, new_code = sent_codes[0][1], sent_codes[1][1]
    if old_code != new_code:
        stale = resident_client.post(first, {"code": old_code}).content.decode()
        assert "This code has expired" in stale
    assert resident_client.post(second, {"code": new_code})["Location"] == "/my/contact/"
    assert phone_points().get().citizen == resident.citizen
    # Back on the code page afterwards: the number is confirmed, nothing more to do.
    assert resident_client.get(second)["Location"] == "/my/contact/"


def test_removing_a_number_is_soft_and_asks_first(resident_client, resident):
    point = add_phone(resident.citizen)
    page = resident_client.get(f"/my/contact/{point.pk}/remove/").content.decode()
    assert "Remove +447700900123?" in page
    response = resident_client.post(f"/my/contact/{point.pk}/remove/")
    assert response["Location"] == "/my/contact/"
    point.refresh_from_db()
    assert point.removed_at is not None
    html = resident_client.get("/my/contact/").content.decode()
    assert "+447700900123 has been removed." in html  # the banner; the table lists none
    assert f"/my/contact/{point.pk}/" not in html and "You have no phone numbers" in html


def test_the_sign_in_address_cannot_be_removed_here(resident_client, resident):
    login_point = resident.citizen.contact_points.get(kind="email")
    page = resident_client.get(f"/my/contact/{login_point.pk}/remove/").content.decode()
    assert "cannot be removed here" in page and 'href="/accounts/email/"' in page
    response = resident_client.post(f"/my/contact/{login_point.pk}/remove/")
    assert response.status_code == 400
    assert "Change it on the email address page" in response.content.decode()
    login_point.refresh_from_db()
    assert login_point.removed_at is None


def test_another_residents_contact_points_are_not_found(resident_client, other_resident):
    theirs = add_phone(other_resident.citizen)
    missing = ContactPoint.objects.order_by("-pk").first().pk + 100
    for pk in (theirs.pk, missing):
        assert resident_client.get(f"/my/contact/{pk}/remove/").status_code == 404
        assert resident_client.post(f"/my/contact/{pk}/remove/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.removed_at is None


@pytest.mark.parametrize("action", ["verify", "send-code"])
def test_another_residents_pending_number_is_not_found(
    resident_client, other_resident, sent_codes, action
):
    client_for(other_resident).post("/my/contact/phone/add/", {"phone": "07700 900123"})
    theirs = ContactVerification.objects.get()
    age_codes(minutes=2)
    for pk in (theirs.pk, theirs.pk + 100):
        url = f"/my/contact/phone/{pk}/{action}/"
        assert resident_client.get(url).status_code in (404, 405)
        assert resident_client.post(url, {"code": sent_codes[0][1]}).status_code == 404
    assert len(sent_codes) == 1 and not phone_points().exists()


def test_forms_need_the_csrf_token(resident, sent_codes):
    client = Client(enforce_csrf_checks=True)
    client.force_login(resident)
    response = client.post("/my/contact/phone/add/", {"phone": "07700 900123"})
    assert response.status_code == 403
    assert sent_codes == [] and not ContactVerification.objects.exists()


def test_contact_pages_need_a_signed_in_resident(client):
    assert client.get("/my/contact/")["Location"] == "/accounts/login/?next=/my/contact/"
    assert client.get("/my/contact/phone/1/verify/")["Location"].startswith("/accounts/login/")


def test_old_codes_are_deleted_after_two_days(resident_client, sent_codes):
    resident_client.post("/my/contact/phone/add/", {"phone": "07700 900123"})
    ContactVerification.objects.update(sent_at=timezone.now() - timedelta(days=3))
    resident_client.post("/my/contact/phone/add/", {"phone": "07700 900124"})
    assert list(ContactVerification.objects.values_list("normalised", flat=True)) == [
        "+447700900124"
    ]
