#!/bin/sh
# make-example.sh -- create the bundled example: two Maildirs that have
# drifted apart, the way a laptop and a server do between syncs.
#
#   examples/make-example.sh DIR
#
# Creates DIR/laptop and DIR/server (Maildir++: INBOX with subfolders
# .Work, and .Drafts on the laptop only): nine messages on the laptop,
# ten on the server:
#   on both sides  4 INBOX messages and 2 in Work, some with flags
#                  that differ between the sides
#   server only    3 INBOX messages (two still unread in new/), 1 in Work
#   laptop only    1 INBOX message, 1 in Work, 1 draft in .Drafts
# File names, contents and mtimes are fixed, so every run makes the same
# bytes.  DIR must not already contain laptop/ or server/.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: examples/make-example.sh DIR" >&2
	exit 64
fi
dir=$1
for side in laptop server; do
	if [ -e "$dir/$side" ]; then
		echo "make-example: $dir/$side already exists" >&2
		exit 1
	fi
done

# msg N FROM SUBJECT BODY: print message N.
msg() {
	n=$1 from=$2 subject=$3 body=$4
	day=$((n + 1))
	cat <<EOM
Return-Path: <$(echo "$from" | sed 's/.*<\(.*\)>/\1/')>
From: $from
To: Sam Example <sam@example.net>
Subject: $subject
Date: $day Oct 2024 09:$((10 + n)):00 +0200
Message-ID: <example.$n@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

$body
EOM
}

# put SIDE FOLDER N FLAGS|new FROM SUBJECT BODY: store message N on SIDE.
# FOLDER is "" for INBOX or a Maildir++ name like .Work.
put() {
	side=$1 folder=$2 n=$3 flags=$4
	shift 4
	md=$dir/$side/$folder
	mkdir -p "$md/cur" "$md/new" "$md/tmp"
	t=$((1728000000 + n * 3600))
	base=$t.M${n}P1000.$side
	if [ "$flags" = new ]; then
		f=$md/new/$base
	else
		f=$md/cur/$base:2,$flags
	fi
	msg "$n" "$@" >"$f"
	touch -d "@$t" "$f"
}

# Both sides (the same bytes; flags may differ).
for side in laptop server; do
	put $side "" 1 S "Alex Admin <alex@example.org>" "Welcome to the team" \
"Hi Sam,

welcome aboard!  Your accounts are set up; the wiki has the rest.

Alex"
	put $side "" 4 "" "Weekly News <news@example.org>" "This week: autumn edition" \
"Leaves are falling, and so are our prices.  Read on for the week's news."
	put $side .Work 5 S "Priya Lead <priya@example.org>" "Q4 planning" \
"Please add your items to the planning document before Thursday.

Priya"
done
put server "" 2 S "Carol Friend <carol@example.org>" "Lunch on Friday?" \
"The usual place at noon?  -- Carol"
put laptop "" 2 RS "Carol Friend <carol@example.org>" "Lunch on Friday?" \
"The usual place at noon?  -- Carol"
put server "" 3 FS "Billing <billing@example.com>" "Invoice 2024-117" \
"Your invoice of 42.00 EUR is due on the 31st.
From the billing team, with thanks."
put laptop "" 3 S "Billing <billing@example.com>" "Invoice 2024-117" \
"Your invoice of 42.00 EUR is due on the 31st.
From the billing team, with thanks."
put server .Work 6 S "Jo Dev <jo@example.org>" "Code review: sync planner" \
"I left a few comments on the planner change; nothing blocking."
put laptop .Work 6 FS "Jo Dev <jo@example.org>" "Code review: sync planner" \
"I left a few comments on the planner change; nothing blocking."

# Server only: mail that arrived while the laptop was offline.
put server "" 7 new "CI <ci@example.org>" "Build failed: main #1234" \
"The build of main #1234 failed in stage 'test'."
put server "" 8 new "Carol Friend <carol@example.org>" "Re: holiday plans" \
"Sounds great, let's book the cabin.  -- Carol"
put server "" 9 S "Shop <orders@example.com>" "Your order has shipped" \
"Your parcel is on its way."
put server .Work 10 S "Priya Lead <priya@example.org>" "Meeting notes" \
"Notes from today's meeting are in the shared folder."

# Laptop only: written or filed on the laptop.
put laptop "" 11 S "Sam Example <sam@example.net>" "Notes to self" \
"Remember: renew the passport before December."
put laptop .Work 12 S "Sam Example <sam@example.net>" "Deploy checklist" \
"1. tag  2. build  3. canary  4. everyone"
put laptop .Drafts 13 DS "Sam Example <sam@example.net>" "Re: Lunch on Friday?" \
"Friday works, see you at noon."

echo "make-example: created $dir/laptop and $dir/server"
