# qerrors %post ($1: 1 = install, 2 = upgrade). Like Fedora's %systemd_post: on first install
# apply the preset (enabled only where the distribution's or admin's presets say so), start
# nothing; on upgrade %postun restarts the daemon.
if command -v systemd-tmpfiles >/dev/null 2>&1; then
    systemd-tmpfiles --create /usr/lib/tmpfiles.d/qerrors.conf || :
else
    for d in /var/log/qerrors /var/lib/qerrors; do
        mkdir -p "$d" && chown qerrors:qerrors "$d" && chmod 0750 "$d"
    done
fi
# Leftover files (an earlier install's logs, a root run) go to qerrors; see the deb postinst.
for d in /var/log/qerrors /var/lib/qerrors; do
    find "$d" -mindepth 1 -maxdepth 1 -links 1 ! -user qerrors \
        -exec chown -h qerrors:qerrors {} + 2>/dev/null || :
done
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload preset qerrors.socket qerrors.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
