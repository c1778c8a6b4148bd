"""Driving the portal the way a browser does, with the Flask test client: follow redirects, sign in
on the authorization server's page, choose a record."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

PASSWORD = "correct horse battery staple"


def relative(location: str) -> str:
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def follow(client, response, limit: int = 10):
    for _ in range(limit):
        if response.status_code not in (301, 302, 303):
            return response
        response = client.get(relative(response.headers["Location"]))
    raise AssertionError("too many redirects")


def form(html: str, marker: str = "") -> tuple[str, dict]:
    """The action and hidden fields of the first form (after ``marker`` in the page)."""
    html = html[html.index(marker):] if marker else html
    action = re.search(r'<form method="post" action="([^"]*)"', html).group(1).replace("&amp;", "&")
    end = html.index("</form>")
    hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', html[:end]))
    return action, hidden


def sign_in(client, username: str, password: str = PASSWORD, *, patient: str | None = None,
            user_agent: str | None = None):
    """Sign in to the portal from scratch; the page it lands on (the summary)."""
    page = follow(client, client.get("/portal/signin"))
    html = page.get_data(as_text=True)
    if 'name="step" value="login"' in html:
        action, fields = form(html)
        headers = {"User-Agent": user_agent} if user_agent else {}
        page = client.post(action, data={**fields, "username": username, "password": password}, headers=headers)
        html = page.get_data(as_text=True)
    if page.status_code == 200 and "Whose record" in html:
        action, fields = form(html)
        chosen = patient or re.search(r'name="patient" value="([^"]+)"', html).group(1)
        page = client.post(action, data={**fields, "patient": chosen, "decision": "allow"})
    return follow(client, page)


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))
