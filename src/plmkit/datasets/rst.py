"""reStructuredText → plain prose sentences, for the pre-training corpus.

BERT's corpus keeps "only text passages and ignore[s] lists, tables, and headers"; this module
does the same to the Python documentation sources: it drops titles, tables, code (``::`` literal
blocks, ``>>>`` sessions, code directives), comments and link targets; it keeps the prose inside
admonitions and API descriptions (``.. note::``, ``.. function::`` bodies) and list items; and it
unwraps inline markup (``:func:`len``` → ``len``, ```text <url>`_`` → ``text``, ``**x**`` → ``x``).
"""

from __future__ import annotations

import re

# Directives whose indented body is prose worth keeping (the directive line itself is dropped).
PROSE_DIRECTIVES = frozenset({
    "note", "warning", "tip", "important", "attention", "caution", "danger", "error", "hint",
    "admonition", "seealso", "versionadded", "versionchanged", "deprecated", "deprecated-removed",
    "impl-detail", "function", "class", "method", "classmethod", "staticmethod", "attribute",
    "data", "exception", "decorator", "decoratormethod", "describe", "opcode", "cmdoption",
    "option", "envvar", "coroutinefunction", "coroutinemethod", "abstractmethod", "pdbcommand",
    "c:function", "c:member", "c:macro", "c:type", "c:var", "only", "rubric", "topic", "sidebar",
    "availability",
})
# Of those, the ones whose argument (text after ``::``) is itself prose.
ARGUMENT_IS_PROSE = frozenset({
    "note", "warning", "tip", "important", "attention", "caution", "danger", "error", "hint",
    "seealso", "impl-detail", "availability",
})

_DIRECTIVE = re.compile(r"^\.\.\s+([\w:.-]+)::\s*(.*)$")
_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+<>:._])\1{2,}\s*$")
_TABLE_BORDER = re.compile(r"^(\+[-=+]+\+|=+(\s+=+)+)\s*$")
_BULLET = re.compile(r"^([-*+•]|\d+[.)]|#\.|[a-zA-Z][.)])\s+(?=\S)")
_FIELD = re.compile(r"^:[^:`]+:(\s+|$)")

_ROLE_WITH_TARGET = re.compile(r":[\w:.+-]+:`([^`<]*?)\s*<[^`>]*>`")
_ROLE = re.compile(r":([\w:.+-]+):`([^`]*)`")
_LINK_WITH_TARGET = re.compile(r"`([^`<]+?)\s*<[^`>]*>`__?")
_LINK = re.compile(r"`([^`]+)`__?")
_LITERAL = re.compile(r"``(.+?)``")
_INTERPRETED = re.compile(r"`([^`]+)`")
_STRONG = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_EMPHASIS = re.compile(r"(?<![\w*])\*(\S(?:.*?\S)?)\*(?![\w*])")
_FOOTNOTE_REF = re.compile(r"\s*\[(#[\w-]*|\d+|\*)\]_\s?")
_SUBSTITUTION = re.compile(r"\|([^|\s][^|]*)\|")

ABBREVIATIONS = frozenset({
    "e.g", "i.e", "etc", "vs", "cf", "mr", "mrs", "ms", "dr", "prof", "st", "no", "fig",
    "approx", "eg", "ie", "al", "jr", "sr", "inc", "ltd", "co", "resp", "ca", "viz", "ver", "vol",
})
_BOUNDARY = re.compile(r"([.!?])([\"')\]]*)\s+(?=[\"'(\[]?[A-Z0-9])")


def clean_inline(text: str) -> str:
    """Unwrap inline reStructuredText markup, keeping the words a reader would see."""
    text = _FOOTNOTE_REF.sub("", text)
    text = _ROLE_WITH_TARGET.sub(r"\1", text)
    text = _ROLE.sub(_role, text)
    text = _LITERAL.sub(r"\1", text)
    text = _LINK_WITH_TARGET.sub(r"\1", text)
    text = _LINK.sub(r"\1", text)
    text = _INTERPRETED.sub(r"\1", text)
    text = _STRONG.sub(r"\1", text)
    text = _EMPHASIS.sub(r"\1", text)
    text = _SUBSTITUTION.sub(r"\1", text)
    text = text.replace("\\ ", "").replace("\\", "")
    return " ".join(text.split())


def _role(match: re.Match) -> str:
    role, target = match.group(1).lower(), match.group(2)
    if role in ("rfc", "pep"):
        return f"{role.upper()} {target}"
    if role in ("issue", "gh"):
        return f"{'bpo' if role == 'issue' else 'gh'}-{target}"
    return _role_text(target)


