#!/bin/sh
# Install the SAM 3D Body desktop entry and icon for the current user.
#
#   packaging/install-desktop-entry.sh                 # Exec = the sam3dbody-gui found on PATH
#   packaging/install-desktop-entry.sh --exec PATH     # e.g. dist/sam3dbody-gui/sam3dbody-gui (PyInstaller build)
#   packaging/install-desktop-entry.sh --uninstall     # remove what this script installed
#
# Uses xdg-desktop-menu / xdg-icon-resource (xdg-utils) when present; otherwise copies the
# files to ~/.local/share/applications and ~/.local/share/icons/hicolor (XDG_DATA_HOME is
# honoured). Only files named sam3dbody-gui.* are written or removed.
set -eu

here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
root=$(dirname -- "$here")
data=${XDG_DATA_HOME:-$HOME/.local/share}
name=sam3dbody-gui
exec_path=""
uninstall=0

while [ $# -gt 0 ]; do
    case "$1" in
        --exec) exec_path=${2:?--exec needs a path}; shift 2 ;;
        --uninstall) uninstall=1; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

have() { command -v "$1" >/dev/null 2>&1; }

refresh_caches() {
    if have update-desktop-database; then update-desktop-database -q "$data/applications" 2>/dev/null || true; fi
    if have gtk-update-icon-cache; then gtk-update-icon-cache -q -t "$data/icons/hicolor" 2>/dev/null || true; fi
}

if [ "$uninstall" = 1 ]; then
    if have xdg-desktop-menu; then xdg-desktop-menu uninstall --novendor "$name.desktop" 2>/dev/null || true; fi
    if have xdg-icon-resource; then xdg-icon-resource uninstall --novendor --size 256 "$name" 2>/dev/null || true; fi
    rm -f "$data/applications/$name.desktop" "$data/icons/hicolor/256x256/apps/$name.png" \
          "$data/icons/hicolor/scalable/apps/$name.svg"
    refresh_caches
    echo "removed the $name desktop entry and icons"
    exit 0
fi

if [ -z "$exec_path" ]; then
    exec_path=$(command -v sam3dbody-gui || true)
    if [ -z "$exec_path" ]; then
        echo "error: sam3dbody-gui is not on PATH; install the package first, or give --exec PATH" >&2
        exit 2
    fi
fi
case "$exec_path" in /*) ;; *) exec_path="$(pwd)/$exec_path" ;; esac
if [ ! -x "$exec_path" ]; then
    echo "error: $exec_path is not an executable file" >&2
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Absolute Exec/TryExec, so the launcher works whatever PATH the desktop session has.
quoted=$(printf '%s' "$exec_path" | sed 's/[\\"`$]/\\&/g')
sed -e "s|^Exec=.*|Exec=\"$quoted\"|" -e "s|^TryExec=.*|TryExec=$exec_path|" \
    "$here/$name.desktop" > "$tmp/$name.desktop"
if have desktop-file-validate; then desktop-file-validate "$tmp/$name.desktop"; fi

mkdir -p "$data/icons/hicolor/scalable/apps"
cp "$root/resources/$name.svg" "$data/icons/hicolor/scalable/apps/$name.svg"
if have xdg-icon-resource && have xdg-desktop-menu; then
    xdg-icon-resource install --novendor --context apps --size 256 "$root/resources/$name.png" "$name"
    xdg-desktop-menu install --novendor "$tmp/$name.desktop"
else
    mkdir -p "$data/applications" "$data/icons/hicolor/256x256/apps"
    cp "$root/resources/$name.png" "$data/icons/hicolor/256x256/apps/$name.png"
    cp "$tmp/$name.desktop" "$data/applications/$name.desktop"
    refresh_caches
fi
echo "installed $data/applications/$name.desktop (Exec: $exec_path) and the $name icon"
