#!/usr/bin/env python3
"""model.py -- the model half of t4000-model.sh (standard library only).

Two Maildir++ trees, DIR/a and DIR/b, get random changes; msync syncs
them; this script predicts, from its own reading of docs/SYNC.md, what
both trees must hold afterwards, and compares.  It never looks at
msync's state file or indexes: it keeps its own base (what both sides
had after the last sync, per message identity).

  model.py init  STATE --mode MODE --seed SEED --dir DIR
        make DIR/a and DIR/b with the set-up content (round 0)
  model.py ops   STATE [--none]
        one round of random changes on both sides (applied to disk);
        the expected result of the next sync is computed now and saved
  model.py check STATE
        compare both trees with the expected result; on success the
        result becomes the new base
  model.py summary STATE
        the syncs checked, the operations and the rules exercised

MODE is twoway (msync A B), backup (--backup SRC DST) or oneway
(--one-way SRC DST); in the last two, a is SRC and b is DST.

Identity, as in SYNC.md: a mailbox is its GUID, so a folder renamed
(with mv) is the same mailbox and a folder made with mkdir a new one; a
message is its file's base name in its folder (a flag change keeps it;
a move to another folder is a new message there).  Content identity is
the MD5 of the content with CRLF turned into LF.  (A read-only SRC's
folders are known by their directory's identity, so a folder renamed
there is the same mailbox too.)

The random changes avoid what SYNC.md leaves open or resolves by a
note and a later run (see gen_round and model_sync, which raise
Ambiguous and make the round be drawn again): one folder operation per
folder per round, fresh folder names, no message touched twice in a
round, and no duplicates whose pairing the model cannot know.
"""

import argparse
import copy
import hashlib
import json
import os
import random
import shutil
import sys
from collections import Counter, defaultdict

FLAGS = "DFPRST"
SIDES = ("a", "b")
MODES = ("twoway", "backup", "oneway")


class Ambiguous(Exception):
    """The round leaves the outcome open (or to a later run): draw again."""


# ---------------------------------------------------------------------
# Messages


def message(c, crlf=False):
    """The bytes of content number c (unique per c)."""
    day = c % 28 + 1
    mm = c % 60
    lines = [
        "Return-Path: <alice@example.org>",
        "Received: from mail.example.org (mail.example.org [192.0.2.1])",
        "\tby mx.example.net with ESMTPS id model%d" % c,
        "\tfor <bob@example.net>; Mon, %d Jan 2024 10:%02d:00 +0000"
        % (day, mm),
        "From: Alice Example <alice@example.org>",
        "To: Bob Example <bob@example.net>",
        "Subject: model message %d" % c,
        "Date: Mon, %d Jan 2024 10:%02d:00 +0000" % (day, mm),
        "Message-ID: <model.%d.msync-test@example.org>" % c,
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "Hello Bob,",
        "",
        "this is model message number %d." % c,
        "From the line above, nothing special." + " padding" * (c % 9),
        "",
        "-- ",
        "Alice",
        "",
    ]
    eol = "\r\n" if crlf else "\n"
    return eol.join(lines).encode()


def digest(data):
    return hashlib.md5(data.replace(b"\r\n", b"\n")).hexdigest()


_md5_to_c = {}


def content_of(md5, upto):
    """The content number whose digest is md5, or None."""
    if md5 in _md5_to_c:
        return _md5_to_c[md5]
    for c in range(1, upto + 1):
        _md5_to_c.setdefault(digest(message(c)), c)
    return _md5_to_c.get(md5)


def sort_flags(f):
    return "".join(sorted(set(f)))


# ---------------------------------------------------------------------
# State
#
# st = {
#   mode, seed, round, n (id counter), dir,
#   sides: [side_a, side_b], side = {
#     folders: {fid: {name, guid}},
#     items:   {iid: {fid, c, flags, sub, fname}}   (sub "new"/"cur";
#              fname the file name; both None for an expected copy)
#   },
#   base: {guid: {name, entries: {eid: {c, f: [fa, fb], i: [ia, ib]}}}}
#          (i[s] None: a tombstone, no message on side s)
#   expect: None, or {sides, base, src_files}
#   stats: {op: count}, log: [lines]
# }


def new_id(st, prefix):
    st["n"] += 1
    return "%s%d" % (prefix, st["n"])


def new_content(st):
    st["nc"] += 1
    return st["nc"]


def folder_dir(name):
    if name == "INBOX":
        return ""
    return "." + name.replace("/", ".")


def item_relpath(side, it):
    d = folder_dir(side["folders"][it["fid"]]["name"])
    p = "%s/%s" % (it["sub"], it["fname"])
    return "%s/%s" % (d, p) if d else p


def basename(fname):
    return fname.split(":", 1)[0]


def folder_by_name(side, name):
    for fid, f in side["folders"].items():
        if f["name"] == name:
            return fid
    return None


def items_in(side, fid):
    return sorted((iid for iid, it in side["items"].items()
                   if it["fid"] == fid), key=idkey)


def idkey(i):
    return (i[0], int(i[1:]))


def readonly(st, s):
    """Side s is opened read-only (SRC of --backup and --one-way)."""
    return st["mode"] != "twoway" and s == 0


def load(path):
    with open(path) as fh:
        return json.load(fh)


def save(path, st):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(st, fh, sort_keys=True)
    os.replace(tmp, path)


# ---------------------------------------------------------------------
# The model of docs/SYNC.md


def merge_twoway(oa, ob, a, b):
    """Per flag: changed on one side only wins; else a OR b."""
    out = ""
    for f in FLAGS:
        A, B, OA, OB = f in a, f in b, f in oa, f in ob
        if A != OA and B == OB:
            v = A
        elif B != OB and A == OA:
            v = B
        else:
            v = A or B
        out += f if v else ""
    return out


def merge_oneway(os_, od, s, d):
    """Per flag: DST takes SRC's value if SRC changed it and DST not."""
    out = ""
    for f in FLAGS:
        S, D = f in s, f in d
        if S != (f in os_) and D == (f in od):
            v = S
        else:
            v = D
        out += f if v else ""
    return out


