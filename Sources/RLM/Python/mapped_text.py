"""A context larger than memory: a UTF-8 text file mapped read-only, never read whole.

Run in the REPL's private scope with the other helpers (repl_support.py); the host binds a
read-only `mmap` of the file and wraps it: `g[name] = MappedText(mapping, "file name")`.
Positions are byte offsets into the file (for ASCII text, character positions). A slice or chunk
edge inside a multi-byte character moves back to the character's first byte, so adjacent slices
neither lose nor repeat a character. Undecodable bytes become U+FFFD.

Embedded in the RLM module at build time (SwiftPM `embedInCode`).
"""
import re as _re

_BLOCK = 1 << 20  # bytes per step of a scan, and per entry of the line index


def _has_border(needle):
    """Whether `needle` can overlap itself (a proper prefix that is also a suffix)."""
    return any(needle[:k] == needle[-k:] for k in range(1, len(needle)))


class MappedMatch:
    """A regex match in a MappedText: positions are byte offsets, groups are str."""

    __slots__ = ("_match",)

    def __init__(self, match):
        self._match = match

    def group(self, *groups):
        value = self._match.group(*groups)
        if isinstance(value, tuple):
            return tuple(None if v is None else v.decode("utf-8", "replace") for v in value)
        return None if value is None else value.decode("utf-8", "replace")

    __getitem__ = group

    def groups(self, default=None):
        return tuple(default if v is None else v.decode("utf-8", "replace") for v in self._match.groups())

    def groupdict(self, default=None):
        return {k: default if v is None else v.decode("utf-8", "replace") for k, v in self._match.groupdict().items()}

    def start(self, group=0):
        return self._match.start(group)

    def end(self, group=0):
        return self._match.end(group)

    def span(self, group=0):
        return self._match.span(group)

    def __repr__(self):
        return "<MappedMatch span=%r match=%r>" % (self.span(), self.group()[:200])


