"""Plain console for people who double-click: where we run, progress, verdict, keep window open.

Both tools use only this module for what a person sees, so both behave alike.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import TextIO


from .contract import KEY_FILE_NAME, PROGRAM_NAMES
from .program import is_frozen, program_dir  # noqa: F401 (used by both command lines)


def kit_files_beside_program() -> set[Path]:
    """The kit's own files in the program's folder: both programs (scripts or executables), a
    one-folder build's _internal/, guideline/settings overrides and a site key placed there.
    Neither tool treats them as part of the export it works on."""
    from .guidelines import GUIDELINE_FILES

    folder = program_dir()
    names = {f"{n}{ext}" for n in PROGRAM_NAMES for ext in ("", ".exe", ".py")}
    names |= {"_internal", "deidkit", KEY_FILE_NAME, *GUIDELINE_FILES}
    found = {folder / n for n in names if (folder / n).exists()}
    if not is_frozen() and (folder / "guidelines" / GUIDELINE_FILES[0]).is_file():
        found.add(folder / "guidelines")  # a script's own tables (a checkout copied in)
    if is_frozen():
        found.add(Path(sys.executable).resolve())
    return found


def is_interactive() -> bool:
    """True when a person is at a terminal; False under scripts, CI, pipes."""
    try:
        return sys.stdin is not None and sys.stdin.isatty() and sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def say(text: str = "", stream: TextIO | None = None) -> None:
    """Print text; every line of it through safe_text.console_text (no escape sequences from data)."""
    from .safe_text import console_text

    stream = stream or sys.stdout
    text = "\n".join(console_text(line) for line in str(text).split("\n"))
    try:
        print(text, file=stream, flush=True)
    except UnicodeEncodeError:  # old Windows consoles: never die on a character
        enc = getattr(stream, "encoding", None) or "ascii"
        print(text.encode(enc, "replace").decode(enc), file=stream, flush=True)


YES_WORDS = ("y", "yes", "j", "ja", "o", "oui", "s", "si")


def confirm(question: str, assume_yes: bool, default: bool = True) -> bool:
    """Ask y/n only when a person is there; scripts and --yes never wait (they answer yes).

    `default` is what pressing Enter means; it is shown in capitals ([Y/n] or [y/N])."""
    if assume_yes or not is_interactive():
        return True
    try:
        answer = input(f"{question} {'[Y/n]' if default else '[y/N]'} ").strip().lower()
    except (EOFError, KeyboardInterrupt):  # Ctrl-D / Ctrl-C at the question: no answer is not a yes
        say("")
        return False
    return default if not answer else answer in YES_WORDS


def pause_before_exit(started_by_double_click: bool) -> None:
    """Keep a double-clicked window open so the verdict can be read."""
    if started_by_double_click and is_interactive() and not os.environ.get("CI"):
        try:
            input("\nPress Enter to close this window.")
        except EOFError:
            pass


def verdict(title: str, lines: list[str], ok: bool) -> None:
    """A framed final verdict: the one thing a person must read."""
    mark = "OK" if ok else "ATTENTION"
    body = [f"{mark}: {title}", *lines]
    width = min(max(len(line) for line in body) + 4, 100)
    columns = _window_columns()
    if columns and columns <= width:  # narrower than the frame: wrap at spaces, not in mid-word
        import textwrap

        width = max(20, columns - 1)
        body = [part for line in body for part in textwrap.wrap(
            line, width - 3, subsequent_indent=" " * (len(line) - len(line.lstrip()) + 2),
            break_long_words=False, break_on_hyphens=False) or [""]]
    say("")
    say("=" * width)
    for line in body:
        say(f"  {line}")
    say("=" * width)


def _window_columns() -> int:
    """The terminal's width in characters, or 0 when it is not a terminal or does not say."""
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns if sys.stdout.isatty() else 0
    except (AttributeError, OSError, ValueError):
        return 0


def unexpected_error(what_to_do: str) -> None:
    """A program error: the traceback (for IT), then one plain line; the caller still pauses,
    so a double-clicked window does not vanish with the message."""
    import traceback

    try:
        traceback.print_exc(file=sys.stderr)
    except Exception:  # noqa: BLE001 (an unprintable traceback must not hide the plain line)
        pass
    error("an unexpected problem stopped the program (the lines above say where)", what_to_do)


def error(message: str, what_to_do: str = "") -> None:
    """Print an ERROR line, and what to do about it, to stderr."""
    say(f"ERROR: {message}", sys.stderr)
    if what_to_do:
        say(f"  What to do: {what_to_do}", sys.stderr)


class Progress:
    """A one-line progress bar on a terminal; sparse plain lines when output is a file or pipe."""

    def __init__(self, total: int, label: str, stream: TextIO | None = None) -> None:
        self.total = max(total, 0)
        self.label = label
        self.done = 0
        self.stream = stream or sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._last_decile = -1
        self._drawn = 0  # length of the line on screen, so a shorter one blanks what is left

    def advance(self, n: int = 1) -> None:
        """Count n more steps done and redraw (terminal: at most every 0.1 s; otherwise every tenth)."""
        self.done += n
        now = time.monotonic()
        if self.tty:
            if now - self._last_draw >= 0.1 or self.done >= self.total:
                self._last_draw = now
                self._draw(now)
        else:
            decile = (10 * self.done // self.total) if self.total else 10
            if decile != self._last_decile and (decile % 2 == 0 or self.done >= self.total):
                self._last_decile = decile
                say(f"{self.label}: {self.done}/{self.total} files", self.stream)

    def _draw(self, now: float) -> None:
        frac = self.done / self.total if self.total else 1.0
        width = 30
        filled = int(width * frac)
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        eta = f"{int(left // 60)}m{int(left % 60):02d}s left" if self.done < self.total else "done"
        line = f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {eta}"
        self.stream.write("\r" + line.ljust(self._drawn))
        self._drawn = max(self._drawn, len(line))
        self.stream.flush()

    def close(self) -> None:
        """Finish the bar (terminal: draw it once more and end the line)."""
        if self.tty:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()
