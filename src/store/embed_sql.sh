#!/bin/sh
# Turns the numbered SQL migrations into a C file, so that the binary
# carries its schema and needs no files at run time. Plain POSIX sh and od.
#   embed_sql.sh OUT.c migrations/001_init.sql migrations/002_….sql …
set -eu

out=$1
shift
tmp=$out.tmp

{
	echo '/* Generated from src/store/migrations/ by src/store/embed_sql.sh. */'
	echo '#include "store/migrations.h"'
	echo
	i=0
	for f in "$@"; do
		base=${f##*/}
		case $base in
		[0-9][0-9][0-9]_*.sql) ;;
		*)
			echo "embed_sql.sh: $f: migrations are named NNN_name.sql" >&2
			exit 1
			;;
		esac
		printf 'static const char sql_%d[] = {\n' "$i"
		od -An -v -tx1 "$f" | sed -e 's/[0-9a-f][0-9a-f]/0x&,/g' -e 's/^ */\t/' -e 's/ *$//'
		printf '\t0x00,\n};\n\n'
		i=$((i + 1))
	done
	echo 'const struct store__migration store__migrations[] = {'
	i=0
	for f in "$@"; do
		base=${f##*/}
		version=$(printf '%s\n' "${base%%_*}" | sed 's/^0*//')
		printf '\t{%s, "%s", sql_%d},\n' "${version:-0}" "$base" "$i"
		i=$((i + 1))
	done
	echo '};'
	printf 'const size_t store__migrations_len = %d;\n' "$i"
} >"$tmp"
mv "$tmp" "$out"
