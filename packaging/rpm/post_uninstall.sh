# qerrors %postun ($1: 0 = removal, 1 = upgrade). Like %systemd_postun_with_restart: restart the
# daemon after an upgrade; the socket unit keeps listening meanwhile. Logs in /var/log/qerrors
# and the qerrors user are left in place (RPM has no purge).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart qerrors.service >/dev/null 2>&1 || :
    fi
fi
exit 0
