# The Debian package: `cpack -G DEB` (or plain `cpack`) in a build directory makes
# heartbeatd_<version>-<release>_<arch>.deb from the install rules (cmake/install.cmake and
# any subdirectory's), installed with the prefix /usr. Included last from CMakeLists.txt.
set(HEARTBEATD_PACKAGE_MAINTAINER
    "heartbeatd maintainers <maintainers@users.noreply.r-seed-f86c5486.example>"
    CACHE STRING "Maintainer: field of the .deb")
set(HEARTBEATD_PACKAGE_RELEASE 1 CACHE STRING "Debian revision of the .deb (the -N after the version)")

# The package's documentation of itself, in /usr/share/doc/heartbeatd (any prefix's
# share/doc/heartbeatd for a plain `cmake --install`):
#   packaging/debian/copyright  -> copyright: the licence in Debian's machine-readable
#                                  format (DEP-5), as Debian Policy 12.5 asks of every package
#   packaging/debian/changelog  -> changelog.Debian.gz: the version has a Debian revision
#                                  (-N), so Policy 12.7 names it changelog.Debian.gz, not
#                                  changelog.gz (lintian checks the name against the version)
#   packaging/debian/lintian-overrides -> /usr/share/lintian/overrides/heartbeatd
# The changelog's newest entry must be the version being packaged; checked here, and this
# file is configured again whenever the changelog changes, so the two cannot drift.
set(HEARTBEATD_DEB_VERSION ${PROJECT_VERSION}-${HEARTBEATD_PACKAGE_RELEASE})
set(_hb_changelog ${PROJECT_SOURCE_DIR}/packaging/debian/changelog)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${_hb_changelog})
file(READ ${_hb_changelog} _hb_changelog_top LIMIT 200)
string(REGEX REPLACE "\n.*" "" _hb_changelog_top "${_hb_changelog_top}")
if(NOT _hb_changelog_top MATCHES "^heartbeatd \\(([^)]+)\\) [a-z-]+; urgency=[a-z]+$")
  message(FATAL_ERROR "packaging/debian/changelog: the first line is '${_hb_changelog_top}', "
                      "not 'heartbeatd (VERSION) DISTRIBUTION; urgency=URGENCY'")
elseif(NOT CMAKE_MATCH_1 STREQUAL HEARTBEATD_DEB_VERSION)
  message(FATAL_ERROR "packaging/debian/changelog: the newest entry is ${CMAKE_MATCH_1}, but "
                      "the package is ${HEARTBEATD_DEB_VERSION} (project(VERSION) "
                      "${PROJECT_VERSION}, HEARTBEATD_PACKAGE_RELEASE "
                      "${HEARTBEATD_PACKAGE_RELEASE}): add an entry for "
                      "${HEARTBEATD_DEB_VERSION} at the top (dch -v ${HEARTBEATD_DEB_VERSION})")
endif()
install(FILES ${PROJECT_SOURCE_DIR}/packaging/debian/copyright DESTINATION ${CMAKE_INSTALL_DOCDIR})
hb_install_gzipped(${_hb_changelog} ${CMAKE_INSTALL_DOCDIR} AS changelog.Debian.gz)
# The lintian tags the package keeps on purpose, each with its reason (packaging/README.md).
install(FILES ${PROJECT_SOURCE_DIR}/packaging/debian/lintian-overrides
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/lintian/overrides RENAME heartbeatd)

# Reproducible .deb: cpack stamps the files it packs with SOURCE_DATE_EPOCH when set. Unless
# the environment sets it, it is the date of the changelog's newest entry (its first
# " -- NAME <EMAIL>  DATE" line), so the same tree packs to the same bytes.
file(STRINGS ${_hb_changelog} _hb_changelog_trailer REGEX "^ -- .*>  " LIMIT_COUNT 1)
string(REGEX REPLACE "^ -- .*>  " "" _hb_changelog_date "${_hb_changelog_trailer}")
execute_process(COMMAND date -u -d "${_hb_changelog_date}" +%s
                OUTPUT_VARIABLE HEARTBEATD_SOURCE_DATE_EPOCH OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE _hb_date_result ERROR_QUIET)
if(NOT _hb_date_result EQUAL 0 OR NOT HEARTBEATD_SOURCE_DATE_EPOCH MATCHES "^[0-9]+$")
  message(FATAL_ERROR "packaging/debian/changelog: the newest entry's trailer "
                      "'${_hb_changelog_trailer}' has no date date(1) can read")
endif()
set(_hb_cpack_project_config ${PROJECT_BINARY_DIR}/CPackProjectConfig.cmake)
file(WRITE ${_hb_cpack_project_config}
     "# Written by cmake/package.cmake; read by cpack before it packs.\n"
     "if(NOT DEFINED ENV{SOURCE_DATE_EPOCH})\n"
     "  set(ENV{SOURCE_DATE_EPOCH} ${HEARTBEATD_SOURCE_DATE_EPOCH})\n"
     "endif()\n")
set(CPACK_PROJECT_CONFIG_FILE ${_hb_cpack_project_config})

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
# Lines of at most 79 characters: lintian warns past 80 (extended-description-line-too-long).
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION "heartbeatd runs one daemon per node. Daemons exchange UDP heartbeats to
tell which machines of a cluster are alive, suspect, dead or left; clients and
gateways send HTTP heartbeats to tell which users are online. Local services
query the daemon over HTTP on loopback or on a Unix socket. State is kept in
RocksDB across restarts.
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
