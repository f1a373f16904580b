"""Fixtures for the channels tests: e-mail channels and recorded payloads."""

from pathlib import Path

import pytest

from channels.adapters import RawInbound
from channels.email.parsing import external_id_for
from channels.models import Channel

PAYLOADS = Path(__file__).resolve().parents[1] / "payloads"


def eml(name: str) -> bytes:
    return (PAYLOADS / "email" / name).read_bytes()


def raw_email(data: bytes, *recipients: str) -> RawInbound:
    return RawInbound(
        external_id=external_id_for(data),
        raw=data,
        recipients=recipients or ("contact@northmoor.example",),
    )


@pytest.fixture
def email_channel(db):
    return Channel.objects.create(
        kind="email-smtp",
        slug="contact",
        name="Contact centre mailbox",
        address="contact@northmoor.example",
        settings={"smtp_host": "127.0.0.1", "smtp_port": 1, "reply_domain": "in.northmoor.example"},
    )


@pytest.fixture
def second_email_channel(db):
    return Channel.objects.create(
        kind="email-smtp",
        slug="planning",
        name="Planning mailbox",
        address="planning@northmoor.example",
    )
