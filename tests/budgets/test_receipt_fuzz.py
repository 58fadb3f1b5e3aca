"""Fuzzing receipt uploads (issue 10): whatever file a person sends, the receipt check accepts a real PDF, JPEG or
PNG (by its first bytes, whatever the browser claimed) or refuses it with a message; never any other exception.

The generator takes a `random.Random`, so bench/fuzz_importers.py runs it over 100,000 files; here Hypothesis draws
a few hundred. The check is the form's own: Django's FileField, then `clean_receipt` (size, then `sniff_upload`).
"""

from __future__ import annotations

import random
import types

from django import forms
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http.multipartparser import MultiPartParser
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from budgets.monitoring_views import ReturnForm
from budgets.person_views import RECEIPT_MAX_BYTES, RECEIPT_TYPES, PurchaseForm

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
MAGIC = list(RECEIPT_TYPES)
OTHER_FORMATS = [b"GIF89a", b"PK\x03\x04", b"<html>", b"%!PS-Adobe", b"\x00\x00\x01\x00", b"II*\x00", b"RIFF", b"{"]
CONTENT_TYPES = ["application/pdf", "image/jpeg", "image/png", "text/html", "application/octet-stream", "", "x/\x00"]
NAMES = ["receipt.pdf", "photo.JPG", "scan.png", "", ".", "..", "../../etc/passwd", "a\x00b.pdf", "é" * 300, "a/b\\c"]


def receipt_file(rng: random.Random) -> tuple[bytes, str, str, int | None]:
    """(content, file name, claimed content type, size the upload reports or None): a receipt, or not one."""
    roll = rng.random()
    body = rng.randbytes(rng.randint(0, 512))
    if roll < 0.4:
        data = rng.choice(MAGIC) + body
    elif roll < 0.5:  # the start of a real type, cut short or with one byte wrong
        magic = bytearray(rng.choice(MAGIC))
        if rng.random() < 0.5:
            magic = magic[: rng.randint(0, len(magic) - 1)]
        else:
            magic[rng.randrange(len(magic))] ^= rng.randint(1, 255)
        data = bytes(magic) + body
    elif roll < 0.65:
        data = rng.choice(OTHER_FORMATS) + body
    elif roll < 0.75:
        data = b""
    else:
        data = body
    roll = rng.random()
    if roll < 0.7:
        name = rng.choice(NAMES[:3])
    else:
        name = rng.choice(NAMES) if roll < 0.85 else "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(20))
    content_type = rng.choice(CONTENT_TYPES)
    size = None
    if rng.random() < 0.2:
        size = rng.choice([0, RECEIPT_MAX_BYTES, RECEIPT_MAX_BYTES + 1, rng.randint(0, 2**40)])
    return data, name, content_type, size


def receipt_check(form_class, field: str, data: bytes, name: str, content_type: str, size: int | None):
    """The form's own cleaning for one file field, without the rest of the form (which needs the database)."""
    # Django's request parser keeps only the last part of the name, and drops a file whose name is then empty.
    name = MultiPartParser.sanitize_file_name(None, name)
    upload = SimpleUploadedFile(name, data, content_type=content_type) if name else None
    if upload is not None and size is not None:
        upload.size = size  # what a large upload reports, without making one
    cleaned = form_class.base_fields[field].clean(upload)
    clean = getattr(form_class, f"clean_{field}")
    return clean(types.SimpleNamespace(cleaned_data={field: cleaned}))


def outcome(data: bytes, name: str, content_type: str, size: int | None) -> str:
    """'accepted' or 'refused' through both upload forms; any other exception, or a wrong answer, fails."""
    answers = set()
    for form_class, field in ((PurchaseForm, "receipt"), (ReturnForm, "file")):
        try:
            upload = receipt_check(form_class, field, data, name, content_type, size)
        except forms.ValidationError as exc:
            assert exc.messages and all(isinstance(m, str) and m.strip() for m in exc.messages), exc.messages
            answers.add("refused")
        else:
            assert data and (size is None or 0 < size <= RECEIPT_MAX_BYTES), (data[:16], size)
            magic = next(m for m in MAGIC if data.startswith(m))  # accepted only by what the file is
            assert upload.content_type == RECEIPT_TYPES[magic], upload.content_type
            assert upload.tell() == 0, "the next reader would miss the start of the file"
            answers.add("accepted")
    assert len(answers) == 1, "the two upload forms disagree"
    return answers.pop()


@FUZZ
@given(st.randoms(use_true_random=False).map(receipt_file))
@example((b"%PDF-1.7\n", "r.pdf", "text/html", None))
@example((b"\x89PNG\r\n\x1a", "r.png", "image/png", None))  # one byte short of the PNG signature
@example((b"", "empty.pdf", "application/pdf", None))
@example((b"\xff\xd8\xff", "a\x00b.jpg", "", RECEIPT_MAX_BYTES + 1))
def test_any_receipt_upload_is_accepted_by_what_it_is_or_refused_with_a_message(upload):
    outcome(*upload)


@FUZZ
@given(st.binary(max_size=64), st.text(max_size=40), st.text(max_size=20))
def test_arbitrary_bytes_names_and_content_types(data, name, content_type):
    outcome(data, name, content_type, None)


def test_the_generator_reaches_both_outcomes():
    rng = random.Random(10)
    outcomes = [outcome(*receipt_file(rng)) for _ in range(500)]
    assert 0.2 < outcomes.count("accepted") / len(outcomes) < 0.8


def test_a_pdf_sent_as_an_image_is_kept_as_a_pdf_and_html_is_refused():
    assert outcome(b"%PDF-1.4 receipt", "r.png", "image/png", None) == "accepted"
    upload = receipt_check(PurchaseForm, "receipt", b"%PDF-1.4 receipt", "r.png", "image/png", None)
    assert upload.content_type == "application/pdf"
    assert outcome(b"<html><script>", "r.pdf", "application/pdf", None) == "refused"
