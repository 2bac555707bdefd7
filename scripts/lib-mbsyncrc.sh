# lib-mbsyncrc.sh -- the mbsync configuration of the benchmarks
# (bench.sh, bench-1pct.sh), so that both measure mbsync the same way.
# Sourced by bash.

# bench_mbsyncrc SRC DST: prints an mbsyncrc with two Maildir++ stores,
# SRC (far) and DST (near), and one channel that syncs everything both
# ways, creating, removing and expunging on both sides.
bench_mbsyncrc() {
	cat <<EOC
# msync benchmark: two Maildir++ stores, one channel, everything synced.
MaildirStore src
Inbox $1
SubFolders Maildir++

MaildirStore dst
Inbox $2
SubFolders Maildir++

Channel bench
Far :src:
Near :dst:
Patterns *
Sync All
Create Both
Remove Both
Expunge Both
SyncState *
EOC
}
