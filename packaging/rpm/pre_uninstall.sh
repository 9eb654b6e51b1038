# qerrors %preun ($1: 0 = removal, 1 = upgrade). Like %systemd_preun: disable and stop on removal.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload disable --now qerrors.service qerrors.socket >/dev/null 2>&1 || :
fi
exit 0
