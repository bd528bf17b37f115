"""Shared fixtures: synthetic exports (never real data) and a byte-level leak scanner."""
from __future__ import annotations

import socket
from pathlib import Path

import pytest

from deidkit import guidelines as gl
from deidkit.synth import SynthExport, make_export


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Rule 4, offline: any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="session")
def guidelines() -> gl.Guidelines:
    g = gl.load()
    gl.register_new_attributes(g)
    return g


@pytest.fixture(scope="session")
def synth_export(tmp_path_factory) -> SynthExport:
    return make_export(tmp_path_factory.mktemp("export") / "PACS EXPORT")


ENCODINGS = ("utf-8", "latin-1", "iso2022_jp", "utf-16-le")


def encodings_of(secret: str) -> set[bytes]:
    out = set()
    for enc in ENCODINGS:
        for variant in {secret, secret.upper(), secret.lower()}:
            try:
                b = variant.encode(enc)
            except UnicodeEncodeError:
                continue
            if enc == "iso2022_jp":  # look for the JIS bytes without the escape sequences
                b = b.replace(b"\x1b$B", b"").replace(b"\x1b(B", b"")
            if len(b) >= 4:
                out.add(b)
    return out


def find_leaks(root: Path, secrets: set[str], skip_pixel_data: bool = False) -> list[str]:
    """Every (file, secret) where a secret's bytes appear in a file under root, or in a path."""
    needles = {s: encodings_of(s) for s in secrets}
    leaks = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        for s in secrets:
            if s.lower() in rel.lower():
                leaks.append(f"path {rel}: {s!r}")
        if not path.is_file():
            continue
        data = path.read_bytes()
        if skip_pixel_data:
            cut = data.rfind(b"\xe0\x7f\x10\x00")
            data = data[:cut] if cut > 0 else data
        for s, forms in needles.items():
            if any(f in data for f in forms):
                leaks.append(f"{rel}: {s!r}")
    return leaks
