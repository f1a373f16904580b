"""Social channels on the ingest pipeline: Mastodon and X polled, Facebook by webhook, replies.

Each adapter talks through its real client library to a local fake of the provider: Mastodon
and the Facebook Graph API are HTTP servers on loopback (tests/fakes); tweepy cannot change
its base URL, so X is intercepted at the HTTP transport with `responses`, and the OAuth 1.0a
signatures tweepy makes are verified with oauthlib. Facebook webhooks are signed with the
real HMAC-SHA256 algorithm.
"""

import copy
import hashlib
import hmac
import json
import socket
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import responses
from django.core.cache import cache
from django.utils import timezone
from oauthlib.common import Request as OAuthRequest
from oauthlib.oauth1.rfc5849 import signature as oauth_signature
from oauthlib.oauth1.rfc5849 import utils as oauth_utils
from responses import matchers

from channels.adapters import adapter_for
from channels.models import Channel, ChannelCursor, InboundMessage, OutboundMessage, Thread
from channels.services.outbound import thread_reply
from channels.services.polling import poll_channel
from citizenhub.models import ContactPoint, TimelineEntry
from citizenhub.services import citizen_create
from tests.channels.conftest import PAYLOADS
from tests.fakes.graph import FakeGraph, RunningFakeGraph
from tests.fakes.mastodon import FakeMastodon, RunningFakeMastodon

pytestmark = pytest.mark.django_db

SOCIAL = PAYLOADS / "social"
CASE_DETAILS = "Case CH-4411: our engineer will repair the light at 14 Mill Lane on Tuesday."


