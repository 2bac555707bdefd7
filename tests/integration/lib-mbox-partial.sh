# lib-mbox-partial.sh -- the starting point of t8130 and t8140 (a run
# cut while appending to an mbox store), sourced after lib.sh.

# mbox_append FILE MSG: a delivery into an mbox file, as an MTA makes it:
# a "From " line written right where the file ends (after a cut write, in
# the middle of a line), the message quoted, an empty line.
mbox_append() {
	{ printf "From late@example.org Mon Jan  1 10:00:00 2024\n" &&
	  sed "s/^\(>*From \)/>\1/" "$2" && printf "\n"; } >>"$1"
}

# The same starting point each time: ./a (Maildir) and ./b (mbox
# directory) synced; then 40 new messages in a's INBOX and 4 in Work,
# which the next run appends to b/INBOX and b/Work.
setup_pair() {
	rm -rf a b home/.local/state home/.cache &&
	make_maildir a && make_folder a Work &&
	for i in $(seq 1 6); do deliver a "$SRCMSG/m$i" S >/dev/null; done &&
	deliver a/.Work "$SRCMSG/m7" >/dev/null &&
	"$MSYNC" a mbox:b >/dev/null 2>&1 &&
	for i in $(seq 8 47); do deliver a "$SRCMSG/m$i" F >/dev/null; done &&
	for i in $(seq 48 51); do deliver a/.Work "$SRCMSG/m$i" >/dev/null; done
}

# digest_b: the mbox store as a Maildir digest (converted by msync into
# a scratch Maildir, which is then read by maildir_digest).
digest_b() {
	rm -rf bmd "$TRASH/scratch" &&
	    XDG_STATE_HOME=$TRASH/scratch XDG_CACHE_HOME=$TRASH/scratch \
	    "$MSYNC" --backup mbox:b bmd >/dev/null 2>&1 &&
	maildir_digest --names bmd
}