def union(a, b):
    return sort_flags(a + b)


def check_pairing(ca, cb, what):
    """Messages of one content paired as a multiset, in UID order, which
    the model does not know: the outcome must not depend on it."""
    if not ca or not cb:
        return
    ua = len(set(ca)) <= 1
    ub = len(set(cb)) <= 1
    if (ua and ub) or (ua and len(cb) <= len(ca)) or \
            (ub and len(ca) <= len(cb)):
        return
    raise Ambiguous("pairing of %s depends on UID order" % what)


def model_sync(st):
    """The expected result of one msync run: {sides, base, notes}."""
    mode = st["mode"]
    sides = st["sides"]
    base = st["base"]
    out = {"sides": [{"folders": {}, "items": {}}, {"folders": {}, "items": {}}],
           "base": {}, "events": Counter()}
    ev = out["events"]
    osd = out["sides"]
    # for the name checks: (side, target name, pair) and renames
    targets = []
    renames = []        # (side, old name, new name)
    deletes = []        # (side, name)

    def keep_folder(s, fid, name, guid):
        osd[s]["folders"][fid] = {"name": name, "guid": guid}

    def keep_item(s, iid, flags=None):
        it = dict(sides[s]["items"][iid])
        if flags is not None:
            if readonly(st, s) and flags != it["flags"]:
                raise AssertionError("model would change SRC")
            it["flags"] = flags
        osd[s]["items"][iid] = it

    def copy_item(t, fid, c, flags):
        if readonly(st, t):
            raise AssertionError("model would write to SRC")
        ev["message copied"] += 1
        iid = new_id(st, "i")
        osd[t]["items"][iid] = {"fid": fid, "c": c, "flags": flags,
                                "sub": None, "fname": None}
        return iid

    def entry(g, c, fa, fb, ia, ib):
        out["base"][g]["entries"][new_id(st, "e")] = {
            "c": c, "f": [fa, fb], "i": [ia, ib]}

    def cur(s, iid):
        return sides[s]["items"][iid]

    # -- pair mailboxes: by GUID, then left-overs by name
    byguid = [{}, {}]
    for s in (0, 1):
        for fid, f in sides[s]["folders"].items():
            assert f["guid"] not in byguid[s], "GUID used twice"
            byguid[s][f["guid"]] = fid
    pairs = []
    left = [[], []]
    for g in sorted(set(byguid[0]) | set(byguid[1])):
        fa, fb = byguid[0].get(g), byguid[1].get(g)
        if fa and fb:
            pairs.append((g, [fa, fb], False))
        else:
            left[0 if fa else 1].append(g)
    bnames = {sides[1]["folders"][byguid[1][g]]["name"]: g for g in left[1]}
    for g in left[0]:
        fa = byguid[0][g]
        name = sides[0]["folders"][fa]["name"]
        if name in bnames:
            gb = bnames.pop(name)
            pairs.append((g, [fa, byguid[1][gb]], True))
        else:
            pairs.append((g, [fa, None], False))
    for gb in bnames.values():
        pairs.append((gb, [None, byguid[1][gb]], False))

    for g, fids, byname in pairs:
        be = base.get(g)
        if fids[0] and fids[1]:
            na = sides[0]["folders"][fids[0]]["name"]
            nb = sides[1]["folders"][fids[1]]["name"]
            if na == nb:
                final = na
            elif mode != "twoway":
                final = na
            elif be is not None and not byname and na == be["name"]:
                final = nb
            else:
                final = na
            for s, n in ((0, na), (1, nb)):
                if n != final:
                    ev["mailbox renamed"] += 1
                    if readonly(st, s):
                        raise AssertionError("model would rename on SRC")
                    targets.append((s, final, g))
                    renames.append((s, n, final))
            keep_folder(0, fids[0], final, g)
            keep_folder(1, fids[1], final, g)
            out["base"][g] = {"name": final, "entries": {}}
            its = [items_in(sides[0], fids[0]), items_in(sides[1], fids[1])]
            if be is not None and not byname:
                merge_trusted(st, g, be, fids, its, keep_item, copy_item,
                              entry, cur, ev)
            elif mode == "backup":
                # SYNC.md: a backup mirrors SRC even without a base
                ev["mirrored without a base"] += 1
                pair_new(st, g, fids, its, keep_item, copy_item, entry,
                         cur, ev, union_mode=False)
            else:
                ev["union"] += 1
                merge_union(st, g, fids, its, keep_item, copy_item, entry,
                            cur, ev)
            continue
        # on one side only
        s = 0 if fids[0] else 1
        t = 1 - s
        fid = fids[s]
        name = sides[s]["folders"][fid]["name"]
        its = items_in(sides[s], fid)

        def copy_all(iids):
            tf = new_id(st, "f")
            keep_folder(t, tf, name, g)
            targets.append((t, name, g))
            for iid in iids:
                it = cur(s, iid)
                ci = copy_item(t, tf, it["c"], it["flags"])
                ids = [iid, ci] if s == 0 else [ci, iid]
                entry(g, it["c"], it["flags"], it["flags"], *ids)

        if be is not None:
            # side t deleted it since the last sync
            claimed = {e["i"][s] for e in be["entries"].values()}
            new = [iid for iid in its if iid not in claimed]
            if mode == "twoway":
                if not new:
                    ev["mailbox deleted"] += 1
                    deletes.append((s, name))
                    continue
                ev["deleted mailbox kept"] += 1
                keep_folder(s, fid, name, g)
                for iid in its:
                    keep_item(s, iid)
                out["base"][g] = {"name": name, "entries": {}}
                copy_all(its)
            elif mode == "backup":
                if s == 1:
                    ev["mailbox deleted"] += 1
                    deletes.append((s, name))
                    continue
                ev["mailbox recreated"] += 1
                keep_folder(s, fid, name, g)
                for iid in its:
                    keep_item(s, iid)
                out["base"][g] = {"name": name, "entries": {}}
                copy_all(its)
            else:
                keep_folder(s, fid, name, g)
                for iid in its:
                    keep_item(s, iid)
                if s == 1:
                    ev["mailbox left on DST"] += 1
                    continue        # SRC deleted it: the base forgets it
                out["base"][g] = {"name": name, "entries": {}}
                present = set(its)
                for e in be["entries"].values():
                    if e["i"][0] in present:
                        entry(g, e["c"], cur(0, e["i"][0])["flags"], "",
                              e["i"][0], None)
                if new:
                    ev["mailbox recreated, new only"] += 1
                    copy_all(new)
                else:
                    ev["mailbox stays deleted on DST"] += 1
            continue
        # new on side s
        keep_folder(s, fid, name, g)
        for iid in its:
            keep_item(s, iid)
        if mode == "twoway" or s == 0:
            ev["mailbox created"] += 1
            out["base"][g] = {"name": name, "entries": {}}
            copy_all(its)
        elif mode == "backup":
            # deleted on DST, even on a first sync (SYNC.md)
            ev["mailbox deleted"] += 1
            del osd[s]["folders"][fid]
            for iid in its:
                del osd[s]["items"][iid]
            deletes.append((s, name))

    # -- names: creates and renames must find their name free
    for s in (0, 1):
        now = {f["name"] for f in sides[s]["folders"].values()}
        seen = set()
        for ts, name, g in targets:
            if ts != s:
                continue
            if name in now or name in seen:
                raise Ambiguous("name %s in use on %s" % (name, SIDES[s]))
            seen.add(name)
    out["renames"] = renames
    out["deletes"] = deletes
    return out


