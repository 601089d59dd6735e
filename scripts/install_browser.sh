#!/usr/bin/env bash
# Installs Debian's headless browser for the browser tests (tests/test_ui_browser.py):
# chromium, chromium-driver and CJK fonts (so screenshots show Chinese). Does nothing when
# they are already there. Needs root (or sudo) and apt; never downloads a browser itself.
set -euo pipefail

need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
if command -v fc-list >/dev/null 2>&1; then
    fc-list :lang=zh | grep -q . || need+=(fonts-noto-cjk)
else
    need+=(fonts-noto-cjk)
fi

if [ ${#need[@]} -eq 0 ]; then
    echo "install_browser: chromium, chromedriver and CJK fonts already installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_browser: apt-get not found; install ${need[*]} by hand (the browser tests skip without them)" >&2
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install_browser: not root and no sudo; install ${need[*]} by hand" >&2
        exit 0
    fi
fi

echo "install_browser: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q "${need[@]}"
/usr/bin/chromium --version
/usr/bin/chromedriver --version
