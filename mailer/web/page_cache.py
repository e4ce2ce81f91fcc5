"""What the action page shows every visitor alike, computed once per process instead of once per request.

A campaign shared widely brings a crowd to one page: rendering its Markdown, reading its officials and
counting its letters again for each visitor made it ten times slower than a trivial view. Each process
keeps, per campaign and language, the page's content and share card; an entry is used while the
campaign's texts are those it was built from (asked of the database on every request, in one cheap
look: a coordinator's reload or edit shows at once) and for at most ``ttl`` seconds, after which the
counter and the officials are read again. Only memory of this process, bounded; nothing is shared
between processes, and the visitor's own values (the form's token, the post id) are never kept.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from mailer import campaigns, letters
from mailer.errors import N_, NotFoundError
from mailer.store import Database

#: How long the counter (and the list of officials) may lag behind the database.
COUNTER_TTL = dt.timedelta(seconds=5)
#: Entries kept per process (campaigns x languages); the least recently used goes first.
MAX_ENTRIES = 64


@dataclass(frozen=True)
class PageWithHoles:
    """A rendered page with holes where each visitor's own values go (the form's CSRF token, its post
    id): the page is drawn once, and a request only fills the holes in."""

    parts: tuple[str, ...]  # the text around the holes: one more than ``holes``
    holes: tuple[str, ...]  # the name of each hole, in order

    @classmethod
    def render(cls, names: Sequence[str], draw: Callable[[Mapping[str, str]], str]) -> PageWithHoles:
        """``draw`` renders the page with a marker for each name; markers are letters and digits only,
        so escaping leaves them whole, and random, so no text of the page is one."""
        markers = {f"hole{secrets.token_hex(12)}": name for name in names}
        html = draw({name: marker for marker, name in markers.items()})
        pieces = re.split("(" + "|".join(markers) + ")", html)
        return cls(tuple(pieces[0::2]), tuple(markers[m] for m in pieces[1::2]))

    def fill(self, values: Mapping[str, str]) -> str:
        """The page for one visitor (values already escaped for where they go: tokens are URL-safe)."""
        out = [self.parts[0]]
        for name, part in zip(self.holes, self.parts[1:], strict=True):
            out += (values[name], part)
        return "".join(out)


@dataclass
class SharedPage:
    """One campaign's action page in one language, as every visitor sees it."""

    page: letters.ActionPage
    card: campaigns.ShareCard
    #: The page as a first visitor gets it, drawn by the view on first use (it lives as long as this).
    html: PageWithHoles | None = None


@dataclass(frozen=True)
class _Entry:
    version: frozenset[tuple[object, ...]]
    built_at: dt.datetime
    shared: SharedPage


class ActionPageCache:
    """Per process, in memory: (campaign, language) to its shared page, checked against the campaign's
    texts on every use and rebuilt after ``ttl``."""

    def __init__(
        self,
        db: Database,
        clock: Callable[[], dt.datetime],
        ttl: dt.timedelta = COUNTER_TTL,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self.db = db
        self.clock = clock
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.Lock()  # threaded servers: the dictionary's order is changed under it

    def get(self, slug: str, code: str, greeting_name: str) -> SharedPage:
        """The page of ``slug`` in ``code`` (``greeting_name`` is the same for every visitor of one
        language); NotFoundError, never kept, for a campaign or language that has none."""
        version = campaigns.page_version(self.db, slug)
        if version is None:
            # The repository's own words for it (no new message for the catalogs): the view answers 404.
            raise NotFoundError(
                N_("no campaign '%(slug)s': load it first with `mailer campaign load FOLDER`"), slug=slug
            )
        key = (slug, code)
        now = self.clock()
        with self._lock:
            entry = self._entries.get(key)
            if (
                entry is not None
                and entry.version == version
                and dt.timedelta(0) <= now - entry.built_at < self.ttl
            ):
                self._entries.move_to_end(key)
                return entry.shared
        # Built outside the lock: two threads may both build it, and the second simply replaces the first.
        shared = SharedPage(
            page=letters.action_page(self.db, slug, code, greeting_name),
            card=campaigns.share_card(self.db, slug, code),
        )
        with self._lock:
            self._entries[key] = _Entry(version, now, shared)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return shared
