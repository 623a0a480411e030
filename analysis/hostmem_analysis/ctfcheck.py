"""Find damage in a CTF trace before the decoder meets it (R4).

babeltrace2 gives up on a whole trace when one stream ends in the middle of
a packet, carries garbage after its last packet, or when the metadata is
cut: nothing of what came before reaches the analysis.  This module walks
the packets of every stream file (headers only, no events) and the metadata
packets, and when it finds damage it builds a repaired view of the trace in
a temporary directory: intact files linked, a damaged stream cut at its last
whole packet, a cut metadata closed at its last whole declaration.  The
analysis then reads everything before the damage and says, per file, what
was left out.

A stream cut exactly at a packet boundary looks whole to the packet walk;
the index lttng writes beside it (`index/NAME.idx`, one entry per packet)
still lists the packets that are gone, so it is compared with the file.

It also names each trace (the metadata's UUID and environment), so the same
trace given twice is read once, even when a copy lacks some of its streams
or has them damaged: per file (the metadata, each stream by its name), the
copy with more whole packets is read, the undamaged one on a tie.

Only LTTng-UST's packet layout is checked (the packet header and context of
lttng-ust 2.x, verified against the metadata text); a trace with another
layout is handed to the decoder as it is.
"""

import os
import re
import shutil
import struct
import tempfile

CTF_MAGIC = 0xC1FC1FC1
METADATA_MAGIC = 0x75D11D57
_METADATA_HEADER = struct.Struct("<I16sIIIBBBBB")  # 37 bytes
# lttng-ust's packet header (magic, uuid[16], stream_id, stream_instance_id)
# and the start of its packet context (timestamp_begin, timestamp_end,
# content_size, packet_size): sizes in bits.
_PACKET = struct.Struct("<I16sIQQQQQ")
# lttng's packet index (CTF index 1.x, big-endian): magic, major, minor,
# entry length; then per packet offset (bytes), packet_size and content_size
# (bits), ... (entry length bytes each).
INDEX_MAGIC = 0xC1F1DCC1
_INDEX_HEADER = struct.Struct(">IIII")
_INDEX_ENTRY = struct.Struct(">QQ")
_HEADER_TEXT = re.compile(
    r"packet\.header\s*:=\s*struct\s*\{\s*uint32_t\s+magic;\s*uint8_t\s+uuid\[16\];\s*"
    r"uint32_t\s+stream_id;\s*uint64_t\s+stream_instance_id;\s*\}")
_CONTEXT_TEXT = re.compile(
    r"struct\s+packet_context\s*\{\s*uint64_clock_monotonic_t\s+timestamp_begin;\s*"
    r"uint64_clock_monotonic_t\s+timestamp_end;\s*uint64_t\s+content_size;\s*"
    r"uint64_t\s+packet_size;(\s*uint64_t\s+packet_seq_num;)?")
_SEQ = struct.Struct("<Q")  # packet_seq_num, right after packet_size when the context has it
_UUID_TEXT = re.compile(r'\buuid\s*=\s*"([0-9a-fA-F-]{36})"')
_ENV_TEXT = re.compile(r'\b(hostname|trace_name|trace_creation_datetime|tracer_buffering_scheme|'
                       r'tracer_buffering_id|architecture_bit_width|vpid)\s*=\s*("[^"]*"|\d+)\s*;')


class Damage:
    """What is wrong with one file, in one line."""

    def __init__(self, path, offset, what):
        self.path, self.offset, self.what = path, offset, what

    def __str__(self):
        return "%s: %s" % (self.path, self.what)


