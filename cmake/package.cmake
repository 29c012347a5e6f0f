# The Debian package: `cpack -G DEB` (or plain `cpack`) in a build directory makes
# heartbeatd_<version>-<release>_<arch>.deb from the install rules (cmake/install.cmake and
# any subdirectory's), installed with the prefix /usr. Included last from CMakeLists.txt.
set(HEARTBEATD_PACKAGE_MAINTAINER
    "heartbeatd maintainers <maintainers@users.noreply.r-seed-f86c5486.example>"
    CACHE STRING "Maintainer: field of the .deb")
set(HEARTBEATD_PACKAGE_RELEASE 1 CACHE STRING "Debian revision of the .deb (the -N after the version)")

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME heartbeatd)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "${HEARTBEATD_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "failure detector and presence daemon")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# The .deb carries no debug information (Debian would split it into a -dbgsym package).
set(CPACK_STRIP_FILES ON)

set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${HEARTBEATD_PACKAGE_RELEASE})
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${HEARTBEATD_PACKAGE_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The synopsis is CPACK_PACKAGE_DESCRIPTION_SUMMARY; this is the extended description.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "heartbeatd runs one daemon per node. Daemons exchange UDP heartbeats to tell which
machines of a cluster are alive, suspect, dead or left; clients and gateways send HTTP
heartbeats to tell which users are online. Local services query the daemon over HTTP on
loopback or on a Unix socket. State is kept in RocksDB across restarts.
.
The package installs a hardened systemd unit, not enabled: configure
/etc/heartbeatd/heartbeatd.yaml, then run systemctl enable --now heartbeatd.")
# Library dependencies are computed by dpkg-shlibdeps (package dpkg-dev) from the binary,
# so they always match the libraries this build linked (RocksDB, yaml-cpp, fmt, Boost,
# libsodium, libsystemd, libssl3). Added to them: what the maintainer scripts run to create the
# system account (adduser, or useradd from passwd).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "adduser | passwd")

# Maintainer scripts, and conffiles so that dpkg keeps an edited configuration on upgrade
# and asks before replacing it. STRICT_PERMISSION installs the scripts 0755 and conffiles
# 0644 whatever their mode in the checkout.
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${PROJECT_SOURCE_DIR}/packaging/debian/conffiles
    ${PROJECT_SOURCE_DIR}/packaging/debian/postinst
    ${PROJECT_SOURCE_DIR}/packaging/debian/prerm
    ${PROJECT_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
