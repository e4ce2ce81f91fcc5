"""Sharing a campaign: the preview image a chat shows for its link, and plain share links.

Everything here is pure. Share links are ordinary addresses of the services (no script, button or pixel of
theirs is ever loaded): nothing reaches them until a supporter chooses to follow one.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from mailer.errors import N_, MailerError

#: WhatsApp drops previews of larger images; Facebook and X accept far more.
MAX_IMAGE_BYTES = 600_000
#: Facebook's smallest preview image; 1200 x 630 is what every service shows best.
MIN_IMAGE_SIDE = 200
MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg"}


class ImageProblem(MailerError):
    """A share image is refused; the caller names the file."""


@dataclass(frozen=True)
class ShareImage:
    """A campaign's preview image for one locale ("" for every locale without one of its own)."""

    locale: str
    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def check_image(data: bytes, media_type: str) -> tuple[int, int]:
    """The image's width and height, or ImageProblem when a chat would not show it."""
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageProblem(
            N_("the image is %(size)d bytes; chats show previews of at most %(max)d"),
            size=len(data),
            max=MAX_IMAGE_BYTES,
        )
    size = _png_size(data) if media_type == "image/png" else _jpeg_size(data)
    if size is None:
        raise ImageProblem(N_("the file is not the image its name says (%(type)s)"), type=media_type)
    width, height = size
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ImageProblem(
            N_("the image is %(width)d x %(height)d pixels; previews need at least %(min)d on each side"),
            width=width,
            height=height,
            min=MIN_IMAGE_SIDE,
        )
    return width, height


def _png_size(data: bytes) -> tuple[int, int] | None:
    # The signature, then the IHDR chunk: length, type, width, height.
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR" or len(data) < 24:
        return None
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    # Walk the segments to the first start-of-frame marker (SOF0-SOF15 but DHT, JPG and DAC).
    if data[:2] != b"\xff\xd8":
        return None
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        length = struct.unpack(">H", data[at + 2 : at + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return int(width), int(height)
        at += 2 + length
    return None


@dataclass(frozen=True)
class ShareLink:
    service: str  # a brand name, written as the service writes it, or "email"
    href: str


def share_links(url: str, text: str, title: str) -> list[ShareLink]:
    """Links that open each service with the page's address and a line in the supporter's language."""
    line = f"{text}\n{url}"
    return [
        ShareLink("WhatsApp", "https://wa.me/?" + urlencode({"text": line}, quote_via=quote)),
        ShareLink(
            "Telegram", "https://t.me/share/url?" + urlencode({"url": url, "text": text}, quote_via=quote)
        ),
        ShareLink(
            "Facebook", "https://www.facebook.com/sharer/sharer.php?" + urlencode({"u": url}, quote_via=quote)
        ),
        ShareLink("X", "https://x.com/intent/post?" + urlencode({"text": text, "url": url}, quote_via=quote)),
        ShareLink(
            "email", "mailto:?" + urlencode({"subject": title, "body": f"{text}\n\n{url}"}, quote_via=quote)
        ),
    ]
