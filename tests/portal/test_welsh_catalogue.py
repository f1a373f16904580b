"""The Welsh catalogue (locale/cy/LC_MESSAGES/django.po) is complete, current and compiled:
every portal string translated, nothing fuzzy, placeholders kept, the committed django.mo
the same as the .po, and the portal's pages in Welsh without English UI words left over."""

from __future__ import annotations

import ast
import gettext
import os
import re
import shutil
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from tests.factories import ServiceCaseFactory, ServiceFactory

BASE_DIR = Path(settings.BASE_DIR)
PO_PATH = BASE_DIR / "locale" / "cy" / "LC_MESSAGES" / "django.po"
MO_PATH = PO_PATH.with_suffix(".mo")
MAKEFILE = BASE_DIR / "Makefile"
# Django's own Welsh catalogue uses this rule, so ours merges with it (same Plural-Forms).
WELSH_PLURAL_FORMS = "nplurals=4; plural=(n==1) ? 0 : (n==2) ? 1 : (n != 8 && n != 11) ? 2 : 3;"
# printf-style (%(name)s, %s, %d) and str.format-style ({name}) placeholders.
PLACEHOLDER = re.compile(
    r"%\([^)]+\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]|%[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]"
    r"|\{[A-Za-z_][A-Za-z0-9_]*\}"
)


@dataclass
class Entry:
    msgid: str = ""
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False

    @property
    def key(self) -> tuple[str | None, str, str | None]:
        return (self.msgctxt, self.msgid, self.msgid_plural)


def parse_po(path: Path) -> tuple[Entry, list[Entry]]:
    """A .po reader for our own file: entries separated by blank lines, strings quoted as C
    literals (gettext's escapes are Python's). Returns the header and the entries."""
    entries: list[Entry] = []
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        entry, target = Entry(), None
        seen = False
        for line in block.splitlines():
            if line.startswith("#~"):
                entry.obsolete = True
            elif line.startswith("#,"):
                entry.flags |= {flag.strip() for flag in line[2:].split(",")}
            elif line.startswith("#") or not line.strip():
                continue
            elif line.startswith('"'):
                value = ast.literal_eval(line)
                if isinstance(target, int):
                    entry.msgstr[target] += value
                else:
                    setattr(entry, target, getattr(entry, target) + value)
            else:
                keyword, _, literal = line.partition(" ")
                value = ast.literal_eval(literal)
                seen = True
                if keyword.startswith("msgstr"):
                    target = int(keyword[7:-1]) if "[" in keyword else 0
                    entry.msgstr[target] = value
                else:
                    target = keyword
                    setattr(entry, keyword, value)
        if seen or entry.obsolete:
            entries.append(entry)
    header, *rest = entries
    assert header.msgid == "", "the .po must start with its header"
    return header, rest


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text.replace("%%", "")))


@pytest.fixture(scope="module")
def catalogue() -> tuple[Entry, list[Entry]]:
    assert PO_PATH.exists(), "locale/cy/LC_MESSAGES/django.po is missing: run `make messages`"
    return parse_po(PO_PATH)


# --- (a) Complete: every entry translated, nothing fuzzy or obsolete, placeholders kept -----


def test_the_header_is_welsh_with_djangos_plural_rule(catalogue):
    header, _ = catalogue
    text = header.msgstr[0]
    assert "Language: cy\n" in text and "charset=UTF-8" in text
    assert f"Plural-Forms: {WELSH_PLURAL_FORMS}\n" in text
    assert "fuzzy" not in header.flags


def test_every_entry_is_translated_and_none_is_fuzzy_or_obsolete(catalogue):
    _, entries = catalogue
    assert len(entries) > 500, "the catalogue has lost most of the portal's strings"
    problems = []
    for entry in entries:
        if entry.obsolete:
            problems.append(f"obsolete: {entry.msgid!r}")
        if "fuzzy" in entry.flags:
            problems.append(f"fuzzy: {entry.msgid!r}")
        expected_forms = set(range(4)) if entry.msgid_plural is not None else {0}
        if set(entry.msgstr) != expected_forms:
            problems.append(f"wrong plural forms {sorted(entry.msgstr)}: {entry.msgid!r}")
        if any(not text.strip() for text in entry.msgstr.values()):
            problems.append(f"untranslated: {entry.msgid!r}")
    assert not problems, "\n".join(problems)