def payload(name: str) -> dict:
    return json.loads((SOCIAL / name).read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def empty_cache():
    # Poll locks live in the cache.
    cache.clear()
    yield
    cache.clear()


def poll(channel, capture):
    """Poll once; ingest (enqueued on commit) runs before this returns."""
    with capture(execute=True):
        return poll_channel(channel_id=channel.pk)


def reply(thread, body, staff, capture) -> OutboundMessage:
    """Queue a staff reply; the send task (enqueued on commit) runs before this returns."""
    with capture(execute=True):
        outbound = thread_reply(thread=thread, body=body, by=staff)
    outbound.refresh_from_db()
    return outbound


def cursor_state(channel, key) -> dict:
    return ChannelCursor.objects.get(channel=channel, key=key).state


def end_backoff(channel) -> None:
    Channel.objects.filter(pk=channel.pk).update(
        backoff_until=timezone.now() - timedelta(seconds=1)
    )


# --- Mastodon ------------------------------------------------------------------------------

MASTODON_TOKEN = "mastodon-test-token-7f3a"
MASTODON_TOKEN_ENV = "TEST_MASTODON_ACCESS_TOKEN"
INSTANCE = "social.northmoor.example"


@pytest.fixture
def mastodon():
    fake = FakeMastodon(token=MASTODON_TOKEN, domain=INSTANCE)
    with RunningFakeMastodon(fake) as url:
        fake.url = url
        yield fake


@pytest.fixture
def mastodon_channel(mastodon, monkeypatch):
    monkeypatch.setenv(MASTODON_TOKEN_ENV, MASTODON_TOKEN)
    return Channel.objects.create(
        kind="mastodon",
        slug="mastodon",
        name="Northmoor on Mastodon",
        address=f"@northmoor@{INSTANCE}",
        settings={
            "api_base_url": mastodon.url,
            "access_token_env": MASTODON_TOKEN_ENV,
            "instance_domain": INSTANCE,
        },
    )


def mention(
    number: int,
    *,
    acct: str = "jane@mastodon.example",
    text: str = "Another thing",
    visibility: str = "public",
    in_reply_to_id: str | None = None,
) -> dict:
    """A further mention notification, shaped like the recorded one."""
    notification = copy.deepcopy(payload("mastodon_mention.json"))
    status_id = str(113500000000010000 + number * 10)
    notification["id"] = str(int(status_id) + 1)
    notification["status"].update(
        id=status_id,
        content=f"<p>@northmoor {text}</p>",
        visibility=visibility,
        in_reply_to_id=in_reply_to_id,
    )
    for account in (notification["account"], notification["status"]["account"]):
        account["acct"] = acct
        account["username"] = acct.split("@")[0]
    return notification


@pytest.fixture
def residents(db):
    """Jane's handle was recorded without its leading @; Amira's with it."""
    jane = citizen_create(
        given_name="Jane",
        family_name="Resident",
        contact_points=[("mastodon", "jane@mastodon.example")],
    )
    amira = citizen_create(
        given_name="Amira",
        family_name="Haddad",
        contact_points=[("mastodon", f"@amira@{INSTANCE}")],
    )
    return jane, amira


def test_mastodon_adapter_is_a_registered_polling_channel(mastodon_channel):
    adapter = adapter_for(mastodon_channel)
    assert adapter.kind == "mastodon" and adapter.polls
    assert mastodon_channel.timeline_channel == "mastodon"


def test_a_poll_stores_mentions_and_direct_messages_on_the_residents_timelines(
    mastodon, mastodon_channel, residents, django_capture_on_commit_callbacks
):
    jane, amira = residents
    mastodon.add_notification(payload("mastodon_mention.json"))
    mastodon.add_notification(payload("mastodon_direct.json"))
    favourite = {"id": "113500000000000150", "type": "favourite", "account": {"acct": "x"}}
    mastodon.add_notification(favourite)

    outcome = poll(mastodon_channel, django_capture_on_commit_callbacks)

    assert (outcome.status, outcome.stored, outcome.duplicates) == ("polled", 2, 0)
    assert mastodon.notification_requests() == [{"types[]": ["mention"], "limit": ["40"]}]
    messages = {m.external_id: m for m in InboundMessage.objects.all()}
    assert set(messages) == {"mastodon:113500000000000100", "mastodon:113500000000000200"}
    public, direct = (
        messages["mastodon:113500000000000100"],
        messages["mastodon:113500000000000200"],
    )
    assert {m.status for m in messages.values()} == {"processed"}
    assert public.raw_content_type == "application/json"
    assert json.loads(bytes(public.raw)) == payload("mastodon_mention.json")

    # A remote account (acct with instance) and a local one (acct without it) both find
    # the resident who has that handle.
    assert (public.citizen, public.sender_value) == (jane, "@jane@mastodon.example")
    assert (direct.citizen, direct.sender_value) == (amira, f"@amira@{INSTANCE}")
    assert public.sender_name == "Jane Resident 🌻" and direct.sender_name == "أميرة حداد"

    assert "💡🌑 & it is very dark" in public.body_text
    assert public.summary_text.startswith("The streetlight on Mill Lane")
    assert "<script" not in public.body_html and "alert" not in public.body_text
    assert "مرحبا، لم يتم جمع صندوق إعادة التدوير هذا الأسبوع 🗑️ رقم المنزل 12" in direct.body_text
    assert "Attachment (image): https://social.northmoor.example/system/" in direct.body_text

    assert public.thread.is_public and not direct.thread.is_public
    assert public.thread.citizen == jane and direct.thread.citizen == amira
    assert public.thread.conversation_key == "status:113500000000000100:@jane@mastodon.example"
    assert public.message_id == f"mastodon:{urlsplit(mastodon.url).netloc}:113500000000000100"

    entries = TimelineEntry.objects.order_by("citizen_id")
    assert [(e.citizen, e.channel, e.kind) for e in entries] == [
        (jane, "mastodon", "message_in"),
        (amira, "mastodon", "message_in"),
    ]
    assert cursor_state(mastodon_channel, "mastodon:notifications") == {
        "since_id": "113500000000000201"
    }


def test_polling_again_asks_only_for_newer_mentions(
    mastodon, mastodon_channel, django_capture_on_commit_callbacks
):
    mastodon.add_notification(payload("mastodon_mention.json"))
    assert poll(mastodon_channel, django_capture_on_commit_callbacks).stored == 1

    again = poll(mastodon_channel, django_capture_on_commit_callbacks)
    assert (again.status, again.stored, again.duplicates) == ("polled", 0, 0)
    assert mastodon.notification_requests()[-1]["since_id"] == ["113500000000000101"]

    mastodon.add_notification(mention(1))
    later = poll(mastodon_channel, django_capture_on_commit_callbacks)
    assert (later.stored, later.duplicates) == (1, 0)
    assert InboundMessage.objects.count() == 2 and TimelineEntry.objects.count() == 2
    assert cursor_state(mastodon_channel, "mastodon:notifications") == {
        "since_id": mention(1)["id"]
    }


@pytest.mark.parametrize(("status", "error"), [(503, "503"), (429, "rate limit")])
def test_instance_down_or_rate_limiting_backs_off_and_keeps_the_cursor(
    mastodon, mastodon_channel, django_capture_on_commit_callbacks, status, error
):
    mastodon.add_notification(payload("mastodon_mention.json"))
    assert poll(mastodon_channel, django_capture_on_commit_callbacks).stored == 1
    cursor_before = ChannelCursor.objects.get(channel=mastodon_channel)
    mastodon.add_notification(mention(1))
    mastodon.add_notification(mention(2))

    mastodon.fail_next(status)
    outcome = poll(mastodon_channel, django_capture_on_commit_callbacks)

    assert outcome.status == "failed"
    mastodon_channel.refresh_from_db()
    assert mastodon_channel.consecutive_failures == 1
    assert mastodon_channel.backoff_until > timezone.now()
    assert "TransientChannelError" in mastodon_channel.last_error
    assert error in mastodon_channel.last_error.lower()
    cursor_after = ChannelCursor.objects.get(channel=mastodon_channel)
    assert (cursor_after.state, cursor_after.updated_at) == (
        cursor_before.state,
        cursor_before.updated_at,
    )
    assert InboundMessage.objects.count() == 1
    assert poll(mastodon_channel, django_capture_on_commit_callbacks).status == "backing_off"

    end_backoff(mastodon_channel)
    resumed = poll(mastodon_channel, django_capture_on_commit_callbacks)
    assert (resumed.status, resumed.stored) == ("polled", 2)
    assert InboundMessage.objects.count() == 3 and TimelineEntry.objects.count() == 3
    assert cursor_state(mastodon_channel, "mastodon:notifications") == {
        "since_id": mention(2)["id"]
    }
    mastodon_channel.refresh_from_db()
    assert (mastodon_channel.consecutive_failures, mastodon_channel.last_error) == (0, "")


def test_an_unreachable_instance_fails_the_poll_and_backs_off(
    mastodon_channel, django_capture_on_commit_callbacks
):
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    mastodon_channel.settings["api_base_url"] = f"http://127.0.0.1:{port}"
    mastodon_channel.save()

    assert poll(mastodon_channel, django_capture_on_commit_callbacks).status == "failed"

    mastodon_channel.refresh_from_db()
    assert "Mastodon instance unreachable" in mastodon_channel.last_error
    assert mastodon_channel.backoff_until > timezone.now()
    assert not ChannelCursor.objects.exists()


def test_a_backlog_longer_than_a_poll_is_read_without_gaps(
    mastodon, mastodon_channel, django_capture_on_commit_callbacks
):
    mastodon_channel.settings.update(page_size=2, max_pages=2)
    mastodon_channel.save()
    mastodon.add_notification(payload("mastodon_mention.json"))
    poll(mastodon_channel, django_capture_on_commit_callbacks)
    backlog = [mention(n) for n in range(1, 6)]
    for notification in backlog:
        mastodon.add_notification(notification)

    first = poll(mastodon_channel, django_capture_on_commit_callbacks)
    # The two newest pages (4 mentions); the cursor remembers where the walk stopped.
    assert first.stored == 4
    assert cursor_state(mastodon_channel, "mastodon:notifications") == {
        "since_id": "113500000000000101",
        "before_id": backlog[1]["id"],
        "newest_id": backlog[4]["id"],
    }
    second = poll(mastodon_channel, django_capture_on_commit_callbacks)
    assert second.stored == 1
    assert cursor_state(mastodon_channel, "mastodon:notifications") == {
        "since_id": backlog[4]["id"]
    }
    stored = set(InboundMessage.objects.values_list("external_id", flat=True))
    assert stored == {f"mastodon:{n['status']['id']}" for n in [*backlog]} | {
        "mastodon:113500000000000100"
    }
    # Stored oldest first, so threads see a post before its replies.
    assert list(InboundMessage.objects.order_by("pk").values_list("external_id", flat=True))[
        1:5
    ] == [f"mastodon:{n['status']['id']}" for n in backlog[1:5]]


def test_a_reply_to_a_direct_message_is_a_direct_status_in_reply(
    mastodon, mastodon_channel, residents, staff_user, django_capture_on_commit_callbacks
):
    mastodon.add_notification(payload("mastodon_direct.json"))
    poll(mastodon_channel, django_capture_on_commit_callbacks)
    thread = Thread.objects.get()

    outbound = reply(
        thread,
        "شكرا! We will collect it on Friday 🚛",
        staff_user,
        django_capture_on_commit_callbacks,
    )

    assert outbound.status == "sent"
    [posted] = mastodon.posted()
    assert posted["status"] == f"@amira@{INSTANCE} شكرا! We will collect it on Friday 🚛"
    assert posted["visibility"] == "direct"
    assert posted["in_reply_to_id"] == "113500000000000200"
    [request] = [r for r in mastodon.received if r.method == "POST"]
    assert request.headers["idempotency-key"] == f"citizenhub:{outbound.message_id}"
    assert outbound.provider_message_id == mastodon.statuses[0]["id"]


def test_a_reply_to_a_public_mention_never_posts_the_staff_text_publicly(
    mastodon, mastodon_channel, residents, staff_user, django_capture_on_commit_callbacks
):
    mastodon.add_notification(payload("mastodon_mention.json"))
    poll(mastodon_channel, django_capture_on_commit_callbacks)
    thread = Thread.objects.get()
    assert thread.is_public

    outbound = reply(thread, CASE_DETAILS, staff_user, django_capture_on_commit_callbacks)

    assert outbound.status == "sent"
    posted = mastodon.posted()
    assert [p["visibility"] for p in posted] == ["direct"]
    assert posted[0]["status"] == f"@jane@mastodon.example {CASE_DETAILS}"
    assert posted[0]["in_reply_to_id"] == "113500000000000100"
    assert all(s["visibility"] == "direct" for s in mastodon.statuses)


def test_a_resident_answering_our_reply_stays_in_the_thread(
    mastodon, mastodon_channel, residents, staff_user, django_capture_on_commit_callbacks
):
    jane, _ = residents
    mastodon.add_notification(payload("mastodon_mention.json"))
    poll(mastodon_channel, django_capture_on_commit_callbacks)
    thread = Thread.objects.get()
    outbound = reply(thread, CASE_DETAILS, staff_user, django_capture_on_commit_callbacks)

    # Jane answers our direct status, then adds to her answer; someone else answers hers.
    answer = mention(
        1, text="Tuesday is fine", visibility="direct", in_reply_to_id=outbound.provider_message_id
    )
    follow_up = mention(
        2, text="Gate code 1234", visibility="direct", in_reply_to_id=answer["status"]["id"]
    )
    stranger = mention(3, acct="bob@other.example", in_reply_to_id="113500000000000100")
    for notification in (answer, follow_up, stranger):
        mastodon.add_notification(notification)
    assert poll(mastodon_channel, django_capture_on_commit_callbacks).stored == 3

    in_thread = InboundMessage.objects.filter(thread=thread).order_by("pk")
    assert [m.external_id for m in in_thread] == [
        "mastodon:113500000000000100",
        f"mastodon:{answer['status']['id']}",
        f"mastodon:{follow_up['status']['id']}",
    ]
    bobs = InboundMessage.objects.get(external_id=f"mastodon:{stranger['status']['id']}")
    assert bobs.thread != thread and bobs.thread.citizen != jane
    assert bobs.thread.conversation_key == "status:113500000000000100:@bob@other.example"


@pytest.mark.parametrize(
    ("failure", "status"), [(503, "queued"), (429, "queued"), (None, "failed")]
)
def test_reply_failures_are_retried_or_reported(
    mastodon,
    mastodon_channel,
    residents,
    staff_user,
    django_capture_on_commit_callbacks,
    failure,
    status,
):
    mastodon.add_notification(payload("mastodon_direct.json"))
    poll(mastodon_channel, django_capture_on_commit_callbacks)
    body = "Thanks"
    if failure:
        mastodon.fail_next(failure)
    else:
        body = "x" * 600  # over the instance's 500 characters: refused for good

    outbound = reply(Thread.objects.get(), body, staff_user, django_capture_on_commit_callbacks)

    assert outbound.status == status and outbound.last_error
    assert mastodon.statuses == []


# --- X -------------------------------------------------------------------------------------

X_USER_ID = "1500000000000000001"
X_SECRETS = {
    "bearer_token": "x-bearer-AAAAAAAAAAAAAAAAAAAAA",
    "consumer_key": "x-consumer-key",
    "consumer_secret": "x-consumer-secret",
    "access_token": f"{X_USER_ID}-x-access-token",
    "access_token_secret": "x-access-token-secret",
}
MENTIONS_URL = f"https://api.twitter.com/2/users/{X_USER_ID}/mentions"
MENTION_QUERY = {
    "max_results": "100",
    "expansions": "author_id",
    "tweet.fields": "author_id,conversation_id,created_at,in_reply_to_user_id,referenced_tweets",
    "user.fields": "name,username",
}
NEUTRAL = "Thanks — we've received your message. We'll reply privately; please check your messages."


@pytest.fixture
def x_channel(db, monkeypatch):
    settings = {"user_id": X_USER_ID}
    for name, value in X_SECRETS.items():
        monkeypatch.setenv(f"TEST_X_{name.upper()}", value)
        settings[f"{name}_env"] = f"TEST_X_{name.upper()}"
    return Channel.objects.create(kind="x", slug="x", name="Northmoor on X", settings=settings)


@pytest.fixture
def x_api():
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


def expect_mentions(x_api, body: dict, *, status: int = 200, headers=None, **query) -> None:
    x_api.get(
        MENTIONS_URL,
        json=body,
        status=status,
        headers=headers,
        match=[
            matchers.query_param_matcher({**MENTION_QUERY, **query}),
            matchers.header_matcher({"Authorization": f"Bearer {X_SECRETS['bearer_token']}"}),
        ],
    )


def oauth1_signature_is_valid(request) -> bool:
    """Recompute the OAuth 1.0a HMAC-SHA1 signature of a request tweepy made."""
    authorization = request.headers["Authorization"]
    assert authorization.startswith("OAuth ")
    fields = dict(oauth_utils.parse_authorization_header(authorization))
    assert fields["oauth_consumer_key"] == X_SECRETS["consumer_key"]
    assert fields["oauth_token"] == X_SECRETS["access_token"]
    checked = OAuthRequest(request.url, request.method, None, dict(request.headers))
    checked.params = oauth_signature.collect_parameters(
        uri_query=urlsplit(request.url).query, headers=dict(request.headers)
    )
    checked.signature = oauth_utils.unescape(fields["oauth_signature"])
    return oauth_signature.verify_hmac_sha1(
        checked, X_SECRETS["consumer_secret"], X_SECRETS["access_token_secret"]
    )


def test_x_mentions_are_polled_since_the_cursor(
    x_channel, x_api, django_capture_on_commit_callbacks
):
    sam = citizen_create(given_name="Sam", contact_points=[("x", "@Sam_ONeill")])
    expect_mentions(x_api, payload("x_mentions.json"))

    outcome = poll(x_channel, django_capture_on_commit_callbacks)

    assert (outcome.status, outcome.stored) == ("polled", 2)
    first, second = InboundMessage.objects.order_by("pk")
    assert (first.external_id, second.external_id) == (
        "x:1861000000000000100",
        "x:1861000000000000300",
    )
    assert {m.status for m in (first, second)} == {"processed"}
    assert first.citizen == second.citizen == sam and first.sender_value == "@sam_oneill"
    assert (
        first.body_text
        == "@NorthmoorCC Bins on Elm Road missed again 😡 & the lid is broken <again>"
    )
    assert first.summary_text.startswith("Bins on Elm Road")
    # The reply to the council's own tweet is in the same conversation: one thread.
    assert first.thread == second.thread and first.thread.is_public
    assert first.thread.conversation_key == "x:1861000000000000100:2244994945"
    assert json.loads(bytes(first.raw))["includes"]["users"][0]["username"] == "sam_oneill"
    assert TimelineEntry.objects.filter(citizen=sam, channel="x").count() == 2
    assert cursor_state(x_channel, "x:mentions") == {"since_id": "1861000000000000300"}

    expect_mentions(x_api, {"meta": {"result_count": 0}}, since_id="1861000000000000300")
    again = poll(x_channel, django_capture_on_commit_callbacks)
    assert (again.status, again.stored) == ("polled", 0)
    assert cursor_state(x_channel, "x:mentions") == {"since_id": "1861000000000000300"}


def test_x_rate_limit_backs_off_and_keeps_the_cursor(
    x_channel, x_api, django_capture_on_commit_callbacks
):
    ChannelCursor.objects.create(channel=x_channel, key="x:mentions", state={"since_id": "1861"})
    expect_mentions(
        x_api,
        {"title": "Too Many Requests", "detail": "Too Many Requests", "status": 429},
        status=429,
        headers={"x-rate-limit-reset": "1893456000"},
        since_id="1861",
    )

    assert poll(x_channel, django_capture_on_commit_callbacks).status == "failed"

    x_channel.refresh_from_db()
    assert "TransientChannelError: X API 429" in x_channel.last_error
    assert x_channel.backoff_until > timezone.now()
    assert cursor_state(x_channel, "x:mentions") == {"since_id": "1861"}
    assert not InboundMessage.objects.exists()


def test_x_replies_go_by_direct_message_and_only_a_neutral_text_is_public(
    x_channel, x_api, staff_user, django_capture_on_commit_callbacks
):
    expect_mentions(x_api, payload("x_mentions.json"))
    poll(x_channel, django_capture_on_commit_callbacks)
    thread = Thread.objects.get()
    dm_url = "https://api.twitter.com/2/dm_conversations/with/2244994945/messages"
    x_api.post(
        dm_url,
        json={
            "data": {"dm_conversation_id": "1500-2244994945", "dm_event_id": "1862000000000000001"}
        },
        status=201,
        match=[matchers.json_params_matcher({"text": CASE_DETAILS})],
    )
    x_api.post(
        "https://api.twitter.com/2/tweets",
        json={"data": {"id": "1862000000000000002", "text": NEUTRAL}},
        status=201,
        match=[
            matchers.json_params_matcher(
                {"text": NEUTRAL, "reply": {"in_reply_to_tweet_id": "1861000000000000300"}}
            )
        ],
    )

    outbound = reply(thread, CASE_DETAILS, staff_user, django_capture_on_commit_callbacks)

    assert outbound.status == "sent"
    assert outbound.provider_message_id == "dm:1862000000000000001 reply:1862000000000000002"
    sent = [call.request for call in x_api.calls if call.request.method == "POST"]
    assert [r.url for r in sent] == [dm_url, "https://api.twitter.com/2/tweets"]
    assert all(oauth1_signature_is_valid(r) for r in sent)
    public = [r for r in sent if r.url.endswith("/2/tweets")]
    assert all(CASE_DETAILS not in r.body.decode() for r in public)

    # A second reply in the thread goes privately only: no more public acknowledgements.
    x_api.post(
        dm_url,
        json={
            "data": {"dm_conversation_id": "1500-2244994945", "dm_event_id": "1862000000000000003"}
        },
        status=201,
    )
    second = reply(thread, "Done ✅", staff_user, django_capture_on_commit_callbacks)
    assert (second.status, second.provider_message_id) == ("sent", "dm:1862000000000000003")
    assert [c.request.url for c in x_api.calls].count("https://api.twitter.com/2/tweets") == 1


def test_x_refusing_the_direct_message_posts_nothing_in_public(
    x_channel, x_api, staff_user, django_capture_on_commit_callbacks
):
    expect_mentions(x_api, payload("x_mentions.json"))
    poll(x_channel, django_capture_on_commit_callbacks)
    x_api.post(
        "https://api.twitter.com/2/dm_conversations/with/2244994945/messages",
        json={
            "title": "Forbidden",
            "detail": "You cannot send messages to this user.",
            "status": 403,
        },
        status=403,
    )

    outbound = reply(
        Thread.objects.get(), CASE_DETAILS, staff_user, django_capture_on_commit_callbacks
    )

    assert outbound.status == "failed"
    assert "nothing was posted in public" in outbound.last_error
    assert "You cannot send messages to this user." in outbound.last_error
    assert not [c for c in x_api.calls if c.request.url.endswith("/2/tweets")]


# --- Facebook ------------------------------------------------------------------------------

PAGE_ID = "104500000000001"
APP_SECRET = "fb-app-secret-0123456789abcdef"
VERIFY_TOKEN = "northmoor-verify-8c1e"
PAGE_TOKEN = "EAAB-page-access-token"
PSID = "7300000000000042"
COMMENT_ID = "880000000000011_990000000000022"


@pytest.fixture
def graph():
    fake = FakeGraph(page_id=PAGE_ID, token=PAGE_TOKEN)
    with RunningFakeGraph(fake) as base_url:
        fake.base_url = base_url
        yield fake


@pytest.fixture
def facebook_channel(graph, monkeypatch):
    monkeypatch.setenv("TEST_FB_APP_SECRET", APP_SECRET)
    monkeypatch.setenv("TEST_FB_VERIFY_TOKEN", VERIFY_TOKEN)
    monkeypatch.setenv("TEST_FB_PAGE_TOKEN", PAGE_TOKEN)
    return Channel.objects.create(
        kind="facebook",
        slug="facebook",
        name="Northmoor Council Facebook Page",
        settings={
            "page_id": PAGE_ID,
            "app_secret_env": "TEST_FB_APP_SECRET",
            "verify_token_env": "TEST_FB_VERIFY_TOKEN",
            "page_access_token_env": "TEST_FB_PAGE_TOKEN",
            "graph_base_url": graph.base_url,
        },
    )


def sign(body: bytes, secret: str = APP_SECRET) -> str:
    """X-Hub-Signature-256 as Meta computes it: HMAC-SHA256 of the raw body, hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver(client, body: bytes, signature: str | None = "sign"):
    headers = {}
    if signature == "sign":
        headers["HTTP_X_HUB_SIGNATURE_256"] = sign(body)
    elif signature is not None:
        headers["HTTP_X_HUB_SIGNATURE_256"] = signature
    return client.post("/hooks/facebook/", data=body, content_type="application/json", **headers)


def webhook_body(name: str) -> bytes:
    return (SOCIAL / name).read_bytes()


def test_facebook_subscription_check_answers_the_challenge(client, facebook_channel):
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    response = client.get("/hooks/facebook/", query)
    assert response.status_code == 200
    assert response.content == b"1158201444"
    assert response["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"}, 403),
        ({"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"}, 403),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, 403),
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN}, 400),
        ({"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "<b>"}, 400),
    ],
)
def test_facebook_subscription_check_refuses_a_wrong_token(client, facebook_channel, query, status):
    response = client.get("/hooks/facebook/", query)
    assert response.status_code == status
    assert response.json()["error"]["message"]


def test_a_signed_message_is_stored_and_processed(
    client, facebook_channel, django_capture_on_commit_callbacks
):
    body = webhook_body("facebook_message.json")
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, body)

    # The echo of our own message, the delivery receipt and another page's event are skipped.
    assert response.status_code == 200 and response.json() == {"stored": 1, "duplicates": 0}
    message = InboundMessage.objects.get()
    assert message.external_id == "fb:m_AbC123xyz-resident-message-1"
    assert message.status == "processed" and message.raw_content_type == "application/json"
    assert json.loads(bytes(message.raw)) == json.loads(body)["entry"][0]["messaging"][0]
    assert message.sender_value == PSID
    assert message.body_text == (
        "السلام عليكم 👋 The pavement outside 14 Station Road is broken — שלום"
    )
    assert not message.thread.is_public and message.thread.conversation_key == f"fb:{PSID}"
    point = ContactPoint.objects.get(kind="facebook", match_key=PSID)
    assert message.citizen == point.citizen
    entry = TimelineEntry.objects.get()
    assert (entry.citizen, entry.channel, entry.source) == (message.citizen, "facebook", message)


@pytest.mark.parametrize(
    "signature",
    [None, "", "sha256=", "sha256=" + "0" * 64, "other-secret", "other-body", "sha1=abc"],
)
def test_a_missing_or_wrong_signature_is_refused_and_nothing_stored(
    client, facebook_channel, django_capture_on_commit_callbacks, signature
):
    body = webhook_body("facebook_message.json")
    if signature == "other-secret":
        signature = sign(body, secret="not-the-app-secret")
    elif signature == "other-body":
        signature = sign(body + b" ")
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, body, signature=signature)
    assert response.status_code == 403
    assert "X-Hub-Signature-256" in response.json()["error"]["message"]
    assert not InboundMessage.objects.exists() and not TimelineEntry.objects.exists()


def test_without_its_app_secret_the_channel_asks_meta_to_retry(
    client, facebook_channel, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.delenv("TEST_FB_APP_SECRET")
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, webhook_body("facebook_message.json"))
    assert response.status_code == 503
    assert not InboundMessage.objects.exists()


def test_a_signed_body_that_is_not_json_is_refused_with_the_reason(
    client, facebook_channel, django_capture_on_commit_callbacks
):
    body = b'{"object": "page", "entry": [{"id": '
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, body)
    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]["message"]
    assert not InboundMessage.objects.exists()


def test_a_replayed_webhook_is_stored_once(
    client, facebook_channel, django_capture_on_commit_callbacks
):
    body = webhook_body("facebook_message.json")
    answers = []
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            answers.append(deliver(client, body).json())
    assert answers == [
        {"stored": 1, "duplicates": 0},
        {"stored": 0, "duplicates": 1},
        {"stored": 0, "duplicates": 1},
    ]
    assert InboundMessage.objects.count() == 1 and TimelineEntry.objects.count() == 1


def test_a_reply_to_a_messenger_thread_goes_to_the_psid(
    client, facebook_channel, graph, staff_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        deliver(client, webhook_body("facebook_message.json"))

    outbound = reply(
        Thread.objects.get(),
        "Diolch — fixed by Friday 👍",
        staff_user,
        django_capture_on_commit_callbacks,
    )

    assert (outbound.status, outbound.provider_message_id) == ("sent", "m_fake0001")
    [sent] = graph.sent
    assert sent.recipient == {"id": PSID}
    assert sent.message == {"text": "Diolch — fixed by Friday 👍"}
    assert (sent.messaging_type, sent.access_token) == ("RESPONSE", PAGE_TOKEN)


def test_a_comment_makes_a_public_thread_answered_by_private_reply(
    client, facebook_channel, graph, staff_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(client, webhook_body("facebook_comment.json"))
    assert response.json() == {"stored": 1, "duplicates": 0}
    comment = InboundMessage.objects.get()
    assert comment.external_id == f"fb-comment:{COMMENT_ID}"
    assert (
        comment.sender_value == "6100000000000077" and comment.sender_name == "Dafydd ap Gruffydd"
    )
    assert comment.body_text.startswith("Pam mae'r llyfrgell ar gau? 📚")
    thread = comment.thread
    assert thread.is_public
    assert thread.conversation_key == f"fb-post:{PAGE_ID}_880000000000011:6100000000000077"

    outbound = reply(thread, CASE_DETAILS, staff_user, django_capture_on_commit_callbacks)

    assert outbound.status == "sent"
    [sent] = graph.sent
    assert sent.recipient == {"comment_id": COMMENT_ID}
    assert sent.message == {"text": CASE_DETAILS}
    # The only endpoint ever called is the Send API: nothing is posted as a comment.
    assert {path for _, path, _ in graph.requests} == {f"/v19.0/{PAGE_ID}/messages"}

    # Meta allows one private reply per comment: a second is refused and reported.
    again = reply(thread, "One more thing", staff_user, django_capture_on_commit_callbacks)
    assert again.status == "failed" and "10900" in again.last_error


@pytest.mark.parametrize(
    ("status", "error", "outcome"),
    [
        (503, {"message": "Service temporarily unavailable", "code": 2}, "queued"),
        (429, {"message": "Too many calls", "code": 4}, "queued"),
        (
            400,
            {"message": "(#613) Calls to this api have exceeded the rate limit.", "code": 613},
            "queued",
        ),
        (400, {"message": "(#100) No matching user found", "code": 100}, "failed"),
    ],
)
def test_graph_failures_are_retried_or_reported(
    client,
    facebook_channel,
    graph,
    staff_user,
    django_capture_on_commit_callbacks,
    status,
    error,
    outcome,
):
    with django_capture_on_commit_callbacks(execute=True):
        deliver(client, webhook_body("facebook_message.json"))
    graph.fail_next(status, error)

    outbound = reply(Thread.objects.get(), "Thanks", staff_user, django_capture_on_commit_callbacks)

    assert outbound.status == outcome
    assert (
        f"Graph API {status}" in outbound.last_error and str(error["code"]) in outbound.last_error
    )
    assert graph.sent == []