def merge_trusted(st, g, be, fids, its, keep_item, copy_item, entry, cur,
                  ev):
    mode = st["mode"]
    here = [set(its[0]), set(its[1])]

    def present(e, s):
        return e["i"][s] is not None and e["i"][s] in here[s]

    def changed(e, s):
        if e["i"][s] is None:
            return False
        if not present(e, s):
            return True
        return cur(s, e["i"][s])["flags"] != e["f"][s]

    # An entry whose message side s no longer has, while side s has a
    # new message of the same content in the mailbox, is that message
    # renumbered (msync matches by GUID: an expunge plus an identical
    # delivery is no change).  Which of several candidates msync takes
    # depends on UIDs the model does not know: such rounds are redrawn.
    entries = dict(be["entries"])
    for s in (0, 1):
        direct = {e["i"][s] for e in entries.values()
                  if e["i"][s] is not None and e["i"][s] in here[s]}
        free = defaultdict(list)
        for i in sorted(here[s] - direct, key=idkey):
            free[cur(s, i)["c"]].append(i)
        lost = defaultdict(list)
        for eid in sorted(entries, key=idkey):
            e = entries[eid]
            if e["i"][s] is not None and e["i"][s] not in here[s] and \
                    free[e["c"]]:
                lost[e["c"]].append(eid)
        for c, eids in lost.items():
            if len(eids) > 1 or len(free[c]) > 1:
                raise Ambiguous("content %d renumbered more than once" % c)
            i = free[c][0]
            e = dict(entries[eids[0]])
            e["i"] = list(e["i"])
            e["i"][s] = i
            entries[eids[0]] = e
            ev["message renumbered"] += 1
    be = dict(be, entries=entries)

    # Entries that look alike are interchangeable to the model (it
    # cannot know which file msync paired with which): a class of them
    # may change on one side only.
    classes = defaultdict(list)
    for e in be["entries"].values():
        classes[(e["c"], e["f"][0], e["f"][1], e["i"][0] is None,
                 e["i"][1] is None)].append(e)
    for key, es in classes.items():
        if len(es) > 1 and any(changed(e, 0) for e in es) and \
                any(changed(e, 1) for e in es):
            raise Ambiguous("alike messages %s changed on both sides" %
                            (key,))

    claimed = [set(), set()]
    for eid in sorted(be["entries"], key=idkey):
        e = be["entries"][eid]
        p = [present(e, 0), present(e, 1)]
        for s in (0, 1):
            if p[s]:
                claimed[s].add(e["i"][s])
        ia, ib = e["i"]
        if mode == "twoway":
            if p[0] and p[1]:
                ca = cur(0, ia)["flags"] != e["f"][0]
                cb = cur(1, ib)["flags"] != e["f"][1]
                if ca and cb:
                    ev["flags changed on both sides"] += 1
                    if cur(0, ia)["flags"] != cur(1, ib)["flags"]:
                        ev["flags changed on both sides, differently"] += 1
                elif ca or cb:
                    ev["flags changed on one side"] += 1
                f = merge_twoway(e["f"][0], e["f"][1], cur(0, ia)["flags"],
                                 cur(1, ib)["flags"])
                keep_item(0, ia, f)
                keep_item(1, ib, f)
                entry(g, e["c"], f, f, ia, ib)
            elif p[0] or p[1]:
                s = 0 if p[0] else 1
                if e["i"][1 - s] is not None:
                    ev["expunge replayed"] += 1
                    if cur(s, e["i"][s])["flags"] != e["f"][s]:
                        ev["expunge beats a flag change"] += 1
                    continue            # expunged on the other side
                keep_item(s, e["i"][s])  # a tombstone stays as it is
                f = list(e["f"])
                f[s] = cur(s, e["i"][s])["flags"]
                entry(g, e["c"], f[0], f[1], ia, ib)
        elif mode == "backup":
            if p[0]:
                fa = cur(0, ia)["flags"]
                keep_item(0, ia)
                if p[1]:
                    keep_item(1, ib, fa)
                else:
                    ev["DST expunge undone"] += 1
                    ib = copy_item(1, fids[1], e["c"], fa)
                entry(g, e["c"], fa, fa, ia, ib)
            elif p[1]:
                ev["expunge replayed"] += 1
        else:
            if p[0] and p[1]:
                fa = cur(0, ia)["flags"]
                fd = merge_oneway(e["f"][0], e["f"][1], fa,
                                  cur(1, ib)["flags"])
                if fa != e["f"][0] and cur(1, ib)["flags"] != e["f"][1]:
                    ev["flags changed on both sides"] += 1
                    if any((f in fa) != (f in e["f"][0]) and
                           (f in cur(1, ib)["flags"]) != (f in e["f"][1])
                           and (f in fa) != (f in fd) for f in FLAGS):
                        ev["one flag changed on both sides, DST keeps its"
                           ] += 1
                elif fa != e["f"][0]:
                    ev["SRC flag change"] += 1
                keep_item(0, ia)
                keep_item(1, ib, fd)
                entry(g, e["c"], fa, fd, ia, ib)
            elif p[0]:
                if e["i"][1] is not None:
                    ev["DST expunge kept"] += 1
                keep_item(0, ia)
                entry(g, e["c"], cur(0, ia)["flags"], "", ia, None)
            elif p[1]:
                if e["i"][0] is not None:
                    ev["SRC expunge not replayed"] += 1
                keep_item(1, ib)
                entry(g, e["c"], "", cur(1, ib)["flags"], None, ib)

    # new messages: paired by content as a multiset
    new = [[i for i in its[s] if i not in claimed[s]] for s in (0, 1)]
    pair_new(st, g, fids, new, keep_item, copy_item, entry, cur, ev,
             union_mode=False)