class Checked:
    """One trace directory after the check.

    ``read_dir``: the directory to decode (the trace itself, or a repaired
    view of it); ``damage``: list of Damage; ``key``: identity of the trace
    (equal for every copy of one trace, complete or not).  Several copies
    of one trace are read as one: per file, the most complete copy."""

    def __init__(self, path):
        self.path = path
        self.read_dir = path
        self.damage = []
        self.key = None
        self.uuid = None
        self._tmp = None
        self.files = {}      # file name -> _File: the copy of it to read
        self.copies = [path]  # the directories holding this trace, in the order given
        self.text = {}       # copy -> its metadata text
        self.others = []     # the _File of the copies joined

    def cleanup(self):
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def join(self, other):
        """Take `other` (a Checked copy of the same trace) in: per file, the
        more complete of the two copies is read."""
        self.copies.append(other.path)
        self.text.update(other.text)
        self.others.extend(other.files.values())
        for name, f in other.files.items():
            mine = self.files.get(name)
            if mine is None or f.rank() > mine.rank():
                self.files[name] = f

    def _used(self):
        """{copy: [file names read from it]}, in the order the copies came."""
        used = {d: [] for d in self.copies}
        for name in sorted(self.files):
            used[self.files[name].owner].append(name)
        return used

    def duplicates(self):
        """One line per copy of this trace beyond the one it is named after:
        which copy is read, and what of each other copy (if anything)."""
        if len(self.copies) < 2:
            return []
        used = self._used()
        # Named after the copy most of what is read comes from (ties: the first given).
        main = max(self.copies, key=lambda d: sum(self.files[n].good for n in used[d]))
        for f in self.others + list(self.files.values()):
            # A file as complete in that copy as the one chosen: from that copy.
            if f.owner == main and f.rank() == self.files[os.path.basename(f.path)].rank():
                self.files[os.path.basename(f.path)] = f
        used = self._used()
        self.path = main
        out = []
        for d in self.copies:
            if d == main:
                continue
            what = "%s: the same trace as %s (uuid %s), read once" % (d, main, self.uuid)
            if used[d]:
                what += "; from this copy, the more complete: %s" % ", ".join(used[d])
            else:
                what += "; this copy is ignored"
            out.append(what)
        return out

    def build(self):
        """Make the view to read (the trace itself when it is one undamaged
        copy); returns the damage of the files read."""
        self.damage = [f.damage for _, f in sorted(self.files.items()) if f.damage]
        if len(self.copies) == 1 and not self.damage:
            self.read_dir = self.path
            return self.damage
        self._tmp = tempfile.mkdtemp(prefix="hostmem-repaired-")
        view = os.path.join(self._tmp, os.path.basename(self.path.rstrip("/")) or "trace")
        os.makedirs(view)
        meta = self.files["metadata"]
        if meta.damage:
            text = self.text[meta.owner]
            with open(os.path.join(view, "metadata"), "w") as f:
                f.write(text if text.startswith("/* CTF") else "/* CTF 1.8 */\n" + text)
        else:
            os.symlink(os.path.abspath(meta.path), os.path.join(view, "metadata"))
        for name, s in sorted(self.files.items()):
            if name == "metadata":
                continue
            dst = os.path.join(view, name)
            if s.good >= os.path.getsize(s.path):  # whole (or cut at a packet boundary)
                os.symlink(os.path.abspath(s.path), dst)
            elif s.good > 0:
                with open(s.path, "rb") as fi, open(dst, "wb") as fo:
                    left = s.good
                    while left:
                        chunk = fi.read(min(left, 1 << 22))
                        if not chunk:
                            break
                        fo.write(chunk)
                        left -= len(chunk)
        self.read_dir = view
        return self.damage