class MappedText:
    """A UTF-8 text file mapped read-only, used like a str without reading all of it.

    len(context), context[a:b] (a str), context.find/rfind/count(s), s in context,
    context.lines(start, count), context.line_count(), context.chunks(size, overlap),
    context.search/finditer/findall(pattern). Positions are byte offsets.
    """

    __slots__ = ("_map", "_view", "_name", "_size", "_line_starts")

    def __init__(self, mapping, name):
        self._map = mapping
        # Slices of the view decode straight from the mapping, with no bytes copy in between.
        self._view = memoryview(mapping)
        self._name = name
        self._size = len(mapping)
        # _line_starts[k]: how many lines start before byte k * _BLOCK (built as needed).
        self._line_starts = [0]

    # -- size and description -------------------------------------------------

    def __len__(self):
        return self._size

    def __repr__(self):
        return ("<MappedText: %d bytes of UTF-8 text mapped from %s; not loaded. Use len(context), "
                "context[a:b], find, rfind, count, lines, line_count, chunks, search, finditer, findall>"
                % (self._size, self._name))

    __str__ = __repr__

    def __getattr__(self, name):
        raise AttributeError(
            "context is a MappedText (%d bytes mapped from %s), not a str, so it has no .%s. Slice it for "
            "a str (context[a:b]), or use find, rfind, count, lines, chunks, search, finditer, findall."
            % (self._size, self._name, name))

    def __iter__(self):
        raise TypeError("iterate over context.chunks(size) or context.lines(start, count), not the whole "
                        "mapped file at once")

    def __bool__(self):
        return self._size > 0

    def __reduce__(self):
        raise TypeError("a mapped context stays in its file and is not saved with the session; "
                        "give the file again as the context")

    # -- slicing --------------------------------------------------------------

    def _boundary(self, position):
        """`position`, moved back to the first byte of the character it falls in."""
        mapping = self._map
        moved = 0
        while 0 < position < self._size and moved < 3 and mapping[position] & 0xC0 == 0x80:
            position -= 1
            moved += 1
        return position

    def _text(self, start, stop):
        return str(self._view[self._boundary(start):self._boundary(stop)], "utf-8", "replace")

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(self._size)
            if step != 1:
                raise ValueError("slices of a mapped context take no step: slice it, then step the str")
            return self._text(start, stop) if stop > start else ""
        if isinstance(key, int):
            if key < 0:
                key += self._size
            if not 0 <= key < self._size:
                raise IndexError("context index out of range (it has %d bytes)" % self._size)
            start = self._boundary(key)
            return self._map[start:start + 4].decode("utf-8", "replace")[:1]
        raise TypeError("context indices must be integers or slices, not %s" % type(key).__name__)

    # -- searching ------------------------------------------------------------

    def _range(self, start, end):
        size = self._size
        start = 0 if start is None else (max(0, start + size) if start < 0 else min(start, size))
        end = size if end is None else (max(0, end + size) if end < 0 else min(end, size))
        return start, end

    @staticmethod
    def _needle(sub):
        if isinstance(sub, str):
            return sub.encode("utf-8")
        if isinstance(sub, (bytes, bytearray)):
            return bytes(sub)
        raise TypeError("must be str, not %s" % type(sub).__name__)

    def find(self, sub, start=None, end=None):
        start, end = self._range(start, end)
        return self._map.find(self._needle(sub), start, end)

    def rfind(self, sub, start=None, end=None):
        start, end = self._range(start, end)
        return self._map.rfind(self._needle(sub), start, end)

    def index(self, sub, start=None, end=None):
        position = self.find(sub, start, end)
        if position < 0:
            raise ValueError("substring not found")
        return position

    def __contains__(self, sub):
        return self.find(sub) >= 0

    def count(self, sub, start=None, end=None):
        """Non-overlapping occurrences, as str.count counts them."""
        needle = self._needle(sub)
        start, end = self._range(start, end)
        if not needle:
            return len(self[start:end]) + 1 if end >= start else 0
        mapping = self._map
        total = 0
        if _has_border(needle):
            position = mapping.find(needle, start, end)
            while position >= 0:
                total += 1
                position = mapping.find(needle, position + len(needle), end)
            return total
        # A needle that cannot overlap itself: count block by block, each block extended by
        # len(needle) - 1 bytes so that a match across its edge is counted once, in its block.
        extra = len(needle) - 1
        for block in range(start, end, _BLOCK):
            total += mapping[block:min(block + _BLOCK + extra, end)].count(needle)
        return total

    def _compiled(self, pattern, flags):
        if isinstance(pattern, _re.Pattern):
            if isinstance(pattern.pattern, str):
                return _re.compile(pattern.pattern.encode("utf-8"), pattern.flags & ~_re.UNICODE)
            return pattern
        if isinstance(pattern, str):
            pattern = pattern.encode("utf-8")
        return _re.compile(pattern, flags)

    def search(self, pattern, start=None, end=None, flags=0):
        """The first match of a regex (str patterns match the UTF-8 bytes; \\w and friends are ASCII)."""
        start, end = self._range(start, end)
        match = self._compiled(pattern, flags).search(self._map, start, end)
        return None if match is None else MappedMatch(match)

    def finditer(self, pattern, start=None, end=None, flags=0):
        start, end = self._range(start, end)
        for match in self._compiled(pattern, flags).finditer(self._map, start, end):
            yield MappedMatch(match)

    def findall(self, pattern, start=None, end=None, flags=0):
        start, end = self._range(start, end)
        found = self._compiled(pattern, flags).findall(self._map, start, end)
        return [tuple(v.decode("utf-8", "replace") for v in item) if isinstance(item, tuple)
                else item.decode("utf-8", "replace") for item in found]

    # -- lines ----------------------------------------------------------------

    def _index_to(self, block):
        """Extends the line index to cover `block`."""
        starts = self._line_starts
        mapping = self._map
        while len(starts) <= block:
            k = len(starts) - 1
            starts.append(starts[k] + mapping[k * _BLOCK:(k + 1) * _BLOCK].count(b"\n"))

    def _line_offset(self, line):
        """The byte offset where line `line` (0-based) starts, or None past the last line."""
        if line == 0:
            return 0 if self._size else None
        starts = self._line_starts
        mapping = self._map
        blocks = (self._size + _BLOCK - 1) // _BLOCK
        # Find the block in which the `line`-th newline falls.
        while starts[-1] < line and len(starts) <= blocks:
            self._index_to(len(starts))
        low, high = 0, len(starts) - 1
        while low < high:
            middle = (low + high + 1) // 2
            if starts[middle] < line:
                low = middle
            else:
                high = middle - 1
        position = low * _BLOCK
        remaining = line - starts[low]
        while remaining:
            position = mapping.find(b"\n", position)
            if position < 0:
                return None
            position += 1
            remaining -= 1
        return position if position < self._size else None

    def lines(self, start=0, count=1):
        """Lines start .. start + count - 1 (0-based), without their line ends."""
        if start < 0 or count < 0:
            raise ValueError("lines(start, count) takes a start and a count of 0 or more")
        position = self._line_offset(start)
        result = []
        mapping = self._map
        while position is not None and len(result) < count:
            newline = mapping.find(b"\n", position)
            stop = self._size if newline < 0 else newline
            line = str(self._view[position:stop], "utf-8", "replace")
            result.append(line[:-1] if line.endswith("\r") else line)
            position = None if newline < 0 or newline + 1 >= self._size else newline + 1
        return result

    def line_count(self):
        """The number of lines (reads the whole file once, then remembers)."""
        blocks = (self._size + _BLOCK - 1) // _BLOCK
        self._index_to(blocks)
        total = self._line_starts[blocks]
        if self._size and self._map[self._size - 1] != 0x0A:
            total += 1
        return total

    def chunks(self, size, overlap=0):
        """Pieces of about `size` bytes that end at a line end (at a character edge when a line is
        longer than `size`); each next piece starts `overlap` bytes before the end of the last,
        at a line start when it can."""
        if not isinstance(size, int) or size < 1:
            raise ValueError("chunks(size) takes a size of at least 1 byte")
        if not isinstance(overlap, int) or not 0 <= overlap < size:
            raise ValueError("chunks(size, overlap) takes an overlap from 0 to size - 1")
        mapping = self._map
        start = 0
        while start < self._size:
            stop = start + size
            if stop >= self._size:
                stop = self._size
            else:
                newline = mapping.rfind(b"\n", start, stop)
                stop = newline + 1 if newline >= 0 else self._boundary(stop)
                if stop <= start:
                    stop = min(self._size, start + size)
            yield str(self._view[start:stop], "utf-8", "replace")
            if stop >= self._size:
                return
            following = stop
            if overlap:
                back = self._boundary(stop - overlap)
                newline = mapping.rfind(b"\n", start, back)
                back = newline + 1 if newline >= 0 and newline + 1 > start else back
                if start < back < stop:
                    following = back
            start = following
