# Install rules: `cmake --install build [--prefix DIR]`, and what `cpack -G DEB` packages
# (CPack installs with the prefix /usr into its staging directory through DESTDIR).
#
#   heartbeatd                      -> ${prefix}/bin
#   README.md, docs/*.md            -> ${prefix}/share/doc/heartbeatd
#   examples/heartbeatd.yaml        -> /etc/heartbeatd/heartbeatd.yaml   (prefix /usr)
#                                      ${prefix}/etc/heartbeatd/...      (any other prefix)
#   examples/systemd/heartbeatd.service
#                                   -> /lib/systemd/system               (prefix /usr)
#                                      ${prefix}/lib/systemd/system      (any other prefix)
#
# The configuration and the unit are the two files that do not live under the prefix when
# the prefix is /usr: Debian keeps configuration in /etc (GNUInstallDirs' own rule for
# /usr), and Debian 12 ships units in /lib/systemd/system (`pkg-config
# --variable=systemdsystemunitdir systemd`; usr-merge moves them only after bookworm).
# Their place is decided when installing, from the prefix in force then, not at configure
# time: a tree configured for /usr must still install wholly inside DIR with
# `--prefix DIR`, and `cpack` must put them in /etc and /lib whatever the build was
# configured with. For a prefix other than /usr the unit's paths (/usr/bin/heartbeatd,
# /etc/heartbeatd/) are rewritten to that prefix, so that e.g. a /usr/local install is a
# working unit too (systemd also reads /usr/local/lib/systemd/system).
include(GNUInstallDirs)

install(TARGETS heartbeatd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

file(GLOB HEARTBEATD_DOCS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${HEARTBEATD_DOCS}
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

set(HEARTBEATD_INSTALL_SOURCE_DIR ${PROJECT_SOURCE_DIR})
set(HEARTBEATD_INSTALL_STAGING_DIR ${PROJECT_BINARY_DIR}/install-staging)
string(CONFIGURE [[
  set(_hb_src "@HEARTBEATD_INSTALL_SOURCE_DIR@")
  set(_hb_staging "@HEARTBEATD_INSTALL_STAGING_DIR@")
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" OR CMAKE_INSTALL_PREFIX STREQUAL "/usr/")
    set(_hb_etc "/etc/heartbeatd")
    set(_hb_unitdir "/lib/systemd/system")
    set(_hb_unit "${_hb_src}/examples/systemd/heartbeatd.service")
  else()
    string(REGEX REPLACE "/+$" "" _hb_prefix "${CMAKE_INSTALL_PREFIX}")
    set(_hb_etc "${_hb_prefix}/etc/heartbeatd")
    set(_hb_unitdir "${_hb_prefix}/lib/systemd/system")
    file(READ "${_hb_src}/examples/systemd/heartbeatd.service" _hb_text)
    string(REPLACE "/usr/bin/heartbeatd" "${_hb_prefix}/bin/heartbeatd" _hb_text "${_hb_text}")
    string(REPLACE "/etc/heartbeatd/" "${_hb_etc}/" _hb_text "${_hb_text}")
    string(REPLACE "/usr/share/doc/heartbeatd/" "${_hb_prefix}/share/doc/heartbeatd/"
           _hb_text "${_hb_text}")
    set(_hb_unit "${_hb_staging}/heartbeatd.service")
    file(WRITE "${_hb_unit}" "${_hb_text}")
  endif()
  # file(INSTALL) applies $DESTDIR to these absolute paths, and records them in
  # install_manifest.txt like the other rules.
  file(INSTALL DESTINATION "${_hb_etc}" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES "${_hb_src}/examples/heartbeatd.yaml")
  file(INSTALL DESTINATION "${_hb_unitdir}" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES "${_hb_unit}")
]] HEARTBEATD_INSTALL_CODE @ONLY)
install(CODE "${HEARTBEATD_INSTALL_CODE}")