def _read_metadata(path):
    """(text, damage or None) of a metadata file, packetized or plain."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) >= 4 and struct.unpack_from("<I", data)[0] == METADATA_MAGIC:
        parts, off, damage = [], 0, None
        hs = _METADATA_HEADER.size
        while off < len(data):
            if len(data) - off < hs:
                damage = Damage(path, off, "metadata cut at byte %d (in a packet header)" % off)
                break
            magic, _, _, content, size, *_ = _METADATA_HEADER.unpack_from(data, off)
            if magic != METADATA_MAGIC or size < content or content < hs * 8 or size == 0:
                damage = Damage(path, off, "metadata damaged at byte %d (bad packet header)" % off)
                break
            end = off + size // 8
            if end > len(data):
                # Keep the text this packet still has: the repair below closes it.
                parts.append(data[off + hs:min(len(data), off + content // 8)])
                damage = Damage(path, off, "metadata cut at byte %d (packet of %d bytes, %d present)"
                                % (len(data), size // 8, len(data) - off))
                break
            parts.append(data[off + hs:off + content // 8])
            off = end
        text = b"".join(parts).decode("utf-8", "replace")
    else:
        text = data.decode("utf-8", "replace")
        damage = None
    # A declaration cut in the middle: keep up to the last whole top-level one.
    stripped = text.rstrip()
    if not stripped.endswith("};"):
        cut = text.rfind("\n};")
        if damage is None:
            damage = Damage(path, len(data), "metadata cut at byte %d (in a declaration)" % len(data))
        text = text[:cut + 3] + "\n" if cut >= 0 else ""
    return text, damage


def _stream_files(trace_dir):
    out = []
    for name in sorted(os.listdir(trace_dir)):
        p = os.path.join(trace_dir, name)
        if name == "metadata" or name.startswith(".") or not os.path.isfile(p):
            continue
        out.append(p)
    return out


def _check_stream(path, uuid_bytes, has_seq=False):
    """(bytes of whole packets from the start, Damage or None).  `has_seq`:
    the packet context has packet_seq_num after packet_size; a packet whose
    number does not follow the one before (a packet repeated or from
    elsewhere) is damage: the stream is read up to it."""
    size = os.path.getsize(path)
    off = 0
    need = _PACKET.size + (_SEQ.size if has_seq else 0)
    last = None
    with open(path, "rb") as f:
        while off < size:
            f.seek(off)
            head = f.read(need)
            if len(head) < need:
                return off, Damage(path, off, "stream cut mid-packet at byte %d (%d bytes of a "
                                   "packet header)" % (off, len(head)))
            magic, uuid, _, _, _, _, content, psize = _PACKET.unpack_from(head)
            if magic != CTF_MAGIC or (uuid_bytes and uuid != uuid_bytes):
                return off, Damage(path, off, "garbage after byte %d (%d bytes that are not a "
                                   "packet of this trace)" % (off, size - off))
            if psize == 0 or psize % 8 or content > psize or content < need * 8:
                return off, Damage(path, off, "damaged packet header at byte %d" % off)
            if has_seq:
                (seq,) = _SEQ.unpack_from(head, _PACKET.size)
                if last is not None and seq <= last:
                    return off, Damage(path, off, "packet at byte %d out of sequence (packet "
                                       "number %d after %d: a packet repeated or from elsewhere; "
                                       "%d bytes left out)" % (off, seq, last, size - off))
                last = seq
            end = off + psize // 8
            if end > size:
                return off, Damage(path, off, "stream cut mid-packet at byte %d (packet at byte %d "
                                   "has %d of its %d bytes)" % (size, off, size - off, psize // 8))
            off = end
    return off, None


def _check_index(path, whole):
    """Damage when the stream's index lists packets past `whole` (the bytes
    of whole packets the file holds), or None.  No index, or one that cannot
    be read: nothing to say."""
    idx = os.path.join(os.path.dirname(path), "index", os.path.basename(path) + ".idx")
    try:
        with open(idx, "rb") as f:
            data = f.read()
    except OSError:
        return None
    if len(data) < _INDEX_HEADER.size:
        return None
    magic, _, _, entry = _INDEX_HEADER.unpack_from(data)
    if magic != INDEX_MAGIC or entry < _INDEX_ENTRY.size:
        return None
    listed, end = 0, 0
    for off in range(_INDEX_HEADER.size, len(data) - entry + 1, entry):
        offset, bits = _INDEX_ENTRY.unpack_from(data, off)
        listed += 1
        end = max(end, offset + bits // 8)
    if end <= whole:
        return None
    return Damage(path, whole, "stream cut at byte %d, at a packet boundary (its index lists %d "
                  "packets, up to byte %d)" % (whole, listed, end))


def _identity(text):
    """(key, uuid) of a trace from its metadata text, or (None, None): the
    trace's UUID with its environment (host, session, buffers), equal for
    every copy of one trace, whichever of its streams a copy holds."""
    m = _UUID_TEXT.search(text)
    if not m:
        return None, None
    uuid = m.group(1).lower()
    return (uuid,) + tuple(sorted(_ENV_TEXT.findall(text))), uuid


def identify(trace_dir):
    """The identity of a trace (metadata UUID and environment), or (None, None)."""
    try:
        text, _ = _read_metadata(os.path.join(trace_dir, "metadata"))
    except OSError:
        return None, None
    return _identity(text)


class _File:
    """One file of a trace as a copy holds it: `good` bytes usable (whole
    packets; the metadata's text length), `damage` (Damage or None)."""

    def __init__(self, owner, path, good, damage):
        self.owner, self.path, self.good, self.damage = owner, path, good, damage

    def rank(self):
        # The copy with more to read; on a tie, the undamaged one.
        return (self.good, self.damage is None)


def check(trace_dir):
    """Check one trace directory (one holding `metadata`); returns Checked.
    Further copies of the same trace join it with Checked.join(); then
    Checked.build() makes the view to read."""
    c = Checked(trace_dir)
    meta = os.path.join(trace_dir, "metadata")
    text, meta_damage = _read_metadata(meta)
    c.key, c.uuid = _identity(text)
    c.files["metadata"] = _File(trace_dir, meta, len(text), meta_damage)
    c.text = {trace_dir: text}
    uuid_bytes = bytes.fromhex(c.uuid.replace("-", "")) if c.uuid else b""
    walk = _HEADER_TEXT.search(text) and _CONTEXT_TEXT.search(text)
    has_seq = bool(walk and walk.group(1)) if walk else False
    for s in _stream_files(trace_dir):
        name = os.path.basename(s)
        if not walk:
            c.files[name] = _File(trace_dir, s, os.path.getsize(s), None)
            continue
        good, dmg = _check_stream(s, uuid_bytes, has_seq)
        if not dmg:
            # Whole packets only: nothing to repair, but events may be gone.
            dmg = _check_index(s, good)
        c.files[name] = _File(trace_dir, s, good, dmg)
    return c