def test_every_translation_keeps_the_placeholders_of_the_english(catalogue):
    _, entries = catalogue
    problems = []
    for entry in entries:
        expected = placeholders(entry.msgid) | placeholders(entry.msgid_plural or "")
        for form, text in entry.msgstr.items():
            if placeholders(text) != expected:
                problems.append(f"{entry.msgid!r} [{form}]: {placeholders(text)} != {expected}")
    assert not problems, "\n".join(problems)


def test_the_catalogue_holds_the_labels_residents_see_from_shared_models(catalogue):
    _, entries = catalogue
    keys = {(entry.msgctxt, entry.msgid) for entry in entries}
    for msgid in ("In progress", "Resolved", "Text message", "E-mail address", "Phone number"):
        assert (None, msgid) in keys, msgid  # ServiceCase.Status, ChannelKind, ContactPoint.Kind
    assert ("case status", "Resolved") in keys  # the portal's own status words
    # Staff-only pages stay English: their strings are not in the residents' catalogue.
    assert (None, "Awaiting review") not in keys  # DuplicateCandidate, staff only


# --- (b) Current: makemessages finds no string the catalogue lacks, and none it no longer has -


def makemessages_ignore_patterns() -> list[str]:
    """The --ignore list of `make messages` (MESSAGES_IGNORE in the Makefile)."""
    text = MAKEFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    match = re.search(r"^MESSAGES_IGNORE :=(.*)$", text, re.MULTILINE)
    assert match, "the Makefile has no MESSAGES_IGNORE"
    recipe = re.search(r"^messages:\n((?:\t.*\n)+)", text, re.MULTILINE)
    assert recipe, "the Makefile has no `messages` target"
    command = " ".join(recipe.group(1).split())
    assert "makemessages --locale=cy --no-obsolete --add-location=file" in command
    assert "$(addprefix --ignore=,$(MESSAGES_IGNORE))" in command
    assert "compilemessages --locale=cy" in command
    return match.group(1).split()


def test_the_po_says_how_it_is_made(catalogue):
    comment = PO_PATH.read_text(encoding="utf-8").split('msgid ""', 1)[0]
    assert "make messages" in comment and "makemessages --locale=cy --no-obsolete" in comment
    for pattern in makemessages_ignore_patterns():
        assert f"--ignore={pattern} " in comment.replace("\n", " ").replace("#", " ") + " "


def test_the_catalogue_is_current_with_the_code(catalogue, tmp_path, monkeypatch, settings):
    """Runs `make messages`' makemessages over the checkout (through symlinks, into a
    throwaway locale directory) and compares the strings it finds with the committed .po."""
    if not shutil.which("xgettext") or not shutil.which("msguniq"):
        message = "gettext is not installed (apt-get install gettext); makemessages needs it"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + ": the staleness check runs in CI")
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    for child in BASE_DIR.iterdir():
        if child.name != "locale" and not child.name.startswith("."):
            (workdir / child.name).symlink_to(child)
    settings.LOCALE_PATHS = [str(tmp_path / "locale")]
    monkeypatch.chdir(workdir)

    call_command(
        "makemessages",
        locale=["cy"],
        no_obsolete=True,
        add_location="file",
        ignore_patterns=makemessages_ignore_patterns(),
        symlinks=True,
        verbosity=0,
    )

    _, found = parse_po(tmp_path / "locale" / "cy" / "LC_MESSAGES" / "django.po")
    _, committed = catalogue
    found_keys = {entry.key for entry in found}
    committed_keys = {entry.key for entry in committed if not entry.obsolete}
    new = sorted(found_keys - committed_keys, key=str)
    gone = sorted(committed_keys - found_keys, key=str)
    assert not new and not gone, (
        "locale/cy is out of date: run `make messages`, translate, run it again.\n"
        f"Not in the catalogue: {new}\nNo longer in the code: {gone}"
    )


