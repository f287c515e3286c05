"""What the client prints: replies streamed as they arrive, then shown again as Markdown.

Deltas are written to the terminal as they come (no cursor movement while streaming, so nothing
flickers or repeats). When the reply is complete and fits on the screen, the streamed lines are
erased and the reply is printed again rendered as Markdown by rich; a reply taller than the screen
stays as streamed (the lines that scrolled away cannot be erased). With ``--no-color``, ``NO_COLOR``
or output that is not a terminal, replies are plain text and nothing is erased.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.cells import cell_len
from rich.console import Console
from rich.markdown import Markdown
from rich.text import Text


class Output:
    """The terminal (or pipe) the client writes to."""

    def __init__(self, *, color: bool, file: TextIO | None = None) -> None:
        self.file = file or sys.stdout
        self.console = Console(
            file=self.file, no_color=not color, highlight=False, emoji=False, color_system="auto" if color else None
        )
        self.rich = color and self.console.is_terminal
        self._streamed = ""

    def info(self, text: str) -> None:
        """Print a line of the client's own (dim when styled)."""
        self.console.print(Text(text, style="dim" if self.rich else ""), soft_wrap=True)

    def error(self, text: str) -> None:
        """Print one error line (red when styled)."""
        self.console.print(Text(text, style="bold red" if self.rich else ""), soft_wrap=True)

    def reply_start(self, label: str) -> None:
        """Begin a reply: print who answers, on a line of its own."""
        self._streamed = ""
        self.console.print(Text(f"{label}:", style="bold cyan" if self.rich else ""))

    def reply_delta(self, delta: str) -> None:
        """Write one delta as it arrived."""
        self._streamed += delta
        self.file.write(delta)
        self.file.flush()

    def reply_end(self, *, note: str = "") -> None:
        """End the streamed reply: show it as Markdown if it fits on the screen, then the note if any."""
        text = self._streamed
        if self.rich and text.strip() and not note:
            height = self._height(text)
            if height < self.console.size.height:
                # Up to the first streamed line, erase to the end of the screen, print the rendering.
                rows_up = height - 1 + (1 if text.endswith("\n") else 0)
                self.file.write(("\x1b[1A" * rows_up) + "\r\x1b[J")
                self.file.flush()
                self.console.print(Markdown(text))
                self.console.print()
                return
        self.file.write("\n" if text and not text.endswith("\n") else "")
        if note:
            self.info(note)
        self.console.print()

    def markdown(self, text: str) -> None:
        """Print finished text: rendered as Markdown when styled, as it is otherwise."""
        if self.rich:
            self.console.print(Markdown(text))
        else:
            self.file.write(text if text.endswith("\n") else text + "\n")
            self.file.flush()

    def _height(self, text: str) -> int:
        """Return how many terminal rows ``text`` took when written raw (wide CJK characters count twice)."""
        width = max(self.console.size.width, 1)
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return sum(max(1, -(-cell_len(line) // width)) for line in lines) or 1
