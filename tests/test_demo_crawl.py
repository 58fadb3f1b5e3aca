"""Every role signs in to the seeded demo and follows every link its pages show, and submits each search or
filter form as it stands, as a real user clicking around would: no page answers a server error, and no link
shown to a role leads to a page it may not see.

The demo (`make run`'s data) has every plan state, budgets in every stage of their life, payment runs, statements,
recoveries and reconciliation under way: far more shapes of data than any one test builds.
"""

from __future__ import annotations

import re
from collections import Counter, deque
from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin, urlsplit

import pytest
from django.core.management import call_command

from accounts.demo import DEMO_USERS, demo_email
from accounts.models import User
from accounts.roles import Role
from budgets import demo as budget_demo
from tests.mfa import TwoFactorClient

pytestmark = pytest.mark.django_db

PAGES_PER_ROLE = 300
VARIANTS_PER_PATH = 3  # the same page with other filters or page numbers: a few are enough
# Not pages of the service: the admin site (superusers only), the API and its docs, files, and signing out.
LEFT_OUT = re.compile(r"^/(admin|api|static|media)/|^/sign-out/")
# Ids in paths, so /people/12/ and /people/13/ count as one page shape for VARIANTS_PER_PATH.
ID = re.compile(r"/\d+(?=/)")


class Links(HTMLParser):
    """The page's links, and each search or filter form (method GET) as the URL submitting it unchanged makes."""

    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self._form: tuple[str, list[tuple[str, str]]] | None = None
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])
        elif tag == "form" and (attrs.get("method") or "get").lower() == "get":
            self._form = (attrs.get("action") or "", [])
        elif self._form is None or (not attrs.get("name") and tag != "option"):
            return
        elif tag == "input" and attrs.get("type", "text") not in ("submit", "button", "image", "file"):
            if attrs.get("type") not in ("radio", "checkbox") or "checked" in attrs:
                self._form[1].append((attrs["name"], attrs.get("value") or ""))
        elif tag == "select":
            self._select, self._options = attrs["name"], []
        elif tag == "option" and self._select:
            self._options.append((attrs.get("value") or "", "selected" in attrs))

    def handle_endtag(self, tag):
        if tag == "select" and self._form is not None and self._select:
            chosen = [value for value, selected in self._options if selected] or [v for v, _ in self._options[:1]]
            self._form[1].extend((self._select, value) for value in chosen)
            self._select = None
        elif tag == "form" and self._form is not None:
            action, fields = self._form
            self.hrefs.append(f"{action}?{urlencode(fields)}" if fields else action or "?")
            self._form = None


def links_on(page_url: str, html: str) -> list[str]:
    parser = Links()
    parser.feed(html)
    found = []
    for href in parser.hrefs:
        url = urljoin(page_url, href)
        parts = urlsplit(url)
        if parts.scheme not in ("", "http") or parts.netloc not in ("", "testserver"):
            continue  # another site, mailto: or tel:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        if parts.path.startswith("/") and not LEFT_OUT.match(parts.path):
            found.append(path)
    return found


def crawl(client: TwoFactorClient, start: str) -> tuple[dict[str, int | str], dict[str, str]]:
    """Breadth first from `start`: each page's status, and for each page the page that linked to it first."""
    statuses: dict[str, int | str] = {}
    linked_from: dict[str, str] = {start: "(start)"}
    shapes: Counter[str] = Counter()
    queue = deque([start])
    while queue and len(statuses) < PAGES_PER_ROLE:
        url = queue.popleft()
        response = client.get(url, follow=True)
        statuses[url] = response.status_code
        content_type = response.get("Content-Type", "")
        if response.status_code != 200 or not content_type.startswith("text/html"):
            continue
        final = response.redirect_chain[-1][0] if response.redirect_chain else url
        if ">---------<" in response.content.decode():  # Django's empty choice, never shown as it is
            statuses[url] = "shows ---------"
        for link in links_on(final, response.content.decode()):
            shape = ID.sub("/<id>", link.split("?")[0]) + ("?" if "?" in link else "")
            if link in linked_from or shapes[shape] >= VARIANTS_PER_PATH:
                continue
            shapes[shape] += 1
            linked_from[link] = url
            queue.append(link)
    return statuses, linked_from


def test_every_link_each_role_is_shown_on_the_demo_works(tmp_path, monkeypatch):
    monkeypatch.setattr(budget_demo, "STATEMENT_DIR", tmp_path)
    call_command("seed_demo", "--people", "30")  # enough for live budgets behind the patient's pages
    broken, reached = {}, {}
    for role, local_part, _name, _org in DEMO_USERS:
        client = TwoFactorClient()
        client.force_login(User.objects.get(email=demo_email(local_part)))
        statuses, linked_from = crawl(client, "/dashboard/")
        reached[role] = len(statuses)
        for url, status in statuses.items():
            if status != 200:
                broken.setdefault(role.value, []).append((url, status, f"found on {linked_from[url]}"))
    assert not broken, f"links that do not work: {broken}"
    assert min(reached.values()) >= 8, reached  # every crawl really went somewhere
    assert reached[Role.PATIENT] >= 10 and reached[Role.FINANCE_OFFICER] >= 50, reached
