#!/bin/sh
# Makes sure the system programs the tests need are there: redis-server, msgfmt (gettext), chromium
# (the browser test drives Debian's chromium through Playwright; nothing is downloaded) and Dovecot (the
# inbound mailbox is read from a real IMAP server).
set -eu
missing=""
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
command -v msgfmt >/dev/null 2>&1 || missing="$missing gettext"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v dovecot >/dev/null 2>&1 || [ -x /usr/sbin/dovecot ] || missing="$missing dovecot-imapd"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "make test needs:$missing -- install them first (Debian/Ubuntu: sudo apt-get install$missing)" >&2
    exit 1
fi
