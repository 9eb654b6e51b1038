# qerrors %pre: the system user and group (what /usr/lib/sysusers.d/qerrors.conf declares; the
# file is not on disk yet at this point, so do it with shadow-utils directly).
getent group qerrors >/dev/null || groupadd --system qerrors
getent passwd qerrors >/dev/null || useradd --system --gid qerrors --home-dir /var/lib/qerrors \
    --no-create-home --shell /sbin/nologin --comment "qerrors daemon" qerrors
exit 0