def merge_union(st, g, fids, its, keep_item, copy_item, entry, cur, ev):
    pair_new(st, g, fids, its, keep_item, copy_item, entry, cur, ev,
             union_mode=True)


def pair_new(st, g, fids, new, keep_item, copy_item, entry, cur, ev,
             union_mode):
    mode = st["mode"]
    byc = [defaultdict(list), defaultdict(list)]
    for s in (0, 1):
        for iid in new[s]:
            byc[s][cur(s, iid)["c"]].append(iid)
    for c in sorted(set(byc[0]) | set(byc[1])):
        la, lb = byc[0][c], byc[1][c]
        check_pairing([cur(0, i)["flags"] for i in la],
                      [cur(1, i)["flags"] for i in lb], "content %d" % c)
        k = min(len(la), len(lb))
        if k:
            ev["new on both sides, paired"] += k
        if len(la) + len(lb) > 2:
            ev["duplicates in one mailbox"] += 1
        for ia, ib in zip(la[:k], lb[:k]):
            fa, fb = cur(0, ia)["flags"], cur(1, ib)["flags"]
            if mode == "twoway":
                f = union(fa, fb)
                keep_item(0, ia, f)
                keep_item(1, ib, f)
                entry(g, c, f, f, ia, ib)
            elif mode == "backup" or not union_mode:
                keep_item(0, ia)
                keep_item(1, ib, fa)
                entry(g, c, fa, fa, ia, ib)
            else:
                f = union(fa, fb)       # one-way union: DST's and SRC's
                keep_item(0, ia)
                keep_item(1, ib, f)
                entry(g, c, fa, f, ia, ib)
        for ia in la[k:]:
            fa = cur(0, ia)["flags"]
            keep_item(0, ia)
            entry(g, c, fa, fa, ia, copy_item(1, fids[1], c, fa))
        for ib in lb[k:]:
            fb = cur(1, ib)["flags"]
            if mode == "twoway":
                keep_item(1, ib)
                entry(g, c, fb, fb, copy_item(0, fids[0], c, fb), ib)
            elif mode == "backup" and not union_mode:
                pass                    # expunged on DST
            else:
                keep_item(1, ib)        # left alone, not recorded


# ---------------------------------------------------------------------
# Random changes


