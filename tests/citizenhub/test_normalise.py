"""Normalising e-mail addresses, phone numbers, social handles and postcodes."""

import pytest
from django.core.exceptions import ValidationError

from citizenhub.normalise import (
    normalise_email,
    normalise_facebook_id,
    normalise_identity,
    normalise_mastodon_handle,
    normalise_phone,
    normalise_postal_address,
    normalise_postcode,
    normalise_x_handle,
)


@pytest.mark.parametrize(
    ("raw", "normalised", "match_key"),
    [
        ("jane@example.org", "jane@example.org", "jane@example.org"),
        ("  Jane.Doe@Example.ORG  ", "Jane.Doe@example.org", "jane.doe@example.org"),
        ("mailto:jane@example.org", "jane@example.org", "jane@example.org"),
        ("anwen@Bücher.example", "anwen@xn--bcher-kva.example", "anwen@xn--bcher-kva.example"),
        ("user+bins@example.org", "user+bins@example.org", "user+bins@example.org"),
        ("jane@example.org.", "jane@example.org", "jane@example.org"),
    ],
)
def test_email_normalisation(raw, normalised, match_key):
    result = normalise_email(raw)
    assert (result.normalised, result.match_key) == (normalised, match_key)


def test_email_variants_share_one_match_key():
    keys = {normalise_email(v).match_key for v in ("JANE@example.org", "jane@EXAMPLE.org")}
    assert keys == {"jane@example.org"}


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "jane",
        "jane@",
        "@example.org",
        "jane@@example.org",
        "a@b@c.org",
        "jane@exa mple.org",
        "jane@-bad-.org",
        "x" * 250 + "@example.org",
        "jane@example",
    ],
)
def test_malformed_email_names_the_field(raw):
    with pytest.raises(ValidationError) as exc:
        normalise_email(raw, field="email")
    assert "email" in exc.value.message_dict


@pytest.mark.parametrize(
    "raw",
    [
        "07700 900123",
        "+44 7700 900123",
        "0044 7700 900123",
        "447700900123",
        "(07700) 900-123",
        "+44 (0)7700 900123".replace("(0)", ""),
        "07700900123",
    ],
)
def test_uk_mobile_in_every_format_is_one_e164_number(raw):
    result = normalise_phone(raw)
    assert result.normalised == "+447700900123"
    assert result.match_key == "+447700900123"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("020 7946 0123", "+442079460123"),
        ("+1 202 555 0143", "+12025550143"),
        ("0113 496 0000", "+441134960000"),
    ],
)
def test_landlines_and_foreign_numbers(raw, expected):
    assert normalise_phone(raw).normalised == expected


def test_only_the_ofcom_drama_block_is_accepted_beyond_libphonenumber():
    assert normalise_phone("07700 900999").normalised == "+447700900999"
    with pytest.raises(ValidationError):
        normalise_phone("07700 9001234")  # one digit too many for the drama block
    with pytest.raises(ValidationError):
        normalise_phone("+44 1 234")  # too short to be any UK number


@pytest.mark.parametrize(
    "raw", ["", "hello", "0770090012", "07700 900123 ext 4", "+", "12", "0" * 25, "07700-9OO123"]
)
def test_malformed_phone_names_the_field(raw):
    with pytest.raises(ValidationError) as exc:
        normalise_phone(raw, field="phone")
    assert "phone" in exc.value.message_dict


@pytest.mark.parametrize(
    ("raw", "normalised", "key"),
    [
        ("@NorthmoorDC", "@NorthmoorDC", "northmoordc"),
        ("northmoordc", "@northmoordc", "northmoordc"),
        ("https://x.com/Jane_D/", "@Jane_D", "jane_d"),
    ],
)
def test_x_handles(raw, normalised, key):
    result = normalise_x_handle(raw)
    assert (result.normalised, result.match_key) == (normalised, key)


@pytest.mark.parametrize("raw", ["", "@", "has space", "way_too_long_handle_x", "dash-ed"])
def test_malformed_x_handle(raw):
    with pytest.raises(ValidationError) as exc:
        normalise_x_handle(raw)
    assert "x" in exc.value.message_dict


@pytest.mark.parametrize(
    "raw",
    [
        "@Jane@Mastodon.Social",
        "jane@mastodon.social",
        "https://mastodon.social/@jane",
        "@JANE@MASTODON.SOCIAL",
    ],
)
def test_mastodon_handles_with_instance(raw):
    assert normalise_mastodon_handle(raw).match_key == "jane@mastodon.social"


def test_mastodon_handle_without_instance_uses_the_default_or_fails():
    result = normalise_mastodon_handle("@jane", default_instance="social.northmoor.example")
    assert result.normalised == "@jane@social.northmoor.example"
    with pytest.raises(ValidationError) as exc:
        normalise_mastodon_handle("@jane")
    assert "instance" in exc.value.message_dict["mastodon"][0]


@pytest.mark.parametrize(
    "raw",
    [
        "a@b@c@d",
        "@jane@localhost",
        "@ja ne@mastodon.social",
        "https://mastodon.social/users/jane/statuses",
    ],
)
def test_malformed_mastodon_handle(raw):
    with pytest.raises(ValidationError):
        normalise_mastodon_handle(raw)


def test_facebook_ids():
    assert normalise_facebook_id("1234567890123").match_key == "1234567890123"
    assert normalise_facebook_id("Northmoor.Council").match_key == "northmoor.council"
    with pytest.raises(ValidationError):
        normalise_facebook_id("no way")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("sw1a1aa", "SW1A 1AA"),
        ("SW1A 1AA", "SW1A 1AA"),
        (" m1  1ae ", "M1 1AE"),
        ("B33 8TH", "B33 8TH"),
        ("CR2 6XH", "CR2 6XH"),
        ("DN55 1PT", "DN55 1PT"),
        ("W1A 0AX", "W1A 0AX"),
        ("EC1A 1BB", "EC1A 1BB"),
        ("cf10 1ep", "CF10 1EP"),
        ("GIR 0AA", "GIR 0AA"),
    ],
)
def test_postcodes(raw, expected):
    assert normalise_postcode(raw).normalised == expected


@pytest.mark.parametrize(
    "raw", ["", "SW1A", "12345", "QW1 1AA", "SW1A 1AAA", "SW1A 1CA", "GIR 1AA", "NOT A CODE"]
)
def test_malformed_postcode_names_the_field(raw):
    with pytest.raises(ValidationError) as exc:
        normalise_postcode(raw, field="postcode")
    assert "postcode" in exc.value.message_dict


def test_postal_address_key_ignores_case_and_punctuation():
    a = normalise_postal_address("12 Mill Lane, Northmoor, nm1 4ab")
    b = normalise_postal_address("12  MILL LANE\nNorthmoor\nNM1 4AB")
    assert a.match_key == b.match_key == "NM1 4AB|12 mill lane northmoor"
    with pytest.raises(ValidationError):
        normalise_postal_address("NM1 4AB")


def test_unknown_kind_is_rejected():
    with pytest.raises(ValidationError) as exc:
        normalise_identity("carrier-pigeon", "coo")
    assert "kind" in exc.value.message_dict


@pytest.mark.parametrize("value", [None, 123, ["a@b.org"]])
def test_non_text_input_is_rejected_not_crashing(value):
    for kind in ("email", "phone", "x", "mastodon", "facebook", "postal"):
        with pytest.raises(ValidationError):
            normalise_identity(kind, value)
