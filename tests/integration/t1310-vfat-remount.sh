#!/usr/bin/env bash
test_description='a Maildir on a vfat image keeps its sync base across unmount and mount (new inode numbers)'
. "$(dirname "$0")/lib.sh"

# Issue 10 part 1: vfat makes up inode numbers when it mounts, so a
# remount gives every folder new ones.  Needs root, a free loop device,
# mkfs.vfat (dosfstools) and a kernel that mounts vfat; skipped otherwise.

img=$TRASH/fat.img
mnt=$TRASH/mnt
if ! test_have_prereq ROOT; then
	skip_all='needs root for loop devices'; test_done
fi
if ! command -v mkfs.vfat >/dev/null || ! losetup -f >/dev/null 2>&1; then
	skip_all='no mkfs.vfat or no free loop device'; test_done
fi
mkdir -p "$mnt" && truncate -s 32M "$img" && mkfs.vfat "$img" >/dev/null 2>&1
if ! mount -o loop "$img" "$mnt" 2>/dev/null; then
	skip_all='this kernel cannot mount a vfat loop image'; test_done
fi
test_atexit 'umount "$mnt" 2>/dev/null || true'

remount() {
	umount "$mnt" && mount -o loop "$img" "$mnt"
}

test_expect_success 'setup: a synced pair, one side on vfat' '
	make_folder "$mnt/m" Work &&
	for i in 1 2 3 4; do deliver "$mnt/m" "" S >/dev/null || return 1; done &&
	deliver "$mnt/m/.Work" "" >/dev/null &&
	"$MSYNC" "$mnt/m" local && test_cmp_trees "$mnt/m" local
'

test_expect_success 'after a remount, a deletion and a flag change propagate' '
	remount &&
	rm "$(ls "$mnt"/m/cur/* | sort | head -n 1)" &&
	set_flags "$(ls "$mnt"/m/cur/* | sort | head -n 1)" FS &&
	"$MSYNC" "$mnt/m" local 2>err && cat err &&
	! grep -E "merging without deletions|rebuilding" err &&
	test "$(count_all local)" = 4 && test_cmp_trees "$mnt/m" local
'

test_expect_success '--backup from the vfat side after another remount' '
	"$MSYNC" --backup "$mnt/m" bak && remount &&
	rm "$(ls "$mnt"/m/cur/* | sort | head -n 1)" &&
	"$MSYNC" --backup --stats "$mnt/m" bak 2>err.b && cat err.b &&
	! grep -E "merging without deletions|rebuilding" err.b &&
	grep -q "on B: 0 copied" err.b && test_cmp_trees "$mnt/m" bak
'

test_done