def _role_text(target: str) -> str:
    """``~a.b.c`` shows as ``c`` in Sphinx; ``!x`` as ``x``."""
    target = target.lstrip("!")
    if target.startswith("~"):
        return target[1:].rsplit(".", 1)[-1]
    return target


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def rst_paragraphs(text: str) -> list[str]:
    """The prose paragraphs of a reStructuredText document, inline markup removed."""
    paragraphs: list[str] = []
    current: list[str] = []
    current_indent = 0
    skip_deeper_than: int | None = None  # skip blank lines and lines indented more than this
    skip_to_blank = False  # tables and doctest blocks end at the next blank line
    options_deeper_than: int | None = None  # ":option:" lines right after a directive
    in_bullet = False
    continued = False  # a directive line ending in "\\" goes on on the next line

    def flush() -> None:
        if current:
            paragraph = clean_inline(" ".join(current))
            if paragraph:
                paragraphs.append(paragraph)
            current.clear()

    for raw in text.expandtabs(8).splitlines():
        stripped = raw.strip()
        indent = _indent(raw)
        if continued:
            continued = stripped.endswith("\\")
            continue
        if skip_deeper_than is not None:
            if not stripped or indent > skip_deeper_than:
                continue
            skip_deeper_than = None
        if skip_to_blank:
            if stripped:
                continue
            skip_to_blank = False
        if not stripped:
            flush()
            continue
        if options_deeper_than is not None:
            if indent > options_deeper_than and _FIELD.match(stripped):
                continue
            options_deeper_than = None
        directive = _DIRECTIVE.match(stripped)
        if directive:
            flush()
            name, argument = directive.group(1).lower(), directive.group(2)
            continued = argument.endswith("\\")
            if name in PROSE_DIRECTIVES:
                options_deeper_than = indent
                if name in ARGUMENT_IS_PROSE and argument:
                    current.append(argument)
                    current_indent = indent
            else:
                skip_deeper_than = indent
            continue
        if stripped == ".." or stripped.startswith(".. "):  # comment, target, footnote
            flush()
            skip_deeper_than = indent
            continue
        if _TABLE_BORDER.match(stripped):
            flush()
            skip_to_blank = True
            continue
        if _UNDERLINE.match(stripped):  # section title (over/underline) or transition
            if current:
                current.pop()  # the title line: BERT's corpus ignores headers
            flush()
            continue
        if stripped.startswith(">>>"):
            flush()
            skip_to_blank = True
            continue
        # a list starts after a blank line; inside a paragraph "- x" is just a wrapped line
        bullet = _BULLET.match(stripped) if not current or (in_bullet and indent == current_indent) else None
        if bullet:
            flush()
            stripped = stripped[bullet.end():]
            current_indent = indent
            in_bullet = True
        elif current and indent > current_indent and len(current) == 1 and not in_bullet and not current[0].endswith(
                (".", ",", ";", ":")):
            current.clear()  # a definition-list term: drop it, keep its definition
            current_indent = indent
        elif not current:
            current_indent = indent
            in_bullet = False
        stripped = _FIELD.sub("", stripped) if stripped.startswith(":") else stripped
        if stripped.startswith("| "):
            stripped = stripped[2:]
        if stripped.endswith("::"):  # an indented literal block follows
            # "Text::" shows as "Text:"; a detached " ::" shows as nothing.
            expanded = stripped[:-2].rstrip() if stripped.endswith(" ::") else stripped[:-1]
            if expanded:
                current.append(expanded)
            flush()
            skip_deeper_than = current_indent
            continue
        current.append(stripped)
    flush()
    return paragraphs


def split_sentences(paragraph: str) -> list[str]:
    """Split on ``. ! ?`` followed by space and a capital/digit, but not after abbreviations."""
    sentences = []
    start = 0
    for match in _BOUNDARY.finditer(paragraph):
        end = match.end(2)
        before = paragraph[start:match.start(1)].split()
        word = before[-1].lower().lstrip("(\"'") if before else ""
        if match.group(1) == "." and (word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())):
            continue
        sentences.append(paragraph[start:end].strip())
        start = match.end()
    sentences.append(paragraph[start:].strip())
    return [s for s in sentences if s]


def is_prose_sentence(sentence: str, min_words: int = 3) -> bool:
    """Keep sentences with a few words and letters; drop stray symbols and code fragments."""
    words = sentence.split()
    if len(words) < min_words:
        return False
    letters = sum(ch.isalpha() for ch in sentence)
    return letters >= 0.5 * len(sentence.replace(" ", ""))


def rst_sentences(text: str) -> list[str]:
    """One document's sentences, in order, ready for the one-sentence-per-line format."""
    return [s for p in rst_paragraphs(text) for s in split_sentences(p) if is_prose_sentence(s)]
