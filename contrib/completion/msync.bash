# bash completion for msync(1): options, pair and group names from the
# config file (-F FILE or $XDG_CONFIG_HOME/msync/config), location
# prefixes, and paths.

# _msync_config_names FILE: the pair and group names the file defines.
_msync_config_names()
{
	[ -r "$1" ] || return 0
	awk '$1 == "pair" || $1 == "group" { print $2 }' "$1" 2>/dev/null
}

_msync()
{
	local cur prev words cword cfg i
	if declare -F _init_completion >/dev/null 2>&1; then
		_init_completion -n : || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD-1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	case $prev in
	-F|--config|--state-dir|--restrict)
		COMPREPLY=($(compgen -f -- "$cur"))
		return ;;
	--ssh)
		COMPREPLY=($(compgen -W "openssh libssh" -- "$cur"))
		return ;;
	-m|--mailbox|-x|--exclude|-e|--rsh|--remote-msync|--bwlimit|\
	--lock-wait|-j|--jobs|-T)
		return ;;
	esac

	if [[ $cur == -* ]]; then
		COMPREPLY=($(compgen -W "--backup --one-way --dry-run --full
		    --mailbox --exclude --verbose --quiet --stats --progress
		    --force-deletes --state-dir --lock-wait --list --rsh
		    --remote-msync --ssh --accept-new-host-key --compress
		    --no-compress --bwlimit --config --all --pairs --jobs
		    --json --watch --server --restrict --read-only --help
		    --version -b -1 -n -f -m -x -v -q -e -z -F -j -h -V" \
		    -- "$cur"))
		return
	fi

	cfg=${XDG_CONFIG_HOME:-$HOME/.config}/msync/config
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-F|--config) cfg=${words[i+1]} ;;
		--config=*) cfg=${words[i]#--config=} ;;
		esac
	done
	COMPREPLY=($(compgen -W "$(_msync_config_names "$cfg")
	    maildir: mbox: imap:// imaps:// ssh://" -- "$cur"))
	COMPREPLY+=($(compgen -f -- "$cur"))
	# "maildir:" and the like end in ':': do not add a space after them.
	compopt -o nospace 2>/dev/null
	return 0
}
complete -F _msync msync
