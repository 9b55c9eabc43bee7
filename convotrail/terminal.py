"""Untrusted text made safe for a terminal.

Events come from anyone who can write to the topic; a NUL, an ESC sequence (clear
the screen, set the window title, fake a prompt), a bidi override or a lone
surrogate in an id or a subject must reach the operator's terminal as visible
escapes, never as control. Every command that echoes event data or input lines
goes through here.
"""

from __future__ import annotations


def _escape_char(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str, keep: str = "") -> str:
    """`text` with every non-printable character (but those in `keep`) escaped as
    \\xNN, \\uNNNN or \\UNNNNNNNN; lone surrogates included."""
    if text.isprintable() and text.isascii():
        return text
    return "".join(
        char if char in keep or (char.isprintable() and not _surrogate(char))
        else _escape_char(char)
        for char in text
    )  # fmt: skip


def escape_json(text: str) -> str:
    """JSON text with non-printable characters inside strings written as JSON escapes
    (\\uNNNN, surrogate pairs beyond the BMP), so it stays valid JSON. The newlines of
    indentation are kept; newlines inside strings are escaped by json already."""
    if text.isascii() and all(char == "\n" or char.isprintable() for char in text):
        return text
    out = []
    for char in text:
        if char == "\n" or (char.isprintable() and not _surrogate(char)):
            out.append(char)
            continue
        code = ord(char)
        if code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    return "".join(out)


def _surrogate(char: str) -> bool:
    return 0xD800 <= ord(char) <= 0xDFFF