class Round:
    """One round being drawn: the trial state, disk actions, log."""

    def __init__(self, st, rng):
        self.st = st
        self.rng = rng
        self.acts = []          # (side, action, args...)
        self.log = []
        self.touched = set()    # (side, iid) already changed this round
        self.lock_guids = set()
        self.lock_names = set()  # a name locks itself and its children
        self.stats = Counter()

    # -- helpers
    def locked_name(self, name):
        for n in self.lock_names:
            if name == n or name.startswith(n + "/") or \
                    n.startswith(name + "/"):
                return True
        return False

    def fresh_name(self, parent=None):
        n = new_id(self.st, "F")
        return "%s/%s" % (parent, n) if parent else n

    def new_file(self, s, fid, c, flags, crlf=False, sub=None):
        st = self.st
        n = st["n"] = st["n"] + 1
        base = "%d.M%dP%dQ%d.model" % (1700000000 + n, n, 4000 + s, n)
        if sub is None:
            sub = "new" if not flags and self.rng.random() < 0.6 else "cur"
        fname = base if sub == "new" else base + ":2," + flags
        iid = new_id(st, "i")
        side = st["sides"][s]
        side["items"][iid] = {"fid": fid, "c": c, "flags": flags,
                              "sub": sub, "fname": fname}
        self.touched.add((s, iid))
        self.acts.append((s, "write", item_relpath(side, side["items"][iid]),
                          c, crlf))
        return iid

    def rand_flags(self):
        r = self.rng
        if r.random() < 0.45:
            return ""
        return sort_flags(r.sample(FLAGS, r.randint(1, 3)))

    def where(self, s, fid):
        return "%s:%s" % (SIDES[s], self.st["sides"][s]["folders"][fid]["name"])

    def untouched_items(self, s):
        side = self.st["sides"][s]
        return [i for i in sorted(side["items"], key=idkey)
                if (s, i) not in self.touched]

    def other_fid(self, s, fid):
        """The folder of the other side with the same GUID, or None."""
        g = self.st["sides"][s]["folders"][fid]["guid"]
        for ofid, f in self.st["sides"][1 - s]["folders"].items():
            if f["guid"] == g:
                return ofid
        return None

    # -- operations; each returns True when it did something
    def op_deliver(self, s):
        side = self.st["sides"][s]
        fid = self.rng.choice(sorted(side["folders"], key=idkey))
        c = new_content(self.st)
        flags = self.rand_flags()
        self.new_file(s, fid, c, flags)
        self.log.append("deliver %s c%d %s" % (self.where(s, fid), c,
                                               flags or "-"))
        return True

    def op_dup(self, s):
        """A copy of content that exists somewhere, maybe in CRLF form."""
        st, r = self.st, self.rng
        side = st["sides"][s]
        cands = []
        for t in (0, 1):
            for it in st["sides"][t]["items"].values():
                cands.append((t, it))
        if not cands:
            return False
        t, it = r.choice(cands)
        c = it["c"]
        # into the same mailbox as that copy when this side has it
        fid = it["fid"] if t == s else self.other_fid(t, it["fid"])
        if fid is None or r.random() < 0.3:
            fid = r.choice(sorted(side["folders"], key=idkey))
        flags = self.rand_flags()
        crlf = r.random() < 0.3
        self.new_file(s, fid, c, flags, crlf)
        self.log.append("deliver-dup %s c%d %s%s" % (
            self.where(s, fid), c, flags or "-", " crlf" if crlf else ""))
        return True

    def op_both(self, s):
        """The same new content delivered into one mailbox on both sides."""
        st, r = self.st, self.rng
        side = st["sides"][0]
        fids = [f for f in sorted(side["folders"], key=idkey)
                if self.other_fid(0, f)]
        if not fids:
            return False
        fa = r.choice(fids)
        fb = self.other_fid(0, fa)
        c = new_content(st)
        for t, fid in ((0, fa), (1, fb)):
            flags = self.rand_flags()
            for _ in range(r.choice((1, 1, 2))):
                self.new_file(t, fid, c, flags, crlf=r.random() < 0.2)
            self.log.append("deliver-both %s c%d %s" % (
                self.where(t, fid), c, flags or "-"))
        return True

    def do_flags(self, s, iid, new=None):
        st, r = self.st, self.rng
        side = st["sides"][s]
        it = side["items"][iid]
        old = it["flags"]
        if new is None:
            fl = set(old)
            for f in r.sample(FLAGS, r.choice((1, 1, 2))):
                fl ^= {f}
            new = sort_flags(fl)
        src = item_relpath(side, it)
        it["flags"] = new
        it["sub"] = "cur"
        it["fname"] = basename(it["fname"]) + ":2," + new
        self.acts.append((s, "rename", src, item_relpath(side, it)))
        self.touched.add((s, iid))
        self.log.append("flags %s c%d %s -> %s" % (
            self.where(s, it["fid"]), it["c"], old or "-", new or "-"))
        return True

    def do_expunge(self, s, iid):
        side = self.st["sides"][s]
        it = side["items"].pop(iid)
        self.touched.add((s, iid))
        self.acts.append((s, "unlink", item_relpath(side, it)))
        self.log.append("expunge %s c%d %s" % (
            self.where(s, it["fid"]), it["c"], it["flags"] or "-"))
        return True

    def do_move(self, s, iid, fid=None):
        st, r = self.st, self.rng
        side = st["sides"][s]
        if len(side["folders"]) < 2:
            return False
        it = side["items"][iid]
        if fid is None:
            fid = r.choice([f for f in sorted(side["folders"], key=idkey)
                            if f != it["fid"]])
        b = basename(it["fname"])
        if any(basename(o["fname"]) == b for o in side["items"].values()
               if o["fid"] == fid):
            return False
        src = item_relpath(side, it)
        old_where = self.where(s, it["fid"])
        del side["items"][iid]
        self.touched.add((s, iid))
        nid = new_id(st, "i")
        side["items"][nid] = dict(it, fid=fid)
        self.touched.add((s, nid))
        self.acts.append((s, "rename", src,
                          item_relpath(side, side["items"][nid])))
        self.log.append("move %s -> %s c%d %s" % (
            old_where, self.where(s, fid), it["c"], it["flags"] or "-"))
        return True

    def pick_item(self, s):
        iids = self.untouched_items(s)
        return self.rng.choice(iids) if iids else None

    def op_flags(self, s):
        iid = self.pick_item(s)
        return iid is not None and self.do_flags(s, iid)

    def op_expunge(self, s):
        iid = self.pick_item(s)
        return iid is not None and self.do_expunge(s, iid)

    def op_move(self, s):
        iid = self.pick_item(s)
        return iid is not None and self.do_move(s, iid)

    def op_conflict(self, s):
        """Both sides change one message of the base: flags on both,
        expunge against flags, expunge on both, move against flags."""
        st, r = self.st, self.rng
        cands = []
        for g, b in sorted(st["base"].items()):
            fids = [self.fid_of_guid(t, g) for t in (0, 1)]
            if None in fids:
                continue
            alike = Counter((e["c"], e["f"][0], e["f"][1])
                            for e in b["entries"].values())
            for eid in sorted(b["entries"], key=idkey):
                e = b["entries"][eid]
                if alike[(e["c"], e["f"][0], e["f"][1])] > 1:
                    continue
                ok = True
                for t in (0, 1):
                    it = st["sides"][t]["items"].get(e["i"][t])
                    if it is None or it["fid"] != fids[t] or \
                            (t, e["i"][t]) in self.touched:
                        ok = False
                if ok:
                    cands.append(e)
        if not cands:
            return False
        differ = [e for e in cands if e["f"][0] != e["f"][1]]
        if st["mode"] == "oneway" and not differ and r.random() < 0.5:
            # DST changes a flag alone: the base then records different
            # flags for SRC and DST, for a later conflict on that flag
            e = r.choice(cands)
            self.log.append("conflict (DST alone, for a later one):")
            return self.do_flags(1, e["i"][1])
        e = r.choice(differ if differ and r.random() < 0.7 else cands)
        ia, ib = e["i"]
        kind = r.choice(("flags", "flags", "expunge", "expunge-both",
                         "move"))
        self.log.append("conflict (%s):" % kind)
        if kind == "flags" and e["f"][0] != e["f"][1] and r.random() < 0.7:
            # (one-way) a flag on which the base says SRC and DST differ,
            # changed on both sides
            d = r.choice(sorted(set(e["f"][0]) ^ set(e["f"][1])))
            for t, i in ((0, ia), (1, ib)):
                self.do_flags(t, i, sort_flags(
                    set(st["sides"][t]["items"][i]["flags"]) ^ {d}))
        elif kind == "flags":
            self.do_flags(0, ia)
            self.do_flags(1, ib)
        elif kind == "expunge":
            self.do_expunge(s, e["i"][s])
            self.do_flags(1 - s, e["i"][1 - s])
        elif kind == "expunge-both":
            self.do_expunge(0, ia)
            self.do_expunge(1, ib)
        else:
            if not self.do_move(s, e["i"][s]):
                self.log.pop()
                return False
            self.do_flags(1 - s, e["i"][1 - s])
        return True

    def fid_of_guid(self, s, g):
        for fid, f in self.st["sides"][s]["folders"].items():
            if f["guid"] == g:
                return fid
        return None

    def add_folder(self, s, name):
        st = self.st
        fid = new_id(st, "f")
        st["sides"][s]["folders"][fid] = {"name": name,
                                          "guid": new_id(st, "g")}
        self.acts.append((s, "mkdir", folder_dir(name)))
        return fid

    def op_mkfolder(self, s, both=False):
        st, r = self.st, self.rng
        side = st["sides"][s]
        if len(side["folders"]) > 9:
            return False
        parent = None
        tops = [f["name"] for f in side["folders"].values()
                if f["name"] != "INBOX" and "/" not in f["name"]]
        if tops and r.random() < 0.4:
            parent = r.choice(sorted(tops))
            if self.locked_name(parent):
                return False
            if both and not folder_by_name(st["sides"][1 - s], parent):
                return False
        name = self.fresh_name(parent)
        self.lock_names.add(parent or name)
        for t in ((0, 1) if both else (s,)):
            self.add_folder(t, name)
            self.log.append("mkfolder%s %s:%s" % (
                "-both" if both else "", SIDES[t], name))
        return True

    def op_mkfolder_both(self, s):
        return self.op_mkfolder(0, both=True)

    def subtree(self, s, name):
        side = self.st["sides"][s]
        return [fid for fid, f in sorted(side["folders"].items())
                if f["name"] == name or f["name"].startswith(name + "/")]

    def pick_folder(self, s):
        side = self.st["sides"][s]
        fids = [f for f in sorted(side["folders"], key=idkey)
                if side["folders"][f]["name"] != "INBOX"]
        if not fids:
            return None
        return self.rng.choice(fids)

    def op_rename(self, s):
        st, r = self.st, self.rng
        side = st["sides"][s]
        fid = self.pick_folder(s)
        if fid is None:
            return False
        old = side["folders"][fid]["name"]
        sub = self.subtree(s, old)
        osub = self.subtree(1 - s, old)
        guids = {side["folders"][f]["guid"] for f in sub}
        guids |= {st["sides"][1 - s]["folders"][f]["guid"] for f in osub}
        if self.locked_name(old) or guids & self.lock_guids:
            return False
        if len(sub) > 1 and r.random() < 0.2:
            sub = [fid]         # the folder alone, not its children
        if "/" in old and r.random() < 0.6:
            new = self.fresh_name(old.rsplit("/", 1)[0])
        else:
            tops = [f["name"] for f in side["folders"].values()
                    if f["name"] != "INBOX" and "/" not in f["name"] and
                    f["name"] != old and not f["name"].startswith(old + "/")
                    and not self.locked_name(f["name"])]
            parent = r.choice(sorted(tops)) if tops and \
                r.random() < 0.3 else None
            new = self.fresh_name(parent)
        self.lock_names |= {old, new}
        self.lock_guids |= guids
        for f in sub:
            on = side["folders"][f]["name"]
            nn = new + on[len(old):]
            self.acts.append((s, "mvdir", folder_dir(on), folder_dir(nn)))
            side["folders"][f]["name"] = nn
        self.log.append("rename %s:%s -> %s (%d folders)" % (
            SIDES[s], old, new, len(sub)))
        return True

    def op_rmfolder_vs_new(self, s):
        """A folder deleted on one side gets new mail on the other."""
        fid = self.pick_folder(s)
        if fid is None:
            return False
        ofid = self.other_fid(s, fid)
        if ofid is None or not self.op_rmfolder(s, fid):
            return False
        t = 1 - s
        iid = self.pick_item(t)
        if iid is not None and self.st["sides"][t]["items"][iid]["fid"] != \
                ofid and self.rng.random() < 0.5:
            it = self.st["sides"][t]["items"][iid]
            b = basename(it["fname"])
            if not any(basename(o["fname"]) == b
                       for o in self.st["sides"][t]["items"].values()
                       if o["fid"] == ofid):
                return self.do_move(t, iid, ofid)
        c = new_content(self.st)
        flags = self.rand_flags()
        self.new_file(t, ofid, c, flags)
        self.log.append("deliver %s c%d %s" % (self.where(t, ofid), c,
                                               flags or "-"))
        return True

    def op_rmfolder(self, s, fid=None):
        st = self.st
        side = st["sides"][s]
        if fid is None:
            fid = self.pick_folder(s)
        if fid is None:
            return False
        f = side["folders"][fid]
        if self.locked_name(f["name"]) or f["guid"] in self.lock_guids:
            return False
        self.lock_names.add(f["name"])
        self.lock_guids.add(f["guid"])
        n = 0
        for iid in items_in(side, fid):
            del side["items"][iid]
            n += 1
        del side["folders"][fid]
        self.acts.append((s, "rmtree", folder_dir(f["name"])))
        self.log.append("rmfolder %s:%s (%d messages)" % (
            SIDES[s], f["name"], n))
        return True