# --- (c) Compiled: the committed django.mo says what the .po says ----------------------------


def test_the_committed_mo_matches_the_po(catalogue):
    assert MO_PATH.exists(), "django.mo is missing: run `make messages` and commit it"
    _, entries = catalogue
    with MO_PATH.open("rb") as compiled:
        translations = gettext.GNUTranslations(compiled)
    catalog = translations._catalog  # the public API cannot list the messages

    # msgfmt leaves POT-Creation-Date out of the compiled header: compare the rule instead.
    assert translations.info()["plural-forms"] == WELSH_PLURAL_FORMS
    assert translations.info()["language"] == "cy"
    expected: dict[object, str] = {"": catalog[""]}
    for entry in entries:
        msgid = f"{entry.msgctxt}\x04{entry.msgid}" if entry.msgctxt else entry.msgid
        if entry.msgid_plural is None:
            expected[msgid] = entry.msgstr[0]
        else:
            for form, text in entry.msgstr.items():
                expected[(msgid, form)] = text
    assert catalog == expected, "django.mo is stale: run `make messages` (it compiles too)"
    assert translations.ngettext("%(n)d day", "%(n)d days", 8) == "%(n)d diwrnod"


# --- (d) The pages residents use read in Welsh ------------------------------------------------

WELSH = {"HTTP_ACCEPT_LANGUAGE": "cy"}
# English words of the portal's frame and main actions: none may be left on a Welsh page.
ENGLISH_UI = (
    "Report a problem",
    "Sign in",
    "Sign out",
    "My account",
    "Skip to main content",
    "Create an account",
    "There is a problem",
    "Email address",
    "Password",
)


def visible_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.DOTALL)
    html = re.sub(r"<[^>]+>", " ", html)
    return " ".join(unescape(html).split())


def assert_welsh(response, *welsh: str) -> str:
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="cy"' in html
    text = visible_text(html)
    for words in welsh:
        assert words in text, f"{words!r} is missing from {response.request['PATH_INFO']}"
    for words in ENGLISH_UI:
        assert words not in text, f"English {words!r} on {response.request['PATH_INFO']}"
    return text


@pytest.mark.django_db
def test_public_pages_read_in_welsh(client):
    ServiceFactory(code="missed-bin", name="Missed bin", is_public=True)

    assert_welsh(client.get("/", **WELSH), "Rhoi gwybod am broblem", "Mewngofnodi")
    assert_welsh(client.get("/report/", **WELSH), "Am beth ydych chi eisiau rhoi gwybod?")
    assert_welsh(client.get("/services/", **WELSH), "Gwasanaethau")
    assert_welsh(client.get("/accounts/login/", **WELSH), "Cyfeiriad e-bost", "Cyfrinair")
    assert_welsh(client.get("/accounts/signup/", **WELSH), "Creu cyfrif", "Creu cyfrinair")


@pytest.mark.django_db
def test_a_residents_pages_read_in_welsh(resident_client, resident):
    # Signed in, the profile's language (English here) beats Accept-Language; the toggle's
    # cookie beats both.
    resident_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "cy"
    citizen = resident.citizen
    for status in ("open", "waiting", "resolved"):
        ServiceCaseFactory(citizen=citizen, status=status)

    assert_welsh(resident_client.get("/my/", **WELSH), "Fy nghyfrif", "Allgofnodi", "Fy achosion")
    cases = assert_welsh(resident_client.get("/my/cases/", **WELSH), "Fy achosion")
    # The status tags are the portal's Welsh words, not the English model labels.
    for welsh, english in (
        ("Yn cael sylw", "Being looked at"),
        ("Yn aros am eich ateb", "Waiting for your reply"),
        ("Wedi'i ddatrys", "Resolved"),
    ):
        assert welsh in cases and english not in cases
    assert_welsh(resident_client.get("/my/data/", **WELSH), "Fy nata")
    assert_welsh(resident_client.get("/my/contact/", **WELSH), "Manylion cyswllt")
