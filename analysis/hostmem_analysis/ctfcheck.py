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

It also names each trace (the metadata's UUID and its streams), so the same
trace given twice is read once.

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
    r"uint64_t\s+packet_size;")
_UUID_TEXT = re.compile(r'\buuid\s*=\s*"([0-9a-fA-F-]{36})"')


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
    (equal for two copies of one trace)."""

    def __init__(self, path):
        self.path = path
        self.read_dir = path
        self.damage = []
        self.key = None
        self.uuid = None
        self._tmp = None

    def cleanup(self):
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


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


def _check_stream(path, uuid_bytes):
    """(bytes of whole packets from the start, Damage or None)."""
    size = os.path.getsize(path)
    off = 0
    need = _PACKET.size
    with open(path, "rb") as f:
        while off < size:
            f.seek(off)
            head = f.read(need)
            if len(head) < need:
                return off, Damage(path, off, "stream cut mid-packet at byte %d (%d bytes of a "
                                   "packet header)" % (off, len(head)))
            magic, uuid, _, _, _, _, content, psize = _PACKET.unpack(head)
            if magic != CTF_MAGIC or (uuid_bytes and uuid != uuid_bytes):
                return off, Damage(path, off, "garbage after byte %d (%d bytes that are not a "
                                   "packet of this trace)" % (off, size - off))
            if psize == 0 or psize % 8 or content > psize or content < need * 8:
                return off, Damage(path, off, "damaged packet header at byte %d" % off)
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


def identify(trace_dir):
    """The identity of a trace (metadata UUID and stream names), or None."""
    try:
        text, _ = _read_metadata(os.path.join(trace_dir, "metadata"))
    except OSError:
        return None, None
    m = _UUID_TEXT.search(text)
    if not m:
        return None, None
    uuid = m.group(1).lower()
    return (uuid, tuple(sorted(os.path.basename(s) for s in _stream_files(trace_dir)))), uuid


def check(trace_dir):
    """Check one trace directory (one holding `metadata`); returns Checked."""
    c = Checked(trace_dir)
    meta = os.path.join(trace_dir, "metadata")
    text, meta_damage = _read_metadata(meta)
    m = _UUID_TEXT.search(text)
    c.uuid = m.group(1).lower() if m else None
    uuid_bytes = bytes.fromhex(c.uuid.replace("-", "")) if c.uuid else b""
    streams = _stream_files(trace_dir)
    c.key = (c.uuid, tuple(sorted(os.path.basename(s) for s in streams))) if c.uuid else None
    if meta_damage:
        c.damage.append(meta_damage)
    cuts = {}
    if _HEADER_TEXT.search(text) and _CONTEXT_TEXT.search(text):
        for s in streams:
            good, dmg = _check_stream(s, uuid_bytes)
            if dmg:
                c.damage.append(dmg)
                cuts[s] = good
                continue
            dmg = _check_index(s, good)
            if dmg:
                # Whole packets only: nothing to repair, but events are gone.
                c.damage.append(dmg)
    if not c.damage:
        return c
    # The repaired view: what is whole, nothing else.
    c._tmp = tempfile.mkdtemp(prefix="hostmem-repaired-")
    view = os.path.join(c._tmp, os.path.basename(trace_dir.rstrip("/")) or "trace")
    os.makedirs(view)
    if meta_damage:
        with open(os.path.join(view, "metadata"), "w") as f:
            f.write(text if text.startswith("/* CTF") else "/* CTF 1.8 */\n" + text)
    else:
        os.symlink(os.path.abspath(meta), os.path.join(view, "metadata"))
    for s in streams:
        dst = os.path.join(view, os.path.basename(s))
        if s not in cuts:
            os.symlink(os.path.abspath(s), dst)
        elif cuts[s] > 0:
            with open(s, "rb") as fi, open(dst, "wb") as fo:
                left = cuts[s]
                while left:
                    chunk = fi.read(min(left, 1 << 22))
                    if not chunk:
                        break
                    fo.write(chunk)
                    left -= len(chunk)
    c.read_dir = view
    return c