OPS = [  # name, weight
    ("deliver", 20), ("dup", 10), ("both", 5), ("flags", 20),
    ("expunge", 9), ("move", 9), ("conflict", 8), ("mkfolder", 5),
    ("mkfolder_both", 2), ("rename", 6), ("rmfolder", 4),
    ("rmfolder_vs_new", 3),
]


def draw_ops(rnd, nops):
    st, r = rnd.st, rnd.rng
    names = [o for o, _ in OPS]
    weights = [w for _, w in OPS]
    done = 0
    for _ in range(nops * 4):
        if done >= nops:
            break
        s = r.randrange(2)
        op = r.choices(names, weights)[0]
        nitems = len(st["sides"][s]["items"])
        if op in ("deliver", "dup", "both") and nitems > 45 and \
                r.random() < 0.7:
            op = "expunge"
        if op in ("expunge", "move") and nitems < 8 and r.random() < 0.7:
            op = "deliver"
        if getattr(rnd, "op_" + op)(s):
            rnd.stats[op] += 1
            done += 1
    return done


def gen_round(st, rng, none=False):
    """Draws a round whose outcome the rules decide; returns the trial
    state (with st["expect"]) and the Round."""
    for attempt in range(80):
        trial = copy.deepcopy(st)
        rnd = Round(trial, rng)
        if not none:
            draw_ops(rnd, max(1, rng.randint(2, 9) - attempt // 8))
        try:
            exp = model_sync(trial)
        except Ambiguous as e:
            if none:
                raise
            st.setdefault("redraws", 0)
            st["redraws"] += 1
            continue
        trial["expect"] = exp
        return trial, rnd
    trial = copy.deepcopy(st)
    rnd = Round(trial, rng)
    trial["expect"] = model_sync(trial)
    rnd.log.append("(no operations: every draw was ambiguous)")
    return trial, rnd


def apply_acts(root, acts):
    for a in acts:
        s, kind = a[0], a[1]
        top = os.path.join(root, SIDES[s])
        if kind == "write":
            rel, c, crlf = a[2], a[3], a[4]
            d, sub, fname = rel.rsplit("/", 2) if rel.count("/") >= 2 \
                else ("",) + tuple(rel.split("/"))
            folder = os.path.join(top, d) if d else top
            tmp = os.path.join(folder, "tmp", fname.split(":")[0])
            with open(tmp, "wb") as fh:
                fh.write(message(c, crlf))
            os.rename(tmp, os.path.join(top, rel))
        elif kind == "rename":
            dst = os.path.join(top, a[3])
            if os.path.exists(dst):
                raise RuntimeError("would replace %s" % dst)
            os.rename(os.path.join(top, a[2]), dst)
        elif kind == "unlink":
            os.unlink(os.path.join(top, a[2]))
        elif kind == "mkdir":
            for sub in ("cur", "new", "tmp"):
                os.makedirs(os.path.join(top, a[2], sub))
        elif kind == "mvdir":
            dst = os.path.join(top, a[3])
            if os.path.exists(dst):
                raise RuntimeError("would replace %s" % dst)
            os.rename(os.path.join(top, a[2]), dst)
        elif kind == "rmtree":
            shutil.rmtree(os.path.join(top, a[2]))
        else:
            raise RuntimeError(kind)


# ---------------------------------------------------------------------
# Reading the trees


def scan(top, upto):
    """{folder name: [(sub, fname, c, flags)]} of one Maildir++ tree."""
    out = {}
    dirs = [("INBOX", top)]
    for e in sorted(os.listdir(top)):
        p = os.path.join(top, e)
        if e.startswith(".") and e not in (".", "..") and \
                os.path.isdir(os.path.join(p, "cur")):
            dirs.append((e[1:].replace(".", "/"), p))
    for name, d in dirs:
        msgs = []
        for sub in ("new", "cur"):
            sd = os.path.join(d, sub)
            if not os.path.isdir(sd):
                continue
            for f in sorted(os.listdir(sd)):
                if f.startswith("."):
                    continue
                with open(os.path.join(sd, f), "rb") as fh:
                    md5 = digest(fh.read())
                c = content_of(md5, upto)
                flags = ""
                if ":2," in f:
                    flags = sort_flags(f.split(":2,", 1)[1])
                msgs.append((sub, f, c if c is not None else md5, flags))
        out[name] = msgs
    return out


def all_files(top):
    res = []
    for dp, dns, fns in os.walk(top):
        for f in fns:
            res.append(os.path.relpath(os.path.join(dp, f), top))
    return sorted(res)


def listing(folders):
    """Canonical lines "folder  cN  flags" (like maildir_digest)."""
    lines = []
    for name, msgs in folders.items():
        lines.append("%s  (folder)" % name)
        for m in msgs:
            lines.append("%s  %s  %s" % (
                name, "c%d" % m[2] if isinstance(m[2], int) else m[2],
                m[3] or "-"))
    return Counter(lines)


def expected_folders(side):
    out = {f["name"]: [] for f in side["folders"].values()}
    for it in side["items"].values():
        out[side["folders"][it["fid"]]["name"]].append(
            (it["sub"], it["fname"], it["c"], it["flags"]))
    return out


# ---------------------------------------------------------------------
# Commands


def cmd_init(args):
    st = {"mode": args.mode, "seed": args.seed, "round": 0, "n": 0, "nc": 0,
          "dir": os.path.abspath(args.dir), "base": {}, "expect": None,
          "stats": {}, "events": {}, "rounds": 0, "redraws": 0,
          "sides": [{"folders": {}, "items": {}},
                    {"folders": {}, "items": {}}]}
    rng = random.Random("%s/%s/0" % (args.seed, args.mode))
    for s in (0, 1):
        os.makedirs(os.path.join(st["dir"], SIDES[s]))
    rnd = Round(st, rng)
    inbox = [rnd.add_folder(s, "INBOX") for s in (0, 1)]
    # INBOX: own mail on each side, shared mail with other flags, one
    # duplicate; a folder made on both sides; folders on one side only
    for s, k in ((0, 4), (1, 3)):
        for _ in range(k):
            rnd.new_file(s, inbox[s], new_content(st),
                         rnd.rand_flags())
    for _ in range(3):
        c = new_content(st)
        for s in (0, 1):
            rnd.new_file(s, inbox[s], c, rnd.rand_flags(),
                         crlf=s == 1 and rng.random() < 0.5)
    it = next(i for i in st["sides"][0]["items"].values()
              if i["fid"] == inbox[0])
    rnd.new_file(0, inbox[0], it["c"], it["flags"])
    shared = rnd.fresh_name()
    for s in (0, 1):
        f = rnd.add_folder(s, shared)
        rnd.new_file(s, f, new_content(st), rnd.rand_flags())
    top = rnd.fresh_name()
    f = rnd.add_folder(0, top)
    for _ in range(2):
        rnd.new_file(0, f, new_content(st), rnd.rand_flags())
    f = rnd.add_folder(0, rnd.fresh_name(top))
    rnd.new_file(0, f, new_content(st), "S")
    f = rnd.add_folder(1, rnd.fresh_name())
    rnd.new_file(1, f, new_content(st), rnd.rand_flags())
    # the root folders exist already: no mkdir for INBOX
    acts = [a for a in rnd.acts if not (a[1] == "mkdir" and a[2] == "")]
    for s in (0, 1):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(st["dir"], SIDES[s], sub))
    apply_acts(st["dir"], acts)
    st["expect"] = model_sync(st)
    st["expect"]["src_files"] = all_files(os.path.join(st["dir"], "a"))
    st["log"] = ["set-up: %d messages on a, %d on b; folders %s" % (
        len(st["sides"][0]["items"]), len(st["sides"][1]["items"]),
        ", ".join(sorted("%s:%s" % (SIDES[s], f["name"])
                         for s in (0, 1)
                         for f in st["sides"][s]["folders"].values())))]
    print("\n".join(st["log"]))
    save(args.state, st)


def cmd_ops(args):
    st = load(args.state)
    if st.get("expect") is not None:
        sys.exit("model.py: the last round was not checked")
    if not args.none:
        st["round"] += 1
    rng = random.Random("%s/%s/%d" % (st["seed"], st["mode"], st["round"]))
    if args.none:
        print("%s: a second sync with no changes" % st["mode"])
    trial, rnd = gen_round(st, rng, none=args.none)
    apply_acts(trial["dir"], rnd.acts)
    trial["expect"]["src_files"] = all_files(os.path.join(trial["dir"], "a"))
    trial["log"] = rnd.log
    for k, v in rnd.stats.items():
        trial["stats"][k] = trial["stats"].get(k, 0) + v
    print("%s round %d (seed %s):" % (st["mode"], st["round"], st["seed"]))
    for line in rnd.log or ["(no operations)"]:
        print("  " + line)
    save(args.state, trial)


def cmd_check(args):
    st = load(args.state)
    exp = st["expect"]
    if exp is None:
        sys.exit("model.py: nothing to check")
    ok = True
    actual = []
    for s in (0, 1):
        top = os.path.join(st["dir"], SIDES[s])
        act = scan(top, st["nc"])
        actual.append(act)
        want = listing(expected_folders(exp["sides"][s]))
        have = listing(act)
        if want != have:
            ok = False
            print("side %s differs from the model (- model, + disk):" %
                  SIDES[s])
            for line in sorted((want - have).elements()):
                print("  -" + line)
            for line in sorted((have - want).elements()):
                print("  +" + line)
    if st["mode"] != "twoway":
        now = all_files(os.path.join(st["dir"], "a"))
        if now != exp["src_files"]:
            ok = False
            print("SRC changed: %s" % sorted(
                set(now) ^ set(exp["src_files"])))
    for s, old, new in exp.get("renames", []):
        print("  (model: rename %s:%s -> %s)" % (SIDES[s], old, new))
    for s, name in exp.get("deletes", []):
        print("  (model: delete %s:%s)" % (SIDES[s], name))
    if not ok:
        print("round %d of %s, seed %s; the round's operations:" % (
            st["round"], st["mode"], st["seed"]))
        for line in st.get("log", []):
            print("  " + line)
        sys.exit(1)
    # adopt: map the files on disk to the model's messages
    for s in (0, 1):
        side = exp["sides"][s]
        byname = {f["name"]: fid for fid, f in side["folders"].items()}
        groups = defaultdict(list)
        for iid in sorted(side["items"], key=idkey):
            it = side["items"][iid]
            groups[(it["fid"], it["c"], it["flags"])].append(iid)
        for name, msgs in actual[s].items():
            fid = byname[name]
            files = defaultdict(list)
            for sub, fname, c, flags in msgs:
                files[(fid, c, flags)].append((sub, fname))
            for key, fl in files.items():
                iids = groups[key]
                assert len(iids) == len(fl)
                left = []
                bases = {basename(f): (sb, f) for sb, f in fl}
                for iid in iids:
                    it = side["items"][iid]
                    b = basename(it["fname"]) if it["fname"] else None
                    if b in bases:
                        it["sub"], it["fname"] = bases.pop(b)
                    else:
                        left.append(iid)
                for iid, (sb, f) in zip(left, sorted(bases.values())):
                    side["items"][iid]["sub"] = sb
                    side["items"][iid]["fname"] = f
    st["sides"] = exp["sides"]
    st["base"] = exp["base"]
    for k, v in exp["events"].items():
        st["events"][k] = st["events"].get(k, 0) + v
    st["expect"] = None
    st["rounds"] += 1
    n = [len(st["sides"][s]["items"]) for s in (0, 1)]
    nf = [len(st["sides"][s]["folders"]) for s in (0, 1)]
    print("ok: a has %d messages in %d folders, b %d in %d" % (
        n[0], nf[0], n[1], nf[1]))
    save(args.state, st)


def cmd_summary(args):
    st = load(args.state)
    ops = st["stats"]
    print("%s: %d syncs checked, %d operations (%s), %d ambiguous draws "
          "redrawn" % (st["mode"], st["rounds"], sum(ops.values()),
                       ", ".join("%s %d" % (k, ops[k]) for k in sorted(ops)),
                       st.get("redraws", 0)))
    ev = st["events"]
    print("%s: the rules exercised: %s" % (
        st["mode"], ", ".join("%s %d" % (k, ev[k]) for k in sorted(ev))))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sp = ap.add_subparsers(dest="cmd", required=True)
    p = sp.add_parser("init")
    p.add_argument("state")
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--seed", required=True)
    p.add_argument("--dir", required=True)
    p = sp.add_parser("ops")
    p.add_argument("state")
    p.add_argument("--none", action="store_true")
    p = sp.add_parser("check")
    p.add_argument("state")
    p = sp.add_parser("summary")
    p.add_argument("state")
    args = ap.parse_args()
    {"init": cmd_init, "ops": cmd_ops, "check": cmd_check,
     "summary": cmd_summary}[args.cmd](args)


if __name__ == "__main__":
    main()
